//! The sink's checkpoint tables in the target (database `ferry_meta`).
//!
//! `full_chunks` holds one row per applied chunk, written in the same transaction as the
//! chunk's rows: a chunk is applied exactly when its row exists, so a redelivered chunk is
//! skipped. `full_objects` records DDL progress per target object (`dropping`, `creating`,
//! `done`, then `indexing` and `finished` for tables); DDL is not transactional in MySQL, so
//! the state before the statement says what a restart must redo. `pending_ddl` holds the
//! secondary index definitions a table owes until it is finished.
//!
//! `apply_checkpoints` holds one row per APPLY lane, written in the same target transaction as
//! the lane's rows. `apply_fanout` records groups written over several connections at once
//! (see [`FanOut`]): an intent row, committed before any part, and one marker per part,
//! committed with that part. A group is applied exactly when every part's marker exists; a
//! restart that finds fewer replays the group idempotently (safe mode), which converges for the
//! same reason safe mode after a full copy does.

use ferry_schemas::literal::push_literal;
use ferry_schemas::value::SqlValue;
use sqlx::{MySql, MySqlConnection, MySqlPool, Row};
use std::fmt::Write;

pub const META_DB: &str = ferry_schemas::names::TARGET_META_DB;

pub async fn ensure_schema(pool: &MySqlPool) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(
        "CREATE DATABASE IF NOT EXISTS ferry_meta;
         CREATE TABLE IF NOT EXISTS ferry_meta.full_objects (
           task VARCHAR(64) NOT NULL, object VARCHAR(400) NOT NULL, kind VARCHAR(8) NOT NULL,
           state VARCHAR(16) NOT NULL, pending_ddl LONGTEXT NULL,
           updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
           PRIMARY KEY (task, object)
         ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
         CREATE TABLE IF NOT EXISTS ferry_meta.full_chunks (
           task VARCHAR(64) NOT NULL, source_table VARCHAR(400) NOT NULL, chunk BIGINT UNSIGNED NOT NULL,
           attempt INT UNSIGNED NOT NULL, row_count BIGINT UNSIGNED NOT NULL,
           applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
           PRIMARY KEY (task, source_table, chunk)
         ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
         CREATE TABLE IF NOT EXISTS ferry_meta.apply_checkpoints (
           task VARCHAR(64) NOT NULL, lane INT UNSIGNED NOT NULL,
           apply_seq BIGINT UNSIGNED NOT NULL, cdc_seq BIGINT UNSIGNED NOT NULL,
           position TEXT NOT NULL, source_time_ms BIGINT NOT NULL,
           ddl_started BIGINT UNSIGNED NOT NULL DEFAULT 0,
           rows_applied BIGINT UNSIGNED NOT NULL DEFAULT 0,
           txns_applied BIGINT UNSIGNED NOT NULL DEFAULT 0,
           ddl_applied BIGINT UNSIGNED NOT NULL DEFAULT 0,
           applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
           PRIMARY KEY (task, lane)
         ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
         CREATE TABLE IF NOT EXISTS ferry_meta.apply_fanout (
           task VARCHAR(64) NOT NULL, lane INT UNSIGNED NOT NULL, part INT UNSIGNED NOT NULL,
           group_end BIGINT UNSIGNED NOT NULL, parts INT UNSIGNED NOT NULL DEFAULT 0,
           checkpoint LONGTEXT NULL,
           PRIMARY KEY (task, lane, part)
         ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;",
    )
    .execute(pool)
    .await?;
    upgrade(pool).await
}

/// Brings checkpoint tables created by an older sink up to date (portable: MySQL 8 has no
/// `ADD COLUMN IF NOT EXISTS`).
async fn upgrade(pool: &MySqlPool) -> Result<(), sqlx::Error> {
    add_column(pool, "full_objects", "pending_ddl", "LONGTEXT NULL AFTER state").await?;
    for counter in ["rows_applied", "txns_applied", "ddl_applied"] {
        add_column(
            pool,
            "apply_checkpoints",
            counter,
            "BIGINT UNSIGNED NOT NULL DEFAULT 0 AFTER ddl_started",
        )
        .await?;
    }
    Ok(())
}

async fn add_column(
    pool: &MySqlPool,
    table: &str,
    column: &str,
    definition: &str,
) -> Result<(), sqlx::Error> {
    let present: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'ferry_meta' AND TABLE_NAME = ? AND COLUMN_NAME = ?",
    )
    .bind(table)
    .bind(column)
    .fetch_one(pool)
    .await?;
    if present == 0 {
        sqlx::query(&format!("ALTER TABLE ferry_meta.{table} ADD COLUMN {column} {definition}"))
            .persistent(false)
            .execute(pool)
            .await?;
    }
    Ok(())
}

pub async fn object_state(
    conn: &mut MySqlConnection,
    task: &str,
    object: &str,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query("SELECT state FROM ferry_meta.full_objects WHERE task = ? AND object = ?")
        .bind(task.to_owned())
        .bind(object.to_owned())
        .fetch_optional(conn)
        .await?;
    row.map(|r| text(&r, "state")).transpose()
}

/// The secondary index definitions a created table still owes.
pub async fn pending_indexes(
    conn: &mut MySqlConnection,
    task: &str,
    object: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let row = sqlx::query("SELECT pending_ddl FROM ferry_meta.full_objects WHERE task = ? AND object = ?")
        .bind(task.to_owned())
        .bind(object.to_owned())
        .fetch_optional(conn)
        .await?;
    let bytes: Option<Vec<u8>> = match row {
        Some(r) => r.try_get::<Option<Vec<u8>>, _>("pending_ddl")?,
        None => None,
    };
    Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default())
}

pub async fn set_pending_indexes(
    conn: &mut MySqlConnection,
    task: &str,
    object: &str,
    defs: &[String],
) -> Result<(), sqlx::Error> {
    let text = if defs.is_empty() { None } else { serde_json::to_string(defs).ok() };
    sqlx::query("UPDATE ferry_meta.full_objects SET pending_ddl = ? WHERE task = ? AND object = ?")
        .bind(text)
        .bind(task.to_owned())
        .bind(object.to_owned())
        .execute(conn)
        .await?;
    Ok(())
}

/// Chunks applied for a table in one attempt.
pub async fn applied_chunks(
    conn: &mut MySqlConnection,
    task: &str,
    table: &str,
    attempt: u32,
) -> Result<u64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM ferry_meta.full_chunks WHERE task = ? AND source_table = ? AND attempt = ?",
    )
    .bind(task.to_owned())
    .bind(table.to_owned())
    .bind(attempt)
    .fetch_one(conn)
    .await?;
    Ok(n.max(0) as u64)
}

