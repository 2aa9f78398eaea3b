//! End-to-end scenarios: real service processes, a real nats-server per test, and the
//! project's source and target MariaDB (`scripts/dev-services up`).

mod bad_input;
mod check;
mod crash;
mod ddl;
mod faults;
mod full_copy;
mod harness;
mod incremental;
mod observability;
mod regions;
mod scenario;
mod sessions;
mod traces;
mod verify;
