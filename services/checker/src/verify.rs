//! Verification of one table: chunk checksums, bisection down to rows, exact row comparison,
//! and (while incremental sync runs) re-checks past the applied position.
//!
//! Chunks are cut by the source key: each boundary is the key of the `chunk_rows`-th next row
//! (an index walk on the source), chunks are half-open key ranges `(lo, hi]` and the last one
//! is open-ended, so every target row, extra ones included, falls in exactly one chunk. Chunks
//! are compared `concurrency` at a time while the next boundaries are read. A chunk whose
//! checksums differ is split at the middle key of the side holding more rows, and only the
//! halves that differ are split again, until a range holds at most [`ROWS_TO_COMPARE`] rows:
//! those are read from both sides and compared value by value.
//!
//! Live: a checksum read on the source at position P can differ from the target only because
//! the sink has not applied up to P yet. So a difference is re-checked after the applied
//! watermark passed P (with a fresh P each time), `live_retries` times; only a difference that
//! persists is located, and its rows are re-checked the same way before they are reported.

use crate::diff::{self, Row};
use crate::error::{definite, CheckError, Side};
use crate::live::Live;
use crate::pair::TablePair;
use crate::sql::{KeyRange, TableSql};
use ferry_schemas::check::{DiffKind, RowDiff, TableCheck};
use ferry_schemas::position::SourcePosition;
use ferry_schemas::task::VerifyOptions;
use ferry_schemas::value::{ColumnType, SqlValue};
use futures::{StreamExt, TryStreamExt};
use mysql_async::prelude::*;
use mysql_async::{Pool, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A range is compared row by row once both sides together hold at most this many rows.
pub const ROWS_TO_COMPARE: u64 = 256;
/// A keyless table that differs is compared as a whole only up to this many rows per side.
pub const KEYLESS_ROW_LIMIT: u64 = 200_000;
/// Keys per re-check statement.
const KEYS_PER_READ: usize = 500;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checksum {
    pub count: u64,
    pub sum: String,
    pub xor: String,
}

/// Caps the source rows verified per second across every worker.
pub struct RateLimit {
    per_second: u64,
    started: Instant,
    rows: AtomicU64,
}

impl RateLimit {
    pub fn new(per_second: u64) -> Self {
        Self { per_second, started: Instant::now(), rows: AtomicU64::new(0) }
    }
    async fn account(&self, rows: u64) {
        if self.per_second == 0 {
            return;
        }
        let total = self.rows.fetch_add(rows, Ordering::Relaxed) + rows;
        let due = Duration::from_secs_f64(total as f64 / self.per_second as f64);
        if let Some(wait) = due.checked_sub(self.started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
}

/// What every table verification shares.
pub struct Verifier {
    pub source: Pool,
    pub target: Pool,
    pub options: VerifyOptions,
    pub live: Option<Live>,
    pub limit: Arc<RateLimit>,
    /// Chunks compared at once across every table being verified (`concurrency`).
    pub permits: Arc<tokio::sync::Semaphore>,
    /// The task's `checker_rows` counter.
    pub rows_verified: prometheus_client::metrics::counter::Counter,
    pub cancel: CancellationToken,
}

/// One chunk's outcome.
#[derive(Default)]
struct ChunkResult {
    source_rows: u64,
    target_rows: u64,
    differed: bool,
    diffs: Vec<RowDiff>,
}

impl Verifier {
    /// Verifies a whole table.
    pub async fn table(&self, pair: &TablePair) -> Result<TableCheck, CheckError> {
        let started = Instant::now();
        let results: Vec<ChunkResult> = if pair.key.is_empty() {
            vec![self.keyless(pair).await?]
        } else {
            let ranges = match self.integer_ranges(pair).await? {
                Some(ranges) => futures::stream::iter(ranges.into_iter().map(Ok)).boxed(),
                None => self.boundaries(pair).boxed(),
            };
            ranges
                .map_ok(|range| self.chunk(pair, range))
                .try_buffer_unordered(self.options.concurrency.max(1) as usize)
                .try_collect()
                .await?
        };
        Ok(self.summarize(pair, results, started, false))
    }

    /// Re-verifies only the given rows of a table (after a correction).
    pub async fn rows(&self, pair: &TablePair, keys: Vec<Vec<SqlValue>>) -> Result<TableCheck, CheckError> {
        let started = Instant::now();
        let mut results = Vec::new();
        for batch in keys.chunks(KEYS_PER_READ) {
            let (diffs, source_rows, target_rows) = self.compare_keys(pair, batch).await?;
            results.push(ChunkResult { source_rows, target_rows, differed: !diffs.is_empty(), diffs });
        }
        Ok(self.summarize(pair, results, started, true))
    }

    /// A table's result from the results of its ranges (or key batches).
    fn summarize(
        &self,
        pair: &TablePair,
        results: Vec<ChunkResult>,
        started: Instant,
        recheck: bool,
    ) -> TableCheck {
        let mut check = TableCheck {
            source: pair.source.clone(),
            target: pair.target.clone(),
            columns: pair.columns.clone(),
            key: pair.key.clone(),
            recheck,
            ..TableCheck::default()
        };
        for r in results {
            check.chunks += 1;
            check.source_rows += r.source_rows;
            check.target_rows += r.target_rows;
            check.chunks_differing += u64::from(r.differed);
            self.add_diffs(&mut check, r.diffs);
        }
        sort_diffs(&mut check.diffs);
        check.elapsed_ms = started.elapsed().as_millis() as u64;
        check
    }

    fn add_diffs(&self, check: &mut TableCheck, diffs: Vec<RowDiff>) {
        for d in diffs {
            match d.kind {
                DiffKind::Missing => check.missing += 1,
                DiffKind::Extra => check.extra += 1,
                DiffKind::Changed => check.changed += 1,
            }
            if check.diffs.len() < self.options.max_diffs_per_table as usize {
                check.diffs.push(d);
            } else {
                check.truncated = true;
            }
        }
    }

    /// For a single integer key, chunks cut by value without reading the rows: the key's span
    /// divided so each chunk holds about `chunk_rows` rows by the table's row estimate (gaps
    /// only make chunks smaller). `None` for other keys, or without an estimate.
    async fn integer_ranges(&self, pair: &TablePair) -> Result<Option<Vec<KeyRange>>, CheckError> {
        let [k] = pair.src.key[..] else { return Ok(None) };
        let (name, ColumnType::Int { unsigned, .. }) = &pair.src.columns[k] else { return Ok(None) };
        let column = ferry_schemas::table::quote_ident(name);
        let mut conn =
            self.source.get_conn().await.map_err(|e| CheckError::db(Side::Source, "connecting", e))?;
        let bounds: Option<(Option<String>, Option<String>)> = conn
            .query_first(format!(
                "SELECT CAST(MIN({column}) AS CHAR), CAST(MAX({column}) AS CHAR) FROM {}",
                pair.src.table
            ))
            .await
            .map_err(|e| {
                CheckError::db(Side::Source, format!("reading the key span of {}", pair.source), e)
            })?;
        let estimate: Option<Option<u64>> = conn
            .exec_first(
                "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&pair.source.database, &pair.source.table),
            )
            .await
            .map_err(|e| {
                CheckError::db(Side::Source, format!("reading the row estimate of {}", pair.source), e)
            })?;
        let parse = |v: Option<String>| v.and_then(|v| v.parse::<i128>().ok());
        let Some((min, max)) = bounds.map(|(a, b)| (parse(a), parse(b))) else { return Ok(None) };
        let (Some(min), Some(max)) = (min, max) else {
            // Empty on the source: one open range catches whatever the target holds.
            return Ok(Some(vec![KeyRange::default()]));
        };
        let Some(estimate) = estimate.flatten().filter(|e| *e > 0) else { return Ok(None) };
        Ok(Some(integer_ranges(min, max, estimate, u64::from(self.options.chunk_rows.max(1)), *unsigned)))
    }

    /// The chunk ranges of a table, read from the source as they are needed. The walk ends at
    /// the greatest key the source had when it began (rows appended meanwhile, by a live
    /// workload, fall into the last, open-ended chunk instead of lengthening the walk forever).
    fn boundaries<'a>(
        &'a self,
        pair: &'a TablePair,
    ) -> impl futures::Stream<Item = Result<KeyRange, CheckError>> + 'a {
        let step = u64::from(self.options.chunk_rows.max(1));
        futures::stream::try_unfold((Some(None::<Vec<SqlValue>>), None), move |(state, end)| async move {
            let Some(lo) = state else { return Ok(None) };
            if self.cancel.is_cancelled() {
                return Err(CheckError::Cancelled);
            }
            let end = match end {
                Some(end) => end,
                None => last_key(&self.source, Side::Source, &pair.src).await?,
            };
            let Some(last) = end.clone() else {
                // An empty source table: one open range catches whatever the target holds.
                return Ok(Some((KeyRange { lo, hi: None }, (None, Some(end)))));
            };
            let upto = KeyRange { lo: lo.clone(), hi: Some(last) };
            let hi = key_at(&self.source, Side::Source, &pair.src, &upto, step - 1).await?;
            let next = hi.clone().map(Some);
            Ok(Some((KeyRange { lo, hi }, (next, Some(end)))))
        })
    }

    /// Compares one chunk; locates and (live) re-checks the rows that differ.
    async fn chunk(&self, pair: &TablePair, range: KeyRange) -> Result<ChunkResult, CheckError> {
        if self.cancel.is_cancelled() {
            return Err(CheckError::Cancelled);
        }
        let _permit = self.permits.acquire().await.map_err(|_| CheckError::Cancelled)?;
        let (mut result, differing) = self.compare_sums(pair, &range).await?;
        let Some((s, t)) = differing else { return Ok(result) };
        let diffs = self.locate(pair, range, s, t).await?;
        result.diffs = self.confirm(pair, diffs).await?;
        Ok(result)
    }

    /// Compares a range's checksums (accounting its rows); live, a difference is re-checked
    /// after the sink applied past each source read. The checksums that still differ, if any.
    async fn compare_sums(
        &self,
        pair: &TablePair,
        range: &KeyRange,
    ) -> Result<(ChunkResult, Option<(Checksum, Checksum)>), CheckError> {
        let (mut s, mut t, mut at) = self.checksums(pair, range).await?;
        let mut result = ChunkResult { source_rows: s.count, target_rows: t.count, ..Default::default() };
        self.limit.account(s.count).await;
        self.rows_verified.inc_by(s.count);
        if s == t {
            return Ok((result, None));
        }
        result.differed = true;
        if let Some(live) = &self.live {
            for _ in 0..live.retries {
                live.wait_applied(at.as_ref(), &self.cancel).await?;
                (s, t, at) = self.checksums(pair, range).await?;
                if s == t {
                    return Ok((result, None));
                }
            }
        }
        Ok((result, Some((s, t))))
    }

    /// Both sides' checksums of a range, read at the same time; with live verification also
    /// the source position read after the source checksum.
    async fn checksums(
        &self,
        pair: &TablePair,
        range: &KeyRange,
    ) -> Result<(Checksum, Checksum, Option<SourcePosition>), CheckError> {
        let live = self.live.is_some();
        let source = async {
            let mut conn =
                self.source.get_conn().await.map_err(|e| CheckError::db(Side::Source, "connecting", e))?;
            let sum = checksum(&mut conn, Side::Source, &pair.src, range).await?;
            let at = if live {
                ferry_mysql::position::current(&mut conn)
                    .await
                    .map_err(|error| CheckError::Db { side: Side::Source, error })?
            } else {
                None
            };
            Ok::<_, CheckError>((sum, at))
        };
        let target = async {
            let mut conn =
                self.target.get_conn().await.map_err(|e| CheckError::db(Side::Target, "connecting", e))?;
            checksum(&mut conn, Side::Target, &pair.tgt, range).await
        };
        let ((s, at), t) = tokio::try_join!(source, target)?;
        Ok((s, t, at))
    }

    /// Bisects a differing range down to small ranges and compares their rows.
    async fn locate(
        &self,
        pair: &TablePair,
        range: KeyRange,
        s: Checksum,
        t: Checksum,
    ) -> Result<Vec<RowDiff>, CheckError> {
        let mut todo = vec![(range, s, t)];
        let mut out = Vec::new();
        while let Some((range, s, t)) = todo.pop() {
            if self.cancel.is_cancelled() {
                return Err(CheckError::Cancelled);
            }
            if s.count + t.count <= ROWS_TO_COMPARE {
                out.extend(self.compare_range(pair, &range).await?);
                continue;
            }
            let (pool, side, sql, count) = if s.count >= t.count {
                (&self.source, Side::Source, &pair.src, s.count)
            } else {
                (&self.target, Side::Target, &pair.tgt, t.count)
            };
            let Some(mid) = key_at(pool, side, sql, &range, count / 2 - 1).await? else {
                // The range changed under us (live): compare what is there now.
                out.extend(self.compare_range(pair, &range).await?);
                continue;
            };
            for half in [
                KeyRange { lo: range.lo.clone(), hi: Some(mid.clone()) },
                KeyRange { lo: Some(mid.clone()), hi: range.hi.clone() },
            ] {
                let (s, t, _) = self.checksums(pair, &half).await?;
                if s != t {
                    todo.push((half, s, t));
                }
            }
        }
        Ok(out)
    }

    async fn compare_range(&self, pair: &TablePair, range: &KeyRange) -> Result<Vec<RowDiff>, CheckError> {
        let (src_sql, src_params) = pair.src.rows(range);
        let (tgt_sql, tgt_params) = pair.tgt.rows(range);
        let (source, target) = tokio::try_join!(
            read_rows(&self.source, Side::Source, &pair.src, src_sql, src_params),
            read_rows(&self.target, Side::Target, &pair.tgt, tgt_sql, tgt_params),
        )?;
        Ok(diff::keyed(&names(pair), &pair.src.key, &source, &target))
    }

    /// Live: keeps only the differences that persist after the sink applied past the source
    /// reads, re-reading those rows up to `live_retries` times.
    async fn confirm(&self, pair: &TablePair, mut diffs: Vec<RowDiff>) -> Result<Vec<RowDiff>, CheckError> {
        let Some(live) = &self.live else { return Ok(diffs) };
        for _ in 0..live.retries {
            if diffs.is_empty() {
                break;
            }
            let keys = keys_of(pair, &diffs)?;
            let mut next = Vec::new();
            for batch in keys.chunks(KEYS_PER_READ) {
                next.extend(self.compare_keys(pair, batch).await?.0);
            }
            diffs = next;
        }
        Ok(diffs)
    }

    /// Reads the rows with these keys on the source (and, live, the position after), waits
    /// until that position is applied, reads them on the target and compares.
    pub async fn compare_keys(
        &self,
        pair: &TablePair,
        keys: &[Vec<SqlValue>],
    ) -> Result<(Vec<RowDiff>, u64, u64), CheckError> {
        let (src_sql, src_params) = pair.src.rows_by_keys(keys);
        let source = read_rows(&self.source, Side::Source, &pair.src, src_sql, src_params).await?;
        if let Some(live) = &self.live {
            let mut conn =
                self.source.get_conn().await.map_err(|e| CheckError::db(Side::Source, "connecting", e))?;
            let at = ferry_mysql::position::current(&mut conn)
                .await
                .map_err(|error| CheckError::Db { side: Side::Source, error })?;
            drop(conn);
            live.wait_applied(at.as_ref(), &self.cancel).await?;
        }
        let (tgt_sql, tgt_params) = pair.tgt.rows_by_keys(keys);
        let target = read_rows(&self.target, Side::Target, &pair.tgt, tgt_sql, tgt_params).await?;
        let (s, t) = (source.len() as u64, target.len() as u64);
        let diffs = diff::keyed(&names(pair), &pair.src.key, &source, &target);
        if self.live.is_none() || diffs.is_empty() {
            return Ok((diffs, s, t));
        }
        // The target may already hold changes made after the source read (the sink applies
        // on): a row that equals the source as it is now, read after the target, is in step.
        let keys = keys_of(pair, &diffs)?;
        let (src_sql, src_params) = pair.src.rows_by_keys(&keys);
        let newer = read_rows(&self.source, Side::Source, &pair.src, src_sql, src_params).await?;
        let wanted: std::collections::HashSet<String> =
            diffs.iter().map(|d| serde_json::Value::Array(d.key.clone()).to_string()).collect();
        let target: Vec<Row> =
            target.into_iter().filter(|r| wanted.contains(&key_text(r, &pair.src.key))).collect();
        let still = diff::keyed(&names(pair), &pair.src.key, &newer, &target);
        Ok((
            still
                .into_iter()
                .filter(|d| wanted.contains(&serde_json::Value::Array(d.key.clone()).to_string()))
                .collect(),
            s,
            t,
        ))
    }

    /// A table without a usable key: one checksum over all rows; if it differs, every row of
    /// both sides compared as multisets (up to [`KEYLESS_ROW_LIMIT`] rows a side).
    async fn keyless(&self, pair: &TablePair) -> Result<ChunkResult, CheckError> {
        let all = KeyRange::default();
        let (mut result, differing) = self.compare_sums(pair, &all).await?;
        let Some((s, t)) = differing else { return Ok(result) };
        if s.count.max(t.count) > KEYLESS_ROW_LIMIT {
            return Err(definite(
                "keyless_too_large",
                Some(pair.source.to_string()),
                format!(
                    "table {} has no primary or non-null unique key and differs on the target; with {} rows \
                     it is too large to locate the differing rows (limit {KEYLESS_ROW_LIMIT})",
                    pair.source,
                    s.count.max(t.count)
                ),
                "add a primary key to the table, or exclude it from the task and compare it by hand",
            ));
        }
        let (src_sql, src_params) = pair.src.rows(&all);
        let (tgt_sql, tgt_params) = pair.tgt.rows(&all);
        let (source, target) = tokio::try_join!(
            read_rows(&self.source, Side::Source, &pair.src, src_sql, src_params),
            read_rows(&self.target, Side::Target, &pair.tgt, tgt_sql, tgt_params),
        )?;
        result.diffs = diff::keyless(&source, &target);
        Ok(result)
    }
}

/// Ranges over `[min, max]` of about `chunk_rows` rows each (by `estimate` rows in the span);
/// the first starts at minus infinity and the last is open-ended, so every target row falls in
/// one of them.
pub fn integer_ranges(min: i128, max: i128, estimate: u64, chunk_rows: u64, unsigned: bool) -> Vec<KeyRange> {
    let span = (max - min + 1).max(1);
    let chunks = estimate.div_ceil(chunk_rows.max(1)).max(1) as i128;
    let width = (span + chunks - 1) / chunks;
    let value = |v: i128| {
        if unsigned {
            SqlValue::UInt(u64::try_from(v).unwrap_or(u64::MAX))
        } else {
            SqlValue::Int(i64::try_from(v).unwrap_or(i64::MAX))
        }
    };
    let mut out = Vec::new();
    let mut lo: Option<Vec<SqlValue>> = None;
    let mut hi = min - 1 + width;
    while hi < max {
        out.push(KeyRange { lo: lo.clone(), hi: Some(vec![value(hi)]) });
        lo = Some(vec![value(hi)]);
        hi += width;
    }
    out.push(KeyRange { lo, hi: None });
    out
}

fn key_text(row: &Row, key: &[usize]) -> String {
    serde_json::Value::Array(key.iter().map(|&i| row[i].to_json()).collect()).to_string()
}

fn names(pair: &TablePair) -> Vec<String> {
    pair.columns.iter().map(|c| c.name.clone()).collect()
}

/// Differences in a stable order: by kind, then key.
fn sort_diffs(diffs: &mut [RowDiff]) {
    let rank = |k: DiffKind| match k {
        DiffKind::Missing => 0,
        DiffKind::Extra => 1,
        DiffKind::Changed => 2,
    };
    diffs.sort_by(|a, b| {
        rank(a.kind).cmp(&rank(b.kind)).then_with(|| {
            serde_json::Value::Array(a.key.clone())
                .to_string()
                .cmp(&serde_json::Value::Array(b.key.clone()).to_string())
        })
    });
}

/// The typed keys of row differences (for re-checks).
pub fn keys_of(pair: &TablePair, diffs: &[RowDiff]) -> Result<Vec<Vec<SqlValue>>, CheckError> {
    let types: Vec<&ColumnType> = pair.src.key.iter().map(|&i| &pair.columns[i].column_type).collect();
    diffs
        .iter()
        .map(|d| {
            types
                .iter()
                .zip(&d.key)
                .map(|(ty, v)| SqlValue::from_json(ty, v))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    definite(
                        "bad_report",
                        Some(pair.source.to_string()),
                        format!("a key in the report is unreadable: {e}"),
                        "verify the task again",
                    )
                })
        })
        .collect()
}