pub async fn set_object_state(
    conn: &mut MySqlConnection,
    task: &str,
    object: &str,
    kind: &str,
    state: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ferry_meta.full_objects (task, object, kind, state) VALUES (?, ?, ?, ?) \
         ON DUPLICATE KEY UPDATE state = VALUES(state), updated_at = CURRENT_TIMESTAMP(6)",
    )
    .bind(task.to_owned())
    .bind(object.to_owned())
    .bind(kind.to_owned())
    .bind(state.to_owned())
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a chunk as applied, in the caller's transaction. `false` when it already was
/// (the marker exists, or a concurrent redelivery of the same chunk holds it).
pub async fn claim_chunk(
    conn: &mut MySqlConnection,
    task: &str,
    table: &str,
    chunk: u64,
    attempt: u32,
    rows: u64,
) -> Result<bool, sqlx::Error> {
    match mark_chunk(conn, task, table, chunk, attempt, rows).await {
        Ok(()) => Ok(true),
        Err(e) if crate::error::target_code(&e) == Some(1062) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Attempt and highest chunk applied for a keyless table (locked).
pub async fn keyless_state(
    conn: &mut MySqlConnection,
    task: &str,
    table: &str,
) -> Result<Option<(u32, u64)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT attempt, MAX(chunk) AS top FROM ferry_meta.full_chunks WHERE task = ? AND source_table = ? \
         GROUP BY attempt ORDER BY attempt DESC LIMIT 1 FOR UPDATE",
    )
    .bind(task.to_owned())
    .bind(table.to_owned())
    .fetch_optional(conn)
    .await?;
    match row {
        Some(r) => Ok(Some((r.try_get::<u32, _>("attempt")?, r.try_get::<u64, _>("top")?))),
        None => Ok(None),
    }
}

