//! Exact comparison of the rows of one key range, read from both sides.
//!
//! Values are compared as typed values read over the binary protocol: text byte for byte
//! (so a case-only change under a case-insensitive collation, or a trailing space that a PAD
//! SPACE collation ignores, is a difference), FLOAT and DOUBLE bit for bit, temporal values
//! with every fractional digit, DECIMAL digit for digit.

use ferry_schemas::check::{ColumnDiff, DiffKind, RowDiff};
use ferry_schemas::value::SqlValue;
use std::collections::BTreeMap;

pub type Row = Vec<SqlValue>;

fn json_row(r: &Row) -> Vec<serde_json::Value> {
    r.iter().map(SqlValue::to_json).collect()
}

fn key_of(r: &Row, key: &[usize]) -> Vec<serde_json::Value> {
    key.iter().map(|&i| r[i].to_json()).collect()
}

/// Differences between the source and target rows of the same key range.
pub fn keyed(names: &[String], key: &[usize], source: &[Row], target: &[Row]) -> Vec<RowDiff> {
    let index = |rows: &[Row]| -> BTreeMap<String, usize> {
        rows.iter()
            .enumerate()
            .map(|(i, r)| (serde_json::Value::Array(key_of(r, key)).to_string(), i))
            .collect()
    };
    let src = index(source);
    let tgt = index(target);
    let mut out = Vec::new();
    for (k, &i) in &src {
        let s = &source[i];
        match tgt.get(k) {
            None => out.push(RowDiff {
                kind: DiffKind::Missing,
                key: key_of(s, key),
                source_row: Some(json_row(s)),
                target_row: None,
                columns: vec![],
            }),
            Some(&j) => {
                let t = &target[j];
                let columns: Vec<ColumnDiff> = names
                    .iter()
                    .zip(s.iter().zip(t))
                    .filter(|(_, (a, b))| a != b)
                    .map(|(n, (a, b))| ColumnDiff {
                        column: n.clone(),
                        source: a.to_json(),
                        target: b.to_json(),
                    })
                    .collect();
                if !columns.is_empty() {
                    out.push(RowDiff {
                        kind: DiffKind::Changed,
                        key: key_of(s, key),
                        source_row: Some(json_row(s)),
                        target_row: None,
                        columns,
                    });
                }
            }
        }
    }
    for (k, &j) in &tgt {
        if !src.contains_key(k) {
            out.push(RowDiff {
                kind: DiffKind::Extra,
                key: key_of(&target[j], key),
                source_row: None,
                target_row: None,
                columns: vec![],
            });
        }
    }
    out
}

/// Differences between two multisets of rows (a table without a usable key): each surplus copy
/// on the source is missing, each surplus copy on the target is extra.
pub fn keyless(source: &[Row], target: &[Row]) -> Vec<RowDiff> {
    let mut counts: BTreeMap<String, (i64, Vec<serde_json::Value>)> = BTreeMap::new();
    for (rows, sign) in [(source, 1i64), (target, -1i64)] {
        for r in rows {
            let j = json_row(r);
            let e = counts.entry(serde_json::Value::Array(j.clone()).to_string()).or_insert((0, j));
            e.0 += sign;
        }
    }
    let mut out = Vec::new();
    for (_, (n, row)) in counts {
        for _ in 0..n.unsigned_abs() {
            out.push(if n > 0 {
                RowDiff {
                    kind: DiffKind::Missing,
                    key: vec![],
                    source_row: Some(row.clone()),
                    target_row: None,
                    columns: vec![],
                }
            } else {
                RowDiff {
                    kind: DiffKind::Extra,
                    key: vec![],
                    source_row: None,
                    target_row: Some(row.clone()),
                    columns: vec![],
                }
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, name: &str) -> Row {
        vec![SqlValue::Int(id), SqlValue::Text(name.into())]
    }

    #[test]
    fn finds_missing_extra_and_changed_rows_with_the_columns_that_differ() {
        let names = vec!["id".to_owned(), "name".to_owned()];
        let source = vec![row(1, "a"), row(2, "b"), row(3, "c ")];
        let target = vec![row(2, "b"), row(3, "c"), row(4, "d")];
        let d = keyed(&names, &[0], &source, &target);
        let kinds: Vec<(DiffKind, i64)> =
            d.iter().map(|r| (r.kind, r.key[0].as_i64().unwrap_or_default())).collect();
        assert_eq!(kinds, vec![(DiffKind::Missing, 1), (DiffKind::Changed, 3), (DiffKind::Extra, 4)]);
        assert_eq!(d[1].columns.len(), 1);
        assert_eq!(d[1].columns[0].column, "name");
        assert_eq!(d[1].columns[0].source, serde_json::json!("c "));
    }

    #[test]
    fn case_and_null_versus_empty_are_differences() {
        let names = vec!["id".to_owned(), "name".to_owned()];
        let d = keyed(&names, &[0], &[row(1, "Ann")], &[row(1, "ann")]);
        assert_eq!(d.len(), 1);
        let d = keyed(&names, &[0], &[vec![SqlValue::Int(1), SqlValue::Null]], &[row(1, "")]);
        assert_eq!(d[0].kind, DiffKind::Changed);
    }

    #[test]
    fn keyless_tables_compare_as_multisets() {
        let d = keyless(&[row(1, "a"), row(1, "a"), row(2, "b")], &[row(1, "a"), row(3, "c")]);
        let kinds: Vec<DiffKind> = d.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, vec![DiffKind::Missing, DiffKind::Missing, DiffKind::Extra]);
        assert_eq!(d[2].target_row, Some(vec![serde_json::json!(3), serde_json::json!("c")]));
    }
}
