//! The capture job: binlog to the task's CDC stream, exactly once, in binlog order.
//!
//! Protocol:
//! - **Start.** A task with a full phase starts at the full copy's P0 (waiting until the
//!   full-migrator recorded it); otherwise at `incremental.start`, `start_gtid` or
//!   `start_time` (resolved to a file position by `start_point`), or the end of the binlog
//!   when the task first ran (recorded in the store status before anything is read, so a
//!   restart does not move it).
//! - **Resume.** The last message in the CDC stream says where to continue: after a complete
//!   transaction, heartbeat or DDL, at its position; inside a split transaction, at the
//!   transaction's `begin`, skipping the parts already in the stream. (If every message has aged
//!   out, the position in the store status, written after PubAcks, is used.)
//! - **Order, no gaps, no duplicates.** Every publish carries `Nats-Expected-Last-Sequence`: the
//!   stream sequence it must follow. Publishes are pipelined; if one is lost (NATS restarted,
//!   timeout) every later one is refused by the stream, the job restarts, and resumes from the
//!   stream's real last message. `Nats-Msg-Id` (position + part) guards a publish retried by
//!   the client.
//! - **Schema.** Rows decode with the table's schema version in force at their position, from
//!   the durable history (`history_log`). On first start the included tables' schemas are
//!   recorded at the start position; a DDL records the touched tables' new schemas at its
//!   position before the DDL message is published.
//! - **Heartbeats.** The reader asks the source for a heartbeat every 0.5 s of idleness; the job
//!   publishes a heartbeat message when it has published nothing for [`HEARTBEAT_EVERY`], so the
//!   apply side can always measure its delay.

use crate::assemble::{table_version, Assembler, Output};
use crate::binlog::reader::Reader;
use crate::ddl;
use crate::error::{definite, CaptureError};
use crate::history_log;
use crate::schema_history::SchemaHistory;
use crate::start_point;
use crate::COMPONENT;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::Stream;
use chrono::{DateTime, Utc};
use ferry_kit::backoff::Backoff;
use ferry_kit::metrics::TaskLabel;
use ferry_kit::nats::{kv_get, kv_put, Nats};
use ferry_kit::runtime::Runtime;
use ferry_kit::{ErrorClass, KitError};
use ferry_schemas::cdc::{CdcEvent, Heartbeat, Transaction};
use ferry_schemas::control::{Assignment, TaskRecord};
use ferry_schemas::envelope::Envelope;
use ferry_schemas::names;
use ferry_schemas::position::{BinlogFilePos, GtidState, SourcePosition};
use ferry_schemas::status::{FullMigratorStatus, StoreStatus};
use ferry_schemas::table::TableRef;
use ferry_schemas::task::{Phase, TaskSpec};
use mysql_async::Pool;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Longest time without a published message while the source is idle.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(500);
/// Publishes awaiting their PubAck at once.
const WINDOW: usize = 512;
/// Room left in a message for the envelope and headers when a transaction is split.
const ENVELOPE_ROOM: usize = 64 * 1024;
const STATUS_EVERY: Duration = Duration::from_millis(500);

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
                tracing::warn!(task, "capture interrupted ({e}); retrying in {d:?}");
                rt.metrics.count_error(&task, &e.report().code, false);
                record_problem(&rt, &task, None, Some(e.report())).await;
                tokio::select! { _ = tokio::time::sleep(d) => {}, _ = cancel.cancelled() => return }
            }
            Err(e) => {
                tracing::error!(task, "capture stopped: {e}");
                rt.metrics.count_error(&task, &e.report().code, true);
                record_problem(&rt, &task, Some(e.report()), None).await;
                return;
            }
        }
    }
}

