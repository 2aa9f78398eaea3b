//! One task's dispatch job: CDC stream to APPLY stream, in CDC order, whole transactions of one
//! partition packed together when they come back to back (see `crate::batch`).
//!
//! Protocol (the dispatcher keeps no checkpoint of its own):
//! - Every APPLY message names the CDC messages it carries (`ApplyEvent::cdc_seq`, `cdc_last`),
//!   and the APPLY stream always keeps its last message (see `ferry_kit::apply_log`), so after a
//!   restart the next CDC sequence to read is the last APPLY message's last CDC sequence + 1.
//! - Applied messages are purged by the dispatcher, below the sink consumer's ack floor (the
//!   message at the floor stays: it says where apply stands).
//! - Every publish carries `Nats-Expected-Last-Sequence` (0 for the first: the stream must be
//!   empty), so a publish lost in flight makes every later one fail, and one stored whose
//!   PubAck was lost is never sent again: the job restarts and recomputes where to continue.
//!   Nothing is skipped or published twice, and order is the CDC order.
//! - CDC messages are read by an ordered consumer from that sequence; a sequence that is not
//!   the next one (the CDC stream lost messages to its age limit, or a mirror skipped some)
//!   stops the task with an error instead of applying past a gap.
//! - Causality (see `route`) needs to know which keys are still in flight, and the order chain
//!   (`route::Chain`) which messages came before; after a restart neither is known, so a
//!   restarted dispatcher first waits until the sink has applied everything the previous run
//!   published (the CDC stream holds the changes meanwhile). If that run stopped in the middle
//!   of a split source transaction, the sink holds its parts until the last one arrives, so
//!   the restarted dispatcher waits only for what came before the transaction and continues
//!   the barrier chain from its last published part.

use crate::batch::{Backlog, Outgoing};
use crate::raw::{Event, TableMap};
use crate::route::{self, Causality};
use crate::COMPONENT;
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::Stream;
use chrono::Utc;
use ferry_kit::apply_log;
use ferry_kit::backoff::Backoff;
use ferry_kit::nats::{kv_get, kv_put};
use ferry_kit::runtime::Runtime;
use ferry_kit::{ErrorClass, KitError};
use ferry_schemas::cdc::CdcEvent;
use ferry_schemas::control::{Assignment, TaskRecord};
use ferry_schemas::envelope::Envelope;
use ferry_schemas::names;
use ferry_schemas::status::{DispatcherStatus, ErrorReport};
use ferry_schemas::task::Phase;
use futures::{FutureExt, StreamExt};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const WINDOW: usize = 512;
const FLOOR_EVERY: Duration = Duration::from_millis(50);
const STATUS_EVERY: Duration = Duration::from_millis(500);
/// How often applied messages are purged from the APPLY stream (at most).
const PURGE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Kit(#[from] KitError),
    #[error("{}", .0.message)]
    Definite(Box<ErrorReport>),
}

impl DispatchError {
    fn class(&self) -> ErrorClass {
        match self {
            DispatchError::Kit(e) => e.class(),
            DispatchError::Definite(_) => ErrorClass::Definite,
        }
    }
    fn report(&self) -> ErrorReport {
        match self {
            DispatchError::Definite(r) => (**r).clone(),
            DispatchError::Kit(e) => {
                let (code, fix) = e.code_and_fix();
                ferry_kit::error::report(COMPONENT, code, None, e.to_string(), fix)
            }
        }
    }
}

fn definite(code: &str, object: Option<String>, message: String, fix: &str) -> DispatchError {
    DispatchError::Definite(Box::new(ferry_kit::error::report(COMPONENT, code, object, message, fix)))
}

pub async fn run(rt: Runtime, assignment: Assignment, cancel: CancellationToken) {
    if !assignment.phases.contains(&Phase::Incremental) {
        return;
    }
    let task = assignment.task.clone();
    let mut backoff = Backoff::standard();
    loop {
        match run_once(&rt, &task, &cancel).await {
            Ok(()) => return,
            Err(_) if cancel.is_cancelled() => return,
            Err(e) if e.class() == ErrorClass::Transient => {
                let d = backoff.next_delay();
                tracing::warn!(task, "dispatch interrupted ({e}); retrying in {d:?}");
                rt.metrics.count_error(&task, &e.report().code, false);
                record_problem(&rt, &task, None, Some(e.report())).await;
                tokio::select! { _ = tokio::time::sleep(d) => {}, _ = cancel.cancelled() => return }
            }
            Err(e) => {
                tracing::error!(task, "dispatch stopped: {e}");
                rt.metrics.count_error(&task, &e.report().code, true);
                record_problem(&rt, &task, Some(e.report()), None).await;
                return;
            }
        }
    }
}

