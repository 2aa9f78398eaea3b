//! Turning a GTID or a timestamp start point into a binlog file position, by reading the
//! source's binlog (done once, when a task without a full phase first starts; the resolved
//! position is recorded in the store status before anything is captured, so a restart does
//! not resolve it again).
//!
//! - **GTID list** (MariaDB, `incremental.start_gtid`, the replica's `gtid_slave_pos` style):
//!   capture starts right after those transactions. The file to scan is the newest whose
//!   opening `Gtid_list` event is covered by the list (everything before it was applied);
//!   capture starts at the first transaction in it (or later) that the list does not cover.
//! - **Timestamp** (`incremental.start_time`): the newest file that opened at or before the
//!   time is scanned for the first transaction committed at or after it (binlog timestamps
//!   have one-second precision).
//!
//! Either way, a point older than the oldest retained file is refused (`binlog_purged`), since
//! the changes in between are gone.

use crate::binlog::reader::{Event, Reader};
use crate::error::{definite, CaptureError};
use chrono::{DateTime, Utc};
use ferry_mysql::binlog_access::binary_logs;
use ferry_schemas::position::{BinlogFilePos, MariaGtid, MariaGtidList};
use ferry_schemas::task::{Endpoint, ObjectFilter};

/// Reads no rows: only transaction boundaries matter here.
fn no_tables() -> ObjectFilter {
    ObjectFilter { include: Vec::new(), exclude: Vec::new() }
}

async fn open(endpoint: &Endpoint, server_id: u32, file: &str) -> Result<Reader, CaptureError> {
    let start = BinlogFilePos { file: file.to_owned(), offset: 4 };
    Ok(Reader::open(endpoint, server_id, &start, true).await?.only(no_tables()))
}

/// What a binlog file starts with: the time it was opened and the GTID state before it.
async fn file_opening(
    endpoint: &Endpoint,
    server_id: u32,
    file: &str,
) -> Result<(u32, Option<MariaGtidList>), CaptureError> {
    let mut reader = open(endpoint, server_id, file).await?;
    let mut opened = 0;
    while let Some(ev) = reader.next().await {
        let ev = ev?;
        if opened == 0 && ev.timestamp > 0 && ev.end.file == file {
            opened = ev.timestamp;
        }
        match ev.event {
            Event::GtidList(list) => return Ok((opened, Some(list))),
            // Past the file's header events.
            Event::Gtid { .. } | Event::Query { .. } | Event::Rows { .. } | Event::Xid => break,
            _ => {}
        }
    }
    Ok((opened, None))
}

/// Scans from `file` for the first transaction `pick` accepts; returns where it begins, or
/// the end of the binlog when none does.
async fn scan(
    endpoint: &Endpoint,
    server_id: u32,
    file: &str,
    mut pick: impl FnMut(&MariaGtid, u32) -> bool,
) -> Result<BinlogFilePos, CaptureError> {
    let mut reader = open(endpoint, server_id, file).await?;
    let mut prev = BinlogFilePos { file: file.to_owned(), offset: 4 };
    while let Some(ev) = reader.next().await {
        let ev = ev?;
        if let Event::Gtid { gtid, .. } = &ev.event {
            if pick(gtid, ev.timestamp) {
                return Ok(prev);
            }
        }
        // A rotation's own position names the new file with the old offset: not a boundary.
        if !matches!(ev.event, Event::Other) || ev.end.file == prev.file {
            prev = ev.end;
        }
    }
    Ok(prev)
}

fn purged(what: String) -> CaptureError {
    definite(
        "binlog_purged",
        None,
        what,
        "start from a point the source still has (or with a full phase), and keep binlogs longer on the source",
    )
}

/// The newest binlog file whose opening `starts_before` accepts (files are checked oldest
/// first, and opening times and GTID states only grow); `purged` when even the oldest is not.
async fn newest_file_where(
    endpoint: &Endpoint,
    server_id: u32,
    conn: &mut mysql_async::Conn,
    point: &str,
    starts_before: impl Fn(u32, &MariaGtidList) -> bool,
) -> Result<String, CaptureError> {
    let files = binary_logs(conn).await?;
    let mut chosen = None;
    for (file, _) in &files {
        let (opened, list) = file_opening(endpoint, server_id, file).await?;
        if !starts_before(opened, &list.unwrap_or_default()) {
            break;
        }
        chosen = Some(file.clone());
    }
    chosen.ok_or_else(|| {
        purged(format!(
            "the source's oldest binlog file ({}) starts after {point}: the changes in between are purged",
            files.first().map_or("none", |f| f.0.as_str())
        ))
    })
}

/// The position right after the transactions `gtids` names.
pub async fn from_gtid(
    endpoint: &Endpoint,
    server_id: u32,
    conn: &mut mysql_async::Conn,
    gtids: &MariaGtidList,
) -> Result<BinlogFilePos, CaptureError> {
    // Every transaction before the file is covered by `gtids`.
    let file = newest_file_where(endpoint, server_id, conn, &format!("GTID {gtids}"), |_, before| {
        gtids.contains(before)
    })
    .await?;
    scan(endpoint, server_id, &file, |g, _| gtids.0.get(&g.domain).is_none_or(|s| s.seq < g.seq)).await
}

/// The position where the first transaction committed at or after `at` begins.
pub async fn from_time(
    endpoint: &Endpoint,
    server_id: u32,
    conn: &mut mysql_async::Conn,
    at: DateTime<Utc>,
) -> Result<BinlogFilePos, CaptureError> {
    let target = u32::try_from(at.timestamp()).unwrap_or(0);
    let file =
        newest_file_where(endpoint, server_id, conn, &at.to_string(), |opened, _| opened <= target).await?;
    scan(endpoint, server_id, &file, |_, ts| ts >= target).await
}
