//! The REST API (`/api/v1`): create, list, show, start, pause, resume, stop, skip-ddl, correct
//! and delete tasks; the check report and its correction SQL.
//!
//! Specs arrive as YAML or JSON. Every refusal is a JSON body `{"error": ..., "problems": [...]}`
//! that names the field or object and the fix. Passwords are sealed before the record is stored
//! and never returned.

use crate::store::Store;
use crate::view;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_kit::runtime::Runtime;
use ferry_schemas::control::{DesiredState, TaskRecord};
use ferry_schemas::status::{SchedulerStatus, TaskState};
use ferry_schemas::task::{Phase, SpecProblem, TaskSpec};
use serde::Deserialize;
use serde_json::json;

#[derive(Clone)]
pub struct ApiState {
    pub rt: Runtime,
    pub store: Store,
    pub token: Option<String>,
}

pub struct ApiError {
    status: StatusCode,
    message: String,
    problems: Vec<SpecProblem>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), problems: Vec::new() }
    }
}

impl From<ferry_kit::KitError> for ApiError {
    fn from(e: ferry_kit::KitError) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("control plane unavailable: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message, "problems": self.problems }))).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/members", get(members))
        .route("/api/v1/tasks", get(list).post(create))
        .route("/api/v1/tasks/{name}", get(show).delete(delete))
        .route("/api/v1/tasks/{name}/check-report", get(check_report))
        .route("/api/v1/tasks/{name}/check-report/sql", get(check_sql))
        .route("/api/v1/tasks/{name}/{action}", post(action))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

async fn auth(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    if let Some(token) = &s.token {
        let given = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token (set FERRY_API_TOKEN)",
            )
            .into_response();
        }
    }
    next.run(req).await
}

#[derive(Deserialize)]
struct CreateQuery {
    #[serde(default)]
    start: bool,
}

async fn create(
    State(s): State<ApiState>,
    Query(q): Query<CreateQuery>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "the spec is not UTF-8 text"))?;
    let mut spec: TaskSpec = serde_yaml::from_str(text)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid spec: {e}")))?;
    let problems = spec.validate();
    if !problems.is_empty() {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            message: format!("invalid spec: {}", problems[0]),
            problems,
        });
    }
    s.rt.secrets
        .seal_spec(&mut spec)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let now = chrono::Utc::now();
    let record = TaskRecord {
        spec,
        desired: if q.start { DesiredState::Running } else { DesiredState::Paused },
        generation: u64::from(q.start),
        skip_ddl: Vec::new(),
        corrections: 0,
        verifications: 0,
        created_at: now,
        updated_at: now,
    };
    let name = record.spec.name.clone();
    if !s.store.put_record(&name, &record, 0).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("task {name} already exists; delete it first or choose another name"),
        ));
    }
    s.store.put_scheduler_status(&name, &view::initial_status(&record)).await?;
    tracing::info!(task = name, "task created");
    Ok((StatusCode::CREATED, Json(view::build(&s.store, &record).await?)))
}

async fn list(State(s): State<ApiState>) -> ApiResult<impl IntoResponse> {
    let mut out = Vec::new();
    for name in s.store.task_names().await? {
        if let Some((record, _)) = s.store.record(&name).await? {
            out.push(view::build(&s.store, &record).await?);
        }
    }
    Ok(Json(out))
}

/// Live service instances (heartbeats in `ferry-members`), by region.
async fn members(State(s): State<ApiState>) -> ApiResult<impl IntoResponse> {
    Ok(Json(ferry_kit::members::live(&s.store.buckets.members).await?))
}

async fn load(s: &ApiState, name: &str) -> ApiResult<(TaskRecord, u64)> {
    s.store
        .record(name)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no task named {name}")))
}

async fn show(State(s): State<ApiState>, Path(name): Path<String>) -> ApiResult<impl IntoResponse> {
    let (record, _) = load(&s, &name).await?;
    Ok(Json(view::build(&s.store, &record).await?))
}

async fn load_report(s: &ApiState, name: &str) -> ApiResult<ferry_schemas::check::CheckReport> {
    load(s, name).await?;
    crate::report::build(&s.store, name).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("task {name} has not been verified; add the verify phase to its spec"),
        )
    })
}

async fn check_report(State(s): State<ApiState>, Path(name): Path<String>) -> ApiResult<impl IntoResponse> {
    Ok(Json(load_report(&s, &name).await?))
}

