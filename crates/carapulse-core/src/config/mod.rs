//! One typed configuration for every Carapulse binary.
//!
//! Layers, lowest first: built-in defaults, the JSON file (`--config PATH` or `CARAPULSE_CONFIG`),
//! then environment overrides. Two kinds of override exist: named secret variables
//! (`CARAPULSE_POSTGRES_DSN`, `CARAPULSE_DEV_JWT_SECRET`, ...; see [`SECRET_ENV`]) and a generic
//! `CARAPULSE__SECTION__KEY=value` form for any other key. Unknown keys are errors, and
//! validation names the offending field (`storage.postgres_dsn: invalid URL ...`) and only checks
//! what the binary at hand needs ([`Component`]).

mod bindings;
pub mod go_convert;
pub mod retired;
mod sections;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use bindings::connector_key;
pub use sections::*;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub gateway: GatewayConfig,
    pub tool_router: ToolRouterConfig,
    pub orchestrator: OrchestratorConfig,
    pub storage: StorageConfig,
    pub sandbox: SandboxConfig,
    pub context: ContextConfig,
    pub connectors: ConnectorsConfig,
    pub llm: LlmConfig,
    pub policy: PolicyConfig,
    pub chatops: ChatOpsConfig,
    pub approvals: ApprovalsConfig,
    pub scheduler: SchedulerConfig,
    pub telemetry: TelemetryConfig,
    /// Webhook sources by name (`alertmanager`, `argocd`, `git`, `k8s`).
    pub webhooks: std::collections::BTreeMap<String, WebhookSource>,
}

/// Which binary is validating: each checks only the sections it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Gateway,
    ToolRouter,
    Orchestrator,
    Agent,
    Cli,
    SandboxExec,
}

/// A configuration problem, always naming the file, variable or field at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {field}: {message}")]
    Parse {
        path: String,
        field: String,
        message: String,
    },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    /// A key of the Go original this project does not act on, set to something it would not do.
    #[error("{field} is not supported: {instead}")]
    Retired { field: String, instead: String },
}

impl ConfigError {
    fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Named environment variables that carry secrets, and the config key each one sets.
pub const SECRET_ENV: &[(&str, &str)] = &[
    ("CARAPULSE_POSTGRES_DSN", "storage.postgres_dsn"),
    ("CARAPULSE_DEV_JWT_SECRET", "gateway.dev_jwt_secret"),
    ("CARAPULSE_TOOL_ROUTER_TOKEN", "tool_router.auth_token"),
    ("CARAPULSE_TOOL_ROUTER_GRANT_KEY", "tool_router.grant_key"),
    (
        "CARAPULSE_AUDIT_CHECKPOINT_KEY",
        "storage.audit_checkpoint_key",
    ),
    ("CARAPULSE_LLM_API_KEY", "llm.api_key"),
    ("CARAPULSE_SLACK_BOT_TOKEN", "chatops.slack_bot_token"),
    (
        "CARAPULSE_SLACK_SIGNING_SECRET",
        "chatops.slack_signing_secret",
    ),
    ("CARAPULSE_AGENT_GATEWAY_TOKEN", "chatops.gateway_token"),
    ("CARAPULSE_AWS_TOKEN", "connectors.aws.token"),
    ("CARAPULSE_VAULT_TOKEN", "connectors.vault.token"),
    ("CARAPULSE_BOUNDARY_TOKEN", "connectors.boundary.token"),
    ("CARAPULSE_ARGOCD_TOKEN", "connectors.argocd.token"),
    ("CARAPULSE_PROMETHEUS_TOKEN", "connectors.prometheus.token"),
    (
        "CARAPULSE_ALERTMANAGER_TOKEN",
        "connectors.alertmanager.token",
    ),
    ("CARAPULSE_THANOS_TOKEN", "connectors.thanos.token"),
    ("CARAPULSE_GRAFANA_TOKEN", "connectors.grafana.token"),
    ("CARAPULSE_TEMPO_TOKEN", "connectors.tempo.token"),
    ("CARAPULSE_LINEAR_TOKEN", "connectors.linear.token"),
    ("CARAPULSE_PAGERDUTY_TOKEN", "connectors.pagerduty.token"),
    ("CARAPULSE_GITHUB_TOKEN", "connectors.github.token"),
    ("CARAPULSE_GITLAB_TOKEN", "connectors.gitlab.token"),
    (
        "CARAPULSE_S3_ACCESS_KEY_ID",
        "storage.object_store.access_key_id",
    ),
    (
        "CARAPULSE_S3_SECRET_ACCESS_KEY",
        "storage.object_store.secret_access_key",
    ),
];

/// Prefix of the generic `CARAPULSE__SECTION__KEY` overrides.
const GENERIC_ENV_PREFIX: &str = "CARAPULSE__";

impl Config {
    /// Loads defaults, then `path` when given, then the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(path, &vars)
    }

