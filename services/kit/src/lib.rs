//! What every Ferry service needs at run time: flags, telemetry, shutdown, the health/metrics
//! HTTP server, NATS connection and provisioning, secrets, error classes, and the supervisor
//! that turns the scheduler's assignments into running jobs.

pub mod alloc;
pub mod apply_log;
pub mod args;
pub mod backoff;
pub mod consume;
pub mod error;
pub mod failpoint;
pub mod http;
pub mod jobs;
pub mod members;
pub mod metrics;
pub mod nats;
pub mod runtime;
pub mod secret;
pub mod shutdown;
pub mod telemetry;
pub mod trace;
pub mod watermark;

pub use error::{ErrorClass, KitError};
