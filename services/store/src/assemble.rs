//! Transaction assembly: from binlog events to CDC messages.
//!
//! A transaction opens at MariaDB's GTID event (or a `BEGIN` query: MySQL announces the GTID
//! of the transaction or DDL after it in an event of its own), collects its row changes,
//! and closes at the XID event (or a `COMMIT` query for non-transactional engines); it is emitted
//! with the position after its closing event, which is where a restarted reader resumes. Each
//! row image is decoded with the table's schema version in force at the row event's position
//! (see `schema_history`; when the row event's table map shows that the rows were written
//! under another schema, under the one it describes, see `written_schema`), and the versions
//! used travel in the message. A GTID flagged
//! standalone, or any other query outside a transaction, is a DDL statement: it is emitted on
//! its own, and the caller records the new schema versions. Heartbeats pass through. Rows of
//! tables outside the task's objects are skipped, but their transaction is still emitted (with
//! no changes) so the resume position advances. The
//! assembler keeps no state across restarts: a reader resumed at a transaction boundary starts
//! with nothing open.

use crate::binlog::columns::{Collations, MappedColumn};
use crate::binlog::decode::decode;
use crate::binlog::reader::{Event, Positioned, RowImage};
use crate::schema_history::SchemaHistory;
use crate::written_schema::as_written;
use chrono::{DateTime, Utc};
use ferry_schemas::cdc::{ChangeOp, DdlEvent, RowChange, TableVersion, Transaction};
use ferry_schemas::full::BatchColumn;
use ferry_schemas::position::BinlogFilePos;
use ferry_schemas::table::{TableRef, TableSchema};
use ferry_schemas::task::ObjectFilter;
use serde_json::Value as Json;
use std::collections::HashMap;

#[derive(Debug, PartialEq)]
pub enum Output {
    Transaction { txn: Transaction, end: BinlogFilePos },
    Ddl { ddl: DdlEvent, end: BinlogFilePos },
    Heartbeat { end: BinlogFilePos },
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AssembleError {
    #[error("rows of {table} at {at} outside of a transaction")]
    RowsOutsideTransaction { table: TableRef, at: BinlogFilePos },
    #[error("no schema known for {table} at {at}: the schema history does not cover this position")]
    NoSchema { table: TableRef, at: BinlogFilePos },
    #[error("row of {table} at {at} has {got} columns, its schema version has {expected}")]
    ColumnCount { table: TableRef, at: BinlogFilePos, got: usize, expected: usize },
    #[error("{table} at {at}: {message}")]
    Value { table: TableRef, at: BinlogFilePos, message: String },
    /// `column`: the column, what the table map says it was, what the history says;
    /// `lacking`: why the table map cannot stand in for the history.
    #[error(
        "rows of {table} at {at} were written when {column}: the table was altered again before the store \
         read its schema (the store was behind the source across two DDLs of the table), and {lacking}; set \
         binlog_row_metadata=FULL on the source (the store then decodes such rows as the binlog describes \
         them) and restart the task from a new full copy"
    )]
    SchemaMismatch { table: TableRef, at: BinlogFilePos, column: String, lacking: Box<str> },
}

struct Open {
    gtid: Option<String>,
    begin: Option<BinlogFilePos>,
    tables: Vec<TableVersion>,
    index: HashMap<(TableRef, u64), u32>,
    changes: Vec<RowChange>,
}

pub struct Assembler {
    objects: ObjectFilter,
    open: Option<Open>,
    /// GTID of a standalone statement announced by its GTID event (MySQL: of whatever comes
    /// next, a transaction's `BEGIN` or a DDL statement).
    standalone: Option<String>,
    /// Where MySQL's GTID event of the next transaction began (a transaction re-read from its
    /// beginning includes its GTID).
    mysql_gtid_at: Option<BinlogFilePos>,
    /// Position after the previous event: where an opening transaction begins.
    last_end: Option<BinlogFilePos>,
    /// The source's collations (table maps name them by id).
    collations: Collations,
    /// Per table, the schema its latest mismatching rows were written under: the recorded
    /// version's number, the table map, and what `written_schema` made of them.
    written: HashMap<TableRef, (u64, Vec<MappedColumn>, TableSchema)>,
}

fn timestamp(secs: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(i64::from(secs), 0).unwrap_or_default()
}

impl Assembler {
    /// An assembler for the task's `objects`.
    pub fn new(objects: ObjectFilter) -> Self {
        Self {
            objects,
            open: None,
            standalone: None,
            mysql_gtid_at: None,
            last_end: None,
            collations: Collations::new(),
            written: HashMap::new(),
        }
    }

