//! The schema rows were written under, when it is not the one the history recorded.
//!
//! The history records a table's schema from the source's catalog when the store reads the DDL
//! that changed it. A store behind the source across two DDLs of one table (down, or catching
//! up) reads the catalog as the *second* left it, so rows written between the two do not match
//! the version recorded for the first: `binlog::columns` finds that out row event by row
//! event. When the table map describes every column (`binlog_row_metadata=FULL`: names,
//! signedness, collations, ENUM/SET labels), those rows are decoded with the schema it
//! describes instead:
//! - each column as recorded when the recorded column of that name agrees with whatever the
//!   table map says of it (its SQL type, nullability and generated flag are kept), otherwise as
//!   the table map says;
//! - the identifying key and the unique keys as recorded where all their columns are still
//!   there; the key otherwise the table map's primary key (if it has one).
//!
//! Without FULL the rows cannot be decoded safely and capture stops (the caller's report names
//! the fix). Nothing here is stored: the same table map and recorded version give the same
//! schema, so a store restarted before those rows derives again what it published before.

use crate::binlog::columns::{BinlogColumn, Collations, MappedColumn, BINARY_COLLATION};
use ferry_schemas::table::{ColumnDef, KeyKind, TableSchema};
use ferry_schemas::value::ColumnType;

/// The schema `columns` (a row event's table map) describe, as close to `recorded` as they
/// allow; `Err` says what the table map lacks.
pub fn as_written(
    recorded: &TableSchema,
    columns: &[MappedColumn],
    collations: &Collations,
) -> Result<TableSchema, String> {
    let defs = columns
        .iter()
        .enumerate()
        .map(|(i, c)| column_def(recorded, c, collations).ok_or_else(|| lacking(i, c)))
        .collect::<Result<Vec<_>, _>>()?;
    let present = |key: &[String]| key.iter().all(|k| defs.iter().any(|d| d.name == *k));
    let unique_keys: Vec<Vec<String>> = recorded.unique_keys.iter().filter(|k| present(k)).cloned().collect();
    let (key_kind, key) =
        if recorded.key_kind != KeyKind::None && !recorded.key.is_empty() && present(&recorded.key) {
            (recorded.key_kind.clone(), recorded.key.clone())
        } else {
            let mut parts: Vec<(usize, &str)> =
                columns.iter().zip(&defs).filter_map(|(c, d)| Some((c.key_part?, d.name.as_str()))).collect();
            parts.sort_unstable();
            let key: Vec<String> = parts.into_iter().map(|(_, n)| n.to_owned()).collect();
            (if key.is_empty() { KeyKind::None } else { KeyKind::Primary }, key)
        };
    let mut unique_keys = unique_keys;
    if key_kind == KeyKind::Primary && !unique_keys.contains(&key) {
        unique_keys.insert(0, key.clone());
    }
    Ok(TableSchema { table: recorded.table.clone(), columns: defs, key_kind, key, unique_keys })
}

/// The column as recorded when the recorded column of its name agrees with the table map,
/// else as the table map describes it; `None` when it does not describe enough.
fn column_def(recorded: &TableSchema, c: &MappedColumn, collations: &Collations) -> Option<ColumnDef> {
    let name = c.name.as_ref()?;
    let same = recorded.columns.iter().find(|d| d.name.eq_ignore_ascii_case(name));
    if let Some(d) = same.filter(|d| c.mismatch(d, collations).is_none()) {
        return Some(d.clone());
    }
    let column_type = column_type(c, collations)?;
    Some(ColumnDef {
        name: name.clone(),
        sql_type: same.map(|d| d.sql_type.clone()).unwrap_or_default(),
        column_type,
        nullable: c.nullable,
        generated: false,
    })
}

/// The column type the table map describes, `None` where it lacks what the type needs.
fn column_type(c: &MappedColumn, collations: &Collations) -> Option<ColumnType> {
    let labels = || c.labels.clone();
    Some(match c.binlog {
        BinlogColumn::Int(bytes) => ColumnType::Int { bytes, unsigned: c.unsigned? },
        BinlogColumn::Decimal { precision, scale } => ColumnType::Decimal { precision, scale },
        BinlogColumn::Float => ColumnType::Float,
        BinlogColumn::Double => ColumnType::Double,
        BinlogColumn::String | BinlogColumn::Blob => match c.collation? {
            BINARY_COLLATION => ColumnType::Binary,
            _ => ColumnType::Text { charset: c.charset(collations)?.to_owned() },
        },
        BinlogColumn::Json => ColumnType::Json,
        BinlogColumn::Date => ColumnType::Date,
        BinlogColumn::DateTime(fsp) => ColumnType::DateTime { fsp: fsp? },
        BinlogColumn::Timestamp(fsp) => ColumnType::Timestamp { fsp: fsp? },
        BinlogColumn::Time(fsp) => ColumnType::Time { fsp: fsp? },
        BinlogColumn::Year => ColumnType::Year,
        BinlogColumn::Enum => ColumnType::Enum { labels: labels()? },
        BinlogColumn::Set => ColumnType::Set { labels: labels()? },
        BinlogColumn::Bit { width } => ColumnType::Bit { width: u8::try_from(width).ok()? },
        BinlogColumn::Other(_) => return None,
    })
}

