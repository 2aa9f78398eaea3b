//! SIGKILL of the full-migrator and the sink, and a pause and resume, in the middle of the copy:
//! the target still ends equal to the source, without a duplicate row (the keyless table would show one in its
//! count and multiset hash).

use crate::harness::{admin, eventually, scratch_dir, unique, DropOnExit, NatsServer, Stack};
use crate::scenario::Scenario;
use crate::verify::{same_rows, Side};
use anyhow::{ensure, Result};
use ferry_schemas::status::{TaskState, TaskStatusView};
use std::time::Duration;

fn table<'a>(v: &'a TaskStatusView, name: &str) -> Option<&'a ferry_schemas::status::TableStatusView> {
    v.tables.iter().find(|t| t.source.table == name)
}

/// Waits until `pred` holds for the sbtest line; fails if the task settled first.
async fn wait_for(
    stack: &Stack,
    task: &str,
    what: &str,
    pred: impl Fn(&ferry_schemas::status::TableStatusView) -> bool,
) -> Result<TaskStatusView> {
    let v = eventually(what, Duration::from_secs(300), || async {
        let v = stack.status(task).await?;
        if v.state != TaskState::Running || table(&v, "sbtest").is_some_and(&pred) {
            return Ok(Some(v));
        }
        Ok(None)
    })
    .await?;
    ensure!(v.state == TaskState::Running, "task settled before {what}: {v:?}");
    Ok(v)
}

/// A fresh task of the `full_crash` scenario: its database, name and cleanup guard.
async fn crash_scenario() -> Result<(String, String, Scenario, DropOnExit)> {
    let db = unique("e2e_crash");
    let task = db.replace('_', "-");
    let cleanup = DropOnExit(vec![db.clone(), format!("{db}_t")]);
    let scenario = Scenario::new("full_crash", &db, &task)?;
    scenario.prepare_source().await?;
    Ok((db, task, scenario, cleanup))
}

