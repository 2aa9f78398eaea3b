//! Proving a target table equal to its source: row count, an ordered content hash computed by
//! a query on each side, an exact value-by-value comparison over the binary protocol (FLOAT
//! bits included), and the structure from `SHOW CREATE TABLE`.

use anyhow::{bail, Result};
use mysql_async::prelude::*;
use mysql_async::{Conn, Row, Value};

pub struct Side<'a> {
    pub conn: &'a mut Conn,
    pub db: &'a str,
    pub table: &'a str,
}

fn q(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

async fn columns(conn: &mut Conn, db: &str, table: &str) -> Result<Vec<(String, String)>> {
    Ok(conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await?)
}

async fn primary_key(conn: &mut Conn, db: &str, table: &str) -> Result<Vec<String>> {
    Ok(conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
            (db, table),
        )
        .await?)
}

/// `(count, md5 of the row hashes in key order)`, computed by the server.
async fn content_hash(
    side: &mut Side<'_>,
    cols: &[(String, String)],
    key: &[String],
) -> Result<(u64, String)> {
    side.conn.query_drop("SET SESSION group_concat_max_len = 1073741824, time_zone = '+00:00'").await?;
    let cells: Vec<String> = cols
        .iter()
        .map(|(c, ty)| {
            let v = if ["binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit"]
                .contains(&ty.as_str())
            {
                format!("HEX({})", q(c))
            } else {
                format!("CAST({} AS CHAR)", q(c))
            };
            format!("IF({} IS NULL, 'N', CONCAT('v', {v}))", q(c))
        })
        .collect();
    let order =
        if key.is_empty() { "h".to_owned() } else { key.iter().map(|k| q(k)).collect::<Vec<_>>().join(", ") };
    let keys = if key.is_empty() {
        String::new()
    } else {
        format!(", {}", key.iter().map(|k| q(k)).collect::<Vec<_>>().join(", "))
    };
    let sql = format!(
        "SELECT COUNT(*), MD5(GROUP_CONCAT(h ORDER BY {order} SEPARATOR '')) FROM (SELECT MD5(CONCAT_WS('#', {})) AS h{keys} FROM {}.{}) x",
        cells.join(", "),
        q(side.db),
        q(side.table)
    );
    let row: Option<(u64, Option<String>)> = side.conn.query_first(sql).await?;
    let (n, h) = row.unwrap_or((0, None));
    Ok((n, h.unwrap_or_default()))
}

async fn all_rows(side: &mut Side<'_>, cols: &[(String, String)], key: &[String]) -> Result<Vec<Vec<Value>>> {
    let list: Vec<String> = cols.iter().map(|(c, _)| q(c)).collect();
    let order = if key.is_empty() {
        list.join(", ")
    } else {
        key.iter().map(|k| q(k)).collect::<Vec<_>>().join(", ")
    };
    side.conn.query_drop("SET time_zone = '+00:00'").await?;
    let sql = format!("SELECT {} FROM {}.{} ORDER BY {order}", list.join(", "), q(side.db), q(side.table));
    let rows: Vec<Row> = side.conn.exec(sql, ()).await?;
    Ok(rows.into_iter().map(Row::unwrap).collect())
}

/// Fails unless the target table holds exactly the source table's rows.
pub async fn same_rows(source: &mut Side<'_>, target: &mut Side<'_>) -> Result<u64> {
    let cols = columns(source.conn, source.db, source.table).await?;
    let key = primary_key(source.conn, source.db, source.table).await?;
    let s = content_hash(source, &cols, &key).await?;
    let t = content_hash(target, &cols, &key).await?;
    if s != t {
        bail!(
            "{}.{} differs from {}.{}: source (rows, hash) {s:?}, target {t:?}",
            source.db,
            source.table,
            target.db,
            target.table
        );
    }
    let sr = all_rows(source, &cols, &key).await?;
    let tr = all_rows(target, &cols, &key).await?;
    if sr != tr {
        let first = sr.iter().zip(&tr).position(|(a, b)| a != b);
        bail!(
            "{}.{}: exact values differ at row {first:?}: {:?} vs {:?}",
            source.db,
            source.table,
            first.map(|i| &sr[i]),
            first.map(|i| &tr[i])
        );
    }
    Ok(s.0)
}

/// `SHOW CREATE TABLE` of both sides, equal once the table names are set aside.
pub async fn same_structure(source: &mut Side<'_>, target: &mut Side<'_>) -> Result<()> {
    let s = show_create(source).await?;
    let t = show_create(target).await?;
    if s != t {
        bail!("structure of {}.{} differs:\nsource: {s}\ntarget: {t}", source.db, source.table);
    }
    Ok(())
}

async fn show_create(side: &mut Side<'_>) -> Result<String> {
    let row: Option<Row> =
        side.conn.query_first(format!("SHOW CREATE TABLE {}.{}", q(side.db), q(side.table))).await?;
    let ddl: String = row.and_then(|r| r.get(1)).unwrap_or_default();
    let prefix = format!("CREATE TABLE {}", q(side.table));
    Ok(ddl.replacen(&prefix, "CREATE TABLE `T`", 1).replacen(
        &format!("CREATE VIEW {}", q(side.table)),
        "CREATE VIEW `T`",
        1,
    ))
}
