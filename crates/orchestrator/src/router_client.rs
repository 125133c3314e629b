//! The orchestrator's client of the tool router.

use std::time::Duration;

use serde_json::{json, Value};

/// How a router call ended, sorted by what the activity should do.
#[derive(Debug)]
pub enum RouterReply {
    /// The tool ran (successfully or not).
    Ran(Value),
    /// The router refused the call for good (validation, policy): do not retry.
    Refused { status: u16, message: String },
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

    /// POST /v1/tools/execute.
    pub async fn execute(
        &self,
        body: &Value,
        break_glass: bool,
    ) -> Result<RouterReply, RouterUnavailable> {
        let mut req = self
            .http
            .post(format!("{}/v1/tools/execute", self.base))
            .json(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if break_glass {
            req = req.header("X-Break-Glass", "true");
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
}