    /// Names the source's collations, so character sets in table maps can be checked.
    pub fn with_collations(mut self, collations: Collations) -> Self {
        self.collations = collations;
        self
    }

    /// An assembler whose reader starts at `start` (the begin position of the first transaction).
    pub fn starting_at(objects: ObjectFilter, start: BinlogFilePos) -> Self {
        Self { last_end: Some(start), ..Self::new(objects) }
    }

    /// True while a transaction is open (its commit not seen yet).
    pub fn in_transaction(&self) -> bool {
        self.open.is_some()
    }

    /// Feeds one event; returns a message when one is complete.
    pub fn push(&mut self, ev: Positioned, history: &SchemaHistory) -> Result<Option<Output>, AssembleError> {
        let Positioned { event, end, timestamp: ts } = ev;
        let prev = self.last_end.replace(end.clone());
        match event {
            Event::Gtid { gtid, standalone: true } => self.standalone = Some(gtid.to_string()),
            Event::Gtid { gtid, standalone: false } => self.begin(Some(gtid.to_string()), prev),
            Event::MysqlGtid(gtid) => {
                self.standalone = Some(gtid.to_string());
                self.mysql_gtid_at = prev;
            }
            Event::MysqlAnonymousGtid => {
                self.standalone = None;
                self.mysql_gtid_at = prev;
            }
            Event::Query { sql, .. } if sql.eq_ignore_ascii_case("BEGIN") => {
                if self.open.is_none() {
                    let begin = self.mysql_gtid_at.take().or(prev);
                    let gtid = self.standalone.take();
                    self.begin(gtid, begin);
                }
            }
            Event::Query { sql, .. } if sql.eq_ignore_ascii_case("COMMIT") => return Ok(self.commit(ts, end)),
            Event::Query { database, sql } => {
                self.mysql_gtid_at = None;
                let ddl = DdlEvent {
                    gtid: self.standalone.take(),
                    committed_at: timestamp(ts),
                    database: (!database.is_empty()).then_some(database),
                    sql,
                    new_versions: Vec::new(),
                    tables: Vec::new(),
                };
                return Ok(Some(Output::Ddl { ddl, end }));
            }
            Event::Rows { table, op, rows, columns } => self.rows(table, op, rows, columns, &end, history)?,
            Event::Xid => return Ok(self.commit(ts, end)),
            Event::Heartbeat => return Ok(Some(Output::Heartbeat { end })),
            Event::GtidList(_) | Event::PreviousGtids(..) | Event::Other => {}
        }
        Ok(None)
    }

    /// `None` when the rows were written under the recorded schema; else the one they were
    /// written under (see `written_schema`), or why it cannot be known.
    fn written_schema(
        &mut self,
        table: &TableRef,
        number: u64,
        recorded: &TableSchema,
        columns: Vec<MappedColumn>,
        at: &BinlogFilePos,
    ) -> Result<Option<TableSchema>, AssembleError> {
        let mismatch = if columns.len() == recorded.columns.len() {
            columns.iter().zip(&recorded.columns).find_map(|(m, c)| m.mismatch(c, &self.collations))
        } else {
            Some(format!(
                "the table had {} columns, the schema recorded for that position has {}",
                columns.len(),
                recorded.columns.len()
            ))
        };
        let Some(column) = mismatch else { return Ok(None) };
        if let Some((n, cols, schema)) = self.written.get(table) {
            if *n == number && *cols == columns {
                return Ok(Some(schema.clone()));
            }
        }
        let schema = as_written(recorded, &columns, &self.collations).map_err(|lacking| {
            AssembleError::SchemaMismatch {
                table: table.clone(),
                at: at.clone(),
                column: column.clone(),
                lacking: lacking.into(),
            }
        })?;
        tracing::warn!(
            %table,
            %at,
            why = column,
            "rows written under a schema the store did not record (it was behind the source across two DDLs \
             of the table): decoding them as the binlog's table map describes them"
        );
        self.written.insert(table.clone(), (number, columns, schema.clone()));
        Ok(Some(schema))
    }

    fn begin(&mut self, gtid: Option<String>, begin: Option<BinlogFilePos>) {
        self.open =
            Some(Open { gtid, begin, tables: Vec::new(), index: HashMap::new(), changes: Vec::new() });
    }

