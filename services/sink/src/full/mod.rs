//! Applying a task's FULL stream to the target, exactly once.
//!
//! Structure messages (`CreateTable`, `CreateView`) are barriers: they run alone, after every
//! chunk before them, and their progress is recorded per object in `ferry_meta.full_objects`
//! before and after the DDL (DDL commits implicitly, so the record says what to redo after a
//! crash). An existing target object is refused, kept or dropped as the spec says.
//!
//! A chunk of a keyed table is written with `REPLACE` and its checkpoint row in one target
//! transaction. The checkpoint row is inserted first: if it exists (or a concurrent redelivery
//! of the same chunk holds it) the insert fails with a duplicate key and the chunk is skipped,
//! so redelivery never duplicates.
//! `REPLACE` also makes the copy converge when a chunk's rows were re-read later: it keeps the
//! newer image of each key, and incremental sync in safe mode replays everything since P0.
//! Chunks of different keyed tables, and of the same table, run in parallel lanes.
//!
//! A table's `TableDone` builds its deferred secondary indexes once every chunk it counts is
//! applied (it is nak'ed and comes back until then), so index builds overlap other tables' loads.
//!
//! A keyless table's parts run in one lane in stream order and use plain `INSERT`. Part 0 of a
//! newer attempt empties the table first (same transaction); parts of older attempts are
//! skipped; a part whose predecessor is not applied yet is nak'ed and comes back later.

pub mod bind;

use crate::checkpoint;
use crate::error::{definite, target_failure};
use crate::progress::Progress;
use async_nats::jetstream::Message;
use ferry_kit::consume::{Failure, Handler, Lane, Outcome};
use ferry_kit::metrics::{self, Metrics};
use ferry_schemas::full::{CreateTable, CreateView, ExistingTablePolicy, FullEvent, RowBatch, TableDone};
use ferry_schemas::table::{quote_ident, TableRef};
use ferry_schemas::value::SqlValue;
use futures::future::BoxFuture;
use sqlx::{MySqlConnection, MySqlPool};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

pub struct FullApplier {
    pub task: String,
    pub pool: MySqlPool,
    pub progress: Arc<Progress>,
    pub metrics: Arc<Metrics>,
}

pub struct Item {
    event: FullEvent,
    seq: u64,
    /// The chunk's trace (from the full-migrator), when traces are exported.
    trace: Option<ferry_kit::trace::TraceContext>,
}

impl Handler for FullApplier {
    type Item = Item;

    fn prepare(&self, msg: &Message) -> Result<(Lane, Item), Failure> {
        let (seq, env) = crate::error::envelope::<FullEvent>(msg, "FULL")?;
        let lane = match &env.body {
            FullEvent::CreateTable(_) | FullEvent::CreateView(_) => Lane::Barrier,
            // A table's end runs in the table's lane (after its keyless parts) and waits, by
            // coming back later, until every chunk it counts is applied.
            FullEvent::TableDone(d) => table_lane(&d.source),
            FullEvent::Rows(b) if b.keyless => table_lane(&b.source),
            FullEvent::Rows(_) => Lane::Key(seq),
        };
        let trace = ferry_kit::trace::context_of(msg.headers.as_ref());
        Ok((lane, Item { event: env.body, seq, trace }))
    }

    fn handle<'a>(&'a self, item: &'a Item) -> BoxFuture<'a, Result<Outcome, Failure>> {
        Box::pin(async move {
            let result = match &item.event {
                FullEvent::CreateTable(ct) => self.create_table(ct).await,
                FullEvent::CreateView(cv) => self.create_view(cv).await,
                FullEvent::Rows(b) => {
                    let span = match &item.trace {
                        Some(parent) => {
                            let span = tracing::info_span!("apply_chunk", task = %self.task, table = %b.source, rows = b.rows.len());
                            ferry_kit::trace::follow(&span, Some(parent));
                            span
                        }
                        None => tracing::Span::none(),
                    };
                    self.apply_rows(b, item.seq).instrument(span).await
                }
                FullEvent::TableDone(d) => self.finish_table(d).await,
            };
            if let Err(f) = &result {
                if f.class == ferry_kit::ErrorClass::Transient {
                    self.progress.set_retrying(Some((*f.report).clone()));
                }
            }
            result
        })
    }
}