async fn assert_copied(db: &str) -> Result<()> {
    let mut src = admin("source").await?;
    let mut tgt = admin("target").await?;
    let tdb = format!("{db}_t");
    for t in ["sbtest", "events"] {
        let rows = same_rows(
            &mut Side { conn: &mut src, db, table: t },
            &mut Side { conn: &mut tgt, db: &tdb, table: t },
        )
        .await?;
        ensure!(rows > 0, "{t} is empty");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_survives_sigkill_of_full_migrator_and_sink() -> Result<()> {
    let (db, task, scenario, _cleanup) = crash_scenario().await?;
    let mut stack = Stack::start("crash").await?;
    stack.create_and_start(&scenario.render("task.yaml")?).await?;

    let v = wait_for(&stack, &task, "the first published chunks", |t| t.rows_published >= 10_000).await?;
    ensure!(!table(&v, "sbtest").is_some_and(|t| t.read_done), "the copy was too fast to be killed mid-way");
    stack.full_migrator.kill().await?;
    stack.full_migrator.restart()?;

    wait_for(&stack, &task, "the first applied chunks", |t| t.rows_applied >= 20_000).await?;
    stack.sink.kill().await?;
    stack.sink.restart()?;

    // Pause in the middle: the task pauses without an error, and resume continues it.
    let (code, body) = stack.post(&format!("/tasks/{task}/pause"), String::new()).await?;
    ensure!(code == 202, "pause: {code} {body}");
    let paused = stack.wait_settled(&task, Duration::from_secs(60)).await?;
    ensure!(paused.state == TaskState::Paused && paused.error.is_none(), "paused: {paused:?}");
    let (code, body) = stack.post(&format!("/tasks/{task}/resume"), String::new()).await?;
    ensure!(code == 202, "resume: {code} {body}");

    let v = wait_for(&stack, &task, "half the rows read", |t| t.rows_published >= 125_000).await?;
    if !table(&v, "sbtest").is_some_and(|t| t.read_done) {
        stack.full_migrator.kill().await?;
        stack.full_migrator.restart()?;
    }
    wait_for(&stack, &task, "half the rows applied", |t| t.rows_applied >= 125_000).await?;
    stack.sink.kill().await?;
    stack.sink.restart()?;

    let v = stack.wait_settled(&task, Duration::from_secs(600)).await?;
    ensure!(v.state == TaskState::Completed, "task did not complete: {v:?}");
    assert_copied(&db).await?;
    let sb = table(&v, "sbtest").map(|t| (t.rows_published, t.rows_applied));
    ensure!(sb == Some((250_000, 250_000)), "sbtest progress counts each row once: {sb:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_instance_takes_over_when_the_active_sink_dies() -> Result<()> {
    let (db, task, scenario, _cleanup) = crash_scenario().await?;
    let mut stack = Stack::start("failover").await?;
    let mut standby_sink = stack.spawn_extra("sink", "sink-b")?;
    let _standby_migrator = stack.spawn_extra("full-migrator", "full-migrator-b")?;
    stack.create_and_start(&scenario.render("task.yaml")?).await?;

    wait_for(&stack, &task, "the first applied chunks", |t| t.rows_applied >= 20_000).await?;
    let holder =
        stack.lease_holder(&task, "sink").await?.ok_or_else(|| anyhow::anyhow!("no sink holds the lease"))?;
    if holder == stack.sink.name() {
        stack.sink.kill().await?;
    } else {
        ensure!(holder == standby_sink.name(), "unknown lease holder {holder}");
        standby_sink.kill().await?;
    }

    let v = stack.wait_settled(&task, Duration::from_secs(600)).await?;
    ensure!(v.state == TaskState::Completed, "task did not complete: {v:?}");
    assert_copied(&db).await?;
    let log_a = std::fs::read_to_string(stack.dir.join("sink.log"))?;
    let log_b = std::fs::read_to_string(stack.dir.join("sink-b.log"))?;
    // A sink logs `starting job` only once it holds the lease: both did, one after the other.
    ensure!(
        log_a.contains("starting job") && log_b.contains("starting job"),
        "the standby sink never took the job over"
    );
    Ok(())
}

/// A bucket created by a version with a longer lease keeps working and takes this version's
/// lease lifetime (else a standby would wait the old TTL before taking a dead instance's job).
#[tokio::test(flavor = "multi_thread")]
async fn existing_lease_bucket_takes_the_current_lease_lifetime() -> Result<()> {
    use async_nats::jetstream::{self, kv};
    use ferry_kit::jobs::LEASE_TTL;
    use ferry_schemas::names::LOCKS_BUCKET;

    let nats = NatsServer::start(&scratch_dir("lease_ttl_upgrade")?).await?;
    let js = jetstream::new(async_nats::connect(&nats.url).await?);
    let old_ttl = LEASE_TTL + Duration::from_secs(5);
    let old = js
        .create_key_value(kv::Config { bucket: LOCKS_BUCKET.into(), max_age: old_ttl, ..Default::default() })
        .await?;
    old.put("lease.t.sink", "sink-a".into()).await?;

    let shutdown = tokio_util::sync::CancellationToken::new();
    let kit = ferry_kit::nats::Nats::connect(&nats.url, "test", "local", "local", &shutdown).await?;
    let buckets = kit.buckets().await?;
    let config = js.get_stream(format!("KV_{LOCKS_BUCKET}")).await?.info().await?.config.clone();
    ensure!(config.max_age == LEASE_TTL, "lease lifetime still {:?}", config.max_age);
    ensure!(config.duplicate_window <= LEASE_TTL, "duplicate window {:?}", config.duplicate_window);
    let kept = buckets.locks.get("lease.t.sink").await?;
    ensure!(kept.as_deref() == Some(&b"sink-a"[..]), "a held lease was lost: {kept:?}");
    Ok(())
}
