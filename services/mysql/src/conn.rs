//! Connections to a MySQL-family server from a task endpoint.
//!
//! Every session (also after the pool resets it) runs with `time_zone = '+00:00'` (TIMESTAMP values are read as UTC instants)
//! and `utf8mb4` (text of every column charset arrives as UTF-8).

use crate::SourceError;
use ferry_schemas::task::Endpoint;
use mysql_async::{OptsBuilder, Pool, PoolConstraints, PoolOpts};
use std::time::Duration;

pub const SESSION_INIT: &[&str] = &["SET NAMES utf8mb4", "SET time_zone = '+00:00'"];

/// Connection options for an endpoint whose password is already opened.
pub fn opts(endpoint: &Endpoint, max_connections: usize) -> OptsBuilder {
    let constraints = PoolConstraints::new(1, max_connections.max(1)).unwrap_or_default();
    OptsBuilder::default()
        .ip_or_hostname(endpoint.host.clone())
        .tcp_port(endpoint.port)
        .user(Some(endpoint.user.clone()))
        .pass(Some(endpoint.password.expose().to_owned()))
        .prefer_socket(false)
        .setup(SESSION_INIT.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .pool_opts(PoolOpts::default().with_constraints(constraints))
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .conn_ttl(Some(Duration::from_secs(600)))
}

pub fn pool(endpoint: &Endpoint, max_connections: usize) -> Pool {
    Pool::new(opts(endpoint, max_connections))
}

/// One connection, failing after `timeout` (for prechecks against unreachable servers).
pub async fn connect_once(endpoint: &Endpoint, timeout: Duration) -> Result<mysql_async::Conn, SourceError> {
    let what = format!("connecting to {}", endpoint.describe());
    match tokio::time::timeout(timeout, mysql_async::Conn::new(opts(endpoint, 1))).await {
        Ok(r) => r.map_err(|e| SourceError::mysql(what, e)),
        Err(_) => Err(SourceError::mysql(
            what,
            mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {timeout:?}"),
            ))),
        )),
    }
}
