//! Whether the source lets Ferry read its binlog: replication privileges and retained files.
//!
//! Privileges are probed, not parsed from `SHOW GRANTS` (roles, `ALL PRIVILEGES`, MariaDB's
//! `BINLOG MONITOR` alias all count): `SHOW BINARY LOGS` needs REPLICATION CLIENT, and a binlog
//! dump (opened at the current end, non-blocking, closed after its first event) needs
//! REPLICATION SLAVE.

use crate::conn::opts;
use crate::SourceError;
use ferry_schemas::position::BinlogFilePos;
use ferry_schemas::task::Endpoint;
use futures::StreamExt;
use mysql_async::prelude::*;
use mysql_async::{BinlogStreamRequest, Conn};

/// The binlog files the source still has, oldest first, with their sizes.
pub async fn binary_logs(conn: &mut Conn) -> Result<Vec<(String, u64)>, SourceError> {
    let rows: Vec<mysql_async::Row> =
        conn.query("SHOW BINARY LOGS").await.map_err(|e| SourceError::mysql("listing binlog files", e))?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let name: Option<String> = r.get(0);
            let size: Option<u64> = r.get(1);
            name.zip(size)
        })
        .collect())
}

/// Why reading from `start` cannot work, if it cannot: the file was purged, or the offset is
/// past its end.
pub fn unavailable(files: &[(String, u64)], start: &BinlogFilePos) -> Option<String> {
    match files.iter().find(|(name, _)| *name == start.file) {
        Some((_, size)) if start.offset > *size => {
            Some(format!("binlog position {start} is past the end of {} ({size} bytes)", start.file))
        }
        Some(_) => None,
        None => Some(match files.first() {
            Some((oldest, _)) => {
                format!("binlog file {} is no longer on the source (the oldest is {oldest})", start.file)
            }
            None => format!("binlog file {} is not on the source (it has no binlog files)", start.file),
        }),
    }
}

/// Opens a binlog dump at `at` as replica `server_id` and reads its first event.
pub async fn probe_dump(endpoint: &Endpoint, server_id: u32, at: &BinlogFilePos) -> Result<(), SourceError> {
    let what = |s: &str| format!("{s} on {}", endpoint.describe());
    let mut conn =
        Conn::new(opts(endpoint, 1)).await.map_err(|e| SourceError::mysql(what("connecting"), e))?;
    conn.query_drop("SET @mariadb_slave_capability = 4")
        .await
        .map_err(|e| SourceError::mysql(what("preparing a binlog session"), e))?;
    let request = BinlogStreamRequest::new(server_id)
        .with_filename(at.file.as_bytes())
        .with_pos(at.offset)
        .with_non_blocking();
    let mut stream = conn
        .get_binlog_stream(request)
        .await
        .map_err(|e| SourceError::mysql(what("starting a binlog dump"), e))?;
    let first = stream.next().await;
    let _ = stream.close().await;
    match first {
        Some(Err(e)) => Err(SourceError::mysql(what("reading the binlog"), e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(file: &str, offset: u64) -> BinlogFilePos {
        BinlogFilePos { file: file.into(), offset }
    }

    #[test]
    fn a_start_must_be_in_a_retained_file_and_within_it() {
        let files = vec![("bin.000007".to_owned(), 900), ("bin.000008".to_owned(), 400)];
        assert_eq!(unavailable(&files, &at("bin.000008", 400)), None);
        assert_eq!(unavailable(&files, &at("bin.000007", 4)), None);
        let purged = unavailable(&files, &at("bin.000006", 4)).unwrap_or_default();
        assert!(
            purged.contains("bin.000006 is no longer") && purged.contains("oldest is bin.000007"),
            "{purged}"
        );
        let past = unavailable(&files, &at("bin.000008", 401)).unwrap_or_default();
        assert!(past.contains("past the end"), "{past}");
        assert!(unavailable(&[], &at("bin.000001", 4)).is_some());
    }
}
