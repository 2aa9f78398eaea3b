//! The consume loop: the one place that decides when a JetStream message is acknowledged.
//!
//! Policy: a message is acked only after its handler returned, i.e. after the effect it
//! carries is durable (the sink returns after its target transaction committed). A handler that
//! says *later* gets the message nak'ed with a delay (it waits for a predecessor). A transient
//! failure is retried in place with backoff while the messages' ack deadlines are extended, so
//! order is kept; a definite failure stops the loop without acking, so the message stays in the
//! stream for the resumed task. After a crash, unacked messages are redelivered; handlers must
//! therefore be idempotent (the sink checks its checkpoint).
//!
//! Ordering: each message maps to a lane. Messages of the same lane never run at the same time
//! and run in stream order; messages that arrive while their lane is busy queue up and run
//! together as one batch (up to [`Handler::max_batch`]) when it frees, so a handler can apply
//! them in one target transaction. A barrier waits until everything before it finished and runs
//! alone; consecutive barriers run together as one batch (up to [`Handler::max_batch`]). While
//! barriers wait, reading continues only as long as more barriers arrive: the first other
//! message is held until they have run.
//!
//! Linger: a lane whose queue holds fewer than [`Handler::max_batch`] messages is not started
//! until its oldest queued message has waited [`Handler::linger`], so a lane that keeps up
//! (steady sync, a few transactions at a time) still gets batches worth committing together.
//! A full batch starts at once.
//!
//! Staging: a lane whose queue holds a full batch while the lane runs has that batch taken
//! out and given to [`Handler::stage`] on a blocking thread, so a handler can do the CPU work
//! of its next batch (the sink plans its SQL) while the current one waits on I/O. The staged
//! batch is the one the lane would have taken anyway (a full batch is the oldest messages up to
//! [`Handler::max_batch`]); it runs as soon as the lane frees, before anything queued after
//! it. Staging changes no outcome: a handler must give the same result whether or not
//! `stage` ran, and a staged batch is acked only after it ran, like any other.
//!
//! Read-ahead: the loop reads while what it holds (queued and staged, counted by
//! [`Handler::weight`]) is under `concurrency` × [`Handler::max_batch`] (at least 4), and the
//! NATS client pulls up to that many messages and [`Handler::read_ahead_bytes`] ahead of it.
//! Every message read or pulled has its ack deadline ([`ACK_WAIT`]) running: holding more
//! work than the lanes do in that time gets messages redelivered while they wait (bench/cdc's
//! catch-up, before weights and the byte bound: the client held ~3,000 packed messages, up to
//! 64 transactions each, and a third of the groups met a redelivered copy).
//!
//! Units: a barrier the handler says [`Handler::continues`] (a part of a source transaction
//! split over several messages, not its last) is not run until the barrier that ends its unit
//! has arrived, so the handler can commit the whole unit at once. Meanwhile reading goes on,
//! other messages are held, and every waiting message gets in-progress acks so JetStream does
//! not redeliver it. A unit longer than [`Handler::max_unit`] messages is handed over
//! incomplete; the handler decides what to do with it.

use crate::backoff::Backoff;
use crate::error::ErrorClass;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{AckKind, Message};
use ferry_schemas::status::ErrorReport;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Runs alone, after everything before it.
    Barrier,
    /// Runs after earlier messages of the same lane, in parallel with other lanes.
    Key(u64),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Not applicable yet: redeliver after the delay.
    Later(Duration),
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub class: ErrorClass,
    pub report: Box<ErrorReport>,
}

