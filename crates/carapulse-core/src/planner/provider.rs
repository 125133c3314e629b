//! Model providers: one HTTP client for OpenAI chat completions, Anthropic messages, the
//! ChatGPT Codex responses backend (OAuth access token), and any OpenAI-compatible server
//! (Ollama, vLLM) reached through `llm.api_base`.
//!
//! Calls are bounded by `llm.timeout_ms` and retried with exponential backoff and jitter on
//! 429, 5xx, timeouts and connection errors (honouring `Retry-After`, capped); 4xx other than
//! 429 are final. Error bodies are redacted and cut to 512 characters before they travel, so
//! a provider echoing the prompt cannot leak it into audit or logs.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::redact::Redactor;

use super::prompt::Prompt;

/// Longest wait honoured from a `Retry-After` header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Which wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
    OpenAiCodex,
    /// Chat completions at a configured `api_base` (Ollama, vLLM, LM Studio, ...).
    OpenAiCompatible,
}

impl ProviderKind {
    pub fn parse(name: &str) -> Result<Self, ProviderError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "openai" => Ok(Self::OpenAi),
            "anthropic" => Ok(Self::Anthropic),
            "openai-codex" | "codex" => Ok(Self::OpenAiCodex),
            "openai-compatible" | "ollama" | "vllm" => Ok(Self::OpenAiCompatible),
            other => Err(ProviderError::Config(format!(
                "unknown llm.provider {other:?} (openai, anthropic, openai-codex, openai-compatible, ollama, vllm)"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::OpenAiCodex => "openai-codex",
            Self::OpenAiCompatible => "openai-compatible",
        }
    }

    pub fn default_base(self) -> Option<&'static str> {
        match self {
            Self::OpenAi => Some("https://api.openai.com/v1"),
            Self::Anthropic => Some("https://api.anthropic.com/v1"),
            Self::OpenAiCodex => Some("https://chatgpt.com/backend-api/codex"),
            Self::OpenAiCompatible => None,
        }
    }
}

/// How a provider authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer` (OpenAI, compatible servers) or `x-api-key` (Anthropic).
    ApiKey(String),
    /// A ChatGPT OAuth access token, with the account id the backend wants alongside.
    AccessToken {
        token: String,
        account_id: Option<String>,
    },
    /// Local servers without auth.
    None,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ApiKey(_) => "ApiKey(***)",
            Self::AccessToken { .. } => "AccessToken(***)",
            Self::None => "None",
        })
    }
}

/// Everything a provider client needs.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    pub kind: ProviderKind,
    /// Base URL up to and including the API version (`https://api.openai.com/v1`).
    pub api_base: String,
    pub model: String,
    pub credential: Credential,
    pub timeout: Duration,
    pub max_output_tokens: u32,
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub retry_base: Duration,
}

/// A model answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub text: String,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub attempts: u32,
    /// Stop reason reported by the provider (`length` means the answer was cut).
    pub stop_reason: Option<String>,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("llm configuration: {0}")]
    Config(String),
    #[error("{provider} answered {status}: {body}")]
    Status {
        provider: &'static str,
        status: u16,
        body: String,
    },
    #[error("{provider} did not answer within {after_ms} ms")]
    Timeout {
        provider: &'static str,
        after_ms: u64,
    },
    #[error("{provider} unreachable: {message}")]
    Transport {
        provider: &'static str,
        message: String,
    },
    #[error("{provider} answer could not be read: {message}")]
    Decode {
        provider: &'static str,
        message: String,
    },
    #[error("{provider} returned no text")]
    Empty { provider: &'static str },
    #[error("gave up after {attempts} attempts: {last}")]
    Exhausted {
        attempts: u32,
        last: Box<ProviderError>,
    },
}

impl ProviderError {
    fn retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Timeout { .. } | Self::Transport { .. } => true,
            _ => false,
        }
    }

    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Config(_) => "config",
            Self::Status { status: 429, .. } => "rate_limited",
            Self::Status { .. } => "status",
            Self::Timeout { .. } => "timeout",
            Self::Transport { .. } => "transport",
            Self::Decode { .. } => "decode",
            Self::Empty { .. } => "empty",
            Self::Exhausted { last, .. } => last.kind(),
        }
    }
}

/// A configured provider.
#[derive(Debug, Clone)]
pub struct ProviderClient {
    http: reqwest::Client,
    settings: ProviderSettings,
    redactor: Redactor,
}

