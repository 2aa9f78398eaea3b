//! Precheck: everything that would make the task fail later, found before anything is written.
//!
//! Each check yields a result that names the object and the fix. A `fail` pauses the task; a
//! `warn` is shown in the status and the task continues.

use ferry_mysql::binlog_access;
use ferry_mysql::catalog::{self, ObjectKind};
use ferry_mysql::conn::connect_once;
use ferry_mysql::error::{server_code, server_code_of};
use ferry_schemas::full::ExistingTablePolicy;
use ferry_schemas::names::TARGET_META_DB;
use ferry_schemas::position::BinlogFilePos;
use ferry_schemas::status::{CheckOutcome, CheckResult};
use ferry_schemas::table::{quote_ident, KeyKind, TableRef};
use ferry_schemas::task::{Endpoint, Phase, TaskSpec};
use ferry_schemas::value::ColumnType;
use mysql_async::prelude::*;
use mysql_async::Conn;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn result(
    check: &str,
    object: Option<String>,
    outcome: CheckOutcome,
    message: String,
    fix: Option<&str>,
) -> CheckResult {
    CheckResult { check: check.to_owned(), object, outcome, message, fix: fix.map(str::to_owned) }
}

fn fail(check: &str, object: Option<String>, message: String, fix: &str) -> CheckResult {
    result(check, object, CheckOutcome::Fail, message, Some(fix))
}

/// Runs every check against a spec whose passwords are opened. `resume_at` is where capture
/// continues when the task ran before (it must still be in the source's binlog).
pub async fn run(spec: &TaskSpec, resume_at: Option<BinlogFilePos>) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let source = connect(&spec.source, "source", &mut out).await;
    let target = connect(&spec.target, "target", &mut out).await;
    let planned = match source {
        Some(mut conn) => {
            let planned = check_source(&mut conn, spec, resume_at, &mut out).await;
            let _ = conn.disconnect().await;
            planned
        }
        None => Vec::new(),
    };
    if let Some(mut conn) = target {
        check_target(&mut conn, spec, &planned, &mut out).await;
        let _ = conn.disconnect().await;
    }
    out
}

async fn connect(endpoint: &Endpoint, role: &str, out: &mut Vec<CheckResult>) -> Option<Conn> {
    match connect_once(endpoint, CONNECT_TIMEOUT).await {
        Ok(c) => {
            out.push(result(
                &format!("{role}_connect"),
                Some(endpoint.describe()),
                CheckOutcome::Pass,
                format!("connected to the {role}"),
                None,
            ));
            Some(c)
        }
        Err(e) => {
            let (_, fix) = e.code_and_fix();
            let fix = if server_code_of(&e) == Some(1045) {
                fix
            } else {
                "check host, port and firewall; the server must be reachable from the services"
            };
            out.push(fail(
                &format!("{role}_connect"),
                Some(endpoint.describe()),
                format!("cannot connect to the {role} {}: {e}", endpoint.describe()),
                fix,
            ));
            None
        }
    }
}

/// Checks the source objects; returns (source, target) of every table and view to migrate.
async fn check_source(
    conn: &mut Conn,
    spec: &TaskSpec,
    resume_at: Option<BinlogFilePos>,
    out: &mut Vec<CheckResult>,
) -> Vec<(TableRef, TableRef)> {
    let objects = match catalog::list_objects(conn, &spec.objects).await {
        Ok(o) => o,
        Err(e) => {
            out.push(fail(
                "source_catalog",
                None,
                format!("cannot list source tables: {e}"),
                e.code_and_fix().1,
            ));
            return Vec::new();
        }
    };
    if objects.is_empty() {
        out.push(fail(
            "objects",
            None,
            format!("no source table matches objects.include {:?}", spec.objects.include),
            "check the patterns, and that the user has privileges on the tables (SHOW GRANTS)",
        ));
    }
    let mut planned = Vec::new();
    for o in objects {
        let target = spec.renames.target_of(&o.table);
        match &o.kind {
            ObjectKind::Table => {
                check_table(conn, &o.table, spec.phases.contains(&Phase::Incremental), out).await
            }
            ObjectKind::View if spec.full.views => check_view(conn, &o.table, out).await,
            ObjectKind::View => continue,
            ObjectKind::Other(kind) => {
                out.push(fail(
                    "object_kind",
                    Some(o.table.to_string()),
                    format!("{} is a {kind}, which Ferry does not migrate", o.table),
                    "exclude it in objects.exclude",
                ));
                continue;
            }
        }
        planned.push((o.table, target));
    }
    if spec.phases.contains(&Phase::Incremental) {
        check_binlog(conn, out).await;
        check_replication(conn, spec, resume_at, out).await;
    }
    planned
}

