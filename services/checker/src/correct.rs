//! Correction: runs the correction SQL of the last report on the target, then re-verifies only
//! the rows it wrote (the whole table when the report held only part of its differences, or
//! when the table has no key).
//!
//! Runs only while the task's sink is not applying (the scheduler accepts a correction for a
//! paused or completed task), so the checker is the target's only writer meanwhile. Each
//! table's statements commit in one target transaction; they are idempotent by key, so a job
//! restarted after a crash simply runs them again (see `job` for the restart protocol).

use crate::error::{CheckError, Side};
use crate::job::{self, JobContext};
use crate::pair::Pairing;
use ferry_schemas::check::{CheckerStatus, TableCheck};
use ferry_schemas::correction;
use mysql_async::prelude::*;

pub async fn run(ctx: &JobContext, status: &mut CheckerStatus, requested: u64) -> Result<(), CheckError> {
    if status.corrections_done >= requested {
        return Ok(());
    }
    let mut written = 0u64;
    for (table, seq) in status.results.clone() {
        let check = job::read_result(&ctx.rt, &ctx.task, seq).await?;
        if check.missing + check.extra + check.changed == 0 || check.problem.is_some() {
            continue;
        }
        written += apply(ctx, &check).await?;
        let recheck = reverify(ctx, &check).await?;
        tracing::info!(
            task = ctx.task,
            table,
            remaining = recheck.missing + recheck.extra + recheck.changed,
            "table corrected"
        );
        job::record(ctx, status, recheck).await?;
    }
    status.corrected_rows = written;
    status.corrections_done = requested;
    Ok(())
}

/// Runs a table's correction in one target transaction; the number of statements.
async fn apply(ctx: &JobContext, check: &TableCheck) -> Result<u64, CheckError> {
    let statements = correction::statements(check).map_err(|e| {
        crate::error::definite(
            "bad_report",
            Some(check.source.to_string()),
            format!("the report of {} holds a value that cannot be written back: {e}", check.source),
            "verify the task again, then correct",
        )
    })?;
    let what = || format!("correcting {}", check.target);
    let mut conn =
        ctx.verifier.target.get_conn().await.map_err(|e| CheckError::db(Side::Target, what(), e))?;
    // REPLACE deletes and re-inserts: referencing rows elsewhere must not block or cascade.
    conn.query_drop("SET SESSION foreign_key_checks = 0")
        .await
        .map_err(|e| CheckError::db(Side::Target, what(), e))?;
    let mut tx = conn
        .start_transaction(mysql_async::TxOpts::default())
        .await
        .map_err(|e| CheckError::db(Side::Target, what(), e))?;
    for s in &statements {
        tx.query_drop(s.as_str())
            .await
            .map_err(|e| CheckError::db(Side::Target, format!("{}: {s}", what()), e))?;
    }
    tx.commit().await.map_err(|e| CheckError::db(Side::Target, what(), e))?;
    conn.query_drop("SET SESSION foreign_key_checks = 1")
        .await
        .map_err(|e| CheckError::db(Side::Target, what(), e))?;
    Ok(statements.len() as u64)
}

async fn reverify(ctx: &JobContext, check: &TableCheck) -> Result<TableCheck, CheckError> {
    let pair = match job::pairing(ctx, &check.source, &check.target).await? {
        Pairing::Pair(p) => p,
        Pairing::Problem(problem) => return Ok(job::problem_check(&check.source, &check.target, problem)),
    };
    if check.truncated || pair.key.is_empty() {
        let mut full = ctx.verifier.table(&pair).await?;
        full.recheck = true;
        return Ok(full);
    }
    let keys = crate::verify::keys_of(&pair, &check.diffs)?;
    ctx.verifier.rows(&pair, keys).await
}
