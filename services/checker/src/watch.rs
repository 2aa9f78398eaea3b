//! Continuous verification (DM's validator): after a syncing task's verify phase, every row
//! incremental sync changes is compared again once the sink has applied past it, and a row that
//! stays different for `report_after_seconds` is reported.
//!
//! The watcher reads the task's CDC stream from where its status says (new changes only when
//! it starts for a new epoch), queues the keys of every changed row of the task's tables
//! (before and after images, so a key that moved is checked at both places), and once a second
//! compares the queued rows and the ones still different, as live verification does: source
//! read, wait until applied through the source position, target read. A row equal again
//! leaves the list. Restart: the status holds the CDC sequence read up to and every row still
//! different, and is written after each round; rows queued but not yet compared when it is
//! killed are compared when they change again (a rare gap, said so in the docs). A later
//! epoch (after a verification on request) continues from the CDC sequence the last one
//! reached.

use crate::error::CheckError;
use crate::job::{self, JobContext};
use crate::pair::{Pairing, TablePair};
use ferry_kit::nats::{kv_get, kv_put};
use ferry_schemas::cdc::{CdcEvent, ChangeOp};
use ferry_schemas::check::{WatchStatus, WatchedRow};
use ferry_schemas::envelope::Envelope;
use ferry_schemas::names;
use ferry_schemas::table::TableRef;
use ferry_schemas::value::SqlValue;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const STATUS: &str = "checker-watch";
const ROUND: Duration = Duration::from_secs(1);
/// CDC messages read per round at most (the rest wait for the next round).
const MESSAGES_PER_ROUND: u64 = 20_000;
const KEYS_PER_CHECK: usize = 500;
const ROWS_KEPT: usize = 10_000;

/// A row by source table and key (the key as its JSON text, for ordering and equality).
type RowId = (TableRef, String);
/// Key values in the wire encoding.
type JsonKey = Vec<serde_json::Value>;

pub async fn run(ctx: &JobContext, epoch: u64, cancel: &CancellationToken) -> Result<(), CheckError> {
    let key = names::status_key(&ctx.task, STATUS);
    let status_kv = &ctx.rt.buckets.status;
    let mut cdc = ctx
        .rt
        .nats
        .js
        .get_stream(names::cdc_stream(&ctx.task))
        .await
        .map_err(|e| ferry_kit::KitError::nats("opening the CDC stream", e))?;
    let previous: WatchStatus = kv_get(status_kv, &key).await?.unwrap_or_default();
    // A later epoch (after a verification on request) continues where the last watch stopped,
    // so no change goes unchecked in between; the first one starts at the stream's end.
    let mut status = if previous.cdc_seq > 0 {
        WatchStatus { epoch, ..previous }
    } else {
        let last = last_sequence(&mut cdc).await?;
        WatchStatus { epoch, cdc_seq: last, ..WatchStatus::default() }
    };
    status.error = None;
    let report_after = chrono::TimeDelta::seconds(i64::from(ctx.spec.verify.report_after_seconds));
    let mut tracked: BTreeMap<RowId, WatchedRow> = status
        .rows
        .drain(..)
        .map(|r| ((r.table.clone(), serde_json::Value::Array(r.diff.key.clone()).to_string()), r))
        .collect();
    let mut pairs: HashMap<TableRef, Option<TablePair>> = HashMap::new();
    let label = ferry_kit::metrics::task(&ctx.task);
    tracing::info!(task = ctx.task, from = status.cdc_seq, "continuous verification started");
    loop {
        let mut queued: BTreeMap<RowId, JsonKey> = BTreeMap::new();
        read_changes(ctx, &mut cdc, &mut status, &mut queued, &mut pairs).await?;
        for (id, row) in &tracked {
            queued.entry(id.clone()).or_insert_with(|| row.diff.key.clone());
        }
        match check(ctx, &queued, &mut tracked, &mut pairs, &mut status).await {
            Ok(()) => status.error = None,
            // The sink is far behind: nothing can be told yet; the rows stay queued by the next
            // round's changes or the tracked list. Said in the status, the task keeps running.
            Err(CheckError::Definite(r)) if r.code == "sink_behind" => status.error = Some(*r),
            Err(e) => return Err(e),
        }
        let now = chrono::Utc::now();
        // Reported only when a check that began `report_after` after the first one still
        // found it different (a long round alone does not age a row).
        status.differing = tracked.values().filter(|r| r.last_seen - r.since >= report_after).count() as u64;
        status.pending = tracked.len() as u64 - status.differing;
        status.rows = tracked.values().take(ROWS_KEPT).cloned().collect();
        status.updated_at = Some(now);
        kv_put(status_kv, &key, &status).await?;
        ctx.rt
            .metrics
            .checker_diff_rows
            .get_or_create(&label)
            .set(i64::try_from(status.differing).unwrap_or(i64::MAX));
        tokio::select! {
            _ = tokio::time::sleep(ROUND) => {}
            _ = cancel.cancelled() => return Ok(()),
        }
    }
}

