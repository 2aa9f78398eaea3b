//! Deleting a task: its checkpoint rows in the target, its streams and its records, so that a
//! task created again under the same name starts clean. Target tables are user data and stay.

use crate::store::Store;
use ferry_kit::runtime::Runtime;
use ferry_schemas::control::TaskRecord;
use ferry_schemas::names::{self, TARGET_META_DB};
use ferry_schemas::table::quote_ident;
use mysql_async::prelude::*;
use std::time::Duration;

pub async fn delete_task(rt: &Runtime, store: &Store, record: &TaskRecord) -> Result<(), String> {
    let task = &record.spec.name;
    let mut spec = record.spec.clone();
    rt.secrets.open_spec(&mut spec).map_err(|e| e.to_string())?;
    let mut conn = ferry_mysql::conn::connect_once(&spec.target, Duration::from_secs(10))
        .await
        .map_err(|e| format!("cannot delete the task's checkpoints in the target ({e}); make the target reachable and retry"))?;
    let meta = quote_ident(TARGET_META_DB);
    for table in ["full_chunks", "full_objects", "apply_checkpoints", "apply_fanout"] {
        let r = conn.exec_drop(format!("DELETE FROM {meta}.{table} WHERE task = ?"), (task,)).await;
        match r {
            Ok(()) => {}
            Err(e)
                if ferry_mysql::error::server_code(&e) == Some(1146)
                    || ferry_mysql::error::server_code(&e) == Some(1049) => {}
            Err(e) => return Err(format!("cannot delete the task's checkpoints in the target: {e}")),
        }
    }
    let _ = conn.disconnect().await;
    // Mirrors in the target region go first: a mirror of a deleted stream keeps retrying.
    for js in [store.target_js(&record.spec), store.source_js(&record.spec)] {
        for stream in [
            names::full_stream(task),
            names::cdc_stream(task),
            names::apply_stream(task),
            names::schema_stream(task),
            names::check_stream(task),
        ] {
            if js.get_stream(&stream).await.is_ok() {
                js.delete_stream(&stream).await.map_err(|e| format!("cannot delete stream {stream}: {e}"))?;
            }
        }
    }
    let fm = store.full_status(task).await.map_err(|e| e.to_string())?;
    store.purge_task(task, &fm.tables).await.map_err(|e| e.to_string())
}
