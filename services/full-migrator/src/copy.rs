//! Copying one table's rows into the FULL stream, so that a crash anywhere loses nothing and
//! never publishes the same rows twice as two different messages.
//!
//! **Keyed tables** (primary key, or a unique key on NOT NULL columns) are read in key order in
//! chunks: chunk `i` holds the rows with key in `(high(i-1), high(i)]`, at most `chunk_rows` of
//! them and never more bytes than fit in one NATS message (a chunk is cut short and the next
//! one starts after its last row). The published message *is* the chunk: it carries its index,
//! its bounds and its rows, and its `Nats-Msg-Id` is derived from the index, so JetStream drops
//! a republish within the duplicate window and the sink's checkpoint drops it after that.
//!
//! The durable progress of a table (`TableProgress` in the status bucket) is written only after
//! JetStream acknowledged the chunk. A crash between the ack and that write leaves the stream
//! one chunk ahead of the progress record; on restart the copy reads the table's last message
//! from the stream and adopts its index and upper bound, so the next chunk starts exactly after
//! it: no gap, no overlap. Because every chunk's range is fixed once published, a re-read of
//! the same range (only possible before its ack) may see newer rows, never a different range.
//! The copy does not hold a snapshot: rows change while it reads, and the incremental phase
//! replays every change since P0 (recorded before the first read) in safe mode to converge.
//!
//! A table ends with a `TableDone` event counting its chunks, published before the progress
//! record says `done`; a restart that finds `TableDone` as the table's last message only writes
//! the record (it never copies a finished table again).
//!
//! **Keyless tables** cannot be resumed in the middle: rows have no order to resume from. They
//! are streamed whole in parts; each restart of an unfinished keyless table begins a new
//! *attempt*, and the sink empties the target table when it applies part 0 of a newer attempt
//! and ignores parts of older ones.

use crate::error::{definite, FullError};
use crate::plan::TablePlan;
use async_nats::jetstream::kv;
use async_nats::jetstream::stream::Stream;
use bytes::Bytes;
use ferry_kit::metrics::{self, Metrics};
use ferry_kit::nats::{kv_get, kv_put, Nats};
use ferry_mysql::values::{from_mysql, placeholder, to_param};
use ferry_schemas::envelope::Envelope;
use ferry_schemas::full::{BatchColumn, FullEvent, RowBatch, TableDone};
use ferry_schemas::names;
use ferry_schemas::status::TableProgress;
use ferry_schemas::table::{quote_ident, ColumnDef, KeyKind};
use ferry_schemas::value::SqlValue;
use mysql_async::prelude::*;
use mysql_async::{Conn, Pool, Row, Value};
use serde_json::Value as Json;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Room left in a message for the envelope around the rows.
const ENVELOPE_MARGIN: usize = 64 * 1024;

pub struct CopyContext {
    pub task: String,
    pub nats: Nats,
    pub stream: Stream,
    pub status: kv::Store,
    pub pool: Pool,
    pub chunk_rows: usize,
    pub max_payload: usize,
    pub metrics: Arc<Metrics>,
    pub cancel: CancellationToken,
}

/// The columns a chunk reads: the stored ones (sent), then key columns that are generated
/// (read only to know the bound).
struct Layout<'a> {
    select: Vec<&'a ColumnDef>,
    sent: usize,
    key_pos: Vec<usize>,
}

fn layout(plan: &TablePlan) -> Layout<'_> {
    let mut select: Vec<&ColumnDef> = plan.schema.stored_columns().collect();
    let sent = select.len();
    let mut key_pos = Vec::new();
    for k in &plan.schema.key {
        match select.iter().position(|c| &c.name == k) {
            Some(p) => key_pos.push(p),
            None => {
                if let Some(c) = plan.schema.column(k) {
                    select.push(c);
                    key_pos.push(select.len() - 1);
                }
            }
        }
    }
    Layout { select, sent, key_pos }
}

