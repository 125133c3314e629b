//! Tool router metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::exponential_buckets;

use carapulse_core::telemetry::TraceExemplar;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub tool: String,
    pub action: String,
    pub outcome: String,
    pub used: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub tool: String,
    pub action: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub calls: Family<CallLabels, Counter>,
    /// Each bucket keeps the trace id of its latest sampled call (an exemplar).
    pub duration: Family<ActionLabels, HistogramWithExemplars<TraceExemplar>>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("carapulse");
        carapulse_core::process_metrics::register(&mut registry);
        let calls = Family::<CallLabels, Counter>::default();
        let duration =
            Family::<ActionLabels, HistogramWithExemplars<TraceExemplar>>::new_with_constructor(
                || HistogramWithExemplars::new(exponential_buckets(0.005, 2.0, 14)),
            );
        registry.register(
            "tool_calls",
            "Tool calls by tool, action, outcome and path",
            calls.clone(),
        );
        registry.register(
            "tool_call_duration_seconds",
            "Tool call duration",
            duration.clone(),
        );
        Self {
            registry,
            calls,
            duration,
        }
    }

    pub fn record(&self, tool: &str, action: &str, outcome: &str, used: &str, seconds: f64) {
        self.calls
            .get_or_create(&CallLabels {
                tool: tool.into(),
                action: action.into(),
                outcome: outcome.into(),
                used: used.into(),
            })
            .inc();
        self.duration
            .get_or_create(&ActionLabels {
                tool: tool.into(),
                action: action.into(),
            })
            .observe(seconds, carapulse_core::telemetry::exemplar(), None);
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
