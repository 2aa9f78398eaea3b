//! Transaction assembly: from binlog events to CDC messages.
//!
//! A transaction opens at MariaDB's GTID event (or a `BEGIN` query: MySQL announces the GTID
//! of the transaction or DDL after it in an event of its own), collects its row changes,
//! and closes at the XID event (or a `COMMIT` query for non-transactional engines); it is emitted
//! with the position after its closing event, which is where a restarted reader resumes. Each
//! row image is decoded with the table's schema version in force at the row event's position
//! (see `schema_history`), and the versions used travel in the message. A GTID flagged
//! standalone, or any other query outside a transaction, is a DDL statement: it is emitted on
//! its own, and the caller records the new schema versions. Heartbeats pass through. Rows of
//! tables outside the task's objects are skipped, but their transaction is still emitted (with
//! no changes) so the resume position advances. The
//! assembler keeps no state across restarts: a reader resumed at a transaction boundary starts
//! with nothing open.

use crate::binlog::columns::BinlogColumn;
use crate::binlog::decode::decode;
use crate::binlog::reader::{Event, Positioned, RowImage};
use crate::schema_history::SchemaHistory;
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
    /// `column`: the column, what the table map says it was, what the history says.
    #[error(
        "rows of {table} at {at} were written when {column}: the table was altered again before the store \
         read its schema (the store was behind the source across two DDLs of the table); restart the task \
         from a new full copy"
    )]
    SchemaMismatch { table: TableRef, at: BinlogFilePos, column: String },
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
}

fn timestamp(secs: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(i64::from(secs), 0).unwrap_or_default()
}

