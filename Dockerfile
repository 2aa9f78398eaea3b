# One image with every Ferry binary; docker-compose.yml picks the service by command.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --workspace --bins

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/ferry-scheduler /src/target/release/ferry-full-migrator \
     /src/target/release/ferry-sink /src/target/release/ferry-store /src/target/release/ferry-dispatcher \
     /src/target/release/ferry-checker /src/target/release/ferry /usr/local/bin/
ENV FERRY_HTTP_ADDR=0.0.0.0:9000
EXPOSE 9000 8480
