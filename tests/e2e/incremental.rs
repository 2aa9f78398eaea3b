//! Incremental sync joined to the full copy: a write workload runs on the source from before
//! the task starts until well into the incremental phase (inserts, updates, deletes, primary
//! key moves, two rows swapping a unique value in one transaction, multi-statement
//! transactions, a 100k-row transaction); when it stops and the target has applied past the
//! source's final position, every table equals its source.

use crate::harness::{admin, eventually, unique, DropOnExit, Stack};
use crate::scenario::Scenario;
use crate::verify::{same_rows, Side};
use anyhow::{ensure, Context, Result};
use ferry_schemas::position::BinlogFilePos;
use ferry_schemas::status::{TaskState, TaskStatusView};
use ferry_schemas::task::Phase;
use mysql_async::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

pub const TABLES: &[&str] = &["accounts", "events", "big"];

/// Random transactions against the scenario's tables until stopped.
pub struct Workload {
    stop: Arc<AtomicBool>,
    pub transactions: Arc<AtomicU64>,
    handle: JoinHandle<Result<()>>,
}

impl Workload {
    /// Starts the workload; `pause` between transactions keeps it from saturating a small box.
    pub async fn start(db: &str, seed: u64, pause: Duration) -> Result<Self> {
        let mut conn = admin("source").await?;
        conn.query_drop(format!("USE `{db}`")).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let transactions = Arc::new(AtomicU64::new(0));
        let (s, t) = (stop.clone(), transactions.clone());
        let handle = tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut next_id = 1_000_000 + (seed % 1000) * 1_000_000;
            while !s.load(Ordering::Relaxed) {
                one_transaction(&mut conn, &mut rng, &mut next_id).await?;
                t.fetch_add(1, Ordering::Relaxed);
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
            Ok(())
        });
        Ok(Self { stop, transactions, handle })
    }

    pub async fn stop(self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.context("workload task")??;
        Ok(self.transactions.load(Ordering::Relaxed))
    }
}

async fn one_transaction(conn: &mut mysql_async::Conn, rng: &mut StdRng, next_id: &mut u64) -> Result<()> {
    let id = rng.random_range(1..20_000);
    match rng.random_range(0..8) {
        0 => {
            // A few new accounts in one statement.
            let n = rng.random_range(1..5);
            let rows: Vec<String> = (0..n)
                .map(|_| {
                    *next_id += 1;
                    format!(
                        "({0}, 'new{0}@example.com', {1}.5, 'fresh', {2}, -{3}, NOW(6), NOW(3))",
                        next_id,
                        rng.random_range(0..1000),
                        rng.random_range(0..256),
                        rng.random_range(0..8_000_000)
                    )
                })
                .collect();
            conn.query_drop(format!(
                "INSERT INTO accounts (id, email, balance, note, tiny, med, updated, seen) VALUES {}",
                rows.join(",")
            ))
            .await?;
        }
        1 => {
            conn.exec_drop(
                "UPDATE accounts SET balance = balance + ?, note = CONCAT('upd ', ?), updated = NOW(6), med = ? WHERE id = ?",
                (rng.random_range(-50..50), rng.random_range(0..1_000_000), rng.random_range(-8_388_608..8_388_607), id),
            )
            .await?;
        }
        2 => conn.exec_drop("DELETE FROM accounts WHERE id = ?", (id,)).await?,
        3 => {
            // A primary key moves.
            *next_id += 1;
            conn.exec_drop("UPDATE IGNORE accounts SET id = ? WHERE id = ?", (*next_id, id)).await?;
        }
        4 => {
            // Two rows swap their unique e-mail in one transaction.
            let other = rng.random_range(1..20_000);
            let mut tx = conn.start_transaction(Default::default()).await?;
            let a: Option<String> =
                tx.exec_first("SELECT email FROM accounts WHERE id = ? FOR UPDATE", (id,)).await?;
            let b: Option<String> =
                tx.exec_first("SELECT email FROM accounts WHERE id = ? FOR UPDATE", (other,)).await?;
            if let (Some(a), Some(b)) = (a, b) {
                if id != other {
                    tx.exec_drop("UPDATE accounts SET email = CONCAT('swap-', id) WHERE id = ?", (id,))
                        .await?;
                    tx.exec_drop("UPDATE accounts SET email = ? WHERE id = ?", (&a, other)).await?;
                    tx.exec_drop("UPDATE accounts SET email = ? WHERE id = ?", (&b, id)).await?;
                }
            }
            tx.commit().await?;
        }
        5 => {
            // Several statements over two tables.
            let mut tx = conn.start_transaction(Default::default()).await?;
            tx.exec_drop(
                "INSERT INTO events (account, kind, tags, payload, raw, at) VALUES (?, 'pay', 'a,b', JSON_OBJECT('amount', ?, 'k', 'é'), UNHEX('00ff10'), 2024)",
                (id, rng.random_range(0..100)),
            )
            .await?;
            tx.exec_drop("UPDATE accounts SET balance = balance - 1, seen = NOW(3) WHERE id = ?", (id,))
                .await?;
            tx.exec_drop("DELETE FROM events WHERE id = ?", (rng.random_range(1..5000),)).await?;
            tx.commit().await?;
        }
        6 => {
            conn.exec_drop(
                "UPDATE events SET kind = 'close', tags = 'c', payload = JSON_SET(COALESCE(payload, '{}'), '$.closed', true), at = NULL WHERE id = ?",
                (rng.random_range(1..5000),),
            )
            .await?;
        }
        _ => {
            conn.exec_drop(
                "UPDATE accounts SET note = NULL, tiny = ? WHERE id BETWEEN ? AND ?",
                (rng.random_range(0..256), id, id + 20),
            )
            .await?;
        }
    }
    Ok(())
}