/// Moves a finished table back to `done`, in the caller's transaction.
pub async fn reopen_table(conn: &mut MySqlConnection, task: &str, object: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE ferry_meta.full_objects SET state = 'done' WHERE task = ? AND object = ? AND state = 'finished'")
        .bind(task.to_owned())
        .bind(object.to_owned())
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn clear_chunks(conn: &mut MySqlConnection, task: &str, table: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM ferry_meta.full_chunks WHERE task = ? AND source_table = ?")
        .bind(task.to_owned())
        .bind(table.to_owned())
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn mark_chunk(
    conn: &mut MySqlConnection,
    task: &str,
    table: &str,
    chunk: u64,
    attempt: u32,
    rows: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query::<MySql>("INSERT INTO ferry_meta.full_chunks (task, source_table, chunk, attempt, row_count) VALUES (?, ?, ?, ?, ?)")
        .bind(task.to_owned())
        .bind(table.to_owned())
        .bind(chunk)
        .bind(attempt)
        .bind(rows)
        .execute(conn)
        .await?;
    Ok(())
}

/// Per source table `(table, attempt, chunks, rows)`, and `(object, kind, state)` of every
/// object past creation.
#[allow(clippy::type_complexity)]
pub async fn load_progress(
    pool: &MySqlPool,
    task: &str,
) -> Result<(Vec<(String, u32, u64, u64)>, Vec<(String, String, String)>), sqlx::Error> {
    let chunks = sqlx::query(
        "SELECT source_table, attempt, COUNT(*) AS n, CAST(SUM(row_count) AS UNSIGNED) AS r FROM ferry_meta.full_chunks \
         WHERE task = ? GROUP BY source_table, attempt",
    )
    .bind(task.to_owned())
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| Ok((text(&r, "source_table")?, r.try_get("attempt")?, r.try_get::<i64, _>("n")? as u64, r.try_get("r")?)))
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let objects =
        sqlx::query("SELECT object, kind, state FROM ferry_meta.full_objects WHERE task = ? AND state IN ('done', 'indexing', 'finished')")
            .bind(task.to_owned())
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| Ok((text(&r, "object")?, text(&r, "kind")?, text(&r, "state")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok((chunks, objects))
}

/// Reads a `utf8mb4_bin` column (the protocol flags it binary) as text.
pub fn text(row: &sqlx::mysql::MySqlRow, column: &str) -> Result<String, sqlx::Error> {
    let bytes: Vec<u8> = row.try_get(column)?;
    String::from_utf8(bytes).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// The incremental checkpoint of one APPLY lane (a partition, or [`BARRIER_LANE`]).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LaneCheckpoint {
    pub apply_seq: u64,
    pub cdc_seq: u64,
    /// JSON of the source position.
    pub position: String,
    pub source_time_ms: i64,
    /// APPLY sequence of a DDL that was started (DDL commits on its own).
    pub ddl_started: u64,
    /// Row changes, source transactions and DDL applied through this lane since the task
    /// began: written with the checkpoint, so the status totals survive a restart exactly.
    pub rows: u64,
    pub transactions: u64,
    pub ddl: u64,
    /// Messages of this lane up to here may have been partly applied by a fanned-out group
    /// that did not finish (see [`FanOut`]): they are replayed in safe mode. Derived at load,
    /// not stored in the lane's row.
    #[serde(skip)]
    pub safe_until: u64,
}

/// Lane of barrier messages (DDL, heartbeats, transactions spanning partitions).
pub const BARRIER_LANE: u32 = u32::MAX;

const LANE_COLUMNS: &str =
    "lane, apply_seq, cdc_seq, position, source_time_ms, ddl_started, rows_applied, txns_applied, ddl_applied";

fn lane_row(r: &sqlx::mysql::MySqlRow) -> Result<(u32, LaneCheckpoint), sqlx::Error> {
    Ok((
        r.try_get("lane")?,
        LaneCheckpoint {
            apply_seq: r.try_get("apply_seq")?,
            cdc_seq: r.try_get("cdc_seq")?,
            position: text(r, "position")?,
            source_time_ms: r.try_get("source_time_ms")?,
            ddl_started: r.try_get("ddl_started")?,
            rows: r.try_get("rows_applied")?,
            transactions: r.try_get("txns_applied")?,
            ddl: r.try_get("ddl_applied")?,
            safe_until: 0,
        },
    ))
}

pub async fn load_lanes(pool: &MySqlPool, task: &str) -> Result<Vec<(u32, LaneCheckpoint)>, sqlx::Error> {
    let lanes: Vec<(u32, LaneCheckpoint)> =
        sqlx::query(&format!("SELECT {LANE_COLUMNS} FROM ferry_meta.apply_checkpoints WHERE task = ?"))
            .bind(task.to_owned())
            .fetch_all(pool)
            .await?
            .iter()
            .map(lane_row)
            .collect::<Result<_, _>>()?;
    let fanouts = load_fanouts(pool, task, None).await?;
    let mut out: std::collections::HashMap<u32, LaneCheckpoint> = lanes.into_iter().collect();
    for (lane, fanout) in fanouts {
        let cp = out.remove(&lane).unwrap_or_default();
        out.insert(lane, fanout.resolve(cp));
    }
    Ok(out.into_iter().collect())
}

/// One lane's checkpoint as the target has it.
pub async fn load_lane(
    pool: &MySqlPool,
    task: &str,
    lane: u32,
) -> Result<Option<LaneCheckpoint>, sqlx::Error> {
    let stored = sqlx::query(&format!(
        "SELECT {LANE_COLUMNS} FROM ferry_meta.apply_checkpoints WHERE task = ? AND lane = ?"
    ))
    .bind(task.to_owned())
    .bind(lane)
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(lane_row)
    .transpose()?
    .map(|(_, cp)| cp);
    let fanout = load_fanouts(pool, task, Some(lane)).await?.into_iter().next();
    Ok(match (stored, fanout) {
        (cp, Some((_, f))) => Some(f.resolve(cp.unwrap_or_default())),
        (cp, None) => cp,
    })
}

/// Part number of a fanned-out group's intent row in `apply_fanout`.
const INTENT_PART: u32 = u32::MAX;

/// A lane's last fanned-out group as the target has it: written over several connections, each
/// committing its part of the group's rows with a marker row. The intent (group end, number of
/// parts, the lane checkpoint the group reaches) is committed before any part.
#[derive(Debug)]
pub struct FanOut {
    pub group_end: u64,
    pub parts: u32,
    /// Parts whose marker names this group.
    pub committed: u32,
    pub reached: Option<LaneCheckpoint>,
}

impl FanOut {
    /// The lane's checkpoint given its stored row `cp`: the group's when every part committed,
    /// otherwise `cp` with the group's messages marked for a safe-mode replay.
    pub fn resolve(self, cp: LaneCheckpoint) -> LaneCheckpoint {
        if self.group_end <= cp.apply_seq {
            return cp;
        }
        match self.reached {
            Some(reached) if self.committed >= self.parts => reached,
            _ => LaneCheckpoint { safe_until: self.group_end, ..cp },
        }
    }
}

async fn load_fanouts(
    pool: &MySqlPool,
    task: &str,
    lane: Option<u32>,
) -> Result<Vec<(u32, FanOut)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT lane, part, group_end, parts, checkpoint FROM ferry_meta.apply_fanout WHERE task = ? AND (? IS NULL OR lane = ?)",
    )
    .bind(task.to_owned())
    .bind(lane)
    .bind(lane)
    .fetch_all(pool)
    .await?;
    let mut intents: std::collections::HashMap<u32, FanOut> = std::collections::HashMap::new();
    let mut markers: Vec<(u32, u64)> = Vec::new();
    for r in &rows {
        let lane: u32 = r.try_get("lane")?;
        let group_end: u64 = r.try_get("group_end")?;
        if r.try_get::<u32, _>("part")? == INTENT_PART {
            let bytes: Option<Vec<u8>> = r.try_get("checkpoint")?;
            // An unreadable checkpoint leaves the group to the safe-mode replay.
            let reached = bytes.and_then(|b| serde_json::from_slice(&b).ok());
            intents.insert(lane, FanOut { group_end, parts: r.try_get("parts")?, committed: 0, reached });
        } else {
            markers.push((lane, group_end));
        }
    }
    for (lane, group_end) in markers {
        if let Some(f) = intents.get_mut(&lane).filter(|f| f.group_end == group_end) {
            f.committed += 1;
        }
    }
    Ok(intents.into_iter().collect())
}

/// Records a fanned-out group before its parts commit, in the caller's transaction: the lane's
/// checkpoint so far (`current`, which the previous group's intent held) and the intent.
pub async fn save_fanout_intent(
    conn: &mut MySqlConnection,
    task: &str,
    lane: u32,
    current: &LaneCheckpoint,
    group_end: u64,
    parts: u32,
    reached: &LaneCheckpoint,
) -> Result<(), sqlx::Error> {
    save_lane(&mut *conn, task, lane, current).await?;
    sqlx::query(
        "INSERT INTO ferry_meta.apply_fanout (task, lane, part, group_end, parts, checkpoint) VALUES (?, ?, ?, ?, ?, ?) \
         ON DUPLICATE KEY UPDATE group_end = VALUES(group_end), parts = VALUES(parts), checkpoint = VALUES(checkpoint)",
    )
    .bind(task.to_owned())
    .bind(lane)
    .bind(INTENT_PART)
    .bind(group_end)
    .bind(parts)
    .bind(serde_json::to_string(reached).unwrap_or_default())
    .execute(conn)
    .await?;
    Ok(())
}

/// Withdraws a lane's intent after its group was rolled back in every part (nothing of it was
/// committed), so the group is not replayed in safe mode.
pub async fn clear_fanout_intent(pool: &MySqlPool, task: &str, lane: u32) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM ferry_meta.apply_fanout WHERE task = ? AND lane = ? AND part = ?")
        .bind(task.to_owned())
        .bind(lane)
        .bind(INTENT_PART)
        .execute(pool)
        .await?;
    Ok(())
}

