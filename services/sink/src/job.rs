//! One task's sink job: consume the FULL stream into the target until the assignment changes.

use crate::full::FullApplier;
use crate::incremental::IncrementalApplier;
use crate::progress::Progress;
use crate::{checkpoint, target, COMPONENT};
use ferry_kit::backoff::Backoff;
use ferry_kit::consume::{self, ConsumeError};
use ferry_kit::nats::kv_get;
use ferry_kit::runtime::Runtime;
use ferry_kit::ErrorClass;
use ferry_schemas::control::{Assignment, TaskRecord};
use ferry_schemas::names;
use ferry_schemas::position::SourcePosition;
use ferry_schemas::status::{ErrorReport, FullMigratorStatus, SchedulerStatus};
use ferry_schemas::task::{Phase, TaskSpec};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error("{}", .0.message)]
    Report(Box<ErrorReport>, ErrorClass),
}

impl JobError {
    fn new(class: ErrorClass, code: &str, object: Option<String>, message: String, fix: &str) -> Self {
        JobError::Report(Box::new(ferry_kit::error::report(COMPONENT, code, object, message, fix)), class)
    }
    fn class(&self) -> ErrorClass {
        let JobError::Report(_, c) = self;
        *c
    }
    fn report(&self) -> ErrorReport {
        let JobError::Report(r, _) = self;
        (**r).clone()
    }
}

impl From<ferry_kit::KitError> for JobError {
    fn from(e: ferry_kit::KitError) -> Self {
        let (code, fix) = e.code_and_fix();
        JobError::new(e.class(), code, None, e.to_string(), fix)
    }
}

impl From<ConsumeError> for JobError {
    fn from(e: ConsumeError) -> Self {
        match e {
            ConsumeError::Failed(f) => JobError::Report(f.report, f.class),
            other => JobError::new(
                ErrorClass::Transient,
                "nats",
                None,
                other.to_string(),
                "check that NATS is reachable",
            ),
        }
    }
}

pub async fn run(rt: Runtime, assignment: Assignment, cancel: CancellationToken) {
    let mut backoff = Backoff::standard();
    let task = assignment.task.clone();
    loop {
        let progress_slot = tokio::sync::OnceCell::new();
        let result = run_once(&rt, &task, &cancel, &progress_slot).await;
        match result {
            Ok(()) => return,
            Err(_) if cancel.is_cancelled() => return,
            Err(e) if e.class() == ErrorClass::Transient => {
                let d = backoff.next_delay();
                tracing::warn!(task, "sink interrupted ({e}); retrying in {d:?}");
                rt.metrics.count_error(&task, &e.report().code, false);
                record(&rt, &task, progress_slot.get(), None, Some(e.report())).await;
                tokio::select! { _ = tokio::time::sleep(d) => {}, _ = cancel.cancelled() => return }
            }
            Err(e) => {
                tracing::error!(task, "sink stopped: {e}");
                rt.metrics.count_error(&task, &e.report().code, true);
                record(&rt, &task, progress_slot.get(), Some(e.report()), None).await;
                return;
            }
        }
    }
}

/// Writes an error or a retry note into the sink status.
async fn record(
    rt: &Runtime,
    task: &str,
    progress: Option<&Arc<Progress>>,
    error: Option<ErrorReport>,
    retrying: Option<ErrorReport>,
) {
    let outcome = match progress {
        Some(p) => {
            p.set_error(error);
            p.set_retrying(retrying);
            p.flush(&rt.buckets.status).await
        }
        None => {
            let key = names::status_key(task, COMPONENT);
            let mut s: ferry_schemas::status::SinkStatus =
                kv_get(&rt.buckets.status, &key).await.ok().flatten().unwrap_or_default();
            s.error = error;
            s.retrying = retrying;
            s.updated_at = Some(chrono::Utc::now());
            ferry_kit::nats::kv_put(&rt.buckets.status, &key, &s).await.map(|_| ())
        }
    };
    if let Err(e) = outcome {
        tracing::error!(task, "cannot record the sink status: {e}");
    }
}