fn lacking(i: usize, c: &MappedColumn) -> String {
    let what = match (&c.name, &c.binlog) {
        (None, _) => "its name",
        (_, BinlogColumn::Int(_)) => "its signedness",
        (_, BinlogColumn::String | BinlogColumn::Blob) => "its character set",
        (_, BinlogColumn::Enum | BinlogColumn::Set) => "its labels",
        (_, BinlogColumn::Other(_)) => "a type Ferry carries",
        _ => "its fractional seconds (an old temporal format)",
    };
    format!(
        "the binlog's table map does not give column {} {what}",
        c.name.clone().unwrap_or_else(|| format!("#{}", i + 1))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_schemas::table::TableRef;

    fn def(name: &str, column_type: ColumnType, sql_type: &str) -> ColumnDef {
        ColumnDef {
            name: name.into(),
            sql_type: sql_type.into(),
            column_type,
            nullable: false,
            generated: false,
        }
    }
    fn int(unsigned: bool) -> ColumnType {
        ColumnType::Int { bytes: 4, unsigned }
    }
    fn mapped(name: &str, binlog: BinlogColumn) -> MappedColumn {
        MappedColumn {
            name: Some(name.into()),
            unsigned: matches!(binlog, BinlogColumn::Int(_)).then_some(false),
            ..MappedColumn::from(binlog)
        }
    }
    fn collations() -> Collations {
        [(8, "latin1"), (45, "utf8mb4"), (63, "binary")].into_iter().map(|(i, c)| (i, c.to_owned())).collect()
    }
    fn recorded() -> TableSchema {
        TableSchema {
            table: TableRef::new("db", "t"),
            columns: vec![
                def("id", int(false), "int(11)"),
                def("v", int(false), "int(11)"),
                def("w", ColumnType::Text { charset: "utf8mb4".into() }, "varchar(20)"),
            ],
            key_kind: KeyKind::Primary,
            key: vec!["id".into()],
            unique_keys: vec![vec!["id".into()], vec!["w".into()]],
        }
    }

    #[test]
    fn columns_that_still_fit_keep_their_recorded_definition() {
        let rec = recorded();
        // Between two DDLs the store missed: v was BIGINT and w in latin1.
        let w = MappedColumn { collation: Some(8), ..mapped("w", BinlogColumn::String) };
        let cols = [mapped("id", BinlogColumn::Int(4)), mapped("v", BinlogColumn::Int(8)), w];
        let s = as_written(&rec, &cols, &collations()).unwrap();
        assert_eq!(s.columns[0], rec.columns[0]);
        assert_eq!(s.columns[1].column_type, ColumnType::Int { bytes: 8, unsigned: false });
        assert_eq!(s.columns[1].sql_type, "int(11)", "the recorded SQL type is kept, it is only informative");
        assert_eq!(s.columns[2].column_type, ColumnType::Text { charset: "latin1".into() });
        assert_eq!((s.key_kind, s.key, s.unique_keys), (rec.key_kind, rec.key, rec.unique_keys));
    }

    #[test]
    fn renamed_and_dropped_columns_follow_the_table_map() {
        let rec = recorded();
        // id renamed to pk and w dropped in between: neither key survives, the table map's
        // primary key takes over; v and w swapped names.
        let pk = MappedColumn { key_part: Some(0), ..mapped("pk", BinlogColumn::Int(4)) };
        let u = MappedColumn { unsigned: Some(true), ..mapped("u", BinlogColumn::Int(4)) };
        let s = as_written(&rec, &[pk, mapped("v", BinlogColumn::Int(4)), u], &collations()).unwrap();
        let names: Vec<&str> = s.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["pk", "v", "u"]);
        assert_eq!(s.columns[2].column_type, int(true));
        assert_eq!((s.key_kind, s.key.clone()), (KeyKind::Primary, vec!["pk".to_owned()]));
        assert_eq!(s.unique_keys, vec![s.key]);
        // No primary key in the table map either: the rows have no identifying key.
        let s = as_written(&rec, &[mapped("a", BinlogColumn::Int(4))], &collations()).unwrap();
        assert_eq!((s.key_kind, s.key.len(), s.unique_keys.len()), (KeyKind::None, 0, 0));
    }

    #[test]
    fn without_full_metadata_nothing_is_derived() {
        let rec = recorded();
        let unnamed = MappedColumn::from(BinlogColumn::Int(8));
        let err = as_written(&rec, &[unnamed], &collations()).unwrap_err();
        assert!(err.contains("column #1 its name"), "{err}");
        // What the table map leaves out is taken from the recorded column of the same name,
        // but a column the history never saw has nothing to take it from.
        let no_charset = mapped("w", BinlogColumn::String);
        let s = as_written(&rec, &[mapped("id", BinlogColumn::Int(4)), no_charset], &collations()).unwrap();
        assert_eq!(s.columns[1], rec.columns[2]);
        let no_charset = mapped("x", BinlogColumn::String);
        let err =
            as_written(&rec, &[mapped("id", BinlogColumn::Int(4)), no_charset], &collations()).unwrap_err();
        assert!(err.contains("column x its character set"), "{err}");
        let no_labels = mapped("e", BinlogColumn::Enum);
        assert!(as_written(&rec, &[no_labels], &collations()).unwrap_err().contains("its labels"));
    }
}
