//! Building and running the router.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use carapulse_core::auth::{AuthError, TokenVerifier, VerifierSettings};
use carapulse_core::config::{parse_listen_addr, Component, Config, ConfigError};
use carapulse_core::objects::ObjectError;
use carapulse_core::policy::{PolicyEngine, PolicyError};
use carapulse_core::redact::{PatternError, Redactor};

use crate::logs::LogHub;
use crate::metrics::Metrics;
use crate::routes::router;
use crate::state::RouterState;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("policy: {0}")]
    Policy(#[from] PolicyError),
    #[error("llm.redact_patterns: {0}")]
    Redaction(#[from] PatternError),
    #[error("storage.object_store: {0}")]
    Objects(#[from] ObjectError),
    #[error("auth: {0}")]
    Auth(#[from] AuthError),
    #[error(
        "tool_router: no caller can authenticate: set tool_router.auth_token or the OIDC fields"
    )]
    NoAuth,
    #[error("http client: {0}")]
    Http(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: RouterState,
    shutdown: CancellationToken,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        config.validate(Component::ToolRouter)?;
        if !config.sandbox.enforce {
            tracing::warn!("sandbox.enforce is false: tool processes may run without isolation");
        }
        let policy = PolicyEngine::load_dir(
            Path::new(&config.policy.policy_dir),
            &config.policy.policy_package,
        )?;
        let redactor = Redactor::new(&config.llm.redact_patterns)?;
        let objects: Arc<dyn carapulse_core::objects::ObjectStore> = Arc::from(
            carapulse_core::objects::from_config(&config.storage.object_store)?,
        );
        let tr = &config.tool_router;
        let gw = &config.gateway;
        let settings = VerifierSettings {
            oidc_issuer: tr.oidc_issuer.clone(),
            oidc_audience: tr.oidc_client_id.clone(),
            jwks_url: tr.oidc_jwks_url.clone(),
            dev_secret: if gw.dev_mode {
                gw.dev_jwt_secret.clone()
            } else {
                None
            },
            ..VerifierSettings::from_gateway(gw)
        };
        let verifier = if settings.jwks_url.is_some() || settings.dev_secret.is_some() {
            Some(Arc::new(TokenVerifier::new(settings)?))
        } else {
            None
        };
        if verifier.is_none() && tr.auth_token.as_deref().unwrap_or("").is_empty() {
            return Err(StartupError::NoAuth);
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("carapulse-tool-router/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| StartupError::Http(e.to_string()))?;
        let addr = parse_listen_addr("tool_router.http_addr", &tr.http_addr)?;
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
        let state = RouterState {
            config: Arc::new(config),
            policy: Arc::new(policy),
            verifier,
            redactor: Arc::new(redactor),
            hub: Arc::new(LogHub::default()),
            objects,
            http,
            metrics: Arc::new(Metrics::new()),
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

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        tracing::info!(addr = %self.local_addr, "tool router listening");
        let token = self.shutdown.clone();
        axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await?;
        tracing::info!("tool router stopped");
        Ok(())
    }
}