impl ProviderClient {
    pub fn new(settings: ProviderSettings, redactor: Redactor) -> Result<Self, ProviderError> {
        if settings.model.trim().is_empty() {
            return Err(ProviderError::Config("llm.model is required".into()));
        }
        if settings.api_base.trim().is_empty() {
            return Err(ProviderError::Config(format!(
                "llm.api_base is required for provider {}",
                settings.kind.name()
            )));
        }
        let needs_key = !matches!(settings.kind, ProviderKind::OpenAiCompatible);
        if needs_key && settings.credential == Credential::None {
            return Err(ProviderError::Config(format!(
                "provider {} needs a credential (llm.api_key, env, or an auth profile)",
                settings.kind.name()
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| ProviderError::Config(e.to_string()))?;
        Ok(Self {
            http,
            settings,
            redactor,
        })
    }

    pub fn provider(&self) -> &'static str {
        self.settings.kind.name()
    }

    /// The same client with another credential (a refreshed auth profile).
    pub fn with_credential(&self, credential: Credential) -> Self {
        let mut next = self.clone();
        next.settings.credential = credential;
        next
    }

    pub fn model(&self) -> &str {
        &self.settings.model
    }

    /// Sends the prompt, retrying transient failures.
    pub async fn complete(&self, prompt: &Prompt) -> Result<Completion, ProviderError> {
        let attempts_allowed = self.settings.max_retries + 1;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(prompt).await {
                Ok(mut completion) => {
                    completion.attempts = attempt;
                    return Ok(completion);
                }
                Err((err, retry_after)) => {
                    if !err.retryable() {
                        return Err(err);
                    }
                    if attempt >= attempts_allowed {
                        return Err(if attempt == 1 {
                            err
                        } else {
                            ProviderError::Exhausted {
                                attempts: attempt,
                                last: Box::new(err),
                            }
                        });
                    }
                    let wait = retry_after.unwrap_or_else(|| self.backoff(attempt));
                    tracing::warn!(provider = self.provider(), attempt, error = %err, wait_ms = wait.as_millis() as u64, "llm call failed, retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.settings.retry_base.as_millis() as u64;
        let exp = base.saturating_mul(1 << (attempt - 1).min(6));
        // Full jitter on the upper half keeps concurrent retries apart.
        let jitter = (uuid::Uuid::new_v4().as_u128() as u64) % (exp / 2 + 1);
        Duration::from_millis((exp / 2 + jitter).min(30_000))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.settings.api_base.trim_end_matches('/'), path)
    }

    fn request(&self, prompt: &Prompt) -> (String, HeaderMap, Value) {
        let s = &self.settings;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let bearer = |token: &str| HeaderValue::from_str(&format!("Bearer {token}")).ok();
        match (&s.kind, &s.credential) {
            (ProviderKind::Anthropic, Credential::ApiKey(key)) => {
                if let Ok(v) = HeaderValue::from_str(key) {
                    headers.insert("x-api-key", v);
                }
                headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
            }
            (_, Credential::ApiKey(token)) | (_, Credential::AccessToken { token, .. }) => {
                if let Some(v) = bearer(token) {
                    headers.insert(AUTHORIZATION, v);
                }
            }
            (_, Credential::None) => {}
        }
        if let Credential::AccessToken {
            account_id: Some(account),
            ..
        } = &s.credential
        {
            if let Ok(v) = HeaderValue::from_str(account) {
                headers.insert("chatgpt-account-id", v);
            }
        }
        match s.kind {
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => {
                let tokens_key = if s.kind == ProviderKind::OpenAi {
                    "max_completion_tokens"
                } else {
                    "max_tokens"
                };
                let mut body = json!({
                    "model": s.model,
                    "messages": [
                        {"role": "system", "content": prompt.system},
                        {"role": "user", "content": prompt.user},
                    ],
                    "response_format": {"type": "json_object"},
                });
                body[tokens_key] = json!(s.max_output_tokens);
                (self.url("/chat/completions"), headers, body)
            }
            ProviderKind::Anthropic => (
                self.url("/messages"),
                headers,
                json!({
                    "model": s.model,
                    "max_tokens": s.max_output_tokens,
                    "system": prompt.system,
                    "messages": [{"role": "user", "content": prompt.user}],
                    "temperature": 0,
                }),
            ),
            ProviderKind::OpenAiCodex => {
                headers.insert("accept", HeaderValue::from_static("text/event-stream"));
                headers.insert("originator", HeaderValue::from_static("carapulse"));
                (
                    self.url("/responses"),
                    headers,
                    json!({
                        "model": s.model,
                        "instructions": prompt.system,
                        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": prompt.user}]}],
                        "store": false,
                        "stream": true,
                    }),
                )
            }
        }
    }

    async fn attempt(
        &self,
        prompt: &Prompt,
    ) -> Result<Completion, (ProviderError, Option<Duration>)> {
        let provider = self.provider();
        let (url, headers, body) = self.request(prompt);
        let response = crate::telemetry::traced(self.http.post(&url).headers(headers).json(&body))
            .send()
            .await
            .map_err(|e| (self.transport_error(&e), None))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER));
        let is_stream = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let text = response
            .text()
            .await
            .map_err(|e| (self.transport_error(&e), None))?;
        if status != StatusCode::OK && !status.is_success() {
            let body: String = self
                .redactor
                .redact(text.trim())
                .chars()
                .take(512)
                .collect();
            return Err((
                ProviderError::Status {
                    provider,
                    status: status.as_u16(),
                    body,
                },
                retry_after,
            ));
        }
        let looks_like_stream = text.starts_with("event:") || text.starts_with("data:");
        let decoded = if is_stream || looks_like_stream {
            parse_sse(&text)
        } else {
            serde_json::from_str::<Value>(&text).map_err(|e| e.to_string())
        }
        .map_err(|message| (ProviderError::Decode { provider, message }, None))?;
        self.extract(&decoded).map_err(|e| (e, None))
    }

    fn transport_error(&self, e: &reqwest::Error) -> ProviderError {
        let provider = self.provider();
        if e.is_timeout() {
            ProviderError::Timeout {
                provider,
                after_ms: self.settings.timeout.as_millis() as u64,
            }
        } else {
            ProviderError::Transport {
                provider,
                message: self.redactor.redact(&e.to_string()).into_owned(),
            }
        }
    }

    fn extract(&self, v: &Value) -> Result<Completion, ProviderError> {
        let provider = self.provider();
        let u64_at = |p: &str| v.pointer(p).and_then(Value::as_u64);
        let (text, input_tokens, output_tokens, stop) = match self.settings.kind {
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => (
                v.pointer("/choices/0/message/content")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                u64_at("/usage/prompt_tokens"),
                u64_at("/usage/completion_tokens"),
                v.pointer("/choices/0/finish_reason")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            ),
            ProviderKind::Anthropic => {
                let text: String = v
                    .get("content")
                    .and_then(Value::as_array)
                    .map(|blocks| {
                        blocks
                            .iter()
                            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                            .filter_map(|b| b.get("text").and_then(Value::as_str))
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    Some(text),
                    u64_at("/usage/input_tokens"),
                    u64_at("/usage/output_tokens"),
                    v.get("stop_reason")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                )
            }
            ProviderKind::OpenAiCodex => (
                responses_text(v),
                u64_at("/usage/input_tokens"),
                u64_at("/usage/output_tokens"),
                v.get("status").and_then(Value::as_str).map(str::to_owned),
            ),
        };
        let text = text
            .filter(|t| !t.trim().is_empty())
            .ok_or(ProviderError::Empty { provider })?;
        Ok(Completion {
            text,
            input_tokens,
            output_tokens,
            attempts: 1,
            stop_reason: stop,
        })
    }
}

/// Text of a Responses API object: `output_text`, or the `output_text` parts of its messages.
fn responses_text(v: &Value) -> Option<String> {
    if let Some(t) = v.get("output_text").and_then(Value::as_str) {
        return Some(t.to_owned());
    }
    let parts: String = v
        .get("output")?
        .as_array()?
        .iter()
        .filter_map(|item| item.get("content").and_then(Value::as_array))
        .flatten()
        .filter(|c| c.get("type").and_then(Value::as_str) == Some("output_text"))
        .filter_map(|c| c.get("text").and_then(Value::as_str))
        .collect();
    Some(parts)
}

/// Folds a Responses API event stream into one response object: the `response.completed`
/// event's response, with the text rebuilt from the deltas when the final object omits it.
fn parse_sse(body: &str) -> Result<Value, String> {
    let mut deltas = String::new();
    let mut completed: Option<Value> = None;
    for line in body.lines() {
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let data = data.trim();
        if data.is_empty() || data == "[DONE]" {
            continue;
        }
        let event: Value = serde_json::from_str(data).map_err(|e| format!("event stream: {e}"))?;
        match event.get("type").and_then(Value::as_str) {
            Some("response.output_text.delta") => {
                if let Some(d) = event.get("delta").and_then(Value::as_str) {
                    deltas.push_str(d);
                }
            }
            Some("response.completed" | "response.done") => {
                completed = event.get("response").cloned();
            }
            Some("response.failed" | "error") => {
                return Err(format!("the stream reported an error: {event}"));
            }
            _ => {}
        }
    }
    let mut response = completed.ok_or("the event stream ended without response.completed")?;
    if responses_text(&response).is_none_or(|t| t.is_empty()) {
        response["output_text"] = Value::String(deltas);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names() {
        assert_eq!(
            ProviderKind::parse(" OpenAI ").unwrap(),
            ProviderKind::OpenAi
        );
        assert_eq!(
            ProviderKind::parse("ollama").unwrap(),
            ProviderKind::OpenAiCompatible
        );
        assert!(ProviderKind::parse("gpt").is_err());
        assert_eq!(
            format!("{:?}", Credential::ApiKey("sk-secret".into())),
            "ApiKey(***)"
        );
    }

    #[test]
    fn event_streams_fold_into_a_response() {
        let body = "event: response.created\ndata: {\"type\":\"response.created\"}\n\n\
data: {\"type\":\"response.output_text.delta\",\"delta\":\"{\\\"steps\\\"\"}\n\n\
data: {\"type\":\"response.output_text.delta\",\"delta\":\":[]}\"}\n\n\
data: {\"type\":\"response.completed\",\"response\":{\"status\":\"completed\",\"usage\":{\"input_tokens\":10,\"output_tokens\":4}}}\n\n";
        let v = parse_sse(body).unwrap();
        assert_eq!(responses_text(&v).unwrap(), "{\"steps\":[]}");
        assert_eq!(v["usage"]["output_tokens"], 4);
        assert!(parse_sse("data: {\"type\":\"error\",\"message\":\"x\"}\n").is_err());
        assert!(parse_sse("data: {\"type\":\"response.created\"}\n").is_err());
    }
}
