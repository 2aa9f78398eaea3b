//! CDC events as the dispatcher handles them: a transaction's row images stay the JSON text
//! the store wrote, from the CDC message into the APPLY message.
//!
//! The dispatcher reads only a row's key columns (for causality) and never changes a value, so
//! decoding every value into a JSON tree and encoding it again was work for nothing (string
//! parsing and escaping led the dispatcher's own symbols in bench/cdc's catch-up profile). A
//! transaction is read into [`RawTransaction`], whose values borrow the message's bytes, and
//! written back with them verbatim. Its `tables` (names, column types: as costly to read as
//! the rows) are read once per distinct text and kept, mapped to the target, with their
//! written form ([`TableMap`]). Measured on a 2 KB sysbench transaction (release, in process,
//! reading it, hashing its keys and writing the APPLY message): 16 us typed, 11.5 us with raw
//! values, 7.3 us with the table map too, 5.7-6.8 us written into a buffer sized from the CDC
//! message (instead of one grown from empty). bench/cdc catch-up, same hour, dispatcher binaries
//! swapped (raw values only): 6.0 s -> 5.5 s of dispatcher CPU for 125,000 messages; the
//! rest is per-message work in the NATS client and runtime (~33 us a message).
//!
//! [`ApplyOut`] is written exactly as `ferry_schemas::cdc::ApplyEvent` would be (a test
//! compares the bytes), so the sink reads it unchanged. DDL and heartbeats, and any object
//! whose tag is not its first field, take the typed path ([`Event::Typed`]).

use chrono::{DateTime, Utc};
use ferry_schemas::cdc::{After, CdcEvent, ChangeOp, DdlEvent, Heartbeat, TableVersion};
use ferry_schemas::position::{BinlogFilePos, SourcePosition};
use ferry_schemas::table::TableRef;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// `ferry_schemas::cdc::RowChange` with its images as the JSON text of each value.
#[derive(Debug, Deserialize, Serialize)]
pub struct RawChange<'a> {
    pub table: u32,
    pub op: ChangeOp,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<&'a RawValue>>,
}

/// `ferry_schemas::cdc::Transaction` with [`RawChange`]s and its `tables` as text until
/// [`TableMap::map`] has read them (written with the same fields in the same order).
#[derive(Debug, Deserialize)]
pub struct RawTransaction<'a> {
    #[serde(default)]
    pub gtid: Option<String>,
    pub committed_at: DateTime<Utc>,
    #[serde(default)]
    pub part: u32,
    pub last_part: bool,
    #[serde(default)]
    pub begin: Option<BinlogFilePos>,
    #[serde(borrow)]
    pub tables: &'a RawValue,
    #[serde(borrow)]
    pub changes: Vec<RawChange<'a>>,
    /// The tables read and mapped to the target (see [`TableMap`]).
    #[serde(skip)]
    pub mapped: Option<Arc<Tables>>,
}

impl RawTransaction<'_> {
    pub fn is_split(&self) -> bool {
        self.part > 0 || !self.last_part
    }

    /// The table versions, once [`TableMap::map`] has read them.
    pub fn table_versions(&self) -> &[TableVersion] {
        self.mapped.as_ref().map_or(&[], |t| &t.versions)
    }
}

impl Serialize for RawTransaction<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Transaction", 7)?;
        match &self.gtid {
            Some(g) => st.serialize_field("gtid", g)?,
            None => st.skip_field("gtid")?,
        }
        st.serialize_field("committed_at", &self.committed_at)?;
        st.serialize_field("part", &self.part)?;
        st.serialize_field("last_part", &self.last_part)?;
        match &self.begin {
            Some(b) => st.serialize_field("begin", b)?,
            None => st.skip_field("begin")?,
        }
        match &self.mapped {
            Some(t) => st.serialize_field("tables", &t.text)?,
            None => st.serialize_field("tables", self.tables)?,
        }
        st.serialize_field("changes", &self.changes)?;
        st.end()
    }
}

/// A transaction's tables as read, mapped to the target, and written back.
#[derive(Debug)]
pub struct Tables {
    pub versions: Vec<TableVersion>,
    pub text: Box<RawValue>,
}

/// Tables read once per distinct text. Consecutive transactions nearly always list the same
/// few table versions, and reading them (names, column types) was the largest part of
/// reading a transaction (15% of the dispatcher's CPU on bench/cdc's catch-up).
#[derive(Default)]
pub struct TableMap {
    seen: HashMap<Box<str>, Arc<Tables>>,
}

/// Distinct table lists kept at most (a workload over more tables reads them again).
const TABLE_MAP_LIMIT: usize = 4096;

