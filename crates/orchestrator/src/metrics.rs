//! Orchestrator metrics: step calls by kind and outcome, executions finished by status.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    pub kind: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub steps: Family<StepLabels, Counter>,
    pub finished: Family<StatusLabels, Counter>,
}

/// The process-wide metrics (activities and the admin server share them).
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("carapulse");
        carapulse_core::process_metrics::register(&mut registry);
        let steps = Family::<StepLabels, Counter>::default();
        let finished = Family::<StatusLabels, Counter>::default();
        registry.register(
            "workflow_steps",
            "Step calls run by the orchestrator, by kind and outcome",
            steps.clone(),
        );
        registry.register(
            "executions_finished",
            "Executions finished, by status",
            finished.clone(),
        );
        Metrics {
            registry,
            steps,
            finished,
        }
    })
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
