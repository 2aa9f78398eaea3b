//! The committed JSON Schemas and examples must match the Rust types.
//! Run with `BLESS=1` to rewrite them after an intended change.

use chrono::{TimeZone, Utc};
use ferry_schemas::cdc::{
    ApplyEvent, CdcEvent, ChangeOp, DdlEvent, Heartbeat, RowChange, SchemaRecord, TableVersion, Transaction,
};
use ferry_schemas::check::{
    CheckEvent, CheckTotals, CheckerStatus, ColumnDiff, DiffKind, RowDiff, TableCheck,
};
use ferry_schemas::control::{Assignment, CheckWork, DesiredState, Member, Role, TaskRecord};
use ferry_schemas::envelope::Envelope;
use ferry_schemas::full::{BatchColumn, CreateTable, ExistingTablePolicy, FullEvent, RowBatch, TableDone};
use ferry_schemas::position::{BinlogFilePos, GtidState, SourcePosition};
use ferry_schemas::status::{
    DispatcherStatus, FullMigratorStatus, IncrementalApplied, SchedulerStatus, SinkStatus, StoreStatus,
    TableProgress, TaskState, TaskStatusView,
};
use ferry_schemas::table::{ColumnDef, KeyKind, TableRef, TableSchema};
use ferry_schemas::task::{
    Endpoint, FullOptions, IncrementalOptions, ObjectFilter, Phase, Renames, Secret, TaskSpec,
};
use ferry_schemas::value::ColumnType;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check_file(path: PathBuf, expected: &str, drift: &mut Vec<String>) {
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, expected).expect("write blessed file");
        return;
    }
    match std::fs::read_to_string(&path) {
        Ok(actual) if actual == expected => {}
        _ => drift.push(path.display().to_string()),
    }
}

fn contract<T: Serialize + DeserializeOwned + schemars::JsonSchema + PartialEq + std::fmt::Debug>(
    name: &str,
    example: T,
    drift: &mut Vec<String>,
) {
    let schema = serde_json::to_string_pretty(&schemars::schema_for!(T)).expect("schema") + "\n";
    check_file(root().join("json").join(format!("{name}.schema.json")), &schema, drift);
    let text = serde_json::to_string_pretty(&example).expect("example") + "\n";
    let back: T = serde_json::from_str(&text).expect("example deserializes");
    assert_eq!(back, example, "{name} example does not round-trip");
    check_file(root().join("examples").join(format!("{name}.json")), &text, drift);
}

fn orders() -> TableSchema {
    TableSchema {
        table: TableRef::new("shop", "orders"),
        columns: vec![
            ColumnDef {
                name: "id".into(),
                sql_type: "bigint(20) unsigned".into(),
                column_type: ColumnType::Int { bytes: 8, unsigned: true },
                nullable: false,
                generated: false,
            },
            ColumnDef {
                name: "amount".into(),
                sql_type: "decimal(12,2)".into(),
                column_type: ColumnType::Decimal { precision: 12, scale: 2 },
                nullable: true,
                generated: false,
            },
        ],
        key_kind: KeyKind::Primary,
        key: vec!["id".into()],
        unique_keys: vec![vec!["id".into()]],
    }
}

fn p0() -> SourcePosition {
    SourcePosition {
        binlog: BinlogFilePos { file: "mysql-bin.000003".into(), offset: 871 },
        gtid: Some(GtidState::Mariadb("0-1-1402".parse().expect("gtid"))),
        server_id: Some(1),
    }
}

fn at() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 6, 0, 0).single().expect("time")
}

