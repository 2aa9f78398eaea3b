//! A source table and its target table, made comparable: the compared columns, the key the
//! chunks are cut by, and the statements of each side. A target whose structure cannot be
//! compared (table or column missing, a column of another type) is a finding of its own.

use crate::error::{CheckError, Side};
use crate::sql::TableSql;
use ferry_mysql::catalog;
use ferry_schemas::full::BatchColumn;
use ferry_schemas::table::{KeyKind, TableRef, TableSchema};
use ferry_schemas::value::ColumnType;
use mysql_async::prelude::*;
use mysql_async::Conn;

pub struct TablePair {
    pub source: TableRef,
    pub target: TableRef,
    pub columns: Vec<BatchColumn>,
    /// Key column names (empty: keyless, compared as a whole).
    pub key: Vec<String>,
    pub src: TableSql,
    pub tgt: TableSql,
}

/// Either a comparable pair or the reason the target's structure cannot be compared.
pub enum Pairing {
    Pair(Box<TablePair>),
    Problem(String),
}

/// The row hash function both servers have: CRC32C (MariaDB 10.8+) is cheaper than CRC32.
pub async fn hash_function(source: &mut Conn, target: &mut Conn) -> &'static str {
    const PROBE: &str = "SELECT CRC32C('')";
    if source.query_drop(PROBE).await.is_ok() && target.query_drop(PROBE).await.is_ok() {
        "CRC32C"
    } else {
        "CRC32"
    }
}

pub async fn pair(
    source: &mut Conn,
    target: &mut Conn,
    src_table: &TableRef,
    tgt_table: &TableRef,
    hash_fn: &'static str,
) -> Result<Pairing, CheckError> {
    let (src_schema, unsupported) = catalog::read_table(source, src_table)
        .await
        .map_err(|error| CheckError::Db { side: Side::Source, error })?;
    if let Some(u) = unsupported.first() {
        return Ok(Pairing::Problem(u.message()));
    }
    let (tgt_schema, _) = catalog::read_table(target, tgt_table)
        .await
        .map_err(|error| CheckError::Db { side: Side::Target, error })?;
    if tgt_schema.columns.is_empty() {
        return Ok(Pairing::Problem(format!("table {tgt_table} does not exist on the target")));
    }
    Ok(match build(&src_schema, &tgt_schema, tgt_table, hash_fn) {
        Ok(p) => Pairing::Pair(Box::new(p)),
        Err(problem) => Pairing::Problem(problem),
    })
}

/// Same type for comparison purposes: text of any character set compares as utf8mb4.
fn same_type(a: &ColumnType, b: &ColumnType) -> bool {
    match (a, b) {
        (ColumnType::Text { .. }, ColumnType::Text { .. }) => true,
        _ => a == b,
    }
}

fn build(
    src: &TableSchema,
    tgt: &TableSchema,
    tgt_table: &TableRef,
    hash_fn: &'static str,
) -> Result<TablePair, String> {
    let mut columns = Vec::new();
    let mut convert = Vec::new();
    let mut nullable = Vec::new();
    for c in src.stored_columns() {
        let Some(t) = tgt.column(&c.name).filter(|t| !t.generated) else {
            return Err(format!("column {} is missing on the target table {tgt_table}", c.name));
        };
        if !same_type(&c.column_type, &t.column_type) {
            return Err(format!(
                "column {} is {} on the source but {} on the target",
                c.name, c.sql_type, t.sql_type
            ));
        }
        convert.push(c.column_type != t.column_type);
        nullable.push(c.nullable || t.nullable);
        columns.push(BatchColumn { name: c.name.clone(), column_type: c.column_type.clone() });
    }
    let key: Vec<String> = if src.key_kind == KeyKind::None { Vec::new() } else { src.key.clone() };
    let key_pos: Vec<usize> = key
        .iter()
        .map(|k| {
            columns.iter().position(|c| &c.name == k).ok_or_else(|| format!("key column {k} is not stored"))
        })
        .collect::<Result<_, _>>()?;
    let side = |table: String, ty: Vec<(String, ColumnType)>| TableSql {
        table,
        columns: ty,
        key: key_pos.clone(),
        convert: convert.clone(),
        nullable: nullable.clone(),
        hash_fn,
    };
    let src_cols: Vec<(String, ColumnType)> =
        columns.iter().map(|c| (c.name.clone(), c.column_type.clone())).collect();
    let tgt_cols: Vec<(String, ColumnType)> = src_cols
        .iter()
        .map(|(n, _)| (n.clone(), tgt.column(n).map(|c| c.column_type.clone()).unwrap_or(ColumnType::Binary)))
        .collect();
    Ok(TablePair {
        source: src.table.clone(),
        target: tgt_table.clone(),
        src: side(src.table.quoted(), src_cols),
        tgt: side(tgt_table.quoted(), tgt_cols),
        columns,
        key,
    })
}
