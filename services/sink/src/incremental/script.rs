//! Row statements of a group of transactions, sent as multi-statement text batches.
//!
//! One statement per round trip made the sink latency-bound; a script sends up to
//! [`CHUNK_BYTES`] of statements at once (values as exact literals, see
//! `ferry_schemas::literal`). The server runs them in order and answers each with its affected
//! rows, so every statement is still checked on its own: a normal-mode UPDATE or DELETE that
//! matched no row, or an INSERT that hit an existing key, is the target diverging. The server
//! stops at the first failing statement; its index says which one failed. A script runs inside
//! the caller's transaction, so a failure leaves nothing of it behind.

use super::rows::RowError;
use futures::TryStreamExt;
use sqlx::{Either, MySqlConnection};

/// Most bytes of SQL sent in one round trip (well under every target's max_allowed_packet).
const CHUNK_BYTES: usize = 2 << 20;

/// What a statement's result must show.
#[derive(Clone, Debug)]
pub enum Check {
    Nothing,
    /// At least one row affected; otherwise the target diverged (the message says how).
    MustMatch(String),
    /// A duplicate key means the target diverged (the message says how).
    NoDuplicate(String),
    /// Exactly this many rows affected; otherwise the target diverged (the message says how).
    Exactly(u64, String),
}

struct Statement {
    /// End of the statement in `sql`.
    end: usize,
    check: Check,
    /// `VERB table`, for reports.
    what: String,
    /// Index of the transaction (in the group) it belongs to.
    txn: usize,
}

#[derive(Default)]
pub struct Script {
    sql: String,
    statements: Vec<Statement>,
    /// Transaction the next statements belong to.
    txn: usize,
}

/// A failed script: the transaction (index in the group) whose statement failed, and why.
pub struct ScriptError {
    pub txn: usize,
    pub error: RowError,
}

impl Script {
    /// A script whose first statement opens a transaction (`BEGIN`, belonging to the first
    /// transaction of the group).
    pub fn in_transaction() -> Self {
        let mut script = Self::default();
        script.push("BEGIN", "BEGIN".into(), Check::Nothing);
        script
    }

    /// Following statements belong to transaction `txn` of the group.
    pub fn transaction(&mut self, txn: usize) {
        self.txn = txn;
    }

    /// Appends one statement (without the terminating `;`).
    pub fn push(&mut self, sql: &str, what: String, check: Check) {
        if !self.sql.is_empty() {
            self.sql.push_str(";\n");
        }
        self.sql.push_str(sql);
        self.statements.push(Statement { end: self.sql.len(), check, what, txn: self.txn });
    }

    /// Bytes of SQL the script sends.
    pub fn len_bytes(&self) -> usize {
        self.sql.len()
    }

    /// The statements, `;`-separated, as they will be sent.
    #[cfg(test)]
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The check of each statement, in order.
    #[cfg(test)]
    pub fn checks(&self) -> Vec<&Check> {
        self.statements.iter().map(|s| &s.check).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// Runs every statement in order on `conn`, checking each result.
    pub async fn run(&self, conn: &mut MySqlConnection) -> Result<(), ScriptError> {
        let mut first = 0;
        while first < self.statements.len() {
            let start = if first == 0 { 0 } else { self.statements[first - 1].end + 2 };
            let mut last = first;
            while last + 1 < self.statements.len() && self.statements[last + 1].end - start <= CHUNK_BYTES {
                last += 1;
            }
            self.run_chunk(conn, first, last, &self.sql[start..self.statements[last].end]).await?;
            first = last + 1;
        }
        Ok(())
    }

    async fn run_chunk(
        &self,
        conn: &mut MySqlConnection,
        first: usize,
        last: usize,
        sql: &str,
    ) -> Result<(), ScriptError> {
        let mut next = first;
        let mut results = sqlx::raw_sql(sql).fetch_many(&mut *conn);
        // A failed check does not stop the server: every result is still read, or the
        // connection would be left mid-response (it hung the next use of it, the rollback).
        let mut diverged: Option<ScriptError> = None;
        loop {
            let item = match results.try_next().await {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(e) => {
                    // The server stops at a failing statement: this is the last result.
                    if let Some(first_failure) = diverged {
                        return Err(first_failure);
                    }
                    let failed = &self.statements[next.min(last)];
                    let error = match (&failed.check, crate::error::target_code(&e)) {
                        (Check::NoDuplicate(how), Some(1062)) => RowError::Diverged(format!("{how}: {e}")),
                        _ => RowError::Target(e, failed.what.clone()),
                    };
                    return Err(ScriptError { txn: failed.txn, error });
                }
            };
            let Either::Left(done) = item else { continue };
            if diverged.is_some() {
                continue;
            }
            let Some(statement) = self.statements.get(next) else { continue };
            let how = match &statement.check {
                Check::MustMatch(how) if done.rows_affected() == 0 => Some(how.clone()),
                Check::Exactly(n, how) if done.rows_affected() != *n => {
                    Some(format!("{how} ({} of {n} found)", done.rows_affected()))
                }
                _ => None,
            };
            if let Some(how) = how {
                diverged = Some(ScriptError { txn: statement.txn, error: RowError::Diverged(how) });
                continue;
            }
            next += 1;
        }
        if let Some(first_failure) = diverged {
            return Err(first_failure);
        }
        if next != last + 1 {
            let what = self.statements.get(next).map_or_else(String::new, |s| s.what.clone());
            return Err(ScriptError {
                txn: self.statements.get(next).map_or(0, |s| s.txn),
                error: RowError::Target(
                    sqlx::Error::Protocol(format!(
                        "{} results for {} statements",
                        next - first,
                        last + 1 - first
                    )),
                    what,
                ),
            });
        }
        Ok(())
    }
}