impl TableMap {
    /// Reads `txn`'s tables (or takes them from an earlier transaction listing the same ones)
    /// with `target_of` applied to every name.
    pub fn map(
        &mut self,
        txn: &mut RawTransaction,
        target_of: impl Fn(&TableRef) -> TableRef,
    ) -> Result<(), serde_json::Error> {
        let text = txn.tables.get();
        if let Some(t) = self.seen.get(text) {
            txn.mapped = Some(t.clone());
            return Ok(());
        }
        let mut versions: Vec<TableVersion> = serde_json::from_str(text)?;
        for tv in &mut versions {
            tv.table = target_of(&tv.table);
        }
        let text_out = serde_json::value::to_raw_value(&versions)?;
        let t = Arc::new(Tables { versions, text: text_out });
        if self.seen.len() >= TABLE_MAP_LIMIT {
            self.seen.clear();
        }
        self.seen.insert(text.into(), t.clone());
        txn.mapped = Some(t);
        Ok(())
    }
}

/// A CDC event on its way to the APPLY stream.
#[derive(Debug)]
pub enum Event<'a> {
    Transaction(RawTransaction<'a>),
    Typed(CdcEvent),
}

impl<'de: 'a, 'a> Deserialize<'de> for Event<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EventVisitor(std::marker::PhantomData))
    }
}

struct EventVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for EventVisitor<'a> {
    type Value = Event<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a CDC event (an object with a `type` field)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event<'a>, A::Error> {
        let first = map.next_key::<std::borrow::Cow<'de, str>>()?;
        if first.as_deref() == Some("type") {
            let tag = map.next_value::<std::borrow::Cow<'de, str>>()?;
            let rest = de::value::MapAccessDeserializer::new(map);
            return match tag.as_ref() {
                "transaction" => RawTransaction::deserialize(rest).map(Event::Transaction),
                "ddl" => DdlEvent::deserialize(rest).map(|d| Event::Typed(CdcEvent::Ddl(d))),
                "heartbeat" => Heartbeat::deserialize(rest).map(|h| Event::Typed(CdcEvent::Heartbeat(h))),
                other => Err(de::Error::unknown_variant(other, &["transaction", "ddl", "heartbeat"])),
            };
        }
        // The tag is not first (not written by serde): read the whole object the typed way.
        let mut fields = serde_json::Map::new();
        if let Some(key) = first {
            fields.insert(key.into_owned(), map.next_value::<serde_json::Value>()?);
        }
        while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
            fields.insert(key, value);
        }
        serde_json::from_value(serde_json::Value::Object(fields)).map(Event::Typed).map_err(de::Error::custom)
    }
}

impl Serialize for Event<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        /// Written as `CdcEvent::Transaction` is: the tag, then the transaction's fields.
        #[derive(Serialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        enum Tagged<'b, 'a> {
            Transaction(&'b RawTransaction<'a>),
        }
        match self {
            Event::Transaction(t) => Tagged::Transaction(t).serialize(s),
            Event::Typed(e) => e.serialize(s),
        }
    }
}

/// `ferry_schemas::cdc::ApplyEvent` around an event: an [`Event`], or one already written
/// (same fields, same order). `then` holds written [`ThenOut`]s.
#[derive(Serialize)]
pub struct ApplyOut<'e, E: ?Sized + Serialize> {
    pub cdc_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    pub prev_partition_seq: u64,
    pub prev_barrier_seq: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub partition_last: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<After>,
    pub event: &'e E,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub then: &'e [Box<RawValue>],
}

/// `ferry_schemas::cdc::ThenTransaction` around an [`Event`] that is a transaction.
#[derive(Serialize)]
pub struct ThenOut<'e, 'a> {
    pub cdc_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<&'e SourcePosition>,
    pub transaction: Untagged<'e, 'a>,
}

/// A transaction event written without its `type` tag (as `ferry_schemas::cdc::Transaction`).
pub struct Untagged<'e, 'a>(pub &'e Event<'a>);

