//! Turning a GTID or a timestamp start point into a binlog file position, by reading the
//! source's binlog (done once, when a task without a full phase first starts; the resolved
//! position is recorded in the store status before anything is captured, so a restart does
//! not resolve it again).
//!
//! - **GTID list** (MariaDB, `incremental.start_gtid`, the replica's `gtid_slave_pos` style):
//!   capture starts right after those transactions. The file to scan is the newest whose
//!   opening `Gtid_list` event is covered by the list (everything before it was applied);
//!   capture starts at the first transaction in it (or later) that the list does not cover.
//! - **GTID set** (MySQL, the same option, `gtid_executed` style): the same with the file's
//!   `Previous_gtids` and the first transaction whose GTID is outside the set (a transaction
//!   without a GTID, written while `gtid_mode` was off, is never in it). A GTID of the other
//!   flavour than the source's, or tagged GTIDs (MySQL 8.4) in the binlog, are refused.
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
use ferry_schemas::position::{BinlogFilePos, GtidState, MariaGtidList, MysqlGtidSet};
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
#[derive(Default)]
struct Opening {
    opened: u32,
    /// MariaDB's `Gtid_list`.
    maria: Option<MariaGtidList>,
    /// MySQL's `Previous_gtids` (untagged), and whether it listed tagged GTIDs too.
    mysql: Option<(MysqlGtidSet, bool)>,
}

async fn file_opening(endpoint: &Endpoint, server_id: u32, file: &str) -> Result<Opening, CaptureError> {
    let mut reader = open(endpoint, server_id, file).await?;
    let mut opening = Opening::default();
    while let Some(ev) = reader.next().await {
        let ev = ev?;
        if opening.opened == 0 && ev.timestamp > 0 && ev.end.file == file {
            opening.opened = ev.timestamp;
        }
        match ev.event {
            Event::GtidList(list) => {
                opening.maria = Some(list);
                break;
            }
            Event::PreviousGtids(set, tagged) => {
                opening.mysql = Some((set, tagged));
                break;
            }
            // Past the file's header events.
            ref e if starts_transaction(e) => break,
            Event::Query { .. } | Event::Rows { .. } | Event::Xid => break,
            _ => {}
        }
    }
    Ok(opening)
}

/// The event that announces a transaction (or DDL statement): where one begins.
fn starts_transaction(event: &Event) -> bool {
    matches!(event, Event::Gtid { .. } | Event::MysqlGtid(_) | Event::MysqlAnonymousGtid)
}

