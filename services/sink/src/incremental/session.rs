//! Each lane's own target connection, kept from one group to the next.
//!
//! A connection taken from the sqlx pool for every group cost two round trips the target paid
//! for: the pool pings a connection when it hands it out and again (in the background) when it
//! comes back. A lane writes its groups one after another, so it keeps one connection between
//! them, and a group's transaction is opened by the `BEGIN` at the head of its script instead of
//! a round trip of its own (see `IncrementalApplier::write_group`).
//!
//! Invariant: a connection kept here has no transaction open. A group hands its session back
//! only after its COMMIT or ROLLBACK answered; a session dropped without that (any error, a
//! cancelled future) closes its connection, which makes the server roll back whatever was
//! open, so nothing half-written can leak into a later group. A connection that sat unused
//! longer than [`IDLE_LIMIT`] goes back to the pool, which tests it before it is used again
//! (the server may have closed it meanwhile: `wait_timeout`, a restart).

use sqlx::pool::PoolConnection;
use sqlx::{MySql, MySqlConnection, MySqlPool};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a kept connection may sit unused before the pool tests it again.
pub const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// The connections the lanes keep between their groups.
pub struct Sessions {
    pool: MySqlPool,
    kept: Mutex<HashMap<u32, (PoolConnection<MySql>, Instant)>>,
}

/// A lane's connection while one of its groups uses it.
pub struct Session {
    conn: Option<PoolConnection<MySql>>,
    /// Whether a transaction may be open on it (see the module doc).
    open: bool,
}

impl Sessions {
    pub fn new(pool: MySqlPool) -> Self {
        Self { pool, kept: Mutex::new(HashMap::new()) }
    }

    /// The lane's kept connection, or one from the pool.
    pub async fn take(&self, lane: u32) -> Result<Session, sqlx::Error> {
        let kept = self.kept.lock().ok().and_then(|mut k| k.remove(&lane));
        let conn = match kept {
            Some((conn, since)) if since.elapsed() < IDLE_LIMIT => conn,
            // Dropping it returns it to the pool, which pings it.
            Some(_) | None => self.pool.acquire().await?,
        };
        Ok(Session { conn: Some(conn), open: false })
    }

    /// Keeps the session's connection for the lane's next group; closes it instead if a
    /// transaction may still be open on it.
    pub fn keep(&self, lane: u32, mut session: Session) {
        if session.open {
            return;
        }
        let (Some(conn), Ok(mut kept)) = (session.conn.take(), self.kept.lock()) else { return };
        kept.insert(lane, (conn, Instant::now()));
    }

    /// Connections kept now (for tests).
    #[cfg(test)]
    pub fn kept(&self) -> usize {
        self.kept.lock().map(|k| k.len()).unwrap_or(0)
    }
}

impl Session {
    /// The connection, for statements that open a transaction (its next COMMIT or ROLLBACK
    /// must go through [`Session::end`]).
    pub fn opening(&mut self) -> Result<&mut MySqlConnection, sqlx::Error> {
        self.open = true;
        self.conn.as_deref_mut().ok_or(sqlx::Error::PoolClosed)
    }

    /// Ends the open transaction with `COMMIT` or `ROLLBACK`.
    pub async fn end(&mut self, statement: &'static str) -> Result<(), sqlx::Error> {
        let conn = self.conn.as_deref_mut().ok_or(sqlx::Error::PoolClosed)?;
        sqlx::Executor::execute(conn, sqlx::raw_sql(statement)).await?;
        self.open = false;
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.open {
            if let Some(conn) = self.conn.as_mut() {
                conn.close_on_drop();
            }
        }
    }
}
