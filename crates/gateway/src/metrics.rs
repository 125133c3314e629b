//! Gateway metrics (prometheus-client), kept apart from the handlers that bump them.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::exponential_buckets;

use carapulse_core::telemetry::TraceExemplar;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub action: String,
    pub decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LlmCallLabels {
    pub provider: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LlmTokenLabels {
    pub provider: String,
    /// `input` or `output`.
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CollectorLabels {
    pub collector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HookLabels {
    pub source: String,
    /// `accepted`, `unauthorized`, `invalid`, `gated`, `planned`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabels {
    /// `sse` or `ws`.
    pub transport: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlannerLabels {
    /// `rules`, `llm:<provider>`, `rules(fallback)`, `caller`, `workflow`.
    pub planner: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApprovalLabels {
    /// `approved`, `denied` or `expired`.
    pub status: String,
    /// `api`, `ui`, `slack`, `linear`, `auto`, or `sweeper` for expiries.
    pub source: String,
}

/// Every metric the gateway exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<RequestLabels, Counter>,
    /// Latency by route; each bucket keeps the trace id of its latest sampled observation.
    pub http_duration: Family<RouteLabels, HistogramWithExemplars<TraceExemplar>>,
    pub plans_created: Counter<u64, AtomicU64>,
    pub policy_decisions: Family<DecisionLabels, Counter>,
    pub audit_appends: Family<OutcomeLabels, Counter>,
    pub executions_started: Family<OutcomeLabels, Counter>,
    pub auth_failures: Counter<u64, AtomicU64>,
    pub rate_limited: Counter<u64, AtomicU64>,
    pub llm_calls: Family<LlmCallLabels, Counter>,
    /// Model call latency; each bucket keeps the trace id of its latest sampled call.
    pub llm_latency: Family<LlmCallLabels, HistogramWithExemplars<TraceExemplar>>,
    pub llm_tokens: Family<LlmTokenLabels, Counter>,
    pub plans_by_planner: Family<PlannerLabels, Counter>,
    pub stream_subscribers: Family<TransportLabels, Gauge>,
    pub hooks: Family<HookLabels, Counter>,
    pub collector_up: Family<CollectorLabels, Gauge>,
    pub collector_failures: Family<CollectorLabels, Gauge>,
    pub approvals: Family<ApprovalLabels, Counter>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("carapulse");
        let http_requests = Family::<RequestLabels, Counter>::default();
        let http_duration =
            Family::<RouteLabels, HistogramWithExemplars<TraceExemplar>>::new_with_constructor(
                || HistogramWithExemplars::new(exponential_buckets(0.001, 2.0, 16)),
            );
        let plans_created = Counter::default();
        let policy_decisions = Family::<DecisionLabels, Counter>::default();
        let audit_appends = Family::<OutcomeLabels, Counter>::default();
        let executions_started = Family::<OutcomeLabels, Counter>::default();
        let auth_failures = Counter::default();
        let rate_limited = Counter::default();
        let llm_calls = Family::<LlmCallLabels, Counter>::default();
        let llm_latency =
            Family::<LlmCallLabels, HistogramWithExemplars<TraceExemplar>>::new_with_constructor(
                || HistogramWithExemplars::new(exponential_buckets(0.05, 2.0, 12)),
            );
        let llm_tokens = Family::<LlmTokenLabels, Counter>::default();
        let plans_by_planner = Family::<PlannerLabels, Counter>::default();
        let stream_subscribers = Family::<TransportLabels, Gauge>::default();
        let hooks = Family::<HookLabels, Counter>::default();
        let collector_up = Family::<CollectorLabels, Gauge>::default();
        let collector_failures = Family::<CollectorLabels, Gauge>::default();
        let approvals = Family::<ApprovalLabels, Counter>::default();
        registry.register(
            "approvals",
            "Approval decisions recorded, by status and where they came from",
            approvals.clone(),
        );
        carapulse_core::process_metrics::register(&mut registry);
        registry.register(
            "context_collector_up",
            "1 when the collector's last run succeeded",
            collector_up.clone(),
        );
        registry.register(
            "context_collector_consecutive_failures",
            "Failures of the collector since its last success",
            collector_failures.clone(),
        );
        registry.register(
            "webhooks",
            "Webhook requests and alert planning by source and outcome",
            hooks.clone(),
        );
        registry.register(
            "event_subscribers",
            "Open event streams by transport",
            stream_subscribers.clone(),
        );
        registry.register(
            "llm_calls",
            "Model calls by provider and outcome (ok, parse_error, budget, timeout, status, ...)",
            llm_calls.clone(),
        );
        registry.register(
            "llm_call_duration_seconds",
            "Model call latency including retries",
            llm_latency.clone(),
        );
        registry.register(
            "llm_tokens",
            "Tokens reported by the provider",
            llm_tokens.clone(),
        );
        registry.register(
            "plans_planned",
            "Plans whose steps came from each planner",
            plans_by_planner.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            http_duration.clone(),
        );
        registry.register("plans_created", "Plans created", plans_created.clone());
        registry.register(
            "policy_decisions",
            "Policy decisions by action and result",
            policy_decisions.clone(),
        );
        registry.register(
            "audit_appends",
            "Audit events appended by outcome",
            audit_appends.clone(),
        );
        registry.register(
            "executions_started",
            "Execute requests by outcome",
            executions_started.clone(),
        );
        registry.register(
            "auth_failures",
            "Requests refused for authentication",
            auth_failures.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused by the rate limiter",
            rate_limited.clone(),
        );
        Self {
            registry,
            http_requests,
            http_duration,
            plans_created,
            policy_decisions,
            audit_appends,
            executions_started,
            auth_failures,
            rate_limited,
            llm_calls,
            llm_latency,
            llm_tokens,
            plans_by_planner,
            stream_subscribers,
            hooks,
            collector_up,
            collector_failures,
            approvals,
        }
    }

    /// Copies the collectors' health into the gauges (at scrape time).
    pub fn record_collectors<'a>(
        &self,
        health: impl Iterator<Item = (&'a String, &'a carapulse_context::CollectorHealth)>,
    ) {
        for (name, h) in health {
            let labels = CollectorLabels {
                collector: name.clone(),
            };
            self.collector_up
                .get_or_create(&labels)
                .set(i64::from(h.ok));
            self.collector_failures
                .get_or_create(&labels)
                .set(i64::from(h.consecutive_failures));
        }
    }

    pub fn record_hook(&self, source: &str, outcome: &str) {
        self.hooks
            .get_or_create(&HookLabels {
                source: source.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn stream_opened(&self, transport: &str) {
        self.stream_subscribers
            .get_or_create(&TransportLabels {
                transport: transport.to_owned(),
            })
            .inc();
    }

    pub fn stream_closed(&self, transport: &str) {
        self.stream_subscribers
            .get_or_create(&TransportLabels {
                transport: transport.to_owned(),
            })
            .dec();
    }

    pub fn record_planner(&self, planner: &str) {
        self.plans_by_planner
            .get_or_create(&PlannerLabels {
                planner: planner.to_owned(),
            })
            .inc();
    }

    pub fn record_decision(&self, action: &str, decision: &str) {
        self.policy_decisions
            .get_or_create(&DecisionLabels {
                action: action.to_owned(),
                decision: decision.to_owned(),
            })
            .inc();
    }

    pub fn record_approval(&self, status: &str, source: &str) {
        self.approvals
            .get_or_create(&ApprovalLabels {
                status: status.to_owned(),
                source: source.to_owned(),
            })
            .inc();
    }

    pub fn record_audit(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.audit_appends
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl carapulse_core::planner::llm::LlmObserver for Metrics {
    fn observe(&self, record: &carapulse_core::planner::llm::CallRecord) {
        let labels = LlmCallLabels {
            provider: record.provider.to_owned(),
            outcome: record.outcome.to_owned(),
        };
        self.llm_calls.get_or_create(&labels).inc();
        self.llm_latency.get_or_create(&labels).observe(
            record.latency.as_secs_f64(),
            carapulse_core::telemetry::exemplar(),
            None,
        );
        for (kind, tokens) in [
            ("input", record.input_tokens),
            ("output", record.output_tokens),
        ] {
            if let Some(n) = tokens {
                self.llm_tokens
                    .get_or_create(&LlmTokenLabels {
                        provider: record.provider.to_owned(),
                        kind: kind.to_owned(),
                    })
                    .inc_by(n);
            }
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
