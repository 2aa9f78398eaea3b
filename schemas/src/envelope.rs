//! The envelope every message on a Ferry stream is wrapped in.

use crate::position::SourcePosition;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope<T> {
    pub schema_version: u32,
    pub task: String,
    /// Deterministic id of the event (also the `Nats-Msg-Id` of streams that deduplicate by it:
    /// CDC, FULL, SCHEMA, CHECK).
    pub event_id: String,
    /// Source position the event belongs to, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<SourcePosition>,
    pub produced_at: DateTime<Utc>,
    pub body: T,
}

impl<T> Envelope<T> {
    pub fn new(task: &str, event_id: String, position: Option<SourcePosition>, body: T) -> Self {
        Self {
            schema_version: crate::SCHEMA_VERSION,
            task: task.to_owned(),
            event_id,
            position,
            produced_at: Utc::now(),
            body,
        }
    }
}