pub trait Handler: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    /// Parses a message and says in which lane it runs.
    fn prepare(&self, msg: &Message) -> Result<(Lane, Self::Item), Failure>;
    /// Applies it; returns once its effect is durable.
    fn handle<'a>(&'a self, item: &'a Self::Item) -> BoxFuture<'a, Result<Outcome, Failure>>;
    /// Applies consecutive items of one lane; returns one outcome per item, in order, once
    /// their effects are durable. The default handles them one by one.
    fn handle_batch<'a>(&'a self, items: &'a [Self::Item]) -> BoxFuture<'a, Result<Vec<Outcome>, Failure>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(self.handle(item).await?);
            }
            Ok(out)
        })
    }
    /// Most items of one lane handed to [`Handler::handle_batch`] at once, counted by
    /// [`Handler::weight`].
    fn max_batch(&self) -> usize {
        1
    }
    /// What an item counts against [`Handler::max_batch`] (the sink: its source transactions).
    fn weight(&self, _item: &Self::Item) -> usize {
        1
    }
    /// How long a lane with less than a full batch queued waits for more before it starts
    /// (see the module doc on linger).
    fn linger(&self) -> Duration {
        Duration::ZERO
    }
    /// Whether the loop hands a busy lane's next full batch to [`Handler::stage`] (see the
    /// module doc on staging).
    fn stages(&self) -> bool {
        false
    }
    /// Work on a lane's next batch while the lane's current batch runs, on a blocking thread:
    /// it must not change what [`Handler::handle_batch`] does with the batch, only how fast.
    fn stage(&self, _items: &[&Self::Item]) {}
    /// Whether a barrier item belongs with the barrier after it (see the module doc on units).
    fn continues(&self, _item: &Self::Item) -> bool {
        false
    }
    /// Most bytes the NATS client may have pulled ahead of the loop, 0 for no bound but the
    /// message count. A handler whose messages carry many items each (the sink's packed
    /// APPLY messages) sets it, or the client pulls far more work than the lanes do before the
    /// messages' ack deadline (see the module doc on read-ahead). It must be at least the
    /// largest message the server accepts (its `max_payload`), or that message never arrives.
    fn read_ahead_bytes(&self) -> usize {
        0
    }
    /// Most barriers held while a unit is open. The consumer's `max_ack_pending` must allow
    /// this many plus the pull buffer (`concurrency` × `max_batch`, at least 4) and half as
    /// many again.
    fn max_unit(&self) -> usize {
        self.max_batch()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error("{}", .0.report.message)]
    Failed(Failure),
    #[error("message stream interrupted: {0}")]
    Stream(String),
}

impl ConsumeError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ConsumeError::Failed(f) => f.class,
            ConsumeError::Stream(_) => ErrorClass::Transient,
        }
    }
}

/// How long JetStream waits for an ack before redelivering. Short, so messages held by a
/// killed consumer come back quickly; a handler that runs longer keeps its message by sending
/// in-progress acks every [`PROGRESS_EVERY`].
pub const ACK_WAIT: Duration = Duration::from_secs(10);
pub const PROGRESS_EVERY: Duration = Duration::from_secs(3);
/// How long barriers that could run wait for another barrier to join their batch.
const BARRIER_LINGER: Duration = Duration::from_millis(2);

/// The durable pull consumer `name` on `stream` with the ack policy this loop relies on
/// (explicit acks, [`ACK_WAIT`]), created if it does not exist and updated if it was created
/// with other settings (an older release's `max_ack_pending`).
pub async fn durable_consumer(
    stream: &async_nats::jetstream::stream::Stream,
    name: &str,
    max_ack_pending: usize,
) -> Result<PullConsumer, crate::KitError> {
    use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
    stream
        .create_consumer(pull::Config {
            durable_name: Some(name.to_owned()),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::All,
            ack_wait: ACK_WAIT,
            max_ack_pending: i64::try_from(max_ack_pending).unwrap_or(i64::MAX),
            ..Default::default()
        })
        .await
        .map_err(|e| crate::KitError::nats(format!("creating consumer {name}"), e))
}

type Running = BoxFuture<'static, (Option<u64>, Result<(), Failure>)>;
type Staging<T> = tokio::task::JoinHandle<Vec<(Message, T)>>;

/// Hands `batch` to [`Handler::stage`] on a blocking thread; resolves to the batch. A panic in
/// `stage` is contained: staging only ever saves work, so the batch still runs.
fn stage<H: Handler>(handler: Arc<H>, batch: Vec<(Message, H::Item)>) -> Staging<H::Item> {
    tokio::task::spawn_blocking(move || {
        {
            let items: Vec<&H::Item> = batch.iter().map(|(_, item)| item).collect();
            let staged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.stage(&items)));
            if staged.is_err() {
                tracing::error!("staging a batch panicked; it runs unstaged");
            }
        }
        batch
    })
}

