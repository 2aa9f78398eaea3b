//! W3C trace context in NATS message headers (`traceparent`, `tracestate`), so one trace
//! follows a source transaction from capture (store) through dispatch to its commit on the
//! target (sink), across processes and regions.
//!
//! A publisher injects the context of its span into the message's headers; a consumer makes
//! its span a child of the context it extracts. Without OTLP export ([`crate::telemetry`])
//! nothing is injected, nothing is extracted and no per-message span is built.

use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct Inject<'a>(&'a mut HeaderMap);

impl Injector for Inject<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value);
    }
}

struct Extract<'a>(&'a HeaderMap);

impl Extractor for Extract<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// A trace context extracted from a message.
pub use opentelemetry::Context as TraceContext;

pub fn exporting() -> bool {
    crate::telemetry::exporting()
}

/// Headers carrying `span`'s trace context (empty when not exporting).
pub fn headers_for(span: &tracing::Span) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if exporting() {
        let cx = span.context();
        opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut Inject(&mut headers)));
    }
    headers
}

/// The trace context a message carries, if any (and only when exporting).
pub fn context_of(headers: Option<&HeaderMap>) -> Option<opentelemetry::Context> {
    let headers = headers.filter(|_| exporting())?;
    headers.get("traceparent")?;
    Some(opentelemetry::global::get_text_map_propagator(|p| p.extract(&Extract(headers))))
}

/// Makes `span` a child of `parent` (a context from [`context_of`]).
pub fn follow(span: &tracing::Span, parent: Option<&opentelemetry::Context>) {
    if let Some(cx) = parent {
        let _ = span.set_parent(cx.clone());
    }
}
