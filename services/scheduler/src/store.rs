//! Reading and writing the control-plane records of one task.

use chrono::{DateTime, Utc};
use ferry_kit::nats::{kv_entry, kv_get, kv_keys_with_prefix, kv_put, Buckets};
use ferry_kit::KitError;
use ferry_schemas::cdc::{CdcEvent, Transaction};
use ferry_schemas::control::{Assignment, DesiredState, Role, TaskRecord};
use ferry_schemas::envelope::Envelope;
use ferry_schemas::names;
use ferry_schemas::position::SourcePosition;
use ferry_schemas::status::{
    DispatcherStatus, FullMigratorStatus, SchedulerStatus, SinkStatus, StoreStatus, TableProgress,
};
use ferry_schemas::task::Phase;

pub const COMPONENT: &str = "scheduler";
/// Roles that take part in the phases this build runs.
pub const DATA_ROLES: &[Role] = &[Role::Store, Role::FullMigrator, Role::Dispatcher, Role::Sink];

#[derive(Clone)]
pub struct Store {
    pub buckets: Buckets,
    pub js: async_nats::jetstream::Context,
}

/// How far incremental sync has applied *everything*: the source position and time of the
/// newest change such that it and every change before it are on the target.
#[derive(Clone, Debug)]
pub struct Watermark {
    pub position: SourcePosition,
    pub source_time: DateTime<Utc>,
}

impl Store {
    /// The applied watermark, from the streams: APPLY messages below the APPLY stream's first
    /// remaining one are all applied (work-queue retention deletes a message when the sink acks
    /// it after its commit), and the CDC message behind the newest of them says where and when
    /// on the source that is. The sink's own record is the newest change it applied, which
    /// may be ahead of an older one still pending in another partition. `None` before
    /// anything was applied or when NATS cannot be read.
    pub async fn applied_watermark(&self, task: &str) -> Option<Watermark> {
        let offset = self.dispatcher_status(task).await.ok()?.apply_offset?;
        let mut apply = self.js.get_stream(names::apply_stream(task)).await.ok()?;
        let state = apply.info().await.ok()?.state.clone();
        let applied =
            if state.messages == 0 { state.last_sequence } else { state.first_sequence.saturating_sub(1) };
        let cdc_seq = u64::try_from(i64::try_from(applied).ok()? - offset).ok().filter(|s| *s > 0)?;
        let cdc = self.js.get_stream(names::cdc_stream(task)).await.ok()?;
        let msg = cdc.get_raw_message(cdc_seq).await.ok()?;
        let env: Envelope<CdcEvent> = serde_json::from_slice(&msg.payload).ok()?;
        let mut position = env.position?;
        let source_time = match &env.body {
            CdcEvent::Transaction(Transaction {
                last_part: false, begin: Some(begin), committed_at, ..
            }) => {
                // Part of a split transaction whose later parts are not applied: the source
                // position reached is the transaction's beginning.
                position.binlog = begin.clone();
                *committed_at
            }
            CdcEvent::Transaction(t) => t.committed_at,
            CdcEvent::Ddl(d) => d.committed_at,
            CdcEvent::Heartbeat(h) => h.source_time,
        };
        Some(Watermark { position, source_time })
    }

    pub async fn task_names(&self) -> Result<Vec<String>, KitError> {
        let keys = kv_keys_with_prefix(&self.buckets.tasks, "task.").await?;
        let mut names: Vec<String> =
            keys.into_iter().filter_map(|k| k.strip_prefix("task.").map(str::to_owned)).collect();
        names.sort();
        Ok(names)
    }

    pub async fn record(&self, task: &str) -> Result<Option<(TaskRecord, u64)>, KitError> {
        kv_entry(&self.buckets.tasks, &names::task_key(task)).await
    }

    /// Writes a record if it is still at `revision` (0 = must not exist).
    pub async fn put_record(&self, task: &str, record: &TaskRecord, revision: u64) -> Result<bool, KitError> {
        let bytes = serde_json::to_vec(record)
            .map_err(|source| KitError::Json { what: "task record".into(), source })?;
        let key = names::task_key(task);
        let result = if revision == 0 {
            self.buckets.tasks.create(&key, bytes.into()).await.map(|_| ()).map_err(|e| e.to_string())
        } else {
            self.buckets
                .tasks
                .update(&key, bytes.into(), revision)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        Ok(result.is_ok())
    }

    pub async fn scheduler_status(&self, task: &str) -> Result<Option<SchedulerStatus>, KitError> {
        kv_get(&self.buckets.status, &names::status_key(task, COMPONENT)).await
    }

    pub async fn put_scheduler_status(&self, task: &str, status: &SchedulerStatus) -> Result<(), KitError> {
        kv_put(&self.buckets.status, &names::status_key(task, COMPONENT), status).await.map(|_| ())
    }

    pub async fn full_status(&self, task: &str) -> Result<FullMigratorStatus, KitError> {
        Ok(kv_get(&self.buckets.status, &names::status_key(task, "full-migrator")).await?.unwrap_or_default())
    }

    pub async fn store_status(&self, task: &str) -> Result<StoreStatus, KitError> {
        Ok(kv_get(&self.buckets.status, &names::status_key(task, "store")).await?.unwrap_or_default())
    }

    pub async fn dispatcher_status(&self, task: &str) -> Result<DispatcherStatus, KitError> {
        Ok(kv_get(&self.buckets.status, &names::status_key(task, "dispatcher")).await?.unwrap_or_default())
    }

    pub async fn sink_status(&self, task: &str) -> Result<SinkStatus, KitError> {
        Ok(kv_get(&self.buckets.status, &names::status_key(task, "sink")).await?.unwrap_or_default())
    }

    pub async fn table_progress(
        &self,
        task: &str,
        database: &str,
        table: &str,
    ) -> Result<Option<TableProgress>, KitError> {
        kv_get(&self.buckets.status, &names::table_progress_key(task, database, table)).await
    }

    pub async fn assign(
        &self,
        task: &str,
        desired: DesiredState,
        phases: &[Phase],
        epoch: u64,
    ) -> Result<(), KitError> {
        for role in DATA_ROLES {
            let a =
                Assignment { task: task.to_owned(), role: *role, desired, phases: phases.to_vec(), epoch };
            kv_put(&self.buckets.tasks, &names::assignment_key(task, role.as_str()), &a).await?;
        }
        Ok(())
    }

    /// Removes every record of a task from the buckets.
    pub async fn purge_task(
        &self,
        task: &str,
        tables: &[ferry_schemas::table::TableRef],
    ) -> Result<(), KitError> {
        let del = |kv: &async_nats::jetstream::kv::Store, key: String| {
            let kv = kv.clone();
            async move { kv.purge(&key).await.map_err(|e| KitError::nats(format!("deleting {key}"), e)) }
        };
        for role in DATA_ROLES {
            del(&self.buckets.tasks, names::assignment_key(task, role.as_str())).await?;
        }
        for t in tables {
            del(&self.buckets.status, names::table_progress_key(task, &t.database, &t.table)).await?;
        }
        for c in [COMPONENT, "full-migrator", "sink"] {
            del(&self.buckets.status, names::status_key(task, c)).await?;
        }
        del(&self.buckets.tasks, names::task_key(task)).await
    }
}