/// Messages read and not yet handed to a handler, by lane, in arrival order, each with when
/// it was queued and its weight ([`Handler::weight`]).
struct Queues<T> {
    by_lane: HashMap<u64, LaneQueue<T>>,
    /// Lanes with queued messages, oldest first.
    order: VecDeque<u64>,
    queued: usize,
    /// Sum of the queued messages' weights.
    weight: usize,
}

struct LaneQueue<T> {
    entries: VecDeque<(Instant, usize, T)>,
    /// Sum of the entries' weights.
    weight: usize,
}

impl<T> Default for LaneQueue<T> {
    fn default() -> Self {
        Self { entries: VecDeque::new(), weight: 0 }
    }
}

impl<T> Queues<T> {
    fn new() -> Self {
        Self { by_lane: HashMap::new(), order: VecDeque::new(), queued: 0, weight: 0 }
    }

    fn push(&mut self, lane: u64, entry: T, weight: usize, now: Instant) {
        let q = self.by_lane.entry(lane).or_default();
        if q.entries.is_empty() {
            self.order.push_back(lane);
        }
        q.entries.push_back((now, weight, entry));
        q.weight += weight;
        self.queued += 1;
        self.weight += weight;
    }

    /// Whether a lane's queue may start: a full batch, or its oldest has lingered enough.
    fn due(q: &LaneQueue<T>, max: usize, linger: Duration, now: Instant) -> bool {
        q.weight >= max
            || q.entries.front().is_none_or(|(at, _, _)| now.saturating_duration_since(*at) >= linger)
    }

    /// Takes messages of the oldest lane that is not busy and is due, up to a weight of `max`
    /// (at least one message).
    fn take(
        &mut self,
        busy: &HashSet<u64>,
        max: usize,
        linger: Duration,
        now: Instant,
    ) -> Option<(u64, Vec<T>)> {
        let max = max.max(1);
        let pos = self.order.iter().position(|l| {
            !busy.contains(l) && self.by_lane.get(l).is_some_and(|q| Self::due(q, max, linger, now))
        })?;
        let lane = self.order.remove(pos)?;
        Some((lane, self.drain(lane, max)?.1))
    }

    /// Takes a full batch (a weight of `max`) of `lane`, if its queue holds one; with its weight.
    fn take_full(&mut self, lane: u64, max: usize) -> Option<(usize, Vec<T>)> {
        let max = max.max(1);
        if self.by_lane.get(&lane).is_none_or(|q| q.weight < max) {
            return None;
        }
        let pos = self.order.iter().position(|l| *l == lane)?;
        self.order.remove(pos);
        self.drain(lane, max)
    }

    /// Takes the oldest messages of `lane` (already out of `order`) up to a weight of `max`, at
    /// least one; the lane goes back to the end of `order` if messages are left. Returns the
    /// batch's weight with it.
    fn drain(&mut self, lane: u64, max: usize) -> Option<(usize, Vec<T>)> {
        let q = self.by_lane.get_mut(&lane)?;
        let mut n = 0;
        let mut weight = 0;
        for (_, w, _) in &q.entries {
            if n > 0 && weight + w > max {
                break;
            }
            n += 1;
            weight += w;
        }
        let batch: Vec<T> = q.entries.drain(..n).map(|(_, _, e)| e).collect();
        q.weight -= weight;
        if q.entries.is_empty() {
            self.by_lane.remove(&lane);
        } else {
            self.order.push_back(lane);
        }
        self.queued -= batch.len();
        self.weight -= weight;
        Some((weight, batch))
    }

    /// When the next lane that is not busy becomes due (`None`: none is waiting).
    fn next_due(&self, busy: &HashSet<u64>, linger: Duration) -> Option<Instant> {
        self.by_lane
            .iter()
            .filter(|(l, _)| !busy.contains(l))
            .filter_map(|(_, q)| q.entries.front().map(|(at, _, _)| *at + linger))
            .min()
    }
}