/// Scans from `file` for the first transaction `pick` accepts (given its announcing event
/// and timestamp); returns where it begins, or the end of the binlog when none does.
async fn scan(
    endpoint: &Endpoint,
    server_id: u32,
    file: &str,
    mut pick: impl FnMut(&Event, u32) -> Result<bool, CaptureError>,
) -> Result<BinlogFilePos, CaptureError> {
    let mut reader = open(endpoint, server_id, file).await?;
    let mut prev = BinlogFilePos { file: file.to_owned(), offset: 4 };
    while let Some(ev) = reader.next().await {
        let ev = ev?;
        if starts_transaction(&ev.event) && pick(&ev.event, ev.timestamp)? {
            return Ok(prev);
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

fn wrong_flavor(what: String, fix: &str) -> CaptureError {
    definite("bad_start", Some("incremental.start_gtid".into()), what, fix)
}

/// The newest binlog file whose opening `starts_before` accepts (files are checked oldest
/// first, and opening times and GTID states only grow); `purged` when even the oldest is not.
async fn newest_file_where(
    endpoint: &Endpoint,
    server_id: u32,
    conn: &mut mysql_async::Conn,
    point: &str,
    starts_before: impl Fn(&str, &Opening) -> Result<bool, CaptureError>,
) -> Result<String, CaptureError> {
    let files = binary_logs(conn).await?;
    let mut chosen = None;
    for (file, _) in &files {
        let opening = file_opening(endpoint, server_id, file).await?;
        if !starts_before(file, &opening)? {
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
    gtids: &GtidState,
) -> Result<BinlogFilePos, CaptureError> {
    match gtids {
        GtidState::Mariadb(list) => from_mariadb_gtid(endpoint, server_id, conn, list).await,
        GtidState::Mysql(set) => from_mysql_gtid(endpoint, server_id, conn, set).await,
    }
}

async fn from_mariadb_gtid(
    endpoint: &Endpoint,
    server_id: u32,
    conn: &mut mysql_async::Conn,
    gtids: &MariaGtidList,
) -> Result<BinlogFilePos, CaptureError> {
    // Every transaction before the file is covered by `gtids`.
    let file = newest_file_where(endpoint, server_id, conn, &format!("GTID {gtids}"), |file, opening| {
        if opening.mysql.is_some() {
            return Err(wrong_flavor(
                format!("{gtids} is a MariaDB GTID list, but the source is MySQL ({file} opens with Previous_gtids)"),
                "give the MySQL GTID set to start after, e.g. 3e11fa47-71ca-11e1-9e33-c80aa9429562:1-77",
            ));
        }
        Ok(gtids.contains(&opening.maria.clone().unwrap_or_default()))
    })
    .await?;
    scan(endpoint, server_id, &file, |event, _| {
        Ok(match event {
            Event::Gtid { gtid, .. } => gtids.0.get(&gtid.domain).is_none_or(|s| s.seq < gtid.seq),
            _ => false,
        })
    })
    .await
}

/// MySQL: the newest file whose `Previous_gtids` the set covers, then its first transaction
/// outside the set (as a replica given `gtid_executed` would resume).
async fn from_mysql_gtid(
    endpoint: &Endpoint,
    server_id: u32,
    conn: &mut mysql_async::Conn,
    gtids: &MysqlGtidSet,
) -> Result<BinlogFilePos, CaptureError> {
    let tagged = || {
        wrong_flavor(
            "the source's binlog has tagged GTIDs (MySQL 8.4 uuid:tag:n), which a GTID start point cannot name".into(),
            "start at a binlog position instead (incremental.start: file:offset)",
        )
    };
    let file = newest_file_where(endpoint, server_id, conn, &format!("GTID set {gtids}"), |file, opening| {
        match &opening.mysql {
            Some((_, true)) => Err(tagged()),
            Some((before, false)) => Ok(gtids.contains(before)),
            None if opening.maria.is_some() => Err(wrong_flavor(
                format!(
                    "{gtids} is a MySQL GTID set, but the source is MariaDB ({file} opens with Gtid_list)"
                ),
                "give the MariaDB GTID list to start after, as domain-server-sequence, e.g. 0-1-1403",
            )),
            // MySQL 5.6 without GTIDs ever enabled writes an empty Previous_gtids; nothing before.
            None => Ok(true),
        }
    })
    .await?;
    scan(endpoint, server_id, &file, |event, _| match event {
        Event::MysqlGtid(g) if g.tag.is_some() => Err(tagged()),
        Event::MysqlGtid(g) => Ok(!gtids.has(&g.uuid, g.gno)),
        // A transaction without a GTID cannot be in the set.
        Event::MysqlAnonymousGtid => Ok(true),
        _ => Ok(false),
    })
    .await
}

/// The position where the first transaction committed at or after `at` begins.
pub async fn from_time(
    endpoint: &Endpoint,
    server_id: u32,
    conn: &mut mysql_async::Conn,
    at: DateTime<Utc>,
) -> Result<BinlogFilePos, CaptureError> {
    let target = u32::try_from(at.timestamp()).unwrap_or(0);
    let file = newest_file_where(endpoint, server_id, conn, &at.to_string(), |_, opening| {
        Ok(opening.opened <= target)
    })
    .await?;
    scan(endpoint, server_id, &file, |_, ts| Ok(ts >= target)).await
}
