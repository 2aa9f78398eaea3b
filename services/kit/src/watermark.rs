//! The applied watermark: how far incremental sync has applied *everything*, as a source
//! position and time.
//!
//! APPLY messages below the APPLY stream's first remaining one are all applied (work-queue
//! retention deletes a message when the sink acks it after its commit), and the CDC message
//! behind the newest of them says where and when on the source that is. The sink's own record
//! is the newest change it applied, which may be ahead of an older one still pending in another
//! partition, so it cannot serve here. Read-only: any service may compute it at any time.

use async_nats::jetstream::{kv, Context};
use chrono::{DateTime, Utc};
use ferry_schemas::cdc::{CdcEvent, Transaction};
use ferry_schemas::envelope::Envelope;
use ferry_schemas::names;
use ferry_schemas::position::SourcePosition;
use ferry_schemas::status::DispatcherStatus;

/// The source position and time of the newest change such that it and every change before it
/// are on the target.
#[derive(Clone, Debug)]
pub struct Watermark {
    pub position: SourcePosition,
    pub source_time: DateTime<Utc>,
}

/// `None` before anything was applied or when NATS cannot be read.
pub async fn applied(js: &Context, status: &kv::Store, task: &str) -> Option<Watermark> {
    let dispatcher: DispatcherStatus =
        crate::nats::kv_get(status, &names::status_key(task, "dispatcher")).await.ok()??;
    let offset = dispatcher.apply_offset?;
    let mut apply = js.get_stream(names::apply_stream(task)).await.ok()?;
    let state = apply.info().await.ok()?.state.clone();
    let applied =
        if state.messages == 0 { state.last_sequence } else { state.first_sequence.saturating_sub(1) };
    let cdc_seq = u64::try_from(i64::try_from(applied).ok()? - offset).ok().filter(|s| *s > 0)?;
    let cdc = js.get_stream(names::cdc_stream(task)).await.ok()?;
    let msg = cdc.get_raw_message(cdc_seq).await.ok()?;
    let env: Envelope<CdcEvent> = serde_json::from_slice(&msg.payload).ok()?;
    let mut position = env.position?;
    let source_time = match &env.body {
        CdcEvent::Transaction(Transaction { last_part: false, begin: Some(begin), committed_at, .. }) => {
            // Part of a split transaction whose later parts are not applied: the source
            // position reached is the transaction's beginning.
            position.binlog = begin.clone();
            *committed_at
        }
        CdcEvent::Transaction(t) => t.committed_at,
        CdcEvent::Ddl(d) => d.committed_at,
        CdcEvent::Heartbeat(h) => h.source_time,
    };
    Some(Watermark { position, source_time })
}

/// Most APPLY messages [`acked_through`] inspects before it answers "not yet".
const SCAN_LIMIT: u64 = 5_000;

/// The APPLY sequence through which every message must be acknowledged for every change of
/// the task committed on the source at or before `at` to be on the target; `None` until
/// capture has passed `at` (or when NATS cannot be read). Stricter than needed, never looser:
/// it takes the CDC stream's last sequence at the moment capture is past `at`. A caller waiting
/// for `at` fixes the goal once and then polls [`acked_through`]: under a steady workload
/// something is always in flight, so a goal taken afresh at every poll could never be met.
pub async fn apply_goal(js: &Context, status: &kv::Store, task: &str, at: &SourcePosition) -> Option<u64> {
    let captured: Option<ferry_schemas::status::StoreStatus> =
        crate::nats::kv_get(status, &names::status_key(task, "store")).await.ok().flatten();
    if captured.and_then(|s| s.position).is_none_or(|p| p.binlog < at.binlog) {
        return None;
    }
    let mut cdc = js.get_stream(names::cdc_stream(task)).await.ok()?;
    let cdc_last = cdc.info().await.ok()?.state.last_sequence;
    let dispatcher: Option<DispatcherStatus> =
        crate::nats::kv_get(status, &names::status_key(task, "dispatcher")).await.ok().flatten();
    let offset = dispatcher.and_then(|d| d.apply_offset)?;
    u64::try_from(i64::try_from(cdc_last).unwrap_or(i64::MAX).saturating_add(offset)).ok()
}

/// True when every APPLY message up to `through` (see [`apply_goal`]) has been dispatched and
/// acknowledged, heartbeats excepted (they carry no change): so a stopped sink with nothing
/// but heartbeats pending, or binlog traffic of other databases, does not hold it back, unlike
/// [`applied`].
pub async fn acked_through(js: &Context, task: &str, through: u64) -> bool {
    let Ok(mut apply) = js.get_stream(names::apply_stream(task)).await else { return false };
    let Ok(state) = apply.info().await.map(|i| i.state.clone()) else { return false };
    if state.last_sequence < through {
        return false; // not dispatched yet
    }
    if state.messages == 0 || state.first_sequence > through {
        return true;
    }
    if through - state.first_sequence >= SCAN_LIMIT {
        return false;
    }
    for seq in state.first_sequence..=through {
        match apply.get_raw_message(seq).await {
            Ok(msg) => {
                let heartbeat =
                    serde_json::from_slice::<Envelope<ferry_schemas::cdc::ApplyEvent>>(&msg.payload)
                        .is_ok_and(|e| matches!(e.body.event, CdcEvent::Heartbeat(_)));
                if !heartbeat {
                    return false;
                }
            }
            // Acknowledged (deleted from the work queue) out of order: applied.
            Err(e) if e.kind() == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {
                continue
            }
            Err(_) => return false,
        }
    }
    true
}
