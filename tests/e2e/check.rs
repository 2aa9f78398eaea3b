//! Verification and correction end to end: the verify phase after a full copy, each kind of
//! difference seeded on the target and reported exactly, the correction SQL, `ferry task
//! correct` and the re-verification that follows it.

use crate::harness::{admin, eventually, unique, Stack};
use crate::incremental::{incremental_scenario, source_position, wait_applied, wait_phase, Workload};
use crate::scenario::Scenario;
use anyhow::{ensure, Context, Result};
use ferry_schemas::check::{CheckReport, DiffKind};
use ferry_schemas::status::TaskState;
use ferry_schemas::task::Phase;
use mysql_async::prelude::*;
use std::collections::BTreeSet;
use std::time::Duration;

/// What a report says, as comparable lines: `table kind key [columns]`.
fn findings(report: &CheckReport) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for t in &report.tables {
        for d in &t.diffs {
            let cols: Vec<&str> = d.columns.iter().map(|c| c.column.as_str()).collect();
            let key = match d.kind {
                _ if !d.key.is_empty() => serde_json::Value::Array(d.key.clone()).to_string(),
                DiffKind::Extra => {
                    serde_json::Value::Array(d.target_row.clone().unwrap_or_default()).to_string()
                }
                _ => serde_json::Value::Array(d.source_row.clone().unwrap_or_default()).to_string(),
            };
            out.insert(
                format!("{} {:?} {key} {}", t.source.table, d.kind, cols.join(",")).trim_end().to_owned(),
            );
        }
    }
    out
}

async fn report(stack: &Stack, task: &str) -> Result<CheckReport> {
    let (code, v) = stack.get_json(&format!("/tasks/{task}/check-report")).await?;
    ensure!(code == 200, "GET check-report: HTTP {code}: {v}");
    Ok(serde_json::from_value(v)?)
}

/// One difference of every kind on the target, and one that is not a difference: trailing
/// spaces in a CHAR column, which the server does not keep.
async fn seed_differences(tdb: &str) -> Result<()> {
    let mut tgt = admin("target").await?;
    tgt.query_drop(format!("USE `{tdb}`")).await?;
    let ratio: Option<f32> = tgt.exec_first("SELECT ratio FROM items WHERE id = 90", ()).await?;
    let ratio = ratio.context("row 90 has a ratio")?;
    tgt.exec_drop("UPDATE items SET ratio = ? WHERE id = 90", (f32::from_bits(ratio.to_bits() + 1),)).await?;
    tgt.query_drop(
        "DELETE FROM items WHERE id = 10;
         INSERT INTO items SELECT 100000, name, note, code, amount, at, data, doc, title, ratio FROM items WHERE id = 11;
         UPDATE items SET amount = amount + 0.0001 WHERE id = 20;
         UPDATE items SET name = '' WHERE id = 35;
         UPDATE items SET note = CONCAT(note, ' ') WHERE id = 40;
         UPDATE items SET at = at + INTERVAL 1 MICROSECOND WHERE id = 50;
         UPDATE items SET data = CONCAT(LEFT(data, 5), CHAR(ASCII(SUBSTRING(data, 6, 1)) ^ 1), SUBSTRING(data, 7)) WHERE id = 60;
         UPDATE items SET doc = JSON_SET(doc, '$.n', 71) WHERE id = 70;
         UPDATE items SET title = LOWER(title) WHERE id = 80;
         UPDATE items SET code = CONCAT(code, '   ') WHERE id = 100;
         UPDATE pairs SET v = v + 1 WHERE a = 1 AND b = 'k1';
         DELETE FROM pairs WHERE a = 2 AND b = 'k2';
         INSERT INTO pairs VALUES (49, 'zz', 0);
         DELETE FROM log_lines WHERE line = 'line 5' ORDER BY at LIMIT 1;
         INSERT INTO log_lines VALUES ('2026-03-01 00:00:00', 'extra line');",
    )
    .await?;
    Ok(())
}

