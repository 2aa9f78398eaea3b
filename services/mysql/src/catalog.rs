//! The source catalog: which tables a task covers and their typed schema, read from
//! information_schema (works on MySQL 5.7/8.0 and MariaDB 10.x).

use crate::SourceError;
use ferry_schemas::table::{ColumnDef, KeyKind, TableRef, TableSchema};
use ferry_schemas::task::ObjectFilter;
use ferry_schemas::value::ColumnType;
use mysql_async::prelude::*;
use mysql_async::Conn;
use std::collections::{BTreeMap, HashMap};

const SYSTEM_SCHEMAS: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    Table,
    View,
    /// Anything else (sequences, system-versioned tables): refused at precheck.
    Other(String),
}

#[derive(Clone, Debug)]
pub struct CatalogObject {
    pub table: TableRef,
    pub kind: ObjectKind,
    pub estimated_rows: u64,
}

/// Base tables, views and other objects that the filter selects, in name order.
pub async fn list_objects(conn: &mut Conn, filter: &ObjectFilter) -> Result<Vec<CatalogObject>, SourceError> {
    let rows: Vec<(String, String, String, Option<u64>)> = conn
        .query("SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, TABLE_ROWS FROM information_schema.TABLES ORDER BY TABLE_SCHEMA, TABLE_NAME")
        .await
        .map_err(|e| SourceError::mysql("listing source tables", e))?;
    Ok(rows
        .into_iter()
        .filter(|(db, ..)| !SYSTEM_SCHEMAS.contains(&db.as_str()))
        .map(|(db, name, kind, rows)| CatalogObject {
            table: TableRef::new(db, name),
            kind: match kind.as_str() {
                "BASE TABLE" => ObjectKind::Table,
                "VIEW" => ObjectKind::View,
                other => ObjectKind::Other(other.to_owned()),
            },
            estimated_rows: rows.unwrap_or(0),
        })
        .filter(|o| filter.includes(&o.table))
        .collect())
}

/// A column the copy cannot carry exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedColumn {
    pub table: TableRef,
    pub column: String,
    pub sql_type: String,
}

impl UnsupportedColumn {
    pub const FIX: &'static str =
        "exclude the table in objects.exclude, or change the column type on the source";

    pub fn object(&self) -> String {
        format!("{}.{}", self.table, self.column)
    }

    pub fn message(&self) -> String {
        format!(
            "column {}.{} has type {}, which Ferry cannot copy exactly",
            self.table, self.column, self.sql_type
        )
    }
}

/// Every collation id the source knows, to its character set: table maps name character
/// columns' collations by id. MariaDB 10.10+ lists the ids of collations shared by several
/// character sets (the UCA 14.0.0 ones) in COLLATION_CHARACTER_SET_APPLICABILITY only; servers
/// without its ID column find them in COLLATIONS.
pub async fn collations(conn: &mut Conn) -> Result<HashMap<u16, String>, SourceError> {
    let listed: Vec<(u16, String)> = conn
        .query("SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID IS NOT NULL")
        .await
        .map_err(|e| SourceError::mysql("reading the source's collations", e))?;
    let shared: Vec<(u16, String)> = conn
        .query(
            "SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATION_CHARACTER_SET_APPLICABILITY \
             WHERE ID IS NOT NULL",
        )
        .await
        .unwrap_or_default();
    Ok(listed.into_iter().chain(shared).collect())
}

type ColumnRow =
    (String, String, String, String, Option<String>, Option<u64>, Option<u64>, Option<u64>, String);

/// Reads a table's schema. Columns of types Ferry cannot carry are returned separately.
pub async fn read_table(
    conn: &mut Conn,
    table: &TableRef,
) -> Result<(TableSchema, Vec<UnsupportedColumn>), SourceError> {
    let ctx = || format!("reading the schema of {table}");
    let cols: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, NUMERIC_PRECISION, \
             NUMERIC_SCALE, DATETIME_PRECISION, EXTRA FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (&table.database, &table.table),
        )
        .await
        .map_err(|e| SourceError::mysql(ctx(), e))?;
    let json_columns = mariadb_json_columns(conn, table).await;
    let mut columns = Vec::with_capacity(cols.len());
    let mut unsupported = Vec::new();
    for (name, data_type, column_type, nullable, charset, precision, scale, dt_precision, extra) in cols {
        let extra_up = extra.to_ascii_uppercase();
        let generated = extra_up.contains("VIRTUAL GENERATED")
            || extra_up.contains("STORED GENERATED")
            || extra_up.contains("PERSISTENT");
        let ty = if json_columns.contains(&name) {
            Some(ColumnType::Json)
        } else {
            map_type(&data_type.to_ascii_lowercase(), &column_type, charset, precision, scale, dt_precision)
        };
        match ty {
            Some(column_type_) => columns.push(ColumnDef {
                name,
                sql_type: column_type,
                column_type: column_type_,
                nullable: nullable == "YES",
                generated,
            }),
            None => unsupported.push(UnsupportedColumn {
                table: table.clone(),
                column: name,
                sql_type: column_type,
            }),
        }
    }
    let (key_kind, key, unique_keys) = read_keys(conn, table, &columns).await?;
    Ok((TableSchema { table: table.clone(), columns, key_kind, key, unique_keys }, unsupported))
}

/// MariaDB's JSON is LONGTEXT with a `json_valid(col)` check; MySQL has a real type (and no
/// TABLE_NAME in CHECK_CONSTRAINTS, so the query fails there and finds nothing).
async fn mariadb_json_columns(conn: &mut Conn, table: &TableRef) -> Vec<String> {
    let rows: Result<Vec<(String, String)>, _> = conn
        .exec(
            "SELECT CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
            (&table.database, &table.table),
        )
        .await;
    rows.unwrap_or_default()
        .into_iter()
        .filter(|(name, clause)| {
            clause.replace(' ', "") == format!("json_valid(`{}`)", name.replace('`', "``"))
        })
        .map(|(name, _)| name)
        .collect()
}