async fn run_once(
    rt: &Runtime,
    task: &str,
    cancel: &CancellationToken,
    progress_slot: &tokio::sync::OnceCell<Arc<Progress>>,
) -> Result<(), JobError> {
    let record: TaskRecord = ferry_kit::nats::load_task(&rt.buckets, task).await?;
    let TaskRecord { mut spec, skip_ddl, .. } = record;
    rt.secrets.open_spec(&mut spec)?;
    let concurrency = spec.full.write_concurrency as usize;
    let incremental = spec.phases.contains(&Phase::Incremental);
    // The full copy's writers; the connection each lane keeps (partitions and the barrier
    // lane, see incremental::session) and the parts of a fanned-out group; two for checkpoints.
    let connections = spec.full.write_concurrency
        + if incremental { spec.incremental.partitions + 1 + spec.incremental.fan_out } else { 0 }
        + 2;
    let pool = target::pool(&spec.target, connections);
    let target_err = |e: sqlx::Error| {
        let f = crate::error::target_failure(&e, &spec.target.describe(), "preparing the checkpoint tables");
        JobError::Report(f.report, f.class)
    };
    checkpoint::ensure_schema(&pool).await.map_err(target_err)?;
    let progress = Arc::new(Progress::load(task, &pool).await.map_err(target_err)?);
    let _ = progress_slot.set(progress.clone());
    progress.set_error(None);
    progress.set_retrying(None);
    progress.flush(&rt.buckets.status).await?;
    rt.metrics.track_task_rates(&ferry_kit::metrics::task(task));

    let stream = rt.nats.full_stream(task, spec.source_region(&rt.nats.default_region)).await?;
    let name = names::sink_full_consumer(task);
    let consumer = consume::durable_consumer(&stream, &name, concurrency * 8).await?;
    let applier = Arc::new(FullApplier {
        task: task.to_owned(),
        pool: pool.clone(),
        progress: progress.clone(),
        metrics: rt.metrics.clone(),
    });
    let flush_cancel = cancel.child_token();
    let flusher = {
        let p = progress.clone();
        let kv = rt.buckets.status.clone();
        let c = flush_cancel.clone();
        tokio::spawn(async move { p.flush_loop(kv, Duration::from_millis(200), c).await })
    };
    let full = consume::consume(&consumer, applier, concurrency, cancel.clone());
    let result = if incremental {
        let apply = apply_incremental(rt, task, &spec, skip_ddl, &pool, &progress, cancel);
        tokio::try_join!(async { full.await.map_err(JobError::from) }, apply).map(|_| ())
    } else {
        full.await.map_err(JobError::from)
    };
    flush_cancel.cancel();
    let _ = flusher.await;
    pool.close().await;
    result
}

/// Waits for the incremental phase, then applies the APPLY stream until cancelled.
async fn apply_incremental(
    rt: &Runtime,
    task: &str,
    spec: &TaskSpec,
    skip_ddl: Vec<ferry_schemas::position::BinlogFilePos>,
    pool: &sqlx::MySqlPool,
    progress: &Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<(), JobError> {
    let scheduler_key = names::status_key(task, "scheduler");
    loop {
        let st: Option<SchedulerStatus> = kv_get(&rt.buckets.status, &scheduler_key).await?;
        if st.is_some_and(|s| s.phase.is_some_and(|p| p >= Phase::Incremental)) {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = cancel.cancelled() => return Ok(()),
        }
    }
    let p1 = if spec.phases.contains(&Phase::Full) {
        let fm: Option<FullMigratorStatus> =
            kv_get(&rt.buckets.status, &names::status_key(task, "full-migrator")).await?;
        fm.and_then(|f| f.p1).map(|p| p.binlog)
    } else {
        None
    };
    let lanes = checkpoint::load_lanes(pool, task).await.map_err(|e| {
        let f =
            crate::error::target_failure(&e, &spec.target.describe(), "reading the incremental checkpoints");
        JobError::Report(f.report, f.class)
    })?;
    let newest = lanes
        .iter()
        .filter_map(|(_, cp)| {
            let pos: SourcePosition = serde_json::from_str(&cp.position).ok()?;
            Some((pos, chrono::DateTime::from_timestamp_millis(cp.source_time_ms)?))
        })
        .max_by(|a, b| a.0.binlog.cmp(&b.0.binlog));
    for (lane, cp) in lanes.iter().filter(|(_, cp)| cp.safe_until > cp.apply_seq) {
        tracing::warn!(
            task,
            lane,
            from = cp.apply_seq + 1,
            to = cp.safe_until,
            "a group written over several connections was cut short; its messages are replayed in safe mode"
        );
    }
    let totals =
        lanes.iter().fold((0, 0, 0), |(r, t, d), (_, cp)| (r + cp.rows, t + cp.transactions, d + cp.ddl));
    progress.incremental_resumed(newest, totals);
    let stream = rt.nats.apply_stream(task).await?;
    let name = names::sink_apply_consumer(task);
    let partitions = spec.incremental.partitions as usize;
    // Room for every lane to have a full group running and the next one queued: a smaller
    // window starved the busiest lane (bench/cdc catch-up: 50 transactions per group at 512).
    // Plus the messages of one split transaction held until its last (see kit::consume).
    let window = partitions * crate::incremental::MAX_BATCH * 2 + crate::incremental::MAX_UNIT;
    let consumer = consume::durable_consumer(&stream, &name, window).await?;
    tracing::info!(task, p1 = ?p1.as_ref().map(ToString::to_string), "applying incremental changes");
    let applier = Arc::new(IncrementalApplier {
        task: task.to_owned(),
        spec: spec.clone(),
        pool: pool.clone(),
        progress: progress.clone(),
        metrics: rt.metrics.clone(),
        p1,
        lanes: std::sync::Mutex::new(lanes.into_iter().collect()),
        fan_out: tokio::sync::Mutex::new(()),
        advanced: tokio::sync::Notify::new(),
        skip_ddl,
        uncertain: std::sync::Mutex::new(Default::default()),
        sessions: crate::incremental::session::Sessions::new(pool.clone()),
        staged: Default::default(),
        read_ahead_bytes: crate::incremental::read_ahead_bytes(rt.nats.client.server_info().max_payload),
    });
    consume::consume(&consumer, applier, partitions, cancel.clone()).await.map_err(JobError::from)
}
