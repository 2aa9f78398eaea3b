//! The task spec users write (YAML or JSON) and its validation.
//!
//! `validate()` is pure and returns every problem at once, each naming the field and the fix.

use crate::full::ExistingTablePolicy;
use crate::table::TableRef;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A password. Never printed: `Debug` and `Display` show `***`. At rest in the tasks bucket it
/// holds the sealed form (`enc:v1:...`), see `ferry_kit::secret`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Kind of database at an endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DbKind {
    #[default]
    Mysql,
    Mariadb,
    Oceanbase,
    Tidb,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    #[serde(default)]
    pub kind: DbKind,
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub user: String,
    #[serde(default)]
    pub password: Secret,
    /// Region (JetStream domain) next to this database: the source's region runs the store and
    /// full-migrator, the target's runs the dispatcher, sink and checker. Unset: the default
    /// region (where the scheduler and the control-plane buckets are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

fn default_port() -> u16 {
    3306
}

impl Endpoint {
    /// `user@host:port`, safe to show.
    pub fn describe(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }
}

/// Which objects to migrate. Patterns are `db` or `db.table`, with `*` and `?` wildcards.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectFilter {
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl ObjectFilter {
    /// True when some include pattern covers the database (used to list candidate schemas).
    pub fn may_include_database(&self, database: &str) -> bool {
        self.include.iter().any(|p| wildcard_match(pattern_db(p), database))
    }
    pub fn includes(&self, t: &TableRef) -> bool {
        let hit = |p: &String| {
            let (db, table) = p.split_once('.').unwrap_or((p.as_str(), "*"));
            wildcard_match(db, &t.database) && wildcard_match(table, &t.table)
        };
        self.include.iter().any(hit) && !self.exclude.iter().any(hit)
    }
}

fn pattern_db(p: &str) -> &str {
    p.split_once('.').map_or(p, |(d, _)| d)
}

/// `*` matches any run of characters, `?` exactly one. Case-sensitive, like table names on Linux.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Target names. `databases: {shop: shop_new}` renames a whole database; `tables:
/// {"shop.orders": "shop_new.orders_v2"}` renames one table (it wins over the database rule).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Renames {
    #[serde(default)]
    pub databases: BTreeMap<String, String>,
    #[serde(default)]
    pub tables: BTreeMap<String, String>,
}

impl Renames {
    pub fn target_database(&self, database: &str) -> String {
        self.databases.get(database).cloned().unwrap_or_else(|| database.to_owned())
    }
    pub fn target_of(&self, source: &TableRef) -> TableRef {
        if let Some(t) = self.tables.get(&source.to_string()) {
            if let Some((db, table)) = t.split_once('.') {
                return TableRef::new(db, table);
            }
        }
        TableRef::new(self.target_database(&source.database), source.table.clone())
    }
}

/// Phases a task runs, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Precheck,
    Schema,
    Full,
    Incremental,
    Verify,
}

/// Phases this build can run. Others are refused by validation rather than skipped.
pub const SUPPORTED_PHASES: &[Phase] =
    &[Phase::Precheck, Phase::Schema, Phase::Full, Phase::Incremental, Phase::Verify];

/// Which row changes incremental sync applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DmlFilter {
    #[serde(default = "default_true")]
    pub insert: bool,
    #[serde(default = "default_true")]
    pub update: bool,
    #[serde(default = "default_true")]
    pub delete: bool,
}

