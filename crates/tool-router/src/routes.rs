//! HTTP routes of the router.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::Instrument;

use carapulse_core::model::ToolName;
use carapulse_core::tools::catalogue;
use carapulse_http::extract::ApiJson;
use carapulse_http::ApiError;

use crate::auth::{authenticate, Service};
use crate::executor::{execute, ExecError, ExecuteRequest};
use crate::logs::LogEvent;
use crate::state::RouterState;

pub fn router(state: RouterState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/tools", get(list_tools))
        .route("/v1/tools/execute", post(execute_tool))
        .route("/v1/tools:execute", post(execute_tool))
        .route("/v1/tools/logs", get(tool_logs))
        .route("/v1/resources/tool-output/{tool_call_id}", get(tool_output))
        .route("/v1/resources", get(list_resources))
        .route("/v1/prompts", get(list_prompts))
        .route("/v1/resources:resolve", post(resolve_resource))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(1 << 20))
        .with_state(state)
}

fn principal(state: &RouterState, headers: &HeaderMap) -> Result<Service, ApiError> {
    authenticate(headers, state.config.tool_router.auth_token.as_deref())
        .map_err(|e| ApiError::unauthorized(e.to_string()))
}

async fn readyz(State(state): State<RouterState>) -> impl IntoResponse {
    let sandbox = &state.config.sandbox;
    let required = crate::executor::base_policy(sandbox, true).require_isolation;
    let isolation = sandbox_exec::isolation_available();
    let mut problems = Vec::new();
    if sandbox.enforce && !sandbox.enabled {
        problems.push("sandbox.enforce is on but sandbox.enabled is off".to_owned());
    }
    if let (true, Err(why)) = (required, &isolation) {
        problems.push(format!(
            "sandbox isolation is required but unavailable on this host, so tools are refused: {why}"
        ));
    }
    let ready = problems.is_empty();
    let demo = state.config.tool_router.demo_cli_dir.as_deref().map(|dir| {
        json!({
            "cli_dir": dir,
            "clis": crate::executor::demo_clis(&state),
            "note": "demo mode: these CLIs are recording fakes; calls to them change nothing outside this machine",
        })
    });
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(json!({
            "status": if ready { "ready" } else { "not_ready" },
            "problems": problems,
            "demo": demo,
            "checks": {
                "policy": format!("ok ({} files)", state.policy.files().len()),
                "sandbox_runner": state.sandbox.describe(),
                "isolation": match &isolation {
                    Ok(()) => "ok: user/mount/pid/net/ipc/uts namespaces, minimal read-only root, seccomp, no capabilities".to_owned(),
                    Err(e) => format!("unavailable: {e}"),
                },
                "isolation_required": required,
                "grants": if state.grant_key.is_some() {
                    "ok".to_owned()
                } else {
                    "tool_router.grant_key is not set: writes and sensitive reads are refused".to_owned()
                },
            }
        })),
    )
}