impl FullApplier {
    async fn conn(&self, object: &str) -> Result<sqlx::pool::PoolConnection<sqlx::MySql>, Failure> {
        self.pool.acquire().await.map_err(|e| target_failure(&e, object, "connecting to the target"))
    }

    async fn create_table(&self, ct: &CreateTable) -> Result<Outcome, Failure> {
        let object = ct.source.to_string();
        let target = ct.target.to_string();
        let mut conn = self.conn(&target).await?;
        let err = |e: sqlx::Error| target_failure(&e, &target, "creating the table");
        let state = checkpoint::object_state(&mut conn, &self.task, &object).await.map_err(err)?;
        if matches!(state.as_deref(), Some("done" | "indexing" | "finished")) {
            self.progress.table_created(&object);
            return Ok(Outcome::Done);
        }
        let exists = object_exists(&mut conn, &ct.target).await.map_err(err)?;
        let must_drop = match (state.as_deref(), exists, ct.existing) {
            (Some("dropping"), _, _) => true,
            (Some("creating"), true, _) => false,
            (_, true, ExistingTablePolicy::Skip) => {
                tracing::info!(task = self.task, table = %ct.target, "target table exists; kept as the spec asks");
                checkpoint::set_object_state(&mut conn, &self.task, &object, "table", "done")
                    .await
                    .map_err(err)?;
                self.progress.table_created(&object);
                return Ok(Outcome::Done);
            }
            (None, true, ExistingTablePolicy::Fail) => return Err(exists_failure(&ct.target, "table")),
            (_, true, _) => true,
            (_, false, _) => false,
        };
        if must_drop {
            checkpoint::set_object_state(&mut conn, &self.task, &object, "table", "dropping")
                .await
                .map_err(err)?;
            exec(&mut conn, &format!("DROP TABLE IF EXISTS {}", ct.target.quoted())).await.map_err(err)?;
        }
        if must_drop || !exists {
            checkpoint::set_object_state(&mut conn, &self.task, &object, "table", "creating")
                .await
                .map_err(err)?;
            exec(&mut conn, &format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(&ct.target.database)))
                .await
                .map_err(err)?;
            exec(&mut conn, &ct.ddl).await.map_err(err)?;
        }
        checkpoint::set_pending_indexes(&mut conn, &self.task, &object, &ct.deferred_indexes)
            .await
            .map_err(err)?;
        checkpoint::set_object_state(&mut conn, &self.task, &object, "table", "done").await.map_err(err)?;
        self.progress.table_created(&object);
        tracing::info!(task = self.task, table = %ct.target, deferred_indexes = ct.deferred_indexes.len(), "created target table");
        Ok(Outcome::Done)
    }

    /// Finishes a table once all its chunks are applied: builds the deferred indexes (those not
    /// there yet, so a redo after a crash in the middle is harmless) and marks it finished.
    async fn finish_table(&self, d: &TableDone) -> Result<Outcome, Failure> {
        let object = d.source.to_string();
        let target = d.target.to_string();
        let mut conn = self.conn(&target).await?;
        let err = |e: sqlx::Error| target_failure(&e, &target, "building the deferred indexes");
        let state = checkpoint::object_state(&mut conn, &self.task, &object).await.map_err(err)?;
        if state.as_deref() == Some("finished") {
            self.progress.table_finished(&object);
            return Ok(Outcome::Done);
        }
        if d.keyless {
            if let Some((attempt, _)) =
                checkpoint::keyless_state(&mut conn, &self.task, &object).await.map_err(err)?
            {
                if attempt > d.attempt {
                    return Ok(Outcome::Done);
                }
            }
        }
        if checkpoint::applied_chunks(&mut conn, &self.task, &object, d.attempt).await.map_err(err)?
            < d.chunks
        {
            return Ok(Outcome::Later(Duration::from_millis(200)));
        }
        let pending = checkpoint::pending_indexes(&mut conn, &self.task, &object).await.map_err(err)?;
        if !pending.is_empty() {
            checkpoint::set_object_state(&mut conn, &self.task, &object, "table", "indexing")
                .await
                .map_err(err)?;
            let existing = index_names(&mut conn, &d.target).await.map_err(err)?;
            let missing: Vec<String> = pending
                .iter()
                .filter(|def| index_name(def).is_none_or(|n| !existing.contains(&n)))
                .map(|def| format!("ADD {def}"))
                .collect();
            if !missing.is_empty() {
                let started = Instant::now();
                exec(&mut conn, &format!("ALTER TABLE {} {}", d.target.quoted(), missing.join(", ")))
                    .await
                    .map_err(err)?;
                tracing::info!(task = self.task, table = %d.target, indexes = missing.len(), secs = started.elapsed().as_secs_f64(), "built deferred indexes");
            }
            checkpoint::set_pending_indexes(&mut conn, &self.task, &object, &[]).await.map_err(err)?;
        }
        checkpoint::set_object_state(&mut conn, &self.task, &object, "table", "finished")
            .await
            .map_err(err)?;
        self.progress.table_finished(&object);
        Ok(Outcome::Done)
    }

    async fn create_view(&self, cv: &CreateView) -> Result<Outcome, Failure> {
        let object = cv.source.to_string();
        let target = cv.target.to_string();
        let mut conn = self.conn(&target).await?;
        let err = |e: sqlx::Error| target_failure(&e, &target, "creating the view");
        let state = checkpoint::object_state(&mut conn, &self.task, &object).await.map_err(err)?;
        if state.as_deref() == Some("done") {
            return Ok(Outcome::Done);
        }
        let exists = object_exists(&mut conn, &cv.target).await.map_err(err)?;
        if exists && state.is_none() {
            match cv.existing {
                ExistingTablePolicy::Fail => return Err(exists_failure(&cv.target, "view")),
                ExistingTablePolicy::Skip => {
                    checkpoint::set_object_state(&mut conn, &self.task, &object, "view", "done")
                        .await
                        .map_err(err)?;
                    self.progress.view_applied();
                    return Ok(Outcome::Done);
                }
                ExistingTablePolicy::Drop => {}
            }
        }
        checkpoint::set_object_state(&mut conn, &self.task, &object, "view", "creating")
            .await
            .map_err(err)?;
        exec(&mut conn, &format!("DROP VIEW IF EXISTS {}", cv.target.quoted())).await.map_err(err)?;
        exec(&mut conn, &format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(&cv.target.database)))
            .await
            .map_err(err)?;
        exec(&mut conn, &cv.ddl).await.map_err(err)?;
        checkpoint::set_object_state(&mut conn, &self.task, &object, "view", "done").await.map_err(err)?;
        self.progress.view_applied();
        Ok(Outcome::Done)
    }

    async fn apply_rows(&self, b: &RowBatch, seq: u64) -> Result<Outcome, Failure> {
        let table = b.source.to_string();
        let target = b.target.to_string();
        let rows = decode_rows(b, seq)?;
        let err = |e: sqlx::Error| {
            target_failure(&e, &target, &format!("writing chunk {} (stream seq {seq})", b.chunk))
        };
        let mut tx = self.pool.begin().await.map_err(err)?;
        if b.keyless {
            match checkpoint::keyless_state(&mut tx, &self.task, &table).await.map_err(err)? {
                Some((attempt, _)) if b.attempt < attempt => return Ok(Outcome::Done),
                Some((attempt, top)) if b.attempt == attempt => {
                    if b.chunk <= top {
                        return Ok(Outcome::Done);
                    }
                    if b.chunk != top + 1 {
                        return Ok(Outcome::Later(Duration::from_secs(1)));
                    }
                }
                previous => {
                    if b.chunk != 0 {
                        return Ok(Outcome::Later(Duration::from_secs(1)));
                    }
                    if previous.is_some() || b.attempt > 0 {
                        exec(&mut tx, &format!("DELETE FROM {}", b.target.quoted())).await.map_err(err)?;
                        checkpoint::clear_chunks(&mut tx, &self.task, &table).await.map_err(err)?;
                        // A table finished under an older attempt is being copied again.
                        checkpoint::reopen_table(&mut tx, &self.task, &table).await.map_err(err)?;
                    }
                }
            }
            checkpoint::mark_chunk(&mut tx, &self.task, &table, b.chunk, b.attempt, rows.len() as u64)
                .await
                .map_err(err)?;
        } else if !checkpoint::claim_chunk(&mut tx, &self.task, &table, b.chunk, b.attempt, rows.len() as u64)
            .await
            .map_err(err)?
        {
            return Ok(Outcome::Done);
        }
        let started = Instant::now();
        let verb = if b.keyless { "INSERT" } else { "REPLACE" };
        for mut stmt in bind::statements(verb, &b.target, &b.columns, &rows) {
            stmt.build().execute(&mut *tx).await.map_err(err)?;
        }
        let executed = Instant::now();
        tx.commit().await.map_err(err)?;
        self.record(&table, b.attempt, rows.len() as u64, started, executed);
        Ok(Outcome::Done)
    }

    fn record(&self, table: &str, attempt: u32, rows: u64, started: Instant, executed: Instant) {
        let label = metrics::task(&self.task);
        self.metrics
            .sink_execute_time
            .get_or_create(&label)
            .observe(executed.duration_since(started).as_secs_f64());
        self.metrics.sink_commit_time.get_or_create(&label).observe(executed.elapsed().as_secs_f64());
        self.metrics.sink_total_record.get_or_create(&label).inc_by(rows as i64);
        self.metrics.sink_transactions.get_or_create(&label).inc();
        self.progress.chunk_applied(table, attempt, rows);
    }
}

