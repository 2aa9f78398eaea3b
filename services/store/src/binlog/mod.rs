//! Reading the source's binlog: MariaDB's own events and schema-driven row decoding.

pub mod columns;
pub mod decode;
pub mod gtid;
pub mod reader;