impl CopyContext {
    /// Copies one table to the end, resuming from its durable progress.
    pub async fn copy_table(&self, plan: &TablePlan) -> Result<TableProgress, FullError> {
        let key = names::table_progress_key(&self.task, &plan.source.database, &plan.source.table);
        let mut progress =
            kv_get::<TableProgress>(&self.status, &key).await?.unwrap_or_else(|| TableProgress {
                source: plan.source.clone(),
                target: plan.target.clone(),
                keyless: plan.schema.key_kind == KeyKind::None,
                estimated_rows: plan.estimated_rows,
                attempt: 0,
                chunks_published: 0,
                rows_published: 0,
                high_key: None,
                done: false,
                note: (plan.schema.key_kind == KeyKind::None).then(|| {
                    "no primary or NOT NULL unique key: copied whole; a restart copies it again".to_owned()
                }),
            });
        if progress.done {
            return Ok(progress);
        }
        let last = self.last_event(plan).await?;
        if let Some(FullEvent::TableDone(d)) = &last {
            if d.attempt == progress.attempt {
                // Everything was published, only the progress record was not written.
                progress.chunks_published = d.chunks;
                progress.done = true;
                kv_put(&self.status, &key, &progress).await?;
                return Ok(progress);
            }
        }
        let last = match last {
            Some(FullEvent::Rows(b)) => Some(b),
            _ => None,
        };
        let mut conn = self
            .pool
            .get_conn()
            .await
            .map_err(|e| ferry_mysql::SourceError::mysql("connecting to the source", e))?;
        if progress.keyless {
            self.restart_keyless(&mut progress, last);
            self.copy_keyless(&mut conn, plan, &mut progress, &key).await?;
        } else {
            adopt_published(&mut progress, last);
            self.copy_keyed(&mut conn, plan, &mut progress, &key).await?;
        }
        self.publish_done(plan, &progress).await?;
        progress.done = true;
        kv_put(&self.status, &key, &progress).await?;
        tracing::info!(task = self.task, table = %plan.source, rows = progress.rows_published, chunks = progress.chunks_published, "table read completely");
        Ok(progress)
    }

    /// Closes the table in the stream: the sink finishes it (indexes) once it applied `chunks`.
    async fn publish_done(&self, plan: &TablePlan, progress: &TableProgress) -> Result<(), FullError> {
        let id =
            names::full_done_msg_id(&self.task, &plan.source.database, &plan.source.table, progress.attempt);
        let event = FullEvent::TableDone(TableDone {
            source: plan.source.clone(),
            target: plan.target.clone(),
            keyless: progress.keyless,
            attempt: progress.attempt,
            chunks: progress.chunks_published,
        });
        let subject = names::full_table_subject(&self.task, &plan.source.database, &plan.source.table);
        crate::structure::publish(&self.nats, &self.task, subject, id, event).await
    }