async fn record_problem(rt: &Runtime, task: &str, error: Option<ErrorReport>, retrying: Option<ErrorReport>) {
    let key = names::status_key(task, COMPONENT);
    let mut s: DispatcherStatus = kv_get(&rt.buckets.status, &key).await.ok().flatten().unwrap_or_default();
    s.error = error;
    s.retrying = retrying;
    s.updated_at = Some(Utc::now());
    if let Err(e) = kv_put(&rt.buckets.status, &key, &s).await {
        tracing::error!(task, "cannot record the dispatcher status: {e}");
    }
}

async fn save(rt: &Runtime, task: &str, status: &mut DispatcherStatus) -> Result<(), DispatchError> {
    status.updated_at = Some(Utc::now());
    kv_put(&rt.buckets.status, &names::status_key(task, COMPONENT), status).await?;
    Ok(())
}

/// First APPLY sequence the sink has not applied yet.
async fn applied_below(apply: &mut Stream, task: &str) -> Result<u64, DispatchError> {
    Ok(apply_log::acked_floor(apply, task).await? + 1)
}

/// Removes what the sink has applied from the APPLY stream every [`PURGE_EVERY`].
struct Purger {
    at: Instant,
    through: u64,
}

impl Purger {
    async fn tick(&mut self, apply: &Stream, task: &str, applied_below: u64) -> Result<(), DispatchError> {
        let floor = applied_below.saturating_sub(1);
        if self.at.elapsed() < PURGE_EVERY || floor <= self.through {
            return Ok(());
        }
        apply_log::purge_applied(apply, task, floor).await?;
        self.through = floor;
        self.at = Instant::now();
        Ok(())
    }
}

