//! Control plane records in the `ferry-tasks` bucket: task records and role assignments.
//!
//! The scheduler is the only writer. Services watch the assignments of their role; an
//! assignment's `epoch` grows whenever the scheduler (re)starts the work, so a service that saw
//! an error restarts its job on resume even though the desired state did not change.

use crate::position::BinlogFilePos;
use crate::task::{Phase, TaskSpec};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    Running,
    Paused,
    Stopped,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskRecord {
    /// The spec with its passwords sealed.
    pub spec: TaskSpec,
    pub desired: DesiredState,
    /// Grows with every start or resume request; the scheduler restarts the task (precheck
    /// first) when it sees a generation newer than the running epoch.
    #[serde(default)]
    pub generation: u64,
    /// Source positions of DDL statements the sink must not run (`ferry task skip-ddl`): the
    /// user applied an equivalent change to the target by hand, or does not want it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_ddl: Vec<BinlogFilePos>,
    /// Correction requests (`ferry task correct`): the checker applies the last report's
    /// correction when this is above its `corrections_done`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub corrections: u64,
    /// Verification requests for a running task (`ferry task verify`): the scheduler starts
    /// one when this is above its `verifications_started`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub verifications: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a checker assignment asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckWork {
    /// Verify every table of the task.
    Verify,
    /// Apply the correction of the last report, then re-verify the rows it wrote.
    Correct,
    /// Keep re-checking the rows incremental sync changes; report those that stay different.
    Watch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Store,
    FullMigrator,
    Dispatcher,
    Sink,
    Checker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Store => "store",
            Role::FullMigrator => "full-migrator",
            Role::Dispatcher => "dispatcher",
            Role::Sink => "sink",
            Role::Checker => "checker",
        }
    }

    /// Store and full-migrator read the source and run in its region; the others run next to
    /// the target.
    pub fn on_source_side(self) -> bool {
        matches!(self, Role::Store | Role::FullMigrator)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Assignment {
    pub task: String,
    pub role: Role,
    pub desired: DesiredState,
    /// The phases the role works on for this task.
    pub phases: Vec<Phase>,
    pub epoch: u64,
    /// For the checker: what to do in this epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckWork>,
    /// Region whose instances run this job (unset: any instance of the role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// One service instance's heartbeat in `ferry-members` (key `member.<instance>`), rewritten
/// every few seconds; the bucket's max age drops the entry of an instance that stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Member {
    pub instance: String,
    /// Service name: a role's name or `scheduler`.
    pub service: String,
    pub region: String,
    pub version: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub heartbeat_at: chrono::DateTime<chrono::Utc>,
    /// Tasks whose job runs on this instance now (it holds their lease).
    #[serde(default)]
    pub jobs: Vec<String>,
}
