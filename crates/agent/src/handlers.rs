//! HTTP handlers: slash commands, interactive buttons, health. Each Slack request is verified
//! before its body is parsed, acknowledged at once, and answered later through `response_url`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use slack_morphism::prelude::{SlackCommandEvent, SlackInteractionEvent};
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use carapulse_core::config::Config;
use carapulse_core::model::ContextRef;

use crate::blocks;
use crate::command::{self, Command, USAGE};
use crate::gateway_client::{GatewayClient, GatewayError};
use crate::identity::{Identities, Person};
use crate::metrics::Metrics;
use crate::signature::SignatureCheck;

/// Shared state of the agent.
#[derive(Clone)]
pub struct AgentState {
    pub config: Arc<Config>,
    pub signatures: SignatureCheck,
    pub identities: Arc<Identities>,
    pub gateway: GatewayClient,
    pub http: reqwest::Client,
    pub context: ContextRef,
    pub metrics: Arc<Metrics>,
    pub tasks: TaskTracker,
}

fn form(body: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

/// A request refused before it was read (status and reason).
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        refuse(self.0, &self.1)
    }
}

/// Verifies the Slack signature; `Err` is the response to send.
fn verified<'a>(
    state: &AgentState,
    headers: &HeaderMap,
    body: &'a Bytes,
) -> Result<&'a str, Refusal> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let text = std::str::from_utf8(body)
        .map_err(|_| Refusal(StatusCode::BAD_REQUEST, "body is not UTF-8".into()))?;
    state
        .signatures
        .verify(
            header("x-slack-request-timestamp"),
            header("x-slack-signature"),
            text,
            chrono::Utc::now().timestamp(),
        )
        .map_err(|e| {
            state.metrics.refused_signatures.inc();
            tracing::warn!(error = %e, "slack request refused");
            Refusal(StatusCode::UNAUTHORIZED, e.to_string())
        })?;
    Ok(text)
}

fn channel_allowed(state: &AgentState, channel: &str) -> bool {
    let allowed = &state.config.chatops.allowed_channels;
    allowed.is_empty() || allowed.iter().any(|c| c == channel)
}

/// `POST <commands_path>`: a slash command.
pub async fn slash_command(
    State(state): State<AgentState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = match verified(&state, &headers, &body) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    let fields = form(text);
    let event: SlackCommandEvent = match serde_json::from_value(json!(fields)) {
        Ok(e) => e,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("not a slash command: {e}"),
            )
        }
    };
    if !channel_allowed(&state, &event.channel_id.0) {
        state.metrics.record("any", "channel_refused");
        return Json(blocks::text(
            "Carapulse does not take commands in this channel.",
        ))
        .into_response();
    }
    let command = match command::parse(event.text.as_deref().unwrap_or("")) {
        Ok(Command::Help) => return Json(blocks::text(USAGE)).into_response(),
        Ok(c) => c,
        Err(message) => {
            state.metrics.record("invalid", "refused");
            return Json(blocks::text(&message)).into_response();
        }
    };
    let user = event.user_id.0.clone();
    let response_url = event.response_url.0.to_string();
    let worker = state.clone();
    state.tasks.spawn(async move {
        let reply = run_command(&worker, &user, command).await;
        post_reply(&worker, &response_url, &reply).await;
    });
    Json(json!({"response_type": "ephemeral", "text": "Working on it…"})).into_response()
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Plan { .. } => "plan",
        Command::Decide { approve: true, .. } => "approve",
        Command::Decide { approve: false, .. } => "deny",
        Command::Status { .. } => "status",
        Command::Analysis { proceed: true, .. } => "continue",
        Command::Analysis { proceed: false, .. } => "rollback",
        Command::Audit { .. } => "audit",
        Command::Help => "help",
    }
}

fn gateway_failure(state: &AgentState, name: &str, e: &GatewayError) -> Value {
    state.metrics.record(name, "gateway_error");
    let hint = match e.code.as_str() {
        "self_approval" => " (separation of duties: someone else must decide a plan you created)",
        "forbidden" => " (your Carapulse roles do not allow this)",
        _ => "",
    };
    blocks::text(&format!(":warning: {}{hint}", e.message))
}

