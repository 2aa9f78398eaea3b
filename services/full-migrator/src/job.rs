//! One task's full-migrator job: P0, structure, rows, P1.
//!
//! Every step is recorded in the status bucket after it is durable in the stream, and every
//! step can run again: a restarted job re-reads the status and continues. Transient errors
//! (source or NATS unreachable) are retried with backoff; a definite error is written into the
//! status, where the scheduler turns it into a paused task.

use crate::copy::CopyContext;
use crate::error::FullError;
use crate::plan::{self, TablePlan};
use crate::structure;
use crate::COMPONENT;
use ferry_kit::backoff::Backoff;
use ferry_kit::nats::{kv_get, kv_put};
use ferry_kit::runtime::Runtime;
use ferry_kit::ErrorClass;
use ferry_schemas::control::{Assignment, TaskRecord};
use ferry_schemas::names;
use ferry_schemas::status::FullMigratorStatus;
use ferry_schemas::task::Phase;
use futures::TryStreamExt;
use tokio_util::sync::CancellationToken;

pub async fn run(rt: Runtime, assignment: Assignment, cancel: CancellationToken) {
    let mut backoff = Backoff::standard();
    loop {
        let result = run_once(&rt, &assignment, &cancel).await;
        match result {
            Ok(()) => return,
            Err(_) if cancel.is_cancelled() => return,
            Err(FullError::Cancelled) => return,
            Err(e) if e.class() == ErrorClass::Transient => {
                let d = backoff.next_delay();
                tracing::warn!(task = assignment.task, "full copy interrupted ({e}); retrying in {d:?}");
                rt.metrics.count_error(&assignment.task, &e.report(None).code, false);
                tokio::select! { _ = tokio::time::sleep(d) => {}, _ = cancel.cancelled() => return }
            }
            Err(e) => {
                tracing::error!(task = assignment.task, "full copy stopped: {e}");
                rt.metrics.count_error(&assignment.task, &e.report(None).code, true);
                if let Err(w) = record_error(&rt, &assignment.task, &e).await {
                    tracing::error!(
                        task = assignment.task,
                        "cannot record the error in the status bucket: {w}"
                    );
                }
                return;
            }
        }
    }
}

async fn record_error(rt: &Runtime, task: &str, e: &FullError) -> Result<(), FullError> {
    let key = names::status_key(task, COMPONENT);
    let mut status: FullMigratorStatus = kv_get(&rt.buckets.status, &key).await?.unwrap_or_default();
    status.error = Some(e.report(None));
    status.updated_at = Some(chrono::Utc::now());
    kv_put(&rt.buckets.status, &key, &status).await?;
    Ok(())
}

async fn save(rt: &Runtime, key: &str, status: &mut FullMigratorStatus) -> Result<(), FullError> {
    status.updated_at = Some(chrono::Utc::now());
    kv_put(&rt.buckets.status, key, status).await?;
    Ok(())
}

async fn run_once(
    rt: &Runtime,
    assignment: &Assignment,
    cancel: &CancellationToken,
) -> Result<(), FullError> {
    let task = assignment.task.as_str();
    let record: TaskRecord = ferry_kit::nats::load_task(&rt.buckets, task).await?;
    let mut spec = record.spec;
    rt.secrets.open_spec(&mut spec)?;
    let key = names::status_key(task, COMPONENT);
    let mut status: FullMigratorStatus = kv_get(&rt.buckets.status, &key).await?.unwrap_or_default();
    if status.done {
        return Ok(());
    }
    if status.error.take().is_some() {
        save(rt, &key, &mut status).await?;
    }
    let pool = ferry_mysql::conn::pool(&spec.source, spec.full.concurrency as usize + 1);
    let mut conn = pool.get_conn().await.map_err(|e| {
        ferry_mysql::SourceError::mysql(format!("connecting to {}", spec.source.describe()), e)
    })?;
    if status.p0.is_none() {
        status.p0 = ferry_mysql::position::current(&mut conn).await?;
        save(rt, &key, &mut status).await?;
        tracing::info!(task, p0 = ?status.p0.as_ref().map(ToString::to_string), "recorded the start position P0");
    }
    let mut plan = plan::build(&mut conn, &spec).await?;
    let stream = rt.nats.full_stream(task, spec.source_region(&rt.nats.default_region)).await?;
    if status.schema_published {
        // The table list is fixed when the structure is published.
        plan.tables.retain(|t| status.tables.contains(&t.source));
    } else {
        if assignment.phases.contains(&Phase::Schema) {
            let tables: Vec<&TablePlan> = plan.tables.iter().collect();
            let defer = spec.full.defer_indexes && assignment.phases.contains(&Phase::Full);
            structure::publish_tables(&rt.nats, &mut conn, &spec, &tables, defer).await?;
            status.views_published = structure::publish_views(&rt.nats, &mut conn, &spec, &plan).await?;
        }
        status.tables = plan.tables.iter().map(|t| t.source.clone()).collect();
        status.schema_published = true;
        save(rt, &key, &mut status).await?;
    }
    drop(conn);
    if assignment.phases.contains(&Phase::Full) {
        let max_payload = rt.nats.client.server_info().max_payload;
        let ctx = CopyContext {
            task: task.to_owned(),
            nats: rt.nats.clone(),
            stream,
            status: rt.buckets.status.clone(),
            pool: pool.clone(),
            chunk_rows: spec.full.chunk_rows as usize,
            max_payload,
            metrics: rt.metrics.clone(),
            cancel: cancel.clone(),
        };
        futures::stream::iter(plan.tables.iter().map(Ok::<_, FullError>))
            .try_for_each_concurrent(spec.full.concurrency as usize, |t| {
                let ctx = &ctx;
                async move { ctx.copy_table(t).await.map(|_| ()) }
            })
            .await?;
    }
    let mut conn =
        pool.get_conn().await.map_err(|e| ferry_mysql::SourceError::mysql("connecting to the source", e))?;
    status.p1 = ferry_mysql::position::current(&mut conn).await?;
    status.done = true;
    save(rt, &key, &mut status).await?;
    drop(conn);
    let _ = pool.disconnect().await;
    tracing::info!(task, p1 = ?status.p1.as_ref().map(ToString::to_string), "full copy published completely");
    Ok(())
}