fn table_lane(t: &TableRef) -> Lane {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    t.hash(&mut h);
    Lane::Key(h.finish() | 1 << 63)
}

fn decode_rows(b: &RowBatch, seq: u64) -> Result<Vec<Vec<SqlValue>>, Failure> {
    b.rows
        .iter()
        .map(|row| {
            if row.len() != b.columns.len() {
                return Err(definite(
                    "malformed_message",
                    &b.source.to_string(),
                    format!(
                        "chunk {} (stream seq {seq}) has a row of {} values for {} columns",
                        b.chunk,
                        row.len(),
                        b.columns.len()
                    ),
                    "report this",
                ));
            }
            row.iter()
                .zip(&b.columns)
                .map(|(v, c)| {
                    SqlValue::from_json(&c.column_type, v).map_err(|e| {
                        definite(
                            "bad_value",
                            &format!("{}.{}", b.source, c.name),
                            format!("chunk {} (stream seq {seq}): {e}", b.chunk),
                            "report this",
                        )
                    })
                })
                .collect()
        })
        .collect()
}

fn exists_failure(t: &TableRef, what: &str) -> Failure {
    definite(
        "target_exists",
        &t.to_string(),
        format!("target {what} {t} already exists"),
        "drop it, or set full.existing_tables to skip (keep it and copy into it) or drop (replace it)",
    )
}

async fn exec(conn: &mut MySqlConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::query(sql).persistent(false).execute(conn).await.map(|_| ())
}

/// The name in an index definition such as ``KEY `k_1` (`k`)``.
fn index_name(def: &str) -> Option<String> {
    let start = def.find('`')? + 1;
    let mut name = String::new();
    let mut chars = def[start..].chars().peekable();
    while let Some(c) = chars.next() {
        if c == '`' {
            if chars.peek() == Some(&'`') {
                chars.next();
                name.push('`');
                continue;
            }
            return Some(name);
        }
        name.push(c);
    }
    None
}

async fn index_names(conn: &mut MySqlConnection, t: &TableRef) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query("SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?")
        .bind(t.database.clone())
        .bind(t.table.clone())
        .fetch_all(conn)
        .await?;
    rows.iter().map(|r| checkpoint::text(r, "INDEX_NAME")).collect()
}

async fn object_exists(conn: &mut MySqlConnection, t: &TableRef) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
    )
    .bind(t.database.clone())
    .bind(t.table.clone())
    .fetch_one(conn)
    .await?;
    Ok(n > 0)
}