async fn check_table(conn: &mut Conn, t: &TableRef, incremental: bool, out: &mut Vec<CheckResult>) {
    let probe = conn.query_drop(format!("SELECT 1 FROM {} LIMIT 0", t.quoted())).await;
    if let Err(e) = probe {
        let fix = format!("GRANT SELECT ON {}.* TO the migration user", quote_ident(&t.database));
        let msg = match server_code(&e) {
            Some(1142) | Some(1143) | Some(1044) => format!("the source user may not SELECT from {t}"),
            _ => format!("cannot read {t}: {e}"),
        };
        out.push(fail("source_privilege", Some(t.to_string()), msg, &fix));
        return;
    }
    match catalog::read_table(conn, t).await {
        Ok((schema, unsupported)) => {
            for u in unsupported {
                out.push(fail(
                    "column_type",
                    Some(u.object()),
                    u.message(),
                    ferry_mysql::catalog::UnsupportedColumn::FIX,
                ));
            }
            if incremental {
                for c in
                    schema.columns.iter().filter(|c| matches!(c.column_type, ColumnType::Time { fsp: 1 | 2 }))
                {
                    out.push(fail(
                        "column_type",
                        Some(format!("{t}.{}", c.name)),
                        format!(
                            "column {t}.{} is {}: negative values with a fraction cannot be read exactly from the binlog (a mysql_common 0.37 decoding bug)",
                            c.name, c.sql_type
                        ),
                        "change the column to TIME or TIME(3..6) on the source, or exclude the table",
                    ));
                }
            }
            if schema.key_kind == KeyKind::None && incremental {
                out.push(fail(
                    "table_key",
                    Some(t.to_string()),
                    format!("{t} has no primary key and no NOT NULL unique key: its changes cannot be replayed exactly over the full copy"),
                    "add a primary key to the source table, or exclude the table from the task",
                ));
            } else if schema.key_kind == KeyKind::None {
                out.push(result(
                    "table_key",
                    Some(t.to_string()),
                    CheckOutcome::Warn,
                    format!("{t} has no primary key and no NOT NULL unique key: it is copied whole and a restart copies it again"),
                    Some("add a primary key to the source table"),
                ));
            }
        }
        Err(e) => out.push(fail(
            "source_schema",
            Some(t.to_string()),
            format!("cannot read the schema of {t}: {e}"),
            e.code_and_fix().1,
        )),
    }
}

async fn check_view(conn: &mut Conn, v: &TableRef, out: &mut Vec<CheckResult>) {
    if let Err(e) = catalog::show_create_view(conn, v).await {
        out.push(fail(
            "source_privilege",
            Some(v.to_string()),
            format!("cannot read the definition of view {v}: {e}"),
            "GRANT SHOW VIEW, SELECT on the view's database to the migration user",
        ));
    }
}

async fn check_binlog(conn: &mut Conn, out: &mut Vec<CheckResult>) {
    let vars: Vec<(String, String)> = conn
        .query(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', 'binlog_row_image', \
             'binlog_transaction_compression', 'binlog_row_value_options', 'binlog_row_metadata')",
        )
        .await
        .unwrap_or_default();
    out.extend(binlog_problems(&vars));
}

/// What the source's binlog settings (`SHOW GLOBAL VARIABLES`) prevent. Compression and partial
/// JSON updates exist on MySQL 8 only (such events cannot be decoded); row metadata on MySQL 8
/// and MariaDB 10.5+ (without it, column names are not checked: a warning).
fn binlog_problems(vars: &[(String, String)]) -> Vec<CheckResult> {
    let get =
        |n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.to_ascii_uppercase()).unwrap_or_default();
    let mut out = Vec::new();
    if get("log_bin") != "ON" {
        out.push(fail(
            "binlog",
            None,
            "binary logging is off on the source".into(),
            "start the source with log_bin enabled",
        ));
    }
    if get("binlog_format") != "ROW" {
        out.push(fail(
            "binlog",
            None,
            format!("binlog_format is {}, not ROW", get("binlog_format")),
            "SET GLOBAL binlog_format = 'ROW' (and in the server config)",
        ));
    }
    if get("binlog_row_image") != "FULL" {
        out.push(fail(
            "binlog",
            None,
            format!("binlog_row_image is {}, not FULL", get("binlog_row_image")),
            "SET GLOBAL binlog_row_image = 'FULL'",
        ));
    }
    if get("binlog_transaction_compression") == "ON" {
        out.push(fail(
            "binlog",
            None,
            "binlog_transaction_compression is ON: compressed transactions cannot be captured".into(),
            "SET GLOBAL binlog_transaction_compression = OFF (and in the server config)",
        ));
    }
    if get("binlog_row_metadata") != "FULL" {
        out.push(result(
            "binlog",
            None,
            CheckOutcome::Warn,
            "binlog_row_metadata is not FULL: the binlog does not describe every column, so if capture \
             falls behind across two DDLs of a table, rows written between them stop it when their types \
             differ from the schema it reads afterwards, and a rename or reorder of same-typed columns \
             goes unnoticed; with FULL they are decoded as written"
                .into(),
            Some(
                "SET GLOBAL binlog_row_metadata = 'FULL' (MySQL 8, MariaDB 10.5+; and in the server config)",
            ),
        ));
    }
    if get("binlog_row_value_options").contains("PARTIAL_JSON") {
        out.push(fail(
            "binlog",
            None,
            "binlog_row_value_options is PARTIAL_JSON: partial JSON updates carry no full row image".into(),
            "SET GLOBAL binlog_row_value_options = '' (and in the server config)",
        ));
    }
    out
}