    fn commit(&mut self, ts: u32, end: BinlogFilePos) -> Option<Output> {
        let open = self.open.take()?;
        let txn = Transaction {
            gtid: open.gtid,
            committed_at: timestamp(ts),
            part: 0,
            last_part: true,
            begin: open.begin,
            tables: open.tables,
            changes: open.changes,
        };
        Some(Output::Transaction { txn, end })
    }

    fn rows(
        &mut self,
        table: TableRef,
        op: ChangeOp,
        rows: Vec<(Option<RowImage>, Option<RowImage>)>,
        columns: Vec<MappedColumn>,
        at: &BinlogFilePos,
        history: &SchemaHistory,
    ) -> Result<(), AssembleError> {
        if self.open.is_none() {
            return Err(AssembleError::RowsOutsideTransaction { table, at: at.clone() });
        }
        if !self.objects.includes(&table) || rows.is_empty() {
            return Ok(());
        }
        let version = history.at(&table, at).filter(|v| v.schema.is_some());
        let (Some(version), Some(recorded)) = (version, version.and_then(|v| v.schema.as_ref())) else {
            return Err(AssembleError::NoSchema { table, at: at.clone() });
        };
        let named = !columns.is_empty() && columns.iter().all(|c| c.name.is_some());
        if columns.len() != recorded.columns.len() && !named {
            return Err(AssembleError::ColumnCount {
                table,
                at: at.clone(),
                got: columns.len(),
                expected: recorded.columns.len(),
            });
        }
        let written = self.written_schema(&table, version.number, recorded, columns, at)?;
        let schema = written.as_ref().unwrap_or(recorded);
        let Some(open) = self.open.as_mut() else {
            return Err(AssembleError::RowsOutsideTransaction { table, at: at.clone() });
        };
        let key = (table.clone(), version.number);
        let idx = match open.index.get(&key) {
            Some(i) => *i,
            None => {
                open.tables.push(table_version(schema, version.number));
                let i = (open.tables.len() - 1) as u32;
                open.index.insert(key, i);
                i
            }
        };
        for (before, after) in rows {
            let before = before.map(|img| image(schema, img, &table, at)).transpose()?;
            let after = after.map(|img| image(schema, img, &table, at)).transpose()?;
            open.changes.push(RowChange { table: idx, op, before, after });
        }
        Ok(())
    }
}

pub fn table_version(schema: &TableSchema, number: u64) -> TableVersion {
    TableVersion {
        table: schema.table.clone(),
        version: number,
        columns: schema
            .columns
            .iter()
            .map(|c| BatchColumn { name: c.name.clone(), column_type: c.column_type.clone() })
            .collect(),
        key: schema.key.clone(),
        unique_keys: schema.unique_keys.clone(),
        generated: schema.columns.iter().filter(|c| c.generated).map(|c| c.name.clone()).collect(),
    }
}

