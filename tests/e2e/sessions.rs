//! A lane's kept target connection (`ferry_sink::incremental::session`), against the real
//! target: it is reused from one group to the next, and one whose transaction was left open (an
//! error, a cancelled write) is closed, so its rows roll back and never join a later group.

use crate::harness::{admin, endpoint, eventually, unique, DropOnExit};
use anyhow::{ensure, Result};
use ferry_sink::incremental::session::Sessions;
use mysql_async::prelude::*;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::Row;
use std::time::Duration;

async fn connection_id(
    sessions: &Sessions,
    lane: u32,
) -> Result<(u64, ferry_sink::incremental::session::Session)> {
    let mut session = sessions.take(lane).await?;
    let conn = session.opening()?;
    let id: u64 = sqlx::query("SELECT CONNECTION_ID()").fetch_one(&mut *conn).await?.try_get(0)?;
    Ok((id, session))
}

#[tokio::test]
async fn a_lane_keeps_its_connection_and_never_a_transaction_left_open() -> Result<()> {
    let db = unique("sess");
    let _drop = DropOnExit(vec![db.clone()]);
    let mut admin = admin("target").await?;
    admin.query_drop(format!("CREATE DATABASE `{db}`")).await?;
    admin.query_drop(format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY)")).await?;
    let (host, port, user, password) = endpoint("target")?;
    let options = MySqlConnectOptions::new().host(&host).port(port).username(&user).password(&password);
    let pool = MySqlPoolOptions::new().max_connections(4).connect_lazy_with(options);
    let sessions = Sessions::new(pool);

    // A committed group hands its connection back; the lane's next group gets the same one.
    let (first, mut session) = connection_id(&sessions, 0).await?;
    let conn = session.opening()?;
    sqlx::raw_sql(&format!("BEGIN; INSERT INTO `{db}`.t VALUES (1)")).execute(&mut *conn).await?;
    session.end("COMMIT").await?;
    sessions.keep(0, session);
    let (again, session) = connection_id(&sessions, 0).await?;
    ensure!(again == first, "the lane got connection {again}, not its kept {first}");
    // Nothing was opened by the query above that `end` did not close: a plain query opened
    // nothing, but the session cannot know, so it is closed rather than kept.
    drop(session);

    // A group that fails between BEGIN and COMMIT: its connection is closed, not kept.
    let (open, mut session) = connection_id(&sessions, 0).await?;
    let conn = session.opening()?;
    sqlx::raw_sql(&format!("BEGIN; INSERT INTO `{db}`.t VALUES (2)")).execute(&mut *conn).await?;
    sessions.keep(0, session);
    let (next, session) = connection_id(&sessions, 0).await?;
    ensure!(next != open, "a connection with an open transaction was kept for the lane's next group");
    drop(session);
    let ids: Vec<i32> = eventually("the open transaction to roll back", Duration::from_secs(10), || {
        let db = db.clone();
        async move {
            let mut c = crate::harness::admin("target").await?;
            let alive: Option<u64> = c
                .query_first(format!("SELECT ID FROM information_schema.PROCESSLIST WHERE ID = {open}"))
                .await?;
            if alive.is_some() {
                return Ok(None);
            }
            Ok(Some(c.query::<i32, _>(format!("SELECT id FROM `{db}`.t ORDER BY id")).await?))
        }
    })
    .await?;
    ensure!(ids == vec![1], "rows {ids:?} on the target; only the committed 1 belongs there");
    Ok(())
}
