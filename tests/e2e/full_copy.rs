//! Structure and full copy of a database with every type, end to end through JetStream.

use crate::harness::{admin, unique, Stack};
use crate::scenario::Scenario;
use crate::verify::{same_rows, same_structure, Side};
use anyhow::{ensure, Result};
use ferry_schemas::status::TaskState;
use mysql_async::prelude::*;
use std::time::Duration;

pub const TABLES: &[&str] = &["all_types", "orders", "order_items", "audit_log", "people_latin1", "sbtest"];

/// Target table name of a source table in the `full_all_types` scenario.
pub fn target_table(t: &str) -> &str {
    if t == "sbtest" {
        "sbtest_renamed"
    } else {
        t
    }
}

/// Proves every table and view of the scenario equal on both sides.
pub async fn assert_copied(db: &str) -> Result<()> {
    let tdb = format!("{db}_t");
    let mut src = admin("source").await?;
    let mut tgt = admin("target").await?;
    for t in TABLES {
        let mut s = Side { conn: &mut src, db, table: t };
        let mut d = Side { conn: &mut tgt, db: &tdb, table: target_table(t) };
        let rows = same_rows(&mut s, &mut d).await?;
        ensure!(rows > 0, "{t} has no rows");
        same_structure(&mut s, &mut d).await?;
    }
    for v in ["v_region_totals", "v_eu"] {
        let q = |d: &str| format!("SELECT region, n, CAST(amount AS CHAR) FROM `{d}`.`{v}` ORDER BY region");
        let a: Vec<(String, i64, String)> = src.query(q(db)).await?;
        let b: Vec<(String, i64, String)> = tgt.query(q(&tdb)).await?;
        ensure!(!a.is_empty() && a == b, "view {v} differs: {a:?} vs {b:?}");
        let def: Option<String> = tgt
            .exec_first("SELECT VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", (&tdb, v))
            .await?;
        let def = def.unwrap_or_default();
        ensure!(!def.contains(&format!("`{db}`.")), "view {v} still refers to the source database: {def}");
    }
    Ok(())
}