/// Marks one part of a fanned-out group as applied, in that part's transaction.
pub async fn save_fanout_part(
    conn: &mut MySqlConnection,
    task: &str,
    lane: u32,
    part: u32,
    group_end: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ferry_meta.apply_fanout (task, lane, part, group_end) VALUES (?, ?, ?, ?) \
         ON DUPLICATE KEY UPDATE group_end = VALUES(group_end)",
    )
    .bind(task.to_owned())
    .bind(lane)
    .bind(part)
    .bind(group_end)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes a lane's checkpoint, in the caller's transaction.
pub async fn save_lane(
    conn: &mut MySqlConnection,
    task: &str,
    lane: u32,
    cp: &LaneCheckpoint,
) -> Result<(), sqlx::Error> {
    let sql = save_lane_sql(task, lane, cp);
    sqlx::Executor::execute(conn, sqlx::raw_sql(&sql)).await?;
    Ok(())
}

/// The statement that writes a lane's checkpoint, as text (values as exact literals), so it
/// can travel at the end of a group's script (see `incremental::write_group`).
pub fn save_lane_sql(task: &str, lane: u32, cp: &LaneCheckpoint) -> String {
    let mut sql = String::with_capacity(512 + cp.position.len() * 2);
    sql.push_str(
        "INSERT INTO ferry_meta.apply_checkpoints (task, lane, apply_seq, cdc_seq, position, source_time_ms, \
         ddl_started, rows_applied, txns_applied, ddl_applied) VALUES (",
    );
    push_literal(&mut sql, &SqlValue::Text(task.to_owned()));
    let _ = write!(sql, ", {lane}, {}, {}, ", cp.apply_seq, cp.cdc_seq);
    push_literal(&mut sql, &SqlValue::Text(cp.position.clone()));
    let _ = write!(
        sql,
        ", {}, {}, {}, {}, {}) ON DUPLICATE KEY UPDATE apply_seq = VALUES(apply_seq), cdc_seq = VALUES(cdc_seq), \
         position = VALUES(position), source_time_ms = VALUES(source_time_ms), ddl_started = VALUES(ddl_started), \
         rows_applied = VALUES(rows_applied), txns_applied = VALUES(txns_applied), ddl_applied = VALUES(ddl_applied)",
        cp.source_time_ms, cp.ddl_started, cp.rows, cp.transactions, cp.ddl
    );
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(apply_seq: u64) -> LaneCheckpoint {
        LaneCheckpoint { apply_seq, rows: apply_seq * 4, ..Default::default() }
    }

    #[test]
    fn a_fanned_out_group_counts_only_when_every_part_committed() {
        let group = |committed| FanOut { group_end: 20, parts: 3, committed, reached: Some(at(20)) };
        // Every part committed: the lane is at the group's end, with its totals.
        let done = group(3).resolve(at(10));
        assert_eq!((done.apply_seq, done.rows, done.safe_until), (20, 80, 0));
        // A part is missing: the lane stays where its row says and replays the group safely.
        let cut = group(2).resolve(at(10));
        assert_eq!((cut.apply_seq, cut.rows, cut.safe_until), (10, 40, 20));
        // An intent the lane has passed since (written again on one connection) is old news.
        let passed = group(0).resolve(at(25));
        assert_eq!((passed.apply_seq, passed.safe_until), (25, 0));
        // An unreadable intent checkpoint is replayed rather than trusted.
        let unreadable = FanOut { reached: None, ..group(3) }.resolve(at(10));
        assert_eq!((unreadable.apply_seq, unreadable.safe_until), (10, 20));
    }
}
