//! `POST /v1/hooks/{alertmanager|argocd|git|k8s}`: events from outside, authenticated per
//! source (bearer token or HMAC-SHA256 of the raw body, from `webhooks.<source>`) before the
//! body is parsed, stored deduplicated by fingerprint and status, and answered at once; firing
//! alerts go on to the event loop, which plans them in the background.

use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::{Digest, Sha256};

use carapulse_core::audit::{AuditActor, AuditDecision, AuditEntry};
use carapulse_core::config::WebhookSource;
use carapulse_core::model::TenantId;
use carapulse_core::store::{NewAlertEvent, Stored};
use carapulse_core::webhooks::parse_webhook;

use crate::background::event_loop::AlertWork;
use crate::error::{ApiError, ApiResult};
use crate::middleware::SYSTEM_TENANT;
use crate::state::AppState;

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Equality that takes the same time whatever the inputs (compares digests).
fn same_secret(a: &str, b: &str) -> bool {
    let (x, y) = (digest(a.as_bytes()), digest(b.as_bytes()));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// Checks the request proves it comes from the configured source.
fn authenticate(cfg: &WebhookSource, headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(expected) = cfg.bearer_token.as_deref().filter(|t| !t.is_empty()) {
        let given = header("authorization")
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        if given.is_some_and(|t| same_secret(t, expected)) {
            return Ok(());
        }
    }
    if let Some(secret) = cfg.hmac_secret.as_deref().filter(|s| !s.is_empty()) {
        if let Some(token) = header("x-gitlab-token") {
            if same_secret(token, secret) {
                return Ok(());
            }
        }
        let signature = header("x-hub-signature-256").or_else(|| header("x-carapulse-signature"));
        if let Some(hex_sig) = signature.and_then(|s| s.strip_prefix("sha256=")) {
            if let (Ok(sig), Ok(mut mac)) = (
                hex::decode(hex_sig),
                Hmac::<Sha256>::new_from_slice(secret.as_bytes()),
            ) {
                mac.update(body);
                if mac.verify_slice(&sig).is_ok() {
                    return Ok(());
                }
            }
        }
    }
    Err("the request carries no valid bearer token or signature for this source")
}

#[utoipa::path(post, path = "/v1/hooks/{source}", tag = "system", summary = "Inbound webhook (alertmanager, argocd, git, k8s), authenticated per source by bearer token or HMAC signature", params(("source" = String, Path, description = "A configured source under webhooks.<source>")), request_body = Object, responses((status = 202, description = "Accepted: counts of new, changed and duplicate events", body = Object), crate::openapi::CommonErrors, crate::openapi::NotFound), security((), ("bearer" = [])))]
pub(crate) async fn receive(
    State(state): State<AppState>,
    Path(source): Path<String>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let Some(cfg) = state.config.webhooks.get(&source).cloned() else {
        return Err(ApiError::not_found("webhook source"));
    };
    if let Err(reason) = authenticate(&cfg, &headers, &body) {
        state.metrics.record_hook(&source, "unauthorized");
        // Unsigned posts need no credential: one row per peer per window, with the count of
        // the ones not written, so they cannot flood the audit log.
        let peer = peer
            .map(|Extension(c)| c.0.ip().to_string())
            .unwrap_or_else(|| "unknown".into());
        if let Some(suppressed) = state.refusals.admit(&format!("hook:{peer}")) {
            if let Ok(tenant) = TenantId::parse(SYSTEM_TENANT) {
                let entry = AuditEntry::new(
                    tenant,
                    AuditActor::anonymous(),
                    "hook.verify",
                    AuditDecision::Deny,
                )
                .reason(reason)
                .context(json!({"source": source, "bytes": body.len(), "peer": peer, "suppressed": suppressed}));
                state.audit(entry).await;
            }
        }
        return Err(ApiError::unauthorized(reason));
    }
    // Text people will read (labels, annotations, fingerprints) must not carry control,
    // bidirectional or invisible characters; refused before anything is stored.
    if let Ok(tree) = serde_json::from_slice::<serde_json::Value>(&body) {
        carapulse_http::text::check_value("body", &tree).map_err(|m| {
            state.metrics.record_hook(&source, "invalid");
            ApiError::bad_request("invalid_text", m)
        })?;
    }
    let tenant = TenantId::parse(&cfg.tenant_id).map_err(|_| ApiError::internal())?;
    let event_id = hex::encode(digest(&body));
    // Replay protection: a delivery is processed once, keyed by the sender's delivery id, else
    // by its HMAC signature (a captured signed request replayed verbatim). Bearer-only sources
    // (Alertmanager) carry neither; their alerts are idempotent by fingerprint and status.
    let header_value = |names: &[&str]| {
        names
            .iter()
            .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 200)
            .map(str::to_owned)
    };
    let delivery_key = header_value(&[
        "x-github-delivery",
        "x-gitlab-event-uuid",
        "x-carapulse-delivery",
    ])
    .map(|id| format!("id:{id}"))
    .or_else(|| {
        header_value(&["x-hub-signature-256", "x-carapulse-signature"])
            .map(|sig| format!("sig:{sig}"))
    });
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let incoming = parse_webhook(&source, header, &body, &event_id).map_err(|e| {
        state.metrics.record_hook(&source, "invalid");
        ApiError::bad_request("invalid_payload", e.0)
    })?;
    let events: Vec<NewAlertEvent<'_>> = incoming
        .iter()
        .map(|item| NewAlertEvent {
            tenant: &tenant,
            source: &source,
            fingerprint: &item.fingerprint,
            status: &item.status,
            started_at: item.started_at,
            payload: &item.payload,
        })
        .collect();
    // The events, the delivery key and the receipt commit together.
    let receipt = AuditEntry::new(
        tenant.clone(),
        AuditActor::person(format!("webhook:{source}"), None),
        "hook.received",
        AuditDecision::Allow,
    )
    .resource("webhook", &event_id)
    .context(json!({"source": source, "bytes": body.len()}));
    let stored = state
        .store
        .record_alert_delivery(
            delivery_key.as_deref().map(|key| (source.as_str(), key)),
            &events,
            receipt,
        )
        .await?;
    let Some(stored) = stored else {
        state.metrics.record_hook(&source, "replayed");
        return Ok((
            StatusCode::OK,
            Json(json!({"received": 0, "event_id": event_id, "duplicate_delivery": true})),
        )
            .into_response());
    };
    state.metrics.record_audit(true);
    let (mut new, mut changed, mut duplicates, mut queued, mut dropped) = (0, 0, 0, 0, 0);
    for (item, (alert_id, outcome)) in incoming.into_iter().zip(stored) {
        match outcome {
            Stored::New => new += 1,
            Stored::Changed => changed += 1,
            Stored::Duplicate => duplicates += 1,
        }
        if outcome != Stored::Duplicate && item.status == "firing" {
            if let Some(alert) = item.alert {
                let work = AlertWork {
                    tenant: tenant.clone(),
                    source: source.clone(),
                    alert_id,
                    alert,
                };
                match state.alert_queue.try_send(work) {
                    Ok(()) => queued += 1,
                    Err(_) => dropped += 1,
                }
            }
        }
    }
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "event loop queue full: firing alerts stored but not planned"
        );
    }
    state.metrics.record_hook(&source, "accepted");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "received": new + changed + duplicates,
            "event_id": event_id,
            "new": new,
            "changed": changed,
            "duplicates": duplicates,
            "queued_for_planning": queued,
        })),
    )
        .into_response())
}