/// Queues the keys of the rows changed by CDC messages after `status.cdc_seq`.
async fn read_changes(
    ctx: &JobContext,
    cdc: &mut async_nats::jetstream::stream::Stream,
    status: &mut WatchStatus,
    queued: &mut BTreeMap<RowId, JsonKey>,
    pairs: &mut HashMap<TableRef, Option<TablePair>>,
) -> Result<(), CheckError> {
    let last = last_sequence(cdc).await?;
    let end = last.min(status.cdc_seq + MESSAGES_PER_ROUND);
    for seq in status.cdc_seq + 1..=end {
        let msg = match cdc.get_raw_message(seq).await {
            Ok(m) => m,
            Err(e) if e.kind() == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {
                status.cdc_seq = seq;
                continue;
            }
            Err(e) => return Err(ferry_kit::KitError::nats(format!("reading CDC message {seq}"), e).into()),
        };
        let env: Envelope<CdcEvent> = serde_json::from_slice(&msg.payload)
            .map_err(|source| ferry_kit::KitError::Json { what: format!("CDC message {seq}"), source })?;
        match env.body {
            CdcEvent::Transaction(t) => {
                for change in &t.changes {
                    let Some(tv) = t.tables.get(change.table as usize) else { continue };
                    if !ctx.spec.objects.includes(&tv.table) || tv.key.is_empty() {
                        continue;
                    }
                    let images = match change.op {
                        ChangeOp::Insert => vec![&change.after],
                        ChangeOp::Update => vec![&change.before, &change.after],
                        ChangeOp::Delete => vec![&change.before],
                    };
                    for image in images.into_iter().flatten() {
                        if let Some(k) = key_of(tv, image) {
                            let text = serde_json::Value::Array(k.clone()).to_string();
                            queued.insert((tv.table.clone(), text), k);
                        }
                    }
                }
            }
            CdcEvent::Ddl(d) => {
                // Compare with the new structure from now on.
                for t in &d.tables {
                    pairs.remove(t);
                }
            }
            CdcEvent::Heartbeat(_) => {}
        }
        status.cdc_seq = seq;
    }
    Ok(())
}

async fn last_sequence(cdc: &mut async_nats::jetstream::stream::Stream) -> Result<u64, CheckError> {
    let info = cdc.info().await.map_err(|e| ferry_kit::KitError::nats("reading the CDC stream", e))?;
    Ok(info.state.last_sequence)
}

fn key_of(tv: &ferry_schemas::cdc::TableVersion, image: &[serde_json::Value]) -> Option<JsonKey> {
    tv.key
        .iter()
        .map(|k| {
            let i = tv.columns.iter().position(|c| &c.name == k)?;
            image.get(i).cloned()
        })
        .collect()
}

/// Compares the queued rows, table by table; updates the rows found different.
async fn check(
    ctx: &JobContext,
    queued: &BTreeMap<RowId, JsonKey>,
    tracked: &mut BTreeMap<RowId, WatchedRow>,
    pairs: &mut HashMap<TableRef, Option<TablePair>>,
    status: &mut WatchStatus,
) -> Result<(), CheckError> {
    let mut by_table: BTreeMap<&TableRef, Vec<(&String, &JsonKey)>> = BTreeMap::new();
    for ((table, text), key) in queued {
        by_table.entry(table).or_default().push((text, key));
    }
    for (table, rows) in by_table {
        if !pairs.contains_key(table) {
            let target = ctx.spec.renames.target_of(table);
            let pair = match job::pairing(ctx, table, &target).await? {
                Pairing::Pair(p) => Some(*p),
                Pairing::Problem(problem) => {
                    tracing::warn!(task = ctx.task, %table, problem, "continuous verification skips the table");
                    None
                }
            };
            pairs.insert(table.clone(), pair);
        }
        let Some(Some(pair)) = pairs.get(table) else { continue };
        let types: Vec<&ferry_schemas::value::ColumnType> =
            pair.src.key.iter().map(|&i| &pair.columns[i].column_type).collect();
        // Keys that no longer fit the table's key (its structure changed) are dropped.
        let rows: Vec<(&String, Vec<SqlValue>)> = rows
            .into_iter()
            .filter_map(|(text, k)| {
                let typed: Option<Vec<SqlValue>> =
                    types.iter().zip(k).map(|(ty, v)| SqlValue::from_json(ty, v).ok()).collect();
                typed.filter(|t| t.len() == types.len()).map(|t| (text, t))
            })
            .collect();
        for batch in rows.chunks(KEYS_PER_CHECK) {
            let began = chrono::Utc::now();
            let keys: Vec<Vec<SqlValue>> = batch.iter().map(|(_, k)| k.clone()).collect();
            let (diffs, _, _) = ctx.verifier.compare_keys(pair, &keys).await?;
            status.rows_checked += keys.len() as u64;
            let mut found: HashMap<String, ferry_schemas::check::RowDiff> =
                diffs.into_iter().map(|d| (serde_json::Value::Array(d.key.clone()).to_string(), d)).collect();
            for (text, _) in batch {
                let id = (table.clone(), (*text).clone());
                match found.remove(text.as_str()) {
                    Some(diff) => {
                        let since = tracked.get(&id).map_or(began, |r| r.since);
                        tracked
                            .insert(id, WatchedRow { table: table.clone(), since, last_seen: began, diff });
                    }
                    None => {
                        tracked.remove(&id);
                    }
                }
            }
        }
    }
    Ok(())
}