async fn run_once(rt: &Runtime, task: &str, cancel: &CancellationToken) -> Result<(), DispatchError> {
    let record: TaskRecord = ferry_kit::nats::load_task(&rt.buckets, task).await?;
    let spec = record.spec;
    let key = names::status_key(task, COMPONENT);
    let mut status: DispatcherStatus = kv_get(&rt.buckets.status, &key).await?.unwrap_or_default();
    status.error = None;
    status.retrying = None;
    let max_age = Duration::from_secs(u64::from(spec.incremental.retention_hours) * 3600);
    let mut cdc = rt.nats.cdc_stream(task, max_age, spec.source_region(&rt.nats.default_region)).await?;
    let mut apply = rt.nats.apply_stream(task).await?;
    let cdc_state = cdc.info().await.map_err(|e| KitError::nats("reading the CDC stream", e))?.state.clone();
    let apply_state =
        apply.info().await.map_err(|e| KitError::nats("reading the APPLY stream", e))?.state.clone();
    let apply_last = apply_state.last_sequence;
    save(rt, task, &mut status).await?;
    let next_cdc = if apply_last == 0 {
        if cdc_state.messages > 0 {
            cdc_state.first_sequence
        } else {
            cdc_state.last_sequence + 1
        }
    } else if apply_state.messages == 0 {
        return Err(definite(
            "apply_log_lost",
            Some(names::apply_stream(task)),
            format!("the APPLY stream holds no message but has had {apply_last}: it was purged outside Ferry, so where dispatch stands is unknown"),
            "restart the task from a new full copy",
        ));
    } else {
        apply_log::read(&apply, apply_last).await?.body.cdc_last() + 1
    };
    if cdc_state.messages > 0 && cdc_state.first_sequence > next_cdc {
        return Err(definite(
            "cdc_gap",
            Some(names::cdc_stream(task)),
            format!(
                "CDC messages {next_cdc}..{} expired before they were dispatched",
                cdc_state.first_sequence - 1
            ),
            "the apply side was down longer than incremental.retention_hours; raise it and restart the task from a new full copy",
        ));
    }
    tracing::info!(task, next_cdc, apply_last, "dispatch starting");
    let consumer = cdc
        .create_consumer(pull::OrderedConfig {
            filter_subject: names::cdc_subject(task),
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: next_cdc },
            ..Default::default()
        })
        .await
        .map_err(|e| KitError::nats("creating the CDC reader", e))?;
    let mut messages = consumer.messages().await.map_err(|e| KitError::nats("reading the CDC stream", e))?;
    let label = ferry_kit::metrics::task(task);
    let partitions = spec.incremental.partitions;
    let mut causality = Causality::default();
    let mut tables = TableMap::default();
    let mut chain = route::Chain::new(partitions);
    let mut floor = applied_below(&mut apply, task).await?;
    let open_start =
        if floor > apply_last { None } else { open_transaction_start(&apply, apply_last).await? };
    while floor <= apply_last {
        if let Some(start) = open_start.filter(|start| floor >= *start) {
            tracing::info!(task, start, apply_last, "continuing a split transaction");
            chain = route::Chain::after_barrier(partitions, apply_last);
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = cancel.cancelled() => return Ok(()),
        }
        floor = applied_below(&mut apply, task).await?;
    }
    let mut purger = Purger { at: Instant::now(), through: 0 };
    let mut floor_at = Instant::now();
    let mut last_status = Instant::now();
    let mut status_failing = false;
    let mut expected_cdc = next_cdc;
    let mut apply_seq = apply_last;
    let mut inflight: VecDeque<(PublishAckFuture, u64)> = VecDeque::new();
    let mut backlog = Backlog::default();
    // The message being filled (see `batch`): it takes what the reader already holds and goes
    // out as soon as the reader has nothing more ready, so packing adds no wait.
    let mut pending: Option<Outgoing> = None;
    let mut out = Publisher { rt, task, inflight: &mut inflight, backlog: &mut backlog };
    loop {
        let next = if pending.is_some() {
            match messages.next().now_or_never() {
                Some(next) => next,
                None => {
                    if let Some(message) = pending.take() {
                        out.publish(message, &mut status).await?;
                    }
                    continue;
                }
            }
        } else {
            tokio::select! {
                m = messages.next() => m,
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(STATUS_EVERY), if !out.inflight.is_empty() => {
                    settle(out.inflight, usize::MAX, &mut status).await?;
                    continue;
                }
            }
        };
        if cancel.is_cancelled() {
            break;
        }
        let msg = match next {
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(KitError::nats("reading the CDC stream", e).into()),
            None => return Err(KitError::nats("reading the CDC stream", "the message stream ended").into()),
        };
        let seq = msg.info().map_err(|e| KitError::nats("reading CDC message metadata", e))?.stream_sequence;
        if seq < expected_cdc {
            // The reader was reset (e.g. NATS restarted) and replays what was dispatched.
            continue;
        }
        if seq > expected_cdc {
            let first = cdc
                .info()
                .await
                .map_err(|e| KitError::nats("reading the CDC stream", e))?
                .state
                .first_sequence;
            if first > expected_cdc {
                return Err(definite(
                    "cdc_gap",
                    Some(names::cdc_stream(task)),
                    format!("CDC messages {expected_cdc}..{} expired before they were dispatched", first - 1),
                    "the CDC stream lost messages (retention or an interrupted mirror); restart the task from a new full copy",
                ));
            }
            // Still in the stream: the reader skipped it; start over from the derived position.
            return Err(KitError::nats(
                "reading the CDC stream",
                format!("expected message {expected_cdc}, got {seq}"),
            )
            .into());
        }
        expected_cdc += 1;
        let env: Envelope<Event> = serde_json::from_slice(&msg.payload)
            .map_err(|source| KitError::Json { what: format!("CDC message {seq}"), source })?;
        if floor_at.elapsed() >= FLOOR_EVERY {
            floor = applied_below(&mut apply, task).await?;
            floor_at = Instant::now();
            purger.tick(&apply, task, floor).await?;
            if causality.len() > 100_000 {
                causality.prune(floor);
            }
            let ready = out.backlog.applied_below(floor);
            rt.metrics.dispatcher_ready_transaction_size.get_or_create(&label).set(ready as i64);
        }
        // Continue the source transaction's trace (the store put its context in the headers).
        let span = match ferry_kit::trace::context_of(msg.headers.as_ref()) {
            Some(parent) => {
                let span =
                    tracing::info_span!("dispatch", task, cdc_seq = seq, partition = tracing::field::Empty);
                ferry_kit::trace::follow(&span, Some(&parent));
                span
            }
            None => tracing::Span::none(),
        };
        let event = route::filter_and_rename(&spec, &mut tables, env.body)
            .map_err(|source| KitError::Json { what: format!("the tables of CDC message {seq}"), source })?;
        let open_part = match &event {
            Event::Transaction(t) => !t.last_part,
            Event::Typed(CdcEvent::Transaction(t)) => !t.last_part,
            Event::Typed(_) => false,
        };
        let filling = pending.as_ref().and_then(|p| p.partition);
        let route =
            causality.plan(&event, partitions, apply_seq + 1, floor, out.backlog.transactions(), filling);
        span.record("partition", route.partition.map_or(-1, i64::from));
        let json =
            |source| KitError::Json { what: format!("the APPLY message for CDC message {seq}"), source };
        if let Some(filled) =
            pending.as_mut().filter(|p| p.takes(route.partition, !route.joins.is_empty(), msg.payload.len()))
        {
            causality.commit(&route, filled.apply_seq);
            filled.push(seq, env.position.as_ref(), &event, msg.payload.len()).map_err(json)?;
        } else {
            if let Some(message) = pending.take() {
                out.publish(message, &mut status).await?;
            }
            apply_seq += 1;
            causality.commit(&route, apply_seq);
            let subject = match route.partition {
                Some(p) => names::apply_subject(task, p),
                None => {
                    status.barriers += 1;
                    names::apply_barrier_subject(task)
                }
            };
            let links = chain.link(apply_seq, route.partition, &route.joins);
            let headers = ferry_kit::trace::headers_for(&span);
            let message = Outgoing::new(
                apply_seq,
                subject,
                route.partition,
                links,
                seq,
                env.position,
                &event,
                msg.payload.len(),
                headers,
            )
            .map_err(json)?;
            if message.partition.is_some() {
                pending = Some(message);
            } else {
                // Barriers (DDL, heartbeats, parts of split transactions) travel alone.
                out.publish(message, &mut status).await?;
            }
        }
        drop(span);
        if open_part && ferry_kit::failpoint::armed(ferry_kit::failpoint::DISPATCH_MID_TRANSACTION) {
            settle(out.inflight, usize::MAX, &mut status).await?;
            ferry_kit::failpoint::crash_if_armed(ferry_kit::failpoint::DISPATCH_MID_TRANSACTION);
        }
        if last_status.elapsed() >= STATUS_EVERY {
            settle(out.inflight, usize::MAX, &mut status).await?;
            // The status is information (the position is derived from the APPLY stream), so a
            // control plane out of reach (WAN cut to the default region) does not stop dispatch.
            match save(rt, task, &mut status).await {
                Err(e) if !status_failing => {
                    tracing::warn!(task, "cannot write the dispatcher status ({e}); dispatching goes on");
                    status_failing = true;
                }
                Err(_) => {}
                Ok(()) => status_failing = false,
            }
            last_status = Instant::now();
        }
    }
    if let Some(message) = pending.take() {
        out.publish(message, &mut status).await?;
    }
    settle(out.inflight, usize::MAX, &mut status).await?;
    save(rt, task, &mut status).await
}

