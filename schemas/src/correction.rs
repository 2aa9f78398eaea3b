//! Correction SQL: the statements that make a target table equal to its source, written from a
//! table's verification result alone.
//!
//! Extra rows are deleted first, then missing and changed rows are written with `REPLACE`
//! (which also removes a target row colliding on another unique key). Deleting first matters
//! under a case-insensitive key: an extra `'ABC'` and a missing `'abc'` are the same key to the
//! server, and the delete must not remove the row the replace just wrote. Values are exact
//! literals ([`crate::literal`]), so the script does not depend on the session's `sql_mode`.

use crate::check::{DiffKind, RowDiff, TableCheck};
use crate::literal::push_literal;
use crate::table::quote_ident;
use crate::value::{SqlValue, ValueError};

/// One statement per differing row, deletes first, each ending with `;\n`.
pub fn statements(t: &TableCheck) -> Result<Vec<String>, ValueError> {
    let target = t.target.quoted();
    let cols: Vec<String> = t.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let mut out = Vec::new();
    for d in t.diffs.iter().filter(|d| d.kind == DiffKind::Extra) {
        out.push(format!("DELETE FROM {target} WHERE {} LIMIT 1;\n", delete_predicate(t, d)?));
    }
    for d in t.diffs.iter().filter(|d| d.kind != DiffKind::Extra) {
        let Some(row) = &d.source_row else { continue };
        let mut sql = format!("REPLACE INTO {target} ({}) VALUES (", cols.join(", "));
        for (i, (c, v)) in t.columns.iter().zip(row).enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            push_literal(&mut sql, &SqlValue::from_json(&c.column_type, v)?);
        }
        sql.push_str(");\n");
        out.push(sql);
    }
    Ok(out)
}

/// The whole script of a table, with a header saying what it does.
pub fn script(t: &TableCheck) -> Result<String, ValueError> {
    let statements = statements(t)?;
    let mut out = format!(
        "-- Ferry correction for {} -> {}: {} missing, {} extra, {} changed row(s)\n",
        t.source, t.target, t.missing, t.extra, t.changed
    );
    if t.truncated {
        out.push_str(
            "-- The report holds only part of the differing rows: verify again after running this.\n",
        );
    }
    if let Some(p) = &t.problem {
        out.push_str(&format!("-- Not compared row by row: {p}\n"));
    }
    for s in statements {
        out.push_str(&s);
    }
    Ok(out)
}

/// `key = value AND ...` for a keyed table; every column (`<=>`, NULL-safe) for a keyless one.
fn delete_predicate(t: &TableCheck, d: &RowDiff) -> Result<String, ValueError> {
    let (names, values): (Vec<&str>, &Vec<serde_json::Value>) = if t.key.is_empty() {
        (t.columns.iter().map(|c| c.name.as_str()).collect(), d.target_row.as_ref().unwrap_or(&d.key))
    } else {
        (t.key.iter().map(String::as_str).collect(), &d.key)
    };
    let mut terms = Vec::new();
    for (name, v) in names.iter().zip(values) {
        let ty =
            t.columns.iter().find(|c| c.name == *name).map(|c| &c.column_type).ok_or_else(|| ValueError {
                value: (*name).to_owned(),
                expected: "a compared column".into(),
            })?;
        let mut term = format!("{} <=> ", quote_ident(name));
        push_literal(&mut term, &SqlValue::from_json(ty, v)?);
        terms.push(term);
    }
    Ok(terms.join(" AND "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::full::BatchColumn;
    use crate::table::TableRef;
    use crate::value::ColumnType;
    use serde_json::json;

    fn table(diffs: Vec<RowDiff>) -> TableCheck {
        TableCheck {
            source: TableRef::new("shop", "users"),
            target: TableRef::new("shop2", "users"),
            columns: vec![
                BatchColumn { name: "id".into(), column_type: ColumnType::Int { bytes: 4, unsigned: false } },
                BatchColumn {
                    name: "name".into(),
                    column_type: ColumnType::Text { charset: "utf8mb4".into() },
                },
            ],
            key: vec!["id".into()],
            diffs,
            ..TableCheck::default()
        }
    }

    #[test]
    fn deletes_come_before_replaces_and_values_are_exact_literals() {
        let t = table(vec![
            RowDiff {
                kind: DiffKind::Missing,
                key: vec![json!(1)],
                source_row: Some(vec![json!(1), json!("a'b")]),
                target_row: None,
                columns: vec![],
            },
            RowDiff {
                kind: DiffKind::Extra,
                key: vec![json!(2)],
                source_row: None,
                target_row: None,
                columns: vec![],
            },
        ]);
        let s = statements(&t).expect("statements");
        assert_eq!(
            s,
            vec![
                "DELETE FROM `shop2`.`users` WHERE `id` <=> 2 LIMIT 1;\n".to_owned(),
                "REPLACE INTO `shop2`.`users` (`id`, `name`) VALUES (1, _utf8mb4 X'612762');\n".to_owned(),
            ]
        );
    }

    #[test]
    fn keyless_extra_rows_are_deleted_by_every_column() {
        let mut t = table(vec![RowDiff {
            kind: DiffKind::Extra,
            key: vec![],
            source_row: None,
            target_row: Some(vec![json!(3), json!(null)]),
            columns: vec![],
        }]);
        t.key.clear();
        let s = statements(&t).expect("statements");
        assert_eq!(s, vec!["DELETE FROM `shop2`.`users` WHERE `id` <=> 3 AND `name` <=> NULL LIMIT 1;\n"]);
    }
}