async fn record_problem(
    rt: &Runtime,
    task: &str,
    error: Option<ferry_schemas::status::ErrorReport>,
    retrying: Option<ferry_schemas::status::ErrorReport>,
) {
    let key = names::status_key(task, COMPONENT);
    let mut s: StoreStatus = kv_get(&rt.buckets.status, &key).await.ok().flatten().unwrap_or_default();
    s.error = error;
    s.retrying = retrying;
    s.updated_at = Some(Utc::now());
    if let Err(e) = kv_put(&rt.buckets.status, &key, &s).await {
        tracing::error!(task, "cannot record the store status: {e}");
    }
}

/// Where reading starts, and which parts of a split transaction are already in the stream.
struct ResumePoint {
    start: BinlogFilePos,
    /// (end position, last published part) of a transaction published only in part.
    partial: Option<(BinlogFilePos, u32)>,
}

async fn resume_point(
    rt: &Runtime,
    task: &str,
    spec: &TaskSpec,
    stream: &mut Stream,
    status: &mut StoreStatus,
    pool: &Pool,
    cancel: &CancellationToken,
) -> Result<ResumePoint, CaptureError> {
    let info = stream.info().await.map_err(|e| KitError::nats("reading the CDC stream", e))?;
    if info.state.messages > 0 {
        let last = info.state.last_sequence;
        let msg = stream
            .get_raw_message(last)
            .await
            .map_err(|e| KitError::nats(format!("reading CDC message {last}"), e))?;
        let env: Envelope<CdcEvent> = serde_json::from_slice(&msg.payload)
            .map_err(|source| KitError::Json { what: format!("CDC message {last}"), source })?;
        let Some(pos) = env.position else {
            return Err(definite(
                "cdc_stream_corrupt",
                Some(names::cdc_stream(task)),
                format!("CDC message {last} has no position"),
                "delete the task's CDC stream and start the task again",
            ));
        };
        return Ok(match env.body {
            CdcEvent::Transaction(Transaction { last_part: false, begin: Some(begin), part, .. }) => {
                ResumePoint { start: begin, partial: Some((pos.binlog, part)) }
            }
            _ => ResumePoint { start: pos.binlog, partial: None },
        });
    }
    if let Some(pos) = &status.position {
        return Ok(ResumePoint { start: pos.binlog.clone(), partial: None });
    }
    let start = if spec.phases.contains(&Phase::Full) {
        wait_for_p0(rt, task, cancel).await?
    } else if let Some(start) = &spec.incremental.start {
        SourcePosition { binlog: start.clone(), gtid: None, server_id: None }
    } else if let Some(text) = &spec.incremental.start_gtid {
        let gtids: GtidState = text.parse().map_err(|e| {
            definite(
                "bad_start",
                Some("incremental.start_gtid".into()),
                format!("{text:?}: {e}"),
                "MariaDB: domain-server-sequence (0-1-1403); MySQL: uuid:intervals (3e11fa47-...:1-77)",
            )
        })?;
        let mut conn = pool.get_conn().await.map_err(|e| ferry_mysql::SourceError::mysql("connecting", e))?;
        let binlog = start_point::from_gtid(&spec.source, server_id(task), &mut conn, &gtids).await?;
        tracing::info!(task, gtid = %text, start = %binlog, "GTID start point resolved");
        SourcePosition { binlog, gtid: None, server_id: None }
    } else if let Some(at) = spec.incremental.start_time {
        let mut conn = pool.get_conn().await.map_err(|e| ferry_mysql::SourceError::mysql("connecting", e))?;
        let binlog = start_point::from_time(&spec.source, server_id(task), &mut conn, at).await?;
        tracing::info!(task, %at, start = %binlog, "time start point resolved");
        SourcePosition { binlog, gtid: None, server_id: None }
    } else {
        let mut conn = pool.get_conn().await.map_err(|e| ferry_mysql::SourceError::mysql("connecting", e))?;
        ferry_mysql::position::current(&mut conn).await?.ok_or_else(|| {
            definite(
                "binlog_off",
                Some(spec.source.describe()),
                "binary logging is off on the source".into(),
                "enable log_bin with binlog_format=ROW and binlog_row_image=FULL, restart the source, resume",
            )
        })?
    };
    status.position = Some(start.clone());
    save_status(rt, task, status).await?;
    Ok(ResumePoint { start: start.binlog, partial: None })
}

