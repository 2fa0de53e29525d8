//! Metrics in the Prometheus text format (`prometheus-client`): what came
//! in, what ran, how long providers took, what went out. Counters move in
//! this process; the job and queue gauges are read from the store when
//! scraped, so every process answers the same numbers for them.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use provisio_store::jobs;

use crate::{EngineError, Queries};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    outcome: String,
    blueprint: String,
    configuration: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    configuration: String,
    function: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// The process's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    events: Family<EventLabels, Counter>,
    jobs: Family<JobLabels, Counter>,
    calls: Family<CallLabels, Histogram>,
    jobs_now: Family<StateLabels, Gauge>,
    queue_depth: Gauge,
    takeovers: Counter,
    deliveries: Family<OutcomeLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("provisio");
        let events = Family::<EventLabels, Counter>::default();
        registry.register("events", "Billing events recorded (duplicates not counted), by type", events.clone());
        let jobs = Family::<JobLabels, Counter>::default();
        registry.register(
            "job_attempts",
            "Job attempts recorded, by outcome (succeeded, retrying, failed), blueprint and configuration",
            jobs.clone(),
        );
        let calls = Family::<CallLabels, Histogram>::new_with_constructor(|| {
            // 1 ms to about 65 s.
            Histogram::new(exponential_buckets(0.001, 2.0, 17))
        });
        registry.register(
            "provider_call_duration_seconds",
            "Provider call latency, by configuration and function",
            calls.clone(),
        );
        let jobs_now = Family::<StateLabels, Gauge>::default();
        registry.register("jobs", "Jobs in the store now, by state", jobs_now.clone());
        let queue_depth = Gauge::default();
        registry.register("queue_depth", "Jobs waiting to run (queued or retrying)", queue_depth.clone());
        let takeovers = Counter::default();
        registry.register("lease_takeovers", "Jobs taken back from a worker whose lease ran out", takeovers.clone());
        let deliveries = Family::<OutcomeLabels, Counter>::default();
        registry.register("webhook_deliveries", "Webhook delivery attempts, by outcome", deliveries.clone());
        Metrics { registry: Mutex::new(registry), events, jobs, calls, jobs_now, queue_depth, takeovers, deliveries }
    }
}

impl Metrics {
    pub(crate) fn event(&self, event_type: &str) {
        self.events.get_or_create(&EventLabels { r#type: event_type.to_owned() }).inc();
    }

    pub(crate) fn job(&self, outcome: &str, blueprint: &str, configuration: &str) {
        let labels =
            JobLabels { outcome: outcome.into(), blueprint: blueprint.into(), configuration: configuration.into() };
        self.jobs.get_or_create(&labels).inc();
    }

    pub(crate) fn call(&self, configuration: &str, function: &str, duration_ms: u64) {
        let labels = CallLabels { configuration: configuration.into(), function: function.into() };
        self.calls.get_or_create(&labels).observe(duration_ms as f64 / 1000.0);
    }

    pub(crate) fn takeovers(&self, n: usize) {
        self.takeovers.inc_by(n as u64);
    }

    pub(crate) fn delivery(&self, outcome: &str) {
        self.deliveries.get_or_create(&OutcomeLabels { outcome: outcome.into() }).inc();
    }
}

impl Queries {
    /// The metrics in the Prometheus text format (with `# EOF`).
    pub async fn metrics_text(&self) -> Result<String, EngineError> {
        let counts = self.engine.store().read(|conn| Box::pin(async move { jobs::count_by_state(conn).await })).await?;
        let metrics = self.engine.metrics();
        let mut waiting = 0;
        for (state, n) in counts {
            if state == "queued" || state == "retrying" {
                waiting += n;
            }
            metrics.jobs_now.get_or_create(&StateLabels { state }).set(n);
        }
        metrics.queue_depth.set(waiting);
        let mut text = String::new();
        let registry = metrics.registry.lock().expect("metrics registry lock");
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("writing to a String");
        Ok(text)
    }
}
