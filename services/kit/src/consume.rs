//! The consume loop: the one place that decides when a JetStream message is acknowledged.
//!
//! Policy: a message is acked only after its handler returned, i.e. after the effect it
//! carries is durable (the sink returns after its target transaction committed). A handler that
//! says *later* gets the message nak'ed with a delay (it waits for a predecessor). A transient
//! failure is retried in place with backoff while the message's ack deadline is extended, so
//! order is kept; a definite failure stops the loop without acking, so the message stays in the
//! stream for the resumed task. After a crash, unacked messages are redelivered; handlers must
//! therefore be idempotent (the sink checks its checkpoint).
//!
//! Ordering: each message maps to a lane. Messages of the same lane never run at the same time
//! and run in stream order; a barrier waits until everything before it finished and runs alone.

use crate::backoff::Backoff;
use crate::error::ErrorClass;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{AckKind, Message};
use ferry_schemas::status::ErrorReport;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
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
    type Item: Send + 'static;
    /// Parses a message and says in which lane it runs.
    fn prepare(&self, msg: &Message) -> Result<(Lane, Self::Item), Failure>;
    /// Applies it; returns once its effect is durable.
    fn handle<'a>(&'a self, item: &'a Self::Item) -> BoxFuture<'a, Result<Outcome, Failure>>;
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

type Running = BoxFuture<'static, (Option<u64>, Result<(), Failure>)>;

/// Consumes until cancelled, the stream fails, or a handler fails definitely.
pub async fn consume<H: Handler>(
    consumer: &PullConsumer,
    handler: Arc<H>,
    concurrency: usize,
    cancel: CancellationToken,
) -> Result<(), ConsumeError> {
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(concurrency.max(1) * 4)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| ConsumeError::Stream(e.to_string()))?;
    let mut inflight: FuturesUnordered<Running> = FuturesUnordered::new();
    let mut busy: HashSet<u64> = HashSet::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some((lane, result)) = inflight.next(), if !inflight.is_empty() => {
                finished(&mut busy, lane, result)?;
            }
            next = messages.next(), if inflight.len() < concurrency.max(1) => {
                let msg = match next {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => return Err(ConsumeError::Stream(e.to_string())),
                    None => return Err(ConsumeError::Stream("the message stream ended".into())),
                };
                let (lane, item) = handler.prepare(&msg).map_err(ConsumeError::Failed)?;
                match lane {
                    Lane::Barrier => {
                        while let Some((l, r)) = inflight.next().await {
                            finished(&mut busy, l, r)?;
                        }
                        run_one(handler.clone(), msg, item, cancel.clone()).await.map_err(ConsumeError::Failed)?;
                    }
                    Lane::Key(k) => {
                        while busy.contains(&k) {
                            match inflight.next().await {
                                Some((l, r)) => finished(&mut busy, l, r)?,
                                None => break,
                            }
                        }
                        busy.insert(k);
                        let h = handler.clone();
                        let c = cancel.clone();
                        inflight.push(Box::pin(async move { (Some(k), run_one(h, msg, item, c).await) }));
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

fn finished(
    busy: &mut HashSet<u64>,
    lane: Option<u64>,
    result: Result<(), Failure>,
) -> Result<(), ConsumeError> {
    if let Some(l) = lane {
        busy.remove(&l);
    }
    result.map_err(ConsumeError::Failed)
}

async fn run_one<H: Handler>(
    handler: Arc<H>,
    msg: Message,
    item: H::Item,
    cancel: CancellationToken,
) -> Result<(), Failure> {
    let mut backoff = Backoff::standard();
    loop {
        let outcome = {
            let work = handler.handle(&item);
            tokio::pin!(work);
            let mut beat =
                tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
            loop {
                tokio::select! {
                    r = &mut work => break r,
                    _ = beat.tick() => { let _ = msg.ack_with(AckKind::Progress).await; }
                }
            }
        };
        match outcome {
            Ok(Outcome::Done) => {
                if let Err(e) = msg.ack().await {
                    tracing::warn!(
                        "ack failed ({e}); the message will be redelivered and skipped by the checkpoint"
                    );
                }
                return Ok(());
            }
            Ok(Outcome::Later(d)) => {
                let _ = msg.ack_with(AckKind::Nak(Some(d))).await;
                return Ok(());
            }
            Err(f) if f.class == ErrorClass::Transient => {
                let d = backoff.next_delay();
                tracing::warn!(code = f.report.code, "{}; retrying in {d:?}", f.report.message);
                let _ = msg.ack_with(AckKind::Progress).await;
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = cancel.cancelled() => return Ok(()),
                }
            }
            Err(f) => return Err(f),
        }
    }
}
