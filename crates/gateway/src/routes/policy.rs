//! `GET /v1/policy` (the loaded Rego files), `POST /v1/policy/evaluate` (the playground: run the
//! loaded policy on an input and see the decision; read-only) and `POST /v1/policy/reload`
//! (admins: load the policy directory again; a broken directory leaves the old policy in force).

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::middleware::RequestContext;
use crate::state::AppState;

use super::require_read;

/// Largest playground input, in bytes of JSON.
const MAX_INPUT_BYTES: usize = 64 * 1024;

#[utoipa::path(get, path = "/policy", tag = "policy",
    summary = "The loaded policy: package and every file with its text",
    responses((status = 200, description = "`{package, files: [{name, bytes, text}]}`", body = Object),
        crate::openapi::CommonErrors),
    security(("bearer" = [])))]
pub(crate) async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "policy.read").await?;
    let policy = state.policy.current();
    let files: Vec<Value> = policy
        .sources()
        .iter()
        .map(|(name, text)| json!({"name": name, "bytes": text.len(), "text": text}))
        .collect();
    Ok(Json(json!({
        "package": policy.package(),
        "generation": state.policy.generation(),
        "files": files,
    })))
}

/// Body of the playground.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EvaluateRequest {
    /// The policy input, as the gateway would build it (`actor`, `action`, `context`, `risk`, ...).
    #[schema(value_type = Object)]
    input: Value,
}

#[utoipa::path(post, path = "/policy/evaluate", tag = "policy",
    summary = "Evaluate the loaded policy on an input (nothing is changed or recorded)",
    request_body = EvaluateRequest,
    responses((status = 200, description = "`{decision, reasons, constraints, ttl, error?}`", body = Object),
        crate::openapi::CommonErrors),
    security(("bearer" = [])))]
pub(crate) async fn evaluate(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiJson(body): ApiJson<EvaluateRequest>,
) -> ApiResult<Json<Value>> {
    require_read(&state, &ctx, "policy.evaluate").await?;
    if !body.input.is_object() {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "input must be a JSON object",
        ));
    }
    if body.input.to_string().len() > MAX_INPUT_BYTES {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!("input must be at most {MAX_INPUT_BYTES} bytes of JSON"),
        ));
    }
    // The playground runs the interpreter; the differential test keeps it equal to the compiled path.
    let outcome = state
        .policy
        .current()
        .evaluate_interpreted_json(&body.input);
    Ok(Json(json!(outcome)))
}

#[utoipa::path(post, path = "/policy/reload", tag = "policy",
    summary = "Load the policy directory again (admins); on any error the current policy stays",
    responses((status = 200, description = "`{generation, files}` of the policy now in force", body = Object),
        crate::openapi::CommonErrors),
    security(("bearer" = [])))]
pub(crate) async fn reload(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> ApiResult<Json<Value>> {
    use carapulse_core::audit::AuditDecision;
    if !ctx.is_admin() {
        state
            .audit(
                ctx.audit("policy.reload", AuditDecision::Deny)
                    .reason("actor is not an admin"),
            )
            .await;
        return Err(ApiError::forbidden(
            "forbidden",
            "reloading policy needs the admin role",
        ));
    }
    match state.policy.reload() {
        Ok(done) => {
            tracing::info!(generation = done.generation, files = ?done.files, "policy reloaded");
            state
                .audit(
                    ctx.audit("policy.reload", AuditDecision::Allow)
                        .context(json!({"generation": done.generation, "files": done.files})),
                )
                .await;
            Ok(Json(json!(done)))
        }
        Err(err) => {
            tracing::error!(error = %err, "policy reload refused; the previous policy stays in force");
            state
                .audit(
                    ctx.audit("policy.reload", AuditDecision::Error)
                        .reason(format!(
                            "kept generation {}: {err}",
                            state.policy.generation()
                        )),
                )
                .await;
            Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "policy_invalid",
                format!(
                    "the policy directory does not load ({err}); generation {} stays in force",
                    state.policy.generation()
                ),
            ))
        }
    }
}
