//! Logging and traces. Logs: structured JSON on stderr by default (`LOG_FORMAT=text` for humans),
//! level from `RUST_LOG` or `LOG_LEVEL` (default `info`). Traces: off unless
//! `telemetry.otlp_endpoint` is set; then `tracing` spans are exported over OTLP/gRPC through
//! `tracing-opentelemetry`, with the W3C trace-context propagator installed globally so
//! [`inject`] and [`extract`] carry a trace across HTTP hops (API requests, the tool router,
//! connectors). Metrics live with each binary, not here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchSpanProcessor, Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

use crate::config::TelemetryConfig;

/// Set once a tracer provider is installed: Temporal clients add their tracing plugin then.
static TRACES_ON: AtomicBool = AtomicBool::new(false);

/// Whether this process exports traces.
pub fn traces_enabled() -> bool {
    TRACES_ON.load(Ordering::Relaxed)
}

/// Why traces could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry.otlp_endpoint: {0}")]
    Exporter(String),
}

/// Keeps the tracer provider alive; dropping it flushes the spans still queued (bounded wait).
#[must_use = "dropping the guard stops exporting traces"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn tracing(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports what is queued now (tests read their receiver after this).
    pub fn flush(&self) {
        if let Some(provider) = &self.provider {
            if let Err(e) = provider.force_flush() {
                tracing::warn!(error = %e, "flushing traces failed");
            }
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown_with_timeout(Duration::from_secs(5)) {
                eprintln!("telemetry: shutting the trace exporter down: {e}");
            }
        }
    }
}

/// Logs only (tests and tools); later calls are no-ops.
pub fn init(service: &'static str) {
    if install(service, None).is_ok() {
        tracing::debug!(service, "logging initialised");
    }
}

/// Logs, plus traces when `cfg.otlp_endpoint` is set, with the default tracer provider.
pub fn init_with(
    service: &'static str,
    cfg: &TelemetryConfig,
) -> Result<Telemetry, TelemetryError> {
    let provider = match cfg.otlp_endpoint.as_deref() {
        Some(endpoint) => Some(
            SdkTracerProvider::builder()
                .with_span_processor(otlp_processor(endpoint)?)
                .with_sampler(sampler(cfg))
                .with_resource(resource(service))
                .build(),
        ),
        None => None,
    };
    Ok(init_with_provider(service, provider))
}

/// Logs, plus traces through `provider` (the orchestrator builds its own: workflow spans need
/// replay-safe ids). Installs the provider and the W3C propagator globally.
pub fn init_with_provider(service: &'static str, provider: Option<SdkTracerProvider>) -> Telemetry {
    if let Some(p) = &provider {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        opentelemetry::global::set_tracer_provider(p.clone());
        TRACES_ON.store(true, Ordering::Relaxed);
    }
    match install(service, provider.as_ref()) {
        Ok(()) => tracing::info!(
            service,
            traces = provider.is_some(),
            "telemetry initialised"
        ),
        Err(_) => tracing::debug!(service, "a subscriber was already installed"),
    }
    Telemetry { provider }
}

/// The OTLP/gRPC batch exporter to `endpoint`.
pub fn otlp_processor(endpoint: &str) -> Result<BatchSpanProcessor, TelemetryError> {
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    Ok(BatchSpanProcessor::builder(exporter).build())
}

/// Keeps `cfg.sample_ratio` of new traces and follows the caller's decision for the rest.
pub fn sampler(cfg: &TelemetryConfig) -> Sampler {
    Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(cfg.sample_ratio)))
}

/// `service.name` and the version, on every span of this process.
pub fn resource(service: &'static str) -> Resource {
    Resource::builder()
        .with_service_name(service)
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build()
}

