//! Every worker service's `/metrics` during a sync: the OMS metric names, labelled by task,
//! with plausible values.

use crate::harness::{eventually, Stack};
use crate::incremental::{incremental_scenario, wait_phase, Workload};
use anyhow::{ensure, Context, Result};
use ferry_schemas::task::Phase;
use std::time::Duration;

/// The value of `name{task="..."}` in a Prometheus text, if present.
fn value(text: &str, name: &str, task: &str) -> Option<f64> {
    let prefix = format!("{name}{{task=\"{task}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_service_exports_oms_metrics_by_task_while_syncing() -> Result<()> {
    let (db, task, scenario, _cleanup) = incremental_scenario("e2e_metrics").await?;
    let stack = Stack::start("metrics").await?;
    let workload = Workload::start(&db, 17, Duration::from_millis(5)).await?;
    stack.create_and_start(&scenario.render("task.yaml")?).await?;
    wait_phase(&stack, &task, Phase::Incremental, Duration::from_secs(300)).await?;
    // Rates are recomputed every 5 s: wait until both ends show changes flowing.
    let (store, sink) = eventually("source_rps and sink_tps above 0", Duration::from_secs(60), || async {
        let (store, sink) = (stack.metrics_of("store").await?, stack.metrics_of("sink").await?);
        let flowing = value(&store, "source_rps", &task).unwrap_or_default() > 0.0
            && value(&sink, "sink_tps", &task).unwrap_or_default() > 0.0;
        Ok(flowing.then_some((store, sink)))
    })
    .await?;

    let delay = value(&store, "source_delay", &task).context("store: source_delay missing")?;
    ensure!((0.0..5.0).contains(&delay), "source_delay {delay} s while syncing");
    let captured = value(&store, "source_record_num", &task).context("store: source_record_num missing")?;
    ensure!(captured > 0.0, "source_record_num {captured}");
    let rps = value(&store, "source_rps", &task).context("store: source_rps missing")?;
    ensure!(rps > 0.0, "source_rps {rps} while the workload writes");

    let dispatcher = stack.metrics_of("dispatcher").await?;
    let ready = value(&dispatcher, "dispatcher_ready_transaction_size", &task)
        .context("dispatcher: dispatcher_ready_transaction_size missing")?;
    ensure!(ready >= 0.0, "dispatcher_ready_transaction_size {ready}");

    for name in ["sink_total_record", "sink_rps", "sink_tps", "sink_transactions_total", "sink_delay"] {
        ensure!(value(&sink, name, &task).is_some(), "sink: {name} missing:\n{sink}");
    }
    ensure!(value(&sink, "sink_total_record", &task).unwrap_or_default() > 0.0, "nothing applied");
    ensure!(value(&sink, "sink_tps", &task).unwrap_or_default() > 0.0, "sink_tps is 0 while syncing");
    for name in ["sink_execute_time_count", "sink_commit_time_count"] {
        ensure!(value(&sink, name, &task).unwrap_or_default() > 0.0, "sink: {name} missing or 0");
    }
    let full = stack.metrics_of("full-migrator").await?;
    ensure!(value(&full, "full_rows_total", &task).unwrap_or_default() > 0.0, "full_rows_total missing or 0");
    workload.stop().await?;
    Ok(())
}
