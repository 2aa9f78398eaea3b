//! Verification results: what the checker found in one table, the events on the CHECK stream,
//! the checker's status record, and the report the API serves.
//!
//! Counts are exact; the row differences a table result carries are capped (`truncated` says so)
//! so that one result stays one message. Values use the wire encoding of [`crate::value`], with
//! the table's column types alongside, so a report alone is enough to write correction SQL
//! ([`crate::correction`]).

use crate::control::CheckWork;
use crate::full::BatchColumn;
use crate::position::SourcePosition;
use crate::status::ErrorReport;
use crate::table::TableRef;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// On the source, not on the target.
    Missing,
    /// On the target, not on the source.
    Extra,
    /// On both, with different values in `columns`.
    Changed,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ColumnDiff {
    pub column: String,
    pub source: Json,
    pub target: Json,
}

/// One row that differs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RowDiff {
    pub kind: DiffKind,
    /// Key values in key order (for a keyless table: the whole row).
    pub key: Vec<Json>,
    /// The source row (every compared column) for missing and changed rows: what a correction
    /// writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_row: Option<Vec<Json>>,
    /// The target row of an extra row of a keyless table (what a correction deletes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_row: Option<Vec<Json>>,
    /// The columns that differ (changed rows).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnDiff>,
}

/// The verification result of one table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TableCheck {
    pub source: TableRef,
    pub target: TableRef,
    /// Compared columns (stored columns of the source, in table order) and their types.
    pub columns: Vec<BatchColumn>,
    /// Key columns (empty for a keyless table).
    pub key: Vec<String>,
    /// Rows on the source / target when they were checksummed.
    pub source_rows: u64,
    pub target_rows: u64,
    pub chunks: u64,
    /// Chunks whose checksums differed (before live re-checks).
    pub chunks_differing: u64,
    pub missing: u64,
    pub extra: u64,
    pub changed: u64,
    pub diffs: Vec<RowDiff>,
    /// More rows differ than `diffs` carries (the counts are exact).
    #[serde(default)]
    pub truncated: bool,
    /// Why the table could not be compared row by row (its structure differs on the target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// True when this result re-verified only the rows a correction wrote.
    #[serde(default)]
    pub recheck: bool,
    pub elapsed_ms: u64,
}

impl TableCheck {
    pub fn differences(&self) -> u64 {
        self.missing + self.extra + self.changed + u64::from(self.problem.is_some())
    }
}

/// Messages on `ferry.<task>.check`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CheckEvent {
    Table(TableCheck),
}

/// Totals of a verification run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CheckTotals {
    pub tables: u64,
    pub tables_differing: u64,
    pub source_rows: u64,
    pub missing: u64,
    pub extra: u64,
    pub changed: u64,
    /// Tables whose structure differs (not compared row by row).
    pub problems: u64,
}

impl CheckTotals {
    pub fn add(&mut self, t: &TableCheck) {
        self.tables += 1;
        self.tables_differing += u64::from(t.differences() > 0);
        self.source_rows += t.source_rows;
        self.missing += t.missing;
        self.extra += t.extra;
        self.changed += t.changed;
        self.problems += u64::from(t.problem.is_some());
    }
    pub fn differences(&self) -> u64 {
        self.missing + self.extra + self.changed + self.problems
    }
}

/// Key `<task>.checker`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckerStatus {
    /// Checker assignment epoch this status belongs to.
    #[serde(default)]
    pub epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work: Option<CheckWork>,
    #[serde(default)]
    pub done: bool,
    /// Verified while incremental sync was applying (differences re-checked past the applied
    /// position).
    #[serde(default)]
    pub live: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Tables of the run and how many are verified.
    #[serde(default)]
    pub tables_total: u64,
    #[serde(default)]
    pub totals: CheckTotals,
    /// CHECK stream sequence of each table's newest result (`db.table` of the source).
    #[serde(default)]
    pub results: std::collections::BTreeMap<String, u64>,
    /// Correction requests handled (compare with the task record's `corrections`).
    #[serde(default)]
    pub corrections_done: u64,
    /// Statements the last correction ran.
    #[serde(default)]
    pub corrected_rows: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_position: Option<SourcePosition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrying: Option<ErrorReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// What `GET /tasks/{name}/check-report` returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckReport {
    pub task: String,
    pub done: bool,
    pub live: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    pub totals: CheckTotals,
    pub tables: Vec<TableCheck>,
}

/// A row continuous verification found different, and since when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WatchedRow {
    /// The source table.
    pub table: TableRef,
    /// When a check first found it different.
    pub since: DateTime<Utc>,
    /// When the latest check that found it different began.
    pub last_seen: DateTime<Utc>,
    pub diff: RowDiff,
}

/// Key `<task>.checker-watch`: continuous verification of the rows incremental sync changes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WatchStatus {
    /// Checker assignment epoch the watch belongs to.
    pub epoch: u64,
    /// Last CDC stream sequence whose changed rows are queued or checked.
    pub cdc_seq: u64,
    /// Row checks done (a row changed twice is checked twice).
    pub rows_checked: u64,
    /// Rows different for less than `report_after_seconds` (being re-checked).
    pub pending: u64,
    /// Rows different for longer: reported.
    pub differing: u64,
    /// Every row found different and not yet equal again (pending and reported), oldest first,
    /// at most 10,000.
    #[serde(default)]
    pub rows: Vec<WatchedRow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}
