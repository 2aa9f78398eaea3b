//! Errors of the full-migrator and their class.

use ferry_kit::{ErrorClass, KitError};
use ferry_mysql::SourceError;
use ferry_schemas::status::ErrorReport;

#[derive(Debug, thiserror::Error)]
pub enum FullError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Kit(#[from] KitError),
    /// An operator must act: the report says what and how.
    #[error("{}", .0.message)]
    Definite(Box<ErrorReport>),
    #[error("cancelled")]
    Cancelled,
}

impl FullError {
    pub fn class(&self) -> ErrorClass {
        match self {
            FullError::Source(e) => e.class(),
            FullError::Kit(e) => e.class(),
            FullError::Definite(_) | FullError::Cancelled => ErrorClass::Definite,
        }
    }

    pub fn report(&self, object: Option<String>) -> ErrorReport {
        match self {
            FullError::Definite(r) => (**r).clone(),
            FullError::Source(e) => {
                let (code, fix) = e.code_and_fix();
                ferry_kit::error::report(crate::COMPONENT, code, object, e.to_string(), fix)
            }
            FullError::Kit(e) => {
                let (code, fix) = e.code_and_fix();
                ferry_kit::error::report(crate::COMPONENT, code, object, e.to_string(), fix)
            }
            other => ferry_kit::error::report(
                crate::COMPONENT,
                "internal",
                object,
                other.to_string(),
                "see the service log; resume the task",
            ),
        }
    }
}

pub fn definite(code: &str, object: Option<String>, message: String, fix: &str) -> FullError {
    FullError::Definite(Box::new(ferry_kit::error::report(crate::COMPONENT, code, object, message, fix)))
}