/// Error codes of a refused privilege.
const ACCESS_DENIED: &[u16] = &[1044, 1045, 1142, 1227];
/// MariaDB: a replica with the same server id is already connected.
const SAME_REPLICA_ID: u16 = 4052;

static PROBES: AtomicU32 = AtomicU32::new(0);

/// A replica server id for one binlog probe, in 4,000,000,000..4,290,000,000 (store ids are
/// below 1,001,000,000). Each probe gets its own: a dump with the store's id would disconnect
/// the store, and two prechecks running at once with one id refused each other (MariaDB 4052).
fn probe_id() -> u32 {
    let n = PROBES.fetch_add(1, Ordering::Relaxed) % 100_000;
    4_000_000_000 + (std::process::id() % 2_900) * 100_000 + n
}

/// REPLICATION CLIENT and SLAVE, and that the binlog still holds where capture starts.
async fn check_replication(
    conn: &mut Conn,
    spec: &TaskSpec,
    resume_at: Option<BinlogFilePos>,
    out: &mut Vec<CheckResult>,
) {
    let user = &spec.source.user;
    // A refused probe names the missing privilege; another failure says what could not be done.
    // A refused privilege gets the GRANT as its fix; any other failure the fix for its error.
    let refused = |e: ferry_mysql::SourceError, privilege: &str, doing: &str, grant: &str| {
        let (message, fix) = if server_code_of(&e).is_some_and(|c| ACCESS_DENIED.contains(&c)) {
            (format!("the source user {user} may not {doing} ({privilege}): {e}"), grant)
        } else {
            (format!("cannot {doing} on the source: {e}"), e.code_and_fix().1)
        };
        fail("replication_privilege", Some(user.clone()), message, fix)
    };
    let files = match binlog_access::binary_logs(conn).await {
        Ok(f) => f,
        Err(e) => {
            out.push(refused(
                e,
                "REPLICATION CLIENT",
                "list binlog files",
                "GRANT REPLICATION CLIENT ON *.* TO the migration user (MariaDB 10.5+: BINLOG MONITOR)",
            ));
            return;
        }
    };
    let Some(end) = ferry_mysql::position::current(conn).await.ok().flatten() else { return };
    let mut probe = binlog_access::probe_dump(&spec.source, probe_id(), &end.binlog).await;
    for _ in 0..3 {
        match &probe {
            // Another reader has that id (a probe of another task's precheck): try another one.
            Err(e) if server_code_of(e).is_some_and(|c| c == SAME_REPLICA_ID) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                probe = binlog_access::probe_dump(&spec.source, probe_id(), &end.binlog).await;
            }
            _ => break,
        }
    }
    if let Err(e) = probe {
        out.push(refused(
            e,
            "REPLICATION SLAVE",
            "read the binlog",
            "GRANT REPLICATION SLAVE ON *.* TO the migration user",
        ));
        return;
    }
    // Once capture ran, it resumes from its own position, not from incremental.start.
    let start = match resume_at {
        Some(p) => Some((p, "the position capture resumes from")),
        None => spec.incremental.start.clone().map(|p| (p, "incremental.start")),
    };
    if let Some((start, what)) = start {
        if let Some(why) = binlog_access::unavailable(&files, &start) {
            out.push(fail(
                "binlog_position",
                Some(start.to_string()),
                format!("{why}: {what} cannot be read"),
                "start a new task with a full phase (or an incremental.start the source still has), and keep \
                 binlogs longer on the source (expire_logs_days / binlog_expire_logs_seconds)",
            ));
        }
    }
}

