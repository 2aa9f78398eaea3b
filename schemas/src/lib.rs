//! Ferry's wire contract: every message, key and name that crosses a process boundary.
//!
//! Services talk only through NATS JetStream streams and KV buckets; this crate is the single
//! place that defines what travels there. It depends on serde, schemars and chrono only, so every
//! service (and any outside consumer) can share it without pulling a database or NATS client.
//! `json/` holds a JSON Schema generated from these types and `examples/` one example per
//! message; `tests/contract.rs` fails when they drift (`BLESS=1` rewrites them).

pub mod cdc;
pub mod check;
pub mod control;
pub mod correction;
pub mod envelope;
pub mod full;
pub mod literal;
pub mod names;
pub mod position;
pub mod status;
pub mod table;
mod tagged;
pub mod task;
pub mod value;

/// Version of every envelope this build writes. Readers refuse envelopes with a newer major.
pub const SCHEMA_VERSION: u32 = 1;