/// Consumes until cancelled, the stream fails, or a handler fails definitely.
pub async fn consume<H: Handler>(
    consumer: &PullConsumer,
    handler: Arc<H>,
    concurrency: usize,
    cancel: CancellationToken,
) -> Result<(), ConsumeError> {
    let concurrency = concurrency.max(1);
    let buffer = concurrency * handler.max_batch().max(4);
    let mut pull = consumer.stream().max_messages_per_batch(buffer);
    if handler.read_ahead_bytes() > 0 {
        pull = pull.max_bytes_per_batch(handler.read_ahead_bytes());
    }
    let mut messages = pull
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| ConsumeError::Stream(e.to_string()))?;
    let mut inflight: FuturesUnordered<Running> = FuturesUnordered::new();
    let mut busy: HashSet<u64> = HashSet::new();
    let mut queues: Queues<(Message, H::Item)> = Queues::new();
    let linger = handler.linger();
    // Consecutive barriers waiting for everything before them, and the messages after them
    // (held back until they ran).
    let mut barriers: Vec<(Message, H::Item)> = Vec::new();
    let mut held: Vec<(u64, Message, H::Item)> = Vec::new();
    let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Busy lanes' next batches, being staged (see the module doc), with their message counts
    // and weights.
    let mut staged: HashMap<u64, (usize, usize, Staging<H::Item>)> = HashMap::new();
    let mut staged_messages = 0;
    let mut staged_weight = 0;
    loop {
        while inflight.len() < concurrency {
            // A lane that freed runs its staged batch before anything queued after it.
            if let Some(lane) = staged.keys().find(|l| !busy.contains(l)).copied() {
                let Some((n, w, staging)) = staged.remove(&lane) else { break };
                staged_messages -= n;
                staged_weight -= w;
                busy.insert(lane);
                let (h, c) = (handler.clone(), cancel.clone());
                inflight.push(Box::pin(async move {
                    match staging.await {
                        Ok(batch) => (Some(lane), run_batch(h, batch, c).await),
                        Err(e) => {
                            // Only a runtime shutting down gets here; JetStream redelivers them.
                            tracing::error!(
                                "a staged batch was lost ({e}); its messages will be redelivered"
                            );
                            (Some(lane), Ok(()))
                        }
                    }
                }));
                continue;
            }
            let blocked: HashSet<u64> = busy.iter().chain(staged.keys()).copied().collect();
            let Some((lane, batch)) = queues.take(&blocked, handler.max_batch(), linger, Instant::now())
            else {
                break;
            };
            busy.insert(lane);
            let (h, c) = (handler.clone(), cancel.clone());
            inflight.push(Box::pin(async move { (Some(lane), run_batch(h, batch, c).await) }));
        }
        if handler.stages() {
            let idle: Vec<u64> = busy.iter().filter(|l| !staged.contains_key(l)).copied().collect();
            for lane in idle {
                if let Some((weight, batch)) = queues.take_full(lane, handler.max_batch()) {
                    staged_messages += batch.len();
                    staged_weight += weight;
                    staged.insert(lane, (batch.len(), weight, stage(handler.clone(), batch)));
                }
            }
        }
        // A unit still open waits for its end, up to max_unit barriers and half a buffer of
        // other messages (the other half may sit in the client's pull buffer: with the unit's
        // barriers, all of it must fit max_ack_pending, or the unit's end is never delivered).
        let unit_open = barriers.last().is_some_and(|(_, item)| handler.continues(item))
            && barriers.len() < handler.max_unit().max(handler.max_batch()).max(1)
            && held.len() + queues.queued + staged_messages < buffer / 2;
        let more_barriers_possible = held.is_empty() && barriers.len() < handler.max_batch().max(1);
        let can_read = unit_open
            || held.is_empty()
                && barriers.len() < handler.max_batch().max(1)
                && queues.weight + staged_weight < buffer;
        let barriers_ready = !barriers.is_empty()
            && inflight.is_empty()
            && queues.queued == 0
            && staged.is_empty()
            && !unit_open;
        let lingering = if inflight.len() < concurrency {
            let blocked: HashSet<u64> = busy.iter().chain(staged.keys()).copied().collect();
            queues.next_due(&blocked, linger)
        } else {
            None
        };
        if barriers_ready && !more_barriers_possible {
            run_barriers(&handler, &mut barriers, &mut held, &mut queues, &cancel).await?;
            continue;
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some((lane, result)) = inflight.next(), if !inflight.is_empty() => {
                if let Some(l) = lane {
                    busy.remove(&l);
                }
                result.map_err(ConsumeError::Failed)?;
            }
            // A lingering lane starts when its oldest message has waited long enough.
            _ = tokio::time::sleep_until(lingering.unwrap_or_else(Instant::now).into()), if lingering.is_some() => {}
            // Barriers ready to run wait for the next message only briefly.
            _ = tokio::time::sleep(BARRIER_LINGER), if barriers_ready => {
                run_barriers(&handler, &mut barriers, &mut held, &mut queues, &cancel).await?;
            }
            _ = progress.tick(), if !barriers.is_empty() => {
                // Waiting messages are not in a handler, which would keep them alive.
                for m in barriers.iter().map(|(m, _)| m).chain(held.iter().map(|(_, m, _)| m)) {
                    let _ = m.ack_with(AckKind::Progress).await;
                }
            }
            next = messages.next(), if can_read => {
                let msg = match next {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => return Err(ConsumeError::Stream(e.to_string())),
                    None => return Err(ConsumeError::Stream("the message stream ended".into())),
                };
                let (lane, item) = handler.prepare(&msg).map_err(ConsumeError::Failed)?;
                match lane {
                    Lane::Barrier => barriers.push((msg, item)),
                    Lane::Key(k) if !barriers.is_empty() => held.push((k, msg, item)),
                    Lane::Key(k) => {
                        let weight = handler.weight(&item);
                        queues.push(k, (msg, item), weight, Instant::now())
                    }
                }
            }
        }
    }
    // Let running transactions finish so their messages get acked.
    let _ = tokio::time::timeout(Duration::from_secs(10), async { while inflight.next().await.is_some() {} })
        .await;
    Ok(())
}

