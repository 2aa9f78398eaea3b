//! Applying a task's APPLY stream to the target, exactly once and in causal order.
//!
//! Each APPLY message runs in its partition's lane (barriers after everything before them,
//! consecutive barriers together; see `ferry_kit::consume`). A transaction's rows and its lane's checkpoint row
//! (`ferry_meta.apply_checkpoints`: APPLY sequence, CDC sequence, source position) are written
//! in one target transaction, and the message is acked after the commit. JetStream may deliver
//! a message after later ones (a redelivery after a crash, a delivery lost in a NATS restart),
//! so each message names the messages it must follow (`ApplyEvent::prev_*`); one whose
//! predecessors are not applied yet comes back later. Within a lane messages therefore apply
//! in stream order, and a redelivered message at or below its lane's checkpoint was applied
//! and is skipped.
//!
//! Messages whose source position is at or before P1 (the end of the full copy) are applied in
//! safe mode (see `rows`). After P1 a duplicate key or a missing row means the target diverged:
//! the task pauses with a report naming the table and position instead of hiding it.
//!
//! DDL is a barrier. It commits on its own, so the barrier lane records `ddl_started` before
//! running it; a DDL redelivered after a crash that the target reports as already done
//! (duplicate column, table exists, ...) is taken as applied.
//!
//! A failed write leaves its lane *uncertain*: a COMMIT whose answer was lost (the target or
//! the network went down at that moment) may have taken effect. Before the lane's next attempt
//! its checkpoint is read back from the target, so a committed batch is never applied twice.

pub mod net;
pub mod rows;
pub mod script;
pub mod session;
pub mod staged;

use crate::checkpoint::{self, LaneCheckpoint, BARRIER_LANE};
use crate::error::{definite, target_failure};
use crate::progress::Progress;
use async_nats::jetstream::Message;
use ferry_kit::consume::{Failure, Handler, Lane, Outcome};
use ferry_kit::metrics::{self, Metrics};
use ferry_kit::trace::TraceContext;
use ferry_schemas::cdc::{ApplyEvent, CdcEvent, DdlEvent, Transaction};
use ferry_schemas::envelope::Envelope;
use ferry_schemas::position::{BinlogFilePos, SourcePosition};
use ferry_schemas::status::BlockedDdl;
use ferry_schemas::table::quote_ident;
use ferry_schemas::task::TaskSpec;
use futures::future::BoxFuture;
use rows::RowError;
use script::Check;
use sqlx::MySqlPool;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const WAIT_FOR_PREDECESSOR: std::time::Duration = std::time::Duration::from_millis(100);
/// How long a transaction waits in process for another lane before it is handed back.
const WAIT_IN_PROCESS: std::time::Duration = std::time::Duration::from_secs(2);

/// Target error codes meaning "this DDL already happened".
const DDL_ALREADY_DONE: &[u16] = &[1050, 1051, 1060, 1061, 1091, 1146];

pub struct IncrementalApplier {
    pub task: String,
    pub spec: TaskSpec,
    pub pool: MySqlPool,
    pub progress: Arc<Progress>,
    pub metrics: Arc<Metrics>,
    /// End of safe mode: the full copy's P1 (`None`: no full copy, no safe mode).
    pub p1: Option<BinlogFilePos>,
    pub lanes: Mutex<HashMap<u32, LaneCheckpoint>>,
    /// Held by the lane that is writing a group over several connections.
    pub fan_out: tokio::sync::Mutex<()>,
    /// Signalled whenever a lane's checkpoint moves.
    pub advanced: tokio::sync::Notify,
    /// DDL positions the task record says to skip (`ferry task skip-ddl`).
    pub skip_ddl: Vec<BinlogFilePos>,
    /// Lanes whose last write failed: their checkpoint in memory may be behind the target's.
    pub uncertain: Mutex<HashSet<u32>>,
    /// The connection each lane keeps between its groups.
    pub sessions: session::Sessions,
    /// Each lane's next group, planned while its current one runs.
    pub staged: staged::StagedPlans,
    /// How many bytes of APPLY messages the NATS client pulls ahead ([`read_ahead_bytes`]).
    pub read_ahead_bytes: usize,
}

pub struct Item {
    seq: u64,
    lane: u32,
    env: Envelope<ApplyEvent>,
    /// The source transaction's trace, when traces are exported.
    trace: Option<TraceContext>,
    /// Size of the message, counted against `incremental.max_atomic_mb`.
    bytes: usize,
}

impl Handler for IncrementalApplier {
    type Item = Item;

    fn prepare(&self, msg: &Message) -> Result<(Lane, Item), Failure> {
        let (seq, env) = crate::error::envelope::<ApplyEvent>(msg, "APPLY")?;
        let (lane, id) = match env.body.partition {
            Some(p) => (Lane::Key(u64::from(p)), p),
            None => (Lane::Barrier, BARRIER_LANE),
        };
        if msg.info().is_ok_and(|i| i.delivered > 1) {
            self.metrics.sink_redelivered.get_or_create(&ferry_kit::metrics::task(&self.task)).inc();
        }
        let trace = ferry_kit::trace::context_of(msg.headers.as_ref());
        Ok((lane, Item { seq, lane: id, env, trace, bytes: msg.payload.len() }))
    }

    /// A part of a split source transaction that is not its last (the dispatcher makes every
    /// part a barrier): the consume loop waits for the rest so the unit commits as one.
    fn continues(&self, item: &Item) -> bool {
        item.lane == BARRIER_LANE
            && matches!(&item.env.body.event, CdcEvent::Transaction(t) if !t.last_part && !too_large(item, t, self.atomic_limit()))
    }

    fn max_unit(&self) -> usize {
        MAX_UNIT
    }

    fn handle<'a>(&'a self, item: &'a Item) -> BoxFuture<'a, Result<Outcome, Failure>> {
        Box::pin(async move {
            self.settle_uncertain(item.lane).await?;
            let result = self.handle_settled(item).await;
            if result.is_err() {
                self.mark_uncertain(item.lane);
            }
            result
        })
    }

