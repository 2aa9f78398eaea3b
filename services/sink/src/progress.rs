//! The sink's status record, kept in memory and flushed to the status bucket.
//!
//! It is derived from the checkpoint tables at start and advanced after each commit, so it
//! never runs ahead of what the target holds.

use crate::checkpoint;
use async_nats::jetstream::kv;
use chrono::{DateTime, Utc};
use ferry_kit::nats::kv_put;
use ferry_schemas::names;
use ferry_schemas::position::SourcePosition;
use ferry_schemas::status::{BlockedDdl, ErrorReport, IncrementalApplied, SinkStatus};
use sqlx::MySqlPool;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct Progress {
    task: String,
    state: Mutex<SinkStatus>,
    dirty: AtomicBool,
}

impl Progress {
    /// Rebuilds the record from the target's checkpoint tables.
    pub async fn load(task: &str, pool: &MySqlPool) -> Result<Self, sqlx::Error> {
        let (chunks, objects) = checkpoint::load_progress(pool, task).await?;
        let mut status = SinkStatus::default();
        for (table, attempt, n, rows) in chunks {
            let t = status.tables.entry(table).or_default();
            if attempt >= t.attempt {
                t.attempt = attempt;
                t.chunks = n;
                t.rows = rows;
            }
        }
        for (object, kind, state) in objects {
            match kind.as_str() {
                "view" => status.views_applied += 1,
                _ => {
                    let t = status.tables.entry(object).or_default();
                    t.created = true;
                    t.finished = state == "finished";
                }
            }
        }
        Ok(Self { task: task.to_owned(), state: Mutex::new(status), dirty: AtomicBool::new(true) })
    }

    fn update(&self, f: impl FnOnce(&mut SinkStatus)) {
        if let Ok(mut s) = self.state.lock() {
            f(&mut s);
            self.dirty.store(true, Ordering::Release);
        }
    }

    pub fn chunk_applied(&self, table: &str, attempt: u32, rows: u64) {
        self.update(|s| {
            let t = s.tables.entry(table.to_owned()).or_default();
            if attempt > t.attempt {
                t.attempt = attempt;
                t.chunks = 0;
                t.rows = 0;
                t.finished = false;
            }
            t.chunks += 1;
            t.rows += rows;
            s.retrying = None;
        });
    }

    pub fn table_created(&self, table: &str) {
        self.update(|s| s.tables.entry(table.to_owned()).or_default().created = true);
    }

    pub fn table_finished(&self, table: &str) {
        self.update(|s| s.tables.entry(table.to_owned()).or_default().finished = true);
    }

    pub fn view_applied(&self) {
        self.update(|s| s.views_applied += 1);
    }

    /// Records an applied APPLY message (transaction, DDL or heartbeat).
    pub fn incremental_applied(
        &self,
        position: SourcePosition,
        source_time: DateTime<Utc>,
        rows: u64,
        transactions: u64,
        ddl: u64,
        safe_mode: bool,
    ) {
        self.update(|s| {
            let inc = s.incremental.get_or_insert_with(IncrementalApplied::default);
            if inc.position.as_ref().is_none_or(|p| position.binlog >= p.binlog) {
                inc.position = Some(position);
                inc.safe_mode = safe_mode;
            }
            if inc.source_time.is_none_or(|t| source_time > t) {
                inc.source_time = Some(source_time);
            }
            inc.delay_seconds = (Utc::now() - source_time).num_milliseconds().max(0) as f64 / 1000.0;
            inc.rows += rows;
            inc.transactions += transactions;
            inc.ddl += ddl;
            if ddl > 0 {
                inc.blocked_ddl = None;
            }
            s.retrying = None;
        });
    }

    /// Records the DDL the sink stopped at (see `BlockedDdl`).
    pub fn ddl_blocked(&self, blocked: BlockedDdl) {
        self.update(|s| {
            s.incremental.get_or_insert_with(IncrementalApplied::default).blocked_ddl = Some(blocked)
        });
    }

    /// Records a DDL passed over because the task lists it in `skip_ddl`.
    pub fn ddl_skipped(&self) {
        self.update(|s| {
            let inc = s.incremental.get_or_insert_with(IncrementalApplied::default);
            inc.ddl_skipped += 1;
            inc.blocked_ddl = None;
        });
    }

    /// Starts the incremental record from the checkpoint rows: position and time of the newest,
    /// and the totals (rows, transactions, DDL) summed over the lanes.
    pub fn incremental_resumed(
        &self,
        newest: Option<(SourcePosition, DateTime<Utc>)>,
        totals: (u64, u64, u64),
    ) {
        self.update(|s| {
            let inc = s.incremental.get_or_insert_with(IncrementalApplied::default);
            if let Some((p, t)) = newest {
                inc.position = Some(p);
                inc.source_time = Some(t);
            }
            (inc.rows, inc.transactions, inc.ddl) = totals;
        });
    }

    pub fn set_error(&self, report: Option<ErrorReport>) {
        self.update(|s| s.error = report);
    }

    pub fn set_retrying(&self, report: Option<ErrorReport>) {
        self.update(|s| s.retrying = report);
    }

    pub async fn flush(&self, status: &kv::Store) -> Result<(), ferry_kit::KitError> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let snapshot = match self.state.lock() {
            Ok(s) => SinkStatus { updated_at: Some(chrono::Utc::now()), ..s.clone() },
            Err(_) => return Ok(()),
        };
        if let Err(e) = kv_put(status, &names::status_key(&self.task, crate::COMPONENT), &snapshot).await {
            self.dirty.store(true, Ordering::Release);
            return Err(e);
        }
        Ok(())
    }

    /// Flushes every `every` until `cancel`, then once more.
    pub async fn flush_loop(&self, status: kv::Store, every: Duration, cancel: CancellationToken) {
        let mut failing = false;
        loop {
            tokio::select! { _ = tokio::time::sleep(every) => {}, _ = cancel.cancelled() => break }
            match self.flush(&status).await {
                // E.g. the default region is unreachable: applying goes on, the status waits.
                Err(e) if !failing => {
                    tracing::warn!(task = self.task, "cannot write sink status ({e}); will retry");
                    failing = true;
                }
                Err(_) => {}
                Ok(()) if failing => {
                    tracing::info!(task = self.task, "sink status written again");
                    failing = false;
                }
                Ok(()) => {}
            }
        }
        let _ = self.flush(&status).await;
    }
}
