//! `GET /v1/diagnostics`: what an operator checks first when something is off — versions,
//! uptime, the database, Temporal, the tool router, policy, planner, collectors and the live
//! event hub — in one answer, without secrets (no tokens, keys or DSNs). `demo` is true when the
//! tool router runs recording fakes (`tool_router.demo_cli_dir`), so clients can say so.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiResult;
use crate::middleware::RequestContext;
use crate::state::AppState;

use super::require_read;

/// Each dependency probe gives up after this long, so diagnostics answer even when one hangs.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[utoipa::path(get, path = "/diagnostics", tag = "system",
    summary = "Versions, uptime and the state of every dependency (no secrets)",
    responses((status = 200, description = "Diagnostics; each dependency has `ok` and, when not, `error`", body = Object),
        crate::openapi::CommonErrors),
    security(("bearer" = [])))]
pub(crate) async fn diagnostics(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "diagnostics.read").await?;
    let cfg = &state.config;
    let (database, temporal, tool_router) = tokio::join!(
        database(&state),
        temporal(cfg.orchestrator.temporal_addr.as_deref()),
        tool_router(cfg.tool_router.base_url.as_deref()),
    );
    let collectors = match &state.context {
        Some(context) => json!(context.health.snapshot().await),
        None => json!("disabled"),
    };
    let uptime = chrono::Utc::now() - state.started_at;
    let demo = tool_router["demo"].is_object();
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": state.started_at,
        "uptime_secs": uptime.num_seconds(),
        "tenant": ctx.tenant(),
        "demo": demo,
        "database": database,
        "orchestrator": {
            "dispatcher": state.dispatcher.name(),
            "namespace": cfg.orchestrator.namespace,
            "task_queue": cfg.orchestrator.task_queue,
            "temporal": temporal,
        },
        "tool_router": tool_router,
        "policy": {
            "package": state.policy.current().package(),
            "files": state.policy.current().files(),
            "generation": state.policy.generation(),
        },
        "planner": {
            "provider": cfg.llm.provider.as_deref().unwrap_or("rules"),
            "model": cfg.llm.model,
            "fallback_to_rules": cfg.llm.fallback_to_rules,
        },
        "collectors": collectors,
        "events": {"subscribers": state.events.subscribers()},
        "features": {
            "dev_mode": cfg.gateway.dev_mode,
            "session_required": cfg.gateway.session_required,
            "event_loop": cfg.gateway.enable_event_loop,
            "scheduler": cfg.scheduler.enabled,
            "auto_approve_low": cfg.approvals.auto_approve_low,
            "linear": cfg.connectors.linear.token.as_deref().is_some_and(|t| !t.is_empty()),
            "webhook_sources": cfg.webhooks.keys().collect::<Vec<_>>(),
        },
    })))
}

async fn database(state: &AppState) -> Value {
    match tokio::time::timeout(PROBE_TIMEOUT, state.store.diagnostics()).await {
        Ok(Ok(d)) => json!({"ok": true, "details": d}),
        Ok(Err(e)) => json!({"ok": false, "error": e.to_string()}),
        Err(_) => json!({"ok": false, "error": "timed out"}),
    }
}

/// A TCP connect to the frontend: enough to tell "down" from "up" without an RPC client.
async fn temporal(addr: Option<&str>) -> Value {
    let Some(addr) = addr else {
        return json!({"ok": false, "error": "orchestrator.temporal_addr is not set"});
    };
    let host_port = addr
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let started = Instant::now();
    match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(host_port)).await {
        Ok(Ok(_)) => json!({"ok": true, "address": addr, "connect_ms": ms(started)}),
        Ok(Err(e)) => json!({"ok": false, "address": addr, "error": e.to_string()}),
        Err(_) => json!({"ok": false, "address": addr, "error": "timed out"}),
    }
}

/// The router's readiness, with its checks (sandbox isolation, grants) and the problems that
/// make it refuse tools, so an operator sees why from here.
async fn tool_router(base_url: Option<&str>) -> Value {
    let Some(base) = base_url else {
        return json!({"ok": false, "error": "tool_router.base_url is not set"});
    };
    let url = format!("{}/readyz", base.trim_end_matches('/'));
    let client = match reqwest::Client::builder().timeout(PROBE_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => return json!({"ok": false, "url": base, "error": e.to_string()}),
    };
    let started = Instant::now();
    match client.get(&url).send().await {
        Ok(r) => {
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            let mut out = json!({
                "ok": status.is_success(),
                "url": base,
                "latency_ms": ms(started),
                "checks": body["checks"],
                // Demo mode: the router runs recording fakes; the UI and CLI show a banner.
                "demo": body["demo"],
            });
            if !status.is_success() {
                out["error"] = json!(format!("/readyz answered {status}"));
                out["problems"] = body["problems"].clone();
            }
            out
        }
        Err(e) => json!({"ok": false, "url": base, "error": e.to_string()}),
    }
}

fn ms(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0
}
