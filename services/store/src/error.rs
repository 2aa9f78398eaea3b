//! Errors of the capture job and their class.

use crate::assemble::AssembleError;
use crate::binlog::reader::ReadError;
use crate::schema_history::HistoryError;
use ferry_kit::{ErrorClass, KitError};
use ferry_mysql::SourceError;
use ferry_schemas::status::ErrorReport;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Kit(#[from] KitError),
    #[error(transparent)]
    Assemble(#[from] AssembleError),
    #[error(transparent)]
    History(#[from] HistoryError),
    /// An operator must act: the report says what and how.
    #[error("{}", .0.message)]
    Definite(Box<ErrorReport>),
}

impl From<ReadError> for CaptureError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Source(s) => CaptureError::Source(s),
            ReadError::Event { .. } => definite(
                "binlog_event",
                None,
                e.to_string(),
                "the source wrote an event Ferry cannot read; check binlog_row_image=FULL and report the event",
            ),
        }
    }
}

impl CaptureError {
    pub fn class(&self) -> ErrorClass {
        match self {
            CaptureError::Source(e) => e.class(),
            CaptureError::Kit(e) => e.class(),
            CaptureError::Assemble(_) | CaptureError::History(_) | CaptureError::Definite(_) => {
                ErrorClass::Definite
            }
        }
    }

    pub fn report(&self) -> ErrorReport {
        let (code, fix) = match self {
            CaptureError::Definite(r) => return (**r).clone(),
            CaptureError::Source(e) => match ferry_mysql::error::server_code_of(e) {
                Some(1236) => (
                    "binlog_purged",
                    "the binlog at the resume position is gone (purged or never written); keep binlogs longer and start the task again",
                ),
                Some(1227) | Some(1045) => (
                    "missing_privilege",
                    "grant the user REPLICATION SLAVE, REPLICATION CLIENT (and BINLOG MONITOR on MariaDB)",
                ),
                _ => e.code_and_fix(),
            },
            CaptureError::Assemble(AssembleError::SchemaMismatch { table, .. }) => {
                return ferry_kit::error::report(
                    crate::COMPONENT,
                    "binlog_decode",
                    Some(table.to_string()),
                    self.to_string(),
                    "set binlog_row_metadata=FULL on the source (the binlog then describes every column) and \
                     restart the task from a new full copy",
                )
            }
            CaptureError::Assemble(_) | CaptureError::History(_) => (
                "binlog_decode",
                "the rows do not match the recorded schema of their table; see the message and report it",
            ),
            CaptureError::Kit(e) => e.code_and_fix(),
        };
        ferry_kit::error::report(crate::COMPONENT, code, None, self.to_string(), fix)
    }
}

pub fn definite(code: &str, object: Option<String>, message: String, fix: &str) -> CaptureError {
    CaptureError::Definite(Box::new(ferry_kit::error::report(crate::COMPONENT, code, object, message, fix)))
}