impl Assembler {
    /// An assembler for the task's `objects`.
    pub fn new(objects: ObjectFilter) -> Self {
        Self { objects, open: None, standalone: None, mysql_gtid_at: None, last_end: None }
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
            Event::Rows { table, op, rows, columns, names } => {
                self.rows(table, op, rows, (&columns, names.as_deref()), &end, history)?
            }
            Event::Xid => return Ok(self.commit(ts, end)),
            Event::Heartbeat => return Ok(Some(Output::Heartbeat { end })),
            Event::GtidList(_) | Event::PreviousGtids(..) | Event::Other => {}
        }
        Ok(None)
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
        (columns, names): (&[BinlogColumn], Option<&[String]>),
        at: &BinlogFilePos,
        history: &SchemaHistory,
    ) -> Result<(), AssembleError> {
        let Some(open) = self.open.as_mut() else {
            return Err(AssembleError::RowsOutsideTransaction { table, at: at.clone() });
        };
        if !self.objects.includes(&table) {
            return Ok(());
        }
        let version = history.at(&table, at).filter(|v| v.schema.is_some());
        let (Some(version), Some(schema)) = (version, version.and_then(|v| v.schema.as_ref())) else {
            return Err(AssembleError::NoSchema { table, at: at.clone() });
        };
        if columns.len() != schema.columns.len() && !rows.is_empty() {
            return Err(AssembleError::ColumnCount {
                table,
                at: at.clone(),
                got: columns.len(),
                expected: schema.columns.len(),
            });
        }
        if let Some((binlog, c)) = columns.iter().zip(&schema.columns).find(|(b, c)| !b.fits(&c.column_type))
        {
            return Err(AssembleError::SchemaMismatch {
                table,
                at: at.clone(),
                column: format!(
                    "column {} was {binlog:?}, but the schema recorded for that position says {:?}",
                    c.name, c.column_type
                ),
            });
        }
        let renamed =
            names.into_iter().flatten().zip(&schema.columns).find(|(n, c)| !n.eq_ignore_ascii_case(&c.name));
        if let Some((name, c)) = renamed {
            return Err(AssembleError::SchemaMismatch {
                table,
                at: at.clone(),
                column: format!(
                    "column {name} was at the place of {}, as the schema recorded for that position says",
                    c.name
                ),
            });
        }
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
    fn ints(widths: &[u8]) -> Vec<BinlogColumn> {
        widths.iter().map(|w| BinlogColumn::Int(*w)).collect()
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
                at(
                    Event::Rows {
                        table: t.clone(),
                        op: ChangeOp::Insert,
                        rows,
                        columns: ints(&[4, 3]),
                        names: None
                    },
                    200
                ),
                &h
            ),
            Ok(None)
        );
        let upd =
            vec![(Some(row(&[Value::Int(1), Value::Int(1)])), Some(row(&[Value::Int(1), Value::Int(2)])))];
        assert_eq!(
            a.push(
                at(
                    Event::Rows {
                        table: t.clone(),
                        op: ChangeOp::Update,
                        rows: upd,
                        columns: ints(&[4, 3]),
                        names: None
                    },
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
            at(
                Event::Rows {
                    table: t.clone(),
                    op: ChangeOp::Insert,
                    rows,
                    columns: ints(&[4, 4]),
                    names: None,
                },
                200,
            ),
            &h,
        );
        let Err(err @ AssembleError::SchemaMismatch { .. }) = err else { panic!("{err:?}") };
        let text = err.to_string();
        assert!(text.contains("column n") && text.contains("new full copy"), "{text}");
        // A column added since: the table map has fewer columns than the recorded schema.
        let rows = vec![(None, Some(row(&[Value::Int(1)])))];
        let err = a.push(
            at(Event::Rows { table: t, op: ChangeOp::Insert, rows, columns: ints(&[4]), names: None }, 300),
            &h,
        );
        assert!(matches!(err, Err(AssembleError::ColumnCount { got: 1, expected: 2, .. })), "{err:?}");
    }

    #[test]
    fn column_names_in_the_table_map_must_match_the_recorded_schema() {
        let t = TableRef::new("db", "t");
        let mut h = SchemaHistory::default();
        let int = ColumnType::Int { bytes: 4, unsigned: false };
        h.record(&t, pos(10), Some(schema(&[("id", int.clone()), ("a", int.clone()), ("b", int)]))).unwrap();
        let rows = || vec![(None, Some(row(&[Value::Int(1), Value::Int(2), Value::Int(3)])))];
        let event = |names: Option<&[&str]>| Event::Rows {
            table: t.clone(),
            op: ChangeOp::Insert,
            rows: rows(),
            columns: ints(&[4, 4, 4]),
            names: names.map(|n| n.iter().map(|s| (*s).to_owned()).collect()),
        };
        let mut a = Assembler::new(ObjectFilter { include: vec!["db".into()], exclude: vec![] });
        a.push(at(gtid(7), 100), &h).unwrap();
        // Without names (binlog_row_metadata below FULL) and with matching ones (any case).
        assert_eq!(a.push(at(event(None), 200), &h), Ok(None));
        assert_eq!(a.push(at(event(Some(&["id", "A", "b"])), 300), &h), Ok(None));
        // Two same-typed columns swapped between two renames the store did not see apart.
        let err = a.push(at(event(Some(&["id", "b", "a"])), 400), &h);
        let Err(err @ AssembleError::SchemaMismatch { .. }) = err else { panic!("{err:?}") };
        assert!(err.to_string().contains("column b was at the place of a"), "{err}");
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
                    names: None,
                },
                70,
            ),
            &h,
        );
        assert!(matches!(err, Err(AssembleError::RowsOutsideTransaction { .. })));
        a.push(at(gtid(10), 80), &h).unwrap();
        let err = a.push(
            at(Event::Rows { table: t, op: ChangeOp::Insert, rows, columns: ints(&[4]), names: None }, 90),
            &h,
        );
        assert!(matches!(err, Err(AssembleError::NoSchema { .. })), "{err:?}");
        let other = vec![(None, Some(row(&[Value::Int(1)])))];
        a.push(
            at(
                Event::Rows {
                    table: TableRef::new("elsewhere", "t"),
                    op: ChangeOp::Insert,
                    rows: other,
                    columns: ints(&[4]),
                    names: None,
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