async fn wait_for_p0(
    rt: &Runtime,
    task: &str,
    cancel: &CancellationToken,
) -> Result<SourcePosition, CaptureError> {
    let key = names::status_key(task, "full-migrator");
    loop {
        let fm: Option<FullMigratorStatus> = kv_get(&rt.buckets.status, &key).await?;
        if let Some(p0) = fm.and_then(|s| s.p0) {
            return Ok(p0);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = cancel.cancelled() => return Err(KitError::nats("waiting for P0", "cancelled").into()),
        }
    }
}

async fn save_status(rt: &Runtime, task: &str, status: &mut StoreStatus) -> Result<(), CaptureError> {
    status.updated_at = Some(Utc::now());
    kv_put(&rt.buckets.status, &names::status_key(task, COMPONENT), status).await?;
    Ok(())
}

/// A stable replica server id per task (each binlog reader needs its own).
fn server_id(task: &str) -> u32 {
    let h =
        task.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    1_000_000 + (h % 1_000_000_000) as u32
}

async fn run_once(rt: &Runtime, task: &str, cancel: &CancellationToken) -> Result<(), CaptureError> {
    let record: TaskRecord = ferry_kit::nats::load_task(&rt.buckets, task).await?;
    let mut spec = record.spec;
    rt.secrets.open_spec(&mut spec)?;
    let key = names::status_key(task, COMPONENT);
    let mut status: StoreStatus = kv_get(&rt.buckets.status, &key).await?.unwrap_or_default();
    status.error = None;
    status.retrying = None;
    let pool = ferry_mysql::conn::pool(&spec.source, 2);
    let max_age = Duration::from_secs(u64::from(spec.incremental.retention_hours) * 3600);
    let mut stream = rt.nats.cdc_stream(task, max_age, spec.source_region(&rt.nats.default_region)).await?;
    let mut schema_stream = rt.nats.schema_stream(task).await?;
    let resume = resume_point(rt, task, &spec, &mut stream, &mut status, &pool, cancel).await?;
    let mut history = history_log::load(&mut schema_stream).await?;
    snapshot_missing(rt, task, &spec, &pool, &mut history, &resume.start).await?;
    let collations = {
        let mut conn = pool.get_conn().await.map_err(|e| ferry_mysql::SourceError::mysql("connecting", e))?;
        ferry_mysql::catalog::collations(&mut conn).await?
    };
    save_status(rt, task, &mut status).await?;
    let expected =
        stream.info().await.map_err(|e| KitError::nats("reading the CDC stream", e))?.state.last_sequence;
    tracing::info!(task, start = %resume.start, partial = ?resume.partial, "capture starting");
    let reader =
        Reader::open(&spec.source, server_id(task), &resume.start, false).await?.only(spec.objects.clone());
    let mut capture = Capture {
        rt: rt.clone(),
        task: task.to_owned(),
        label: ferry_kit::metrics::task(task),
        spec,
        pool: pool.clone(),
        history,
        publisher: Publisher {
            nats: rt.nats.clone(),
            subject: names::cdc_subject(task),
            expected,
            inflight: VecDeque::new(),
        },
        status,
        partial: resume.partial,
        last_publish: Instant::now(),
        last_status: Instant::now(),
        max_payload: rt.nats.client.server_info().max_payload,
        spans: None,
    };
    rt.metrics.track_task_rates(&capture.label);
    let result = capture
        .pump(
            reader,
            Assembler::starting_at(capture.spec.objects.clone(), resume.start).with_collations(collations),
            cancel,
        )
        .await;
    let drained = capture.publisher.drain(&mut capture.status, &rt.metrics, &capture.label).await;
    let _ = save_status(rt, task, &mut capture.status).await;
    let _ = pool.disconnect().await;
    result.and(drained)
}