/// The subscriber: the log layer filtered by `RUST_LOG`/`LOG_LEVEL`, and the trace layer with
/// its own filter (info and above), so quiet logs do not thin out traces.
fn install(
    service: &'static str,
    provider: Option<&SdkTracerProvider>,
) -> Result<(), tracing_subscriber::util::TryInitError> {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| std::env::var("LOG_LEVEL").ok())
        .unwrap_or_else(|| "info".into());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let text = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("text"));
    let logs = if text {
        fmt::layer().with_writer(std::io::stderr).boxed()
    } else {
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed()
    };
    let traces = provider.map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(service))
            .with_filter(
                Targets::new()
                    .with_default(LevelFilter::INFO)
                    // Dependencies' internals (HTTP/2 frames, pool checkouts) are noise in a trace.
                    .with_target("h2", LevelFilter::OFF)
                    .with_target("hyper", LevelFilter::OFF)
                    .with_target("hyper_util", LevelFilter::OFF)
                    .with_target("tonic", LevelFilter::OFF)
                    .with_target("tower", LevelFilter::OFF)
                    .with_target("sqlx", LevelFilter::OFF)
                    .with_target("reqwest", LevelFilter::OFF)
                    .with_target("opentelemetry", LevelFilter::OFF)
                    // The Temporal SDK's own spans: its plugin traces workflows and activities
                    // with the right parents; the SDK's internal polling spans would only add noise.
                    .with_target("temporalio_sdk_core", LevelFilter::OFF)
                    .with_target("temporalio_client", LevelFilter::OFF)
                    .with_target("temporalio_common", LevelFilter::OFF)
                    .with_target("opentelemetry_sdk", LevelFilter::OFF),
            )
    });
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces)
        .try_init()
}

/// Adds `traceparent` (and `tracestate`) for the current span to outgoing request headers. The
/// helpers below return at once when traces are off: they run on every request.
pub fn inject(headers: &mut http::HeaderMap) {
    if !traces_enabled() {
        return;
    }
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut HeaderInjector(headers))
    });
}

/// `inject` for a reqwest request being built.
pub fn traced(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    if !traces_enabled() {
        return request;
    }
    let mut headers = http::HeaderMap::new();
    inject(&mut headers);
    request.headers(headers)
}

/// The caller's trace context from inbound `traceparent`/`tracestate` headers (an empty context
/// when absent or malformed: the request starts a new trace).
pub fn extract(headers: &http::HeaderMap) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

/// Makes `span` a child of the trace named by inbound headers, when they name one.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    if !traces_enabled() {
        return;
    }
    let parent = extract(headers);
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// The current span's trace id when it is sampled (for metric exemplars), else `None`.
pub fn current_trace_id() -> Option<String> {
    if !traces_enabled() {
        return None;
    }
    let context = tracing::Span::current().context();
    let span = context.span();
    let sc = span.span_context();
    (sc.is_valid() && sc.is_sampled()).then(|| sc.trace_id().to_string())
}

/// The exemplar label of a latency observation: the trace it belongs to.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct TraceExemplar {
    pub trace_id: String,
}

/// The current sampled trace as an exemplar (`None` when traces are off or not sampled).
pub fn exemplar() -> Option<TraceExemplar> {
    current_trace_id().map(|trace_id| TraceExemplar { trace_id })
}

/// The W3C `traceparent` of the current span, for a child process's environment.
pub fn current_traceparent() -> Option<String> {
    let mut headers = http::HeaderMap::new();
    inject(&mut headers);
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::header::HeaderName::from_bytes(key.as_bytes()),
            http::header::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_through_headers() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        let context = extract(&headers);
        let span = context.span();
        let sc = span.span_context();
        assert!(sc.is_valid() && sc.is_sampled());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let mut out = http::HeaderMap::new();
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&context, &mut HeaderInjector(&mut out))
        });
        assert_eq!(
            out.get("traceparent").and_then(|v| v.to_str().ok()),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        // Garbage is a new trace, not an error.
        let mut bad = http::HeaderMap::new();
        bad.insert("traceparent", http::HeaderValue::from_static("00-zz-01"));
        assert!(!extract(&bad).span().span_context().is_valid());
    }
}
