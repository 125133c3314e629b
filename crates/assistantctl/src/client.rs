//! The HTTP client for the gateway API, with errors sorted into exit codes.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Exit codes scripts can rely on.
pub mod exit {
    pub const OK: i32 = 0;
    /// Local failure (bad file, bad config).
    pub const LOCAL: i32 = 1;
    /// Usage error (clap uses 2 as well).
    pub const USAGE: i32 = 2;
    /// The API refused the request (4xx).
    pub const API_REJECTED: i32 = 3;
    /// The API failed (5xx).
    pub const API_FAILED: i32 = 4;
    /// The gateway could not be reached (connect, timeout, TLS).
    pub const NETWORK: i32 = 5;
    /// A verification found a problem (e.g. a broken audit chain).
    pub const VERIFY_FAILED: i32 = 6;
}

/// A failed command, carrying its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Local(String),
    #[error("{0}")]
    Usage(String),
    #[error("API error {status}: {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("cannot reach the gateway at {url}: {message}")]
    Network { url: String, message: String },
    #[error("{0}")]
    VerifyFailed(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Local(_) => exit::LOCAL,
            Self::Usage(_) => exit::USAGE,
            Self::Api { status, .. } if *status >= 500 => exit::API_FAILED,
            Self::Api { .. } => exit::API_REJECTED,
            Self::Network { .. } => exit::NETWORK,
            Self::VerifyFailed(_) => exit::VERIFY_FAILED,
        }
    }
}

/// A gateway client bound to a base URL and token.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, token: Option<String>, timeout: Duration) -> Result<Self, CliError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("assistantctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Local(format!("http client: {e}")))?;
        let base = base.trim_end_matches('/').to_owned();
        url::Url::parse(&base).map_err(|e| CliError::Usage(format!("--url {base:?}: {e}")))?;
        Ok(Self { base, token, http })
    }

    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn post(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Result<Value, CliError> {
        self.send(Method::POST, path, Some(body), headers).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.send(Method::PUT, path, Some(body), &[]).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.send(Method::DELETE, path, None, &[]).await
    }

    /// GET of an event stream: no overall timeout (it lasts as long as the stream), frames handed
    /// to `on_frame(event, data)` until it returns false or the stream ends.
    pub async fn stream_sse(
        &self,
        path: &str,
        mut on_frame: impl FnMut(&str, &str) -> bool,
    ) -> Result<(), CliError> {
        use futures::StreamExt;
        let mut req = self
            .http
            .get(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(7 * 24 * 3600))
            .header("accept", "text/event-stream");
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.map_err(|e| self.network(e))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.map_err(|e| self.network(e))?;
            return Err(api_error(status, &text));
        }
        let mut body = resp.bytes_stream();
        let mut parser = carapulse_core::sse::SseParser::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.network(e))?;
            for frame in parser.push(&chunk) {
                if !frame.data.is_empty() && !on_frame(&frame.event, &frame.data) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// GET of a long body (exports, streamed verification): no overall timeout, each chunk handed
    /// to `on_chunk` as it arrives, so nothing is held in memory.
    pub async fn get_streamed(
        &self,
        path: &str,
        accept: &str,
        mut on_chunk: impl FnMut(&[u8]) -> Result<(), CliError>,
    ) -> Result<(), CliError> {
        use futures::StreamExt;
        let mut req = self
            .http
            .get(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(7 * 24 * 3600))
            .header("accept", accept);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.map_err(|e| self.network(e))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.map_err(|e| self.network(e))?;
            return Err(api_error(status, &text));
        }
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            on_chunk(&chunk.map_err(|e| self.network(e))?)?;
        }
        Ok(())
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Value, CliError> {
        let resp = self.request(method, path, body, headers).await?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.network(e))?;
        if !status.is_success() {
            return Err(api_error(status, &text));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| CliError::Api {
            status: status.as_u16(),
            code: "invalid_response".into(),
            message: format!("response is not JSON: {e}"),
        })
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<reqwest::Response, CliError> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        req.send().await.map_err(|e| self.network(e))
    }

    fn network(&self, err: reqwest::Error) -> CliError {
        CliError::Network {
            url: self.base.clone(),
            message: err.to_string(),
        }
    }
}

fn api_error(status: StatusCode, text: &str) -> CliError {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let code = parsed
        .as_ref()
        .and_then(|v| v["error"]["code"].as_str())
        .unwrap_or("http_error")
        .to_owned();
    let message = parsed
        .as_ref()
        .and_then(|v| v["error"]["message"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| text.chars().take(500).collect());
    CliError::Api {
        status: status.as_u16(),
        code,
        message,
    }
}
