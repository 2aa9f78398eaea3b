//! Errors of the checker and their class. A database error says which side it came from, so
//! the report names the server to fix.

use ferry_kit::{ErrorClass, KitError};
use ferry_mysql::SourceError;
use ferry_schemas::status::ErrorReport;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Target => "target",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{} database: {error}", .side.name())]
    Db { side: Side, error: SourceError },
    #[error(transparent)]
    Kit(#[from] KitError),
    /// An operator must act: the report says what and how.
    #[error("{}", .0.message)]
    Definite(Box<ErrorReport>),
    #[error("cancelled")]
    Cancelled,
}

impl CheckError {
    pub fn db(side: Side, context: impl Into<String>, e: mysql_async::Error) -> Self {
        CheckError::Db { side, error: SourceError::mysql(context, e) }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            CheckError::Db { error, .. } => error.class(),
            CheckError::Kit(e) => e.class(),
            CheckError::Definite(_) | CheckError::Cancelled => ErrorClass::Definite,
        }
    }

    pub fn report(&self, object: Option<String>) -> ErrorReport {
        let make = |code: &str, fix: &str| {
            ferry_kit::error::report(crate::COMPONENT, code, object.clone(), self.to_string(), fix)
        };
        match self {
            CheckError::Definite(r) => (**r).clone(),
            CheckError::Db { side: Side::Source, error } => {
                let (code, fix) = error.code_and_fix();
                make(code, fix)
            }
            CheckError::Db { side: Side::Target, error } => match error.class() {
                ErrorClass::Transient => {
                    make("target_unreachable", "check that the target database is up and reachable from the checker")
                }
                ErrorClass::Definite => make(
                    "target_error",
                    "grant the target user SELECT (and INSERT, DELETE for corrections) on the target tables, \
                     or fix what the message names, then resume the task",
                ),
            },
            CheckError::Kit(e) => {
                let (code, fix) = e.code_and_fix();
                make(code, fix)
            }
            CheckError::Cancelled => make("internal", "see the service log; resume the task"),
        }
    }
}

pub fn definite(code: &str, object: Option<String>, message: String, fix: &str) -> CheckError {
    CheckError::Definite(Box::new(ferry_kit::error::report(crate::COMPONENT, code, object, message, fix)))
}
