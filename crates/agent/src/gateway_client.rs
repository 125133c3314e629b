//! The gateway API as the agent uses it: its service token, plus the person it acts for in the
//! delegation headers. Every id in a path is a parsed UUID.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use carapulse_core::model::ContextRef;

use crate::identity::Person;

/// A failed gateway call, with the gateway's own error message when it sent one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct GatewayError {
    pub status: Option<u16>,
    pub code: String,
    pub message: String,
}

/// The client.
#[derive(Debug, Clone)]
pub struct GatewayClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl GatewayClient {
    pub fn new(base: &str, token: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: reqwest::Client::builder().timeout(timeout).build()?,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    async fn call(
        &self,
        person: &Person,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, GatewayError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("x-carapulse-on-behalf-of", &person.actor)
            .header("x-carapulse-on-behalf-of-roles", person.roles.join(","));
        if let Some(email) = &person.email {
            req = req.header("x-carapulse-on-behalf-of-email", email);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let req = carapulse_core::telemetry::traced(req);
        let response = req.send().await.map_err(|e| GatewayError {
            status: None,
            code: "unreachable".into(),
            message: format!("the Carapulse gateway is unreachable: {e}"),
        })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        Err(GatewayError {
            status: Some(status.as_u16()),
            code: body
                .pointer("/error/code")
                .and_then(Value::as_str)
                .unwrap_or(if status == StatusCode::NOT_FOUND {
                    "not_found"
                } else {
                    "error"
                })
                .to_owned(),
            message: body
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("the gateway answered {status}")),
        })
    }

    pub async fn healthy(&self) -> bool {
        self.http
            .get(format!("{}/healthz", self.base))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    pub async fn create_plan(
        &self,
        person: &Person,
        intent: &str,
        context: &ContextRef,
    ) -> Result<Value, GatewayError> {
        let summary: String = intent.chars().take(200).collect();
        self.call(
            person,
            Method::POST,
            "/v1/plans",
            Some(json!({"summary": summary, "intent": intent, "trigger": "manual", "context": context})),
        )
        .await
    }

    pub async fn decide(
        &self,
        person: &Person,
        plan_id: Uuid,
        approve: bool,
        note: Option<&str>,
    ) -> Result<Value, GatewayError> {
        self.call(
            person,
            Method::POST,
            "/v1/approvals",
            Some(json!({"plan_id": plan_id, "status": if approve { "approved" } else { "denied" }, "note": note, "source": "slack"})),
        )
        .await
    }

    pub async fn plan(&self, person: &Person, plan_id: Uuid) -> Result<Value, GatewayError> {
        self.call(person, Method::GET, &format!("/v1/plans/{plan_id}"), None)
            .await
    }

    pub async fn execution(
        &self,
        person: &Person,
        execution_id: Uuid,
    ) -> Result<Value, GatewayError> {
        self.call(
            person,
            Method::GET,
            &format!("/v1/executions/{execution_id}"),
            None,
        )
        .await
    }

    /// Answers an inconclusive analysis of `execution_id` as `person`.
    pub async fn analysis_decision(
        &self,
        person: &Person,
        execution_id: Uuid,
        proceed: bool,
        note: Option<&str>,
    ) -> Result<Value, GatewayError> {
        self.call(
            person,
            Method::POST,
            &format!("/v1/executions/{execution_id}/decision"),
            Some(json!({"decision": if proceed { "continue" } else { "rollback" }, "note": note})),
        )
        .await
    }

    pub async fn audit(&self, person: &Person, plan_id: Uuid) -> Result<Value, GatewayError> {
        self.call(
            person,
            Method::GET,
            &format!("/v1/audit/events?resource_id={plan_id}&limit=20"),
            None,
        )
        .await
    }
}
