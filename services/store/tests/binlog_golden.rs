//! Golden test of the binlog path on the project's source MariaDB: rows of every type written
//! to the source and read back through the replication stream decode to exactly the values a
//! `SELECT` returns (min/max/zero/NULL rows of the e2e `all_types` table), and an UPDATE's and a
//! DELETE's before images are exact too.

use anyhow::{anyhow, ensure, Context, Result};
use ferry_mysql::values::from_mysql;
use ferry_schemas::cdc::ChangeOp;
use ferry_schemas::table::{TableRef, TableSchema};
use ferry_schemas::task::{Endpoint, Secret};
use ferry_schemas::value::{ColumnType, SqlValue};
use ferry_store::binlog::columns::{Collations, MappedColumn};
use ferry_store::binlog::decode::decode;
use ferry_store::binlog::reader::{Event, Reader};
use ferry_store::written_schema::as_written;
use mysql_async::prelude::*;
use mysql_async::{Opts, Row};
use rand::Rng;

fn source() -> Result<(Opts, Endpoint)> {
    let url = std::env::var("FERRY_SOURCE_URL")
        .map_err(|_| anyhow!("FERRY_SOURCE_URL is not set: run the tests through scripts/test"))?;
    let opts = Opts::from_url(&url)?;
    let endpoint = Endpoint {
        kind: Default::default(),
        host: opts.ip_or_hostname().to_string(),
        port: opts.tcp_port(),
        user: opts.user().unwrap_or_default().to_owned(),
        password: Secret(opts.pass().unwrap_or_default().to_owned()),
        region: None,
    };
    Ok((opts, endpoint))
}

/// The `all_types` table and its rows from the e2e scenario (one source of truth for the types).
fn all_types_sql() -> Result<String> {
    let path =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/scenarios/full_all_types/prepare_source.sql");
    let text = std::fs::read_to_string(path).context("reading the all_types scenario")?;
    let start =
        text.find("CREATE TABLE all_types").ok_or_else(|| anyhow!("no all_types table in the scenario"))?;
    let end = text.find("CREATE TABLE orders").ok_or_else(|| anyhow!("scenario layout changed"))?;
    // mysql_common 0.37.3 underflows on negative TIME(1)/TIME(2) values with a fraction
    // (binlog/misc.rs, `frac -= 0x100` on a u32): a panic in debug, a wrong value in release.
    // Ferry's precheck refuses such columns for incremental tasks; here the column is TIME(3).
    Ok(text[start..end].replace("tm1 TIME(1)", "tm1 TIME(3)"))
}

/// A connection to the source in a fresh database of its own (session in UTC, zero dates allowed).
async fn fresh_database(prefix: &str) -> Result<(mysql_async::Conn, Endpoint, String)> {
    let (opts, endpoint) = source()?;
    let db = format!("{prefix}_{:08x}", rand::rng().random::<u32>());
    let mut conn = mysql_async::Conn::new(opts).await?;
    conn.query_drop("SET NAMES utf8mb4").await?;
    conn.query_drop(format!("CREATE DATABASE `{db}`; USE `{db}`; SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION', time_zone = '+00:00'"))
        .await?;
    Ok((conn, endpoint, db))
}

/// A replica server id no other reader of the shared source uses.
fn reader_server_id() -> u32 {
    100_000 + rand::rng().random::<u32>() % 1_000_000
}

/// The table map agrees with the catalog on every column (see `binlog::columns`), and with
/// `binlog_row_metadata=FULL` (the dev servers' setting) it describes each exactly as the
/// catalog does, so a schema derived from it alone (`written_schema`) is the catalog's.
fn table_map_describes(
    schema: &TableSchema,
    columns: &[MappedColumn],
    collations: &Collations,
) -> Result<()> {
    ensure!(columns.len() == schema.columns.len(), "table map has {} columns", columns.len());
    for (m, c) in columns.iter().zip(&schema.columns) {
        if let Some(why) = m.mismatch(c, collations) {
            return Err(anyhow!("{why}"));
        }
    }
    if columns.iter().any(|c| c.name.is_none()) {
        eprintln!("the source does not run with binlog_row_metadata=FULL: derivation not checked");
        return Ok(());
    }
    // A history that knows nothing of the table: every column is derived from the table map.
    let unknown =
        TableSchema { columns: Vec::new(), key: Vec::new(), unique_keys: Vec::new(), ..schema.clone() };
    let derived = as_written(&unknown, columns, collations).map_err(|e| anyhow!(e))?;
    for (d, c) in derived.columns.iter().zip(&schema.columns) {
        ensure!(
            (&d.name, &d.column_type, d.nullable) == (&c.name, &c.column_type, c.nullable)
                || c.column_type == ColumnType::Json
                    && d.column_type == ColumnType::Text { charset: "utf8mb4".into() },
            "column {}: derived {d:?}, catalog {c:?}",
            c.name
        );
    }
    ensure!(derived.key == schema.key, "derived key {:?}, catalog {:?}", derived.key, schema.key);
    Ok(())
}