async fn checksum(
    conn: &mut mysql_async::Conn,
    side: Side,
    sql: &TableSql,
    range: &KeyRange,
) -> Result<Checksum, CheckError> {
    let (text, params) = sql.checksum(range);
    let row: Option<(u64, String, String)> = conn
        .exec_first(text, params)
        .await
        .map_err(|e| CheckError::db(side, format!("checksumming {}", sql.table), e))?;
    let (count, sum, xor) = row.unwrap_or((0, "0".into(), "0".into()));
    Ok(Checksum { count, sum, xor })
}

/// The greatest key of a table, `None` when it is empty.
async fn last_key(pool: &Pool, side: Side, sql: &TableSql) -> Result<Option<Vec<SqlValue>>, CheckError> {
    read_key(pool, side, sql, sql.last_key(), Vec::new(), "reading the last key").await
}

/// The key of the `offset`-th row of a range, or `None` past its end.
async fn key_at(
    pool: &Pool,
    side: Side,
    sql: &TableSql,
    range: &KeyRange,
    offset: u64,
) -> Result<Option<Vec<SqlValue>>, CheckError> {
    let (text, params) = sql.key_at(range, offset);
    read_key(pool, side, sql, text, params, "reading chunk boundaries").await
}

/// The key a one-row key query returns, typed.
async fn read_key(
    pool: &Pool,
    side: Side,
    sql: &TableSql,
    text: String,
    params: Vec<Value>,
    doing: &str,
) -> Result<Option<Vec<SqlValue>>, CheckError> {
    let mut conn = pool.get_conn().await.map_err(|e| CheckError::db(side, "connecting", e))?;
    let row: Option<mysql_async::Row> = conn
        .exec_first(text, params)
        .await
        .map_err(|e| CheckError::db(side, format!("{doing} of {}", sql.table), e))?;
    let Some(row) = row else { return Ok(None) };
    let types: Vec<&ColumnType> = sql.key.iter().map(|&i| &sql.columns[i].1).collect();
    convert(side, sql, cells(row), &types).map(Some)
}

