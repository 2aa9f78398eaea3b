//! Source errors, classified by mysql error code or I/O kind (never by message text).

use ferry_kit::ErrorClass;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{context}: {source}")]
    Mysql { context: String, source: mysql_async::Error },
    #[error("table {table}, column {column}: {message}")]
    Value { table: String, column: String, message: String },
    #[error("{0}")]
    Unsupported(String),
}

/// Server error codes that clear up by themselves (retry).
const TRANSIENT_CODES: &[u16] = &[
    1040, // too many connections
    1053, // server shutdown in progress
    1205, // lock wait timeout
    1213, // deadlock
    1927, // connection killed
    2006, // server has gone away
    2013, // lost connection
    1317, // query interrupted
];

pub fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

pub fn class_of(e: &mysql_async::Error) -> ErrorClass {
    match e {
        mysql_async::Error::Io(_) => ErrorClass::Transient,
        mysql_async::Error::Server(s) if TRANSIENT_CODES.contains(&s.code) => ErrorClass::Transient,
        mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed)
        | mysql_async::Error::Driver(mysql_async::DriverError::PoolDisconnected) => ErrorClass::Transient,
        _ => ErrorClass::Definite,
    }
}

/// The server error code behind a source error, if it is one.
pub fn server_code_of(e: &SourceError) -> Option<u16> {
    match e {
        SourceError::Mysql { source, .. } => server_code(source),
        _ => None,
    }
}

impl SourceError {
    pub fn mysql(context: impl Into<String>, source: mysql_async::Error) -> Self {
        SourceError::Mysql { context: context.into(), source }
    }
    pub fn class(&self) -> ErrorClass {
        match self {
            SourceError::Mysql { source, .. } => class_of(source),
            SourceError::Value { .. } | SourceError::Unsupported(_) => ErrorClass::Definite,
        }
    }
    /// A stable code and a fix for an operator.
    pub fn code_and_fix(&self) -> (&'static str, &'static str) {
        match self {
            SourceError::Mysql { source, .. } => match server_code(source) {
                Some(1045) => ("access_denied", "check the user name and password of the endpoint in the task spec"),
                Some(1044) | Some(1142) | Some(1143) => (
                    "missing_privilege",
                    "grant the migration user SELECT on the migrated databases (GRANT SELECT ON db.* TO user)",
                ),
                Some(1146) | Some(1049) => ("object_missing", "the object was dropped or renamed on the source; adjust the task's objects"),
                _ if class_of(source) == ErrorClass::Transient => {
                    ("source_unreachable", "check that the source database is up and reachable from this service")
                }
                _ => ("source_error", "see the message; fix the source or the task spec and resume the task"),
            },
            SourceError::Value { .. } => ("bad_value", "report this value; the column cannot be copied exactly"),
            SourceError::Unsupported(_) => ("unsupported", "exclude the object from the task or change its type on the source"),
        }
    }
}
