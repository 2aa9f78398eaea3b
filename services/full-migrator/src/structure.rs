//! Publishing the structure: one `CreateTable` per table on its own subject (before any of its
//! rows), then the views in dependency order. Message ids are fixed per object, so publishing
//! again after a crash is harmless.

use crate::ddl;
use crate::error::FullError;
use crate::plan::{Plan, TablePlan};
use bytes::Bytes;
use ferry_kit::nats::Nats;
use ferry_mysql::catalog;
use ferry_schemas::envelope::Envelope;
use ferry_schemas::full::{CreateTable, CreateView, FullEvent};
use ferry_schemas::names;
use ferry_schemas::table::TableRef;
use ferry_schemas::task::TaskSpec;
use mysql_async::Conn;

/// Publishes every table's `CreateTable`. With `defer_indexes`, secondary indexes travel
/// separately and are built by the sink when the table's rows are in.
pub async fn publish_tables(
    nats: &Nats,
    conn: &mut Conn,
    spec: &TaskSpec,
    tables: &[&TablePlan],
    defer_indexes: bool,
) -> Result<(), FullError> {
    for t in tables {
        let source_ddl = catalog::show_create_table(conn, &t.source).await?;
        let target_ddl = ddl::table_ddl(&source_ddl, &t.source, &t.target, &spec.renames);
        let (target_ddl, deferred_indexes) =
            if defer_indexes { ddl::split_secondary_indexes(&target_ddl) } else { (target_ddl, Vec::new()) };
        let event = FullEvent::CreateTable(CreateTable {
            source: t.source.clone(),
            target: t.target.clone(),
            schema: t.schema.clone(),
            ddl: target_ddl,
            deferred_indexes,
            existing: spec.full.existing_tables,
        });
        let id = names::full_ddl_msg_id(&spec.name, &t.source.database, &t.source.table);
        let subject = names::full_table_subject(&spec.name, &t.source.database, &t.source.table);
        publish(nats, &spec.name, subject, id, event).await?;
    }
    Ok(())
}

/// Publishes the views, each after the views it selects from. Returns how many.
pub async fn publish_views(
    nats: &Nats,
    conn: &mut Conn,
    spec: &TaskSpec,
    plan: &Plan,
) -> Result<u64, FullError> {
    let mut pending: Vec<(TableRef, TableRef, String)> = Vec::new();
    for v in &plan.views {
        pending.push((v.source.clone(), v.target.clone(), catalog::show_create_view(conn, &v.source).await?));
    }
    let mut done: Vec<TableRef> = Vec::new();
    let mut count = 0;
    while !pending.is_empty() {
        let names_pending: Vec<TableRef> = pending.iter().map(|p| p.0.clone()).collect();
        let ready = pending
            .iter()
            .position(|(src, _, ddl_text)| {
                ddl::referenced_tables(ddl_text)
                    .iter()
                    .all(|r| r == src || !names_pending.contains(r) || done.contains(r))
            })
            .unwrap_or(0);
        let (source, target, source_ddl) = pending.remove(ready);
        let event = FullEvent::CreateView(CreateView {
            ddl: ddl::view_ddl(&source_ddl, &source, &target, &spec.renames),
            source: source.clone(),
            target,
            existing: spec.full.existing_tables,
        });
        let id = names::full_view_msg_id(&spec.name, &source.database, &source.table);
        publish(nats, &spec.name, names::full_task_subject(&spec.name), id, event).await?;
        done.push(source);
        count += 1;
    }
    Ok(count)
}

pub async fn publish(
    nats: &Nats,
    task: &str,
    subject: String,
    id: String,
    event: FullEvent,
) -> Result<(), FullError> {
    let env = Envelope::new(task, id.clone(), None, event);
    let payload =
        serde_json::to_vec(&env).map_err(|source| ferry_kit::KitError::Json { what: id.clone(), source })?;
    nats.publish_dedup(subject, &id, Bytes::from(payload)).await?;
    Ok(())
}
