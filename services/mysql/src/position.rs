//! Reading the source's current binlog position (P0 before the full copy, P1 after it).

use crate::SourceError;
use ferry_schemas::position::{BinlogFilePos, GtidState, SourcePosition};
use mysql_async::prelude::*;
use mysql_async::Conn;

/// Whether the server is MariaDB (GTID lists) or MySQL (GTID sets).
pub async fn is_mariadb(conn: &mut Conn) -> Result<bool, SourceError> {
    let v: Option<String> = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| SourceError::mysql("reading the server version", e))?;
    Ok(v.unwrap_or_default().to_ascii_lowercase().contains("mariadb"))
}

/// The current end of the binlog, or `None` when binary logging is off.
pub async fn current(conn: &mut Conn) -> Result<Option<SourcePosition>, SourceError> {
    let mariadb = is_mariadb(conn).await?;
    let status: Option<mysql_async::Row> = match conn.query_first("SHOW MASTER STATUS").await {
        Ok(r) => r,
        // MySQL 8.4 renamed the statement.
        Err(_) => conn
            .query_first("SHOW BINARY LOG STATUS")
            .await
            .map_err(|e| SourceError::mysql("reading the binlog position", e))?,
    };
    let Some(row) = status else { return Ok(None) };
    let file: Option<String> = row.get(0);
    let offset: Option<u64> = row.get(1);
    let (Some(file), Some(offset)) = (file, offset) else { return Ok(None) };
    let server_id: Option<u32> = conn
        .query_first("SELECT @@server_id")
        .await
        .map_err(|e| SourceError::mysql("reading server_id", e))?;
    let gtid = if mariadb {
        let g: Option<String> = conn
            .query_first("SELECT @@gtid_binlog_pos")
            .await
            .map_err(|e| SourceError::mysql("reading gtid_binlog_pos", e))?;
        g.and_then(|g| g.parse().ok()).map(GtidState::Mariadb)
    } else {
        let g: Option<String> = conn
            .query_first("SELECT @@gtid_executed")
            .await
            .map_err(|e| SourceError::mysql("reading gtid_executed", e))?;
        g.and_then(|g| g.replace('\n', "").parse().ok()).map(GtidState::Mysql)
    };
    Ok(Some(SourcePosition { binlog: BinlogFilePos { file, offset }, gtid, server_id }))
}
