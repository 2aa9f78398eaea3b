//! Logging and tracing setup.
//!
//! Logs: `RUST_LOG` filters (default `info`); `FERRY_LOG_FORMAT=json` writes JSON lines.
//! Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, Ferry's own spans (targets `ferry*`) are
//! exported over OTLP/gRPC with a batch processor (`OTEL_BSP_SCHEDULE_DELAY` etc. apply) and the
//! service name `ferry-<service>`; otherwise nothing is exported and [`crate::trace`] adds no
//! headers. The guard flushes buffered spans when dropped at a clean exit (a SIGKILLed process
//! loses at most its unexported batch).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// True when spans are exported (OTLP configured): only then do services build per-message
/// spans and put trace context in message headers.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Flushes and stops the span exporter when dropped.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("ferry: flushing traces failed: {e}");
            }
        }
    }
}

pub fn init(service: &str) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("FERRY_LOG_FORMAT").is_ok_and(|v| v == "json");
    let logs = if json {
        fmt::layer().json().with_target(false).boxed()
    } else {
        fmt::layer().with_target(false).boxed()
    };
    let (provider, otel_error) = match otlp_provider(service) {
        Ok(p) => (p, None),
        Err(e) => (None, Some(e)),
    };
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("ferry"))
            // Only Ferry's spans: the exporter's own gRPC client must not trace itself.
            .with_filter(tracing_subscriber::filter::filter_fn(|m| m.target().starts_with("ferry")))
    });
    let result = tracing_subscriber::registry().with(filter).with(logs).with(traces).try_init();
    if result.is_ok() {
        tracing::info!(service, version = env!("CARGO_PKG_VERSION"), traces = provider.is_some(), "starting");
        if let Some(e) = otel_error {
            tracing::error!("traces are not exported: {e}");
        }
    }
    if provider.is_some() {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        EXPORTING.store(true, Ordering::Relaxed);
    }
    Telemetry { provider }
}

fn otlp_provider(service: &str) -> Result<Option<SdkTracerProvider>, String> {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_default();
    if endpoint.trim().is_empty() {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| format!("OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}: {e}"))?;
    let resource =
        opentelemetry_sdk::Resource::builder().with_service_name(format!("ferry-{service}")).build();
    Ok(Some(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build()))
}