fn expected_findings() -> BTreeSet<String> {
    [
        "items Missing [10]",
        "items Extra [100000]",
        "items Changed [20] amount",
        "items Changed [35] name",
        "items Changed [40] note",
        "items Changed [50] at",
        "items Changed [60] data",
        "items Changed [70] doc",
        "items Changed [80] title",
        "items Changed [90] ratio",
        "pairs Changed [1,\"k1\"] v",
        "pairs Missing [2,\"k2\"]",
        "pairs Extra [49,\"zz\"]",
        "log_lines Missing [\"2026-02-01T00:05:00\",\"line 5\"]",
        "log_lines Extra [\"2026-03-01T00:00:00\",\"extra line\"]",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_kind_of_difference_is_reported_then_corrected() -> Result<()> {
    let db = unique("e2e_check");
    let tdb = format!("{db}_t");
    let task = db.replace('_', "-");
    let scenario = Scenario::new("check_kinds", &db, &task)?;
    let _cleanup = crate::harness::DropOnExit(vec![db.clone(), tdb.clone()]);
    scenario.prepare_source().await?;
    let stack = Stack::start("check_kinds").await?;

    // Copy, then the verify phase: an exact copy verifies clean and the task completes.
    stack.create_and_start(&scenario.render("task.yaml")?).await?;
    let view = stack.wait_settled(&task, Duration::from_secs(300)).await?;
    ensure!(view.state == TaskState::Completed, "copy + verify did not complete: {view:?}");
    let clean = report(&stack, &task).await?;
    ensure!(clean.done && clean.totals.tables == 3, "report after the copy: {clean:?}");
    ensure!(
        clean.totals.differences() == 0,
        "a fresh copy verified with differences: {:?}",
        findings(&clean)
    );
    ensure!(clean.totals.source_rows == 5000 + 1200 + 300, "rows verified: {:?}", clean.totals);
    let items = clean.tables.iter().find(|t| t.source.table == "items").context("items result")?;
    ensure!(items.chunks >= 7, "items was not checked in chunks: {items:?}");

    // A verify-only task on the same databases, after seeding differences on the target.
    seed_differences(&tdb).await?;
    let verify_task = format!("{task}-v");
    let spec = scenario
        .render("task.yaml")?
        .replace(&format!("name: \"{task}\""), &format!("name: \"{verify_task}\""))
        .replace("phases: [precheck, schema, full, verify]", "phases: [verify]");
    stack.create_and_start(&spec).await?;
    let view = stack.wait_settled(&verify_task, Duration::from_secs(300)).await?;
    ensure!(view.state == TaskState::Paused, "differences must pause the task: {view:?}");
    let err = view.error.clone().context("paused without an error")?;
    ensure!(
        err.code == "verification_failed" && err.message.contains("3 missing, 3 extra and 9 changed"),
        "{err:?}"
    );
    let found = report(&stack, &verify_task).await?;
    ensure!(
        findings(&found) == expected_findings(),
        "findings differ:\n got {:#?}\nwant {:#?}",
        findings(&found),
        expected_findings()
    );
    let changed_note = found
        .tables
        .iter()
        .flat_map(|t| &t.diffs)
        .find(|d| d.key == vec![serde_json::json!(40)])
        .context("row 40")?;
    ensure!(
        changed_note.columns[0].source == serde_json::json!("note40")
            && changed_note.columns[0].target == serde_json::json!("note40 "),
        "values of the trailing-space difference: {changed_note:?}"
    );

    let metrics = stack.metrics_of("checker").await?;
    let label = format!("task=\"{verify_task}\"");
    ensure!(
        metrics
            .lines()
            .any(|l| l.starts_with("checker_diff_rows") && l.contains(&label) && l.ends_with(" 15")),
        "checker_diff_rows for {verify_task} is not 15:\n{metrics}"
    );
    ensure!(
        metrics.lines().any(|l| l.starts_with("checker_rows_total") && l.contains(&label)),
        "checker_rows_total missing:\n{metrics}"
    );

    // The CLI shows it; the correction SQL deletes extras first, then replaces.
    let (ok, out) = stack.cli(&["task", "check-report", &verify_task]).await?;
    ensure!(
        ok && out.contains("missing  key [10]")
            && out.contains("title: source \"Title 80\" target \"title 80\""),
        "check-report output: {out}"
    );
    let (ok, sql) = stack.cli(&["task", "check-report", &verify_task, "--sql"]).await?;
    ensure!(ok, "check-report --sql failed: {sql}");
    ensure!(
        sql.matches("REPLACE INTO").count() == 12 && sql.matches("DELETE FROM").count() == 3,
        "statements: {sql}"
    );
    for section in sql.split("-- Ferry correction for").skip(1) {
        let last_delete = section.rfind("DELETE FROM").unwrap_or(0);
        let first_replace = section.find("REPLACE INTO").unwrap_or(usize::MAX);
        ensure!(last_delete < first_replace, "a table's deletes must come before its replaces: {section}");
    }

    // Correct: the checker applies it and re-verifies the rows it wrote.
    let (ok, out) = stack.cli(&["task", "correct", &verify_task]).await?;
    ensure!(ok, "ferry task correct failed: {out}");
    let corrected = eventually("the correction to finish", Duration::from_secs(120), || async {
        let v = stack.status(&verify_task).await?;
        Ok(v.check.filter(|c| c.corrections_done == 1 && c.done))
    })
    .await?;
    ensure!(corrected.error.is_none(), "correction failed: {:?}", corrected.error);
    ensure!(corrected.corrected_rows == 15, "statements run: {}", corrected.corrected_rows);
    ensure!(
        corrected.totals.differences() == 0,
        "rows still differ after the correction: {:?}",
        corrected.totals
    );
    let after = report(&stack, &verify_task).await?;
    ensure!(after.tables.iter().filter(|t| t.recheck).count() == 3, "re-verified tables: {after:?}");

    // Resuming verifies everything again: clean now, and the task completes.
    let (ok, out) = stack.cli(&["task", "resume", &verify_task]).await?;
    ensure!(ok, "resume failed: {out}");
    let view = stack.wait_settled(&verify_task, Duration::from_secs(300)).await?;
    ensure!(view.state == TaskState::Completed, "re-verification did not complete: {view:?}");
    let last = report(&stack, &verify_task).await?;
    ensure!(
        last.totals.differences() == 0 && !last.tables.iter().any(|t| t.recheck),
        "last report: {last:?}"
    );

    // A target without the tables is a finding per table, not a crash or a silent pass.
    let missing_task = format!("{task}-m");
    let spec = scenario
        .render("task.yaml")?
        .replace(&format!("name: \"{task}\""), &format!("name: \"{missing_task}\""))
        .replace(&format!("\"{db}\": \"{tdb}\""), &format!("\"{db}\": \"{db}_nowhere\""))
        .replace("phases: [precheck, schema, full, verify]", "phases: [verify]");
    stack.create_and_start(&spec).await?;
    let view = stack.wait_settled(&missing_task, Duration::from_secs(120)).await?;
    let err = view.error.clone().context("a missing target did not pause the task")?;
    ensure!(
        err.code == "verification_failed" && err.message.contains("3 table(s) whose structure differs"),
        "{err:?}"
    );
    let r = report(&stack, &missing_task).await?;
    ensure!(
        r.tables
            .iter()
            .all(|t| t.problem.as_deref().is_some_and(|p| p.contains("does not exist on the target"))),
        "problems: {:?}",
        r.tables.iter().map(|t| &t.problem).collect::<Vec<_>>()
    );
    Ok(())
}

/// Live verification: while a write workload runs and incremental sync applies it, verification
/// reports nothing (changes in flight are not differences); with the workload stopped and the
/// sink down, a row changed by hand on the target is reported, exactly.
#[tokio::test(flavor = "multi_thread")]
async fn live_verification_reports_only_real_differences() -> Result<()> {
    let (db, task, scenario, _cleanup) = incremental_scenario("e2e_live").await?;
    let mut stack = Stack::start("check_live").await?;
    let workload = Workload::start(&db, 11, Duration::from_millis(2)).await?;
    // Small chunks and a rate cap keep verification running for seconds under the workload.
    let spec = scenario.render("task.yaml")?.replace(
        "phases: [precheck, schema, full, incremental]",
        "phases: [precheck, schema, full, incremental, verify]\nverify:\n  chunk_rows: 1000\n  rows_per_second: 20000",
    );
    stack.create_and_start(&spec).await?;
    wait_phase(&stack, &task, Phase::Verify, Duration::from_secs(300)).await?;
    let before = workload.transactions.load(std::sync::atomic::Ordering::Relaxed);
    let checked = eventually("live verification to finish", Duration::from_secs(300), || async {
        let v = stack.status(&task).await?;
        ensure!(v.state == TaskState::Running, "task stopped running: {:?}", v.error);
        Ok(v.check.filter(|c| c.done))
    })
    .await?;
    let during = workload.transactions.load(std::sync::atomic::Ordering::Relaxed) - before;
    ensure!(during > 0, "the workload did not write while verifying");
    ensure!(checked.live, "verification while syncing must be live: {checked:?}");
    let live_report = report(&stack, &task).await?;
    ensure!(
        checked.totals.differences() == 0,
        "false positives while syncing ({during} transactions during verification): {:?}",
        findings(&live_report)
    );
    ensure!(checked.totals.tables == 3, "tables verified: {:?}", checked.totals);

    // Verify again with changes certainly in flight: the sink frozen while the workload writes,
    // then thawed while the checker waits for it.
    stack.sink.signal("STOP").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let epoch = checked.epoch;
    let (ok, out) = stack.cli(&["task", "verify", &task]).await?;
    ensure!(ok, "ferry task verify failed: {out}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    stack.sink.signal("CONT").await?;
    let rechecked =
        eventually("the second live verification to finish", Duration::from_secs(300), || async {
            let v = stack.status(&task).await?;
            ensure!(v.state == TaskState::Running, "task stopped running: {:?}", v.error);
            Ok(v.check.filter(|c| c.done && c.epoch > epoch))
        })
        .await?;
    let second = report(&stack, &task).await?;
    let in_flight: u64 = second.tables.iter().map(|t| t.chunks_differing).sum();
    ensure!(in_flight > 0, "no range differed with the sink frozen: {:?}", second.totals);
    ensure!(rechecked.totals.differences() == 0, "changes in flight were reported: {:?}", findings(&second));

    workload.stop().await?;
    let end = source_position().await?;
    wait_applied(&stack, &task, &end, Duration::from_secs(90)).await?;
    stack.sink.kill().await?;
    let mut tgt = admin("target").await?;
    let id: Option<i64> =
        tgt.query_first(format!("SELECT id FROM `{db}_t`.accounts ORDER BY id LIMIT 1 OFFSET 100")).await?;
    let id = id.context("target accounts is empty")?;
    tgt.exec_drop(format!("UPDATE `{db}_t`.accounts SET note = 'changed by hand' WHERE id = ?"), (id,))
        .await?;
    let (ok, out) = stack.cli(&["task", "verify", &task]).await?;
    ensure!(ok, "ferry task verify failed: {out}");
    let view = stack.wait_settled(&task, Duration::from_secs(300)).await?;
    let err = view.error.clone().context("the tampered row did not pause the task")?;
    ensure!(err.code == "verification_failed", "{err:?}");
    let found = report(&stack, &task).await?;
    let want: BTreeSet<String> = [format!("accounts Changed [{id}] note")].into_iter().collect();
    ensure!(findings(&found) == want, "findings: {:?}", findings(&found));
    Ok(())
}

/// A checker killed in the middle of a verification continues after a restart with the tables
/// it had not recorded: every table is reported once and the totals are exact.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_checker_resumes_its_verification() -> Result<()> {
    let db = unique("e2e_check_kill");
    let tdb = format!("{db}_t");
    let task = db.replace('_', "-");
    let scenario = Scenario::new("check_kinds", &db, &task)?;
    let _cleanup = crate::harness::DropOnExit(vec![db.clone(), tdb.clone()]);
    scenario.prepare_source().await?;
    let mut stack = Stack::start("check_kill").await?;
    // Slow enough (2,000 rows/s) to be killed in the middle.
    let spec = scenario
        .render("task.yaml")?
        .replace("  chunk_rows: 700", "  chunk_rows: 500\n  rows_per_second: 2000");
    stack.create_and_start(&spec).await?;
    let partial = eventually("a first table to be verified", Duration::from_secs(300), || async {
        let v = stack.status(&task).await?;
        ensure!(v.state == TaskState::Running, "task stopped running: {:?}", v.error);
        Ok(v.check.filter(|c| c.totals.tables >= 1 && !c.done))
    })
    .await?;
    stack.checker.kill().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stack.checker.restart()?;
    let view = stack.wait_settled(&task, Duration::from_secs(300)).await?;
    ensure!(view.state == TaskState::Completed, "verification after the restart did not complete: {view:?}");
    let check = view.check.context("no verification in the view")?;
    ensure!(
        check.epoch == partial.epoch,
        "the restart began a new run: {} then {}",
        partial.epoch,
        check.epoch
    );
    ensure!(
        check.totals.tables == 3 && check.totals.source_rows == 6500 && check.totals.differences() == 0,
        "totals after the restart: {:?}",
        check.totals
    );
    let r = report(&stack, &task).await?;
    let mut tables: Vec<String> = r.tables.iter().map(|t| t.source.table.clone()).collect();
    tables.sort();
    ensure!(tables == ["items", "log_lines", "pairs"], "tables in the report: {tables:?}");
    Ok(())
}

/// Continuous verification: after the verify phase of a syncing task, every row sync changes
/// is compared again; the workload's rows are never reported, and a row a target-side trigger
/// keeps changing is reported once it has stayed different for `report_after_seconds`.
#[tokio::test(flavor = "multi_thread")]
async fn continuous_verification_reports_a_row_that_stays_different() -> Result<()> {
    let (db, task, scenario, _cleanup) = incremental_scenario("e2e_watch").await?;
    let tdb = format!("{db}_t");
    let stack = Stack::start("check_watch").await?;
    let workload = Workload::start(&db, 13, Duration::from_millis(2)).await?;
    let spec = scenario.render("task.yaml")?.replace(
        "phases: [precheck, schema, full, incremental]",
        "phases: [precheck, schema, full, incremental, verify]\nverify:\n  continuous: true\n  report_after_seconds: 2",
    );
    stack.create_and_start(&spec).await?;
    eventually("continuous verification to check the workload's rows", Duration::from_secs(300), || async {
        let v = stack.status(&task).await?;
        ensure!(v.state == TaskState::Running, "task stopped running: {:?}", v.error);
        Ok(v.watch.filter(|w| w.rows_checked > 200))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let w = stack.status(&task).await?.watch.context("no continuous verification status")?;
    ensure!(w.differing == 0, "rows of the workload were reported: {:?}", w.rows);

    let mut tgt = admin("target").await?;
    let id: Option<i64> =
        tgt.query_first(format!("SELECT id FROM `{tdb}`.accounts ORDER BY id LIMIT 1 OFFSET 50")).await?;
    let id = id.context("target accounts is empty")?;
    for (name, event) in [("ferry_e2e_diverge_i", "INSERT"), ("ferry_e2e_diverge_u", "UPDATE")] {
        tgt.query_drop(format!(
            "CREATE TRIGGER `{tdb}`.{name} BEFORE {event} ON `{tdb}`.accounts FOR EACH ROW \
             SET NEW.note = IF(NEW.id = {id}, 'diverged', NEW.note)"
        ))
        .await?;
    }
    let mut src = admin("source").await?;
    src.exec_drop(format!("UPDATE `{db}`.accounts SET note = 'from the source' WHERE id = ?"), (id,)).await?;
    let reported = eventually("the diverged row to be reported", Duration::from_secs(120), || async {
        let v = stack.status(&task).await?;
        ensure!(v.state == TaskState::Running, "task stopped running: {:?}", v.error);
        Ok(v.watch.filter(|w| w.differing >= 1))
    })
    .await?;
    workload.stop().await?;
    ensure!(reported.differing == 1, "reported rows: {:?}", reported.rows);
    let row = reported.rows.iter().find(|r| r.diff.key == vec![serde_json::json!(id)]).context("the row")?;
    let note = row.diff.columns.iter().find(|c| c.column == "note").context("the note column")?;
    ensure!(
        row.table.table == "accounts" && note.target == serde_json::json!("diverged"),
        "reported: {row:?}"
    );
    let (ok, out) = stack.cli(&["task", "status", &task]).await?;
    ensure!(
        ok && out.contains("continuous verification") && out.contains("diverged")
            || out.contains(&format!("[{id}]")),
        "status: {out}"
    );
    Ok(())
}
