//! One task's checker job: a verification run or a correction, as the assignment says.
//!
//! Restart protocol: the status key `<task>.checker` belongs to one assignment epoch. Each
//! table's result is published to the CHECK stream (message id from epoch and table, so a
//! republish after a crash is dropped) and only then recorded in the status together with the
//! running totals, in one write. A restarted job of the same epoch skips the tables already
//! recorded; a new epoch starts a new run. A correction records `corrections_done` only after
//! every table's correction committed and its re-verification was recorded; its statements are
//! idempotent (REPLACE by key, DELETE by key), so repeating them after a crash is harmless.

use crate::correct;
use crate::error::{CheckError, Side};
use crate::live::Live;
use crate::pair::{self, Pairing};
use crate::verify::{RateLimit, Verifier};
use crate::COMPONENT;
use ferry_kit::backoff::Backoff;
use ferry_kit::nats::{kv_get, kv_put};
use ferry_kit::runtime::Runtime;
use ferry_kit::ErrorClass;
use ferry_mysql::catalog::{self, ObjectKind};
use ferry_schemas::check::{CheckEvent, CheckTotals, CheckerStatus, TableCheck};
use ferry_schemas::control::{Assignment, CheckWork};
use ferry_schemas::envelope::Envelope;
use ferry_schemas::names;
use ferry_schemas::task::{Phase, TaskSpec};
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Tables verified at the same time.
const TABLES_AT_ONCE: usize = 2;
/// How long live verification waits for the sink to pass a source position.
const LIVE_PATIENCE: Duration = Duration::from_secs(300);