    fn handle_batch<'a>(&'a self, items: &'a [Item]) -> BoxFuture<'a, Result<Vec<Outcome>, Failure>> {
        Box::pin(async move {
            match items {
                [one] if !matches!(one.env.body.event, CdcEvent::Transaction(_)) => {
                    Ok(vec![self.handle(one).await?])
                }
                _ => {
                    let Some(lane) = items.first().map(|i| i.lane) else { return Ok(Vec::new()) };
                    self.settle_uncertain(lane).await?;
                    let result = self.batch(items).await;
                    if result.is_err() {
                        self.mark_uncertain(lane);
                    }
                    result
                }
            }
        })
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn read_ahead_bytes(&self) -> usize {
        self.read_ahead_bytes
    }

    /// A fanned-out group plans its parts itself, so staging would only cost CPU.
    fn stages(&self) -> bool {
        self.spec.incremental.fan_out <= 1
    }

    /// Plans a partition lane's next group (see `staged`) when it will be written as planned
    /// here: whole transactions of one partition, none in safe mode.
    fn stage(&self, items: &[&Item]) {
        let mut sorted = items.to_vec();
        sorted.sort_by_key(|i| i.seq);
        let Some(lane) = sorted.first().map(|i| i.lane) else { return };
        let plannable = lane != BARRIER_LANE
            && sorted.iter().all(|i| i.lane == lane && matches!(i.env.body.event, CdcEvent::Transaction(_)));
        if !plannable {
            return;
        }
        let group: Vec<Member> = sorted.iter().flat_map(|i| Member::of(i)).collect();
        if group.iter().any(|m| m.txn.is_split() || self.safe_member(m)) {
            return;
        }
        if let Ok(plan) = self.plan(&group, true) {
            self.staged.put(lane, message_seqs(&group), plan);
        }
    }

    /// A message counts its source transactions (`ApplyEvent::then`), so a group stays near
    /// [`MAX_BATCH`] transactions however the dispatcher packed them.
    fn weight(&self, item: &Item) -> usize {
        1 + item.env.body.then.len()
    }

    /// `incremental.linger_ms`: measured on bench/cdc (sysbench oltp_write_only, 20 s steady,
    /// 8 partitions), the source kept 0.29 of its tps without Ferry when every lane wrote at
    /// once (the target spent 43% of a core), 0.42 at 50 ms (28%) and 0.41 at 120 ms (25%);
    /// lag p99 0.29 -> 0.34 s.
    fn linger(&self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::from(self.spec.incremental.linger_ms))
    }
}

impl IncrementalApplier {
    /// Applies one message of a lane whose checkpoint in memory is the target's.
    fn handle_settled<'a>(&'a self, item: &'a Item) -> BoxFuture<'a, Result<Outcome, Failure>> {
        Box::pin(async move {
            let done = self.lane(item.lane);
            if item.seq <= done.apply_seq {
                tracing::debug!(task = self.task, lane = item.lane, seq = item.seq, "applied before");
                return Ok(Outcome::Done);
            }
            if !self.predecessors_applied(&item.env.body) {
                // Delivered ahead of a message it must follow (redelivery after a crash or a
                // lost delivery): come back once that one is applied.
                trace(item, "waiting for a predecessor");
                return Ok(Outcome::Later(WAIT_FOR_PREDECESSOR));
            }
            let position = position_of(item);
            match &item.env.body.event {
                CdcEvent::Transaction(_) => {
                    let members = Member::of(item);
                    let pieces = matches!(members.as_slice(), [one] if one.txn.is_split());
                    let rows = self.transactions(&members, pieces).await?;
                    for (m, n) in members.iter().zip(rows) {
                        self.applied(
                            m.applied_position(),
                            m.txn.committed_at,
                            n,
                            u64::from(m.txn.last_part),
                            0,
                        );
                    }
                }
                CdcEvent::Ddl(d) => {
                    self.ddl(item, d, &position, &done).await?;
                    self.applied(position, d.committed_at, 0, 0, 1);
                }
                CdcEvent::Heartbeat(h) => {
                    self.checkpoint_only(item, &position, h.source_time).await?;
                    self.applied(position, h.source_time, 0, 0, 0);
                }
            }
            Ok(Outcome::Done)
        })
    }

    fn mark_uncertain(&self, lane: u32) {
        if let Ok(mut u) = self.uncertain.lock() {
            u.insert(lane);
        }
    }

    /// Reads an uncertain lane's checkpoint back from the target (see the module doc).
    async fn settle_uncertain(&self, lane: u32) -> Result<(), Failure> {
        if !self.uncertain.lock().is_ok_and(|u| u.contains(&lane)) {
            return Ok(());
        }
        let stored = checkpoint::load_lane(&self.pool, &self.task, lane)
            .await
            .map_err(|e| target_failure(&e, "checkpoint", "reading a lane's checkpoint back"))?;
        if let Some(cp) = stored {
            tracing::info!(task = self.task, lane, apply_seq = cp.apply_seq, "lane checkpoint read back");
            self.remember(lane, cp);
        }
        if let Ok(mut u) = self.uncertain.lock() {
            u.remove(&lane);
        }
        Ok(())
    }
}

/// Why a part of a fanned-out group did not get to its commit.
enum PartError {
    Script(script::ScriptError),
    Failed(Failure),
}

/// The first table a transaction changes, naming it in reports.
fn table_of(txn: &Transaction) -> String {
    txn.tables.first().map_or_else(|| "transaction".into(), |t| t.table.to_string())
}

/// One source transaction of an APPLY message: its `event`, or one of the whole transactions
/// packed after it (`ApplyEvent::then`). The message is applied and acknowledged as a unit (its
/// sequence is the lane's checkpoint), so a group always takes all of a message's members.
#[derive(Clone)]
struct Member<'a> {
    item: &'a Item,
    txn: &'a Transaction,
    cdc_seq: u64,
    position: SourcePosition,
}

