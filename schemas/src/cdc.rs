//! Messages on a task's CDC stream (`ferry.<task>.cdc`), written by the store.
//!
//! One source transaction is one message (split into numbered parts when it exceeds the
//! message size; every part but the last has `last_part: false`). The envelope's `position` is
//! the position *after* the transaction's commit event: resuming there re-reads nothing of it,
//! and its `Nats-Msg-Id` is derived from that position and the part number, so a restarted
//! store that re-reads a transaction publishes duplicates that JetStream drops. Row images
//! refer to the table schema versions listed in the message, so a consumer can decode them
//! without any other state.

use crate::full::BatchColumn;
use crate::position::{BinlogFilePos, SourcePosition};
use crate::table::{TableRef, TableSchema};
use crate::tagged::{self, TagFirst};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value as Json;

#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CdcEvent {
    Transaction(Transaction),
    Ddl(DdlEvent),
    /// Published at least once a second while the source is idle, so delay stays measurable.
    Heartbeat(Heartbeat),
}

impl TagFirst for CdcEvent {
    const TAG: &'static str = "type";
    const VARIANTS: &'static [&'static str] = &["transaction", "ddl", "heartbeat"];

    fn variant<'de, D: Deserializer<'de>>(tag: &str, fields: D) -> Result<Self, D::Error> {
        match tag {
            "transaction" => Transaction::deserialize(fields).map(Self::Transaction),
            "ddl" => DdlEvent::deserialize(fields).map(Self::Ddl),
            "heartbeat" => Heartbeat::deserialize(fields).map(Self::Heartbeat),
            _ => Err(serde::de::Error::unknown_variant(tag, Self::VARIANTS)),
        }
    }
}

impl<'de> Deserialize<'de> for CdcEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        tagged::deserialize(d)
    }
}

/// A table's columns at one schema version (its DDL position in the binlog).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TableVersion {
    pub table: TableRef,
    pub version: u64,
    pub columns: Vec<BatchColumn>,
    /// Columns of the key rows are identified by (primary key, else a NOT NULL unique key).
    pub key: Vec<String>,
    /// Every unique key, for causality between transactions.
    #[serde(default)]
    pub unique_keys: Vec<Vec<String>>,
    /// Generated columns: in the row images, never written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generated: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    Insert,
    Update,
    Delete,
}

/// One row change: `before` for updates and deletes, `after` for inserts and updates, each a
/// full row image in the column order of `tables[table]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RowChange {
    /// Index into the message's `tables`.
    pub table: u32,
    pub op: ChangeOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Vec<Json>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<Json>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Transaction {
    /// The source's GTID of the transaction, when it has one (`0-1-1403`, `uuid:17`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
    /// Commit time on the source (binlog event timestamp, second precision).
    pub committed_at: DateTime<Utc>,
    /// 0-based part number; a transaction larger than one message has several.
    #[serde(default)]
    pub part: u32,
    pub last_part: bool,
    /// Where the transaction starts in the binlog: a store that stopped between the parts of a
    /// split transaction re-reads it from here and publishes only the parts still missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub begin: Option<BinlogFilePos>,
    pub tables: Vec<TableVersion>,
    pub changes: Vec<RowChange>,
}

impl Transaction {
    /// Whether this message is one part of a source transaction split over several.
    pub fn is_split(&self) -> bool {
        self.part > 0 || !self.last_part
    }
}

/// A statement that changes structure (or TRUNCATE), applied as a barrier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DdlEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
    pub committed_at: DateTime<Utc>,
    /// Default database of the session that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    pub sql: String,
    /// Tables whose schema changed, at their new versions (empty for dropped tables).
    #[serde(default)]
    pub new_versions: Vec<TableVersion>,
    /// Tables the statement touched (dropped and renamed ones included).
    #[serde(default)]
    pub tables: Vec<TableRef>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Heartbeat {
    /// The source's clock at the heartbeat (from the binlog's heartbeat or the store's read).
    pub source_time: DateTime<Utc>,
}

/// One entry of a task's schema history stream: the schema a table has from `from` on
/// (`None`: dropped there). The store replays the stream on start, so rows read again after a
/// restart decode with the columns they were written under.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SchemaRecord {
    pub table: TableRef,
    pub from: BinlogFilePos,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<TableSchema>,
}

/// "Apply after message `seq` of `partition`".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct After {
    pub partition: u32,
    pub seq: u64,
}

/// A message on a task's APPLY stream, made by the dispatcher from CDC messages in CDC order.
///
/// The dispatcher resumes without a checkpoint of its own: the last APPLY message names the
/// last CDC message it carries ([`ApplyEvent::cdc_last`]), and every publish names the APPLY
/// sequence it expects to follow, so nothing is skipped or written twice. The `prev_*` fields
/// chain each message to the ones it must follow, so the sink applies in causal order whatever
/// order JetStream delivers in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApplyEvent {
    /// Sequence of the CDC message in its stream.
    pub cdc_seq: u64,
    /// Partition whose lane applies it; `None`: a barrier that runs alone after every
    /// partition drained (DDL, or a transaction whose keys span partitions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// APPLY sequence of the previous message of the same partition (0: none since the
    /// dispatcher started): this one applies only after it. JetStream may redeliver a message
    /// after later ones (a crash, a lost delivery), so the sink checks order itself.
    #[serde(default)]
    pub prev_partition_seq: u64,
    /// APPLY sequence of the last barrier before this message (0: none since the dispatcher
    /// started): this one applies only after it.
    #[serde(default)]
    pub prev_barrier_seq: u64,
    /// For a barrier: the last APPLY sequence of each partition before it (index = partition);
    /// the barrier applies only after all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_last: Vec<u64>,
    /// Messages of other partitions this one must follow (its keys were in flight there).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<After>,
    /// The CDC event with the task's filters applied and every name mapped to the target.
    pub event: CdcEvent,
    /// Whole transactions of the same partition that follow `event` (a whole transaction) in
    /// CDC order and travel in the same message: the dispatcher packs the transactions it
    /// reads back to back while they route to one partition and wait for nothing more than the
    /// first (no joins), which cuts the per-message cost of NATS, dispatcher and sink during a
    /// catch-up. The envelope's position is `event`'s; each of these carries its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub then: Vec<ThenTransaction>,
}

impl ApplyEvent {
    /// Sequence of the last CDC message this one carries.
    pub fn cdc_last(&self) -> u64 {
        self.then.last().map_or(self.cdc_seq, |t| t.cdc_seq)
    }
}

/// A transaction carried after the first in an APPLY message (see [`ApplyEvent::then`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ThenTransaction {
    /// Sequence of its CDC message.
    pub cdc_seq: u64,
    /// Its source position (its CDC message's envelope position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<SourcePosition>,
    pub transaction: Transaction,
}
