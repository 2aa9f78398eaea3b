//! One task's sink job: consume the FULL stream into the target until the assignment changes.

use crate::full::FullApplier;
use crate::progress::Progress;
use crate::{checkpoint, target, COMPONENT};
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use ferry_kit::backoff::Backoff;
use ferry_kit::consume::{self, ConsumeError};
use ferry_kit::nats::kv_get;
use ferry_kit::runtime::Runtime;
use ferry_kit::ErrorClass;
use ferry_schemas::control::{Assignment, TaskRecord};
use ferry_schemas::names;
use ferry_schemas::status::ErrorReport;
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
        JobError::new(e.class(), "nats", None, e.to_string(), "check that NATS is reachable")
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
                record(&rt, &task, progress_slot.get(), None, Some(e.report())).await;
                tokio::select! { _ = tokio::time::sleep(d) => {}, _ = cancel.cancelled() => return }
            }
            Err(e) => {
                tracing::error!(task, "sink stopped: {e}");
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
    let record: TaskRecord = kv_get(&rt.buckets.tasks, &names::task_key(task)).await?.ok_or_else(|| {
        JobError::new(
            ErrorClass::Definite,
            "task_missing",
            Some(task.into()),
            format!("task {task} has no record"),
            "create the task again",
        )
    })?;
    let mut spec = record.spec;
    rt.secrets.open_spec(&mut spec)?;
    let concurrency = spec.full.write_concurrency as usize;
    let pool = target::pool(&spec.target, spec.full.write_concurrency + 1);
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

    let stream = rt.nats.full_stream(task).await?;
    let name = names::sink_full_consumer(task);
    let consumer = stream
        .get_or_create_consumer(
            &name,
            pull::Config {
                durable_name: Some(name.clone()),
                ack_policy: AckPolicy::Explicit,
                deliver_policy: DeliverPolicy::All,
                ack_wait: consume::ACK_WAIT,
                max_ack_pending: (concurrency * 8) as i64,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| ferry_kit::KitError::nats(format!("creating consumer {name}"), e))?;
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
    let result = consume::consume(&consumer, applier, concurrency, cancel.clone()).await;
    flush_cancel.cancel();
    let _ = flusher.await;
    pool.close().await;
    result.map_err(JobError::from)
}