impl Default for DmlFilter {
    fn default() -> Self {
        Self { insert: true, update: true, delete: true }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncrementalOptions {
    /// APPLY partitions: transactions on disjoint keys apply in parallel across them.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// Where capture starts when the task has no full phase (default: the current end of the
    /// binlog when the task first starts). With a full phase capture starts at its P0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<crate::position::BinlogFilePos>,
    /// Start after these transactions: a MariaDB GTID list (`domain-server-seq`, one per
    /// domain, comma-separated: the replica's `gtid_slave_pos` style) or a MySQL GTID set
    /// (`uuid:1-77,uuid2:1-5`: the replica's `gtid_executed` style); capture starts at the
    /// first transaction not in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_gtid: Option<String>,
    /// Start at the first transaction committed at or after this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub dml: DmlFilter,
    /// Replicate DDL (ALTER/CREATE/DROP/RENAME/TRUNCATE) of the task's tables.
    #[serde(default = "default_true")]
    pub ddl: bool,
    /// How long the CDC stream keeps changes (the longest the apply side may be behind).
    #[serde(default = "default_retention_hours")]
    pub retention_hours: u32,
    /// Connections the sink writes one large group of a lane over at once (1: one). Helps a
    /// lagging sink when the target has cores to spare; costs the target a few more commits.
    #[serde(default = "default_fan_out")]
    pub fan_out: u32,
    /// Largest source transaction (MiB of CDC messages) the sink commits as one target
    /// transaction when the store had to split it over several messages. A larger one (or one
    /// of more than 256 messages) is applied in pieces, in safe mode, and others may briefly see
    /// it half applied. The sink holds up to this much in memory.
    #[serde(default = "default_max_atomic_mb")]
    pub max_atomic_mb: u32,
    /// How long (ms) a sink lane with less than a full group waiting holds it for more
    /// transactions before writing it. While the sink keeps up, transactions arrive a few at a
    /// time, and a target transaction per source transaction cost the target (and so the
    /// source sharing its machine) the most; 0 writes each as soon as its lane is free.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u32,
}

fn default_partitions() -> u32 {
    8
}
fn default_retention_hours() -> u32 {
    72
}
fn default_fan_out() -> u32 {
    1
}
fn default_max_atomic_mb() -> u32 {
    256
}
fn default_linger_ms() -> u32 {
    50
}

impl Default for IncrementalOptions {
    fn default() -> Self {
        Self {
            partitions: default_partitions(),
            start: None,
            start_gtid: None,
            start_time: None,
            dml: DmlFilter::default(),
            ddl: true,
            retention_hours: default_retention_hours(),
            fan_out: default_fan_out(),
            max_atomic_mb: default_max_atomic_mb(),
            linger_ms: default_linger_ms(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FullOptions {
    /// Tables read at the same time by the full-migrator.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Rows per chunk (a chunk is also cut short to stay under the message size limit).
    #[serde(default = "default_chunk_rows")]
    pub chunk_rows: u32,
    /// Connections the sink writes the copy with.
    #[serde(default = "default_concurrency")]
    pub write_concurrency: u32,
    #[serde(default)]
    pub existing_tables: ExistingTablePolicy,
    /// Migrate views after tables.
    #[serde(default = "default_true")]
    pub views: bool,
    /// Build secondary indexes after a table's rows are loaded (tables without foreign keys).
    #[serde(default = "default_true")]
    pub defer_indexes: bool,
}

fn default_concurrency() -> u32 {
    4
}
fn default_chunk_rows() -> u32 {
    4_000
}
fn default_true() -> bool {
    true
}

impl Default for FullOptions {
    fn default() -> Self {
        Self {
            concurrency: default_concurrency(),
            chunk_rows: default_chunk_rows(),
            write_concurrency: default_concurrency(),
            existing_tables: ExistingTablePolicy::default(),
            views: true,
            defer_indexes: true,
        }
    }
}

/// How the verify phase compares source and target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyOptions {
    /// Chunks compared at the same time (each holds one connection to each side).
    #[serde(default = "default_verify_concurrency")]
    pub concurrency: u32,
    /// Rows per checksummed chunk.
    #[serde(default = "default_verify_chunk_rows")]
    pub chunk_rows: u32,
    /// Upper bound on source rows verified per second (0: no limit), to spare a production
    /// source.
    #[serde(default)]
    pub rows_per_second: u64,
    /// While incremental sync runs: how many times a difference is re-checked after the sink
    /// applied past the source position it was read at, before it is reported.
    #[serde(default = "default_live_retries")]
    pub live_retries: u32,
    /// Differing rows a table's report carries (counts stay exact beyond it).
    #[serde(default = "default_max_diffs")]
    pub max_diffs_per_table: u32,
    /// After the verify phase of a syncing task: keep re-checking every row incremental sync
    /// changes (DM's validator), and report rows that stay different.
    #[serde(default)]
    pub continuous: bool,
    /// How long a row must stay different (past the applied position) before continuous
    /// verification reports it.
    #[serde(default = "default_report_after")]
    pub report_after_seconds: u32,
}

fn default_report_after() -> u32 {
    30
}

fn default_verify_concurrency() -> u32 {
    2
}
fn default_verify_chunk_rows() -> u32 {
    50_000
}
fn default_live_retries() -> u32 {
    5
}
fn default_max_diffs() -> u32 {
    1_000
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            concurrency: default_verify_concurrency(),
            chunk_rows: default_verify_chunk_rows(),
            rows_per_second: 0,
            live_retries: default_live_retries(),
            max_diffs_per_table: default_max_diffs(),
            continuous: false,
            report_after_seconds: default_report_after(),
        }
    }
}

fn default_phases() -> Vec<Phase> {
    vec![Phase::Precheck, Phase::Schema, Phase::Full]
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub name: String,
    pub source: Endpoint,
    pub target: Endpoint,
    pub objects: ObjectFilter,
    #[serde(default)]
    pub renames: Renames,
    #[serde(default = "default_phases")]
    pub phases: Vec<Phase>,
    #[serde(default)]
    pub full: FullOptions,
    #[serde(default)]
    pub incremental: IncrementalOptions,
    #[serde(default)]
    pub verify: VerifyOptions,
}

/// One thing wrong with a spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SpecProblem {
    /// Dotted path of the field, e.g. `source.port`.
    pub field: String,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (fix: {})", self.field, self.problem, self.fix)
    }
}

fn problem(field: &str, problem: impl Into<String>, fix: impl Into<String>) -> SpecProblem {
    SpecProblem { field: field.to_owned(), problem: problem.into(), fix: fix.into() }
}

impl TaskSpec {
    /// Region of the source side (store, full-migrator; CDC and FULL streams are written there).
    pub fn source_region<'a>(&'a self, default: &'a str) -> &'a str {
        self.source.region.as_deref().unwrap_or(default)
    }

