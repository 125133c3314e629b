//! Logging setup: structured JSON on stderr by default (`LOG_FORMAT=text` for humans), level from
//! `RUST_LOG` or `LOG_LEVEL` (default `info`). Metrics live with each binary, not here.

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber once; later calls are no-ops (tests call it repeatedly).
pub fn init(service: &'static str) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| std::env::var("LOG_LEVEL").ok())
        .unwrap_or_else(|| "info".into());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let text = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("text"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = if text {
        builder.try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    };
    if result.is_ok() {
        tracing::debug!(service, "logging initialised");
    }
}