async fn metrics(State(state): State<RouterState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn list_tools(
    State(state): State<RouterState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    principal(&state, &headers)?;
    let tools: Vec<Value> = ToolName::ALL
        .iter()
        .map(|tool| {
            let actions: Vec<Value> = catalogue()
                .iter()
                .filter(|s| s.tool == *tool)
                .map(|s| s.describe())
                .collect();
            json!({"name": tool, "actions": actions})
        })
        .collect();
    Ok(Json(json!({"tools": tools})))
}

async fn execute_tool(
    State(state): State<RouterState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ExecuteRequest>,
) -> Result<Response, ApiError> {
    principal(&state, &headers)?;
    let grant = headers
        .get(carapulse_core::grant::GRANT_HEADER)
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    // Continues the caller's trace (the orchestrator's step span) when it sent a traceparent.
    let span = tracing::info_span!(
        "tool.execute",
        otel.name = %format!("tool {}.{}", req.tool_name, req.action),
        otel.kind = "server",
        tool = %req.tool_name,
        action = %req.action,
        execution_id = req.execution_id.as_deref().unwrap_or(""),
        tool_call_id = req.tool_call_id.as_deref().unwrap_or(""),
        tenant = %req.context.tenant_id,
    );
    carapulse_core::telemetry::continue_trace(&span, &headers);
    match execute(&state, req, grant.as_deref())
        .instrument(span)
        .await
    {
        Ok(resp) => {
            let notices = resp.deprecations.clone();
            let mut response = Json(resp).into_response();
            carapulse_core::tools::compat::mark_deprecated(response.headers_mut(), &notices);
            Ok(response)
        }
        Err(ExecError::Invalid(e)) => Err(ApiError::bad_request("invalid_request", e.to_string())),
        Err(ExecError::Forbidden(m)) => Err(ApiError::forbidden("policy_denied", m)),
        Err(ExecError::PolicyRefused { message, decision }) => {
            // The usual error body, plus the decision for the caller to keep (policy impact).
            let body = json!({
                "error": {"code": "policy_denied", "message": message},
                "policy_decision": decision,
            });
            Ok((axum::http::StatusCode::FORBIDDEN, Json(body)).into_response())
        }
        Err(ExecError::BreakGlass(m)) => Err(ApiError::forbidden("break_glass_required", m)),
        Err(ExecError::Grant(m)) => Err(ApiError::forbidden("grant_required", m)),
        Err(ExecError::Conflict(m)) => Err(ApiError::conflict("tool_call_id_in_use", m)),
        Err(ExecError::Unavailable(m)) => {
            let mut e = ApiError::unavailable(m);
            e.code = "tool_unavailable";
            Err(e)
        }
        Err(ExecError::Internal(m)) => {
            tracing::error!(error = %m, "tool execution failed internally");
            Err(ApiError::internal())
        }
    }
}

#[derive(Debug, Deserialize)]
struct LogsQuery {
    tool_call_id: String,
}

/// SSE: replays what the call already wrote, then streams new lines until it ends.
async fn tool_logs(
    State(state): State<RouterState>,
    headers: HeaderMap,
    Query(q): Query<LogsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    principal(&state, &headers)?;
    let (history, ended, mut rx) = state
        .hub
        .subscribe(&q.tool_call_id, None)
        .ok_or_else(|| ApiError::not_found("tool call"))?;
    let stream = async_stream(move |tx| async move {
        for line in history {
            if tx.send(line_event(&line)).await.is_err() {
                return;
            }
        }
        if let Some(status) = ended {
            let _ = tx
                .send(
                    Event::default()
                        .event("end")
                        .data(json!({"status": status}).to_string()),
                )
                .await;
            return;
        }
        loop {
            match rx.recv().await {
                Ok(LogEvent::Line(line)) => {
                    if tx.send(line_event(&line)).await.is_err() {
                        return;
                    }
                }
                Ok(LogEvent::End { status }) => {
                    let _ = tx
                        .send(
                            Event::default()
                                .event("end")
                                .data(json!({"status": status}).to_string()),
                        )
                        .await;
                    return;
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let _ = tx
                        .send(
                            Event::default()
                                .event("lagged")
                                .data(json!({"dropped": n}).to_string()),
                        )
                        .await;
                }
                Err(_) => return,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn line_event(line: &crate::logs::LogLine) -> Event {
    Event::default()
        .event("log")
        .id(line.seq.to_string())
        .data(serde_json::to_string(line).unwrap_or_default())
}

/// Turns a producer task into a stream of SSE events.
fn async_stream<F, Fut>(producer: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(producer(tx));
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}

/// GetResource: a stored tool output, by tool call id.
async fn tool_output(
    State(state): State<RouterState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal(&state, &headers)?;
    let id = carapulse_core::model::ToolCallId::parse(&id)
        .map_err(|_| ApiError::not_found("tool output"))?;
    let bytes = match state.objects.get(&format!("tool-output/{id}.json")).await {
        Ok(bytes) => bytes,
        Err(carapulse_core::objects::ObjectError::NotFound(_)) => {
            return Err(ApiError::not_found("tool output"))
        }
        Err(e) => {
            tracing::error!(error = %e, "reading a stored tool output failed");
            return Err(ApiError::internal());
        }
    };
    let doc: Value = serde_json::from_slice(&bytes).map_err(|_| ApiError::internal())?;
    Ok(Json(doc))
}

fn workspace(state: &RouterState) -> Option<std::path::PathBuf> {
    state
        .config
        .storage
        .workspace_dir
        .as_deref()
        .map(std::path::PathBuf::from)
}

/// `GET /v1/resources`: the workspace's runbooks and playbooks and the catalogue workflows.
async fn list_resources(
    State(state): State<RouterState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    principal(&state, &headers)?;
    let root = workspace(&state);
    let resources = tokio::task::spawn_blocking(move || crate::resources::list(root.as_deref()))
        .await
        .map_err(|_| ApiError::internal())?;
    Ok(Json(json!({"resources": resources})))
}

/// `GET /v1/prompts`: `memory/prompts.json` of the workspace.
async fn list_prompts(
    State(state): State<RouterState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    principal(&state, &headers)?;
    let root = workspace(&state);
    let prompts = tokio::task::spawn_blocking(move || crate::resources::prompts(root.as_deref()))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|e| {
            tracing::warn!(error = %e, "prompts file unreadable");
            ApiError::unavailable(e)
        })?;
    Ok(Json(json!({"prompts": prompts})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveRequest {
    #[serde(default)]
    uri: Option<String>,
    /// The Go form (`{"artifact": {kind, ref, sha}}`): refused with the reason.
    #[serde(default)]
    artifact: Option<Value>,
}

/// `POST /v1/resources:resolve` `{"uri"}`: the content behind a `runbook://`, `playbook://` or
/// `workflow://` URI.
async fn resolve_resource(
    State(state): State<RouterState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ResolveRequest>,
) -> Result<Json<Value>, ApiError> {
    principal(&state, &headers)?;
    if req.artifact.is_some() {
        return Err(ApiError::bad_request(
            "unsupported",
            "artifacts from Git or S3 are not resolved here (the Go version read any of them without a policy check); they are read as a Helm values_ref, under the call's grant and tenant",
        ));
    }
    let uri = req
        .uri
        .filter(|u| !u.is_empty() && u.len() <= 1024)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_request",
                "uri is required (at most 1024 characters)",
            )
        })?;
    let root = workspace(&state);
    let resolved =
        tokio::task::spawn_blocking(move || crate::resources::resolve(root.as_deref(), &uri))
            .await
            .map_err(|_| ApiError::internal())?;
    match resolved {
        Ok(doc) => Ok(Json(doc)),
        Err(crate::resources::ResolveError::Invalid(m)) => {
            Err(ApiError::bad_request("invalid_request", m))
        }
        Err(crate::resources::ResolveError::NotFound) => Err(ApiError::not_found("resource")),
        Err(e @ crate::resources::ResolveError::TooLarge) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            e.to_string(),
        )),
    }
}