async fn check_target(
    conn: &mut Conn,
    spec: &TaskSpec,
    planned: &[(TableRef, TableRef)],
    out: &mut Vec<CheckResult>,
) {
    let meta = quote_ident(TARGET_META_DB);
    // One probe table per task: prechecks of different tasks run at the same time (a shared
    // name let one drop the table the other was about to drop).
    let table = format!("{meta}.{}", quote_ident(&format!("precheck_probe_{}", spec.name)));
    let probe = async {
        conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS {meta}")).await?;
        conn.query_drop(format!("DROP TABLE IF EXISTS {table}")).await?;
        conn.query_drop(format!("CREATE TABLE {table} (id INT PRIMARY KEY)")).await?;
        conn.query_drop(format!("DROP TABLE {table}")).await
    };
    if let Err(e) = probe.await {
        out.push(fail(
            "target_privilege",
            Some(spec.target.describe()),
            format!("the target user cannot create tables: {e}"),
            "GRANT CREATE, DROP, ALTER, INDEX, INSERT, UPDATE, DELETE, SELECT, CREATE VIEW ON the target databases and ferry_meta TO the target user",
        ));
        return;
    }
    if !spec.phases.contains(&Phase::Schema) {
        return;
    }
    for (source, target) in planned {
        let exists: Option<u64> = conn
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&target.database, &target.table),
            )
            .await
            .unwrap_or(None);
        if exists.unwrap_or(0) == 0 {
            continue;
        }
        let ours: Option<String> = conn
            .exec_first(
                format!("SELECT state FROM {meta}.full_objects WHERE task = ? AND object = ?"),
                (&spec.name, source.to_string()),
            )
            .await
            .unwrap_or(None);
        if ours.is_some() {
            continue;
        }
        out.push(match spec.full.existing_tables {
            ExistingTablePolicy::Fail => fail(
                "target_exists",
                Some(target.to_string()),
                format!("target {target} already exists"),
                "drop it, or set full.existing_tables to skip (copy into it) or drop (replace it)",
            ),
            ExistingTablePolicy::Skip => result(
                "target_exists",
                Some(target.to_string()),
                CheckOutcome::Warn,
                format!("target {target} exists and is kept; rows are copied into it"),
                None,
            ),
            ExistingTablePolicy::Drop => result(
                "target_exists",
                Some(target.to_string()),
                CheckOutcome::Warn,
                format!("target {target} exists and will be dropped"),
                None,
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_binlog_probe_gets_its_own_replica_id_away_from_the_stores() {
        let ids: std::collections::HashSet<u32> = (0..1000).map(|_| probe_id()).collect();
        assert_eq!(ids.len(), 1000, "two probes shared a replica id");
        assert!(ids.iter().all(|id| (4_000_000_000..4_290_000_000).contains(id)));
    }

    #[test]
    fn binlog_settings_that_lose_or_hide_changes_are_refused_with_their_fix() {
        let vars = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
            // The first of a name counts: `extra` overrides the defaults after it.
            extra
                .iter()
                .chain(&[("log_bin", "ON"), ("binlog_format", "ROW"), ("binlog_row_image", "FULL")])
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        // MariaDB has neither MySQL-only variable.
        assert!(binlog_problems(&vars(&[("binlog_row_metadata", "FULL")])).is_empty());
        let mysql_ok = [
            ("binlog_transaction_compression", "OFF"),
            ("binlog_row_value_options", ""),
            ("binlog_row_metadata", "FULL"),
        ];
        assert!(binlog_problems(&vars(&mysql_ok)).is_empty());
        let minimal_metadata = binlog_problems(&vars(&[("binlog_row_metadata", "MINIMAL")]));
        assert!(
            minimal_metadata.len() == 1 && minimal_metadata[0].outcome == CheckOutcome::Warn,
            "{minimal_metadata:?}"
        );
        let bad = [
            ("binlog_transaction_compression", "ON"),
            ("binlog_row_value_options", "PARTIAL_JSON"),
            ("binlog_row_metadata", "FULL"),
        ];
        let fixes: Vec<String> = binlog_problems(&vars(&bad)).into_iter().filter_map(|c| c.fix).collect();
        assert_eq!(fixes.len(), 2, "{fixes:?}");
        assert!(fixes[0].contains("binlog_transaction_compression = OFF"), "{fixes:?}");
        assert!(fixes[1].contains("binlog_row_value_options = ''"), "{fixes:?}");
        let minimal =
            binlog_problems(&vars(&[("binlog_row_image", "MINIMAL"), ("binlog_row_metadata", "FULL")]));
        assert!(minimal.len() == 1 && minimal[0].message.contains("MINIMAL"), "{minimal:?}");
    }
}
