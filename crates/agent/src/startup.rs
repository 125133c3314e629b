//! `Application::build(config)` binds the agent's listener and wires its state;
//! `run_until_stopped()` serves until the shutdown token fires, then lets in-flight replies to
//! Slack finish (bounded by `gateway.shutdown_grace_secs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use carapulse_core::config::{parse_listen_addr, Component, Config, ConfigError};
use carapulse_core::model::ContextRef;

use crate::gateway_client::GatewayClient;
use crate::handlers::{self, AgentState};
use crate::identity::Identities;
use crate::metrics::Metrics;
use crate::signature::SignatureCheck;

/// Slack bodies are small; anything bigger is refused before the signature is computed.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// The gateway base URL: `chatops.gateway_url`, else derived from `gateway.http_addr`.
pub fn gateway_url(config: &Config) -> String {
    if let Some(url) = config
        .chatops
        .gateway_url
        .as_deref()
        .filter(|u| !u.is_empty())
    {
        return url.trim_end_matches('/').to_owned();
    }
    let addr = config.gateway.http_addr.trim();
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.trim_end_matches('/').to_owned()
    } else if let Some(port) = addr.strip_prefix(':') {
        format!("http://127.0.0.1:{port}")
    } else {
        format!("http://{addr}")
    }
}

/// A bound, ready-to-run agent.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: AgentState,
    shutdown: CancellationToken,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        config.validate(Component::Agent)?;
        let chatops = &config.chatops;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let gateway = GatewayClient::new(
            &gateway_url(&config),
            chatops.gateway_token.as_deref().unwrap_or_default(),
            Duration::from_secs(30),
        )?;
        let c = &config.context;
        let context = ContextRef {
            tenant_id: c.tenant_id.clone(),
            environment: c.environment.clone(),
            cluster_id: c.cluster_id.clone(),
            namespace: c.namespace.clone(),
            aws_account_id: c.aws_account_id.clone(),
            region: c.region.clone(),
            argocd_project: c.argocd_project.clone(),
            grafana_org_id: c.grafana_org_id.clone(),
        };
        let addr = parse_listen_addr("chatops.listen_addr", &chatops.listen_addr)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind {
                addr: addr.to_string(),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: addr.to_string(),
            source,
        })?;
        let state = AgentState {
            signatures: SignatureCheck::new(
                chatops.slack_signing_secret.as_deref().unwrap_or_default(),
                chatops.signature_tolerance_secs,
            ),
            identities: Arc::new(Identities::new(chatops, http.clone())),
            gateway,
            http,
            context,
            metrics: Arc::new(Metrics::new()),
            tasks: TaskTracker::new(),
            config: Arc::new(config),
        };
        Ok(Self {
            listener,
            local_addr,
            state,
            shutdown: CancellationToken::new(),
        })
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    fn router(state: AgentState) -> Router {
        let path = state
            .config
            .chatops
            .commands_path
            .trim_end_matches('/')
            .to_owned();
        Router::new()
            .route(&path, post(handlers::slash_command))
            .route(&format!("{path}/interactions"), post(handlers::interaction))
            .route("/healthz", get(handlers::healthz))
            .route("/readyz", get(handlers::readyz))
            .route("/metrics", get(handlers::metrics))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(state)
    }

    /// Serves until the shutdown token fires.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let grace = Duration::from_secs(self.state.config.gateway.shutdown_grace_secs);
        let tasks = self.state.tasks.clone();
        let app = Self::router(self.state);
        tracing::info!(addr = %self.local_addr, "agent listening");
        let token = self.shutdown.clone();
        let limits = carapulse_http::serve::ConnectionLimits {
            shutdown_grace: grace,
            ..Default::default()
        };
        carapulse_http::serve::serve(self.listener, app, limits, async move {
            token.cancelled().await
        })
        .await?;
        tasks.close();
        if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
            tracing::warn!("replies to Slack still pending at shutdown were dropped");
        }
        tracing::info!("agent stopped");
        Ok(())
    }
}
