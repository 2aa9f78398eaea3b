//! Status records in the `ferry-status` bucket, and the task view the API serves.
//!
//! Each component writes only its own keys; the scheduler reads them all to drive phases and to
//! build [`TaskStatusView`].

use crate::position::SourcePosition;
use crate::table::TableRef;
use crate::task::Phase;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// An error an operator must act on: what failed, on which object, and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorReport {
    /// Stable machine-readable code, e.g. `source_unreachable`, `missing_privilege`.
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    pub message: String,
    pub fix: String,
    /// Component that reported it.
    pub component: String,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Created,
    Running,
    /// Paused by a user, or by Ferry on an error (then `error` says why).
    Paused,
    Stopped,
    Completed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    Pass,
    Warn,
    Fail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CheckResult {
    pub check: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    pub outcome: CheckOutcome,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Key `<task>.scheduler`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SchedulerStatus {
    pub state: TaskState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default)]
    pub precheck: Vec<CheckResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
    /// Grows with every start/resume; copied into assignments.
    #[serde(default)]
    pub epoch: u64,
    /// When the current epoch started: component errors older than this are from before a resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_since: Option<DateTime<Utc>>,
    /// Epoch of the checker's assignments: grows with every verification or correction the
    /// scheduler asks for (it never goes back, also across resumes).
    #[serde(default)]
    pub checker_epoch: u64,
    /// Verification requests of the task record already started.
    #[serde(default)]
    pub verifications_started: u64,
    pub updated_at: DateTime<Utc>,
}

/// Key `<task>.full-migrator`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FullMigratorStatus {
    /// Source position read before the copy started: incremental sync replays from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p0: Option<SourcePosition>,
    /// Source position read after the last chunk was read: the end of safe mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p1: Option<SourcePosition>,
    /// Source tables of the copy (decided once, when the structure is published).
    #[serde(default)]
    pub tables: Vec<TableRef>,
    #[serde(default)]
    pub schema_published: bool,
    #[serde(default)]
    pub views_published: u64,
    #[serde(default)]
    pub done: bool,
    /// The last transient failure while it is being retried (cleared on success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrying: Option<ErrorReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// Key `<task>.full-table.<db>.<table>`: the durable copy progress of one source table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TableProgress {
    pub source: TableRef,
    pub target: TableRef,
    pub keyless: bool,
    pub estimated_rows: u64,
    pub attempt: u32,
    /// Chunks published and acknowledged by JetStream (chunk indexes `0..chunks_published`).
    pub chunks_published: u64,
    pub rows_published: u64,
    /// Upper key bound of the last published chunk: the next chunk starts after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_key: Option<Vec<Json>>,
    pub done: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TableApplied {
    pub chunks: u64,
    pub rows: u64,
    /// Copy attempt the counts belong to (keyless tables restart with a new attempt).
    #[serde(default)]
    pub attempt: u32,
    #[serde(default)]
    pub created: bool,
    /// Every chunk applied and the deferred indexes built.
    #[serde(default)]
    pub finished: bool,
}

/// Key `<task>.sink`. Derived from the sink's checkpoint tables in the target.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SinkStatus {
    /// By source table (`db.table`).
    #[serde(default)]
    pub tables: BTreeMap<String, TableApplied>,
    #[serde(default)]
    pub views_applied: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<IncrementalApplied>,
    /// The last transient failure while it is being retried (cleared on success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrying: Option<ErrorReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// Key `<task>.store`: what capture has made durable in the CDC stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StoreStatus {
    /// Position after the last message JetStream acknowledged (written after the PubAck).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<SourcePosition>,
    /// Source commit time of the last transaction (or heartbeat) captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub transactions: u64,
    #[serde(default)]
    pub rows: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrying: Option<ErrorReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// Key `<task>.dispatcher`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DispatcherStatus {
    /// Last CDC sequence dispatched.
    #[serde(default)]
    pub cdc_seq: u64,
    #[serde(default)]
    pub barriers: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrying: Option<ErrorReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// The sink's incremental progress (derived from its checkpoint rows in the target).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IncrementalApplied {
    /// Source position of the last change applied (or heartbeat passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<SourcePosition>,
    /// Source time of the last change applied or heartbeat passed: delay is measured from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_time: Option<DateTime<Utc>>,
    /// Seconds between the source time of the newest applied event and when it was applied.
    #[serde(default)]
    pub delay_seconds: f64,
    /// True while replaying the P0..P1 window idempotently.
    #[serde(default)]
    pub safe_mode: bool,
    #[serde(default)]
    pub transactions: u64,
    #[serde(default)]
    pub rows: u64,
    #[serde(default)]
    pub ddl: u64,
    /// DDL statements not run because the task record lists them in `skip_ddl`.
    #[serde(default)]
    pub ddl_skipped: u64,
    /// The DDL the sink stopped at (rejected by the target, or not replayable): what
    /// `ferry task skip-ddl` skips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_ddl: Option<BlockedDdl>,
}

/// A DDL statement incremental sync cannot apply as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BlockedDdl {
    pub position: SourcePosition,
    pub sql: String,
}

/// One table's line in a task view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TableStatusView {
    pub source: TableRef,
    pub target: TableRef,
    pub estimated_rows: u64,
    pub rows_published: u64,
    pub rows_applied: u64,
    pub chunks_published: u64,
    pub chunks_applied: u64,
    pub read_done: bool,
    pub keyless: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What `GET /tasks/{name}` returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskStatusView {
    pub name: String,
    pub state: TaskState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    pub phases: Vec<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
    /// Transient failures being retried right now, one per component.
    #[serde(default)]
    pub retrying: Vec<ErrorReport>,
    #[serde(default)]
    pub precheck: Vec<CheckResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p0: Option<SourcePosition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p1: Option<SourcePosition>,
    pub tables: Vec<TableStatusView>,
    pub views_published: u64,
    pub views_applied: u64,
    /// Position the store has captured up to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_position: Option<SourcePosition>,
    /// Position the sink has applied up to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_position: Option<SourcePosition>,
    /// Seconds the target is behind the source (incremental phase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<IncrementalApplied>,
    /// The newest verification (or correction) and its counts; the rows are in the check report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<crate::check::CheckerStatus>,
    /// Continuous verification of the rows sync changes (`verify.continuous`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<crate::check::WatchStatus>,
}
