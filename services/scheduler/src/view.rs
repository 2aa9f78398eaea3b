//! The task view served by the API: the scheduler's state plus every component's progress.

use crate::store::Store;
use ferry_kit::KitError;
use ferry_schemas::control::{DesiredState, TaskRecord};
use ferry_schemas::status::{
    IncrementalApplied, SchedulerStatus, TableStatusView, TaskState, TaskStatusView,
};

pub async fn build(store: &Store, record: &TaskRecord) -> Result<TaskStatusView, KitError> {
    let task = &record.spec.name;
    let mut st = store.scheduler_status(task).await?.unwrap_or_else(|| initial_status(record));
    if record.desired == DesiredState::Running
        && record.generation > st.epoch
        && !matches!(st.state, TaskState::Stopped | TaskState::Completed)
    {
        // Accepted start or resume that the driver has not picked up yet: show it as starting
        // over, so a client never reads the state from before its own request.
        st.state = TaskState::Running;
        st.phase = record.spec.phases.first().copied();
        st.error = None;
        st.running_since = Some(record.updated_at);
    }
    let fm = store.full_status(task).await?;
    let sink = store.sink_status(task).await?;
    let capture = store.store_status(task).await?;
    let dispatcher = store.dispatcher_status(task).await?;
    let watermark =
        if sink.incremental.is_some() { store.applied_watermark(&record.spec).await } else { None };
    let mut tables = Vec::with_capacity(fm.tables.len());
    for t in &fm.tables {
        let p = store.table_progress(task, &t.database, &t.table).await?;
        let applied = sink.tables.get(&t.to_string()).cloned().unwrap_or_default();
        let same_attempt = p.as_ref().is_none_or(|p| p.attempt == applied.attempt);
        tables.push(TableStatusView {
            source: t.clone(),
            target: p.as_ref().map(|p| p.target.clone()).unwrap_or_else(|| record.spec.renames.target_of(t)),
            estimated_rows: p.as_ref().map_or(0, |p| p.estimated_rows),
            rows_published: p.as_ref().map_or(0, |p| p.rows_published),
            rows_applied: if same_attempt { applied.rows } else { 0 },
            chunks_published: p.as_ref().map_or(0, |p| p.chunks_published),
            chunks_applied: if same_attempt { applied.chunks } else { 0 },
            read_done: p.as_ref().is_some_and(|p| p.done),
            keyless: p.as_ref().is_some_and(|p| p.keyless),
            note: p.and_then(|p| p.note),
        });
    }
    let since = st.running_since;
    let fresh = |r: &Option<ferry_schemas::status::ErrorReport>| {
        r.clone().filter(|r| since.is_none_or(|s| r.at >= s))
    };
    Ok(TaskStatusView {
        name: task.clone(),
        state: st.state,
        phase: st.phase,
        phases: record.spec.phases.clone(),
        error: st.error.clone(),
        retrying: [
            fresh(&fm.retrying),
            fresh(&capture.retrying),
            fresh(&dispatcher.retrying),
            fresh(&sink.retrying),
        ]
        .into_iter()
        .flatten()
        .collect(),
        precheck: st.precheck.clone(),
        p0: fm.p0.clone(),
        p1: fm.p1.clone(),
        tables,
        views_published: fm.views_published,
        views_applied: sink.views_applied,
        source_position: capture.position.clone(),
        applied_position: watermark
            .as_ref()
            .map(|w| w.position.clone())
            .or_else(|| sink.incremental.as_ref().and_then(|i| i.position.clone())),
        delay_seconds: match &watermark {
            Some(w) => Some(age(w.source_time)),
            None => sink.incremental.as_ref().map(delay_seconds),
        },
        incremental: sink.incremental.clone(),
        check: store.checker_status(task).await?.filter(|c| c.epoch > 0).map(|mut c| {
            c.results.clear();
            c
        }),
        watch: store.watch_status(task).await?.filter(|w| w.epoch > 0).map(|mut w| {
            w.rows.truncate(100);
            w
        }),
    })
}

/// How far the target is behind: the age of the newest source event the sink has applied
/// (heartbeats keep it current while the source is idle).
pub fn delay_seconds(applied: &IncrementalApplied) -> f64 {
    match applied.source_time {
        Some(t) => age(t),
        None => applied.delay_seconds,
    }
}

fn age(t: chrono::DateTime<chrono::Utc>) -> f64 {
    (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0
}

pub fn initial_status(_record: &TaskRecord) -> SchedulerStatus {
    SchedulerStatus {
        state: TaskState::Created,
        phase: None,
        precheck: Vec::new(),
        error: None,
        epoch: 0,
        running_since: None,
        checker_epoch: 0,
        verifications_started: 0,
        updated_at: chrono::Utc::now(),
    }
}