/// The source's current binlog position.
pub async fn source_position() -> Result<BinlogFilePos> {
    binlog_position("source").await
}

/// The current end of the binlog of `which` server (`source`, `target`).
pub async fn binlog_position(which: &str) -> Result<BinlogFilePos> {
    let mut conn = admin(which).await?;
    let row: Option<mysql_async::Row> = conn.query_first("SHOW MASTER STATUS").await?;
    let row = row.with_context(|| format!("binary logging is off on the {which}"))?;
    let file: String = row.get(0).context("file")?;
    let offset: u64 = row.get(1).context("position")?;
    Ok(BinlogFilePos { file, offset })
}

/// Waits until the task has applied everything up to `pos` (delay reaches zero). Fails when
/// the applied position stops moving for `stall` (slow is fine, stuck is not), or the task
/// stops running.
pub async fn wait_applied(
    stack: &Stack,
    task: &str,
    pos: &BinlogFilePos,
    stall: Duration,
) -> Result<TaskStatusView> {
    let mut last: Option<BinlogFilePos> = None;
    let mut moved = std::time::Instant::now();
    loop {
        let v = stack.status(task).await?;
        ensure!(v.state == TaskState::Running, "task {task} is not running: {:?}", v.error);
        let applied = v.applied_position.as_ref().map(|p| p.binlog.clone());
        if applied.as_ref().is_some_and(|a| a >= pos) {
            return Ok(v);
        }
        if applied != last {
            last = applied;
            moved = std::time::Instant::now();
        } else if moved.elapsed() > stall {
            anyhow::bail!("{task} stopped applying at {last:?} for {stall:?}, short of {pos}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn wait_phase(
    stack: &Stack,
    task: &str,
    phase: Phase,
    timeout: Duration,
) -> Result<TaskStatusView> {
    eventually(&format!("{task} to reach {phase:?}"), timeout, || async {
        let v = stack.status(task).await?;
        ensure!(v.state == TaskState::Running, "task is not running: {:?}", v.error);
        Ok((v.phase == Some(phase)).then_some(v))
    })
    .await
}

pub async fn assert_equal(db: &str) -> Result<()> {
    let mut src = admin("source").await?;
    let mut tgt = admin("target").await?;
    let tdb = format!("{db}_t");
    for t in TABLES {
        same_rows(
            &mut Side { conn: &mut src, db, table: t },
            &mut Side { conn: &mut tgt, db: &tdb, table: t },
        )
        .await
        .with_context(|| format!("table {t}"))?;
    }
    Ok(())
}

/// A fresh `incremental` scenario: its database, task name, scenario and cleanup guard.
pub async fn incremental_scenario(prefix: &str) -> Result<(String, String, Scenario, DropOnExit)> {
    let db = unique(prefix);
    let task = db.replace('_', "-");
    let cleanup = DropOnExit(vec![db.clone(), format!("{db}_t")]);
    let scenario = Scenario::new("incremental", &db, &task)?;
    scenario.prepare_source().await?;
    Ok((db, task, scenario, cleanup))
}

/// A task of the `incremental` scenario started on its own stack and synced past the full
/// copy (no workload): its database, task name, stack, a source connection in the database,
/// and the cleanup guard.
pub struct Syncing {
    pub db: String,
    pub task: String,
    pub stack: Stack,
    pub src: mysql_async::Conn,
    pub _cleanup: DropOnExit,
}

/// Waits (up to a minute) for the task to pause; its status then.
pub async fn wait_paused(stack: &Stack, task: &str) -> Result<TaskStatusView> {
    eventually("the task to pause", Duration::from_secs(60), || async {
        let v = stack.status(task).await?;
        Ok((v.state == TaskState::Paused).then_some(v))
    })
    .await
}

pub async fn start_syncing(prefix: &str, test: &str) -> Result<Syncing> {
    let (db, task, scenario, cleanup) = incremental_scenario(prefix).await?;
    let stack = Stack::start(test).await?;
    stack.create_and_start(&scenario.render("task.yaml")?).await?;
    wait_phase(&stack, &task, Phase::Incremental, Duration::from_secs(300)).await?;
    let mut src = admin("source").await?;
    src.query_drop(format!("USE `{db}`")).await?;
    Ok(Syncing { db, task, stack, src, _cleanup: cleanup })
}

#[tokio::test(flavor = "multi_thread")]
async fn workload_from_before_the_copy_ends_equal() -> Result<()> {
    let (db, task, scenario, _cleanup) = incremental_scenario("e2e_inc").await?;
    let stack = Stack::start("incremental").await?;
    let workload = Workload::start(&db, 7, Duration::ZERO).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack.create_and_start(&scenario.render("task.yaml")?).await?;
    wait_phase(&stack, &task, Phase::Incremental, Duration::from_secs(300)).await?;
    // Well into the incremental phase, with a transaction of 100k rows in the middle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut conn = admin("source").await?;
    conn.query_drop(format!("USE `{db}`")).await?;
    conn.query_drop("INSERT INTO big (id, v) SELECT seq, seq FROM seq_1_to_100000").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    conn.query_drop("UPDATE big SET v = v + 1, pad = 'y' WHERE id % 3 = 0").await?;
    let txns = workload.stop().await?;
    ensure!(txns > 100, "the workload ran only {txns} transactions");
    let end = source_position().await?;
    let v = wait_applied(&stack, &task, &end, Duration::from_secs(90)).await?;
    let inc = v.incremental.clone().context("no incremental progress")?;
    ensure!(inc.transactions > 0 && !inc.safe_mode, "incremental progress: {inc:?}");
    ensure!(v.delay_seconds.is_some_and(|d| d < 30.0), "delay: {:?}", v.delay_seconds);
    let (ok, text) = stack.cli(&["task", "status", &task]).await?;
    ensure!(ok && text.contains("applied binlog") && text.contains("delay"), "CLI status: {text}");
    let metrics = stack.metrics_of("sink").await?;
    let label = format!("task=\"{task}\"");
    for name in ["sink_total_record", "sink_delay", "sink_transactions_total"] {
        ensure!(
            metrics.lines().any(|l| l.starts_with(name) && l.contains(&label)),
            "sink metric {name} missing"
        );
    }
    assert_equal(&db).await
}

/// Without a full phase, capture can start after a MariaDB GTID or at a time: changes before
/// the point do not reach the target, every change after it does.
#[tokio::test(flavor = "multi_thread")]
async fn capture_starts_after_a_gtid_or_at_a_time() -> Result<()> {
    let (db, task, scenario, _cleanup) = incremental_scenario("e2e_start").await?;
    let _more = DropOnExit(vec![format!("{db}_u")]);
    let mut src = admin("source").await?;
    src.query_drop(format!("USE `{db}`")).await?;
    src.query_drop(
        "INSERT INTO accounts (id, email, balance, updated) VALUES (800001, 'before@x', 1, NOW(6))",
    )
    .await?;
    let gtid: String = src.query_first("SELECT @@gtid_binlog_pos").await?.context("gtid_binlog_pos")?;
    // Binlog timestamps have whole seconds: the time point is the next second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    src.query_drop("INSERT INTO accounts (id, email, balance, updated) VALUES (800002, 'after@x', 2, NOW(6)), (800003, 'gone@x', 3, NOW(6))")
        .await?;
    src.query_drop("DELETE FROM accounts WHERE id = 800003").await?;

    let stack = Stack::start("start_points").await?;
    let base = scenario
        .render("task.yaml")?
        .replace("phases: [precheck, schema, full, incremental]", "phases: [precheck, schema, incremental]");
    let by_gtid = base.replace("incremental:\n", &format!("incremental:\n  start_gtid: \"{gtid}\"\n"));
    let by_time = base
        .replace(&format!("name: \"{task}\""), &format!("name: \"{task}-t\""))
        .replace(&format!("\"{db}_t\""), &format!("\"{db}_u\""))
        .replace("incremental:\n", &format!("incremental:\n  start_time: \"{at}\"\n"));
    stack.create_and_start(&by_gtid).await?;
    stack.create_and_start(&by_time).await?;
    let end = source_position().await?;
    let mut tgt = admin("target").await?;
    for (t, tdb) in [(task.clone(), format!("{db}_t")), (format!("{task}-t"), format!("{db}_u"))] {
        wait_phase(&stack, &t, Phase::Incremental, Duration::from_secs(120)).await?;
        wait_applied(&stack, &t, &end, Duration::from_secs(60)).await?;
        let ids: Vec<i64> = tgt.query(format!("SELECT id FROM `{tdb}`.accounts ORDER BY id")).await?;
        ensure!(
            ids == vec![800002],
            "{t}: target rows {ids:?} (expected only the change after the start point)"
        );
    }
    Ok(())
}

/// Outside safe mode a target that lost a row, or gained one, is not papered over: the task
/// pauses with a report naming the table and the source position, and nothing of the
/// transaction is applied. Both the row-by-row and the grouped (net-effect) writes must say so.
#[tokio::test(flavor = "multi_thread")]
async fn a_diverged_target_pauses_the_task_with_the_table_and_position() -> Result<()> {
    let Syncing { db, task, stack, mut src, _cleanup } = start_syncing("e2e_div", "diverged").await?;
    let mut tgt = admin("target").await?;
    tgt.query_drop(format!("USE `{db}_t`")).await?;
    // Out of safe mode: a change after the copy has been applied normally.
    src.query_drop("UPDATE accounts SET note = 'synced' WHERE id = 1").await?;
    let end = source_position().await?;
    let v = wait_applied(&stack, &task, &end, Duration::from_secs(60)).await?;
    ensure!(v.incremental.as_ref().is_some_and(|i| !i.safe_mode), "still in safe mode: {v:?}");

    // The target loses row 2; the source then updates it in a transaction with other rows.
    tgt.query_drop("DELETE FROM accounts WHERE id = 2").await?;
    src.query_drop(
        "BEGIN; UPDATE accounts SET note = 'a' WHERE id = 3; UPDATE accounts SET note = 'lost' WHERE id = 2; \
         INSERT INTO accounts (id, email, balance, updated) VALUES (900001, 'new@x', 1, NOW(6)); COMMIT",
    )
    .await?;
    let v = eventually("the task to pause", Duration::from_secs(60), || async {
        let v = stack.status(&task).await?;
        Ok((v.state == TaskState::Paused).then_some(v))
    })
    .await?;
    let err = v.error.clone().context("paused without an error")?;
    ensure!(err.code == "target_diverged", "error: {err:?}");
    ensure!(
        err.object.as_deref().is_some_and(|o| o.contains("accounts"))
            && err.message.contains("not in the target")
            && err.message.contains("source position"),
        "report: {err:?}"
    );
    // Nothing of the failed transaction reached the target.
    let note3: Option<Option<String>> = tgt.query_first("SELECT note FROM accounts WHERE id = 3").await?;
    ensure!(note3.flatten().as_deref() != Some("a"), "row 3 was changed by a failed transaction");
    let new_row: Option<i64> = tgt.query_first("SELECT id FROM accounts WHERE id = 900001").await?;
    ensure!(new_row.is_none(), "row 900001 was inserted by a failed transaction");
    Ok(())
}

/// Rows that existed and changed in a table keyed only by its primary key are rewritten in
/// place with one multi-row REPLACE whose count must be two per row. A target row that already
/// holds its new values counts one, as a missing row does: the first is harmless and must
/// apply (the group is planned again row by row, which tells them apart), the second must
/// pause the task as diverged with nothing of the transaction applied.
#[tokio::test(flavor = "multi_thread")]
async fn a_rewritten_row_missing_on_the_target_pauses_the_task() -> Result<()> {
    let Syncing { db, task, stack, mut src, _cleanup } = start_syncing("e2e_rw", "rewrite").await?;
    let mut tgt = admin("target").await?;
    tgt.query_drop(format!("USE `{db}_t`")).await?;
    src.query_drop("INSERT INTO big (id, v) VALUES (1, 1), (2, 2), (3, 3), (4, 4)").await?;
    let end = source_position().await?;
    let v = wait_applied(&stack, &task, &end, Duration::from_secs(60)).await?;
    ensure!(v.incremental.as_ref().is_some_and(|i| !i.safe_mode), "still in safe mode: {v:?}");

    // Row 2 on the target already holds what the source is about to write: applied anyway.
    tgt.query_drop("UPDATE big SET v = 20 WHERE id = 2").await?;
    src.query_drop("UPDATE big SET v = v * 10 WHERE id IN (1, 2)").await?;
    let end = source_position().await?;
    wait_applied(&stack, &task, &end, Duration::from_secs(60)).await?;
    let got: Vec<(i64, i64)> = tgt.query("SELECT id, v FROM big WHERE id IN (1, 2) ORDER BY id").await?;
    ensure!(got == vec![(1, 10), (2, 20)], "target rows after the rewrite: {got:?}");

    // Row 4 is lost on the target; the source rewrites it with row 3.
    tgt.query_drop("DELETE FROM big WHERE id = 4").await?;
    src.query_drop("UPDATE big SET v = v + 100 WHERE id IN (3, 4)").await?;
    let v = wait_paused(&stack, &task).await?;
    let err = v.error.clone().context("paused without an error")?;
    ensure!(
        err.code == "target_diverged"
            && err.object.as_deref().is_some_and(|o| o.contains("big"))
            && err.message.contains("not in the target"),
        "report: {err:?}"
    );
    let row3: Option<i64> = tgt.query_first("SELECT v FROM big WHERE id = 3").await?;
    ensure!(row3 == Some(3), "row 3 was changed by a failed transaction: {row3:?}");
    let row4: Option<i64> = tgt.query_first("SELECT v FROM big WHERE id = 4").await?;
    ensure!(row4.is_none(), "row 4 was written back by a failed transaction: {row4:?}");
    Ok(())
}

/// The applied totals in the task status come from the lanes' checkpoints on the target: a
/// sink killed and restarted neither forgets nor double-counts what it applied.
/// A large group is written over several connections at once (sink `fan_out`). A crash after
/// one part committed and before the others leaves part of the group on the target: the
/// restarted sink must replay the group idempotently (a plain replay would hit the committed
/// inserts as duplicate keys and pause the task as diverged), count every row once, and end
/// equal to the source.
#[tokio::test(flavor = "multi_thread")]
async fn a_group_cut_between_its_parts_is_replayed_exactly_once() -> Result<()> {
    let Syncing { db, task, mut stack, mut src, _cleanup } = start_syncing("e2e_fanout", "fanout").await?;
    const ROWS: u64 = 2000;
    // A backlog of single-row transactions, so each lane gets groups large enough to fan out.
    stack.sink.kill().await?;
    for id in 0..ROWS {
        src.query_drop(format!("INSERT INTO big (id, v) VALUES ({}, {id})", 5_000_000 + id)).await?;
    }
    let end = source_position().await?;
    stack.sink.set_env("FERRY_FAILPOINT", Some("sink-fan-out-partly-committed"));
    stack.sink.restart()?;
    eventually("the sink to crash at the failpoint", Duration::from_secs(60), || {
        let exited = stack.sink.exited();
        async move { Ok(exited.then_some(())) }
    })
    .await?;
    let mut tgt = admin("target").await?;
    let written: u64 = tgt
        .query_first(format!("SELECT COUNT(*) FROM `{db}_t`.big WHERE id >= 5000000"))
        .await?
        .context("count")?;
    ensure!(written > 0 && written < ROWS, "the crash left {written} of {ROWS} rows: no group was cut");

    stack.sink.set_env("FERRY_FAILPOINT", None);
    stack.sink.restart()?;
    let v = wait_applied(&stack, &task, &end, Duration::from_secs(90)).await?;
    ensure!(v.state == TaskState::Running && v.error.is_none(), "task after the replay: {v:?}");
    let log = std::fs::read_to_string(stack.dir.join("sink.log"))?;
    ensure!(log.contains("replayed in safe mode"), "the restarted sink did not report the safe replay");
    let rows = eventually("the sink to report every row", Duration::from_secs(30), || async {
        let rows = stack.status(&task).await?.incremental.map_or(0, |i| i.rows);
        Ok((rows >= ROWS).then_some(rows))
    })
    .await?;
    ensure!(rows == ROWS, "rows applied {rows}, expected {ROWS}: a row was counted twice");
    assert_equal(&db).await
}

/// A source transaction larger than one NATS message (the store splits it into parts) reaches
/// the target as one target transaction, so no reader there ever sees it half applied, even
/// when the dispatcher is killed between its parts. The target's own binlog shows how many
/// transactions wrote the table.
#[tokio::test(flavor = "multi_thread")]
async fn a_split_transaction_commits_on_the_target_as_one() -> Result<()> {
    let Syncing { db, task, mut stack, mut src, _cleanup } = start_syncing("e2e_split", "split").await?;
    const ROWS: u64 = 40_000;
    let mut tgt = admin("target").await?;
    let from = binlog_position("target").await?;
    let js = async_nats::jetstream::new(async_nats::connect(&stack.nats.url).await?);
    let mut cdc = js.get_stream(ferry_schemas::names::cdc_stream(&task)).await?;
    let cdc_before = cdc.info().await?.state.last_sequence;

    stack.dispatcher.kill().await?;
    stack.dispatcher.set_env("FERRY_FAILPOINT", Some("dispatcher-mid-transaction"));
    stack.dispatcher.restart()?;
    src.query_drop(format!(
        "INSERT INTO big (id, v, pad) SELECT seq, seq, REPEAT('p', 40) FROM seq_1_to_{ROWS}"
    ))
    .await?;
    let end = source_position().await?;
    eventually("the dispatcher to crash between the parts", Duration::from_secs(60), || {
        let exited = stack.dispatcher.exited();
        async move { Ok(exited.then_some(())) }
    })
    .await?;
    let parts = cdc.info().await?.state.last_sequence - cdc_before;
    ensure!(parts >= 2, "the transaction reached the CDC stream as {parts} message(s), not split");
    stack.dispatcher.set_env("FERRY_FAILPOINT", None);
    stack.dispatcher.restart()?;
    let v = wait_applied(&stack, &task, &end, Duration::from_secs(120)).await?;
    ensure!(v.state == TaskState::Running && v.error.is_none(), "task: {v:?}");

    let written: u64 =
        tgt.query_first(format!("SELECT COUNT(*) FROM `{db}_t`.big")).await?.context("count")?;
    ensure!(written == ROWS, "target holds {written} of {ROWS} rows");
    let commits = commits_writing(&mut tgt, &from, &format!("{db}_t.big")).await?;
    ensure!(
        commits == 1,
        "the {parts}-part transaction was committed on the target as {commits} transactions"
    );
    assert_equal(&db).await
}

/// Above `incremental.max_atomic_mb` the sink does not hold a split transaction: it applies
/// it in pieces, in safe mode, and says so; the target still ends equal.
#[tokio::test(flavor = "multi_thread")]
async fn a_split_transaction_above_max_atomic_mb_is_applied_in_pieces() -> Result<()> {
    let (db, task, scenario, _cleanup) = incremental_scenario("e2e_pieces").await?;
    let stack = Stack::start("pieces").await?;
    let spec = scenario.render("task.yaml")?.replace("  fan_out: 4\n", "  fan_out: 4\n  max_atomic_mb: 1\n");
    ensure!(spec.contains("max_atomic_mb: 1"), "spec not changed:\n{spec}");
    stack.create_and_start(&spec).await?;
    wait_phase(&stack, &task, Phase::Incremental, Duration::from_secs(300)).await?;
    let mut tgt = admin("target").await?;
    let from = binlog_position("target").await?;
    let mut src = admin("source").await?;
    src.query_drop(format!("USE `{db}`")).await?;
    src.query_drop("INSERT INTO big (id, v, pad) SELECT seq, seq, REPEAT('q', 40) FROM seq_1_to_40000")
        .await?;
    let end = source_position().await?;
    let v = wait_applied(&stack, &task, &end, Duration::from_secs(120)).await?;
    ensure!(v.state == TaskState::Running && v.error.is_none(), "task: {v:?}");
    let commits = commits_writing(&mut tgt, &from, &format!("{db}_t.big")).await?;
    ensure!(commits > 1, "a transaction over max_atomic_mb was committed as {commits} transaction(s)");
    let log = std::fs::read_to_string(stack.dir.join("sink.log"))?;
    ensure!(log.contains("applied in pieces"), "the sink did not say it applied the transaction in pieces");
    assert_equal(&db).await
}

/// A row of SHOW BINLOG EVENTS, its Info as bytes: other tests' statements logged in the
/// same range carry binary values.
type BinlogEvent = (String, u64, String, u64, u64, Option<Vec<u8>>);

/// Transactions in the target's binlog from `from` on that wrote `table` (`db.table`).
async fn commits_writing(conn: &mut mysql_async::Conn, from: &BinlogFilePos, table: &str) -> Result<u64> {
    let files: Vec<(String, u64)> = conn.query("SHOW BINARY LOGS").await?;
    let mut commits = 0;
    let mut writes_table = false;
    let marker = format!("({table})");
    for (name, _) in files.iter().filter(|(name, _)| *name >= from.file) {
        let start = if *name == from.file { from.offset } else { 4 };
        let events: Vec<BinlogEvent> =
            conn.query(format!("SHOW BINLOG EVENTS IN '{name}' FROM {start}")).await?;
        for (_, _, kind, _, _, info) in events {
            match kind.as_str() {
                "Gtid" => writes_table = false,
                "Table_map"
                    if info.is_some_and(|i| i.windows(marker.len()).any(|w| w == marker.as_bytes())) =>
                {
                    writes_table = true
                }
                "Xid" if writes_table => {
                    commits += 1;
                    writes_table = false;
                }
                _ => {}
            }
        }
    }
    Ok(commits)
}

#[tokio::test(flavor = "multi_thread")]
async fn applied_totals_survive_a_sink_kill() -> Result<()> {
    let Syncing { task, mut stack, mut src, _cleanup, .. } = start_syncing("e2e_totals", "totals").await?;
    let applied = |v: &TaskStatusView| v.incremental.as_ref().map_or(0, |i| i.rows);

    // 300 rows in one transaction, 200 in another.
    src.query_drop("UPDATE accounts SET note = 'one' WHERE id <= 300").await?;
    src.query_drop("DELETE FROM accounts WHERE id > 300 AND id <= 500").await?;
    let end = source_position().await?;
    wait_applied(&stack, &task, &end, Duration::from_secs(60)).await?;
    // No other change reached the task's tables since the copy: exactly these 500 rows.
    let before = eventually("the sink to report the 500 rows", Duration::from_secs(30), || async {
        let rows = applied(&stack.status(&task).await?);
        Ok((rows >= 500).then_some(rows))
    })
    .await?;
    ensure!(before == 500, "rows applied {before}, expected 500");

    stack.sink.kill().await?;
    // Forget the killed sink's last report, so what is read next comes from the new one.
    let js = async_nats::jetstream::new(async_nats::connect(&stack.nats.url).await?);
    let status = js.get_key_value(ferry_schemas::names::STATUS_BUCKET).await?;
    status.delete(ferry_schemas::names::status_key(&task, "sink")).await?;
    stack.sink.restart()?;
    // Once the restarted sink has reported, it shows the same total.
    let after_restart = eventually("the restarted sink to report", Duration::from_secs(60), || async {
        let v = stack.status(&task).await?;
        Ok(v.incremental.as_ref().filter(|i| i.rows > 0).map(|i| i.rows))
    })
    .await?;
    ensure!(after_restart == before, "rows applied {before} before the kill, {after_restart} after");

    src.query_drop("UPDATE accounts SET note = 'two' WHERE id > 500 AND id <= 550").await?;
    let end = source_position().await?;
    wait_applied(&stack, &task, &end, Duration::from_secs(60)).await?;
    // The applied position comes from the APPLY stream, the totals from the sink's next report.
    let last = eventually("the sink to report the 50 rows", Duration::from_secs(30), || async {
        let rows = applied(&stack.status(&task).await?);
        Ok((rows >= before + 50).then_some(rows))
    })
    .await?;
    ensure!(last == before + 50, "rows applied {before}, then {last} after 50 more");
    Ok(())
}

/// The APPLY stream keeps only what the sink has not acknowledged plus the message at its ack
/// floor (the dispatcher purges the rest); a dispatcher killed and restarted resumes after the
/// last APPLY message's CDC messages, and packs the transactions it then finds waiting (one
/// partition: all go to it) several to a message: nothing lost, nothing twice.
#[tokio::test(flavor = "multi_thread")]
async fn applied_messages_are_purged_and_dispatch_resumes_after_the_last_one() -> Result<()> {
    let (db, task, scenario, _cleanup) = incremental_scenario("e2e_purge").await?;
    let mut stack = Stack::start("purge").await?;
    let spec = scenario.render("task.yaml")?.replace("  partitions: 4\n", "  partitions: 1\n");
    stack.create_and_start(&spec).await?;
    wait_phase(&stack, &task, Phase::Incremental, Duration::from_secs(300)).await?;
    let mut src = admin("source").await?;
    src.query_drop(format!("USE `{db}`")).await?;
    for id in 1..=30 {
        src.query_drop(format!("UPDATE accounts SET note = 'p{id}' WHERE id = {id}")).await?;
    }
    let end = source_position().await?;
    wait_applied(&stack, &task, &end, Duration::from_secs(60)).await?;
    let js = async_nats::jetstream::new(async_nats::connect(&stack.nats.url).await?);
    let (first, floor, held) = eventually("applied messages to be purged", Duration::from_secs(30), || {
        let js = js.clone();
        let task = task.clone();
        async move {
            let mut apply = js.get_stream(ferry_schemas::names::apply_stream(&task)).await?;
            let state = apply.info().await?.state.clone();
            let consumer = ferry_schemas::names::sink_apply_consumer(&task);
            let floor = apply.consumer_info(&consumer).await?.ack_floor.stream_sequence;
            // The floor, read after the stream, must still be in it: stop at the first sample
            // that shows otherwise, or once the purge has passed the 30 updates.
            let kept = state.messages > 0 && state.first_sequence <= floor;
            Ok((!kept || state.first_sequence > 30).then_some((state.first_sequence, floor, state.messages)))
        }
    })
    .await?;
    ensure!(
        first > 30 && first <= floor && held > 0,
        "first APPLY message {first}, ack floor {floor}, {held} held"
    );

    stack.dispatcher.kill().await?;
    let last_of = |name: String| {
        let js = js.clone();
        async move { anyhow::Ok(js.get_stream(name).await?.info().await?.state.last_sequence) }
    };
    let (cdc_before, apply_before) = (
        last_of(ferry_schemas::names::cdc_stream(&task)).await?,
        last_of(ferry_schemas::names::apply_stream(&task)).await?,
    );
    for id in 31..=230 {
        src.query_drop(format!("UPDATE accounts SET note = 'q{id}' WHERE id = {id}")).await?;
    }
    stack.dispatcher.restart()?;
    let end = source_position().await?;
    wait_applied(&stack, &task, &end, Duration::from_secs(60)).await?;
    let cdc = last_of(ferry_schemas::names::cdc_stream(&task)).await? - cdc_before;
    let apply = last_of(ferry_schemas::names::apply_stream(&task)).await? - apply_before;
    // 200 transactions (and a heartbeat a second, which travel alone) in far fewer messages.
    ensure!(cdc >= 200 && apply * 2 < cdc, "{cdc} CDC messages became {apply} APPLY messages");
    assert_equal(&db).await
}

/// An APPLY stream an older Ferry created as a work queue (it deletes the message a restart
/// resumes from) is refused: the task pauses with the stream named and the fix.
#[tokio::test(flavor = "multi_thread")]
async fn a_work_queue_apply_stream_pauses_the_task_with_the_fix() -> Result<()> {
    let (_db, task, scenario, _cleanup) = incremental_scenario("e2e_wq").await?;
    let stack = Stack::start("workqueue").await?;
    let js = async_nats::jetstream::new(async_nats::connect(&stack.nats.url).await?);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: ferry_schemas::names::apply_stream(&task),
        subjects: vec![ferry_schemas::names::apply_subjects(&task)],
        retention: async_nats::jetstream::stream::RetentionPolicy::WorkQueue,
        ..Default::default()
    })
    .await?;
    stack.create_and_start(&scenario.render("task.yaml")?).await?;
    let v = eventually("the task to pause", Duration::from_secs(300), || async {
        let v = stack.status(&task).await?;
        Ok((v.state == TaskState::Paused).then_some(v))
    })
    .await?;
    let err = v.error.clone().context("paused without an error")?;
    ensure!(
        err.message.contains(&ferry_schemas::names::apply_stream(&task))
            && err.message.contains("work queue")
            && err.message.contains("new full copy"),
        "error: {err:?}"
    );
    Ok(())
}