impl<'a> Member<'a> {
    /// The message's transactions in CDC order (none for a DDL or a heartbeat).
    fn of(item: &'a Item) -> Vec<Member<'a>> {
        let body = &item.env.body;
        let CdcEvent::Transaction(first) = &body.event else { return Vec::new() };
        let mut members = Vec::with_capacity(1 + body.then.len());
        members.push(Member { item, txn: first, cdc_seq: body.cdc_seq, position: position_of(item) });
        members.extend(body.then.iter().map(|t| Member {
            item,
            txn: &t.transaction,
            cdc_seq: t.cdc_seq,
            position: t.position.clone().unwrap_or_else(|| position_of(item)),
        }));
        members
    }

    /// The source position reached once it is applied: a part of a split transaction that is
    /// not its last has not reached the transaction's end (its position) yet, only its
    /// beginning.
    fn applied_position(&self) -> SourcePosition {
        match self.txn {
            Transaction { last_part: false, begin: Some(begin), .. } => {
                SourcePosition { binlog: begin.clone(), ..self.position.clone() }
            }
            _ => self.position.clone(),
        }
    }

    /// Whether it carries the message's trace (the first transaction's).
    fn traced(&self) -> bool {
        self.cdc_seq == self.item.env.body.cdc_seq
    }
}

/// Whether a split source transaction that has reached `part` (of `item.bytes`) is too large
/// to hold and commit at once: more than [`MAX_UNIT`] messages, or, as its parts so far are
/// about as large as this one (only the last is smaller), more than `limit_bytes`. The consume
/// loop stops holding it and [`split_unit`] applies it in pieces by the same rule.
fn too_large(item: &Item, part: &Transaction, limit_bytes: usize) -> bool {
    let parts = part.part as usize + 1;
    parts >= MAX_UNIT || parts.saturating_mul(item.bytes) >= limit_bytes
}

/// How the split source transactions in a lane's group of ready transactions are committed.
#[derive(Debug, PartialEq, Eq)]
enum Unit {
    /// Each is whole in the group: commit the group.
    Whole,
    /// Commit the first `n`: a split transaction starts there and does not end in the group.
    Cut(usize),
    /// Commit the first `n` in safe mode: a piece of a split transaction too large to hold, or
    /// the rest of one whose first pieces committed before.
    Pieces(usize),
    /// The group is the beginning of a split transaction whose rest has not arrived: wait.
    Wait,
}

/// See [`Unit`]. Only the barrier lane (`holds`) gets whole split transactions (the dispatcher
/// makes their parts barriers and the consume loop holds them until the last); parts in a
/// partition lane (from a dispatcher before this rule) are applied as pieces.
///
/// Packed messages (`ApplyEvent::then`) hold whole transactions only, so no cut falls inside
/// one: cuts are at split parts, which always travel alone.
fn split_unit(group: &[Member], limit_bytes: usize, holds: bool) -> Unit {
    let Some(first) = group.first() else { return Unit::Whole };
    if first.txn.part > 0 {
        // Its first pieces committed in an earlier group: the rest are pieces too.
        let end = group.iter().position(|m| m.txn.last_part).map_or(group.len(), |e| e + 1);
        return Unit::Pieces(end);
    }
    // One too large to hold goes in pieces from its first part, even if it is complete here.
    if let Some(j) = group.iter().position(|m| m.txn.is_split() && too_large(m.item, m.txn, limit_bytes)) {
        let start = group[..=j].iter().rposition(|m| m.txn.part == 0).unwrap_or(0);
        return if start > 0 { Unit::Cut(start) } else { Unit::Pieces(j + 1) };
    }
    if group.last().is_none_or(|m| m.txn.last_part) {
        return Unit::Whole;
    }
    if !holds {
        return Unit::Pieces(group.len());
    }
    let start = group.iter().rposition(|m| m.txn.part == 0).unwrap_or(0);
    if start > 0 {
        Unit::Cut(start)
    } else if group.len() >= MAX_UNIT {
        Unit::Pieces(group.len())
    } else {
        Unit::Wait
    }
}

/// The APPLY sequences of a group's messages, in order (a message's members are adjacent).
fn message_seqs(group: &[Member]) -> Vec<u64> {
    let mut seqs: Vec<u64> = group.iter().map(|m| m.item.seq).collect();
    seqs.dedup();
    seqs
}

/// Logs a message's place in the order chain (`RUST_LOG=ferry_sink=debug`).
fn trace(item: &Item, what: &str) {
    let ev = &item.env.body;
    tracing::debug!(
        task = item.env.task,
        lane = item.lane,
        seq = item.seq,
        cdc_seq = ev.cdc_seq,
        prev_partition = ev.prev_partition_seq,
        prev_barrier = ev.prev_barrier_seq,
        partition_last = ?ev.partition_last,
        position = %position_of(item),
        "{what}"
    );
}

/// See [`IncrementalApplier::ready`]; `applied` gives a lane's checkpoint.
fn ready(ev: &ApplyEvent, local: u64, applied: impl Fn(u32) -> u64) -> bool {
    own_turn(ev, local, &applied) && ev.after.iter().all(|a| applied(a.partition) >= a.seq)
}

/// The part of [`ready`] that a wait in process cannot help with: a partition message's
/// predecessor in its own lane (queued behind the lane this wait keeps busy, or handed back) and
/// the barrier it follows (barriers run only when no lane is in flight here). Only joins
/// (`after`: messages of other partitions, running in parallel) are worth waiting for.
fn own_turn(ev: &ApplyEvent, local: u64, applied: &impl Fn(u32) -> u64) -> bool {
    match ev.partition {
        Some(_) => ev.prev_partition_seq <= local && applied(BARRIER_LANE) >= ev.prev_barrier_seq,
        None => {
            ev.prev_barrier_seq <= local
                && ev.partition_last.iter().enumerate().all(|(p, seq)| applied(p as u32) >= *seq)
        }
    }
}

/// Consecutive transactions of one partition applied in one target transaction at most (groups
/// are written as their net effect, so larger groups cost the target less per row: bench/cdc
/// catch-up 21,053 rows/s at 64, 24,938 at 256).
pub const MAX_BATCH: usize = 256;

/// Most messages of one split source transaction the sink holds to commit it at once (beyond,
/// or beyond `incremental.max_atomic_mb`, it is applied in pieces; see [`split_unit`]).
pub const MAX_UNIT: usize = 256;

/// Bytes of APPLY messages pulled ahead of the lanes: a few groups of the busiest lane (a
/// catch-up group is ~256 transactions of ~2 KB), and never less than two of the largest
/// message the server accepts (a pull smaller than a message never delivers it). Without it
/// the client pulled ~3,000 packed messages (~64 transactions each, the whole bench/cdc
/// catch-up) and a third of the groups met a copy JetStream redelivered when its ack deadline
/// passed while it waited.
pub fn read_ahead_bytes(max_payload: usize) -> usize {
    (8 << 20).max(2 * max_payload)
}

/// Fewest transactions in a group worth fanning out (see [`IncrementalApplier::fan_out`] and
/// the task's `incremental.fan_out`).
const FAN_OUT_FROM: usize = 32;

fn position_of(item: &Item) -> SourcePosition {
    item.env.position.clone().unwrap_or_else(|| SourcePosition {
        binlog: BinlogFilePos { file: String::new(), offset: 0 },
        gtid: None,
        server_id: None,
    })
}

impl IncrementalApplier {
    /// True when every message this one must follow (see `ApplyEvent`) has been applied.
    fn predecessors_applied(&self, ev: &ApplyEvent) -> bool {
        let lane = ev.partition.unwrap_or(BARRIER_LANE);
        self.ready(ev, self.lane(lane).apply_seq)
    }

