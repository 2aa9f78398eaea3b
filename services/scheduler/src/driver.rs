//! The phase driver: moves every task through its phases by reading the components' status
//! and writing their assignments.
//!
//! The scheduler is the only writer of assignments and of its own status key; the API writes
//! only task records (desired state and a generation counter). Each tick the driver compares:
//! a record whose generation is newer than the running epoch is (re)started from precheck; a
//! paused or stopped record pauses or stops the assignments; a running task is paused with the
//! first component error newer than its start, and completed when the sink has applied every
//! chunk the full-migrator published. Because every decision is recomputed from the records,
//! a restarted scheduler simply continues.

use crate::events;
use crate::precheck;
use crate::store::Store;
use crate::verification;
use crate::view::initial_status;
use ferry_kit::error::report;
use ferry_kit::runtime::Runtime;
use ferry_kit::KitError;
use ferry_schemas::control::{DesiredState, TaskRecord};
use ferry_schemas::names;
use ferry_schemas::status::{CheckOutcome, CheckResult, ErrorReport, SchedulerStatus, TaskState};
use ferry_schemas::task::Phase;
use std::collections::HashMap;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const TICK: Duration = Duration::from_millis(100);

pub struct Driver {
    rt: Runtime,
    store: Store,
    prechecks: HashMap<String, (u64, JoinHandle<Vec<CheckResult>>)>,
}