    /// Region of the target side (dispatcher, sink, checker; the APPLY stream lives there).
    pub fn target_region<'a>(&'a self, default: &'a str) -> &'a str {
        self.target.region.as_deref().unwrap_or(default)
    }

    /// Region where `role` runs for this task.
    pub fn region_of<'a>(&'a self, role: crate::control::Role, default: &'a str) -> &'a str {
        if role.on_source_side() {
            self.source_region(default)
        } else {
            self.target_region(default)
        }
    }

    pub fn validate(&self) -> Vec<SpecProblem> {
        let mut out = Vec::new();
        if !crate::names::is_valid_task_name(&self.name) {
            out.push(problem(
                "name",
                format!("`{}` is not a valid task name", self.name),
                "use 1-48 lowercase letters, digits, '-' or '_', starting with a letter or digit",
            ));
        }
        validate_endpoint("source", &self.source, &mut out);
        validate_endpoint("target", &self.target, &mut out);
        if self.objects.include.is_empty() {
            out.push(problem(
                "objects.include",
                "no objects selected",
                "list databases or tables, e.g. [\"shop.*\"]",
            ));
        }
        for (i, p) in self.objects.include.iter().chain(&self.objects.exclude).enumerate() {
            if p.is_empty() || p.matches('.').count() > 1 {
                out.push(problem(
                    &format!("objects[{i}]"),
                    format!("pattern `{p}` is not `db` or `db.table`"),
                    "write `db` or `db.table`; use * and ? as wildcards",
                ));
            }
        }
        for (src, dst) in &self.renames.tables {
            if src.split('.').count() != 2 || dst.split('.').count() != 2 {
                out.push(problem(
                    &format!("renames.tables.{src}"),
                    format!("`{src}: {dst}` must map `db.table` to `db.table`"),
                    "write both sides as db.table",
                ));
            }
        }
        self.validate_phases(&mut out);
        self.validate_full(&mut out);
        self.validate_incremental(&mut out);
        self.validate_verify(&mut out);
        out
    }

    fn validate_phases(&self, out: &mut Vec<SpecProblem>) {
        if self.phases.is_empty() {
            out.push(problem("phases", "no phase selected", "list phases, e.g. [precheck, schema, full]"));
        }
        for p in &self.phases {
            if !SUPPORTED_PHASES.contains(p) {
                out.push(problem(
                    "phases",
                    format!("phase `{p:?}` is not available in this version of Ferry"),
                    "remove it from phases; supported: precheck, schema, full, incremental, verify",
                ));
            }
        }
        if self.phases.windows(2).any(|w| w[0] >= w[1]) {
            out.push(problem(
                "phases",
                "phases are repeated or out of order",
                "order them precheck, schema, full, incremental, verify",
            ));
        }
    }