    fn lane(&self, lane: u32) -> LaneCheckpoint {
        self.lanes.lock().map(|l| l.get(&lane).cloned().unwrap_or_default()).unwrap_or_default()
    }

    fn checkpoint_for(
        &self,
        item: &Item,
        position: &SourcePosition,
        at: chrono::DateTime<chrono::Utc>,
    ) -> LaneCheckpoint {
        LaneCheckpoint {
            apply_seq: item.seq,
            cdc_seq: item.env.body.cdc_seq,
            position: serde_json::to_string(position).unwrap_or_default(),
            source_time_ms: at.timestamp_millis(),
            ..self.lane(item.lane)
        }
    }

    /// The lane's checkpoint once `m` (the last transaction of a group) is applied.
    fn checkpoint_after(&self, m: &Member, at: chrono::DateTime<chrono::Utc>) -> LaneCheckpoint {
        LaneCheckpoint { cdc_seq: m.cdc_seq, ..self.checkpoint_for(m.item, &m.applied_position(), at) }
    }

    fn remember(&self, lane: u32, cp: LaneCheckpoint) {
        if let Ok(mut l) = self.lanes.lock() {
            l.insert(lane, cp);
        }
        self.advanced.notify_waiters();
    }

    fn failure(&self, e: RowError, position: &SourcePosition, what: &str) -> Failure {
        match e {
            RowError::Target(e, stmt) => {
                target_failure(&e, what, &format!("{stmt} (source position {position})"))
            }
            RowError::Diverged(msg) => definite(
                "target_diverged",
                what,
                format!("{msg} (source position {position}, outside safe mode)"),
                "the target was changed outside Ferry: verify and correct it (checker), then resume the task",
            ),
            RowError::Bad(f) => f,
        }
    }