fn image(
    schema: &TableSchema,
    img: RowImage,
    table: &TableRef,
    at: &BinlogFilePos,
) -> Result<Vec<Json>, AssembleError> {
    if img.len() != schema.columns.len() {
        return Err(AssembleError::ColumnCount {
            table: table.clone(),
            at: at.clone(),
            got: img.len(),
            expected: schema.columns.len(),
        });
    }
    schema
        .columns
        .iter()
        .zip(img)
        .map(|(c, v)| {
            decode(c, v).map(|s| s.to_json()).map_err(|message| AssembleError::Value {
                table: table.clone(),
                at: at.clone(),
                message,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::columns::BinlogColumn;
    use ferry_schemas::position::MariaGtid;
    use ferry_schemas::table::{ColumnDef, KeyKind};
    use ferry_schemas::value::ColumnType;
    use mysql_async::binlog::value::BinlogValue;
    use mysql_async::Value;
    use serde_json::json;

    fn pos(offset: u64) -> BinlogFilePos {
        BinlogFilePos { file: "binlog.000001".into(), offset }
    }
    fn at(event: Event, offset: u64) -> Positioned {
        Positioned { event, end: pos(offset), timestamp: 1_700_000_000 }
    }
    fn schema(columns: &[(&str, ColumnType)]) -> TableSchema {
        TableSchema {
            table: TableRef::new("db", "t"),
            columns: columns
                .iter()
                .map(|(n, t)| ColumnDef {
                    name: (*n).into(),
                    sql_type: String::new(),
                    column_type: t.clone(),
                    nullable: true,
                    generated: false,
                })
                .collect(),
            key_kind: KeyKind::Primary,
            key: vec!["id".into()],
            unique_keys: vec![vec!["id".into()]],
        }
    }
    fn row(vals: &[Value]) -> RowImage {
        vals.iter().cloned().map(BinlogValue::Value).collect()
    }
    fn ints(widths: &[u8]) -> Vec<MappedColumn> {
        widths.iter().map(|w| BinlogColumn::Int(*w).into()).collect()
    }
    fn gtid(seq: u64) -> Event {
        Event::Gtid { gtid: MariaGtid { domain: 0, server: 1, seq }, standalone: false }
    }

    #[test]
    fn a_transaction_uses_the_schema_in_force_at_each_row() {
        let t = TableRef::new("db", "t");
        let mut h = SchemaHistory::default();
        let v1 = schema(&[
            ("id", ColumnType::Int { bytes: 4, unsigned: false }),
            ("m", ColumnType::Int { bytes: 3, unsigned: false }),
        ]);
        h.record(&t, pos(10), Some(v1)).unwrap();
        let mut a = Assembler::new(ObjectFilter { include: vec!["db".into()], exclude: vec![] });
        assert_eq!(a.push(at(gtid(7), 100), &h), Ok(None));
        let rows = vec![
            (None, Some(row(&[Value::Int(1), Value::Int(16_777_215)]))),
            (None, Some(row(&[Value::Int(2), Value::NULL]))),
        ];
        assert_eq!(
            a.push(
                at(Event::Rows { table: t.clone(), op: ChangeOp::Insert, rows, columns: ints(&[4, 3]) }, 200),
                &h
            ),
            Ok(None)
        );
        let upd =
            vec![(Some(row(&[Value::Int(1), Value::Int(1)])), Some(row(&[Value::Int(1), Value::Int(2)])))];
        assert_eq!(
            a.push(
                at(
                    Event::Rows { table: t.clone(), op: ChangeOp::Update, rows: upd, columns: ints(&[4, 3]) },
                    300
                ),
                &h
            ),
            Ok(None)
        );
        let out = a.push(at(Event::Xid, 400), &h).unwrap();
        let Some(Output::Transaction { txn, end }) = out else { panic!("no transaction: {out:?}") };
        assert_eq!(end, pos(400));
        assert_eq!(txn.gtid.as_deref(), Some("0-1-7"));
        assert_eq!(txn.tables.len(), 1);
        assert_eq!(txn.tables[0].version, 1);
        assert_eq!(txn.changes.len(), 3);
        assert_eq!(txn.changes[0].after, Some(vec![json!(1), json!(-1)]), "signed MEDIUMINT corrected");
        assert_eq!(txn.changes[1].after, Some(vec![json!(2), json!(null)]));
        assert_eq!(txn.changes[2].before, Some(vec![json!(1), json!(1)]));
    }

    #[test]
    fn rows_written_under_another_schema_stop_capture() {
        let t = TableRef::new("db", "t");
        let mut h = SchemaHistory::default();
        // The catalog was read after a second ALTER had widened `n` to BIGINT.
        let recorded = schema(&[
            ("id", ColumnType::Int { bytes: 4, unsigned: false }),
            ("n", ColumnType::Int { bytes: 8, unsigned: false }),
        ]);
        h.record(&t, pos(10), Some(recorded)).unwrap();
        let mut a = Assembler::new(ObjectFilter { include: vec!["db".into()], exclude: vec![] });
        a.push(at(gtid(7), 100), &h).unwrap();
        let rows = vec![(None, Some(row(&[Value::Int(1), Value::Int(-1)])))];
        let err = a.push(
            at(Event::Rows { table: t.clone(), op: ChangeOp::Insert, rows, columns: ints(&[4, 4]) }, 200),
            &h,
        );
        let Err(err @ AssembleError::SchemaMismatch { .. }) = err else { panic!("{err:?}") };
        let text = err.to_string();
        assert!(text.contains("column n") && text.contains("new full copy"), "{text}");
        // A column added since: the table map has fewer columns than the recorded schema.
        let rows = vec![(None, Some(row(&[Value::Int(1)])))];
        let err =
            a.push(at(Event::Rows { table: t, op: ChangeOp::Insert, rows, columns: ints(&[4]) }, 300), &h);
        assert!(matches!(err, Err(AssembleError::ColumnCount { got: 1, expected: 2, .. })), "{err:?}");
    }

    /// A table map with `binlog_row_metadata=FULL`: names and signedness of every column.
    fn full(columns: &[(&str, u8)]) -> Vec<MappedColumn> {
        columns
            .iter()
            .map(|(n, w)| MappedColumn {
                name: Some((*n).into()),
                unsigned: Some(false),
                ..BinlogColumn::Int(*w).into()
            })
            .collect()
    }

    #[test]
    fn rows_the_table_map_fully_describes_are_decoded_as_written() {
        let t = TableRef::new("db", "t");
        let mut h = SchemaHistory::default();
        let int = ColumnType::Int { bytes: 4, unsigned: false };
        h.record(&t, pos(10), Some(schema(&[("id", int.clone()), ("a", int.clone()), ("b", int)]))).unwrap();
        let values = [Value::Int(1), Value::Int(2), Value::Int(5_000_000_000)];
        let event = |columns| Event::Rows {
            table: t.clone(),
            op: ChangeOp::Insert,
            rows: vec![(None, Some(row(&values[..2])))],
            columns,
        };
        let mut a = Assembler::new(ObjectFilter { include: vec!["db".into()], exclude: vec![] });
        // Matching names (in any case) and no names at all (below FULL): the recorded schema.
        a.push(at(gtid(7), 100), &h).unwrap();
        let rows = vec![(None, Some(row(&[Value::Int(1), Value::Int(2), Value::Int(3)])))];
        let same = Event::Rows {
            table: t.clone(),
            op: ChangeOp::Insert,
            rows: rows.clone(),
            columns: full(&[("id", 4), ("A", 4), ("b", 4)]),
        };
        assert_eq!(a.push(at(same, 200), &h), Ok(None));
        let unnamed = Event::Rows { table: t.clone(), op: ChangeOp::Insert, rows, columns: ints(&[4, 4, 4]) };
        assert_eq!(a.push(at(unnamed, 250), &h), Ok(None));
        let Some(Output::Transaction { txn, .. }) = a.push(at(Event::Xid, 260), &h).unwrap() else {
            panic!()
        };
        assert_eq!(
            txn.tables[0].columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["id", "a", "b"]
        );
        // b was dropped and a widened to BIGINT between two DDLs the store did not see apart
        // (the recorded schema is the catalog after the second, which undid both).
        a.push(at(gtid(8), 300), &h).unwrap();
        a.push(at(event(full(&[("id", 4), ("a", 8)])), 400), &h).unwrap();
        let mut wide = event(full(&[("id", 4), ("a", 8)]));
        if let Event::Rows { rows, .. } = &mut wide {
            *rows = vec![(None, Some(row(&[Value::Int(3), values[2].clone()])))];
        }
        a.push(at(wide, 450), &h).unwrap();
        let Some(Output::Transaction { txn, .. }) = a.push(at(Event::Xid, 500), &h).unwrap() else {
            panic!()
        };
        let version = &txn.tables[0];
        assert_eq!(version.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["id", "a"]);
        assert_eq!(version.columns[1].column_type, ColumnType::Int { bytes: 8, unsigned: false });
        assert_eq!(version.key, ["id"]);
        assert_eq!(txn.changes[0].after, Some(vec![json!(1), json!(2)]));
        assert_eq!(txn.changes[1].after, Some(vec![json!(3), json!(5_000_000_000_i64)]));
        // Two same-typed columns swapped by renames: each value goes to the column it was written to.
        a.push(at(gtid(9), 600), &h).unwrap();
        let swapped = Event::Rows {
            table: t.clone(),
            op: ChangeOp::Insert,
            rows: vec![(None, Some(row(&[Value::Int(1), Value::Int(2), Value::Int(3)])))],
            columns: full(&[("id", 4), ("b", 4), ("a", 4)]),
        };
        a.push(at(swapped, 700), &h).unwrap();
        let Some(Output::Transaction { txn, .. }) = a.push(at(Event::Xid, 800), &h).unwrap() else {
            panic!()
        };
        assert_eq!(
            txn.tables[0].columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["id", "b", "a"]
        );
        // A new column the table map names without its signedness (and no recorded column of
        // that name to take it from) cannot be decoded: capture stops.
        a.push(at(gtid(10), 900), &h).unwrap();
        let mut partial = full(&[("id", 4), ("b", 4), ("c", 4)]);
        partial[2].unsigned = None;
        let rows = vec![(None, Some(row(&[Value::Int(1), Value::Int(2), Value::Int(3)])))];
        let err = a.push(
            at(Event::Rows { table: t.clone(), op: ChangeOp::Insert, rows, columns: partial }, 1000),
            &h,
        );
        let Err(err @ AssembleError::SchemaMismatch { .. }) = err else { panic!("{err:?}") };
        let text = err.to_string();
        assert!(
            text.contains("column b was at the place of a")
                && text.contains("column c its signedness")
                && text.contains("binlog_row_metadata=FULL"),
            "{text}"
        );
    }

    #[test]
    fn mysql_gtids_name_the_transaction_and_the_ddl_after_them() {
        use crate::binlog::mysql_gtid::MysqlGtid;
        let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let mysql = |gno| Event::MysqlGtid(MysqlGtid { uuid: uuid.into(), tag: None, gno });
        let h = SchemaHistory::default();
        let mut a =
            Assembler::starting_at(ObjectFilter { include: vec!["db".into()], exclude: vec![] }, pos(50));
        a.push(at(mysql(77), 100), &h).unwrap();
        a.push(at(Event::Query { database: "db".into(), sql: "BEGIN".into() }, 150), &h).unwrap();
        let out = a.push(at(Event::Xid, 400), &h).unwrap();
        let Some(Output::Transaction { txn, end }) = out else { panic!("no transaction: {out:?}") };
        // Re-read from its beginning, the transaction includes its GTID event.
        assert_eq!(
            (txn.gtid.as_deref(), txn.begin, end),
            (Some(&*format!("{uuid}:77")), Some(pos(50)), pos(400))
        );
        a.push(at(mysql(78), 450), &h).unwrap();
        let out = a
            .push(at(Event::Query { database: "db".into(), sql: "ALTER TABLE t ADD c INT".into() }, 500), &h)
            .unwrap();
        let Some(Output::Ddl { ddl, .. }) = out else { panic!("no DDL: {out:?}") };
        assert_eq!(ddl.gtid, Some(format!("{uuid}:78")));
        // gtid_mode off: no GTID, the transaction still begins at its announcement.
        a.push(at(Event::MysqlAnonymousGtid, 550), &h).unwrap();
        a.push(at(Event::Query { database: "db".into(), sql: "BEGIN".into() }, 600), &h).unwrap();
        let out = a.push(at(Event::Xid, 700), &h).unwrap();
        let Some(Output::Transaction { txn, .. }) = out else { panic!("no transaction: {out:?}") };
        assert_eq!((txn.gtid, txn.begin), (None, Some(pos(500))));
    }

    #[test]
    fn ddl_heartbeats_and_bad_input() {
        let t = TableRef::new("db", "t");
        let h = SchemaHistory::default();
        let mut a = Assembler::new(ObjectFilter { include: vec!["db".into()], exclude: vec![] });
        a.push(
            at(Event::Gtid { gtid: MariaGtid { domain: 0, server: 1, seq: 9 }, standalone: true }, 50),
            &h,
        )
        .unwrap();
        let out = a
            .push(at(Event::Query { database: "db".into(), sql: "ALTER TABLE t ADD c INT".into() }, 60), &h)
            .unwrap();
        let Some(Output::Ddl { ddl, end }) = out else { panic!("no DDL: {out:?}") };
        assert_eq!((ddl.gtid.as_deref(), ddl.database.as_deref(), end), (Some("0-1-9"), Some("db"), pos(60)));
        assert_eq!(a.push(at(Event::Heartbeat, 60), &h), Ok(Some(Output::Heartbeat { end: pos(60) })));
        let rows = vec![(None, Some(row(&[Value::Int(1)])))];
        let err = a.push(
            at(
                Event::Rows {
                    table: t.clone(),
                    op: ChangeOp::Insert,
                    rows: rows.clone(),
                    columns: ints(&[4]),
                },
                70,
            ),
            &h,
        );
        assert!(matches!(err, Err(AssembleError::RowsOutsideTransaction { .. })));
        a.push(at(gtid(10), 80), &h).unwrap();
        let err =
            a.push(at(Event::Rows { table: t, op: ChangeOp::Insert, rows, columns: ints(&[4]) }, 90), &h);
        assert!(matches!(err, Err(AssembleError::NoSchema { .. })), "{err:?}");
        let other = vec![(None, Some(row(&[Value::Int(1)])))];
        a.push(
            at(
                Event::Rows {
                    table: TableRef::new("elsewhere", "t"),
                    op: ChangeOp::Insert,
                    rows: other,
                    columns: ints(&[4]),
                },
                95,
            ),
            &h,
        )
        .unwrap();
        let out = a.push(at(Event::Xid, 99), &h).unwrap();
        assert!(
            matches!(out, Some(Output::Transaction { ref txn, .. }) if txn.changes.is_empty()),
            "{out:?}"
        );
    }
}
