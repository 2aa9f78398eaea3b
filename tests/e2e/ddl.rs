//! DDL while syncing: column, index and table changes on the source, each followed by writes,
//! reach the target in order with the rows around them; the structures end equal.

use crate::harness::{admin, eventually, Stack};
use crate::incremental::{incremental_scenario, source_position, wait_applied, wait_phase};
use crate::verify::{same_rows, same_structure, Side};
use anyhow::{ensure, Context, Result};
use ferry_schemas::position::BinlogFilePos;
use ferry_schemas::task::Phase;
use mysql_async::prelude::*;
use std::time::Duration;

const STEPS: &[&str] = &[
    "ALTER TABLE accounts ADD COLUMN extra VARCHAR(20) NULL DEFAULT 'd'",
    "INSERT INTO accounts (id, email, balance, updated, extra) VALUES (900001, 'ddl1@x', 1.5, NOW(6), 'new')",
    "UPDATE accounts SET extra = CONCAT('e', id) WHERE id < 50",
    "ALTER TABLE accounts MODIFY COLUMN note VARCHAR(200) NULL",
    "UPDATE accounts SET note = REPEAT('n', 150) WHERE id BETWEEN 50 AND 60",
    "ALTER TABLE accounts DROP COLUMN tiny",
    "UPDATE accounts SET balance = balance + 1 WHERE id BETWEEN 100 AND 120",
    "CREATE INDEX k_med ON accounts (med)",
    "DROP INDEX k_balance ON accounts",
    "DELETE FROM accounts WHERE id BETWEEN 200 AND 210",
    "CREATE TABLE fresh (id INT PRIMARY KEY, v VARCHAR(10) NOT NULL)",
    "INSERT INTO fresh VALUES (1, 'a'), (2, 'b'), (3, 'c')",
    "RENAME TABLE fresh TO renamed",
    "INSERT INTO renamed VALUES (4, 'd')",
    "UPDATE renamed SET v = 'z' WHERE id = 1",
    "TRUNCATE TABLE events",
    "INSERT INTO events (account, kind, payload) VALUES (1, 'open', '{\"after\": \"truncate\"}')",
    "CREATE TABLE doomed (id INT PRIMARY KEY)",
    "INSERT INTO doomed VALUES (1)",
    "DROP TABLE doomed",
];

async fn wait_captured(stack: &Stack, task: &str, pos: &BinlogFilePos) -> Result<()> {
    eventually(&format!("{task} to capture up to {pos}"), Duration::from_secs(60), || async {
        let v = stack.status(task).await?;
        Ok(v.source_position.filter(|p| p.binlog >= *pos).map(|_| ()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn ddl_while_syncing_reaches_the_target() -> Result<()> {
    let (db, task, scenario, _cleanup) = incremental_scenario("e2e_ddl").await?;
    let stack = Stack::start("ddl").await?;
    stack.create_and_start(&scenario.render("task.yaml")?).await?;
    wait_phase(&stack, &task, Phase::Incremental, Duration::from_secs(300)).await?;
    let mut src = admin("source").await?;
    src.query_drop(format!("USE `{db}`")).await?;
    for step in STEPS {
        src.query_drop(*step).await.with_context(|| step.to_string())?;
        if !step.starts_with("INSERT") && !step.starts_with("UPDATE") && !step.starts_with("DELETE") {
            // The store reads a changed table's new schema from the source when it captures the
            // DDL, so the next DDL on that table must wait until then (see the store's notes).
            let at = source_position().await?;
            wait_captured(&stack, &task, &at).await?;
        }
    }
    let end = source_position().await?;
    let v = wait_applied(&stack, &task, &end, Duration::from_secs(60)).await?;
    ensure!(v.incremental.as_ref().is_some_and(|i| i.ddl >= 8), "DDL applied: {:?}", v.incremental);
    let mut tgt = admin("target").await?;
    let tdb = format!("{db}_t");
    for t in ["accounts", "events", "renamed"] {
        let mut s = Side { conn: &mut src, db: &db, table: t };
        let mut d = Side { conn: &mut tgt, db: &tdb, table: t };
        same_structure(&mut s, &mut d).await.with_context(|| format!("structure of {t}"))?;
        same_rows(&mut s, &mut d).await.with_context(|| format!("rows of {t}"))?;
    }
    let left: Vec<String> = tgt
        .exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN ('doomed', 'fresh')", (&tdb,))
        .await?;
    ensure!(left.is_empty(), "dropped or renamed tables remain on the target: {left:?}");
    Ok(())
}
