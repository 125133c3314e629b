//! Liveness, readiness and metrics.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::state::AppState;

#[utoipa::path(get, path = "/healthz", tag = "system", summary = "Liveness", responses((status = 200, description = "The process is up: `{\"status\": \"ok\"}`", body = Object)))]
pub(crate) async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready when Postgres answers within two seconds.
#[utoipa::path(get, path = "/readyz", tag = "system", summary = "Readiness: database, policy and collectors", responses((status = 200, description = "Ready", body = Object), (status = 503, description = "Not ready; the body says which check failed", body = Object)))]
pub(crate) async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let db = tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await;
    let postgres = match db {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(err)) => format!("error: {err}"),
        Err(_) => "error: timed out".to_owned(),
    };
    let ready = postgres == "ok";
    // Collectors are reported, not required: one failing collector degrades only itself.
    let collectors = match &state.context {
        Some(ctx) => serde_json::to_value(ctx.health.snapshot().await).unwrap_or_default(),
        None => json!("disabled"),
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {
            "postgres": postgres,
            "policy": format!("ok ({} files)", state.policy.current().files().len()),
            "orchestrator": state.dispatcher.name(),
        },
        "collectors": collectors,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

#[utoipa::path(get, path = "/metrics", tag = "system", summary = "Prometheus metrics", responses((status = 200, description = "OpenMetrics text", body = String, content_type = "application/openmetrics-text")))]
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Some(ctx) = &state.context {
        let board = ctx.health.snapshot().await;
        state.metrics.record_collectors(board.iter());
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
