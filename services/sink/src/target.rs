//! The connection pool to the target. Sessions write in UTC (TIMESTAMP values are instants),
//! without foreign-key checks (tables arrive in any order, as with mysqldump), with zero dates
//! allowed and AUTO_INCREMENT columns taking the value 0 as given, and in strict mode so a value
//! that does not fit is an error, never a silent truncation. READ COMMITTED keeps InnoDB from
//! taking gap locks, so parallel chunk transactions do not deadlock on each other.

use ferry_schemas::task::Endpoint;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::Executor;
use std::time::Duration;

pub const SESSION_SQL: &str = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; SET time_zone = '+00:00', foreign_key_checks = 0, \
     sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'";

pub fn connect_options(endpoint: &Endpoint) -> MySqlConnectOptions {
    MySqlConnectOptions::new()
        .host(&endpoint.host)
        .port(endpoint.port)
        .username(&endpoint.user)
        .password(endpoint.password.expose())
        .charset("utf8mb4")
}

/// A lazily connecting pool: a target that is down shows up as transient errors on use.
pub fn pool(endpoint: &Endpoint, max_connections: u32) -> MySqlPool {
    MySqlPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(sqlx::raw_sql(SESSION_SQL)).await?;
                Ok(())
            })
        })
        .connect_lazy_with(connect_options(endpoint))
}
