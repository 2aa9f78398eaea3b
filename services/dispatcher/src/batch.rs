//! APPLY messages as the dispatcher builds them, several transactions to a message when they
//! come back to back (see `ferry_schemas::cdc::ApplyEvent::then`).
//!
//! Invariant: a message is started with the next APPLY sequence and published before any
//! other is started, so the sequence it was linked and routed with ([`Outgoing::apply_seq`])
//! is the one JetStream gives it (the publish expects `apply_seq - 1` as the stream's last).
//! A transaction joins the message being filled only when causality sends it to the same
//! partition with nothing more to wait for (no joins), and only whole transactions do, so the
//! message waits for exactly what its first transaction waits for. Nothing here survives a
//! restart: a message not yet published is read again from the CDC stream.
//!
//! Why: each APPLY message cost ~15 us of nats-server CPU to store and ~20 us to deliver and
//! ack, and the dispatcher and sink pay per message too (NATS client, runtime, syscalls) about
//! as much again; a catch-up moves ~125,000 sysbench transactions of ~2 KB.

use crate::raw::{ApplyOut, Event, ThenOut, Untagged};
use crate::route::Links;
use async_nats::HeaderMap;
use ferry_schemas::envelope::Envelope;
use ferry_schemas::names;
use ferry_schemas::position::SourcePosition;
use serde_json::value::RawValue;
use std::collections::VecDeque;

/// Most transactions in one APPLY message.
pub const MAX_TRANSACTIONS: usize = 64;
/// Most bytes of CDC messages packed into one APPLY message (NATS refuses payloads above its
/// max_payload, 1 MiB by default; the store keeps each CDC message below that).
pub const MAX_BYTES: usize = 256 * 1024;

/// An APPLY message being filled.
pub struct Outgoing {
    pub apply_seq: u64,
    pub subject: String,
    pub partition: Option<u32>,
    links: Links,
    cdc_seq: u64,
    /// Last CDC sequence it carries.
    pub cdc_last: u64,
    position: Option<SourcePosition>,
    event: Box<RawValue>,
    then: Vec<Box<RawValue>>,
    /// Bytes of the CDC messages it carries.
    bytes: usize,
    /// Trace context of its first transaction.
    pub headers: HeaderMap,
}

impl Outgoing {
    /// A message starting with `event` (the CDC message `cdc_seq` of `bytes` bytes).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        apply_seq: u64,
        subject: String,
        partition: Option<u32>,
        links: Links,
        cdc_seq: u64,
        position: Option<SourcePosition>,
        event: &Event,
        bytes: usize,
        headers: HeaderMap,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            apply_seq,
            subject,
            partition,
            links,
            cdc_seq,
            cdc_last: cdc_seq,
            position,
            event: serde_json::value::to_raw_value(event)?,
            then: Vec::new(),
            bytes,
            headers,
        })
    }

    /// Whether a transaction routed to `partition` with no joins, from a CDC message of `bytes`
    /// bytes, may join this message.
    pub fn takes(&self, partition: Option<u32>, joins: bool, bytes: usize) -> bool {
        partition.is_some()
            && partition == self.partition
            && !joins
            && self.then.len() + 1 < MAX_TRANSACTIONS
            && self.bytes + bytes <= MAX_BYTES
    }

    /// Adds a whole transaction (see [`Outgoing::takes`]).
    pub fn push(
        &mut self,
        cdc_seq: u64,
        position: Option<&SourcePosition>,
        event: &Event,
        bytes: usize,
    ) -> Result<(), serde_json::Error> {
        let then = ThenOut { cdc_seq, position, transaction: Untagged(event) };
        self.then.push(serde_json::value::to_raw_value(&then)?);
        self.cdc_last = cdc_seq;
        self.bytes += bytes;
        Ok(())
    }

    /// Transactions (or other events) it carries.
    pub fn transactions(&self) -> usize {
        1 + self.then.len()
    }

    /// The message's payload: the envelope (its first transaction's position) and the
    /// `ApplyEvent`.
    pub fn payload(&self, task: &str) -> Result<Vec<u8>, serde_json::Error> {
        let out = Envelope::new(
            task,
            names::apply_event_id(task, self.cdc_seq),
            self.position.clone(),
            ApplyOut {
                cdc_seq: self.cdc_seq,
                partition: self.partition,
                prev_partition_seq: self.links.prev_partition_seq,
                prev_barrier_seq: self.links.prev_barrier_seq,
                partition_last: self.links.partition_last.clone(),
                after: self.links.after.clone(),
                event: &*self.event,
                then: &self.then,
            },
        );
        let mut payload = Vec::with_capacity(self.bytes + 512);
        serde_json::to_writer(&mut payload, &out)?;
        Ok(payload)
    }
}

/// Transactions dispatched by this run and not applied yet, from the messages' sequences and
/// sizes (the sink's ack floor counts messages).
#[derive(Default)]
pub struct Backlog {
    /// APPLY sequence and transactions of each message published and not known applied.
    published: VecDeque<(u64, u64)>,
    transactions: u64,
}

impl Backlog {
    pub fn published(&mut self, apply_seq: u64, transactions: usize) {
        self.published.push_back((apply_seq, transactions as u64));
        self.transactions += transactions as u64;
    }

    /// Forgets the messages below `applied_below`; returns the transactions still in flight.
    pub fn applied_below(&mut self, applied_below: u64) -> u64 {
        while let Some((seq, n)) = self.published.front().copied() {
            if seq >= applied_below {
                break;
            }
            self.transactions -= n;
            self.published.pop_front();
        }
        self.transactions
    }

    pub fn transactions(&self) -> u64 {
        self.transactions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_counts_transactions_of_messages_not_applied() {
        let mut b = Backlog::default();
        b.published(1, 1);
        b.published(2, 64);
        b.published(3, 10);
        assert_eq!(b.transactions(), 75);
        assert_eq!(b.applied_below(2), 74);
        assert_eq!(b.applied_below(2), 74);
        assert_eq!(b.applied_below(4), 0);
    }
}
