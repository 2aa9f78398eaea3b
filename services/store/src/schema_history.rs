//! Which columns a table had at a binlog position.
//!
//! Row events carry no column names or types (see `binlog::decode`), so every row must be
//! decoded with the table's schema *as it was when the row was written*: after a restart the
//! store re-reads events from before DDL that has since run. The history keeps, per table, the
//! versions in position order, each valid from the position of the DDL that produced it until
//! the next one; a dropped table has a tombstone. Versions are numbered per table in the order
//! they were recorded. Recording the same version at the same position again (a replay after a
//! restart) changes nothing.
//!
//! The durable copy of the history (a JetStream stream per task, replayed into this structure
//! on start) comes with the capture loop.

use ferry_schemas::position::BinlogFilePos;
use ferry_schemas::table::{TableRef, TableSchema};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    pub from: BinlogFilePos,
    pub number: u64,
    /// `None` when the table was dropped at `from`.
    pub schema: Option<TableSchema>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HistoryError {
    #[error("schema of {table} recorded at {at}, before its latest version at {latest}: DDL must be recorded in binlog order")]
    OutOfOrder { table: TableRef, at: BinlogFilePos, latest: BinlogFilePos },
}

#[derive(Clone, Debug, Default)]
pub struct SchemaHistory {
    tables: BTreeMap<TableRef, Vec<Version>>,
}

impl SchemaHistory {
    /// Records the schema a DDL at `from` gave the table (`None`: dropped). Returns the version
    /// number, the existing one when this exact version was recorded before.
    pub fn record(
        &mut self,
        table: &TableRef,
        from: BinlogFilePos,
        schema: Option<TableSchema>,
    ) -> Result<u64, HistoryError> {
        let versions = self.tables.entry(table.clone()).or_default();
        if let Some(latest) = versions.last() {
            if latest.from == from && latest.schema == schema {
                return Ok(latest.number);
            }
            if from < latest.from {
                if let Some(same) = versions.iter().find(|v| v.from == from && v.schema == schema) {
                    return Ok(same.number);
                }
                return Err(HistoryError::OutOfOrder {
                    table: table.clone(),
                    at: from,
                    latest: latest.from.clone(),
                });
            }
        }
        let number = versions.last().map_or(1, |v| v.number + 1);
        versions.push(Version { from, number, schema });
        Ok(number)
    }

    /// The version in force at `pos`: the latest one recorded at or before it.
    pub fn at(&self, table: &TableRef, pos: &BinlogFilePos) -> Option<&Version> {
        let versions = self.tables.get(table)?;
        let idx = versions.partition_point(|v| v.from <= *pos);
        idx.checked_sub(1).map(|i| &versions[i])
    }

    /// The schema in force at `pos`, if the table existed then.
    pub fn schema_at(&self, table: &TableRef, pos: &BinlogFilePos) -> Option<&TableSchema> {
        self.at(table, pos).and_then(|v| v.schema.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_schemas::table::KeyKind;
    use proptest::prelude::*;

    fn pos(file: u64, offset: u64) -> BinlogFilePos {
        BinlogFilePos { file: format!("binlog.{file:06}"), offset }
    }
    fn schema(tag: &str) -> TableSchema {
        TableSchema {
            table: TableRef::new("db", tag),
            columns: vec![],
            key_kind: KeyKind::None,
            key: vec![],
            unique_keys: vec![],
        }
    }

    #[test]
    fn versions_apply_from_their_ddl_on() {
        let t = TableRef::new("db", "t");
        let mut h = SchemaHistory::default();
        assert_eq!(h.record(&t, pos(1, 100), Some(schema("v1"))), Ok(1));
        assert_eq!(h.record(&t, pos(2, 4), Some(schema("v2"))), Ok(2));
        assert_eq!(h.record(&t, pos(2, 900), None), Ok(3));
        assert!(h.at(&t, &pos(1, 99)).is_none());
        assert_eq!(h.schema_at(&t, &pos(1, 100)), Some(&schema("v1")));
        assert_eq!(h.schema_at(&t, &pos(1, 999_999)), Some(&schema("v1")));
        assert_eq!(h.schema_at(&t, &pos(2, 500)), Some(&schema("v2")));
        assert_eq!(h.schema_at(&t, &pos(3, 4)), None);
        // A replay after a restart is harmless; an older DDL that was never seen is an error.
        assert_eq!(h.record(&t, pos(2, 4), Some(schema("v2"))), Ok(2));
        assert!(h.record(&t, pos(1, 500), Some(schema("v9"))).is_err());
    }

    proptest! {
        #[test]
        fn at_finds_the_latest_version_not_after_the_position(
            mut ddl in proptest::collection::btree_set((0u64..5, 0u64..1000), 1..20),
            probe in (0u64..6, 0u64..1100),
        ) {
            let t = TableRef::new("db", "t");
            let mut h = SchemaHistory::default();
            let ddl: Vec<(u64, u64)> = std::mem::take(&mut ddl).into_iter().collect();
            for (i, (f, o)) in ddl.iter().enumerate() {
                h.record(&t, pos(*f, *o), Some(schema(&i.to_string()))).unwrap();
            }
            let expected = ddl.iter().rposition(|d| *d <= probe).map(|i| schema(&i.to_string()));
            prop_assert_eq!(h.schema_at(&t, &pos(probe.0, probe.1)).cloned(), expected);
        }
    }
}
