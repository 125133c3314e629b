//! Traces for the Temporal side. Workflow code is replayed, so its spans need ids that replay
//! gives again: the worker's tracer provider uses the SDK's `WorkflowIdGenerator` and drops
//! replayed spans (`WorkflowSpanProcessor`). The SDK's OpenTelemetry plugin, on every client this
//! crate builds (the gateway's dispatcher and the worker), carries the trace context in workflow
//! and activity headers, so one trace runs from the API request to each activity.

use opentelemetry_sdk::trace::SdkTracerProvider;
use temporalio_client::ClientOptions;
use temporalio_sdk::opentelemetry::{
    OpenTelemetryPlugin, WorkflowIdGenerator, WorkflowSpanProcessor,
};

use carapulse_core::config::TelemetryConfig;
use carapulse_core::telemetry::{self, Telemetry, TelemetryError};

/// Logs, plus traces when `cfg.otlp_endpoint` is set, with a replay-safe tracer provider.
pub fn init(service: &'static str, cfg: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
    let provider = match cfg.otlp_endpoint.as_deref() {
        Some(endpoint) => Some(tracer_provider(service, cfg, endpoint)?),
        None => None,
    };
    Ok(telemetry::init_with_provider(service, provider))
}

/// The tracer provider for a process that runs workflows (and may run the rest in tests).
pub fn tracer_provider(
    service: &'static str,
    cfg: &TelemetryConfig,
    endpoint: &str,
) -> Result<SdkTracerProvider, TelemetryError> {
    Ok(SdkTracerProvider::builder()
        .with_id_generator(WorkflowIdGenerator::default())
        .with_span_processor(WorkflowSpanProcessor::new(telemetry::otlp_processor(
            endpoint,
        )?))
        .with_sampler(telemetry::sampler(cfg))
        .with_resource(telemetry::resource(service))
        .build())
}

/// Client options for `namespace`, with the tracing plugin when this process exports traces.
pub fn client_options(namespace: String) -> ClientOptions {
    if telemetry::traces_enabled() {
        ClientOptions::new(namespace)
            .plugin(OpenTelemetryPlugin::builder().build())
            .build()
    } else {
        ClientOptions::new(namespace).build()
    }
}