/// Records the schema of every included table the history does not know, at `at`.
async fn snapshot_missing(
    rt: &Runtime,
    task: &str,
    spec: &TaskSpec,
    pool: &Pool,
    history: &mut SchemaHistory,
    at: &BinlogFilePos,
) -> Result<(), CaptureError> {
    let mut conn = pool.get_conn().await.map_err(|e| ferry_mysql::SourceError::mysql("connecting", e))?;
    let objects = ferry_mysql::catalog::list_objects(&mut conn, &spec.objects).await?;
    for o in objects.iter().filter(|o| o.kind == ferry_mysql::catalog::ObjectKind::Table) {
        if history.at(&o.table, &BinlogFilePos { file: at.file.clone(), offset: u64::MAX }).is_some() {
            continue;
        }
        let schema = read_schema(&mut conn, &o.table, at).await?;
        history_log::append(&rt.nats, task, history, &o.table, at, schema).await?;
    }
    Ok(())
}

/// The table's current schema, `None` when it does not exist.
async fn read_schema(
    conn: &mut mysql_async::Conn,
    table: &TableRef,
    at: &BinlogFilePos,
) -> Result<Option<ferry_schemas::table::TableSchema>, CaptureError> {
    let (schema, unsupported) = ferry_mysql::catalog::read_table(conn, table).await?;
    if schema.columns.is_empty() {
        return Ok(None);
    }
    if let Some(c) = schema
        .columns
        .iter()
        .find(|c| matches!(c.column_type, ferry_schemas::value::ColumnType::Time { fsp: 1 | 2 }))
    {
        return Err(definite(
            "unsupported_column",
            Some(format!("{table}.{}", c.name)),
            format!("column {table}.{} is {} (schema at {at}): negative values with a fraction cannot be read exactly from the binlog", c.name, c.sql_type),
            "change the column to TIME or TIME(3..6) on the source, or exclude the table, then resume the task",
        ));
    }
    if let Some(u) = unsupported.first() {
        return Err(definite(
            "unsupported_column",
            Some(u.object()),
            format!("{} (schema at {at})", u.message()),
            ferry_mysql::catalog::UnsupportedColumn::FIX,
        ));
    }
    Ok(Some(schema))
}

struct Capture {
    rt: Runtime,
    task: String,
    label: TaskLabel,
    spec: TaskSpec,
    pool: Pool,
    history: SchemaHistory,
    publisher: Publisher,
    status: StoreStatus,
    partial: Option<(BinlogFilePos, u32)>,
    last_publish: Instant,
    last_status: Instant,
    max_payload: usize,
    /// Spans of the transaction being read, when traces are exported.
    spans: Option<TxnSpans>,
}

/// A captured transaction's trace: `capture` (from its first event to its PubAck request) with
/// `decode` (reading and decoding its events) and `publish` inside.
struct TxnSpans {
    capture: tracing::Span,
    decode: tracing::Span,
}

