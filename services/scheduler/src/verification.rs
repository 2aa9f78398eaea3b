//! The verify phase and corrections, as the driver runs them.
//!
//! Verification starts when the copy is applied (tasks without incremental sync) or when
//! incremental sync has caught up (applied watermark within [`CAUGHT_UP`] of capture, safe mode
//! over). Each verification or correction gets a new checker epoch, recorded in the
//! scheduler status before the assignment is written, so a restarted scheduler neither loses
//! nor repeats one. A verification that finds differences pauses the task with
//! `verification_failed`; one that finds none completes a copy-only task, and leaves a syncing
//! task running in the verify phase. A correction (`ferry task correct`) runs while the task is
//! paused or completed, and never changes the task's state: the user reads the new report and
//! resumes.

use crate::store::Store;
use ferry_kit::error::report;
use ferry_kit::KitError;
use ferry_schemas::check::CheckerStatus;
use ferry_schemas::control::{CheckWork, DesiredState, Role, TaskRecord};
use ferry_schemas::status::{SchedulerStatus, TaskState};
use ferry_schemas::task::{Phase, TaskSpec};

/// How close (in source time) apply must be to capture for incremental sync to count as
/// caught up.
pub const CAUGHT_UP: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

/// Enters the verify phase: a new checker epoch, then the checker's assignment.
pub async fn start(store: &Store, record: &TaskRecord, st: &mut SchedulerStatus) -> Result<(), KitError> {
    st.phase = Some(Phase::Verify);
    begin(store, record, st, CheckWork::Verify).await
}

/// Gives the checker new work: a new checker epoch, recorded before the assignment is written.
async fn begin(
    store: &Store,
    record: &TaskRecord,
    st: &mut SchedulerStatus,
    work: CheckWork,
) -> Result<(), KitError> {
    st.checker_epoch += 1;
    store.put_scheduler_status(&record.spec.name, st).await?;
    store.assign_checker(&record.spec, DesiredState::Running, st.checker_epoch, work).await
}

/// True when incremental sync has applied (nearly) everything captured, past safe mode.
pub async fn caught_up(store: &Store, spec: &TaskSpec) -> Result<bool, KitError> {
    let task = &spec.name;
    let sink = store.sink_status(task).await?;
    if sink.incremental.as_ref().is_none_or(|i| i.safe_mode) {
        return Ok(false);
    }
    let captured = store.store_status(task).await?.source_time;
    let applied = store.applied_watermark(spec).await.map(|w| w.source_time);
    Ok(matches!((captured, applied), (Some(c), Some(a)) if a + CAUGHT_UP >= c))
}

/// While verifying: acts on the checker's result of the current epoch. With
/// `verify.continuous`, a clean result hands the checker over to continuous verification.
pub async fn watch(store: &Store, record: &TaskRecord, st: &mut SchedulerStatus) -> Result<(), KitError> {
    let task = &record.spec.name;
    let Some(checker) = current(store, task, st).await? else { return Ok(()) };
    if !checker.done || !checker_running(store, task).await? {
        return Ok(());
    }
    store.assign_checker(&record.spec, DesiredState::Stopped, st.checker_epoch, CheckWork::Verify).await?;
    let t = &checker.totals;
    if t.differences() > 0 {
        store.assign(&record.spec, DesiredState::Paused, st.epoch).await?;
        st.state = TaskState::Paused;
        st.error = Some(report(
            "checker",
            "verification_failed",
            None,
            format!(
                "verification found {} missing, {} extra and {} changed row(s) in {} of {} table(s){}",
                t.missing,
                t.extra,
                t.changed,
                t.tables_differing,
                t.tables,
                if t.problems > 0 { format!(", and {} table(s) whose structure differs", t.problems) } else { String::new() }
            ),
            &format!(
                "see `ferry task check-report {task}`; `ferry task correct {task}` applies the correction SQL and \
                 re-verifies those rows; `ferry task resume {task}` verifies again"
            ),
        ));
    } else if !record.spec.phases.contains(&Phase::Incremental) {
        store.assign(&record.spec, DesiredState::Stopped, st.epoch).await?;
        st.state = TaskState::Completed;
    } else if record.spec.verify.continuous {
        // Verified while syncing: keep re-checking what sync changes from now on.
        begin(store, record, st, CheckWork::Watch).await?;
    }
    Ok(())
}

/// Starts a requested correction, and stops the checker when it is done. For tasks that are
/// paused or completed.
pub async fn corrections(
    store: &Store,
    record: &TaskRecord,
    st: &mut SchedulerStatus,
) -> Result<(), KitError> {
    if record.corrections == 0 {
        return Ok(()); // never asked for: no reads on every tick
    }
    let task = &record.spec.name;
    let checker = store.checker_status(task).await?.unwrap_or_default();
    let assigned = store.assignment(task, Role::Checker).await?;
    let correcting = assigned.as_ref().is_some_and(|a| {
        a.check == Some(CheckWork::Correct)
            && a.desired == DesiredState::Running
            && a.epoch == st.checker_epoch
    });
    if record.corrections > checker.corrections_done && !correcting {
        begin(store, record, st, CheckWork::Correct).await?;
    } else if correcting && checker.epoch == st.checker_epoch && checker.done {
        store
            .assign_checker(&record.spec, DesiredState::Stopped, st.checker_epoch, CheckWork::Correct)
            .await?;
    }
    Ok(())
}

/// Pauses or stops the checker with the rest of the task.
pub async fn hold(
    store: &Store,
    record: &TaskRecord,
    st: &SchedulerStatus,
    desired: DesiredState,
) -> Result<(), KitError> {
    if let Some(a) = store.assignment(&record.spec.name, Role::Checker).await? {
        if a.desired == DesiredState::Running {
            let work = a.check.unwrap_or(CheckWork::Verify);
            store.assign_checker(&record.spec, desired, st.checker_epoch, work).await?;
        }
    }
    Ok(())
}

/// The checker's status when it belongs to the current checker epoch.
async fn current(store: &Store, task: &str, st: &SchedulerStatus) -> Result<Option<CheckerStatus>, KitError> {
    Ok(store.checker_status(task).await?.filter(|c| c.epoch == st.checker_epoch))
}

async fn checker_running(store: &Store, task: &str) -> Result<bool, KitError> {
    Ok(store.assignment(task, Role::Checker).await?.is_some_and(|a| a.desired == DesiredState::Running))
}
