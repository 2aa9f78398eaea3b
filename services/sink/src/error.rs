//! Sink errors, classified by the target's error code or the I/O failure kind.

use ferry_kit::consume::Failure;
use ferry_kit::ErrorClass;

/// Target error codes that clear up by themselves.
const TRANSIENT_CODES: &[u16] = &[1040, 1053, 1205, 1213, 1317, 1927, 2006, 2013];

pub fn target_code(e: &sqlx::Error) -> Option<u16> {
    match e {
        sqlx::Error::Database(d) => {
            d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().map(|m| m.number())
        }
        _ => None,
    }
}

pub fn class_of(e: &sqlx::Error) -> ErrorClass {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => ErrorClass::Transient,
        sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => ErrorClass::Transient,
        sqlx::Error::Database(_) => match target_code(e) {
            Some(c) if TRANSIENT_CODES.contains(&c) => ErrorClass::Transient,
            _ => ErrorClass::Definite,
        },
        _ => ErrorClass::Definite,
    }
}

/// A failure that names the object, the statement and the fix.
pub fn target_failure(e: &sqlx::Error, object: &str, doing: &str) -> Failure {
    let class = class_of(e);
    let (code, fix) = match target_code(e) {
        Some(1045) => ("access_denied", "check the target user and password in the task spec"),
        Some(1044) | Some(1142) | Some(1227) => {
            ("missing_privilege", "grant the target user CREATE, DROP, INSERT, DELETE, SELECT on the target databases and ferry_meta")
        }
        Some(1050) => ("target_exists", "drop the target object, or set full.existing_tables to skip or drop"),
        Some(1146) => ("target_missing", "the target table does not exist: include the schema phase or create it"),
        _ if class == ErrorClass::Transient => ("target_unreachable", "check that the target database is up and reachable"),
        _ => ("target_rejected", "fix the target (or the source object) and resume the task"),
    };
    Failure {
        class,
        report: Box::new(ferry_kit::error::report(
            crate::COMPONENT,
            code,
            Some(object.to_owned()),
            format!("{doing} on {object} failed: {e}"),
            fix,
        )),
    }
}

pub fn definite(code: &str, object: &str, message: String, fix: &str) -> Failure {
    Failure {
        class: ErrorClass::Definite,
        report: Box::new(ferry_kit::error::report(
            crate::COMPONENT,
            code,
            Some(object.to_owned()),
            message,
            fix,
        )),
    }
}

/// A message's stream sequence and its envelope, refusing what is not a Ferry event of a
/// schema version this sink understands. `stream` names the stream in reports.
pub fn envelope<T: serde::de::DeserializeOwned>(
    msg: &async_nats::jetstream::Message,
    stream: &str,
) -> Result<(u64, ferry_schemas::envelope::Envelope<T>), Failure> {
    let seq = msg.info().map(|i| i.stream_sequence).unwrap_or_default();
    let env: ferry_schemas::envelope::Envelope<T> = serde_json::from_slice(&msg.payload).map_err(|e| {
        definite(
            "malformed_message",
            &msg.subject,
            format!("{stream} stream message {seq} is not a Ferry event: {e}"),
            "report this; the stream was written by something else",
        )
    })?;
    if env.schema_version > ferry_schemas::SCHEMA_VERSION {
        return Err(definite(
            "newer_schema",
            &msg.subject,
            format!("message {seq} has schema version {}", env.schema_version),
            "upgrade the sink",
        ));
    }
    Ok((seq, env))
}