fn spec() -> TaskSpec {
    TaskSpec {
        name: "shop-move".into(),
        source: Endpoint {
            kind: Default::default(),
            host: "10.0.0.5".into(),
            port: 3306,
            user: "ferry".into(),
            password: Secret("enc:v1:...".into()),
            region: Some("eu-west".into()),
        },
        target: Endpoint {
            kind: ferry_schemas::task::DbKind::Mariadb,
            host: "10.0.1.7".into(),
            port: 3306,
            user: "ferry".into(),
            password: Secret("enc:v1:...".into()),
            region: Some("eu-central".into()),
        },
        objects: ObjectFilter { include: vec!["shop.*".into()], exclude: vec!["shop.tmp_*".into()] },
        renames: Renames {
            databases: [("shop".into(), "shop_new".into())].into(),
            tables: Default::default(),
        },
        phases: vec![Phase::Precheck, Phase::Schema, Phase::Full, Phase::Incremental, Phase::Verify],
        full: FullOptions::default(),
        incremental: IncrementalOptions::default(),
        verify: Default::default(),
    }
}

#[test]
fn schemas_and_examples_match_the_types() {
    let mut drift = Vec::new();
    let create = FullEvent::CreateTable(CreateTable {
        source: TableRef::new("shop", "orders"),
        target: TableRef::new("shop_new", "orders"),
        schema: orders(),
        ddl: "CREATE TABLE `shop_new`.`orders` (`id` bigint(20) unsigned NOT NULL, `amount` decimal(12,2), PRIMARY KEY (`id`))".into(),
        deferred_indexes: vec!["KEY `k_amount` (`amount`)".into()],
        existing: ExistingTablePolicy::Fail,
    });
    contract(
        "full_event_create_table",
        Envelope {
            position: Some(p0()),
            produced_at: at(),
            ..Envelope::new("shop-move", "shop-move:ddl:shop.orders".into(), None, create)
        },
        &mut drift,
    );
    let rows = FullEvent::Rows(RowBatch {
        source: TableRef::new("shop", "orders"),
        target: TableRef::new("shop_new", "orders"),
        chunk: 0,
        attempt: 0,
        keyless: false,
        low_key: None,
        high_key: Some(vec![json!(2)]),
        columns: orders()
            .columns
            .iter()
            .map(|c| BatchColumn { name: c.name.clone(), column_type: c.column_type.clone() })
            .collect(),
        rows: vec![vec![json!(1), json!("10.50")], vec![json!(2), json!(null)]],
    });
    contract(
        "full_event_rows",
        Envelope {
            produced_at: at(),
            ..Envelope::new("shop-move", "shop-move:rows:shop.orders:0:0".into(), None, rows)
        },
        &mut drift,
    );
    let done = FullEvent::TableDone(TableDone {
        source: TableRef::new("shop", "orders"),
        target: TableRef::new("shop_new", "orders"),
        keyless: false,
        attempt: 0,
        chunks: 1,
    });
    contract(
        "full_event_table_done",
        Envelope {
            produced_at: at(),
            ..Envelope::new("shop-move", "shop-move:done:shop.orders:0".into(), None, done)
        },
        &mut drift,
    );
    let orders_v1 = TableVersion {
        table: TableRef::new("shop", "orders"),
        version: 1,
        columns: orders()
            .columns
            .iter()
            .map(|c| BatchColumn { name: c.name.clone(), column_type: c.column_type.clone() })
            .collect(),
        key: vec!["id".into()],
        unique_keys: vec![vec!["id".into()]],
        generated: vec![],
    };
    let txn = CdcEvent::Transaction(Transaction {
        gtid: Some("0-1-1403".into()),
        committed_at: at(),
        part: 0,
        last_part: true,
        begin: Some(BinlogFilePos { file: "mysql-bin.000003".into(), offset: 700 }),
        tables: vec![orders_v1.clone()],
        changes: vec![
            RowChange {
                table: 0,
                op: ChangeOp::Insert,
                before: None,
                after: Some(vec![json!(3), json!("7.25")]),
            },
            RowChange {
                table: 0,
                op: ChangeOp::Update,
                before: Some(vec![json!(1), json!("10.50")]),
                after: Some(vec![json!(1), json!("11.00")]),
            },
            RowChange {
                table: 0,
                op: ChangeOp::Delete,
                before: Some(vec![json!(2), json!(null)]),
                after: None,
            },
        ],
    });
    contract(
        "cdc_transaction",
        Envelope {
            position: Some(p0()),
            produced_at: at(),
            ..Envelope::new("shop-move", "shop-move:cdc:mysql-bin.000003:871:0".into(), None, txn.clone())
        },
        &mut drift,
    );
    contract(
        "apply_event",
        Envelope {
            position: Some(p0()),
            produced_at: at(),
            ..Envelope::new(
                "shop-move",
                "shop-move:apply:17".into(),
                None,
                ApplyEvent {
                    cdc_seq: 17,
                    partition: Some(3),
                    prev_partition_seq: 12,
                    prev_barrier_seq: 9,
                    partition_last: vec![],
                    after: vec![ferry_schemas::cdc::After { partition: 1, seq: 15 }],
                    then: vec![ferry_schemas::cdc::ThenTransaction {
                        cdc_seq: 18,
                        position: Some(p0()),
                        transaction: match &txn {
                            CdcEvent::Transaction(t) => t.clone(),
                            other => panic!("the example is a transaction: {other:?}"),
                        },
                    }],
                    event: txn,
                },
            )
        },
        &mut drift,
    );
    contract(
        "schema_record",
        SchemaRecord {
            table: TableRef::new("shop", "orders"),
            from: BinlogFilePos { file: "mysql-bin.000003".into(), offset: 871 },
            schema: Some(orders()),
        },
        &mut drift,
    );
    contract(
        "store_status",
        StoreStatus {
            position: Some(p0()),
            source_time: Some(at()),
            transactions: 120,
            rows: 480,
            updated_at: Some(at()),
            ..Default::default()
        },
        &mut drift,
    );
    contract(
        "dispatcher_status",
        DispatcherStatus { cdc_seq: 120, barriers: 3, updated_at: Some(at()), ..Default::default() },
        &mut drift,
    );
    let ddl = CdcEvent::Ddl(DdlEvent {
        gtid: Some("0-1-1404".into()),
        committed_at: at(),
        database: Some("shop".into()),
        sql: "ALTER TABLE orders ADD COLUMN note VARCHAR(20)".into(),
        new_versions: vec![TableVersion { version: 2, ..orders_v1 }],
        tables: vec![TableRef::new("shop", "orders")],
    });
    contract(
        "cdc_ddl",
        Envelope {
            position: Some(p0()),
            produced_at: at(),
            ..Envelope::new("shop-move", "shop-move:mysql-bin.000003:1200:0".into(), None, ddl)
        },
        &mut drift,
    );
    let hb = CdcEvent::Heartbeat(Heartbeat { source_time: at() });
    contract(
        "cdc_heartbeat",
        Envelope {
            position: Some(p0()),
            produced_at: at(),
            ..Envelope::new("shop-move", "shop-move:hb:1795245279".into(), None, hb)
        },
        &mut drift,
    );
    contract("task_spec", spec(), &mut drift);
    contract(
        "task_record",
        TaskRecord {
            spec: spec(),
            desired: DesiredState::Running,
            generation: 1,
            skip_ddl: vec![],
            corrections: 0,
            verifications: 0,
            created_at: at(),
            updated_at: at(),
        },
        &mut drift,
    );
    contract(
        "assignment",
        Assignment {
            task: "shop-move".into(),
            role: Role::FullMigrator,
            desired: DesiredState::Running,
            phases: vec![Phase::Schema, Phase::Full],
            epoch: 1,
            check: None,
            region: Some("eu-west".into()),
        },
        &mut drift,
    );
    contract(
        "member",
        Member {
            instance: "sink-east-1".into(),
            service: "sink".into(),
            region: "eu-central".into(),
            version: "0.1.0".into(),
            started_at: at(),
            heartbeat_at: at(),
            jobs: vec!["shop-move".into()],
        },
        &mut drift,
    );
    contract(
        "scheduler_status",
        SchedulerStatus {
            state: TaskState::Running,
            phase: Some(Phase::Full),
            precheck: vec![],
            error: None,
            epoch: 1,
            running_since: Some(at()),
            checker_epoch: 0,
            verifications_started: 0,
            updated_at: at(),
        },
        &mut drift,
    );
    contract(
        "full_migrator_status",
        FullMigratorStatus {
            p0: Some(p0()),
            tables: vec![TableRef::new("shop", "orders")],
            schema_published: true,
            updated_at: Some(at()),
            ..Default::default()
        },
        &mut drift,
    );
    contract(
        "table_progress",
        TableProgress {
            source: TableRef::new("shop", "orders"),
            target: TableRef::new("shop_new", "orders"),
            keyless: false,
            estimated_rows: 1000,
            attempt: 0,
            chunks_published: 1,
            rows_published: 2,
            high_key: Some(vec![json!(2)]),
            done: false,
            note: None,
        },
        &mut drift,
    );
    contract(
        "sink_status",
        SinkStatus {
            tables: [("shop.orders".into(), Default::default())].into(),
            incremental: Some(IncrementalApplied {
                position: Some(p0()),
                source_time: Some(at()),
                delay_seconds: 0.4,
                safe_mode: false,
                transactions: 120,
                rows: 480,
                ddl: 1,
                ..Default::default()
            }),
            updated_at: Some(at()),
            ..Default::default()
        },
        &mut drift,
    );
    contract(
        "task_status_view",
        TaskStatusView {
            name: "shop-move".into(),
            state: TaskState::Running,
            phase: Some(Phase::Full),
            phases: spec().phases,
            error: None,
            retrying: vec![],
            precheck: vec![],
            p0: Some(p0()),
            p1: None,
            tables: vec![],
            views_published: 0,
            views_applied: 0,
            source_position: Some(p0()),
            applied_position: Some(p0()),
            delay_seconds: Some(0.4),
            incremental: None,
            check: None,
            watch: None,
        },
        &mut drift,
    );
    let users = TableCheck {
        source: TableRef::new("shop", "users"),
        target: TableRef::new("shop_new", "users"),
        columns: vec![
            BatchColumn { name: "id".into(), column_type: ColumnType::Int { bytes: 8, unsigned: true } },
            BatchColumn { name: "email".into(), column_type: ColumnType::Text { charset: "utf8mb4".into() } },
        ],
        key: vec!["id".into()],
        source_rows: 1000,
        target_rows: 1000,
        chunks: 1,
        chunks_differing: 1,
        changed: 1,
        diffs: vec![RowDiff {
            kind: DiffKind::Changed,
            key: vec![json!(7)],
            source_row: Some(vec![json!(7), json!("ann@example.com")]),
            target_row: None,
            columns: vec![ColumnDiff {
                column: "email".into(),
                source: json!("ann@example.com"),
                target: json!("Ann@example.com"),
            }],
        }],
        elapsed_ms: 40,
        ..Default::default()
    };
    contract(
        "check_table",
        Envelope {
            position: Some(p0()),
            produced_at: at(),
            ..Envelope::new(
                "shop-move",
                "shop-move:check:3:shop.users".into(),
                None,
                CheckEvent::Table(users.clone()),
            )
        },
        &mut drift,
    );
    let mut totals = CheckTotals::default();
    totals.add(&users);
    contract(
        "checker_status",
        CheckerStatus {
            epoch: 3,
            work: Some(CheckWork::Verify),
            done: true,
            started_at: Some(at()),
            finished_at: Some(at()),
            tables_total: 1,
            totals,
            results: [("shop.users".into(), 1)].into(),
            source_position: Some(p0()),
            updated_at: Some(at()),
            ..Default::default()
        },
        &mut drift,
    );
    assert!(
        drift.is_empty(),
        "schemas or examples drifted from the types (run with BLESS=1 to rewrite): {drift:?}"
    );
}
