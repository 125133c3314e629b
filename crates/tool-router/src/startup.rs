//! Building and running the router.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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
    #[error(
        "tool_router.auth_token is required (env CARAPULSE_TOOL_ROUTER_TOKEN): only service principals call the router"
    )]
    NoAuth,
    #[error("http client: {0}")]
    Http(String),
    #[error("{0}")]
    Sandbox(String),
    #[error("tool_router.demo_cli_dir {dir}: {source}")]
    DemoDir { dir: String, source: std::io::Error },
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
        let objects = carapulse_core::objects::from_config(&config.storage.object_store)?;
        tracing::info!(store = %objects.describe(), "tool outputs over 64 KiB and helm values go to the object store");
        let tr = &config.tool_router;
        if tr.auth_token.as_deref().unwrap_or("").is_empty() {
            return Err(StartupError::NoAuth);
        }
        let demo_cli_dir = tr
            .demo_cli_dir
            .as_deref()
            .map(|dir| {
                std::fs::canonicalize(dir).map_err(|source| StartupError::DemoDir {
                    dir: dir.to_owned(),
                    source,
                })
            })
            .transpose()?
            .map(Arc::new);
        if let Some(dir) = &tr.demo_cli_dir {
            tracing::warn!(
                demo_cli_dir = %dir,
                "DEMO MODE: CLIs found in tool_router.demo_cli_dir are recording fakes and run instead of the real ones"
            );
        }
        let grant_key = tr.grant_key.clone().map(|k| Arc::new(k.into_bytes()));
        if grant_key.is_none() {
            tracing::warn!(
                "tool_router.grant_key is not set: every write and sensitive read will be refused"
            );
        }
        let sandbox = sandbox_exec::Runner::from_setting(config.sandbox.exec_helper.as_deref())
            .map_err(StartupError::Sandbox)?;
        match &sandbox {
            sandbox_exec::Runner::InProcess if config.sandbox.exec_helper.is_none() => {
                tracing::warn!("no sandbox-exec binary next to the tool router or on PATH: tool calls are sandboxed in-process, at a cost that grows with the router's memory; set sandbox.exec_helper")
            }
            runner => {
                tracing::info!(sandbox = %runner.describe(), "sandboxed commands run through")
            }
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
            grant_key,
            redactor: Arc::new(redactor),
            sandbox: Arc::new(sandbox),
            hub: Arc::new(LogHub::default()),
            objects,
            http,
            metrics: Arc::new(Metrics::new()),
            demo_cli_dir,
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
        // A tool call answers only when it ends, so idleness is measured between requests; the
        // grace period lets running tools finish on shutdown.
        let sandbox_secs = self.state.config.sandbox.timeout_ms / 1000;
        let limits = carapulse_http::serve::ConnectionLimits {
            shutdown_grace: std::time::Duration::from_secs(sandbox_secs.clamp(30, 900)),
            ..Default::default()
        };
        carapulse_http::serve::serve(self.listener, router(self.state), limits, async move {
            token.cancelled().await
        })
        .await?;
        tracing::info!("tool router stopped");
        Ok(())
    }
}