impl Capture {
    async fn pump(
        &mut self,
        mut reader: Reader,
        mut assembler: Assembler,
        cancel: &CancellationToken,
    ) -> Result<(), CaptureError> {
        loop {
            let next = tokio::select! {
                n = reader.next() => n,
                _ = cancel.cancelled() => return Ok(()),
            };
            let Some(ev) = next else { return Ok(()) };
            let ev = ev?;
            let was_in_transaction = assembler.in_transaction();
            let out = assembler.push(ev, &self.history)?;
            if !was_in_transaction && assembler.in_transaction() && ferry_kit::trace::exporting() {
                let capture = tracing::info_span!("capture", task = %self.task, position = tracing::field::Empty, rows = tracing::field::Empty);
                let decode = tracing::info_span!(parent: &capture, "decode");
                self.spans = Some(TxnSpans { capture, decode });
            }
            match out {
                None => {}
                Some(Output::Transaction { txn, end }) => {
                    // Decoding ended with the commit event.
                    let span = self.spans.take().map(|TxnSpans { capture, decode }| {
                        drop(decode);
                        capture
                    });
                    self.transaction(txn, end, span).await?
                }
                Some(Output::Ddl { ddl, end }) => {
                    self.spans = None;
                    self.ddl(ddl, end).await?
                }
                Some(Output::Heartbeat { end }) if !assembler.in_transaction() => {
                    self.publisher.drain(&mut self.status, &self.rt.metrics, &self.label).await?;
                    if self.last_publish.elapsed() >= HEARTBEAT_EVERY {
                        self.heartbeat(end, Utc::now()).await?;
                    }
                }
                Some(Output::Heartbeat { .. }) => {}
            }
            if self.last_status.elapsed() >= STATUS_EVERY {
                self.publisher.drain(&mut self.status, &self.rt.metrics, &self.label).await?;
                save_status(&self.rt, &self.task, &mut self.status).await?;
                self.last_status = Instant::now();
            }
        }
    }

    fn envelope(&self, event_id: String, end: &BinlogFilePos, body: CdcEvent) -> Envelope<CdcEvent> {
        let position = SourcePosition { binlog: end.clone(), gtid: None, server_id: None };
        Envelope::new(&self.task, event_id, Some(position), body)
    }

    async fn transaction(
        &mut self,
        txn: Transaction,
        end: BinlogFilePos,
        span: Option<tracing::Span>,
    ) -> Result<(), CaptureError> {
        let span = span.unwrap_or_else(tracing::Span::none);
        span.record("position", tracing::field::display(&end));
        span.record("rows", txn.changes.len());
        if txn.changes.is_empty() {
            // Nothing of the task's tables: advance the position with a heartbeat now and then.
            if self.last_publish.elapsed() >= HEARTBEAT_EVERY {
                self.heartbeat(end, txn.committed_at).await?;
            }
            return Ok(());
        }
        let skip_through = match self.partial.take() {
            Some((at, part)) if at == end => Some(part),
            _ => None,
        };
        let committed_at = txn.committed_at;
        let parts = split(txn, self.max_payload.saturating_sub(ENVELOPE_ROOM).max(1024), &end)?;
        for part in parts {
            if skip_through.is_some_and(|k| part.part <= k) {
                continue;
            }
            let rows = part.changes.len() as u64;
            let id = names::cdc_msg_id(&self.task, &end.to_string(), part.part);
            let env = self.envelope(id.clone(), &end, CdcEvent::Transaction(part));
            let acked = Acked { position: end.clone(), source_time: committed_at, rows, transactions: 1 };
            let publish = tracing::info_span!(parent: &span, "publish", part = env_part(&env));
            let headers = ferry_kit::trace::headers_for(&span);
            self.publisher
                .publish_with(&env, &id, acked, headers, &mut self.status, &self.rt.metrics, &self.label)
                .instrument(publish)
                .await?;
        }
        let delay = (Utc::now() - committed_at).num_milliseconds().max(0) as f64 / 1000.0;
        self.rt.metrics.source_delay.get_or_create(&self.label).set(delay);
        self.last_publish = Instant::now();
        Ok(())
    }

    async fn heartbeat(
        &mut self,
        end: BinlogFilePos,
        source_time: DateTime<Utc>,
    ) -> Result<(), CaptureError> {
        let id = format!(
            "{}:hb:{}",
            names::cdc_msg_id(&self.task, &end.to_string(), 0),
            Utc::now().timestamp_millis()
        );
        let env = self.envelope(id.clone(), &end, CdcEvent::Heartbeat(Heartbeat { source_time }));
        let acked = Acked { position: end, source_time, rows: 0, transactions: 0 };
        self.publisher.publish(&env, &id, acked, &mut self.status, &self.rt.metrics, &self.label).await?;
        let delay = (Utc::now() - source_time).num_milliseconds().max(0) as f64 / 1000.0;
        self.rt.metrics.source_delay.get_or_create(&self.label).set(delay);
        self.last_publish = Instant::now();
        Ok(())
    }