pub async fn run(rt: Runtime, assignment: Assignment, cancel: CancellationToken) {
    let mut backoff = Backoff::standard();
    loop {
        match run_once(&rt, &assignment, &cancel).await {
            Ok(()) => return,
            Err(_) if cancel.is_cancelled() => return,
            Err(CheckError::Cancelled) => return,
            Err(e) if e.class() == ErrorClass::Transient => {
                let d = backoff.next_delay();
                tracing::warn!(task = assignment.task, "verification interrupted ({e}); retrying in {d:?}");
                rt.metrics.count_error(&assignment.task, &e.report(None).code, false);
                let _ = update(&rt, &assignment.task, |s| s.retrying = Some(e.report(None))).await;
                tokio::select! { _ = tokio::time::sleep(d) => {}, _ = cancel.cancelled() => return }
            }
            Err(e) => {
                tracing::error!(task = assignment.task, "verification stopped: {e}");
                let report = e.report(None);
                rt.metrics.count_error(&assignment.task, &report.code, true);
                if let Err(w) = update(&rt, &assignment.task, |s| s.error = Some(report.clone())).await {
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

async fn update(rt: &Runtime, task: &str, f: impl FnOnce(&mut CheckerStatus)) -> Result<(), CheckError> {
    let key = names::status_key(task, COMPONENT);
    let mut status: CheckerStatus = kv_get(&rt.buckets.status, &key).await?.unwrap_or_default();
    f(&mut status);
    save(rt, task, &mut status).await
}

async fn save(rt: &Runtime, task: &str, status: &mut CheckerStatus) -> Result<(), CheckError> {
    status.updated_at = Some(chrono::Utc::now());
    kv_put(&rt.buckets.status, &names::status_key(task, COMPONENT), status).await?;
    Ok(())
}

/// What a job works with.
pub struct JobContext {
    pub rt: Runtime,
    pub task: String,
    pub spec: TaskSpec,
    pub verifier: Verifier,
    pub hash_fn: &'static str,
}

async fn run_once(rt: &Runtime, a: &Assignment, cancel: &CancellationToken) -> Result<(), CheckError> {
    let task = a.task.as_str();
    let record = ferry_kit::nats::load_task(&rt.buckets, task).await?;
    let mut spec = record.spec.clone();
    rt.secrets.open_spec(&mut spec)?;
    let work = a.check.unwrap_or(CheckWork::Verify);
    if work == CheckWork::Watch {
        let ctx = context(rt, task, spec, CheckWork::Watch, cancel).await?;
        let result = crate::watch::run(&ctx, a.epoch, cancel).await;
        ctx.close().await;
        return result;
    }
    let key = names::status_key(task, COMPONENT);
    let previous: CheckerStatus = kv_get(&rt.buckets.status, &key).await?.unwrap_or_default();
    let mut status = if previous.epoch == a.epoch {
        if previous.done {
            return Ok(());
        }
        previous
    } else {
        // A new run. A correction works on the report of the run before it, so it keeps it.
        let keep = work == CheckWork::Correct;
        CheckerStatus {
            epoch: a.epoch,
            work: Some(work),
            started_at: Some(chrono::Utc::now()),
            corrections_done: previous.corrections_done,
            tables_total: if keep { previous.tables_total } else { 0 },
            totals: if keep { previous.totals } else { CheckTotals::default() },
            results: if keep { previous.results } else { Default::default() },
            live: keep && previous.live,
            ..CheckerStatus::default()
        }
    };
    status.error = None;
    status.retrying = None;
    save(rt, task, &mut status).await?;
    rt.nats.check_stream(task).await?;

    let ctx = context(rt, task, spec, work, cancel).await?;
    status.live = status.live || ctx.verifier.live.is_some();
    let result = match work {
        CheckWork::Verify => verify_all(&ctx, &mut status).await,
        CheckWork::Correct => correct::run(&ctx, &mut status, record.corrections).await,
        CheckWork::Watch => Ok(()),
    };
    ctx.close().await;
    result?;
    status.done = true;
    status.finished_at = Some(chrono::Utc::now());
    save(rt, task, &mut status).await?;
    let label = ferry_kit::metrics::task(task);
    rt.metrics.checker_diff_rows.get_or_create(&label).set(diff_rows(&status.totals));
    tracing::info!(
        task,
        work = ?work,
        tables = status.totals.tables,
        rows = status.totals.source_rows,
        missing = status.totals.missing,
        extra = status.totals.extra,
        changed = status.totals.changed,
        "checker finished"
    );
    Ok(())
}

/// Connections to both sides and the verifier of a job.
async fn context(
    rt: &Runtime,
    task: &str,
    spec: ferry_schemas::task::TaskSpec,
    work: CheckWork,
    cancel: &CancellationToken,
) -> Result<JobContext, CheckError> {
    let connections = spec.verify.concurrency as usize + 2;
    let source = ferry_mysql::conn::pool(&spec.source, connections);
    let target = ferry_mysql::conn::pool(&spec.target, connections);
    let mut src_conn = source
        .get_conn()
        .await
        .map_err(|e| CheckError::db(Side::Source, format!("connecting to {}", spec.source.describe()), e))?;
    let mut tgt_conn = target
        .get_conn()
        .await
        .map_err(|e| CheckError::db(Side::Target, format!("connecting to {}", spec.target.describe()), e))?;
    let hash_fn = pair::hash_function(&mut src_conn, &mut tgt_conn).await;
    drop((src_conn, tgt_conn));
    // Live while incremental sync is applying; a correction runs on a paused task.
    let live = (work != CheckWork::Correct && spec.phases.contains(&Phase::Incremental)).then(|| Live {
        js: rt.nats.js.clone(),
        status: rt.buckets.status.clone(),
        task: task.to_owned(),
        retries: spec.verify.live_retries,
        patience: LIVE_PATIENCE,
    });
    let label = ferry_kit::metrics::task(task);
    rt.metrics.track_task_rates(&label);
    let verifier = Verifier {
        source,
        target,
        options: spec.verify.clone(),
        live,
        limit: Arc::new(RateLimit::new(spec.verify.rows_per_second)),
        permits: Arc::new(tokio::sync::Semaphore::new(spec.verify.concurrency.max(1) as usize)),
        rows_verified: rt.metrics.checker_rows_total.get_or_create(&label).clone(),
        cancel: cancel.clone(),
    };
    Ok(JobContext { rt: rt.clone(), task: task.to_owned(), spec, verifier, hash_fn })
}

impl JobContext {
    async fn close(self) {
        let _ = self.verifier.source.disconnect().await;
        let _ = self.verifier.target.disconnect().await;
    }
}

fn diff_rows(t: &CheckTotals) -> i64 {
    i64::try_from(t.missing + t.extra + t.changed).unwrap_or(i64::MAX)
}

async fn verify_all(ctx: &JobContext, status: &mut CheckerStatus) -> Result<(), CheckError> {
    let mut conn =
        ctx.verifier.source.get_conn().await.map_err(|e| CheckError::db(Side::Source, "connecting", e))?;
    let objects = catalog::list_objects(&mut conn, &ctx.spec.objects)
        .await
        .map_err(|error| CheckError::Db { side: Side::Source, error })?;
    drop(conn);
    let tables: Vec<_> =
        objects.into_iter().filter(|o| o.kind == ObjectKind::Table).map(|o| o.table).collect();
    status.tables_total = tables.len() as u64;
    save(&ctx.rt, &ctx.task, status).await?;
    let todo: Vec<_> = tables.into_iter().filter(|t| !status.results.contains_key(&t.to_string())).collect();
    // Two tables at a time keep every permit busy at a table's tail; the permits bound the
    // chunks compared at once.
    let mut checks = futures::stream::iter(todo)
        .map(|source| async move {
            let target = ctx.spec.renames.target_of(&source);
            verify_table(ctx, &source, &target).await
        })
        .buffer_unordered(TABLES_AT_ONCE);
    while let Some(check) = checks.try_next().await? {
        record(ctx, status, check).await?;
    }
    Ok(())
}

/// Verifies one table (or reports why its structure cannot be compared).
pub async fn verify_table(
    ctx: &JobContext,
    source: &ferry_schemas::table::TableRef,
    target: &ferry_schemas::table::TableRef,
) -> Result<TableCheck, CheckError> {
    match pairing(ctx, source, target).await? {
        Pairing::Pair(p) => ctx.verifier.table(&p).await,
        Pairing::Problem(problem) => Ok(problem_check(source, target, problem)),
    }
}

pub fn problem_check(
    source: &ferry_schemas::table::TableRef,
    target: &ferry_schemas::table::TableRef,
    problem: String,
) -> TableCheck {
    TableCheck {
        source: source.clone(),
        target: target.clone(),
        problem: Some(problem),
        ..TableCheck::default()
    }
}

pub async fn pairing(
    ctx: &JobContext,
    source: &ferry_schemas::table::TableRef,
    target: &ferry_schemas::table::TableRef,
) -> Result<Pairing, CheckError> {
    let mut src =
        ctx.verifier.source.get_conn().await.map_err(|e| CheckError::db(Side::Source, "connecting", e))?;
    let mut tgt =
        ctx.verifier.target.get_conn().await.map_err(|e| CheckError::db(Side::Target, "connecting", e))?;
    pair::pair(&mut src, &mut tgt, source, target, ctx.hash_fn).await
}

/// Publishes a table's result and records it (with the new totals) in the status.
pub async fn record(
    ctx: &JobContext,
    status: &mut CheckerStatus,
    check: TableCheck,
) -> Result<(), CheckError> {
    let table = check.source.to_string();
    let replaces = status.results.contains_key(&table);
    let mut added = status.totals.clone();
    added.add(&check);
    let suffix = if check.recheck { format!(":c{}", status.corrections_done + 1) } else { String::new() };
    let id = format!("{}:check:{}:{table}{suffix}", ctx.task, status.epoch);
    let env = Envelope::new(&ctx.task, id.clone(), status.source_position.clone(), CheckEvent::Table(check));
    let payload = serde_json::to_vec(&env)
        .map_err(|source| ferry_kit::KitError::Json { what: format!("check result of {table}"), source })?;
    let ack = ctx.rt.nats.publish_dedup(names::check_subject(&ctx.task), &id, payload.into()).await?;
    status.results.insert(table, ack.sequence);
    status.totals = if replaces { totals(ctx, status).await? } else { added };
    save(&ctx.rt, &ctx.task, status).await?;
    Ok(())
}

/// The totals over the newest result of every table.
async fn totals(ctx: &JobContext, status: &CheckerStatus) -> Result<CheckTotals, CheckError> {
    let mut totals = CheckTotals::default();
    for seq in status.results.values() {
        totals.add(&read_result(&ctx.rt, &ctx.task, *seq).await?);
    }
    Ok(totals)
}

/// A table result from the CHECK stream.
pub async fn read_result(rt: &Runtime, task: &str, seq: u64) -> Result<TableCheck, CheckError> {
    let stream = rt.nats.check_stream(task).await?;
    let msg = stream
        .get_raw_message(seq)
        .await
        .map_err(|e| ferry_kit::KitError::nats(format!("reading check result {seq}"), e))?;
    let env: Envelope<CheckEvent> = serde_json::from_slice(&msg.payload)
        .map_err(|source| ferry_kit::KitError::Json { what: format!("check result {seq}"), source })?;
    match env.body {
        CheckEvent::Table(t) => Ok(t),
    }
}
