//! The orchestrator's client of the tool router.

use std::time::Duration;

use serde_json::{json, Value};

/// How a router call ended, sorted by what the activity should do.
#[derive(Debug)]
pub enum RouterReply {
    /// The tool ran (successfully or not).
    Ran(Value),
    /// The router refused the call for good (validation, policy): do not retry.
    Refused {
        status: u16,
        message: String,
        /// The policy decision behind a policy refusal, when the router sent it.
        policy_decision: Option<Value>,
    },
}

impl RouterReply {
    /// The router's policy decision for a write (ran or refused), for the decision log.
    pub fn policy_decision(&self) -> Option<carapulse_core::store::DecisionRecord> {
        let value = match self {
            Self::Ran(value) => value.get("policy_decision"),
            Self::Refused {
                policy_decision, ..
            } => policy_decision.as_ref(),
        }?;
        serde_json::from_value(value.clone()).ok()
    }
}

/// Transient failure: retry with backoff.
#[derive(Debug, thiserror::Error)]
#[error("tool router unavailable: {0}")]
pub struct RouterUnavailable(pub String);

#[derive(Debug, Clone)]
pub struct RouterClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl RouterClient {
    pub fn new(
        base: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, RouterUnavailable> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| RouterUnavailable(e.to_string()))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    /// POST /v1/tools/execute, with the call's execution grant when it has one. Break-glass is
    /// never asserted here: the router reads it from the grant, which reflects how the
    /// execution was started.
    pub async fn execute(
        &self,
        body: &Value,
        grant: Option<&str>,
    ) -> Result<RouterReply, RouterUnavailable> {
        // The activity's trace continues in the router (W3C traceparent).
        let mut req = carapulse_core::telemetry::traced(
            self.http
                .post(format!("{}/v1/tools/execute", self.base))
                .json(body),
        );
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(grant) = grant {
            req = req.header(carapulse_core::grant::GRANT_HEADER, grant);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| RouterUnavailable(e.to_string()))?;
        let status = resp.status().as_u16();
        let value: Value = resp
            .json()
            .await
            .unwrap_or_else(|e| json!({"error": {"message": e.to_string()}}));
        match status {
            200 => Ok(RouterReply::Ran(value)),
            400 | 403 | 404 | 422 => Ok(RouterReply::Refused {
                status,
                policy_decision: value
                    .get("policy_decision")
                    .filter(|d| !d.is_null())
                    .cloned(),
                message: value["error"]["message"]
                    .as_str()
                    .unwrap_or("refused")
                    .to_owned(),
            }),
            _ => Err(RouterUnavailable(format!(
                "HTTP {status}: {}",
                value["error"]["message"].as_str().unwrap_or("")
            ))),
        }
    }

    /// Copies a tool call's log lines from the router's live stream (`GET /v1/tools/logs`) into
    /// `sink` until the call ends. The call may not be registered yet when this starts, so a
    /// 404 is retried for a few seconds.
    pub async fn follow_logs(
        &self,
        tool_call_id: &str,
        sink: tokio::sync::mpsc::Sender<Value>,
    ) -> Result<(), RouterUnavailable> {
        use futures::StreamExt;
        let url = format!("{}/v1/tools/logs", self.base);
        let mut attempts = 0;
        let resp = loop {
            // A streaming request: no overall timeout (the call's own deadline bounds it).
            let mut req = reqwest::Client::new()
                .get(&url)
                .query(&[("tool_call_id", tool_call_id)]);
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| RouterUnavailable(e.to_string()))?;
            if resp.status().as_u16() == 404 && attempts < 50 {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            if !resp.status().is_success() {
                return Err(RouterUnavailable(format!(
                    "log stream: HTTP {}",
                    resp.status()
                )));
            }
            break resp;
        };
        let mut body = resp.bytes_stream();
        let mut parser = carapulse_core::sse::SseParser::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| RouterUnavailable(e.to_string()))?;
            for frame in parser.push(&chunk) {
                match frame.event.as_str() {
                    "end" => return Ok(()),
                    "log" => {
                        if let Ok(line) = serde_json::from_str::<Value>(&frame.data) {
                            if sink.send(line).await.is_err() {
                                return Ok(());
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}