    async fn ddl(
        &mut self,
        mut event: ferry_schemas::cdc::DdlEvent,
        end: BinlogFilePos,
    ) -> Result<(), CaptureError> {
        let kind = ddl::parse(&event.sql, event.database.as_deref().unwrap_or(""));
        let touched: Vec<TableRef> =
            kind.tables().into_iter().filter(|t| self.spec.objects.includes(t)).collect();
        if touched.is_empty() {
            if self.last_publish.elapsed() >= HEARTBEAT_EVERY {
                self.heartbeat(end, event.committed_at).await?;
            }
            return Ok(());
        }
        let mut conn =
            self.pool.get_conn().await.map_err(|e| ferry_mysql::SourceError::mysql("connecting", e))?;
        for t in &touched {
            let known = self.history.at(t, &end).filter(|v| v.from == end).map(|v| v.number);
            let number = match known {
                Some(n) => n,
                None => {
                    let schema = read_schema(&mut conn, t, &end).await?;
                    history_log::append(&self.rt.nats, &self.task, &mut self.history, t, &end, schema).await?
                }
            };
            if let Some(schema) = self.history.schema_at(t, &end) {
                event.new_versions.push(table_version(schema, number));
            }
        }
        drop(conn);
        event.tables = touched;
        let id = names::cdc_msg_id(&self.task, &end.to_string(), 0);
        let committed_at = event.committed_at;
        let env = self.envelope(id.clone(), &end, CdcEvent::Ddl(event));
        let acked = Acked { position: end, source_time: committed_at, rows: 0, transactions: 1 };
        self.publisher.publish(&env, &id, acked, &mut self.status, &self.rt.metrics, &self.label).await?;
        // The next DDL may depend on this one being durable: wait for it.
        self.publisher.drain(&mut self.status, &self.rt.metrics, &self.label).await?;
        self.last_publish = Instant::now();
        Ok(())
    }
}

/// Splits a transaction whose JSON exceeds `budget` bytes into numbered parts.
pub fn split(txn: Transaction, budget: usize, end: &BinlogFilePos) -> Result<Vec<Transaction>, CaptureError> {
    let sizes: Vec<usize> =
        txn.changes.iter().map(|c| serde_json::to_vec(c).map_or(0, |v| v.len() + 1)).collect();
    let tables_size = serde_json::to_vec(&txn.tables).map_or(0, |v| v.len());
    if tables_size + sizes.iter().sum::<usize>() <= budget {
        return Ok(vec![txn]);
    }
    let room = budget.saturating_sub(tables_size);
    if let Some(big) = sizes.iter().position(|s| *s > room) {
        let t = txn.tables.get(txn.changes[big].table as usize).map(|t| t.table.to_string());
        return Err(definite(
            "row_too_large",
            t,
            format!(
                "a row change at {end} is {} bytes, more than a NATS message can hold ({room})",
                sizes[big]
            ),
            "raise max_payload in the NATS server configuration (e.g. 8MB) and resume the task",
        ));
    }
    let Transaction { gtid, committed_at, begin, tables, changes, .. } = txn;
    let mut parts: Vec<Transaction> = Vec::new();
    let mut current = Vec::new();
    let mut used = 0;
    for (change, size) in changes.into_iter().zip(sizes) {
        if used + size > room && !current.is_empty() {
            parts.push(Transaction {
                gtid: gtid.clone(),
                committed_at,
                part: parts.len() as u32,
                last_part: false,
                begin: begin.clone(),
                tables: tables.clone(),
                changes: std::mem::take(&mut current),
            });
            used = 0;
        }
        used += size;
        current.push(change);
    }
    parts.push(Transaction {
        gtid,
        committed_at,
        part: parts.len() as u32,
        last_part: true,
        begin,
        tables,
        changes: current,
    });
    Ok(parts)
}