/// The comparison must see a one-ulp FLOAT change and a one-microsecond TIMESTAMP change.
async fn detects_single_value_changes(db: &str) -> Result<()> {
    let tdb = format!("{db}_t");
    let mut src = admin("source").await?;
    let mut tgt = admin("target").await?;
    src.query_drop("SET time_zone = '+00:00'").await?;
    // Binary protocol, so the FLOAT arrives bit-exact.
    let original: Option<(f32, String)> =
        src.exec_first(format!("SELECT f, CAST(ts6 AS CHAR) FROM `{db}`.all_types WHERE id = 4"), ()).await?;
    let (f, ts6) = original.ok_or_else(|| anyhow::anyhow!("row 4 missing"))?;
    let bumped = f32::from_bits(f.to_bits() + 1);
    let changes: [(String, Vec<mysql_async::Value>); 2] = [
        (format!("UPDATE `{tdb}`.all_types SET f = ? WHERE id = 4"), vec![bumped.into()]),
        (
            format!("UPDATE `{tdb}`.all_types SET f = ?, ts6 = ts6 + INTERVAL 1 MICROSECOND WHERE id = 4"),
            vec![f.into()],
        ),
    ];
    for (change, params) in changes {
        tgt.exec_drop(&change, params).await?;
        let mut s = Side { conn: &mut src, db, table: "all_types" };
        let mut d = Side { conn: &mut tgt, db: &tdb, table: "all_types" };
        ensure!(same_rows(&mut s, &mut d).await.is_err(), "the comparison missed: {change}");
    }
    tgt.query_drop("SET time_zone = '+00:00'").await?;
    tgt.exec_drop(format!("UPDATE `{tdb}`.all_types SET ts6 = ? WHERE id = 4"), (ts6,)).await?;
    let mut s = Side { conn: &mut src, db, table: "all_types" };
    let mut d = Side { conn: &mut tgt, db: &tdb, table: "all_types" };
    same_rows(&mut s, &mut d).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_structure_and_data_of_every_type_exactly() -> Result<()> {
    let db = unique("e2e_full");
    let task = db.replace('_', "-");
    let scenario = Scenario::new("full_all_types", &db, &task)?;
    let _cleanup = crate::harness::DropOnExit(vec![db.clone(), format!("{db}_t")]);
    scenario.prepare_source().await?;
    let stack = Stack::start("full_copy").await?;

    let spec_path = stack.dir.join("task.yaml");
    std::fs::write(&spec_path, scenario.render("task.yaml")?)?;
    let (ok, out) =
        stack.cli(&["task", "create", "-f", spec_path.to_str().unwrap_or_default(), "--start"]).await?;
    ensure!(ok, "ferry task create failed: {out}");

    let view = stack.wait_settled(&task, Duration::from_secs(600)).await?;
    ensure!(view.state == TaskState::Completed, "task did not complete: {view:?}");
    // The verify phase found every type, zero dates and the renamed table equal.
    let check = view.check.clone().ok_or_else(|| anyhow::anyhow!("no verification in the view"))?;
    ensure!(
        check.done && check.totals.tables == TABLES.len() as u64 && check.totals.differences() == 0,
        "verification after the copy: {check:?}"
    );
    ensure!(
        view.p0.is_some() && view.p1.is_some() && view.p0 <= view.p1,
        "positions P0 <= P1 expected: {:?} {:?}",
        view.p0,
        view.p1
    );
    ensure!(view.views_applied == 2, "views applied: {}", view.views_applied);
    let sbtest = view
        .tables
        .iter()
        .find(|t| t.source.table == "sbtest")
        .ok_or_else(|| anyhow::anyhow!("no sbtest line"))?;
    ensure!(
        sbtest.rows_applied == 120_000 && sbtest.rows_published == 120_000,
        "sbtest progress: {sbtest:?}"
    );
    ensure!(view.tables.iter().any(|t| t.keyless && t.source.table == "audit_log"), "audit_log is keyless");
    ensure!(
        view.precheck.iter().any(|c| c.object.as_deref() == Some(&format!("{db}.audit_log"))
            && c.outcome == ferry_schemas::status::CheckOutcome::Warn),
        "precheck warns about the keyless table"
    );

    assert_copied(&db).await?;
    detects_single_value_changes(&db).await?;

    let (ok, out) = stack.cli(&["task", "status", &task]).await?;
    ensure!(
        ok && out.contains("completed") && out.contains("100%") && out.contains("sbtest"),
        "ferry task status output: {out}"
    );
    let (ok, out) = stack.cli(&["task", "list"]).await?;
    ensure!(ok && out.contains(&task), "ferry task list output: {out}");
    let (code, _) = stack.get_json(&format!("/tasks/{task}")).await?;
    ensure!(code == 200);
    let total: u64 = view.tables.iter().map(|t| t.rows_applied).sum();
    let sink_metrics = stack.metrics_of("sink").await?;
    let line = format!("sink_total_record{{task=\"{task}\"}} {total}");
    ensure!(sink_metrics.contains(&line), "sink /metrics lacks `{line}`:\n{sink_metrics}");
    ensure!(
        sink_metrics.contains(&format!("sink_commit_time_count{{task=\"{task}\"}}")),
        "sink_commit_time missing"
    );
    let fm_metrics = stack.metrics_of("full-migrator").await?;
    ensure!(
        fm_metrics.contains(&format!("full_rows_total{{task=\"{task}\"}} {total}")),
        "full-migrator /metrics:\n{fm_metrics}"
    );
    let spec_json = stack.get_json("/tasks").await?.1.to_string();
    ensure!(!spec_json.contains("ferry-dev-pass"), "the API leaks a password");

    Ok(())
}
