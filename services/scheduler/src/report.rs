//! The check report the API serves: the checker's status plus each table's newest result,
//! read from the task's CHECK stream; and the correction SQL written from it.

use crate::store::Store;
use ferry_kit::KitError;
use ferry_schemas::check::{CheckEvent, CheckReport, TableCheck};
use ferry_schemas::envelope::Envelope;
use ferry_schemas::names;

/// `None` when the task was never verified.
pub async fn build(store: &Store, task: &str) -> Result<Option<CheckReport>, KitError> {
    let Some(status) = store.checker_status(task).await?.filter(|s| s.epoch > 0) else { return Ok(None) };
    let Some((record, _)) = store.record(task).await? else { return Ok(None) };
    // The checker writes its results in the target region.
    let stream = store
        .target_js(&record.spec)
        .get_stream(names::check_stream(task))
        .await
        .map_err(|e| KitError::nats(format!("opening {}", names::check_stream(task)), e))?;
    let mut tables = Vec::with_capacity(status.results.len());
    for seq in status.results.values() {
        let msg = stream
            .get_raw_message(*seq)
            .await
            .map_err(|e| KitError::nats(format!("reading check result {seq}"), e))?;
        let env: Envelope<CheckEvent> = serde_json::from_slice(&msg.payload)
            .map_err(|source| KitError::Json { what: format!("check result {seq}"), source })?;
        let CheckEvent::Table(t) = env.body;
        tables.push(t);
    }
    Ok(Some(CheckReport {
        task: task.to_owned(),
        done: status.done,
        live: status.live,
        started_at: status.started_at,
        finished_at: status.finished_at,
        totals: status.totals,
        tables,
    }))
}

/// One script for every table that differs.
pub fn correction_sql(report: &CheckReport) -> Result<String, String> {
    let mut out = format!("-- Ferry correction SQL for task {}\n", report.task);
    let differing: Vec<&TableCheck> = report.tables.iter().filter(|t| t.differences() > 0).collect();
    if differing.is_empty() {
        out.push_str("-- No differences: nothing to correct.\n");
    }
    for t in differing {
        out.push_str(&ferry_schemas::correction::script(t).map_err(|e| format!("{}: {e}", t.source))?);
    }
    Ok(out)
}