    fn validate_incremental(&self, out: &mut Vec<SpecProblem>) {
        let i = &self.incremental;
        if !(1..=64).contains(&i.partitions) {
            out.push(problem(
                "incremental.partitions",
                format!("{} is out of range", i.partitions),
                "use 1 to 64",
            ));
        }
        if !(1..=16).contains(&i.fan_out) {
            out.push(problem("incremental.fan_out", format!("{} is out of range", i.fan_out), "use 1 to 16"));
        }
        if i.linger_ms > 1000 {
            out.push(problem(
                "incremental.linger_ms",
                format!("{} is out of range", i.linger_ms),
                "use 0 to 1000 (every millisecond adds to the delay while the sink keeps up)",
            ));
        }
        if !(1..=4096).contains(&i.max_atomic_mb) {
            out.push(problem(
                "incremental.max_atomic_mb",
                format!("{} is out of range", i.max_atomic_mb),
                "use 1 to 4096 (MiB the sink may hold of one split transaction)",
            ));
        }
        if i.retention_hours == 0 {
            out.push(problem("incremental.retention_hours", "0 keeps no changes", "use at least 1 (hours)"));
        }
        let starts: Vec<&str> = [
            (i.start.is_some(), "incremental.start"),
            (i.start_gtid.is_some(), "incremental.start_gtid"),
            (i.start_time.is_some(), "incremental.start_time"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect();
        if let Some(first) = starts.first() {
            if self.phases.contains(&Phase::Full) {
                out.push(problem(
                    first,
                    "a start point cannot be combined with the full phase",
                    format!("remove {first} (capture starts where the full copy starts), or remove the full phase"),
                ));
            }
        }
        if starts.len() > 1 {
            out.push(problem(
                starts[1],
                format!("only one start point may be given, not {}", starts.join(" and ")),
                "keep one of incremental.start, incremental.start_gtid and incremental.start_time",
            ));
        }
        if let Some(g) = &i.start_gtid {
            if let Err(e) = g.parse::<crate::position::GtidState>() {
                out.push(problem(
                    "incremental.start_gtid",
                    format!("{g:?} is neither a MariaDB GTID list nor a MySQL GTID set ({})", e.reason),
                    "MariaDB: domain-server-sequence, e.g. 0-1-1403 (several domains: 0-1-1403,1-2-77); \
                     MySQL: the executed set, e.g. 3e11fa47-71ca-11e1-9e33-c80aa9429562:1-77",
                ));
            }
        }
    }

    fn validate_verify(&self, out: &mut Vec<SpecProblem>) {
        let v = &self.verify;
        if !(1..=64).contains(&v.concurrency) {
            out.push(problem(
                "verify.concurrency",
                format!("{} is out of range", v.concurrency),
                "use 1 to 64",
            ));
        }
        if !(100..=1_000_000).contains(&v.chunk_rows) {
            out.push(problem(
                "verify.chunk_rows",
                format!("{} is out of range", v.chunk_rows),
                "use 100 to 1000000",
            ));
        }
        if v.continuous
            && !(self.phases.contains(&Phase::Incremental) && self.phases.contains(&Phase::Verify))
        {
            out.push(problem(
                "verify.continuous",
                "continuous verification re-checks the rows incremental sync changes, after the verify phase",
                "add incremental and verify to phases, or set verify.continuous to false",
            ));
        }
        if !(1..=100_000).contains(&v.max_diffs_per_table) {
            out.push(problem(
                "verify.max_diffs_per_table",
                format!("{} is out of range", v.max_diffs_per_table),
                "use 1 to 100000",
            ));
        }
    }

    fn validate_full(&self, out: &mut Vec<SpecProblem>) {
        let f = &self.full;
        if !(1..=64).contains(&f.concurrency) {
            out.push(problem(
                "full.concurrency",
                format!("{} is out of range", f.concurrency),
                "use 1 to 64",
            ));
        }
        if !(1..=64).contains(&f.write_concurrency) {
            out.push(problem(
                "full.write_concurrency",
                format!("{} is out of range", f.write_concurrency),
                "use 1 to 64",
            ));
        }
        if !(1..=100_000).contains(&f.chunk_rows) {
            out.push(problem(
                "full.chunk_rows",
                format!("{} is out of range", f.chunk_rows),
                "use 1 to 100000",
            ));
        }
    }
}

fn validate_endpoint(field: &str, e: &Endpoint, out: &mut Vec<SpecProblem>) {
    if e.host.trim().is_empty() {
        out.push(problem(&format!("{field}.host"), "host is empty", "set the database host name or address"));
    }
    if e.port == 0 {
        out.push(problem(
            &format!("{field}.port"),
            "port 0 is not valid",
            "set the database port, e.g. 3306",
        ));
    }
    if e.user.trim().is_empty() {
        out.push(problem(&format!("{field}.user"), "user is empty", "set the database user"));
    }
    if let Some(region) = &e.region {
        if !crate::names::is_valid_region(region) {
            out.push(problem(
                &format!("{field}.region"),
                format!("`{region}` is not a valid region name"),
                "use the JetStream domain name of the region: 1-32 letters, digits, '-' or '_'",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("ord*", "orders"));
        assert!(wildcard_match("o?ders", "orders"));
        assert!(!wildcard_match("ord", "orders"));
        assert!(wildcard_match("*_log", "access_log"));
        assert!(!wildcard_match("*_log", "access_logs"));
    }

    #[test]
    fn filters_and_renames() {
        let f = ObjectFilter {
            include: vec!["shop".into(), "crm.c*".into()],
            exclude: vec!["shop.tmp_*".into()],
        };
        assert!(f.includes(&TableRef::new("shop", "orders")));
        assert!(!f.includes(&TableRef::new("shop", "tmp_x")));
        assert!(f.includes(&TableRef::new("crm", "customers")));
        assert!(!f.includes(&TableRef::new("crm", "leads")));
        let r = Renames {
            databases: [("shop".to_string(), "shop2".to_string())].into(),
            tables: [("shop.orders".to_string(), "archive.orders_v2".to_string())].into(),
        };
        assert_eq!(r.target_of(&TableRef::new("shop", "orders")), TableRef::new("archive", "orders_v2"));
        assert_eq!(r.target_of(&TableRef::new("shop", "items")), TableRef::new("shop2", "items"));
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret("hunter2".into());
        assert_eq!(format!("{s} {s:?}"), "*** ***");
    }

    #[test]
    fn one_start_point_and_a_valid_gtid() {
        let spec = |incremental: serde_json::Value| -> TaskSpec {
            let endpoint = serde_json::json!({"kind": "mariadb", "host": "h", "port": 3306, "user": "u", "password": "p"});
            serde_json::from_value(serde_json::json!({
                "name": "t", "source": endpoint, "target": endpoint, "objects": {"include": ["shop"]},
                "phases": ["precheck", "incremental"], "incremental": incremental,
            }))
            .unwrap_or_else(|e| panic!("spec: {e}"))
        };
        let fields = |s: TaskSpec| s.validate().into_iter().map(|p| p.field).collect::<Vec<_>>();
        assert!(fields(spec(serde_json::json!({"start_gtid": "0-1-100,1-2-7"}))).is_empty());
        assert!(fields(spec(serde_json::json!({"start_time": "2026-11-21T10:00:00Z"}))).is_empty());
        assert_eq!(fields(spec(serde_json::json!({"start_gtid": "0-1"}))), vec!["incremental.start_gtid"]);
        let mysql = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-77:80,4e11fa47-71ca-11e1-9e33-c80aa9429562:5";
        assert!(fields(spec(serde_json::json!({"start_gtid": mysql}))).is_empty());
        for bad in [
            "3e11fa47:1-7",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:7-1",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562",
            ",",
        ] {
            assert_eq!(
                fields(spec(serde_json::json!({"start_gtid": bad}))),
                vec!["incremental.start_gtid"],
                "{bad}"
            );
        }
        assert_eq!(
            fields(spec(serde_json::json!({"start_gtid": "0-1-5", "start_time": "2026-11-21T10:00:00Z"}))),
            vec!["incremental.start_time"]
        );
        assert!(fields(spec(serde_json::json!({"fan_out": 4}))).is_empty());
        assert_eq!(fields(spec(serde_json::json!({"fan_out": 0}))), vec!["incremental.fan_out"]);
        assert_eq!(fields(spec(serde_json::json!({"fan_out": 17}))), vec!["incremental.fan_out"]);
        assert!(fields(spec(serde_json::json!({"linger_ms": 0}))).is_empty());
        assert_eq!(fields(spec(serde_json::json!({"linger_ms": 1001}))), vec!["incremental.linger_ms"]);
        assert!(fields(spec(serde_json::json!({"max_atomic_mb": 1}))).is_empty());
        assert_eq!(fields(spec(serde_json::json!({"max_atomic_mb": 0}))), vec!["incremental.max_atomic_mb"]);
    }
}
