//! Agent metrics, apart from the handlers that bump them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    pub command: String,
    pub outcome: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub commands: Family<CommandLabels, Counter>,
    pub refused_signatures: Counter,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("carapulse_agent");
        carapulse_core::process_metrics::register(&mut registry);
        let commands = Family::<CommandLabels, Counter>::default();
        let refused_signatures = Counter::default();
        registry.register(
            "commands",
            "Slack commands and button clicks by outcome",
            commands.clone(),
        );
        registry.register(
            "refused_signatures",
            "Slack requests refused for their signature",
            refused_signatures.clone(),
        );
        Self {
            registry,
            commands,
            refused_signatures,
        }
    }

    pub fn record(&self, command: &str, outcome: &str) {
        self.commands
            .get_or_create(&CommandLabels {
                command: command.into(),
                outcome: outcome.into(),
            })
            .inc();
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