/// Signedness, collations and labels are listed per kind of column in the table map; columns
/// of other kinds between them must not shift them (YEAR and BIT are not numeric there, ENUM
/// and SET are not character columns, MariaDB's JSON is).
#[tokio::test]
async fn optional_metadata_lines_up_with_columns_of_every_kind() -> Result<()> {
    let (mut conn, endpoint, db) = fresh_database("store_meta").await?;
    let start = ferry_mysql::position::current(&mut conn)
        .await?
        .ok_or_else(|| anyhow!("binlog is off on the source"))?;
    conn.query_drop(
        "CREATE TABLE mixed (y YEAR, u INT UNSIGNED, e ENUM('x','y''z') CHARACTER SET latin1, \
         c VARCHAR(5) CHARACTER SET latin1, bt BIT(3), s SMALLINT, st SET('p','q'), j JSON, \
         t TEXT CHARACTER SET utf8mb4, bl BLOB, dc DECIMAL(6,2) UNSIGNED, f FLOAT, b2 BIGINT UNSIGNED NOT NULL, \
         vb VARBINARY(8), PRIMARY KEY (b2, s)) ENGINE=InnoDB; \
         INSERT INTO mixed VALUES (2024, 1, 'y''z', 'abc', b'101', -2, 'p,q', '{}', 't', 'b', 1.5, 2.5, 7, 'v')",
    )
    .await?;
    let table = TableRef::new(&db, "mixed");
    let (schema, unsupported) = ferry_mysql::catalog::read_table(&mut conn, &table).await?;
    ensure!(unsupported.is_empty(), "unsupported columns: {unsupported:?}");
    let collations = ferry_mysql::catalog::collations(&mut conn).await?;
    let mut reader = Reader::open(&endpoint, reader_server_id(), &start.binlog, true).await?;
    let mut seen = 0;
    while let Some(ev) = reader.next().await {
        if let Event::Rows { table: t, columns, .. } = ev?.event {
            if t == table {
                table_map_describes(&schema, &columns, &collations)?;
                seen += 1;
            }
        }
    }
    conn.query_drop(format!("DROP DATABASE `{db}`")).await?;
    ensure!(seen == 1, "expected one row event, read {seen}");
    Ok(())
}