impl Serialize for Untagged<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Event::Transaction(t) => t.serialize(s),
            Event::Typed(CdcEvent::Transaction(t)) => t.serialize(s),
            Event::Typed(_) => Err(serde::ser::Error::custom("only transactions travel after the first")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_schemas::cdc::{ApplyEvent, RowChange, ThenTransaction, Transaction};
    use ferry_schemas::envelope::Envelope;
    use ferry_schemas::full::BatchColumn;
    use ferry_schemas::value::ColumnType;
    use serde_json::json;

    fn transaction() -> CdcEvent {
        CdcEvent::Transaction(Transaction {
            gtid: Some("0-1-7".into()),
            committed_at: Utc::now(),
            part: 0,
            last_part: true,
            begin: Some(BinlogFilePos { file: "binlog.000001".into(), offset: 4 }),
            tables: vec![TableVersion {
                table: TableRef::new("d", "t"),
                version: 3,
                columns: vec![
                    BatchColumn {
                        name: "id".into(),
                        column_type: ColumnType::Int { bytes: 8, unsigned: true },
                    },
                    BatchColumn {
                        name: "s".into(),
                        column_type: ColumnType::Text { charset: "utf8mb4".into() },
                    },
                ],
                key: vec!["id".into()],
                unique_keys: vec![vec!["id".into()]],
                generated: vec![],
            }],
            changes: vec![
                RowChange {
                    table: 0,
                    op: ChangeOp::Insert,
                    before: None,
                    after: Some(vec![json!(u64::MAX), json!("a\"\\é\n")]),
                },
                RowChange {
                    table: 0,
                    op: ChangeOp::Update,
                    before: Some(vec![json!(1), json!(null)]),
                    after: Some(vec![json!(1), json!("x")]),
                },
                RowChange {
                    table: 0,
                    op: ChangeOp::Delete,
                    before: Some(vec![json!(2), json!("")]),
                    after: None,
                },
            ],
        })
    }

    /// Every table of database `d` moved to `d2`.
    fn moved(t: &TableRef) -> TableRef {
        if t.database == "d" {
            TableRef::new("d2", &t.table)
        } else {
            t.clone()
        }
    }

    /// What the dispatcher publishes for `event` (with its tables mapped by `map`, when it
    /// has one: [`moved`]), and what it would publish through the typed `ApplyEvent`.
    fn both_ways(event: CdcEvent, map: Option<&mut TableMap>) -> (String, String) {
        let mut env = Envelope::new("t", "t:cdc:1".into(), None, event);
        let text = serde_json::to_vec(&env).unwrap();
        let mut read: Envelope<Event> = serde_json::from_slice(&text).unwrap();
        if let (Some(map), Event::Transaction(t), CdcEvent::Transaction(typed)) =
            (map, &mut read.body, &mut env.body)
        {
            map.map(t, moved).unwrap();
            for tv in &mut typed.tables {
                tv.table = moved(&tv.table);
            }
        }
        let after = vec![After { partition: 2, seq: 9 }];
        // A transaction travels once more after itself, as a packed message would carry it.
        let position = SourcePosition {
            binlog: BinlogFilePos { file: "binlog.000001".into(), offset: 900 },
            gtid: None,
            server_id: Some(1),
        };
        let (then_out, then_typed) = match &env.body {
            CdcEvent::Transaction(t) => (
                vec![serde_json::value::to_raw_value(&ThenOut {
                    cdc_seq: 6,
                    position: Some(&position),
                    transaction: Untagged(&read.body),
                })
                .unwrap()],
                vec![ThenTransaction {
                    cdc_seq: 6,
                    position: Some(position.clone()),
                    transaction: t.clone(),
                }],
            ),
            _ => (vec![], vec![]),
        };
        let out = ApplyOut {
            cdc_seq: 5,
            partition: Some(1),
            prev_partition_seq: 3,
            prev_barrier_seq: 0,
            partition_last: vec![],
            after: after.clone(),
            event: &read.body,
            then: &then_out,
        };
        let typed = ApplyEvent {
            cdc_seq: 5,
            partition: Some(1),
            prev_partition_seq: 3,
            prev_barrier_seq: 0,
            partition_last: vec![],
            after,
            event: env.body,
            then: then_typed,
        };
        (serde_json::to_string(&out).unwrap(), serde_json::to_string(&typed).unwrap())
    }

    #[test]
    fn an_apply_message_is_written_byte_for_byte_as_the_typed_one() {
        let (raw, typed) = both_ways(transaction(), None);
        assert_eq!(raw, typed);
        // Tables mapped to the target, read afresh and then from the map.
        let mut map = TableMap::default();
        for _ in 0..2 {
            let (raw, typed) = both_ways(transaction(), Some(&mut map));
            assert!(raw.contains(r#""database":"d2""#), "{raw}");
            assert_eq!(raw, typed);
        }
        assert_eq!(map.seen.len(), 1);
        let back: ApplyEvent = serde_json::from_str(&raw).unwrap();
        assert_eq!(back.event, transaction_with_time(&back.event));
        assert_eq!((back.then.len(), back.cdc_last()), (1, 6));
        let ddl = CdcEvent::Ddl(DdlEvent {
            gtid: None,
            committed_at: Utc::now(),
            database: Some("d".into()),
            sql: "ALTER TABLE t ADD c INT".into(),
            new_versions: vec![],
            tables: vec![TableRef::new("d", "t")],
        });
        let (raw, typed) = both_ways(ddl, None);
        assert_eq!(raw, typed);
        let (raw, typed) = both_ways(CdcEvent::Heartbeat(Heartbeat { source_time: Utc::now() }), None);
        assert_eq!(raw, typed);
    }

    /// The test transaction with the commit time of `like` (it is taken from the clock).
    fn transaction_with_time(like: &CdcEvent) -> CdcEvent {
        let mut t = transaction();
        if let (CdcEvent::Transaction(t), CdcEvent::Transaction(l)) = (&mut t, like) {
            t.committed_at = l.committed_at;
        }
        t
    }

    #[test]
    fn an_event_whose_tag_comes_last_is_read_the_typed_way() {
        let text = r#"{"source_time":"2026-11-21T06:00:00Z","type":"heartbeat"}"#;
        let e: Event = serde_json::from_str(text).unwrap();
        assert!(matches!(e, Event::Typed(CdcEvent::Heartbeat(_))), "{e:?}");
        let bad = serde_json::from_str::<Event>(r#"{"type":"nonsense"}"#).unwrap_err();
        assert!(bad.to_string().contains("nonsense"), "{bad}");
    }
}
