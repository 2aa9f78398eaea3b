//! Row changes of one source transaction as target statements, in safe or normal mode.
//!
//! Normal mode states what the source did and checks the target agrees: `INSERT` (a duplicate
//! key means the target diverged), `UPDATE ... WHERE key` and `DELETE ... WHERE key` that must
//! match a row. Safe mode (the P0..P1 window replayed over the full copy) is idempotent:
//! inserts and updates write the whole after-image with `REPLACE` (which also removes any row
//! colliding on a unique key; every later state of such a row is still ahead in the log), an
//! update that moves a key deletes the old key first, and deletes remove by key whether or not
//! the row is there. Consecutive inserts (or safe-mode writes) to one table become one
//! multi-row statement; order between changes is otherwise kept. Statements are prepared once
//! per connection and shape (sqlx's statement cache): a row statement costs one round trip.

use crate::error::definite;
use crate::full::bind::{self, push_value};
use ferry_kit::consume::Failure;
use ferry_schemas::cdc::{ChangeOp, RowChange, TableVersion, Transaction};
use ferry_schemas::full::BatchColumn;
use ferry_schemas::table::quote_ident;
use ferry_schemas::value::SqlValue;
use serde_json::Value as Json;
use sqlx::mysql::MySql;
use sqlx::{MySqlConnection, QueryBuilder};

/// What went wrong with a change, before it is turned into an operator report.
pub enum RowError {
    Target(sqlx::Error, String),
    Diverged(String),
    Bad(Failure),
}

struct Shape<'a> {
    tv: &'a TableVersion,
    /// Columns written (generated ones excluded), by index into the row image.
    write: Vec<usize>,
    /// Columns a row is found by: the key, or every written column for a keyless table.
    find: Vec<usize>,
    keyless: bool,
}

impl<'a> Shape<'a> {
    fn new(tv: &'a TableVersion) -> Self {
        let write: Vec<usize> =
            (0..tv.columns.len()).filter(|i| !tv.generated.contains(&tv.columns[*i].name)).collect();
        let find: Vec<usize> =
            tv.key.iter().filter_map(|k| tv.columns.iter().position(|c| &c.name == k)).collect();
        let keyless = find.is_empty();
        Self { tv, find: if keyless { write.clone() } else { find }, write, keyless }
    }

    fn columns(&self) -> Vec<BatchColumn> {
        self.write.iter().map(|i| self.tv.columns[*i].clone()).collect()
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

/// Applies the transaction's changes on `conn` (inside the caller's transaction). Returns rows.
pub async fn apply(conn: &mut MySqlConnection, txn: &Transaction, safe: bool) -> Result<u64, RowError> {
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
            for mut stmt in bind::statements(verb, &tv.table, &shape.columns(), &batch) {
                stmt.build().execute(&mut *conn).await.map_err(|e| {
                    if crate::error::target_code(&e) == Some(1062) && !safe {
                        RowError::Diverged(format!(
                            "insert into {} hit an existing row with the same key: {e}",
                            tv.table
                        ))
                    } else {
                        RowError::Target(e, format!("{verb} INTO {}", tv.table))
                    }
                })?;
            }
            rows += batch.len() as u64;
            i = j;
            continue;
        }
        match change.op {
            ChangeOp::Update if safe => {
                let before = values(tv, image(change, false)?)?;
                let after = values(tv, image(change, true)?)?;
                if !shape.keyless {
                    delete(conn, &shape, &key_of(&shape, &before), false).await?;
                    let row: Vec<SqlValue> = shape.write.iter().map(|k| after[*k].clone()).collect();
                    for mut stmt in
                        bind::statements("REPLACE", &tv.table, &shape.columns(), std::slice::from_ref(&row))
                    {
                        stmt.build()
                            .execute(&mut *conn)
                            .await
                            .map_err(|e| RowError::Target(e, format!("REPLACE INTO {}", tv.table)))?;
                    }
                } else {
                    update(conn, &shape, &before, &after, false).await?;
                }
            }
            ChangeOp::Update => {
                let before = values(tv, image(change, false)?)?;
                let after = values(tv, image(change, true)?)?;
                update(conn, &shape, &before, &after, true).await?;
            }
            ChangeOp::Delete => {
                let before = values(tv, image(change, false)?)?;
                delete(conn, &shape, &key_of(&shape, &before), !safe).await?;
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

fn push_where<'q>(qb: &mut QueryBuilder<'q, MySql>, shape: &Shape<'_>, find: &'q [SqlValue]) {
    qb.push(" WHERE ");
    for (n, (idx, v)) in shape.find.iter().zip(find).enumerate() {
        if n > 0 {
            qb.push(" AND ");
        }
        qb.push(quote_ident(&shape.tv.columns[*idx].name));
        // `<=>` matches NULL too (keyless tables compare every column).
        qb.push(" <=> ");
        push_value(qb, v);
    }
    if shape.keyless {
        qb.push(" LIMIT 1");
    }
}

async fn delete(
    conn: &mut MySqlConnection,
    shape: &Shape<'_>,
    find: &[SqlValue],
    must_match: bool,
) -> Result<(), RowError> {
    let mut qb = QueryBuilder::<MySql>::new(format!("DELETE FROM {}", shape.tv.table.quoted()));
    push_where(&mut qb, shape, find);
    let done = qb
        .build()
        .execute(&mut *conn)
        .await
        .map_err(|e| RowError::Target(e, format!("DELETE FROM {}", shape.tv.table)))?;
    if must_match && done.rows_affected() == 0 {
        return Err(RowError::Diverged(format!(
            "the row to delete from {} is not in the target",
            shape.tv.table
        )));
    }
    Ok(())
}

async fn update(
    conn: &mut MySqlConnection,
    shape: &Shape<'_>,
    before: &[SqlValue],
    after: &[SqlValue],
    must_match: bool,
) -> Result<(), RowError> {
    let find = key_of(shape, before);
    let mut qb = QueryBuilder::<MySql>::new(format!("UPDATE {} SET ", shape.tv.table.quoted()));
    for (n, idx) in shape.write.iter().enumerate() {
        if n > 0 {
            qb.push(", ");
        }
        qb.push(quote_ident(&shape.tv.columns[*idx].name));
        qb.push(" = ");
        push_value(&mut qb, &after[*idx]);
    }
    push_where(&mut qb, shape, &find);
    let done = qb
        .build()
        .execute(&mut *conn)
        .await
        .map_err(|e| RowError::Target(e, format!("UPDATE {}", shape.tv.table)))?;
    if must_match && done.rows_affected() == 0 {
        return Err(RowError::Diverged(format!(
            "the row to update in {} is not in the target",
            shape.tv.table
        )));
    }
    Ok(())
}