    /// Like [`Config::load`] with an explicit environment (tests use this).
    pub fn load_with_env(
        path: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let (source, mut doc) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                let doc: Value = serde_json::from_str(&text).map_err(|err| ConfigError::Parse {
                    path: path.display().to_string(),
                    field: format!("line {} column {}", err.line(), err.column()),
                    message: err.to_string(),
                })?;
                if !doc.is_object() {
                    return Err(ConfigError::Parse {
                        path: path.display().to_string(),
                        field: "(root)".into(),
                        message: "the config must be a JSON object".into(),
                    });
                }
                (path.display().to_string(), doc)
            }
            None => ("(defaults)".to_owned(), Value::Object(Default::default())),
        };
        apply_env_overrides(&mut doc, env)?;
        Self::from_value(&source, doc)
    }

    /// Parses a JSON string (no environment overlay); used by tests and tools.
    pub fn from_json_str(text: &str) -> Result<Self, ConfigError> {
        let doc: Value = serde_json::from_str(text).map_err(|err| ConfigError::Parse {
            path: "(inline)".into(),
            field: format!("line {} column {}", err.line(), err.column()),
            message: err.to_string(),
        })?;
        Self::from_value("(inline)", doc)
    }

    fn from_value(source: &str, mut doc: Value) -> Result<Self, ConfigError> {
        retired::check(&mut doc)?;
        serde_path_to_error::deserialize(doc).map_err(|err| {
            let field = err.path().to_string();
            ConfigError::Parse {
                path: source.to_owned(),
                field: if field == "." { "(root)".into() } else { field },
                message: err.into_inner().to_string(),
            }
        })
    }

    /// Checks what `component` needs; the error names the first bad field.
    pub fn validate(&self, component: Component) -> Result<(), ConfigError> {
        use Component::*;
        if matches!(component, Gateway | Orchestrator | Cli) {
            validate_postgres_dsn(&self.storage.postgres_dsn)?;
            if self.storage.max_open_conns == 0 {
                return Err(ConfigError::invalid(
                    "storage.max_open_conns",
                    "must be at least 1",
                ));
            }
        }
        if component == Gateway {
            self.validate_gateway()?;
        }
        if component == ToolRouter {
            parse_listen_addr("tool_router.http_addr", &self.tool_router.http_addr)?;
        }
        if matches!(component, ToolRouter | Orchestrator | SandboxExec) {
            self.validate_sandbox()?;
        }
        if matches!(component, Gateway | ToolRouter | Orchestrator) {
            self.validate_connectors()?;
            self.validate_llm()?;
        }
        if let Some(url) = &self.tool_router.base_url {
            validate_http_url("tool_router.base_url", url)?;
        }
        if let Some(key) = self.tool_router.grant_key.as_deref() {
            if key.len() < crate::grant::MIN_KEY_BYTES {
                return Err(ConfigError::invalid(
                    "tool_router.grant_key",
                    format!("must be at least {} bytes", crate::grant::MIN_KEY_BYTES),
                ));
            }
            if self.tool_router.auth_token.as_deref() == Some(key) {
                return Err(ConfigError::invalid(
                    "tool_router.grant_key",
                    "must differ from tool_router.auth_token (the token alone must not authorise writes)",
                ));
            }
        }
        if self
            .storage
            .audit_checkpoint_key
            .as_deref()
            .is_some_and(|k| k.len() < 32)
        {
            return Err(ConfigError::invalid(
                "storage.audit_checkpoint_key",
                "must be at least 32 bytes",
            ));
        }
        if !(60..=24 * 3600).contains(&self.tool_router.grant_ttl_secs) {
            return Err(ConfigError::invalid(
                "tool_router.grant_ttl_secs",
                "must be between 60 and 86400",
            ));
        }
        if let Some(endpoint) = &self.telemetry.otlp_endpoint {
            validate_http_url("telemetry.otlp_endpoint", endpoint)?;
        }
        if !(0.0..=1.0).contains(&self.telemetry.sample_ratio) {
            return Err(ConfigError::invalid(
                "telemetry.sample_ratio",
                "must be between 0.0 and 1.0",
            ));
        }
        if let Some(dir) = &self.tool_router.demo_cli_dir {
            if !self.gateway.dev_mode {
                return Err(ConfigError::invalid(
                    "tool_router.demo_cli_dir",
                    "demo CLIs are recording fakes: they need gateway.dev_mode (never beside production)",
                ));
            }
            if component == ToolRouter && !std::path::Path::new(dir).is_dir() {
                return Err(ConfigError::invalid(
                    "tool_router.demo_cli_dir",
                    format!("{dir} is not a directory"),
                ));
            }
        }
        if component == Orchestrator && self.tool_router.grant_key.is_none() {
            return Err(ConfigError::invalid(
                "tool_router.grant_key",
                "required by the orchestrator (env CARAPULSE_TOOL_ROUTER_GRANT_KEY): it signs the execution grants the tool router checks",
            ));
        }
        if component == Orchestrator && self.orchestrator.task_queue.trim().is_empty() {
            return Err(ConfigError::invalid(
                "orchestrator.task_queue",
                "must not be empty",
            ));
        }
        if component == Agent {
            if self
                .chatops
                .slack_signing_secret
                .as_deref()
                .unwrap_or("")
                .is_empty()
            {
                return Err(ConfigError::invalid(
                    "chatops.slack_signing_secret",
                    "required by the agent (or env CARAPULSE_SLACK_SIGNING_SECRET)",
                ));
            }
            parse_listen_addr("chatops.listen_addr", &self.chatops.listen_addr)?;
            if self
                .chatops
                .gateway_token
                .as_deref()
                .unwrap_or("")
                .is_empty()
            {
                return Err(ConfigError::invalid(
                    "chatops.gateway_token",
                    "required by the agent (a token with a delegation role, e.g. chatops)",
                ));
            }
            if !self.chatops.commands_path.starts_with('/') {
                return Err(ConfigError::invalid(
                    "chatops.commands_path",
                    "must start with /",
                ));
            }
            if self.context.environment.is_empty() {
                return Err(ConfigError::invalid(
                    "context.environment",
                    "required by the agent: plans from Slack target this environment",
                ));
            }
            validate_http_url("chatops.slack_api_base", &self.chatops.slack_api_base)?;
        }
        self.validate_object_store()?;
        if let Some(bad) = self.context.grafana_folders.iter().find(|id| **id < 1) {
            return Err(ConfigError::invalid(
                "context.grafana_folders",
                format!("folder ids are positive integers (got {bad})"),
            ));
        }
        if !(1..=crate::blast_radius::MAX_DEPTH).contains(&self.context.blast_radius_depth) {
            return Err(ConfigError::invalid(
                "context.blast_radius_depth",
                format!("between 1 and {}", crate::blast_radius::MAX_DEPTH),
            ));
        }
        if self.context.service_graph_queries.len() > 10 {
            return Err(ConfigError::invalid(
                "context.service_graph_queries",
                "at most 10 queries",
            ));
        }
        for (i, q) in self.context.service_graph_queries.iter().enumerate() {
            let blank = [
                ("requests", &q.requests),
                ("client_label", &q.client_label),
                ("server_label", &q.server_label),
            ]
            .into_iter()
            .find(|(_, v)| v.trim().is_empty());
            if let Some((field, _)) = blank {
                return Err(ConfigError::invalid(
                    &format!("context.service_graph_queries[{i}].{field}"),
                    "must not be empty",
                ));
            }
        }
        if self.context.watch_send_initial_events && !self.context.watch_allow_bookmarks {
            return Err(ConfigError::invalid(
                "context.watch_allow_bookmarks",
                "must stay true while context.watch_send_initial_events is true: a streaming list ends with a bookmark",
            ));
        }
        if let Some(cron) = self.scheduler.default_cron.as_deref() {
            crate::schedule::CronSchedule::parse(cron, "UTC").map_err(|e| {
                ConfigError::invalid("scheduler.default_cron", format!("invalid cron: {e}"))
            })?;
        }
        if self.policy.fail_open_reads {
            return Err(ConfigError::invalid(
                "policy.fail_open_reads",
                "is not supported: policy evaluation errors always deny",
            ));
        }
        Ok(())
    }

    fn validate_gateway(&self) -> Result<(), ConfigError> {
        let gw = &self.gateway;
        parse_listen_addr("gateway.http_addr", &gw.http_addr)?;
        if !(10..=86_400).contains(&gw.retention_interval_secs) {
            return Err(ConfigError::invalid(
                "gateway.retention_interval_secs",
                "between 10 and 86400 seconds",
            ));
        }
        for (name, source) in &self.webhooks {
            let field = |f: &str| format!("webhooks.{name}.{f}");
            if !matches!(name.as_str(), "alertmanager" | "argocd" | "git" | "k8s") {
                return Err(ConfigError::invalid(
                    &format!("webhooks.{name}"),
                    "unknown source: expected alertmanager, argocd, git or k8s",
                ));
            }
            if crate::model::TenantId::parse(&source.tenant_id).is_err() {
                return Err(ConfigError::invalid(
                    &field("tenant_id"),
                    "a valid tenant id is required",
                ));
            }
            if source.environment.is_empty() {
                return Err(ConfigError::invalid(&field("environment"), "required"));
            }
            let has = |s: &Option<String>| s.as_deref().is_some_and(|v| v.len() >= 16);
            if !has(&source.bearer_token) && !has(&source.hmac_secret) {
                return Err(ConfigError::invalid(
                    &field("hmac_secret"),
                    "a bearer_token or hmac_secret of at least 16 characters is required: webhooks are never accepted unauthenticated",
                ));
            }
        }
        if let Some(addr) = &gw.canvas_addr {
            parse_listen_addr("gateway.canvas_addr", addr)?;
        }
        if let Some(addr) = &gw.ws_addr {
            parse_listen_addr("gateway.ws_addr", addr)?;
        }
        validate_oidc_triple(
            "gateway",
            &gw.oidc_issuer,
            &gw.oidc_client_id,
            &gw.oidc_jwks_url,
        )?;
        if let Some(url) = &gw.oidc_jwks_url {
            validate_http_url("gateway.oidc_jwks_url", url)?;
        }
        if gw.dev_mode {
            let secret = gw.dev_jwt_secret.as_deref().unwrap_or("");
            if secret.len() < 32 {
                return Err(ConfigError::invalid(
                    "gateway.dev_jwt_secret",
                    "dev_mode needs an HS256 secret of at least 32 bytes (or env CARAPULSE_DEV_JWT_SECRET)",
                ));
            }
        } else if gw.oidc_jwks_url.is_none() {
            return Err(ConfigError::invalid(
                "gateway.oidc_jwks_url",
                "no token verifier configured: set the OIDC fields or enable gateway.dev_mode with gateway.dev_jwt_secret",
            ));
        }
        if gw.tenant_claim.trim().is_empty() {
            return Err(ConfigError::invalid(
                "gateway.tenant_claim",
                "must not be empty",
            ));
        }
        if gw.approver_roles.is_empty() {
            return Err(ConfigError::invalid(
                "gateway.approver_roles",
                "must list at least one role",
            ));
        }
        if gw.max_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                "gateway.max_body_bytes",
                "must be at least 1024",
            ));
        }
        if gw.rate_limit_per_second.is_nan()
            || gw.rate_limit_per_second <= 0.0
            || gw.rate_limit_burst == 0
        {
            return Err(ConfigError::invalid(
                "gateway.rate_limit_per_second",
                "rate limit and burst must be positive",
            ));
        }
        if self.approvals.timeout_hours == 0 {
            return Err(ConfigError::invalid(
                "approvals.timeout_hours",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    fn validate_object_store(&self) -> Result<(), ConfigError> {
        let os = &self.storage.object_store;
        match os.backend.as_str() {
            "fs" => {}
            "s3" => {
                if os.bucket.as_deref().is_none_or(|b| b.trim().is_empty()) {
                    return Err(ConfigError::invalid(
                        "storage.object_store.bucket",
                        "required by the s3 backend",
                    ));
                }
                if let Some(endpoint) = &os.endpoint {
                    validate_http_url("storage.object_store.endpoint", endpoint)?;
                }
                if os.access_key_id.is_some() != os.secret_access_key.is_some() {
                    return Err(ConfigError::invalid(
                        "storage.object_store.secret_access_key",
                        "give both access_key_id and secret_access_key, or neither (AWS environment)",
                    ));
                }
            }
            other => {
                return Err(ConfigError::invalid(
                    "storage.object_store.backend",
                    format!("{other:?} is not fs or s3"),
                ))
            }
        }
        if os.backend != "s3"
            && (os.endpoint.is_some() || os.bucket.is_some() || os.access_key_id.is_some())
        {
            return Err(ConfigError::invalid(
                "storage.object_store.backend",
                "endpoint/bucket/credentials are S3 settings: set backend to \"s3\" (objects otherwise go to fs_root)",
            ));
        }
        Ok(())
    }

    fn validate_sandbox(&self) -> Result<(), ConfigError> {
        let sb = &self.sandbox;
        if sb.require_seccomp && sb.seccomp_profile.is_none() {
            return Err(ConfigError::invalid(
                "sandbox.seccomp_profile",
                "required because sandbox.require_seccomp is true",
            ));
        }
        if sb.require_user && sb.user.is_none() {
            return Err(ConfigError::invalid(
                "sandbox.user",
                "required because sandbox.require_user is true",
            ));
        }
        if sb.require_egress_allowlist && sb.egress_allowlist.is_empty() {
            return Err(ConfigError::invalid(
                "sandbox.egress_allowlist",
                "must not be empty because sandbox.require_egress_allowlist is true",
            ));
        }
        if sb.timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "sandbox.timeout_ms",
                "must be positive",
            ));
        }
        Ok(())
    }

    fn validate_connectors(&self) -> Result<(), ConfigError> {
        let c = &self.connectors;
        let pairs: [(&str, &Option<String>, &Option<String>); 13] = [
            ("aws", &c.aws.addr, &c.aws.token),
            ("vault", &c.vault.addr, &c.vault.token),
            ("boundary", &c.boundary.addr, &c.boundary.token),
            ("argocd", &c.argocd.addr, &c.argocd.token),
            ("prometheus", &c.prometheus.addr, &c.prometheus.token),
            ("alertmanager", &c.alertmanager.addr, &c.alertmanager.token),
            ("thanos", &c.thanos.addr, &c.thanos.token),
            ("grafana", &c.grafana.addr, &c.grafana.token),
            ("tempo", &c.tempo.addr, &c.tempo.token),
            ("pagerduty", &c.pagerduty.addr, &c.pagerduty.token),
            ("github", &c.github.addr, &c.github.token),
            ("gitlab", &c.gitlab.addr, &c.gitlab.token),
            ("linear", &Some(c.linear.base_url.clone()), &c.linear.token),
        ];
        for (name, addr, token) in pairs {
            match addr {
                Some(addr) if !addr.trim().is_empty() => {
                    let field = if name == "linear" {
                        "connectors.linear.base_url".to_owned()
                    } else {
                        format!("connectors.{name}.addr")
                    };
                    validate_http_url(&field, addr)?;
                }
                _ if token.is_some() => {
                    return Err(ConfigError::invalid(
                        &format!("connectors.{name}.addr"),
                        "required because a token is set",
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn validate_llm(&self) -> Result<(), ConfigError> {
        let llm = &self.llm;
        let Some(provider) = llm.provider.as_deref() else {
            return Ok(());
        };
        let kind = crate::planner::provider::ProviderKind::parse(provider)
            .map_err(|e| ConfigError::invalid("llm.provider", e.to_string()))?;
        if kind == crate::planner::provider::ProviderKind::OpenAiCompatible
            && llm.api_base.as_deref().unwrap_or("").is_empty()
        {
            return Err(ConfigError::invalid(
                "llm.api_base",
                "required for an OpenAI-compatible provider (e.g. http://127.0.0.1:11434/v1 for Ollama)",
            ));
        }
        for (i, pattern) in llm.redact_patterns.iter().enumerate() {
            if let Err(e) = regex::Regex::new(pattern) {
                return Err(ConfigError::invalid(
                    "llm.redact_patterns",
                    format!("pattern {i} does not compile: {e}"),
                ));
            }
        }
        if llm.model.as_deref().unwrap_or("").is_empty() {
            return Err(ConfigError::invalid(
                "llm.model",
                "required when llm.provider is set",
            ));
        }
        if let Some(base) = &llm.api_base {
            validate_http_url("llm.api_base", base)?;
        }
        if llm.timeout_ms == 0 {
            return Err(ConfigError::invalid("llm.timeout_ms", "must be positive"));
        }
        Ok(())
    }

    /// Warnings worth logging at start (settings that weaken a default).
    pub fn warnings(&self, component: Component) -> Vec<String> {
        let mut out = Vec::new();
        if component == Component::Gateway && self.gateway.dev_mode {
            out.push(
                "gateway.dev_mode is on: HS256 dev tokens are accepted; do not use in production"
                    .into(),
            );
        }
        if matches!(
            component,
            Component::ToolRouter | Component::Orchestrator | Component::SandboxExec
        ) && !self.sandbox.enforce
        {
            out.push("sandbox.enforce is false: tool processes may run without isolation".into());
        }
        out
    }
}

/// Turns `":8080"` or `"127.0.0.1:8080"` into a socket address.
pub fn parse_listen_addr(field: &str, addr: &str) -> Result<SocketAddr, ConfigError> {
    let full = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_owned()
    };
    full.parse().map_err(|err| {
        ConfigError::invalid(field, format!("invalid listen address {addr:?}: {err}"))
    })
}

fn validate_postgres_dsn(dsn: &str) -> Result<(), ConfigError> {
    let field = "storage.postgres_dsn";
    if dsn.trim().is_empty() {
        return Err(ConfigError::invalid(field, "must not be empty"));
    }
    let url = url::Url::parse(dsn)
        .map_err(|err| ConfigError::invalid(field, format!("invalid URL: {err}")))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(ConfigError::invalid(
            field,
            format!(
                "invalid URL: scheme must be postgres:// (got {}://)",
                url.scheme()
            ),
        ));
    }
    Ok(())
}

fn validate_http_url(field: &str, value: &str) -> Result<(), ConfigError> {
    let url = url::Url::parse(value)
        .map_err(|err| ConfigError::invalid(field, format!("invalid URL {value:?}: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::invalid(
            field,
            format!("invalid URL {value:?}: scheme must be http or https"),
        ));
    }
    Ok(())
}

fn validate_oidc_triple(
    section: &str,
    issuer: &Option<String>,
    client_id: &Option<String>,
    jwks_url: &Option<String>,
) -> Result<(), ConfigError> {
    let set = [issuer, client_id, jwks_url]
        .iter()
        .filter(|v| v.as_deref().is_some_and(|s| !s.is_empty()))
        .count();
    if set != 0 && set != 3 {
        let missing = [
            ("oidc_issuer", issuer),
            ("oidc_client_id", client_id),
            ("oidc_jwks_url", jwks_url),
        ]
        .into_iter()
        .find(|(_, v)| v.as_deref().is_none_or(str::is_empty))
        .map(|(name, _)| name)
        .unwrap_or("oidc_issuer");
        return Err(ConfigError::invalid(
            &format!("{section}.{missing}"),
            "the OIDC settings oidc_issuer, oidc_client_id and oidc_jwks_url must be set together",
        ));
    }
    Ok(())
}

/// Applies named secret variables and generic `CARAPULSE__A__B` overrides onto the JSON document.
fn apply_env_overrides(doc: &mut Value, env: &[(String, String)]) -> Result<(), ConfigError> {
    for (var, key) in SECRET_ENV {
        if let Some((_, value)) = env.iter().find(|(name, _)| name == var) {
            if !value.is_empty() {
                set_path(doc, key, Value::String(value.clone()), var)?;
            }
        }
    }
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(GENERIC_ENV_PREFIX) else {
            continue;
        };
        let key = rest
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>()
            .join(".");
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(ConfigError::Env {
                var: name.clone(),
                message: "expected CARAPULSE__SECTION__KEY".into(),
            });
        }
        set_path(doc, &key, parse_env_value(value), name)?;
    }
    Ok(())
}

/// Values that look like JSON (numbers, booleans, arrays, objects, quoted strings) are parsed as
/// JSON; anything else is taken as a plain string.
fn parse_env_value(raw: &str) -> Value {
    let trimmed = raw.trim();
    let looks_json = trimmed.starts_with(['[', '{', '"'])
        || trimmed == "true"
        || trimmed == "false"
        || trimmed.parse::<f64>().is_ok();
    if looks_json {
        if let Ok(value) = serde_json::from_str(trimmed) {
            return value;
        }
    }
    Value::String(raw.to_owned())
}

fn set_path(doc: &mut Value, dotted: &str, value: Value, var: &str) -> Result<(), ConfigError> {
    let mut cursor = doc;
    let parts: Vec<&str> = dotted.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let Value::Object(map) = cursor else {
            return Err(ConfigError::Env {
                var: var.to_owned(),
                message: format!("{dotted}: {} is not an object", parts[..i].join(".")),
            });
        };
        if i + 1 == parts.len() {
            map.insert((*part).to_owned(), value);
            return Ok(());
        }
        cursor = map
            .entry((*part).to_owned())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
