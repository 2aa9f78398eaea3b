//! Metric names (as OMS operators know them) and their registry, declared once.
//!
//! Counters and histograms are labelled by `task` only. Rate gauges (`sink_rps`, `sink_tps`)
//! are derived from their counters by [`Metrics::spawn_rate_updater`].

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabel {
    pub task: String,
}

/// Labels of `errors_total`: the task, the report's code and whether the job retries or stopped.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    pub task: String,
    pub code: String,
    pub outcome: String,
}

pub fn task(task: &str) -> TaskLabel {
    TaskLabel { task: task.to_owned() }
}

#[derive(Clone, Copy)]
struct Rates {
    sink_rows: u64,
    sink_txns: u64,
    source_rows: u64,
    checker_rows: u64,
    at: Instant,
}

type Hist = Family<TaskLabel, Histogram, fn() -> Histogram>;
type FGauge = Family<TaskLabel, Gauge<f64, AtomicU64>>;

fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    /// Rows published by the full copy.
    pub full_rows_total: Family<TaskLabel, Counter>,
    pub full_chunks_total: Family<TaskLabel, Counter>,
    pub full_bytes_total: Family<TaskLabel, Counter>,
    /// Rows written to the target. A gauge only so that it is exposed under the exact OMS name
    /// (prometheus-client suffixes counters with `_total`); it only grows.
    pub sink_total_record: Family<TaskLabel, Gauge>,
    /// Target transactions committed (`sink_transactions_total`).
    pub sink_transactions: Family<TaskLabel, Counter>,
    /// APPLY messages delivered again by JetStream (`sink_redelivered_total`): their ack
    /// deadline passed while they waited, or a sink stopped before acking them.
    pub sink_redelivered: Family<TaskLabel, Counter>,
    pub sink_execute_time: Hist,
    pub sink_commit_time: Hist,
    pub sink_rps: FGauge,
    pub sink_tps: FGauge,
    /// Row changes captured from the binlog and made durable in the CDC stream (only grows).
    pub source_record_num: Family<TaskLabel, Gauge>,
    pub source_rps: FGauge,
    /// Seconds between a captured event's source time and its capture.
    pub source_delay: FGauge,
    /// Transactions dispatched to APPLY and not yet applied by the sink.
    pub dispatcher_ready_transaction_size: Family<TaskLabel, Gauge>,
    /// Seconds between the source time of the newest applied event and its apply.
    pub sink_delay: FGauge,
    /// Source rows verified by the checker.
    pub checker_rows_total: Family<TaskLabel, Counter>,
    pub checker_rps: FGauge,
    /// Rows the newest verification found different (missing + extra + changed).
    pub checker_diff_rows: Family<TaskLabel, Gauge>,
    /// Errors a job met (`outcome` = `retry` for transient ones, `stopped` for the others).
    pub errors_total: Family<ErrorLabel, Counter>,
    rate_state: Mutex<HashMap<TaskLabel, Rates>>,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let m = Metrics {
            full_rows_total: Family::default(),
            full_chunks_total: Family::default(),
            full_bytes_total: Family::default(),
            sink_total_record: Family::default(),
            sink_transactions: Family::default(),
            sink_redelivered: Family::default(),
            sink_execute_time: Family::new_with_constructor(seconds_histogram as fn() -> Histogram),
            sink_commit_time: Family::new_with_constructor(seconds_histogram as fn() -> Histogram),
            sink_rps: Family::default(),
            sink_tps: Family::default(),
            source_record_num: Family::default(),
            source_rps: Family::default(),
            source_delay: Family::default(),
            dispatcher_ready_transaction_size: Family::default(),
            sink_delay: Family::default(),
            checker_rows_total: Family::default(),
            checker_rps: Family::default(),
            checker_diff_rows: Family::default(),
            errors_total: Family::default(),
            rate_state: Mutex::new(HashMap::new()),
            registry: Registry::default(),
        };
        registry.register("full_rows", "Rows read and published by the full copy", m.full_rows_total.clone());
        registry.register("full_chunks", "Chunks published by the full copy", m.full_chunks_total.clone());
        registry.register(
            "full_bytes",
            "Bytes of row batches published by the full copy",
            m.full_bytes_total.clone(),
        );
        registry.register("sink_total_record", "Rows written to the target", m.sink_total_record.clone());
        registry.register("sink_transactions", "Target transactions committed", m.sink_transactions.clone());
        registry.register(
            "sink_redelivered",
            "APPLY messages JetStream delivered more than once (an ack deadline passed or a sink stopped)",
            m.sink_redelivered.clone(),
        );
        registry.register(
            "sink_execute_time",
            "Seconds spent executing statements per target transaction",
            m.sink_execute_time.clone(),
        );
        registry.register(
            "sink_commit_time",
            "Seconds spent committing target transactions",
            m.sink_commit_time.clone(),
        );
        registry.register("sink_rps", "Rows written to the target per second", m.sink_rps.clone());
        registry.register("sink_tps", "Target transactions per second", m.sink_tps.clone());
        registry.register(
            "source_record_num",
            "Row changes captured into the CDC stream",
            m.source_record_num.clone(),
        );
        registry.register("source_rps", "Row changes captured per second", m.source_rps.clone());
        registry.register(
            "source_delay",
            "Seconds between a change's commit on the source and its capture",
            m.source_delay.clone(),
        );
        registry.register(
            "dispatcher_ready_transaction_size",
            "Transactions dispatched and not yet applied",
            m.dispatcher_ready_transaction_size.clone(),
        );
        registry.register(
            "sink_delay",
            "Seconds between a change's commit on the source and its apply on the target",
            m.sink_delay.clone(),
        );
        registry.register("checker_rows", "Source rows verified", m.checker_rows_total.clone());
        registry.register("checker_rps", "Source rows verified per second", m.checker_rps.clone());
        registry.register(
            "checker_diff_rows",
            "Rows the newest verification found different",
            m.checker_diff_rows.clone(),
        );
        registry.register(
            "errors",
            "Errors met by this service's jobs, by task, code and outcome (retry or stopped)",
            m.errors_total.clone(),
        );
        Arc::new(Metrics { registry, ..m })
    }

    /// Counts an error of a task's job: `stopped` when the job gave up (definite error).
    pub fn count_error(&self, task: &str, code: &str, stopped: bool) {
        let outcome = if stopped { "stopped" } else { "retry" };
        self.errors_total
            .get_or_create(&ErrorLabel {
                task: task.to_owned(),
                code: code.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Recomputes the rate gauges every `every` until the process ends.
    pub fn spawn_rate_updater(self: &Arc<Self>, every: Duration) {
        let m = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(m) = m.upgrade() else { return };
                m.update_rates();
            }
        });
    }

    fn update_rates(&self) {
        let now = Instant::now();
        let Ok(mut state) = self.rate_state.lock() else { return };
        let labels: Vec<TaskLabel> = state.keys().cloned().collect();
        for l in labels {
            let next = Rates {
                sink_rows: self.sink_total_record.get_or_create(&l).get().max(0) as u64,
                sink_txns: self.sink_transactions.get_or_create(&l).get(),
                source_rows: self.source_record_num.get_or_create(&l).get().max(0) as u64,
                checker_rows: self.checker_rows_total.get_or_create(&l).get(),
                at: now,
            };
            if let Some(prev) = state.get(&l).copied() {
                let secs = now.duration_since(prev.at).as_secs_f64().max(1e-3);
                let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
                self.sink_rps.get_or_create(&l).set(rate(next.sink_rows, prev.sink_rows));
                self.sink_tps.get_or_create(&l).set(rate(next.sink_txns, prev.sink_txns));
                self.source_rps.get_or_create(&l).set(rate(next.source_rows, prev.source_rows));
                self.checker_rps.get_or_create(&l).set(rate(next.checker_rows, prev.checker_rows));
            }
            state.insert(l, next);
        }
    }

    /// Starts tracking rates for a task (call once when a sink job starts).
    pub fn track_task_rates(&self, label: &TaskLabel) {
        if let Ok(mut s) = self.rate_state.lock() {
            s.entry(label.clone()).or_insert(Rates {
                sink_rows: 0,
                sink_txns: 0,
                source_rows: 0,
                checker_rows: 0,
                at: Instant::now(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_counted_by_task_code_and_outcome() {
        let m = Metrics::new();
        m.count_error("t1", "target_down", false);
        m.count_error("t1", "target_down", false);
        m.count_error("t1", "unsupported_ddl", true);
        let text = m.encode();
        assert!(text.contains(r#"errors_total{task="t1",code="target_down",outcome="retry"} 2"#), "{text}");
        assert!(
            text.contains(r#"errors_total{task="t1",code="unsupported_ddl",outcome="stopped"} 1"#),
            "{text}"
        );
    }
}