impl Driver {
    pub fn new(rt: Runtime) -> Self {
        let store = Store::new(&rt);
        Self { rt, store, prechecks: HashMap::new() }
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            tokio::select! { _ = tokio::time::sleep(TICK) => {}, _ = shutdown.cancelled() => return }
            if let Err(e) = self.tick().await {
                tracing::warn!("scheduler tick failed ({e}); retrying");
            }
        }
    }

    async fn tick(&mut self) -> Result<(), KitError> {
        for name in self.store.task_names().await? {
            if let Some((record, _)) = self.store.record(&name).await? {
                self.drive(&record).await?;
            }
        }
        Ok(())
    }

    async fn drive(&mut self, record: &TaskRecord) -> Result<(), KitError> {
        let task = record.spec.name.clone();
        let mut st = self.store.scheduler_status(&task).await?.unwrap_or_else(|| initial_status(record));
        let before = (st.state, st.phase, st.error.clone(), st.checker_epoch);
        match record.desired {
            DesiredState::Running
                if record.generation > st.epoch
                    && st.state != TaskState::Stopped
                    && st.state != TaskState::Completed =>
            {
                st = restart(record, st);
                if st.phase != Some(Phase::Precheck) {
                    self.store.assign(&record.spec, DesiredState::Running, st.epoch).await?;
                }
                if st.phase == Some(Phase::Verify) {
                    verification::start(&self.store, record, &mut st).await?;
                }
            }
            DesiredState::Running if st.state == TaskState::Running => self.advance(record, &mut st).await?,
            DesiredState::Paused if st.state == TaskState::Running => {
                self.store.assign(&record.spec, DesiredState::Paused, st.epoch).await?;
                verification::hold(&self.store, record, &st, DesiredState::Paused).await?;
                st.state = TaskState::Paused;
            }
            DesiredState::Stopped if !matches!(st.state, TaskState::Stopped | TaskState::Completed) => {
                self.store.assign(&record.spec, DesiredState::Stopped, st.epoch).await?;
                verification::hold(&self.store, record, &st, DesiredState::Stopped).await?;
                st.state = TaskState::Stopped;
            }
            _ => {}
        }
        if matches!(st.state, TaskState::Paused | TaskState::Completed) {
            verification::corrections(&self.store, record, &mut st).await?;
        }
        if (st.state, st.phase, st.error.clone(), st.checker_epoch) != before {
            st.updated_at = chrono::Utc::now();
            self.store.put_scheduler_status(&task, &st).await?;
            events::publish(&self.rt.nats, &task, &st).await;
            tracing::info!(task, state = ?st.state, phase = ?st.phase, error = st.error.as_ref().map(|e| e.message.as_str()), "task state changed");
        }
        Ok(())
    }

    async fn advance(&mut self, record: &TaskRecord, st: &mut SchedulerStatus) -> Result<(), KitError> {
        match st.phase {
            Some(Phase::Precheck) => self.precheck(record, st).await,
            Some(Phase::Schema) | Some(Phase::Full) => self.watch_copy(record, st).await,
            Some(Phase::Incremental) => {
                if self.watch_errors(record, st).await? {
                    return Ok(());
                }
                if record.verifications > st.verifications_started {
                    st.verifications_started = record.verifications;
                    verification::start(&self.store, record, st).await?;
                } else if record.spec.phases.contains(&Phase::Verify)
                    && verification::caught_up(&self.store, &record.spec).await?
                {
                    verification::start(&self.store, record, st).await?;
                }
                Ok(())
            }
            Some(Phase::Verify) => {
                if self.watch_errors(record, st).await? {
                    return Ok(());
                }
                if record.verifications > st.verifications_started {
                    st.verifications_started = record.verifications;
                    return verification::start(&self.store, record, st).await;
                }
                verification::watch(&self.store, record, st).await
            }
            _ => Ok(()),
        }
    }

    async fn precheck(&mut self, record: &TaskRecord, st: &mut SchedulerStatus) -> Result<(), KitError> {
        let task = record.spec.name.clone();
        let running = self.prechecks.get(&task).is_some_and(|(epoch, _)| *epoch == st.epoch);
        if !running {
            let mut spec = record.spec.clone();
            self.rt.secrets.open_spec(&mut spec)?;
            // Where capture would read from if the task resumes now (store, else the copy's P0).
            let resume_at = match self.store.store_status(&task).await?.position {
                Some(p) => Some(p.binlog),
                None => self.store.full_status(&task).await?.p0.map(|p| p.binlog),
            };
            let handle = tokio::spawn(async move { precheck::run(&spec, resume_at).await });
            self.prechecks.insert(task, (st.epoch, handle));
            return Ok(());
        }
        let finished = self.prechecks.get(&task).is_some_and(|(_, h)| h.is_finished());
        if !finished {
            return Ok(());
        }
        let Some((_, handle)) = self.prechecks.remove(&task) else { return Ok(()) };
        let mut results = handle.await.unwrap_or_else(|e| {
            vec![CheckResult {
                check: "precheck".into(),
                object: None,
                outcome: CheckOutcome::Fail,
                message: format!("precheck crashed: {e}"),
                fix: None,
            }]
        });
        let members = ferry_kit::members::live(&self.rt.buckets.members).await?;
        results.extend(crate::placement::check(&record.spec, &self.rt.nats.default_region, &members));
        let failures: Vec<&CheckResult> =
            results.iter().filter(|r| r.outcome == CheckOutcome::Fail).collect();
        if let Some(first) = failures.first() {
            let message = failures.iter().map(|f| f.message.as_str()).collect::<Vec<_>>().join("; ");
            st.error = Some(report(
                "scheduler",
                "precheck_failed",
                first.object.clone(),
                format!("precheck failed: {message}"),
                first.fix.as_deref().unwrap_or("see the precheck results"),
            ));
            st.state = TaskState::Paused;
        } else {
            st.phase = record.spec.phases.iter().copied().find(|p| *p != Phase::Precheck);
            self.store.assign(&record.spec, DesiredState::Running, st.epoch).await?;
            if st.phase == Some(Phase::Verify) {
                // A verify-only task: nothing to copy or sync first.
                verification::start(&self.store, record, st).await?;
            }
        }
        st.precheck = results;
        Ok(())
    }

    /// Pauses the task on the first component error reported since it (re)started.
    async fn watch_errors(
        &mut self,
        record: &TaskRecord,
        st: &mut SchedulerStatus,
    ) -> Result<bool, KitError> {
        let task = &record.spec.name;
        let since = st.running_since;
        let fresh = |e: &Option<ErrorReport>| e.clone().filter(|r| since.is_none_or(|s| r.at >= s));
        let errors = [
            fresh(&self.store.full_status(task).await?.error),
            fresh(&self.store.store_status(task).await?.error),
            fresh(&self.store.dispatcher_status(task).await?.error),
            fresh(&self.store.sink_status(task).await?.error),
            fresh(&self.store.checker_status(task).await?.and_then(|c| c.error)),
        ];
        if let Some(err) = errors.into_iter().flatten().next() {
            self.store.assign(&record.spec, DesiredState::Paused, st.epoch).await?;
            st.state = TaskState::Paused;
            st.error = Some(err);
            return Ok(true);
        }
        Ok(false)
    }

    async fn watch_copy(&mut self, record: &TaskRecord, st: &mut SchedulerStatus) -> Result<(), KitError> {
        let task = &record.spec.name;
        if self.watch_errors(record, st).await? {
            return Ok(());
        }
        let fm = self.store.full_status(task).await?;
        let sink = self.store.sink_status(task).await?;
        if fm.done && self.copy_applied(record, &fm, &sink).await? {
            if st.phase == Some(Phase::Schema) && record.spec.phases.contains(&Phase::Full) {
                st.phase = Some(Phase::Full);
                return Ok(());
            }
            if record.spec.phases.contains(&Phase::Incremental) {
                // The copy is in the target: apply replays from P0, in safe mode up to P1.
                st.phase = Some(Phase::Incremental);
                return Ok(());
            }
            if record.spec.phases.contains(&Phase::Verify) {
                return verification::start(&self.store, record, st).await;
            }
            self.store.assign(&record.spec, DesiredState::Stopped, st.epoch).await?;
            st.state = TaskState::Completed;
            // The copy is done: free its space where it was written and in the target's mirror.
            for js in [self.store.source_js(&record.spec), self.store.target_js(&record.spec)] {
                if let Ok(stream) = js.get_stream(names::full_stream(task)).await {
                    if let Err(e) = stream.purge().await {
                        tracing::warn!(task, "cannot purge the FULL stream after the copy: {e}");
                    }
                }
            }
        } else if fm.schema_published
            && st.phase == Some(Phase::Schema)
            && record.spec.phases.contains(&Phase::Full)
        {
            let created =
                fm.tables.iter().all(|t| sink.tables.get(&t.to_string()).is_some_and(|a| a.created));
            if created && sink.views_applied >= fm.views_published {
                st.phase = Some(Phase::Full);
            }
        }
        Ok(())
    }

    /// True when the sink applied every chunk (of the same attempt) and every object published.
    async fn copy_applied(
        &self,
        record: &TaskRecord,
        fm: &ferry_schemas::status::FullMigratorStatus,
        sink: &ferry_schemas::status::SinkStatus,
    ) -> Result<bool, KitError> {
        let schema = record.spec.phases.contains(&Phase::Schema);
        let full = record.spec.phases.contains(&Phase::Full);
        if sink.views_applied < fm.views_published {
            return Ok(false);
        }
        for t in &fm.tables {
            let applied = sink.tables.get(&t.to_string()).cloned().unwrap_or_default();
            if schema && !applied.created {
                return Ok(false);
            }
            if full {
                let Some(p) = self.store.table_progress(&record.spec.name, &t.database, &t.table).await?
                else {
                    return Ok(false);
                };
                let all_applied = p.attempt == applied.attempt && p.chunks_published == applied.chunks;
                if !p.done || !all_applied || !applied.finished {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}

/// A start or resume: precheck again, clear the error, and give the components a new epoch.
fn restart(record: &TaskRecord, st: SchedulerStatus) -> SchedulerStatus {
    let first = record.spec.phases.first().copied();
    SchedulerStatus {
        state: TaskState::Running,
        phase: first,
        precheck: if first == Some(Phase::Precheck) { Vec::new() } else { st.precheck },
        error: None,
        epoch: record.generation,
        running_since: Some(chrono::Utc::now()),
        checker_epoch: st.checker_epoch,
        verifications_started: st.verifications_started,
        updated_at: chrono::Utc::now(),
    }
}
