//! Live verification's one question: has incremental sync applied everything up to a source
//! position yet? Once capture has passed the position, [`ferry_kit::watermark::apply_goal`]
//! names the CDC messages that must be applied, and [`ferry_kit::watermark::acked_through`] is
//! polled until they are or a deadline says the sink is not applying.

use crate::error::{definite, CheckError};
use async_nats::jetstream::{kv, Context};
use ferry_schemas::position::SourcePosition;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const POLL: Duration = Duration::from_millis(200);

pub struct Live {
    pub js: Context,
    pub status: kv::Store,
    pub task: String,
    pub retries: u32,
    /// How long to wait for the sink to pass a position before giving up.
    pub patience: Duration,
}

impl Live {
    /// Returns once every change up to `at` is applied on the target. `None` (binary logging
    /// off) returns at once: there is nothing to wait for.
    pub async fn wait_applied(
        &self,
        at: Option<&SourcePosition>,
        cancel: &CancellationToken,
    ) -> Result<(), CheckError> {
        let Some(at) = at else { return Ok(()) };
        let deadline = Instant::now() + self.patience;
        let mut goal = None;
        loop {
            if goal.is_none() {
                goal = ferry_kit::watermark::apply_goal(&self.js, &self.status, &self.task, at).await;
            }
            if let Some(through) = goal {
                if ferry_kit::watermark::acked_through(&self.js, &self.task, through).await {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(definite(
                    "sink_behind",
                    None,
                    format!(
                        "incremental sync did not apply up to source position {at} within {} s; \
                         live verification cannot tell changes in flight from differences",
                        self.patience.as_secs()
                    ),
                    "check that the sink is running and catching up (ferry task status), then resume the task",
                ));
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = cancel.cancelled() => return Err(CheckError::Cancelled),
            }
        }
    }
}