async fn check_sql(State(s): State<ApiState>, Path(name): Path<String>) -> ApiResult<impl IntoResponse> {
    let report = load_report(&s, &name).await?;
    let sql = crate::report::correction_sql(&report).map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot write the correction SQL: {e}"))
    })?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/sql; charset=utf-8")], sql))
}

async fn action(
    State(s): State<ApiState>,
    Path((name, action)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    for _ in 0..5 {
        let (mut record, revision) = load(&s, &name).await?;
        let st = s.store.scheduler_status(&name).await?.unwrap_or_else(|| view::initial_status(&record));
        check_action(&action, &st)?;
        match action.as_str() {
            "start" | "resume" => {
                record.desired = DesiredState::Running;
                record.generation = record.generation.max(st.epoch) + 1;
            }
            "skip-ddl" => {
                let sink = s.store.sink_status(&name).await?;
                let Some(blocked) = sink.incremental.and_then(|i| i.blocked_ddl) else {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        format!("task {name} is not stopped at a DDL statement; nothing to skip"),
                    ));
                };
                if !record.skip_ddl.contains(&blocked.position.binlog) {
                    record.skip_ddl.push(blocked.position.binlog.clone());
                }
                tracing::info!(task = name, position = %blocked.position, sql = blocked.sql, "DDL to be skipped");
            }
            "correct" => {
                let checker = s.store.checker_status(&name).await?.unwrap_or_default();
                if !checker.done
                    || checker.totals.missing + checker.totals.extra + checker.totals.changed == 0
                {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        format!("task {name} has no finished verification with differing rows; nothing to correct"),
                    ));
                }
                record.corrections = record.corrections.max(checker.corrections_done) + 1;
            }
            "verify" => {
                if !matches!(st.phase, Some(Phase::Incremental) | Some(Phase::Verify)) {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        format!("task {name} is not syncing; a running task verifies on request only in the incremental or verify phase (resume a paused task to verify it again)"),
                    ));
                }
                record.verifications = record.verifications.max(st.verifications_started) + 1;
            }
            "pause" => record.desired = DesiredState::Paused,
            "stop" => record.desired = DesiredState::Stopped,
            _ => unreachable!("checked above"),
        }
        record.updated_at = chrono::Utc::now();
        if s.store.put_record(&name, &record, revision).await? {
            tracing::info!(task = name, action, "task action accepted");
            return Ok((StatusCode::ACCEPTED, Json(view::build(&s.store, &record).await?)));
        }
    }
    Err(ApiError::new(StatusCode::CONFLICT, format!("task {name} changed concurrently; try again")))
}

fn check_action(action: &str, st: &SchedulerStatus) -> ApiResult<()> {
    let refuse = |why: &str| Err(ApiError::new(StatusCode::CONFLICT, why.to_owned()));
    match (action, st.state) {
        ("start" | "resume" | "pause" | "stop", TaskState::Completed) => refuse("the task is completed"),
        ("start" | "resume" | "pause", TaskState::Stopped) => {
            refuse("the task is stopped; delete it and create it again")
        }
        ("start" | "resume", TaskState::Running) => refuse("the task is already running"),
        ("start" | "resume" | "pause" | "stop", _) => Ok(()),
        ("skip-ddl", TaskState::Paused) => Ok(()),
        ("skip-ddl", _) => refuse("only a paused task can skip a DDL statement"),
        ("correct", TaskState::Paused | TaskState::Completed) => Ok(()),
        ("verify", TaskState::Running) => Ok(()),
        ("verify", _) => refuse("only a running task verifies on request; resume it, which verifies again"),
        ("correct", _) => refuse(
            "only a paused or completed task can be corrected (the sink must not be writing); pause it first",
        ),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("unknown action {action}; use start, pause, resume, stop, skip-ddl, verify or correct"),
        )),
    }
}

async fn delete(State(s): State<ApiState>, Path(name): Path<String>) -> ApiResult<impl IntoResponse> {
    let (record, _) = load(&s, &name).await?;
    let st = s.store.scheduler_status(&name).await?.unwrap_or_else(|| view::initial_status(&record));
    if st.state == TaskState::Running {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("task {name} is running; pause or stop it first"),
        ));
    }
    crate::cleanup::delete_task(&s.rt, &s.store, &record)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e))?;
    tracing::info!(task = name, "task deleted");
    Ok(StatusCode::NO_CONTENT)
}
