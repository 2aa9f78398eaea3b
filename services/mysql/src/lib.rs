//! Source-side MySQL/MariaDB access shared by the scheduler (precheck), the full-migrator and,
//! later, the store: connections, the catalog (information_schema into [`TableSchema`]),
//! exact value conversion, binlog positions, and error classes by server error code.
//!
//! [`TableSchema`]: ferry_schemas::table::TableSchema

pub mod binlog_access;
pub mod catalog;
pub mod conn;
pub mod error;
pub mod position;
pub mod values;

pub use error::SourceError;
