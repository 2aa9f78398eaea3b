//! Reading the source's binlog: MariaDB's and MySQL's GTID events and schema-driven row decoding.

pub mod columns;
pub mod decode;
pub mod gtid;
pub mod mysql_gtid;
pub mod reader;