    /// Applies consecutive transactions of one lane in one target transaction, with the
    /// lane's checkpoint moved to the last of them. Returns the rows of each.
    ///
    /// Outside safe mode the group is written as its net effect (see `net`); if that finds the
    /// target diverged, the transaction is rolled back and the group written row by row, which
    /// fails at the exact transaction and statement for the report.
    ///
    /// `pieces`: the group is a piece of a split source transaction too large to commit at
    /// once; it is replayed in safe mode (its other pieces commit separately, and a crash
    /// between them must converge like the window after a full copy).
    async fn transactions(&self, group: &[Member<'_>], pieces: bool) -> Result<Vec<u64>, Failure> {
        let normal = !pieces && group.iter().all(|m| !self.safe_member(m));
        if normal {
            // A split transaction commits on one connection, so it is never seen half applied.
            let whole = group.iter().all(|m| !m.txn.is_split());
            if whole && group.len() >= FAN_OUT_FROM && self.spec.incremental.fan_out > 1 {
                if let Some(rows) = self.fan_out(group).await? {
                    return Ok(rows);
                }
            }
            if let Some(rows) = self.write_group(group, true).await? {
                return Ok(rows);
            }
            tracing::info!(
                task = self.task,
                "the group's net effect does not fit the target; writing it row by row"
            );
        }
        self.write_group(group, false).await?.ok_or_else(|| {
            definite(
                "internal",
                "transaction",
                "a row-by-row write asked to be retried".into(),
                "report this",
            )
        })
    }

    /// One `apply` span per traced transaction, each in its own trace: they share a batch.
    fn apply_spans(&self, group: &[Member]) -> Vec<tracing::Span> {
        group
            .iter()
            .filter(|m| m.traced())
            .filter_map(|m| {
                let parent = m.item.trace.as_ref()?;
                let span = tracing::info_span!(
                    "apply",
                    task = %self.task,
                    apply_seq = m.item.seq,
                    lane = m.item.lane,
                    rows = m.txn.changes.len(),
                    batch = group.len()
                );
                ferry_kit::trace::follow(&span, Some(parent));
                Some(span)
            })
            .collect()
    }

    /// Writes a group's net effect split over up to `incremental.fan_out` connections at once
    /// (see
    /// `checkpoint::FanOut` for how a restart finds out whether every part committed). `None`
    /// when the group does not split, another lane is fanning out, or a part found the target
    /// diverged (then nothing was committed and the caller writes the group on one connection,
    /// which reports the divergence exactly).
    ///
    /// A random workload funnels nearly every transaction into one lane while the sink lags
    /// (keys in flight in several partitions go to the lowest), so one connection did all the
    /// target's work in a catch-up. Only one lane fans out at a time, so the pool (partitions +
    /// fan_out + 2 connections) always has enough for it and for the other lanes.
    async fn fan_out(&self, group: &[Member<'_>]) -> Result<Option<Vec<u64>>, Failure> {
        let Ok(_turn) = self.fan_out.try_lock() else { return Ok(None) };
        let Some((last, first)) = group.last().zip(group.first()) else {
            return Ok(None);
        };
        let what = table_of(first.txn);
        let txns: Vec<&Transaction> = group.iter().map(|m| m.txn).collect();
        let Some((scripts, rows)) = net::plan_parts(&txns, self.spec.incremental.fan_out as usize)
            .map_err(|e| self.failure(e, &last.position, &what))?
        else {
            return Ok(None);
        };
        let started = Instant::now();
        let spans = self.apply_spans(group);
        let lane = first.item.lane;
        let current = LaneCheckpoint { safe_until: 0, ..self.lane(lane) };
        let mut reached = self.checkpoint_after(last, last.txn.committed_at);
        reached.safe_until = 0;
        reached.rows += rows.iter().sum::<u64>();
        reached.transactions += txns.iter().map(|t| u64::from(t.last_part)).sum::<u64>();
        let parts = scripts.len() as u32;
        // The intent commits before any part can.
        let mut intent =
            self.pool.begin().await.map_err(|e| target_failure(&e, &what, "starting a transaction"))?;
        checkpoint::save_fanout_intent(
            &mut intent,
            &self.task,
            lane,
            &current,
            last.item.seq,
            parts,
            &reached,
        )
        .await
        .map_err(|e| target_failure(&e, &what, "recording a fanned-out group"))?;
        intent.commit().await.map_err(|e| target_failure(&e, &what, "recording a fanned-out group"))?;
        let what = &what;
        let executions = scripts.iter().enumerate().map(|(part, script)| async move {
            let mut tx = self
                .pool
                .begin()
                .await
                .map_err(|e| PartError::Failed(target_failure(&e, what, "starting a transaction")))?;
            script.run(&mut tx).await.map_err(PartError::Script)?;
            checkpoint::save_fanout_part(&mut tx, &self.task, lane, part as u32, last.item.seq)
                .await
                .map_err(|e| PartError::Failed(target_failure(&e, what, "marking a part applied")))?;
            Ok(tx)
        });
        let mut open = Vec::with_capacity(scripts.len());
        let mut failed = None;
        for result in futures::future::join_all(executions).await {
            match result {
                Ok(tx) => open.push(tx),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        if let Some(failed) = failed {
            // Nothing was committed: every part rolls back and the intent is withdrawn, so the
            // group is written again (on one connection after a divergence, for the exact
            // report; else by the retry) with every check, not replayed in safe mode.
            for tx in open {
                // Explicitly, so no lock outlives the attempt (a dropped transaction rolls
                // back only once its connection is next used).
                if let Err(e) = tx.rollback().await {
                    tracing::warn!(task = self.task, lane, "rolling back a part failed ({e})");
                }
            }
            let withdrawn = checkpoint::clear_fanout_intent(&self.pool, &self.task, lane).await;
            if let Err(e) = &withdrawn {
                tracing::warn!(
                    task = self.task,
                    lane,
                    "cannot withdraw a fanned-out group ({e}); it is replayed in safe mode"
                );
            }
            return match failed {
                PartError::Script(f) if matches!(f.error, RowError::Diverged(_)) => {
                    withdrawn.map_err(|e| target_failure(&e, what, "withdrawing a fanned-out group"))?;
                    Ok(None)
                }
                PartError::Script(f) => {
                    let m = &group[f.txn.min(group.len() - 1)];
                    Err(self.failure(f.error, &m.position, &table_of(m.txn)))
                }
                PartError::Failed(f) => Err(f),
            };
        }
        let executed = Instant::now();
        let commit_spans: Vec<tracing::Span> =
            spans.iter().map(|s| tracing::info_span!(parent: s, "commit")).collect();
        let mut open = open.into_iter();
        if ferry_kit::failpoint::armed(ferry_kit::failpoint::FAN_OUT_PARTLY_COMMITTED) {
            if let Some(first) = open.next() {
                first.commit().await.map_err(|e| target_failure(&e, what, "committing a part"))?;
            }
            ferry_kit::failpoint::crash_if_armed(ferry_kit::failpoint::FAN_OUT_PARTLY_COMMITTED);
        }
        let commits = futures::future::join_all(open.map(|tx| tx.commit())).await;
        if let Some(Err(e)) = commits.into_iter().find(|c| c.is_err()) {
            return Err(target_failure(&e, what, "committing a part of a fanned-out group"));
        }
        drop(commit_spans);
        drop(spans);
        self.committed(lane, reached, (started, executed), &rows);
        Ok(Some(rows))
    }

    /// Records a committed group: the lane's checkpoint in memory and the apply metrics
    /// (`times`: when the group started and when its statements had run).
    fn committed(&self, lane: u32, cp: LaneCheckpoint, times: (Instant, Instant), rows: &[u64]) {
        let (started, executed) = times;
        self.remember(lane, cp);
        let label = metrics::task(&self.task);
        self.metrics.sink_execute_time.get_or_create(&label).observe((executed - started).as_secs_f64());
        self.metrics.sink_commit_time.get_or_create(&label).observe(executed.elapsed().as_secs_f64());
        self.metrics.sink_total_record.get_or_create(&label).inc_by(rows.iter().sum::<u64>() as i64);
        self.metrics.sink_transactions.get_or_create(&label).inc_by(rows.len() as u64);
    }

    /// One attempt of [`Self::transactions`]; `None` when the net-effect plan (`net`) found
    /// the target diverged and nothing was committed.
    ///
    /// On the lane's own connection (see `session`) a group costs two round trips: its script
    /// (`BEGIN`, the rows, the checkpoint) and the `COMMIT`, which waits until every
    /// statement's result was checked.
    async fn write_group(&self, group: &[Member<'_>], net: bool) -> Result<Option<Vec<u64>>, Failure> {
        let Some((last, first)) = group.last().zip(group.first()) else {
            return Ok(Some(Vec::new()));
        };
        let lane = first.item.lane;
        let what = table_of(first.txn);
        let started = Instant::now();
        let spans = self.apply_spans(group);
        let mut session =
            self.sessions.take(lane).await.map_err(|e| target_failure(&e, &what, "connecting"))?;
        let t_connected = Instant::now();
        let staged = if net { self.staged.take(lane, &message_seqs(group)) } else { None };
        let was_staged = staged.is_some();
        let (mut script, rows, compacted) = match staged {
            Some(plan) => plan,
            None => self.plan(group, net)?,
        };
        let mut cp = self.checkpoint_after(last, last.txn.committed_at);
        cp.rows += rows.iter().sum::<u64>();
        cp.transactions += group.iter().map(|m| u64::from(m.txn.last_part)).sum::<u64>();
        script.transaction(group.len() - 1);
        script.push(
            &checkpoint::save_lane_sql(&self.task, lane, &cp),
            "the checkpoint".into(),
            Check::Nothing,
        );
        let t_plan = Instant::now();
        let conn = session.opening().map_err(|e| target_failure(&e, &what, "connecting"))?;
        if let Err(f) = script.run(conn).await {
            if compacted && matches!(f.error, RowError::Diverged(_)) {
                // Rolled back before the row-by-row attempt, so its rows are not locked.
                session.end("ROLLBACK").await.map_err(|e| target_failure(&e, &what, "rolling back"))?;
                self.sessions.keep(lane, session);
                return Ok(None);
            }
            let m = &group[f.txn.min(group.len() - 1)];
            return Err(self.failure(f.error, &m.position, &table_of(m.txn)));
        }
        let executed = Instant::now();
        let commits: Vec<tracing::Span> =
            spans.iter().map(|s| tracing::info_span!(parent: s, "commit")).collect();
        session.end("COMMIT").await.map_err(|e| target_failure(&e, &what, "committing"))?;
        self.sessions.keep(lane, session);
        let t_commit = Instant::now();
        tracing::debug!(
            task = self.task,
            lane,
            transactions = group.len(),
            script_bytes = script.len_bytes(),
            staged = was_staged,
            connect_us = (t_connected - started).as_micros() as u64,
            plan_us = (t_plan - t_connected).as_micros() as u64,
            run_us = (executed - t_plan).as_micros() as u64,
            commit_us = (t_commit - executed).as_micros() as u64,
            "group written"
        );
        drop(commits);
        drop(spans);
        self.committed(lane, cp, (started, executed), &rows);
        Ok(Some(rows))
    }

    /// A group's script, opening its target transaction: the net effect (`net`, when it can
    /// be expressed) or every transaction row by row. Returns the script, the rows of each
    /// transaction and whether it is the net effect.
    fn plan(&self, group: &[Member<'_>], net: bool) -> Result<(script::Script, Vec<u64>, bool), Failure> {
        let Some((last, first)) = group.last().zip(group.first()) else {
            return Ok((script::Script::in_transaction(), Vec::new(), false));
        };
        if net {
            let mut script = script::Script::in_transaction();
            script.transaction(group.len() - 1);
            let txns: Vec<&Transaction> = group.iter().map(|m| m.txn).collect();
            let planned = net::plan_group(&mut script, &txns)
                .map_err(|e| self.failure(e, &last.position, &table_of(first.txn)))?;
            if let Some(rows) = planned {
                return Ok((script, rows, true));
            }
        }
        let mut script = script::Script::in_transaction();
        let mut rows = Vec::with_capacity(group.len());
        for (n, m) in group.iter().enumerate() {
            trace(m.item, "applying");
            script.transaction(n);
            rows.push(
                rows::plan(&mut script, m.txn, self.safe_member(m))
                    .map_err(|e| self.failure(e, &m.position, &table_of(m.txn)))?,
            );
        }
        Ok((script, rows, false))
    }

    /// `incremental.max_atomic_mb` in bytes.
    fn atomic_limit(&self) -> usize {
        (self.spec.incremental.max_atomic_mb as usize).saturating_mul(1024 * 1024)
    }

    fn safe(&self, position: &SourcePosition) -> bool {
        self.p1.as_ref().is_some_and(|p1| position.binlog <= *p1)
    }

    /// Whether a transaction is replayed in safe mode: before P1, or in a fanned-out group that a
    /// crash may have left partly applied (see `checkpoint::FanOut`).
    fn safe_member(&self, m: &Member) -> bool {
        self.safe(&m.position) || m.item.seq <= self.lane(m.item.lane).safe_until
    }

    fn applied(
        &self,
        position: SourcePosition,
        source_time: chrono::DateTime<chrono::Utc>,
        rows: u64,
        txns: u64,
        ddl: u64,
    ) {
        let safe = self.safe(&position);
        self.progress.incremental_applied(position, source_time, rows, txns, ddl, safe);
        let delay = (chrono::Utc::now() - source_time).num_milliseconds().max(0) as f64 / 1000.0;
        self.metrics.sink_delay.get_or_create(&metrics::task(&self.task)).set(delay);
    }

    /// True when `ev` may apply now, `local` being the last message applied (or about to be,
    /// earlier in the same target transaction) in its own lane. A partition message follows
    /// its partition's previous message and the last barrier; a barrier follows the previous
    /// barrier and the last message of every partition (whatever this process has seen: a
    /// message held back or naked is not in flight here, but the barrier still waits for it).
    fn ready(&self, ev: &ApplyEvent, local: u64) -> bool {
        let Ok(lanes) = self.lanes.lock() else { return false };
        ready(ev, local, |lane| lanes.get(&lane).map_or(0, |c| c.apply_seq))
    }

    /// Waits (in this process, up to [`WAIT_IN_PROCESS`]) until `ev` may apply after `local`,
    /// when only other partitions' messages hold it back (see [`own_turn`]); otherwise hands it
    /// back at once. Waiting on its own lane or on a barrier kept the lane busy for nothing:
    /// after a failover with a backlog, lanes waited 2 s each on predecessors that could not
    /// run meanwhile and the sink crawled at ~10 messages/s (tests/e2e/regions.rs).
    async fn wait_ready(&self, ev: &ApplyEvent, lane: u32) -> bool {
        {
            let Ok(lanes) = self.lanes.lock() else { return false };
            let applied = |l: u32| lanes.get(&l).map_or(0, |c| c.apply_seq);
            if !own_turn(ev, applied(lane), &applied) {
                return false;
            }
        }
        let deadline = tokio::time::Instant::now() + WAIT_IN_PROCESS;
        loop {
            let notified = self.advanced.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.ready(ev, self.lane(lane).apply_seq) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Applies consecutive messages of one lane (a partition's transactions, or consecutive
    /// barriers), as many transactions per target transaction as are ready; one that must
    /// wait for another lane waits here a moment, then comes back later.
    async fn batch(&self, items: &[Item]) -> Result<Vec<Outcome>, Failure> {
        // Redelivered messages arrive after newer ones: apply in sequence order, answer in the
        // order given.
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by_key(|i| items[*i].seq);
        let sorted: Vec<&Item> = order.iter().map(|i| &items[*i]).collect();
        let done = self.batch_sorted(&sorted).await?;
        let mut outcomes: Vec<Outcome> =
            (0..items.len()).map(|_| Outcome::Later(WAIT_FOR_PREDECESSOR)).collect();
        for (k, idx) in order.iter().enumerate() {
            if k < done {
                outcomes[*idx] = Outcome::Done;
            }
        }
        Ok(outcomes)
    }

    /// Applies a prefix of `items` (in sequence order); returns its length.
    async fn batch_sorted(&self, items: &[&Item]) -> Result<usize, Failure> {
        let Some(lane) = items.first().map(|i| i.lane) else { return Ok(0) };
        let mut i = 0;
        while i < items.len() {
            let committed = self.lane(lane).apply_seq;
            let mut local = committed;
            let mut group: Vec<Member> = Vec::new();
            // Where each member of the group is in `items`.
            let mut at: Vec<usize> = Vec::new();
            while let Some(item) = items.get(i) {
                let CdcEvent::Transaction(_) = &item.env.body.event else { break };
                // Applied before, or a second copy of one in this group (a redelivery).
                if item.seq <= local {
                    tracing::debug!(task = self.task, lane, seq = item.seq, local, "applied before");
                    i += 1;
                    continue;
                }
                if item.lane != lane || !self.ready(&item.env.body, local) {
                    break;
                }
                local = item.seq;
                for m in Member::of(item) {
                    group.push(m);
                    at.push(i);
                }
                i += 1;
            }
            let pieces = match split_unit(&group, self.atomic_limit(), lane == BARRIER_LANE) {
                Unit::Whole => false,
                Unit::Cut(n) => {
                    group.truncate(n);
                    i = at[n];
                    false
                }
                Unit::Pieces(n) => {
                    if n < group.len() {
                        group.truncate(n);
                        i = at[n];
                    }
                    if let Some(first) = group.first().filter(|m| m.txn.part == 0) {
                        tracing::warn!(
                            task = self.task,
                            position = %first.position,
                            table = table_of(first.txn),
                            "a split source transaction is applied in pieces, in safe mode (larger than \
                             incremental.max_atomic_mb = {} MiB or {MAX_UNIT} messages, or routed by an \
                             older dispatcher)",
                            self.spec.incremental.max_atomic_mb,
                        );
                    }
                    true
                }
                Unit::Wait => {
                    // The rest of the split transaction is not here yet: hand it back whole.
                    i = at[0];
                    break;
                }
            };
            if !group.is_empty() {
                let rows = self.transactions(&group, pieces).await?;
                for (m, n) in group.iter().zip(rows) {
                    self.applied(m.applied_position(), m.txn.committed_at, n, u64::from(m.txn.last_part), 0);
                }
                continue;
            }
            let Some(item) = items.get(i) else { break };
            if item.lane != lane {
                break;
            }
            if !matches!(item.env.body.event, CdcEvent::Transaction(_)) {
                // A DDL or heartbeat among consecutive barriers: on its own, then go on.
                match self.handle_settled(item).await? {
                    Outcome::Done => {
                        i += 1;
                        continue;
                    }
                    Outcome::Later(_) => break,
                }
            }
            // Barriers run only when no other lane is in flight in this process (the consume
            // loop's rule), so nothing here can make one ready: hand it back at once instead of
            // blocking the loop for WAIT_IN_PROCESS. After a crash, redeliveries arrive out of
            // order and a barrier often comes before a partition message it follows; waiting
            // there cost 2 s per barrier (heartbeats are barriers too) and crawled at ~1 message
            // every 2 s in the fault test once partitions were joined.
            if lane == BARRIER_LANE || !self.wait_ready(&item.env.body, lane).await {
                tracing::debug!(task = self.task, seq = item.seq, "waiting for a predecessor");
                break;
            }
        }
        Ok(i)
    }

    async fn checkpoint_only(
        &self,
        item: &Item,
        position: &SourcePosition,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Failure> {
        let cp = self.checkpoint_for(item, position, at);
        let mut conn =
            self.pool.acquire().await.map_err(|e| target_failure(&e, "checkpoint", "connecting"))?;
        checkpoint::save_lane(&mut conn, &self.task, item.lane, &cp)
            .await
            .map_err(|e| target_failure(&e, "checkpoint", "writing the checkpoint"))?;
        self.remember(item.lane, cp);
        Ok(())
    }

    /// Refuses DDL that renames would make run against the wrong objects.
    fn check_ddl(&self, d: &DdlEvent) -> Result<Option<String>, Failure> {
        let source_db = d.database.clone().unwrap_or_default();
        for t in &d.tables {
            let target = self.spec.renames.target_of(t);
            if target.table != t.table {
                return Err(definite(
                    "unsupported_ddl",
                    &t.to_string(),
                    format!(
                        "DDL on renamed table {t} (to {target}) cannot be replayed as written: {}",
                        d.sql
                    ),
                    "apply the equivalent statement on the target by hand, then `ferry task skip-ddl` and `ferry task resume`",
                ));
            }
            if target.database != t.database && d.sql.contains(&format!("{}.", t.database)) {
                return Err(definite(
                    "unsupported_ddl",
                    &t.to_string(),
                    format!("DDL names the renamed database {} explicitly: {}", t.database, d.sql),
                    "apply the equivalent statement on the target by hand, then `ferry task skip-ddl` and `ferry task resume`",
                ));
            }
        }
        Ok((!source_db.is_empty()).then(|| self.spec.renames.target_database(&source_db)))
    }

    async fn ddl(
        &self,
        item: &Item,
        d: &DdlEvent,
        position: &SourcePosition,
        before: &LaneCheckpoint,
    ) -> Result<(), Failure> {
        let what = d.tables.first().map(|t| t.to_string()).unwrap_or_else(|| "DDL".into());
        if self.skip_ddl.contains(&position.binlog) {
            tracing::warn!(task = self.task, %position, sql = d.sql, "DDL skipped as the task asks");
            self.checkpoint_only(item, position, d.committed_at).await?;
            self.progress.ddl_skipped();
            return Ok(());
        }
        let blocked = |f: Failure| {
            if f.class != ferry_kit::ErrorClass::Transient {
                self.progress.ddl_blocked(BlockedDdl { position: position.clone(), sql: d.sql.clone() });
            }
            f
        };
        let database = self.check_ddl(d).map_err(blocked)?;
        let mut conn = self.pool.acquire().await.map_err(|e| target_failure(&e, &what, "connecting"))?;
        let mut started = self.checkpoint_for(item, position, d.committed_at);
        started.apply_seq = before.apply_seq;
        started.cdc_seq = before.cdc_seq;
        started.position = before.position.clone();
        started.source_time_ms = before.source_time_ms;
        started.ddl_started = item.seq;
        checkpoint::save_lane(&mut conn, &self.task, item.lane, &started)
            .await
            .map_err(|e| target_failure(&e, &what, "recording the DDL start"))?;
        if let Some(db) = database {
            sqlx::query(&format!("USE {}", quote_ident(&db)))
                .persistent(false)
                .execute(&mut *conn)
                .await
                .map_err(|e| target_failure(&e, &db, "selecting the database of a DDL"))?;
        }
        let result = sqlx::query(&d.sql).persistent(false).execute(&mut *conn).await;
        let _ = sqlx::query("USE ferry_meta").persistent(false).execute(&mut *conn).await;
        if let Err(e) = result {
            let code = crate::error::target_code(&e);
            let redone =
                before.ddl_started == item.seq && code.is_some_and(|c| DDL_ALREADY_DONE.contains(&c));
            if !redone {
                let f = target_failure(&e, &what, &format!("DDL `{}` at source position {position}", d.sql));
                if f.class == ferry_kit::ErrorClass::Transient {
                    return Err(f);
                }
                return Err(blocked(definite(
                    "ddl_rejected",
                    &what,
                    f.report.message,
                    "make the target accept the statement and resume the task, or apply an equivalent change by \
                     hand, then `ferry task skip-ddl` and `ferry task resume`",
                )));
            }
        }
        let mut cp = self.checkpoint_for(item, position, d.committed_at);
        cp.ddl_started = item.seq;
        cp.ddl += 1;
        checkpoint::save_lane(&mut conn, &self.task, item.lane, &cp)
            .await
            .map_err(|e| target_failure(&e, &what, "writing the checkpoint"))?;
        self.remember(item.lane, cp);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_schemas::cdc::Heartbeat;

    fn event(
        partition: Option<u32>,
        prev_partition_seq: u64,
        prev_barrier_seq: u64,
        last: Vec<u64>,
    ) -> ApplyEvent {
        ApplyEvent {
            cdc_seq: 1,
            partition,
            prev_partition_seq,
            prev_barrier_seq,
            partition_last: last,
            after: Vec::new(),
            event: CdcEvent::Heartbeat(Heartbeat { source_time: chrono::Utc::now() }),
            then: Vec::new(),
        }
    }

    /// Messages of one lane: `(part, last_part)` for each, 1 KiB each.
    fn lane_of(parts: &[(u32, bool)]) -> Vec<(Item, Transaction)> {
        parts
            .iter()
            .enumerate()
            .map(|(n, (part, last_part))| {
                let txn = Transaction {
                    gtid: None,
                    committed_at: chrono::Utc::now(),
                    part: *part,
                    last_part: *last_part,
                    begin: None,
                    tables: Vec::new(),
                    changes: Vec::new(),
                };
                let mut ev = event(None, 0, 0, Vec::new());
                ev.event = CdcEvent::Transaction(txn.clone());
                let env = Envelope::new("t", format!("m{n}"), None, ev);
                (Item { seq: n as u64 + 1, lane: BARRIER_LANE, env, trace: None, bytes: 1024 }, txn)
            })
            .collect()
    }

    fn unit_of(parts: &[(u32, bool)], limit: usize, holds: bool) -> Unit {
        let lane = lane_of(parts);
        let group: Vec<Member> = lane
            .iter()
            .map(|(item, txn)| Member { item, txn, cdc_seq: item.seq, position: position_of(item) })
            .collect();
        split_unit(&group, limit, holds)
    }

    #[test]
    fn a_split_transaction_commits_whole_or_waits_for_its_rest() {
        let whole = (0, true);
        // Whole transactions, and a split one complete in the group: one commit.
        assert_eq!(unit_of(&[whole, (0, false), (1, false), (2, true), whole], 1 << 20, true), Unit::Whole);
        // A split one begun but not ended: commit what comes before it, then wait for the rest.
        assert_eq!(unit_of(&[whole, whole, (0, false), (1, false)], 1 << 20, true), Unit::Cut(2));
        assert_eq!(unit_of(&[(0, false), (1, false)], 1 << 20, true), Unit::Wait);
        // Over the size limit: pieces, in safe mode; and once begun, its rest too (then the
        // transactions after it whole again).
        assert_eq!(unit_of(&[(0, false), (1, false)], 2048, true), Unit::Pieces(2));
        assert_eq!(unit_of(&[(0, false), (1, false), (2, true)], 2048, true), Unit::Pieces(2));
        assert_eq!(unit_of(&[whole, (0, false), (1, false), (2, true)], 2048, true), Unit::Cut(1));
        assert_eq!(unit_of(&[(2, false), (3, true), whole], 2048, true), Unit::Pieces(2));
        // Parts in a partition lane (an older dispatcher) cannot be held together.
        assert_eq!(unit_of(&[whole, (0, false)], 1 << 20, false), Unit::Pieces(2));
    }

    #[test]
    fn a_barrier_waits_for_every_partition_even_messages_not_in_flight_here() {
        // Partition 1's last message before the barrier (seq 7) was handed back (naked) and is
        // not in this process: the barrier must not run.
        let checkpoints = |lane: u32| match lane {
            0 => 6,
            1 => 5,
            _ => 0,
        };
        let barrier = event(None, 0, 0, vec![6, 7]);
        assert!(!ready(&barrier, 0, checkpoints));
        assert!(ready(&barrier, 0, |lane| if lane == 1 { 7 } else { checkpoints(lane) }));
    }

    #[test]
    fn a_partition_message_follows_its_predecessor_and_the_last_barrier() {
        let m = event(Some(2), 10, 8, Vec::new());
        let barrier_done = |lane: u32| if lane == BARRIER_LANE { 8 } else { 0 };
        assert!(ready(&m, 10, barrier_done));
        assert!(!ready(&m, 9, barrier_done));
        assert!(!ready(&m, 10, |_| 0));
    }

    #[test]
    fn only_joins_are_worth_waiting_for_in_process() {
        // Its barrier is not applied: waiting while the lane is busy cannot help.
        let m = event(Some(2), 10, 8, Vec::new());
        assert!(!own_turn(&m, 10, &|_| 0));
        // Its own lane's predecessor is missing: same.
        assert!(!own_turn(&m, 9, &|lane| if lane == BARRIER_LANE { 8 } else { 0 }));
        // Only a join on another partition is missing: another lane may apply it meanwhile.
        let mut joined = event(Some(2), 10, 8, Vec::new());
        joined.after = vec![ferry_schemas::cdc::After { partition: 1, seq: 12 }];
        let applied = |lane: u32| if lane == BARRIER_LANE { 8 } else { 0 };
        assert!(own_turn(&joined, 10, &applied));
        assert!(!ready(&joined, 10, applied));
        assert!(ready(&joined, 10, |lane| if lane == BARRIER_LANE { 8 } else { 12 }));
    }
}