/// What becomes durable when a publish is acknowledged.
struct Acked {
    position: BinlogFilePos,
    source_time: DateTime<Utc>,
    rows: u64,
    transactions: u64,
}

/// Pipelined, chained publishing to the CDC subject (see the module doc).
struct Publisher {
    nats: Nats,
    subject: String,
    /// Stream sequence of the last message published (acknowledged or not).
    expected: u64,
    inflight: VecDeque<(PublishAckFuture, Acked)>,
}

impl Publisher {
    async fn publish(
        &mut self,
        env: &Envelope<CdcEvent>,
        msg_id: &str,
        acked: Acked,
        status: &mut StoreStatus,
        metrics: &ferry_kit::metrics::Metrics,
        label: &TaskLabel,
    ) -> Result<(), CaptureError> {
        self.publish_with(env, msg_id, acked, async_nats::HeaderMap::new(), status, metrics, label).await
    }

    /// Publishes with `headers` (trace context).
    #[allow(clippy::too_many_arguments)]
    async fn publish_with(
        &mut self,
        env: &Envelope<CdcEvent>,
        msg_id: &str,
        acked: Acked,
        headers: async_nats::HeaderMap,
        status: &mut StoreStatus,
        metrics: &ferry_kit::metrics::Metrics,
        label: &TaskLabel,
    ) -> Result<(), CaptureError> {
        let payload = serde_json::to_vec(env)
            .map_err(|source| KitError::Json { what: "a CDC message".into(), source })?;
        let mut msg = PublishMessage::build().payload(payload.into()).message_id(msg_id).headers(headers);
        if self.expected > 0 {
            msg = msg.expected_last_sequence(self.expected);
        }
        let ack = self
            .nats
            .js
            .send_publish(self.subject.clone(), msg)
            .await
            .map_err(|e| KitError::nats("publishing to the CDC stream", e))?;
        self.expected += 1;
        self.inflight.push_back((ack, acked));
        if self.inflight.len() >= WINDOW {
            self.settle_one(status, metrics, label).await?;
        }
        Ok(())
    }

    async fn settle_one(
        &mut self,
        status: &mut StoreStatus,
        metrics: &ferry_kit::metrics::Metrics,
        label: &TaskLabel,
    ) -> Result<(), CaptureError> {
        let Some((fut, acked)) = self.inflight.pop_front() else { return Ok(()) };
        let ack = fut.await.map_err(|e| KitError::nats("awaiting a CDC PubAck", e))?;
        if !ack.duplicate && ack.sequence != self.expected - self.inflight.len() as u64 {
            return Err(KitError::nats(
                "checking the CDC sequence",
                format!(
                    "stored at {} but expected {}",
                    ack.sequence,
                    self.expected - self.inflight.len() as u64
                ),
            )
            .into());
        }
        status.position = Some(SourcePosition { binlog: acked.position, gtid: None, server_id: None });
        status.source_time = Some(acked.source_time);
        status.rows += acked.rows;
        status.transactions += acked.transactions;
        metrics.source_record_num.get_or_create(label).inc_by(acked.rows as i64);
        Ok(())
    }

    async fn drain(
        &mut self,
        status: &mut StoreStatus,
        metrics: &ferry_kit::metrics::Metrics,
        label: &TaskLabel,
    ) -> Result<(), CaptureError> {
        while !self.inflight.is_empty() {
            self.settle_one(status, metrics, label).await?;
        }
        Ok(())
    }
}

/// The part number of a transaction message (for its publish span).
fn env_part(env: &Envelope<CdcEvent>) -> u32 {
    match &env.body {
        CdcEvent::Transaction(t) => t.part,
        _ => 0,
    }
}
