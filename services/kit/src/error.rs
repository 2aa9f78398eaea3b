//! Error classes and the kit's own errors.
//!
//! Every error at a service boundary knows its class: **transient** errors are retried with
//! backoff (a server that is down, a lock timeout); **definite** errors pause the task with an
//! [`ErrorReport`] that names the object and the fix.

use chrono::Utc;
use ferry_schemas::status::ErrorReport;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    Transient,
    Definite,
}

/// Builds an operator-facing report.
pub fn report(
    component: &str,
    code: &str,
    object: Option<String>,
    message: String,
    fix: &str,
) -> ErrorReport {
    ErrorReport {
        code: code.to_owned(),
        object,
        message,
        fix: fix.to_owned(),
        component: component.to_owned(),
        at: Utc::now(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect { url: String, source: async_nats::ConnectError },
    #[error("NATS request failed while {doing}: {message}")]
    Nats { doing: String, message: String },
    #[error("malformed JSON in {what}: {source}")]
    Json { what: String, source: serde_json::Error },
    #[error("cannot serve HTTP on {addr}: {source}")]
    Http { addr: String, source: std::io::Error },
    #[error("secret: {0}")]
    Secret(String),
    #[error("task {0} has no record")]
    TaskMissing(String),
    #[error("configuration: {0}")]
    Config(String),
}

impl KitError {
    pub fn nats(doing: impl Into<String>, e: impl std::fmt::Display) -> Self {
        KitError::Nats { doing: doing.into(), message: e.to_string() }
    }
    pub fn class(&self) -> ErrorClass {
        match self {
            KitError::Connect { .. } | KitError::Nats { .. } => ErrorClass::Transient,
            KitError::Json { .. }
            | KitError::Http { .. }
            | KitError::Secret(_)
            | KitError::TaskMissing(_)
            | KitError::Config(_) => ErrorClass::Definite,
        }
    }

    /// The report code and the fix an operator needs.
    pub fn code_and_fix(&self) -> (&'static str, &'static str) {
        match self {
            KitError::Connect { .. } | KitError::Nats { .. } => ("nats", "check that NATS is reachable"),
            KitError::Json { .. } => {
                ("malformed_message", "a stream or bucket holds something Ferry did not write; report this")
            }
            KitError::Http { .. } => {
                ("http_bind", "free the port or choose another with --http-addr (FERRY_HTTP_ADDR)")
            }
            KitError::Secret(_) => {
                ("secret", "start every service with the FERRY_SECRET_KEY the task was created with")
            }
            KitError::TaskMissing(_) => ("task_missing", "create the task again"),
            KitError::Config(_) => ("config", "correct the service's flags or environment"),
        }
    }
}