async fn run_command(state: &AgentState, slack_user: &str, command: Command) -> Value {
    let name = command_name(&command);
    let person = match state.identities.resolve(slack_user).await {
        Ok(p) => p,
        Err(message) => {
            state.metrics.record(name, "unknown_user");
            return blocks::text(&format!(":no_entry: {message}"));
        }
    };
    let result = match command {
        Command::Plan { intent } => state
            .gateway
            .create_plan(&person, &intent, &state.context)
            .await
            .map(|created| blocks::plan_card(&created["plan"], "Plan created")),
        Command::Decide {
            plan_id,
            approve,
            note,
        } => decide(state, &person, plan_id, approve, note.as_deref(), false).await,
        Command::Status { execution_id } => state
            .gateway
            .execution(&person, execution_id)
            .await
            .map(|e| blocks::execution_card(&e)),
        Command::Analysis {
            execution_id,
            proceed,
            note,
        } => state
            .gateway
            .analysis_decision(&person, execution_id, proceed, note.as_deref())
            .await
            .map(|_| {
                blocks::text(&format!(
                    "Execution `{execution_id}`: {} sent by {}.",
                    if proceed { "continue" } else { "rollback" },
                    person.actor
                ))
            }),
        Command::Audit { plan_id } => state
            .gateway
            .audit(&person, plan_id)
            .await
            .map(|events| blocks::audit_card(&plan_id.to_string(), &events)),
        Command::Help => Ok(blocks::text(USAGE)),
    };
    match result {
        Ok(reply) => {
            state.metrics.record(name, "ok");
            reply
        }
        Err(e) => gateway_failure(state, name, &e),
    }
}

async fn decide(
    state: &AgentState,
    person: &Person,
    plan_id: Uuid,
    approve: bool,
    note: Option<&str>,
    replace: bool,
) -> Result<Value, GatewayError> {
    let decided = state.gateway.decide(person, plan_id, approve, note).await?;
    let mut status = decided["status"]
        .as_str()
        .unwrap_or(if approve { "approved" } else { "denied" })
        .to_owned();
    // Several approvers required: say how far the plan is.
    if decided["plan_approval_state"] == "pending" {
        status = format!(
            "{status} ({} of {} approvals; another approver is needed)",
            decided["approved_by"].as_array().map_or(0, Vec::len),
            decided["approvals_required"].as_u64().unwrap_or(1)
        );
    }
    Ok(blocks::decision_card(
        &plan_id.to_string(),
        &status,
        &person.actor,
        replace,
    ))
}

/// `POST <commands_path>/interactions`: a button click.
pub async fn interaction(
    State(state): State<AgentState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = match verified(&state, &headers, &body) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    let Some(payload) = form(text).remove("payload") else {
        return refuse(StatusCode::BAD_REQUEST, "missing payload");
    };
    let event: SlackInteractionEvent = match serde_json::from_str(&payload) {
        Ok(e) => e,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("unreadable interaction: {e}"),
            )
        }
    };
    let SlackInteractionEvent::BlockActions(actions) = event else {
        return StatusCode::OK.into_response();
    };
    let (Some(user), Some(response_url)) = (actions.user.clone(), actions.response_url.clone())
    else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "interaction without user or response_url",
        );
    };
    if let Some(channel) = &actions.channel {
        if !channel_allowed(&state, &channel.id.0) {
            return StatusCode::OK.into_response();
        }
    }
    let Some(action) = actions.actions.as_ref().and_then(|a| a.first()).cloned() else {
        return StatusCode::OK.into_response();
    };
    let approve = match action.action_id.0.as_str() {
        blocks::APPROVE_ACTION => true,
        blocks::DENY_ACTION => false,
        _ => return StatusCode::OK.into_response(),
    };
    let Some(plan_id) = action
        .value
        .as_deref()
        .and_then(|v| Uuid::parse_str(v).ok())
    else {
        return refuse(StatusCode::BAD_REQUEST, "button without a plan id");
    };
    let worker = state.clone();
    let url = response_url.0.to_string();
    state.tasks.spawn(async move {
        let name = if approve {
            "button_approve"
        } else {
            "button_deny"
        };
        let reply = match worker.identities.resolve(&user.id.0).await {
            Err(message) => {
                worker.metrics.record(name, "unknown_user");
                blocks::text(&format!(":no_entry: {message}"))
            }
            Ok(person) => match decide(&worker, &person, plan_id, approve, None, true).await {
                Ok(reply) => {
                    worker.metrics.record(name, "ok");
                    reply
                }
                Err(e) => gateway_failure(&worker, name, &e),
            },
        };
        post_reply(&worker, &url, &reply).await;
    });
    StatusCode::OK.into_response()
}

/// Posts a reply to Slack's `response_url`, retrying once on a transient failure.
async fn post_reply(state: &AgentState, url: &str, reply: &Value) {
    for attempt in 1..=2 {
        match state.http.post(url).json(reply).send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) if r.status().is_client_error() => {
                tracing::warn!(status = %r.status(), "slack refused the reply");
                return;
            }
            Ok(r) => tracing::warn!(status = %r.status(), attempt, "slack reply failed"),
            Err(e) => tracing::warn!(error = %e, attempt, "slack reply failed"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the gateway answers.
pub async fn readyz(State(state): State<AgentState>) -> Response {
    if state.gateway.healthy().await {
        Json(json!({"status": "ok"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": "gateway unreachable"})),
        )
            .into_response()
    }
}

pub async fn metrics(State(state): State<AgentState>) -> String {
    state.metrics.encode()
}
