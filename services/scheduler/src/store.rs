//! Reading and writing the control-plane records of one task.

use async_nats::jetstream::Context;
use ferry_kit::nats::{kv_entry, kv_get, kv_keys_with_prefix, kv_put, Buckets, Nats};
use ferry_kit::KitError;
use ferry_schemas::check::{CheckerStatus, WatchStatus};
use ferry_schemas::control::{Assignment, CheckWork, DesiredState, Role, TaskRecord};
use ferry_schemas::names;
use ferry_schemas::status::{
    DispatcherStatus, FullMigratorStatus, SchedulerStatus, SinkStatus, StoreStatus, TableProgress,
};
use ferry_schemas::task::TaskSpec;

pub const COMPONENT: &str = "scheduler";
/// Roles that take part in the phases this build runs.
pub const DATA_ROLES: &[Role] = &[Role::Store, Role::FullMigrator, Role::Dispatcher, Role::Sink];

#[derive(Clone)]
pub struct Store {
    pub buckets: Buckets,
    pub nats: Nats,
}

pub use ferry_kit::watermark::Watermark;

impl Store {
    pub fn new(rt: &ferry_kit::runtime::Runtime) -> Self {
        Self { buckets: rt.buckets.clone(), nats: rt.nats.clone() }
    }

    /// JetStream of the task's source region (CDC, FULL and SCHEMA streams are written there).
    pub fn source_js(&self, spec: &TaskSpec) -> Context {
        self.nats.js_in(spec.source_region(&self.nats.default_region))
    }

    /// JetStream of the task's target region (APPLY and CHECK streams, mirrors of CDC and FULL).
    pub fn target_js(&self, spec: &TaskSpec) -> Context {
        self.nats.js_in(spec.target_region(&self.nats.default_region))
    }

    /// The applied watermark (see [`ferry_kit::watermark`]), read in the target region.
    pub async fn applied_watermark(&self, spec: &TaskSpec) -> Option<Watermark> {
        ferry_kit::watermark::applied(&self.target_js(spec), &spec.name).await
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

    pub async fn checker_status(&self, task: &str) -> Result<Option<CheckerStatus>, KitError> {
        kv_get(&self.buckets.status, &names::status_key(task, "checker")).await
    }

    pub async fn watch_status(&self, task: &str) -> Result<Option<WatchStatus>, KitError> {
        kv_get(&self.buckets.status, &names::status_key(task, "checker-watch")).await
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

    /// Assigns every data role of the task, each to the instances of its side's region.
    pub async fn assign(&self, spec: &TaskSpec, desired: DesiredState, epoch: u64) -> Result<(), KitError> {
        for role in DATA_ROLES {
            let a = Assignment {
                task: spec.name.clone(),
                role: *role,
                desired,
                phases: spec.phases.clone(),
                epoch,
                check: None,
                region: Some(spec.region_of(*role, &self.nats.default_region).to_owned()),
            };
            kv_put(&self.buckets.tasks, &names::assignment_key(&spec.name, role.as_str()), &a).await?;
        }
        Ok(())
    }

    /// The checker's assignment: what to do (`work`) in which checker epoch.
    pub async fn assign_checker(
        &self,
        spec: &TaskSpec,
        desired: DesiredState,
        epoch: u64,
        work: CheckWork,
    ) -> Result<(), KitError> {
        let a = Assignment {
            task: spec.name.clone(),
            role: Role::Checker,
            desired,
            phases: spec.phases.clone(),
            epoch,
            check: Some(work),
            region: Some(spec.region_of(Role::Checker, &self.nats.default_region).to_owned()),
        };
        kv_put(&self.buckets.tasks, &names::assignment_key(&spec.name, Role::Checker.as_str()), &a)
            .await
            .map(|_| ())
    }

    pub async fn assignment(&self, task: &str, role: Role) -> Result<Option<Assignment>, KitError> {
        kv_get(&self.buckets.tasks, &names::assignment_key(task, role.as_str())).await
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
        for role in DATA_ROLES.iter().chain([&Role::Checker]) {
            del(&self.buckets.tasks, names::assignment_key(task, role.as_str())).await?;
        }
        for t in tables {
            del(&self.buckets.status, names::table_progress_key(task, &t.database, &t.table)).await?;
        }
        for c in [COMPONENT, "full-migrator", "sink", "checker", "checker-watch"] {
            del(&self.buckets.status, names::status_key(task, c)).await?;
        }
        del(&self.buckets.tasks, names::task_key(task)).await
    }
}
