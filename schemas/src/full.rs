//! Messages on a task's FULL stream: structure first, then row chunks, then views.
//!
//! Per source table the subject carries its `CreateTable` before any of its `Rows`. A chunk is
//! one message: the rows of one key range `(low, high]`, read in key order. Its id (chunk index
//! and, for keyless tables, the copy attempt) is deterministic, so the same range republished
//! after a crash is de-duplicated by JetStream and by the sink's checkpoint.

use crate::table::{TableRef, TableSchema};
use crate::value::ColumnType;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FullEvent {
    CreateTable(CreateTable),
    Rows(RowBatch),
    /// The last message of a table: every chunk of `attempt` (`chunks` of them) was published.
    TableDone(TableDone),
    CreateView(CreateView),
}

/// What to do when the target table already exists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExistingTablePolicy {
    /// Refuse (precheck fails; the sink pauses the task).
    #[default]
    Fail,
    /// Keep the existing table and copy rows into it.
    Skip,
    /// Drop it and create it anew.
    Drop,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateTable {
    pub source: TableRef,
    pub target: TableRef,
    pub schema: TableSchema,
    /// `CREATE TABLE` for the target, names already mapped, without `deferred_indexes`.
    pub ddl: String,
    /// Secondary (non-unique) index definitions, e.g. ``KEY `k_1` (`k`)``, built in one
    /// `ALTER TABLE` after the rows are loaded (a sorted build instead of row-by-row upkeep).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deferred_indexes: Vec<String>,
    pub existing: ExistingTablePolicy,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TableDone {
    pub source: TableRef,
    pub target: TableRef,
    #[serde(default)]
    pub keyless: bool,
    pub attempt: u32,
    pub chunks: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateView {
    pub source: TableRef,
    pub target: TableRef,
    /// `CREATE VIEW` for the target, names mapped, DEFINER removed.
    pub ddl: String,
    pub existing: ExistingTablePolicy,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BatchColumn {
    pub name: String,
    pub column_type: ColumnType,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RowBatch {
    pub source: TableRef,
    pub target: TableRef,
    /// 0-based chunk index within the table (and the attempt, for keyless tables).
    pub chunk: u64,
    /// Copy attempt: always 0 for keyed tables; a keyless table restarts its copy with a new
    /// attempt, and the sink empties the table before applying chunk 0 of a newer attempt.
    #[serde(default)]
    pub attempt: u32,
    /// True for a table without a usable key (rows are appended, not upserted).
    #[serde(default)]
    pub keyless: bool,
    /// Exclusive lower and inclusive upper key bound of the chunk (key column order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_key: Option<Vec<Json>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_key: Option<Vec<Json>>,
    pub columns: Vec<BatchColumn>,
    pub rows: Vec<Vec<Json>>,
}