    /// The table's last event in the stream (its last chunk, or its end), if any.
    async fn last_event(&self, plan: &TablePlan) -> Result<Option<FullEvent>, FullError> {
        let subject = names::full_table_subject(&self.task, &plan.source.database, &plan.source.table);
        let msg = match self.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => m,
            Err(e) if e.kind() == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {
                return Ok(None)
            }
            Err(e) => {
                return Err(
                    ferry_kit::KitError::nats(format!("reading the last message of {subject}"), e).into()
                )
            }
        };
        let env: Envelope<FullEvent> = serde_json::from_slice(&msg.payload).map_err(|source| {
            ferry_kit::KitError::Json { what: format!("last message of {subject}"), source }
        })?;
        Ok(Some(env.body))
    }

    fn restart_keyless(&self, progress: &mut TableProgress, last: Option<RowBatch>) {
        let seen = last.map(|b| b.attempt);
        if progress.chunks_published > 0 || seen.is_some() {
            progress.attempt = progress.attempt.max(seen.unwrap_or(0)) + 1;
            progress.chunks_published = 0;
            progress.rows_published = 0;
            tracing::warn!(task = self.task, table = %progress.source, attempt = progress.attempt, "keyless table is copied again from the start");
        }
    }

    async fn copy_keyed(
        &self,
        conn: &mut Conn,
        plan: &TablePlan,
        progress: &mut TableProgress,
        key: &str,
    ) -> Result<(), FullError> {
        let lay = layout(plan);
        let mut limit = self.chunk_rows;
        loop {
            if self.cancel.is_cancelled() {
                return Err(FullError::Cancelled);
            }
            let low = progress.high_key.clone();
            let requested = limit;
            let (sql, params) = keyset_query(plan, &lay, low.as_deref(), requested)?;
            let rows: Vec<Row> = conn
                .exec(sql, params)
                .await
                .map_err(|e| ferry_mysql::SourceError::mysql(format!("reading {}", plan.source), e))?;
            if rows.is_empty() {
                return Ok(());
            }
            let fetched = rows.len();
            let (batch_rows, high) = self.convert_rows(plan, &lay, rows)?;
            let taken = batch_rows.len();
            limit = if taken < fetched { taken.max(1) } else { (limit * 2).min(self.chunk_rows) };
            let batch = self.batch(plan, &lay, progress, low, Some(high.clone()), batch_rows);
            self.publish(plan, progress, batch).await?;
            progress.high_key = Some(high);
            kv_put(&self.status, key, progress).await?;
            if taken == fetched && fetched < requested {
                return Ok(());
            }
        }
    }

    /// Converts rows until the byte budget is reached; returns them and the last row's key.
    fn convert_rows(
        &self,
        plan: &TablePlan,
        lay: &Layout<'_>,
        rows: Vec<Row>,
    ) -> Result<(Vec<Vec<Json>>, Vec<Json>), FullError> {
        let budget = self.max_payload.saturating_sub(ENVELOPE_MARGIN);
        let mut out = Vec::with_capacity(rows.len());
        let mut size = 0usize;
        let mut high = Vec::new();
        for row in rows {
            let (cells, key) = convert_row(plan, lay, row)?;
            let len = json_len(&cells);
            if size + len > budget {
                if out.is_empty() {
                    return Err(too_large(plan, len, self.max_payload));
                }
                break;
            }
            size += len + 1;
            out.push(cells);
            high = key;
        }
        Ok((out, high))
    }

    async fn copy_keyless(
        &self,
        conn: &mut Conn,
        plan: &TablePlan,
        progress: &mut TableProgress,
        key: &str,
    ) -> Result<(), FullError> {
        let lay = layout(plan);
        let cols: Vec<String> = lay.select.iter().map(|c| quote_ident(&c.name)).collect();
        let sql = format!("SELECT {} FROM {}", cols.join(", "), plan.source.quoted());
        let budget = self.max_payload.saturating_sub(ENVELOPE_MARGIN);
        let read_err = |e| ferry_mysql::SourceError::mysql(format!("reading {}", plan.source), e);
        let mut result = conn.exec_iter(sql, ()).await.map_err(read_err)?;
        let mut pending: Vec<Vec<Json>> = Vec::new();
        let mut size = 0usize;
        while let Some(row) = result.next().await.map_err(read_err)? {
            let (cells, _) = convert_row(plan, &lay, row)?;
            let len = json_len(&cells);
            if len > budget {
                return Err(too_large(plan, len, self.max_payload));
            }
            if !pending.is_empty() && (size + len > budget || pending.len() >= self.chunk_rows) {
                if self.cancel.is_cancelled() {
                    return Err(FullError::Cancelled);
                }
                let batch = self.batch(plan, &lay, progress, None, None, std::mem::take(&mut pending));
                self.publish(plan, progress, batch).await?;
                kv_put(&self.status, key, progress).await?;
                size = 0;
            }
            size += len + 1;
            pending.push(cells);
        }
        drop(result);
        if !pending.is_empty() || progress.chunks_published == 0 {
            // An empty keyless table still publishes part 0, so the sink empties the target.
            let batch = self.batch(plan, &lay, progress, None, None, pending);
            self.publish(plan, progress, batch).await?;
            kv_put(&self.status, key, progress).await?;
        }
        Ok(())
    }

    fn batch(
        &self,
        plan: &TablePlan,
        lay: &Layout<'_>,
        progress: &TableProgress,
        low_key: Option<Vec<Json>>,
        high_key: Option<Vec<Json>>,
        rows: Vec<Vec<Json>>,
    ) -> RowBatch {
        RowBatch {
            source: plan.source.clone(),
            target: plan.target.clone(),
            chunk: progress.chunks_published,
            attempt: progress.attempt,
            keyless: progress.keyless,
            low_key,
            high_key,
            columns: lay.select[..lay.sent]
                .iter()
                .map(|c| BatchColumn { name: c.name.clone(), column_type: c.column_type.clone() })
                .collect(),
            rows,
        }
    }

    /// Publishes a chunk and counts it as published once JetStream acknowledged it.
    async fn publish(
        &self,
        plan: &TablePlan,
        progress: &mut TableProgress,
        batch: RowBatch,
    ) -> Result<(), FullError> {
        let msg_id = names::full_chunk_msg_id(
            &self.task,
            &plan.source.database,
            &plan.source.table,
            batch.attempt,
            batch.chunk,
        );
        let rows = batch.rows.len() as u64;
        let env = Envelope::new(&self.task, msg_id.clone(), None, FullEvent::Rows(batch));
        let payload = serde_json::to_vec(&env)
            .map_err(|source| ferry_kit::KitError::Json { what: msg_id.clone(), source })?;
        if payload.len() > self.max_payload {
            return Err(too_large(plan, payload.len(), self.max_payload));
        }
        let bytes = payload.len() as u64;
        let subject = names::full_table_subject(&self.task, &plan.source.database, &plan.source.table);
        // A chunk's trace: published here, applied by the sink (headers carry the context).
        let span = if ferry_kit::trace::exporting() {
            tracing::info_span!("copy_chunk", task = %self.task, table = %plan.source, chunk = progress.chunks_published, rows)
        } else {
            tracing::Span::none()
        };
        let headers = ferry_kit::trace::headers_for(&span);
        let ack = self
            .nats
            .publish_dedup_with(subject, &msg_id, Bytes::from(payload), headers)
            .instrument(span)
            .await?;
        if ack.duplicate {
            tracing::info!(task = self.task, table = %plan.source, chunk = progress.chunks_published, "chunk was already in the stream");
        }
        progress.chunks_published += 1;
        progress.rows_published += rows;
        let label = metrics::task(&self.task);
        self.metrics.full_rows_total.get_or_create(&label).inc_by(rows);
        self.metrics.full_chunks_total.get_or_create(&label).inc();
        self.metrics.full_bytes_total.get_or_create(&label).inc_by(bytes);
        Ok(())
    }
}

