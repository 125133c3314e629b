//! The collectors' client of the tool router: one read action, its output text, a timeout.

use std::time::Duration;

use serde_json::{json, Value};

use carapulse_core::model::ContextRef;

use crate::CollectError;

#[derive(Debug, Clone)]
pub struct ToolRunner {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    context: ContextRef,
}

impl ToolRunner {
    pub fn new(
        base: &str,
        token: Option<String>,
        context: ContextRef,
        timeout: Duration,
    ) -> Result<Self, CollectError> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .map_err(|e| CollectError::Router(e.to_string()))?,
            base: base.trim_end_matches('/').to_owned(),
            token,
            context,
        })
    }

    /// Runs `tool action input` and returns its output (parsed as JSON).
    pub async fn run_json(
        &self,
        tool: &str,
        action: &str,
        input: Value,
    ) -> Result<Value, CollectError> {
        let mut req = self
            .http
            .post(format!("{}/v1/tools/execute", self.base))
            .json(&json!({"tool_name": tool, "action": action, "input": input, "context": self.context}));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = carapulse_core::telemetry::traced(req)
            .send()
            .await
            .map_err(|e| CollectError::Router(e.to_string()))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .map_err(|e| CollectError::Router(e.to_string()))?;
        if !status.is_success() {
            return Err(CollectError::Router(format!(
                "{tool} {action}: HTTP {status}: {}",
                body.pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            )));
        }
        if body["status"] != "succeeded" {
            return Err(CollectError::Router(format!(
                "{tool} {action} {}: {}",
                body["status"].as_str().unwrap_or("failed"),
                body["stderr"]
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .take(300)
                    .collect::<String>()
            )));
        }
        let output = body["output"].as_str().unwrap_or("");
        serde_json::from_str(output)
            .map_err(|e| CollectError::Parse(format!("{tool} {action}: {e}")))
    }
}
