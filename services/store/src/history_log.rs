//! The durable copy of the schema history: one JetStream stream per task (`FERRY_<task>_SCHEMA`).
//!
//! Invariant: a version is used to decode rows only after the stream acknowledged it, so a
//! restarted store that replays the stream knows every version any published message was
//! decoded with. Each record's `Nats-Msg-Id` is its table and position, so recording the same
//! version again after a restart (the DDL is re-read from the binlog) is dropped as duplicate,
//! and [`SchemaHistory::record`] treats it as already known.

use crate::error::CaptureError;
use crate::schema_history::SchemaHistory;
use async_nats::jetstream::stream::Stream;
use ferry_kit::nats::Nats;
use ferry_kit::KitError;
use ferry_schemas::cdc::SchemaRecord;
use ferry_schemas::names;
use ferry_schemas::position::BinlogFilePos;
use ferry_schemas::table::{TableRef, TableSchema};

/// Replays the whole history stream of a task.
pub async fn load(stream: &mut Stream) -> Result<SchemaHistory, CaptureError> {
    let info = stream.info().await.map_err(|e| KitError::nats("reading the schema history stream", e))?;
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let mut history = SchemaHistory::default();
    if info.state.messages == 0 {
        return Ok(history);
    }
    for seq in first..=last {
        let msg = match stream.get_raw_message(seq).await {
            Ok(m) => m,
            Err(e) if e.kind() == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound => {
                continue
            }
            Err(e) => return Err(KitError::nats(format!("reading schema record {seq}"), e).into()),
        };
        let record: SchemaRecord = serde_json::from_slice(&msg.payload)
            .map_err(|source| KitError::Json { what: format!("schema record {seq}"), source })?;
        history.record(&record.table, record.from, record.schema)?;
    }
    Ok(history)
}

/// Makes a table version durable, then adds it to `history`. Returns its version number.
pub async fn append(
    nats: &Nats,
    task: &str,
    history: &mut SchemaHistory,
    table: &TableRef,
    from: &BinlogFilePos,
    schema: Option<TableSchema>,
) -> Result<u64, CaptureError> {
    let record = SchemaRecord { table: table.clone(), from: from.clone(), schema };
    let payload = serde_json::to_vec(&record)
        .map_err(|source| KitError::Json { what: format!("schema record of {table}"), source })?;
    let id = names::schema_msg_id(task, &table.database, &table.table, &from.to_string());
    nats.publish_dedup(names::schema_subject(task), &id, payload.into()).await?;
    Ok(history.record(table, record.from, record.schema)?)
}