/// Adopts a chunk that reached the stream after the last progress record.
fn adopt_published(progress: &mut TableProgress, last: Option<RowBatch>) {
    if let Some(b) = last {
        if b.attempt == progress.attempt && b.chunk >= progress.chunks_published && b.high_key.is_some() {
            progress.chunks_published = b.chunk + 1;
            progress.rows_published += b.rows.len() as u64;
            progress.high_key = b.high_key;
        }
    }
}

fn convert_row(plan: &TablePlan, lay: &Layout<'_>, row: Row) -> Result<(Vec<Json>, Vec<Json>), FullError> {
    let values: Vec<Value> = row.unwrap();
    let mut cells = Vec::with_capacity(lay.sent);
    let mut all = Vec::with_capacity(values.len());
    for (col, v) in lay.select.iter().zip(values) {
        let sql = from_mysql(&col.column_type, v).map_err(|message| {
            FullError::Source(ferry_mysql::SourceError::Value {
                table: plan.source.to_string(),
                column: col.name.clone(),
                message,
            })
        })?;
        all.push(sql.to_json());
    }
    let key = lay.key_pos.iter().map(|&p| all[p].clone()).collect();
    all.truncate(lay.sent);
    cells.extend(all);
    Ok((cells, key))
}

/// `SELECT cols FROM t WHERE key > low ORDER BY key LIMIT n`, the comparison spelled out per
/// key column so every server uses the index.
fn keyset_query(
    plan: &TablePlan,
    lay: &Layout<'_>,
    low: Option<&[Json]>,
    limit: usize,
) -> Result<(String, Vec<Value>), FullError> {
    let cols: Vec<String> = lay.select.iter().map(|c| quote_ident(&c.name)).collect();
    let key_cols: Vec<&ColumnDef> = lay.key_pos.iter().map(|&p| lay.select[p]).collect();
    let order: Vec<String> = key_cols.iter().map(|c| quote_ident(&c.name)).collect();
    let mut sql = format!("SELECT {} FROM {}", cols.join(", "), plan.source.quoted());
    let mut params = Vec::new();
    if let Some(low) = low {
        let bound: Vec<Value> = key_cols
            .iter()
            .zip(low)
            .map(|(c, j)| SqlValue::from_json(&c.column_type, j).map(|v| to_param(&v)))
            .collect::<Result<_, _>>()
            .map_err(|e| {
                definite(
                    "bad_progress",
                    Some(plan.source.to_string()),
                    format!("stored key bound is unreadable: {e}"),
                    "reset the task",
                )
            })?;
        let mut terms = Vec::new();
        for i in 0..key_cols.len() {
            let mut parts = Vec::new();
            for (j, c) in key_cols.iter().enumerate().take(i) {
                parts.push(format!("{} = {}", quote_ident(&c.name), placeholder(&c.column_type)));
                params.push(bound[j].clone());
            }
            let c = key_cols[i];
            parts.push(format!("{} > {}", quote_ident(&c.name), placeholder(&c.column_type)));
            params.push(bound[i].clone());
            terms.push(format!("({})", parts.join(" AND ")));
        }
        sql.push_str(&format!(" WHERE {}", terms.join(" OR ")));
    }
    sql.push_str(&format!(" ORDER BY {} LIMIT {limit}", order.join(", ")));
    Ok((sql, params))
}

fn too_large(plan: &TablePlan, len: usize, max: usize) -> FullError {
    definite(
        "row_too_large",
        Some(plan.source.to_string()),
        format!(
            "a row of {} takes {len} bytes, more than fits in one NATS message ({max} bytes)",
            plan.source
        ),
        "raise max_payload in the nats-server configuration (up to 64 MB)",
    )
}

/// Exact length of a row's JSON without allocating it.
fn json_len(cells: &[Json]) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, cells);
    c.0
}