/// Every row of `all_types` as `SELECT` gives it (binary protocol, UTC), converted like the full copy.
async fn select_all(
    conn: &mut mysql_async::Conn,
    schema: &ferry_schemas::table::TableSchema,
) -> Result<Vec<Vec<SqlValue>>> {
    conn.query_drop("SET time_zone = '+00:00'").await?;
    let rows: Vec<Row> = conn.exec("SELECT * FROM all_types ORDER BY id", ()).await?;
    rows.into_iter()
        .map(|r| {
            schema
                .columns
                .iter()
                .zip(r.unwrap())
                .map(|(c, v)| from_mysql(&c.column_type, v).map_err(|e| anyhow!(e)))
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn every_type_round_trips_through_the_binlog_exactly() -> Result<()> {
    let (mut conn, endpoint, db) = fresh_database("store_golden").await?;
    let start = ferry_mysql::position::current(&mut conn)
        .await?
        .ok_or_else(|| anyhow!("binlog is off on the source"))?;
    conn.query_drop(all_types_sql()?).await?;
    conn.query_drop("UPDATE all_types SET vc = 'changed' WHERE id = 2; DELETE FROM all_types WHERE id = 3")
        .await?;

    let table = TableRef::new(&db, "all_types");
    let (schema, unsupported) = ferry_mysql::catalog::read_table(&mut conn, &table).await?;
    ensure!(unsupported.is_empty(), "unsupported columns: {unsupported:?}");
    let collations = ferry_mysql::catalog::collations(&mut conn).await?;

    let mut reader = Reader::open(&endpoint, reader_server_id(), &start.binlog, true).await?;
    let mut inserted: Vec<Vec<SqlValue>> = Vec::new();
    let mut updated = None;
    let mut deleted = None;
    let decode_row = |row: Vec<_>| -> Result<Vec<SqlValue>> {
        schema.columns.iter().zip(row).map(|(c, v)| decode(c, v).map_err(|e| anyhow!(e))).collect()
    };
    while let Some(ev) = reader.next().await {
        let ev = ev?;
        if let Event::Rows { table: t, op, rows, columns } = ev.event {
            if t != table {
                continue;
            }
            table_map_describes(&schema, &columns, &collations)?;
            for (before, after) in rows {
                match op {
                    ChangeOp::Insert => {
                        inserted.push(decode_row(after.ok_or_else(|| anyhow!("insert without image"))?)?)
                    }
                    ChangeOp::Update => {
                        updated = Some((
                            decode_row(before.unwrap_or_default())?,
                            decode_row(after.unwrap_or_default())?,
                        ))
                    }
                    ChangeOp::Delete => deleted = Some(decode_row(before.unwrap_or_default())?),
                }
            }
        }
    }

    // What SELECT says, with the same converter the full copy uses.
    let selected = select_all(&mut conn, &schema).await?;
    conn.query_drop(format!("DROP DATABASE `{db}`")).await?;

    ensure!(inserted.len() == 5, "expected 5 inserted rows, read {}", inserted.len());
    let (before, after) = updated.ok_or_else(|| anyhow!("no update read"))?;
    let deleted = deleted.ok_or_else(|| anyhow!("no delete read"))?;
    // Rows 1, 4, 5 are unchanged: binlog insert image == SELECT.
    for (i, id) in [(0usize, 1), (3, 4), (4, 5)] {
        let sel =
            selected.iter().find(|r| r[0] == SqlValue::Int(id)).ok_or_else(|| anyhow!("row {id} missing"))?;
        for (c, (a, b)) in schema.columns.iter().zip(inserted[i].iter().zip(sel)) {
            ensure!(a == b, "row {id}, column {}: binlog {a:?} vs SELECT {b:?}", c.name);
        }
    }
    // Row 2 was updated: its after image equals SELECT, its before image equals the insert.
    let sel2 = selected.iter().find(|r| r[0] == SqlValue::Int(2)).ok_or_else(|| anyhow!("row 2 missing"))?;
    ensure!(&after == sel2, "update after image differs from SELECT");
    ensure!(before == inserted[1], "update before image differs from the inserted row");
    ensure!(deleted == inserted[2], "delete before image differs from the inserted row");
    // The cases mysql_common decodes wrong on its own: signed MEDIUMINT minimum, YEAR 0000.
    let col = |name: &str| {
        schema.columns.iter().position(|c| c.name == name).ok_or_else(|| anyhow!("no column {name}"))
    };
    ensure!(
        inserted[0][col("mi")?] == SqlValue::Int(-8_388_608),
        "MEDIUMINT min: {:?}",
        inserted[0][col("mi")?]
    );
    ensure!(inserted[2][col("y")?] == SqlValue::Year(0), "YEAR 0000: {:?}", inserted[2][col("y")?]);
    Ok(())
}

#[tokio::test]
async fn binlog_transactions_assemble_with_exact_values() -> Result<()> {
    use ferry_store::assemble::{Assembler, Output};
    use ferry_store::schema_history::SchemaHistory;
    let (mut conn, endpoint, db) = fresh_database("store_asm").await?;
    let sql = all_types_sql()?;
    let (create, inserts) =
        sql.split_at(sql.find("-- minimum values").ok_or_else(|| anyhow!("scenario layout changed"))?);
    conn.query_drop(create).await?;
    let table = TableRef::new(&db, "all_types");
    let (schema, _) = ferry_mysql::catalog::read_table(&mut conn, &table).await?;
    let start = ferry_mysql::position::current(&mut conn)
        .await?
        .ok_or_else(|| anyhow!("binlog is off on the source"))?;
    let inserts = inserts.trim().trim_end_matches(';');
    conn.query_drop(format!(
        "START TRANSACTION; {inserts}; UPDATE all_types SET d2 = d2 + 1 WHERE id = 4; COMMIT"
    ))
    .await?;

    let mut history = SchemaHistory::default();
    history.record(&table, start.binlog.clone(), Some(schema.clone()))?;
    let mut reader = Reader::open(&endpoint, reader_server_id(), &start.binlog, true).await?;
    let objects = ferry_schemas::task::ObjectFilter { include: vec![db.clone()], exclude: vec![] };
    let mut assembler = Assembler::new(objects);
    let mut txns = Vec::new();
    while let Some(ev) = reader.next().await {
        if let Some(Output::Transaction { txn, end }) = assembler.push(ev?, &history)? {
            ensure!(end > start.binlog, "transaction end {end} not after the start {}", start.binlog);
            if !txn.changes.is_empty() {
                txns.push(txn);
            }
        }
    }
    let selected = select_all(&mut conn, &schema).await?;
    conn.query_drop(format!("DROP DATABASE `{db}`")).await?;

    ensure!(txns.len() == 1, "one source transaction, one message: got {}", txns.len());
    let txn = &txns[0];
    ensure!(txn.gtid.is_some() && txn.last_part && txn.tables.len() == 1, "{txn:?}");
    ensure!(txn.changes.len() == 6, "5 inserts and 1 update: {}", txn.changes.len());
    let mut expected: Vec<Vec<serde_json::Value>> =
        selected.into_iter().map(|r| r.into_iter().map(|v| v.to_json()).collect()).collect();
    // The final state of every row is its last image in the transaction.
    let mut last: std::collections::BTreeMap<i64, Vec<serde_json::Value>> = Default::default();
    for c in &txn.changes {
        let after = c.after.clone().ok_or_else(|| anyhow!("no after image"))?;
        last.insert(after[0].as_i64().unwrap_or_default(), after);
    }
    for (got, want) in last.values().zip(expected.iter_mut()) {
        for (col, (g, w)) in schema.columns.iter().zip(got.iter().zip(want.iter())) {
            ensure!(g == w, "column {}: binlog {g} vs SELECT {w}", col.name);
        }
    }
    ensure!(last.len() == expected.len(), "{} rows vs {}", last.len(), expected.len());
    eprintln!(
        "assembled: {} transaction(s), {} changes, {} rows compared",
        txns.len(),
        txn.changes.len(),
        last.len()
    );
    Ok(())
}
