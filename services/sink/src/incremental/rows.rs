//! Row changes of one source transaction as target statements, in safe or normal mode.
//!
//! Normal mode states what the source did and checks the target agrees: `INSERT` (a duplicate
//! key means the target diverged), `UPDATE ... WHERE key` and `DELETE ... WHERE key` that must
//! match a row. Safe mode (the P0..P1 window replayed over the full copy) is idempotent:
//! inserts and updates write the whole after-image with `REPLACE` (which also removes any row
//! colliding on a unique key; every later state of such a row is still ahead in the log), an
//! update that moves a key deletes the old key first, and deletes remove by key whether or not
//! the row is there. Consecutive inserts (or safe-mode writes) to one table become one
//! multi-row statement; order between changes is otherwise kept. Statements go into a
//! [`Script`] with their checks and are sent many per round trip.

use super::script::{Check, Script};
use crate::error::definite;
use ferry_kit::consume::Failure;
use ferry_schemas::cdc::{ChangeOp, RowChange, TableVersion, Transaction};
use ferry_schemas::literal::push_literal;
use ferry_schemas::table::quote_ident;
use ferry_schemas::value::SqlValue;
use serde_json::Value as Json;

/// What went wrong with a change, before it is turned into an operator report.
pub enum RowError {
    Target(sqlx::Error, String),
    Diverged(String),
    Bad(Failure),
}

pub(super) struct Shape<'a> {
    pub tv: &'a TableVersion,
    /// Columns written (generated ones excluded), by index into the row image.
    pub write: Vec<usize>,
    /// Columns a row is found by: the key, or every written column for a keyless table.
    pub find: Vec<usize>,
    pub keyless: bool,
}

impl<'a> Shape<'a> {
    pub fn new(tv: &'a TableVersion) -> Self {
        let write: Vec<usize> =
            (0..tv.columns.len()).filter(|i| !tv.generated.contains(&tv.columns[*i].name)).collect();
        let find: Vec<usize> =
            tv.key.iter().filter_map(|k| tv.columns.iter().position(|c| &c.name == k)).collect();
        let keyless = find.is_empty();
        Self { tv, find: if keyless { write.clone() } else { find }, write, keyless }
    }

    /// Whether the table has a unique key besides the one rows are found by.
    pub fn other_unique_keys(&self) -> bool {
        self.tv.unique_keys.iter().any(|u| *u != self.tv.key)
    }

    /// `(a, b, c)`: the written columns.
    fn column_list(&self) -> String {
        let names: Vec<String> = self.write.iter().map(|i| quote_ident(&self.tv.columns[*i].name)).collect();
        format!("({})", names.join(", "))
    }
}

fn values(tv: &TableVersion, image: &[Json]) -> Result<Vec<SqlValue>, RowError> {
    if image.len() != tv.columns.len() {
        return Err(RowError::Bad(definite(
            "malformed_message",
            &tv.table.to_string(),
            format!("a row image has {} values for {} columns", image.len(), tv.columns.len()),
            "report this",
        )));
    }
    image
        .iter()
        .zip(&tv.columns)
        .map(|(v, c)| {
            SqlValue::from_json(&c.column_type, v).map_err(|e| {
                RowError::Bad(definite(
                    "bad_value",
                    &format!("{}.{}", tv.table, c.name),
                    e.to_string(),
                    "report this",
                ))
            })
        })
        .collect()
}

/// The values of a change's before or after image.
pub(super) fn column_values(
    tv: &TableVersion,
    change: &RowChange,
    after: bool,
) -> Result<Vec<SqlValue>, RowError> {
    values(tv, image(change, after)?)
}

fn image(change: &RowChange, after: bool) -> Result<&[Json], RowError> {
    let img = if after { change.after.as_deref() } else { change.before.as_deref() };
    img.ok_or_else(|| {
        RowError::Bad(definite(
            "malformed_message",
            "row change",
            format!("a {:?} change lacks its {} image", change.op, if after { "after" } else { "before" }),
            "report this",
        ))
    })
}

fn key_of(shape: &Shape<'_>, row: &[SqlValue]) -> Vec<SqlValue> {
    shape.find.iter().map(|i| row[*i].clone()).collect()
}

/// Rows per multi-row INSERT/REPLACE (and keys per `DELETE ... IN`, see `net`).
pub(super) const ROWS_PER_STATEMENT: usize = 500;

