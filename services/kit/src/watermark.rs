//! The applied watermark: how far incremental sync has applied *everything*, as a source
//! position and time.
//!
//! APPLY messages up to the sink consumer's ack floor are all applied, and the APPLY stream
//! keeps the message at the floor (see `crate::apply_log`): its last transaction says where and
//! when on the source that is. The sink's own record is the newest change it applied, which may
//! be ahead of an older one still pending in another partition, so it cannot serve here.
//! Read-only: any service may compute it at any time.

use crate::apply_log;
use async_nats::jetstream::{kv, Context};
use chrono::{DateTime, Utc};
use ferry_schemas::cdc::{ApplyEvent, CdcEvent, Transaction};
use ferry_schemas::envelope::Envelope;
use ferry_schemas::names;
use ferry_schemas::position::SourcePosition;

/// The source position and time of the newest change such that it and every change before it
/// are on the target.
#[derive(Clone, Debug)]
pub struct Watermark {
    pub position: SourcePosition,
    pub source_time: DateTime<Utc>,
}

/// `None` before anything was applied or when NATS cannot be read.
pub async fn applied(js: &Context, task: &str) -> Option<Watermark> {
    let mut apply = js.get_stream(names::apply_stream(task)).await.ok()?;
    let floor = apply_log::acked_floor(&mut apply, task).await.ok().filter(|f| *f > 0)?;
    reached(&apply_log::read(&apply, floor).await.ok()?)
}

/// Where on the source the target is once the APPLY message `env` is applied.
fn reached(env: &Envelope<ApplyEvent>) -> Option<Watermark> {
    if let Some(last) = env.body.then.last() {
        // Packed transactions are whole: the last one's end is reached.
        return Some(Watermark {
            position: last.position.clone()?,
            source_time: last.transaction.committed_at,
        });
    }
    let mut position = env.position.clone()?;
    let source_time = match &env.body.event {
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

/// The CDC sequence through which every message must be applied for every change of the task
/// committed on the source at or before `at` to be on the target; `None` until capture has
/// passed `at` (or when NATS cannot be read). Stricter than needed, never looser: it takes the
/// CDC stream's last sequence at the moment capture is past `at`. A caller waiting for `at`
/// fixes the goal once and then polls [`acked_through`]: under a steady workload something is
/// always in flight, so a goal taken afresh at every poll could never be met.
pub async fn apply_goal(js: &Context, status: &kv::Store, task: &str, at: &SourcePosition) -> Option<u64> {
    let captured: Option<ferry_schemas::status::StoreStatus> =
        crate::nats::kv_get(status, &names::status_key(task, "store")).await.ok().flatten();
    if captured.and_then(|s| s.position).is_none_or(|p| p.binlog < at.binlog) {
        return None;
    }
    let mut cdc = js.get_stream(names::cdc_stream(task)).await.ok()?;
    Some(cdc.info().await.ok()?.state.last_sequence)
}

/// True when every CDC message up to `goal` (see [`apply_goal`]) has been dispatched and its
/// APPLY message acknowledged, heartbeats excepted (they carry no change): so a stopped sink
/// with nothing but heartbeats pending, or binlog traffic of other databases, does not hold it
/// back, unlike [`applied`].
pub async fn acked_through(js: &Context, task: &str, goal: u64) -> bool {
    let Ok(mut apply) = js.get_stream(names::apply_stream(task)).await else { return false };
    let Ok(floor) = apply_log::acked_floor(&mut apply, task).await else { return false };
    let Ok(last) = apply.info().await.map(|i| i.state.last_sequence) else { return false };
    let covers = |env: &Envelope<ApplyEvent>| env.body.cdc_last() >= goal;
    if floor > 0 {
        match apply_log::read(&apply, floor).await {
            Ok(env) if covers(&env) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    // Past the floor only heartbeats may stand between the floor and the goal.
    for seq in floor + 1..=last.min(floor + SCAN_LIMIT) {
        let Ok(env) = apply_log::read(&apply, seq).await else { return false };
        if env.body.cdc_seq > goal {
            return true;
        }
        if !matches!(env.body.event, CdcEvent::Heartbeat(_)) {
            return false;
        }
        if covers(&env) {
            return true;
        }
    }
    false
}
