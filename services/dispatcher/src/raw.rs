//! CDC events as the dispatcher handles them: a transaction's row images stay the JSON text
//! the store wrote, from the CDC message into the APPLY message.
//!
//! The dispatcher reads only a row's key columns (for causality) and never changes a value, so
//! decoding every value into a JSON tree and encoding it again was work for nothing (string
//! parsing and escaping led the dispatcher's own symbols in bench/cdc's catch-up profile). A
//! transaction is read into [`RawTransaction`], whose values borrow the message's bytes, and
//! written back with them verbatim. Measured on a 2 KB sysbench transaction (release, in
//! process): 14.3 us -> 10.7 us to read and write one message; bench/cdc catch-up, same hour,
//! dispatcher binaries swapped: 6.0 s -> 5.5 s of dispatcher CPU for 125,000 messages (the
//! rest is per-message work in the NATS client and runtime, ~33 us a message).
//!
//! [`ApplyOut`] is written exactly as `ferry_schemas::cdc::ApplyEvent` would be (a test
//! compares the bytes), so the sink reads it unchanged. DDL and heartbeats, and any object
//! whose tag is not its first field, take the typed path ([`Event::Typed`]).

use chrono::{DateTime, Utc};
use ferry_schemas::cdc::{After, CdcEvent, ChangeOp, DdlEvent, Heartbeat, TableVersion};
use ferry_schemas::position::BinlogFilePos;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use std::fmt;

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

/// `ferry_schemas::cdc::Transaction` with [`RawChange`]s (same fields, same order).
#[derive(Debug, Deserialize, Serialize)]
pub struct RawTransaction<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
    pub committed_at: DateTime<Utc>,
    #[serde(default)]
    pub part: u32,
    pub last_part: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub begin: Option<BinlogFilePos>,
    pub tables: Vec<TableVersion>,
    #[serde(borrow)]
    pub changes: Vec<RawChange<'a>>,
}

impl RawTransaction<'_> {
    pub fn is_split(&self) -> bool {
        self.part > 0 || !self.last_part
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

/// `ferry_schemas::cdc::ApplyEvent` around an [`Event`] (same fields, same order).
#[derive(Serialize)]
pub struct ApplyOut<'e, 'a> {
    pub cdc_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    pub prev_partition_seq: u64,
    pub prev_barrier_seq: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub partition_last: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<After>,
    pub event: &'e Event<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_schemas::cdc::{ApplyEvent, RowChange, Transaction};
    use ferry_schemas::envelope::Envelope;
    use ferry_schemas::full::BatchColumn;
    use ferry_schemas::table::TableRef;
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

    /// What the dispatcher publishes for `event`, and what it would publish through the typed
    /// `ApplyEvent`.
    fn both_ways(event: CdcEvent) -> (String, String) {
        let env = Envelope::new("t", "t:cdc:1".into(), None, event);
        let text = serde_json::to_vec(&env).unwrap();
        let read: Envelope<Event> = serde_json::from_slice(&text).unwrap();
        let after = vec![After { partition: 2, seq: 9 }];
        let out = ApplyOut {
            cdc_seq: 5,
            partition: Some(1),
            prev_partition_seq: 3,
            prev_barrier_seq: 0,
            partition_last: vec![],
            after: after.clone(),
            event: &read.body,
        };
        let typed = ApplyEvent {
            cdc_seq: 5,
            partition: Some(1),
            prev_partition_seq: 3,
            prev_barrier_seq: 0,
            partition_last: vec![],
            after,
            event: env.body,
        };
        (serde_json::to_string(&out).unwrap(), serde_json::to_string(&typed).unwrap())
    }

    #[test]
    fn an_apply_message_is_written_byte_for_byte_as_the_typed_one() {
        let (raw, typed) = both_ways(transaction());
        assert_eq!(raw, typed);
        let back: ApplyEvent = serde_json::from_str(&raw).unwrap();
        assert_eq!(back.event, transaction_with_time(&back.event));
        let ddl = CdcEvent::Ddl(DdlEvent {
            gtid: None,
            committed_at: Utc::now(),
            database: Some("d".into()),
            sql: "ALTER TABLE t ADD c INT".into(),
            new_versions: vec![],
            tables: vec![TableRef::new("d", "t")],
        });
        let (raw, typed) = both_ways(ddl);
        assert_eq!(raw, typed);
        let (raw, typed) = both_ways(CdcEvent::Heartbeat(Heartbeat { source_time: Utc::now() }));
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