/// Appends the transaction's changes to `script`. Returns the rows changed.
pub fn plan(script: &mut Script, txn: &Transaction, safe: bool) -> Result<u64, RowError> {
    let mut i = 0;
    let mut rows = 0u64;
    while i < txn.changes.len() {
        let change = &txn.changes[i];
        let Some(tv) = txn.tables.get(change.table as usize) else {
            return Err(RowError::Bad(definite(
                "malformed_message",
                "transaction",
                format!("a change refers to table #{} of {}", change.table, txn.tables.len()),
                "report this",
            )));
        };
        let shape = Shape::new(tv);
        // A run of consecutive changes that become one multi-row write.
        let batchable = |c: &RowChange| {
            c.table == change.table
                && match c.op {
                    ChangeOp::Insert => true,
                    ChangeOp::Update => safe && !shape.keyless && !key_moves(&shape, c),
                    ChangeOp::Delete => false,
                }
        };
        if batchable(change) && (change.op == ChangeOp::Insert || safe) {
            let mut j = i;
            let mut batch = Vec::new();
            while j < txn.changes.len()
                && batchable(&txn.changes[j])
                && (safe || txn.changes[j].op == ChangeOp::Insert)
            {
                let all = values(tv, image(&txn.changes[j], true)?)?;
                batch.push(shape.write.iter().map(|k| all[*k].clone()).collect::<Vec<_>>());
                j += 1;
            }
            let verb = if safe && !shape.keyless { "REPLACE" } else { "INSERT" };
            write_rows(script, &shape, verb, &batch, !safe);
            rows += batch.len() as u64;
            i = j;
            continue;
        }
        match change.op {
            ChangeOp::Update if safe => {
                let before = values(tv, image(change, false)?)?;
                let after = values(tv, image(change, true)?)?;
                if !shape.keyless {
                    delete(script, &shape, &key_of(&shape, &before), false);
                    let row: Vec<SqlValue> = shape.write.iter().map(|k| after[*k].clone()).collect();
                    write_rows(script, &shape, "REPLACE", std::slice::from_ref(&row), false);
                } else {
                    update(script, &shape, &before, &after, false);
                }
            }
            ChangeOp::Update => {
                let before = values(tv, image(change, false)?)?;
                let after = values(tv, image(change, true)?)?;
                update(script, &shape, &before, &after, true);
            }
            ChangeOp::Delete => {
                let before = values(tv, image(change, false)?)?;
                delete(script, &shape, &key_of(&shape, &before), !safe);
            }
            ChangeOp::Insert => unreachable_insert()?,
        }
        rows += 1;
        i += 1;
    }
    Ok(rows)
}

/// Inserts are always batched above; reaching here would be a logic error, reported as such.
fn unreachable_insert() -> Result<(), RowError> {
    Err(RowError::Bad(definite("internal", "row change", "an insert was not batched".into(), "report this")))
}

fn key_moves(shape: &Shape<'_>, c: &RowChange) -> bool {
    match (&c.before, &c.after) {
        (Some(b), Some(a)) => shape.find.iter().any(|i| b.get(*i) != a.get(*i)),
        _ => true,
    }
}

/// `verb INTO table (cols) VALUES (..), ...`; in normal mode a duplicate key is divergence.
pub(super) fn write_rows(
    script: &mut Script,
    shape: &Shape<'_>,
    verb: &str,
    rows: &[Vec<SqlValue>],
    strict: bool,
) {
    let table = &shape.tv.table;
    write_checked_rows(script, shape, verb, rows, |_| {
        if strict {
            Check::NoDuplicate(format!("insert into {table} hit an existing row with the same key"))
        } else {
            Check::Nothing
        }
    });
}

/// Like [`write_rows`], with `check(rows in the statement)` for each statement.
pub(super) fn write_checked_rows(
    script: &mut Script,
    shape: &Shape<'_>,
    verb: &str,
    rows: &[Vec<SqlValue>],
    check: impl Fn(usize) -> Check,
) {
    let table = &shape.tv.table;
    let head = format!("{verb} INTO {} {} VALUES ", table.quoted(), shape.column_list());
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut sql = head.clone();
        for (n, row) in chunk.iter().enumerate() {
            sql.push_str(if n == 0 { "(" } else { ", (" });
            for (k, v) in row.iter().enumerate() {
                if k > 0 {
                    sql.push_str(", ");
                }
                push_literal(&mut sql, v);
            }
            sql.push(')');
        }
        script.push(&sql, format!("{verb} INTO {table}"), check(chunk.len()));
    }
}

fn push_where(sql: &mut String, shape: &Shape<'_>, find: &[SqlValue]) {
    sql.push_str(" WHERE ");
    for (n, (idx, v)) in shape.find.iter().zip(find).enumerate() {
        if n > 0 {
            sql.push_str(" AND ");
        }
        sql.push_str(&quote_ident(&shape.tv.columns[*idx].name));
        // `<=>` matches NULL too (keyless tables compare every column).
        sql.push_str(" <=> ");
        push_literal(sql, v);
    }
    if shape.keyless {
        sql.push_str(" LIMIT 1");
    }
}

fn delete(script: &mut Script, shape: &Shape<'_>, find: &[SqlValue], must_match: bool) {
    let table = &shape.tv.table;
    let mut sql = format!("DELETE FROM {}", table.quoted());
    push_where(&mut sql, shape, find);
    let check = if must_match {
        Check::MustMatch(format!("the row to delete from {table} is not in the target"))
    } else {
        Check::Nothing
    };
    script.push(&sql, format!("DELETE FROM {table}"), check);
}

fn update(script: &mut Script, shape: &Shape<'_>, before: &[SqlValue], after: &[SqlValue], must_match: bool) {
    let table = &shape.tv.table;
    let find = key_of(shape, before);
    let mut sql = format!("UPDATE {} SET ", table.quoted());
    for (n, idx) in shape.write.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&quote_ident(&shape.tv.columns[*idx].name));
        sql.push_str(" = ");
        push_literal(&mut sql, &after[*idx]);
    }
    push_where(&mut sql, shape, &find);
    let check = if must_match {
        Check::MustMatch(format!("the row to update in {table} is not in the target"))
    } else {
        Check::Nothing
    };
    script.push(&sql, format!("UPDATE {table}"), check);
}
