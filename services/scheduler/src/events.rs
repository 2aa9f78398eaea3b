//! Task state changes on `ferry.<task>.events`, for audit.

use ferry_kit::nats::Nats;
use ferry_schemas::names;
use ferry_schemas::status::SchedulerStatus;

pub async fn publish(nats: &Nats, task: &str, st: &SchedulerStatus) {
    let body = serde_json::json!({
        "task": task,
        "at": chrono::Utc::now(),
        "state": st.state,
        "phase": st.phase,
        "error": st.error,
    });
    let Ok(bytes) = serde_json::to_vec(&body) else { return };
    let sent = match nats.js.publish(names::events_subject(task), bytes.into()).await {
        Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = sent {
        tracing::warn!(task, "cannot record the task event: {e}");
    }
}