/// Publishes finished APPLY messages, keeping up to [`WINDOW`] PubAcks in flight.
struct Publisher<'r> {
    rt: &'r Runtime,
    task: &'r str,
    inflight: &'r mut VecDeque<(PublishAckFuture, u64)>,
    backlog: &'r mut Backlog,
}

impl Publisher<'_> {
    async fn publish(
        &mut self,
        message: Outgoing,
        status: &mut DispatcherStatus,
    ) -> Result<(), DispatchError> {
        let payload = message.payload(self.task).map_err(|source| KitError::Json {
            what: format!("APPLY message {}", message.apply_seq),
            source,
        })?;
        // No `Nats-Msg-Id`: the expected last sequence already refuses a second copy (see the
        // module doc), and duplicate tracking cost the server ~21 instead of ~15.5 us of CPU
        // per 2 KB publish (measured with a plain client against the dev nats-server).
        let publish = PublishMessage::build()
            .payload(payload.into())
            .headers(message.headers.clone())
            .expected_last_sequence(message.apply_seq - 1);
        let ack = self
            .rt
            .nats
            .js
            .send_publish(message.subject.clone(), publish)
            .await
            .map_err(|e| KitError::nats("publishing to the APPLY stream", e))?;
        self.inflight.push_back((ack, message.cdc_last));
        self.backlog.published(message.apply_seq, message.transactions());
        settle(self.inflight, WINDOW, status).await
    }
}

/// The APPLY sequence of the first part of the split source transaction whose parts end the
/// APPLY stream at `last` without its last part (`None`: the stream ends with a whole event,
/// or with a part an older dispatcher routed to a partition, which the sink applies without
/// waiting for the rest).
async fn open_transaction_start(apply: &Stream, last: u64) -> Result<Option<u64>, DispatchError> {
    let env = apply_log::read(apply, last).await?;
    Ok(match env.body.event {
        CdcEvent::Transaction(t) if !t.last_part && env.body.partition.is_none() => {
            Some(last.saturating_sub(u64::from(t.part)))
        }
        _ => None,
    })
}

/// Awaits PubAcks until at most `keep` (`usize::MAX`: none) remain in flight.
async fn settle(
    inflight: &mut VecDeque<(PublishAckFuture, u64)>,
    keep: usize,
    status: &mut DispatcherStatus,
) -> Result<(), DispatchError> {
    let keep = if keep == usize::MAX { 0 } else { keep };
    while inflight.len() > keep {
        let Some((fut, cdc_seq)) = inflight.pop_front() else { break };
        fut.await.map_err(|e| KitError::nats("awaiting an APPLY PubAck", e))?;
        status.cdc_seq = cdc_seq;
    }
    Ok(())
}