async fn read_rows(
    pool: &Pool,
    side: Side,
    sql: &TableSql,
    text: String,
    params: Vec<Value>,
) -> Result<Vec<Row>, CheckError> {
    let mut conn = pool.get_conn().await.map_err(|e| CheckError::db(side, "connecting", e))?;
    let rows: Vec<mysql_async::Row> = conn
        .exec(text, params)
        .await
        .map_err(|e| CheckError::db(side, format!("reading rows of {}", sql.table), e))?;
    let types: Vec<&ColumnType> = sql.columns.iter().map(|(_, t)| t).collect();
    rows.into_iter().map(|r| convert(side, sql, cells(r), &types)).collect()
}

/// A row's values (a cell already taken out would be NULL; none is).
fn cells(row: mysql_async::Row) -> Vec<Value> {
    row.unwrap_raw().into_iter().map(|v| v.unwrap_or(Value::NULL)).collect()
}

fn convert(
    side: Side,
    sql: &TableSql,
    values: Vec<Value>,
    types: &[&ColumnType],
) -> Result<Vec<SqlValue>, CheckError> {
    values
        .into_iter()
        .zip(types)
        .map(|(v, ty)| ferry_mysql::values::from_mysql(ty, v))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|message| {
            definite(
                "bad_value",
                Some(sql.table.clone()),
                format!("{} value in {}: {message}", side.name(), sql.table),
                "report this value; the checker cannot compare it exactly",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_ranges_cover_everything_in_chunks_of_the_estimated_size() {
        let r = integer_ranges(1, 1000, 1000, 300, false);
        let his: Vec<Option<Vec<SqlValue>>> = r.iter().map(|r| r.hi.clone()).collect();
        assert_eq!(
            his,
            vec![
                Some(vec![SqlValue::Int(250)]),
                Some(vec![SqlValue::Int(500)]),
                Some(vec![SqlValue::Int(750)]),
                None
            ]
        );
        assert_eq!(r[0].lo, None);
        assert_eq!(r[3].lo, Some(vec![SqlValue::Int(750)]));
        // Sparse keys: chunks follow the row estimate, not the span.
        assert_eq!(integer_ranges(0, 1 << 40, 10, 300, true).len(), 1);
        assert_eq!(integer_ranges(5, 5, 1, 300, false), vec![KeyRange::default()]);
    }
}
