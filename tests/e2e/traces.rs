//! Traces: with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an OTLP/gRPC receiver run by this
//! test, one source transaction yields one trace spanning the store (capture, decode, publish),
//! the dispatcher (dispatch) and the sink (apply, commit), linked parent to child through the
//! W3C trace context in the NATS headers; a full-copy chunk likewise links the full-migrator's
//! copy_chunk to the sink's apply_chunk.

use crate::harness::{admin, eventually, free_port, Stack};
use crate::incremental::{incremental_scenario, source_position, wait_applied, wait_phase};
use anyhow::{ensure, Context, Result};
use ferry_schemas::task::Phase;
use mysql_async::prelude::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One received span.
#[derive(Clone, Debug)]
struct Received {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Vec<u8>,
}

/// An in-process OTLP trace receiver that keeps every span.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut out = Vec::new();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    Value::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                out.push(Received {
                    service: service.clone(),
                    name: span.name,
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                    parent: span.parent_span_id,
                });
            }
        }
        if let Ok(mut spans) = self.spans.lock() {
            spans.extend(out);
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

impl Collector {
    async fn start() -> Result<(Self, u16)> {
        let collector = Self::default();
        let port = free_port()?;
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve(([127, 0, 0, 1], port).into());
        tokio::spawn(async move {
            if let Err(e) = server.await {
                eprintln!("OTLP receiver stopped: {e}");
            }
        });
        Ok((collector, port))
    }

    fn snapshot(&self) -> Vec<Received> {
        self.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn find<'a>(spans: &'a [Received], trace: &[u8], service: &str, name: &str) -> Option<&'a Received> {
    spans.iter().find(|s| s.trace_id == trace && s.service == service && s.name == name)
}

/// A trace holding `chain` (service, span name), each span the child of the one before.
fn linked_chain(spans: &[Received], chain: &[(&str, &str)]) -> Option<Vec<u8>> {
    let (first_service, first_name) = chain.first()?;
    spans.iter().filter(|s| s.service == *first_service && s.name == *first_name).find_map(|root| {
        let mut parent = root;
        for (service, name) in &chain[1..] {
            let child = spans.iter().find(|c| {
                c.trace_id == root.trace_id
                    && c.service == *service
                    && c.name == *name
                    && c.parent == parent.span_id
            })?;
            parent = child;
        }
        Some(root.trace_id.clone())
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_follows_a_transaction_from_capture_to_commit() -> Result<()> {
    let (collector, port) = Collector::start().await?;
    let (db, task, scenario, _cleanup) = incremental_scenario("e2e_trace").await?;
    let env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), format!("http://127.0.0.1:{port}")),
        ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "200".to_owned()),
    ];
    let stack = Stack::start_with_env("traces", env).await?;
    stack.create_and_start(&scenario.render("task.yaml")?).await?;
    wait_phase(&stack, &task, Phase::Incremental, Duration::from_secs(300)).await?;

    let mut conn = admin("source").await?;
    conn.query_drop(format!("UPDATE `{db}`.accounts SET note = 'traced' WHERE id = 1")).await?;
    let end = source_position().await?;
    wait_applied(&stack, &task, &end, Duration::from_secs(60)).await?;

    let chain = [
        ("ferry-store", "capture"),
        ("ferry-dispatcher", "dispatch"),
        ("ferry-sink", "apply"),
        ("ferry-sink", "commit"),
    ];
    let trace = eventually("one trace from capture to commit", Duration::from_secs(30), || async {
        Ok(linked_chain(&collector.snapshot(), &chain))
    })
    .await?;
    let spans = collector.snapshot();
    for (service, name) in [("ferry-store", "decode"), ("ferry-store", "publish")] {
        let capture = find(&spans, &trace, "ferry-store", "capture").context("capture span")?;
        let s =
            find(&spans, &trace, service, name).with_context(|| format!("no {name} span in the trace"))?;
        ensure!(s.parent == capture.span_id, "{name} is not a child of capture");
    }
    // The full copy: each chunk's publish and apply are one trace too.
    ensure!(
        linked_chain(&spans, &[("ferry-full-migrator", "copy_chunk"), ("ferry-sink", "apply_chunk")])
            .is_some(),
        "no trace links a copied chunk to its apply"
    );
    Ok(())
}