/// Runs the waiting barriers, then queues the messages held behind them.
async fn run_barriers<H: Handler>(
    handler: &Arc<H>,
    barriers: &mut Vec<(Message, H::Item)>,
    held: &mut Vec<(u64, Message, H::Item)>,
    queues: &mut Queues<(Message, H::Item)>,
    cancel: &CancellationToken,
) -> Result<(), ConsumeError> {
    run_batch(handler.clone(), std::mem::take(barriers), cancel.clone())
        .await
        .map_err(ConsumeError::Failed)?;
    let now = Instant::now();
    for (lane, msg, item) in held.drain(..) {
        let weight = handler.weight(&item);
        queues.push(lane, (msg, item), weight, now);
    }
    Ok(())
}

async fn run_batch<H: Handler>(
    handler: Arc<H>,
    batch: Vec<(Message, H::Item)>,
    cancel: CancellationToken,
) -> Result<(), Failure> {
    let (msgs, items): (Vec<Message>, Vec<H::Item>) = batch.into_iter().unzip();
    let mut backoff = Backoff::standard();
    loop {
        let outcome = {
            let work = handler.handle_batch(&items);
            tokio::pin!(work);
            let mut beat =
                tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
            loop {
                tokio::select! {
                    r = &mut work => break r,
                    _ = beat.tick() => {
                        for m in &msgs {
                            let _ = m.ack_with(AckKind::Progress).await;
                        }
                    }
                }
            }
        };
        match outcome {
            Ok(outcomes) => {
                for (i, m) in msgs.iter().enumerate() {
                    let result = match outcomes.get(i) {
                        Some(Outcome::Done) => m.ack().await,
                        Some(Outcome::Later(d)) => m.ack_with(AckKind::Nak(Some(*d))).await,
                        // No outcome: not handled, so it comes back.
                        None => m.ack_with(AckKind::Nak(Some(Duration::from_millis(100)))).await,
                    };
                    if let Err(e) = result {
                        tracing::warn!(
                            "ack failed ({e}); the message will be redelivered and skipped by the checkpoint"
                        );
                    }
                }
                return Ok(());
            }
            Err(f) if f.class == ErrorClass::Transient => {
                let d = backoff.next_delay();
                tracing::warn!(code = f.report.code, "{}; retrying in {d:?}", f.report.message);
                for m in &msgs {
                    let _ = m.ack_with(AckKind::Progress).await;
                }
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = cancel.cancelled() => return Ok(()),
                }
            }
            Err(f) => return Err(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_short_of_a_full_batch_lingers_until_its_oldest_has_waited() {
        let linger = Duration::from_millis(50);
        let t0 = Instant::now();
        let mut q: Queues<u32> = Queues::new();
        let idle = HashSet::new();
        q.push(1, 10, 1, t0);
        q.push(1, 11, 1, t0 + Duration::from_millis(30));
        // Two of four queued, the oldest 40 ms old: not yet.
        assert_eq!(q.take(&idle, 4, linger, t0 + Duration::from_millis(40)), None);
        assert_eq!(q.next_due(&idle, linger), Some(t0 + linger));
        assert_eq!(q.take(&idle, 4, linger, t0 + linger), Some((1, vec![10, 11])));
        assert_eq!((q.queued, q.next_due(&idle, linger)), (0, None));
        // A full batch starts at once; what is left lingers from its own arrival.
        for (n, v) in [20, 21, 22].into_iter().enumerate() {
            q.push(2, v, 1, t0 + Duration::from_millis(n as u64));
        }
        assert_eq!(q.take(&idle, 2, linger, t0), Some((2, vec![20, 21])));
        assert_eq!(q.take(&idle, 2, linger, t0 + Duration::from_millis(51)), None);
        assert_eq!(q.take(&idle, 2, linger, t0 + Duration::from_millis(52)), Some((2, vec![22])));
        // A busy lane is neither taken nor waited for; without linger everything is due.
        q.push(3, 30, 1, t0);
        let busy: HashSet<u64> = [3].into_iter().collect();
        assert_eq!((q.take(&busy, 4, linger, t0 + linger), q.next_due(&busy, linger)), (None, None));
        assert_eq!(q.take(&idle, 4, Duration::ZERO, t0), Some((3, vec![30])));
    }

    #[test]
    fn a_batch_is_cut_by_weight_but_takes_at_least_one_message() {
        let t0 = Instant::now();
        let idle = HashSet::new();
        let mut q: Queues<u32> = Queues::new();
        // Weights 3, 3, 1 against a batch of 4: full at once (6 >= 4), taken 3 then 3 + 1.
        q.push(1, 10, 3, t0);
        q.push(1, 11, 3, t0);
        q.push(1, 12, 1, t0);
        let linger = Duration::from_secs(60);
        assert_eq!(q.take(&idle, 4, linger, t0), Some((1, vec![10])));
        // 3 + 1 = 4: a full batch again, due at once.
        assert_eq!(q.take(&idle, 4, linger, t0), Some((1, vec![11, 12])));
        // One message heavier than a batch still goes.
        q.push(2, 20, 9, t0);
        assert_eq!(q.take(&idle, 4, linger, t0), Some((2, vec![20])));
        assert_eq!(q.queued, 0);
    }

    #[test]
    fn only_a_full_batch_is_staged_and_it_is_the_batch_take_would_give() {
        let t0 = Instant::now();
        let idle = HashSet::new();
        let fill = |q: &mut Queues<u32>| {
            for (v, w) in [(10, 2), (11, 1), (12, 2), (13, 1)] {
                q.push(1, v, w, t0);
            }
        };
        let (mut staging, mut taking) = (Queues::new(), Queues::new());
        fill(&mut staging);
        fill(&mut taking);
        // Weight 6 against a batch of 4: the same first two (weight 3) either way, the rest
        // stays queued and its weight counted.
        let staged = staging.take_full(1, 4);
        assert_eq!(
            staged.as_ref().map(|(_, b)| b),
            taking.take(&idle, 4, Duration::from_secs(60), t0).map(|(_, b)| b).as_ref()
        );
        assert_eq!(staged, Some((3, vec![10, 11])));
        assert_eq!((staging.queued, staging.weight, staging.order.len()), (2, 3, 1));
        // Less than a full batch (weight 3 of 4) is not staged: it may still grow.
        assert_eq!(staging.take_full(1, 4), None);
        assert_eq!(staging.take_full(2, 4), None);
        assert_eq!(staging.take(&idle, 4, Duration::ZERO, t0), Some((1, vec![12, 13])));
        assert_eq!((staging.queued, staging.weight), (0, 0));
    }
}
