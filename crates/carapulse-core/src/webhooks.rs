//! Webhook payloads (Alertmanager v4, Git, Argo CD, Kubernetes events) turned into events to
//! store. Pure parsing, no I/O, so it can be fuzzed; the gateway authenticates the request before
//! calling it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::planner::rules::AlertFacts;

/// Alerts accepted in one Alertmanager request.
pub const MAX_ALERTS: usize = 1000;

/// Alertmanager webhook payload (v4); unknown fields are tolerated (Alertmanager adds some).
#[derive(Debug, Deserialize)]
struct AlertmanagerPayload {
    #[serde(default)]
    version: Option<String>,
    alerts: Vec<AmAlert>,
}

#[derive(Debug, Deserialize)]
struct AmAlert {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default, rename = "startsAt")]
    starts_at: Option<DateTime<Utc>>,
    #[serde(default)]
    fingerprint: Option<String>,
}

/// One event of a webhook request, ready to store.
#[derive(Debug, Clone)]
pub struct WebhookEvent {
    /// Identity for deduplication (with `status`): at most 200 characters.
    pub fingerprint: String,
    /// `firing`/`resolved` for alerts; the event kind otherwise; at most 64 characters.
    pub status: String,
    pub started_at: Option<DateTime<Utc>>,
    pub payload: Value,
    /// Set for Alertmanager alerts: what the planner needs.
    pub alert: Option<AlertFacts>,
}

/// Why a payload was refused (the message names the problem; it is shown to the sender).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(pub String);

fn bad(message: impl Into<String>) -> PayloadError {
    PayloadError(message.into())
}

/// Parses the body of a `source` webhook (`alertmanager`, `git`, `argocd`, anything else as a
/// Kubernetes event). `header` reads a request header; `body_hash` identifies bodies that carry
/// no identity of their own. Never panics, whatever the input (fuzzed: `fuzz/`).
pub fn parse_webhook(
    source: &str,
    header: impl Fn(&str) -> Option<String>,
    body: &[u8],
    body_hash: &str,
) -> Result<Vec<WebhookEvent>, PayloadError> {
    if source == "alertmanager" {
        let payload: AlertmanagerPayload = serde_json::from_slice(body)
            .map_err(|e| bad(format!("not an Alertmanager webhook payload: {e}")))?;
        if payload.version.as_deref().is_some_and(|v| v != "4") {
            return Err(bad(
                "only Alertmanager webhook payload version 4 is supported",
            ));
        }
        if payload.alerts.len() > MAX_ALERTS {
            return Err(bad(format!("at most {MAX_ALERTS} alerts per request")));
        }
        return payload
            .alerts
            .into_iter()
            .map(|a| {
                let status = match a.status.as_str() {
                    "firing" | "resolved" => a.status.clone(),
                    other => return Err(bad(format!("alert status {other:?} is neither firing nor resolved"))),
                };
                // Alertmanager always sends one; compute the same kind of identity otherwise.
                let fingerprint = a.fingerprint.clone().filter(|f| !f.is_empty()).unwrap_or_else(|| {
                    hex::encode(&Sha256::digest(serde_json::to_string(&a.labels).unwrap_or_default().as_bytes())[..8])
                });
                // Alertmanager's are 16 hex digits; a longer one is not an identity we store
                // (fuzzing sent a 500-character one; truncating could make two alerts collide).
                if fingerprint.chars().count() > 200 {
                    return Err(bad("alert fingerprint longer than 200 characters"));
                }
                let payload = json!({"labels": a.labels, "annotations": a.annotations, "startsAt": a.starts_at, "status": status});
                Ok(WebhookEvent {
                    alert: Some(AlertFacts {
                        fingerprint: fingerprint.clone(),
                        labels: a.labels,
                        annotations: a.annotations,
                    }),
                    fingerprint,
                    status,
                    started_at: a.starts_at,
                    payload,
                })
            })
            .collect();
    }
    let doc: Value = serde_json::from_slice(body).map_err(|e| bad(format!("not JSON: {e}")))?;
    if !doc.is_object() {
        return Err(bad("the payload must be a JSON object"));
    }
    // Blank values identify nothing: treat them as absent (fuzzing found `"checkout_sha": ""`
    // becoming an empty fingerprint that every such event would share).
    let s = |p: &str| {
        doc.pointer(p)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let header = |name: &str| header(name).filter(|v| !v.trim().is_empty());
    let (fingerprint, status) = match source {
        "git" => (
            header("x-github-delivery")
                .or_else(|| s("/after"))
                .or_else(|| s("/checkout_sha"))
                .unwrap_or_else(|| body_hash.to_owned()),
            header("x-github-event")
                .or_else(|| header("x-gitlab-event"))
                .or_else(|| s("/object_kind"))
                .unwrap_or_else(|| "received".into()),
        ),
        "argocd" => (
            match (
                s("/app")
                    .or_else(|| s("/application"))
                    .or_else(|| s("/metadata/name")),
                s("/revision"),
            ) {
                (Some(app), Some(rev)) => format!("{app}@{rev}"),
                _ => body_hash.to_owned(),
            },
            s("/status")
                .or_else(|| s("/phase"))
                .or_else(|| s("/status/sync/status"))
                .unwrap_or_else(|| "received".into()),
        ),
        _ => (
            match (
                s("/metadata/uid").or_else(|| s("/object/metadata/uid")),
                s("/metadata/resourceVersion"),
            ) {
                (Some(uid), Some(rv)) => format!("{uid}@{rv}"),
                (Some(uid), None) => uid,
                _ => body_hash.to_owned(),
            },
            s("/type")
                .or_else(|| s("/reason"))
                .unwrap_or_else(|| "received".into()),
        ),
    };
    Ok(vec![WebhookEvent {
        fingerprint: fingerprint.chars().take(200).collect(),
        status: status.chars().take(64).collect(),
        started_at: None,
        payload: doc,
        alert: None,
    }])
}
