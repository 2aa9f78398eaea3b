//! What a task's APPLY stream says about dispatch and apply (read-only helpers, plus the purge).
//!
//! Invariant kept: the APPLY stream (limits retention) always holds the message at the sink
//! consumer's ack floor, and every message after it. Everything up to the floor is applied (the
//! sink acks a message only after its target transaction committed; the floor is the highest
//! sequence with every message at or below it acknowledged), so:
//! - the floor message's last transaction is where apply stands (its source position and time:
//!   `crate::watermark`);
//! - the last message's last CDC sequence is where dispatch stands (the dispatcher resumes
//!   after it);
//! - messages below the floor are not needed by anyone and [`purge_applied`] removes them.
//!
//! Restart: nothing here is in memory; the sink consumer's ack floor is JetStream's own durable
//! state, and a purge that a crash interrupts is repeated by the next one.

use crate::KitError;
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::stream::Stream;
use ferry_schemas::cdc::ApplyEvent;
use ferry_schemas::envelope::Envelope;
use ferry_schemas::names;

/// The APPLY sequence through which the sink has acknowledged every message (0: none), read
/// from its durable consumer; before the sink created it, nothing is applied and the answer is
/// the sequence before the stream's first message.
pub async fn acked_floor(stream: &mut Stream, task: &str) -> Result<u64, KitError> {
    let name = names::sink_apply_consumer(task);
    match stream.consumer_info(&name).await {
        Ok(info) => Ok(info.ack_floor.stream_sequence),
        Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {
            let state = &stream
                .info()
                .await
                .map_err(|e| KitError::nats(format!("reading stream {}", names::apply_stream(task)), e))?
                .state;
            Ok(if state.messages == 0 { state.last_sequence } else { state.first_sequence.saturating_sub(1) })
        }
        Err(e) => Err(KitError::nats(format!("reading consumer {name}"), e)),
    }
}

/// The APPLY message at `seq`.
pub async fn read(stream: &Stream, seq: u64) -> Result<Envelope<ApplyEvent>, KitError> {
    let msg = stream
        .get_raw_message(seq)
        .await
        .map_err(|e| KitError::nats(format!("reading APPLY message {seq}"), e))?;
    serde_json::from_slice(&msg.payload)
        .map_err(|source| KitError::Json { what: format!("APPLY message {seq}"), source })
}

/// Removes the messages below `floor` (see [`acked_floor`]), keeping the one at it. Returns
/// how many were removed.
pub async fn purge_applied(stream: &Stream, task: &str, floor: u64) -> Result<u64, KitError> {
    if floor <= 1 {
        return Ok(0);
    }
    let purged = stream.purge().sequence(floor).await.map_err(|e| {
        KitError::nats(format!("purging applied messages of {}", names::apply_stream(task)), e)
    })?;
    Ok(purged.purged)
}