fn map_type(
    data_type: &str,
    column_type: &str,
    charset: Option<String>,
    precision: Option<u64>,
    scale: Option<u64>,
    dt_precision: Option<u64>,
) -> Option<ColumnType> {
    let unsigned = column_type.to_ascii_lowercase().contains("unsigned");
    let fsp = dt_precision.unwrap_or(0).min(6) as u8;
    let int = |bytes| Some(ColumnType::Int { bytes, unsigned });
    match data_type {
        "tinyint" => int(1),
        "smallint" => int(2),
        "mediumint" => int(3),
        "int" | "integer" => int(4),
        "bigint" => int(8),
        "decimal" | "numeric" => Some(ColumnType::Decimal {
            precision: precision.unwrap_or(10).min(65) as u8,
            scale: scale.unwrap_or(0).min(38) as u8,
        }),
        "float" => Some(ColumnType::Float),
        "double" | "real" | "double precision" => Some(ColumnType::Double),
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
            Some(ColumnType::Text { charset: charset.unwrap_or_else(|| "utf8mb4".into()) })
        }
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Some(ColumnType::Binary),
        "date" => Some(ColumnType::Date),
        "datetime" => Some(ColumnType::DateTime { fsp }),
        "timestamp" => Some(ColumnType::Timestamp { fsp }),
        "time" => Some(ColumnType::Time { fsp }),
        "year" => Some(ColumnType::Year),
        "enum" => Some(ColumnType::Enum { labels: parse_labels(column_type) }),
        "set" => Some(ColumnType::Set { labels: parse_labels(column_type) }),
        "bit" => Some(ColumnType::Bit { width: precision.unwrap_or(1).min(64) as u8 }),
        "json" => Some(ColumnType::Json),
        _ => None,
    }
}

/// Labels of `enum('a','b''c')` / `set(...)`, quotes undone.
pub fn parse_labels(column_type: &str) -> Vec<String> {
    let Some(start) = column_type.find('(') else { return Vec::new() };
    let body = &column_type[start + 1..column_type.rfind(')').unwrap_or(column_type.len())];
    let mut labels = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut label = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(n) = chars.next() {
                        label.push(n);
                    }
                }
                other => label.push(other),
            }
        }
        labels.push(label);
    }
    labels
}

type KeyInfo = (KeyKind, Vec<String>, Vec<Vec<String>>);

async fn read_keys(conn: &mut Conn, table: &TableRef, columns: &[ColumnDef]) -> Result<KeyInfo, SourceError> {
    let rows: Vec<(String, i64, String, Option<u64>)> = conn
        .exec(
            "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (&table.database, &table.table),
        )
        .await
        .map_err(|e| SourceError::mysql(format!("reading the keys of {table}"), e))?;
    let mut unique: BTreeMap<String, (Vec<String>, bool)> = BTreeMap::new();
    for (index, non_unique, column, sub_part) in rows {
        if non_unique != 0 {
            continue;
        }
        let entry = unique.entry(index).or_insert_with(|| (Vec::new(), true));
        entry.0.push(column);
        entry.1 &= sub_part.is_none();
    }
    let not_null = |cols: &[String]| cols.iter().all(|c| columns.iter().any(|d| &d.name == c && !d.nullable));
    let unique_keys: Vec<Vec<String>> = unique.values().map(|(c, _)| c.clone()).collect();
    if let Some((cols, _)) = unique.get("PRIMARY") {
        return Ok((KeyKind::Primary, cols.clone(), unique_keys));
    }
    let candidate = unique.values().find(|(cols, whole)| *whole && not_null(cols));
    Ok(match candidate {
        Some((cols, _)) => (KeyKind::UniqueNotNull, cols.clone(), unique_keys),
        None => (KeyKind::None, Vec::new(), unique_keys),
    })
}

/// `SHOW CREATE TABLE` text.
pub async fn show_create_table(conn: &mut Conn, table: &TableRef) -> Result<String, SourceError> {
    let row: Option<(String, String)> = conn
        .query_first(format!("SHOW CREATE TABLE {}", table.quoted()))
        .await
        .map_err(|e| SourceError::mysql(format!("reading the definition of {table}"), e))?;
    row.map(|(_, ddl)| ddl)
        .ok_or_else(|| SourceError::Unsupported(format!("SHOW CREATE TABLE {table} returned nothing")))
}

/// `SHOW CREATE VIEW` text.
pub async fn show_create_view(conn: &mut Conn, view: &TableRef) -> Result<String, SourceError> {
    let row: Option<mysql_async::Row> = conn
        .query_first(format!("SHOW CREATE VIEW {}", view.quoted()))
        .await
        .map_err(|e| SourceError::mysql(format!("reading the definition of view {view}"), e))?;
    row.and_then(|r| r.get::<String, _>(1))
        .ok_or_else(|| SourceError::Unsupported(format!("SHOW CREATE VIEW {view} returned nothing")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_labels_unquote() {
        assert_eq!(parse_labels("enum('a','b''c','d,e')"), vec!["a", "b'c", "d,e"]);
        assert_eq!(parse_labels("set('x','y')"), vec!["x", "y"]);
        assert_eq!(parse_labels("enum('')"), vec![""]);
    }

    #[test]
    fn spatial_types_are_unsupported() {
        assert_eq!(map_type("geometry", "geometry", None, None, None, None), None);
        assert_eq!(
            map_type("int", "int(10) unsigned", None, Some(10), Some(0), None),
            Some(ColumnType::Int { bytes: 4, unsigned: true })
        );
    }
}
