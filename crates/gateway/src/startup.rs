//! Building and running the gateway: `Application::build(config)` binds the listener and wires
//! state; `run_until_stopped()` serves until the shutdown token is cancelled, then drains.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use carapulse_core::audit::AuditWriter;
use carapulse_core::auth::{AuthError, TokenVerifier, VerifierSettings};
use carapulse_core::config::{parse_listen_addr, Component, Config, ConfigError};
use carapulse_core::dispatch::{ExecutionDispatcher, NoOrchestrator};
use carapulse_core::policy::{PolicyEngine, PolicyError};
use carapulse_core::store::{Store, StoreError};

use crate::background::linear::LinearWatcher;
use crate::background::{expiry, retention, run_every};
use crate::metrics::Metrics;
use crate::planning::Planning;
use crate::rate_limit::RateLimiter;
use crate::routes::router;
use crate::state::AppState;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("policy: {0}")]
    Policy(#[from] PolicyError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("auth: {0}")]
    Auth(#[from] AuthError),
    #[error("planner: {0}")]
    Planner(#[from] carapulse_core::planner::provider::ProviderError),
    #[error("linear: {0}")]
    Linear(#[from] carapulse_core::linear::LinearError),
    #[error("audit checkpoints: {0}")]
    Checkpoints(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// A bound, ready-to-run gateway.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    /// The web UI listener (UI assets + the same API), when configured.
    ui: Option<(TcpListener, SocketAddr)>,
    state: AppState,
    linear: Option<Arc<LinearWatcher>>,
    alert_rx: std::sync::Mutex<
        Option<tokio::sync::mpsc::Receiver<crate::background::event_loop::AlertWork>>,
    >,
    shutdown: CancellationToken,
}

impl Application {
    /// Validates `config`, connects to Postgres (running migrations when
    /// `gateway.auto_migrate`), loads policy and binds `gateway.http_addr`.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let dispatcher: Arc<dyn ExecutionDispatcher> =
            match orchestrator::dispatcher::TemporalDispatcher::new(&config.orchestrator) {
                Some(temporal) => Arc::new(temporal),
                None => {
                    tracing::warn!(
                        "orchestrator.temporal_addr is unset: executions will stay pending"
                    );
                    Arc::new(NoOrchestrator)
                }
            };
        Self::build_with_dispatcher(config, dispatcher).await
    }

    /// Like [`Application::build`] with a specific orchestrator dispatcher.
    pub async fn build_with_dispatcher(
        config: Config,
        dispatcher: Arc<dyn ExecutionDispatcher>,
    ) -> Result<Self, StartupError> {
        config.validate(Component::Gateway)?;
        let store = Store::connect_lazy(&config.storage)?;
        if config.gateway.auto_migrate {
            store.migrate().await?;
        } else {
            store.ping().await?;
        }
        let policy = PolicyEngine::load_dir(
            Path::new(&config.policy.policy_dir),
            &config.policy.policy_package,
        )?;
        tracing::info!(files = ?policy.files(), package = policy.package(), "policy loaded");
        let verifier = TokenVerifier::new(VerifierSettings::from_gateway(&config.gateway))?;
        if config.gateway.dev_mode {
            tracing::warn!("gateway.dev_mode is on: HS256 dev tokens are accepted; never use this in production");
        }
        let addr = parse_listen_addr("gateway.http_addr", &config.gateway.http_addr)?;
        let (listener, local_addr) = bind(addr).await?;
        let ui = match ui_addr(&config)? {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let limiter = RateLimiter::new(
            config.gateway.rate_limit_per_second,
            config.gateway.rate_limit_burst,
        );
        let metrics = Arc::new(Metrics::new());
        let (alert_queue, alert_rx) =
            tokio::sync::mpsc::channel(crate::background::event_loop::QUEUE);
        let planning = Arc::new(Planning::from_config(&config, metrics.clone())?);
        let context = crate::context::build(&config, &store).await;
        let checkpoints = match config.storage.audit_checkpoint_key.as_deref() {
            Some(key) => {
                let objects = carapulse_core::objects::from_config(&config.storage.object_store)
                    .map_err(|e| StartupError::Checkpoints(e.to_string()))?;
                Some(carapulse_core::audit::CheckpointSink::new(objects, key))
            }
            None => {
                tracing::warn!("storage.audit_checkpoint_key is unset: no audit checkpoints are published, so deleting the newest audit events would go unnoticed");
                None
            }
        };
        let state = AppState {
            checkpoints,
            audit: AuditWriter::spawn(store.clone()),
            plans: carapulse_core::store::PlanWriter::spawn(store.clone()),
            approvals: carapulse_core::store::ApprovalWriter::spawn(store.clone()),
            decisions: carapulse_core::store::DecisionLog::spawn(store.clone()),
            store,
            policy: Arc::new(crate::policy_store::LoadedPolicy::new(
                policy,
                config.policy.policy_dir.clone().into(),
                config.policy.policy_package.clone(),
            )),
            verifier: Arc::new(verifier),
            dispatcher,
            metrics,
            limiter: Arc::new(limiter),
            refusals: Arc::new(crate::audit_throttle::AuditThrottle::default()),
            streams: Arc::new(carapulse_http::serve::Slots::default()),
            planning,
            events: crate::events::EventHub::new(),
            shutdown: CancellationToken::new(),
            alert_queue,
            context,
            started_at: chrono::Utc::now(),
            config: Arc::new(config),
        };
        let state_shutdown = state.shutdown.clone();
        let linear = LinearWatcher::from_config(&state.config.connectors.linear)
            .transpose()?
            .map(Arc::new);
        Ok(Self {
            listener,
            local_addr,
            ui,
            state,
            linear,
            alert_rx: std::sync::Mutex::new(Some(alert_rx)),
            shutdown: state_shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Port of the web UI listener, when `gateway.ws_addr` (or `canvas_addr`) is set.
    pub fn ui_port(&self) -> Option<u16> {
        self.ui.as_ref().map(|(_, addr)| addr.port())
    }

    /// Cancel this token to stop the server gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Starts the approval-expiry sweeper and, when configured, the Linear watcher.
    fn spawn_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(
            self.state
                .events
                .clone()
                .run(self.state.store.pool().clone(), self.shutdown.clone()),
        ));
        let taken = self
            .alert_rx
            .lock()
            .map(|mut slot| slot.take())
            .unwrap_or(None);
        if let Some(rx) = taken {
            tasks.push(tokio::spawn(crate::background::event_loop::run(
                self.state.clone(),
                rx,
                self.shutdown.clone(),
            )));
        }
        tasks.push(tokio::spawn(reload_policy_on_sighup(
            self.state.clone(),
            self.shutdown.clone(),
        )));
        if let Some(context) = self.state.context.clone() {
            tasks.push(tokio::spawn(context.run(self.shutdown.clone())));
        }
        let state = self.state.clone();
        let every = Duration::from_secs(state.config.approvals.sweep_interval_secs.max(1));
        tasks.push(tokio::spawn(run_every(
            "approval-expiry",
            every,
            self.shutdown.clone(),
            move || {
                let state = state.clone();
                async move { expiry::sweep(&state).await.map(|_| ()) }
            },
        )));
        let every = self.state.config.storage.audit_checkpoint_interval_secs;
        if self.state.checkpoints.is_some() && every > 0 {
            let state = self.state.clone();
            tasks.push(tokio::spawn(run_every(
                "audit-checkpoints",
                Duration::from_secs(every),
                self.shutdown.clone(),
                move || {
                    let state = state.clone();
                    async move {
                        crate::background::checkpoints::publish_all(&state)
                            .await
                            .map(|_| ())
                    }
                },
            )));
        }
        let state = self.state.clone();
        tasks.push(tokio::spawn(run_every(
            "event-retention",
            Duration::from_secs(self.state.config.gateway.retention_interval_secs),
            self.shutdown.clone(),
            move || {
                let state = state.clone();
                async move { retention::prune(&state).await.map(|_| ()) }
            },
        )));
        if self.state.config.storage.workspace_dir.is_some()
            && !self.state.config.context.tenant_id.is_empty()
        {
            let state = self.state.clone();
            tasks.push(tokio::spawn(async move {
                match crate::workspace::load(&state).await {
                    Ok(r) => tracing::info!(added = r.added.len(), unchanged = r.unchanged, errors = ?r.errors, "workspace library loaded"),
                    Err(e) => tracing::warn!(error = %e, "workspace library not loaded"),
                }
            }));
        }
        if self.state.config.scheduler.enabled {
            let state = self.state.clone();
            tasks.push(tokio::spawn(run_every(
                "scheduler",
                Duration::from_secs(self.state.config.scheduler.poll_interval_secs.max(1)),
                self.shutdown.clone(),
                move || {
                    let state = state.clone();
                    async move { crate::background::scheduler::tick(&state).await.map(|_| ()) }
                },
            )));
        }
        if let Some(watcher) = self.linear.clone() {
            let state = self.state.clone();
            tasks.push(tokio::spawn(run_every(
                "linear-approvals",
                watcher.poll_interval(),
                self.shutdown.clone(),
                move || {
                    let state = state.clone();
                    let watcher = watcher.clone();
                    async move { watcher.tick(&state).await }
                },
            )));
        }
        tasks
    }

    /// Serves until the shutdown token fires; in-flight requests get `gateway.shutdown_grace_secs`.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let grace = Duration::from_secs(self.state.config.gateway.shutdown_grace_secs);
        let store = self.state.store.clone();
        let audit = self.state.audit.clone();
        let background = self.spawn_background();
        let gw = &self.state.config.gateway;
        let limits = carapulse_http::serve::ConnectionLimits {
            header_read_timeout: Duration::from_secs(gw.header_read_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(gw.idle_timeout_secs.max(1)),
            max_connections_per_peer: gw.max_connections_per_peer.max(1),
            shutdown_grace: grace,
        };
        let ui_server = self.ui.map(|(listener, addr)| {
            let app = crate::ui::router(&self.state.config.gateway)
                .merge(router(self.state.clone()))
                .layer(axum::Extension(crate::middleware::Listener::Ui));
            tracing::info!(%addr, "web UI listening");
            let token = self.shutdown.clone();
            tokio::spawn(carapulse_http::serve::serve(
                listener,
                app,
                limits,
                async move { token.cancelled().await },
            ))
        });
        let app = router(self.state);
        tracing::info!(addr = %self.local_addr, "gateway listening");
        let token = self.shutdown.clone();
        let result = carapulse_http::serve::serve(self.listener, app, limits, async move {
            token.cancelled().await;
            tracing::info!("shutdown requested; draining in-flight requests");
        })
        .await;
        if let Some(ui) = ui_server {
            // Same grace as the main listener: it was cancelled by the same token.
            if tokio::time::timeout(grace + Duration::from_secs(1), ui)
                .await
                .is_err()
            {
                tracing::warn!("web UI listener did not drain within the grace period");
            }
        }
        for task in background {
            let _ = task.await;
        }
        // Audit events of answered requests that were waiting to be batched commit now.
        audit.flush_soon().await;
        store.close().await;
        tracing::info!("gateway stopped");
        result
    }
}

/// The UI listener: `gateway.ws_addr`, else `gateway.canvas_addr` (the reference's name for it);
/// none when unset or equal to the API listener.
fn ui_addr(config: &Config) -> Result<Option<SocketAddr>, ConfigError> {
    let gw = &config.gateway;
    let Some(raw) = gw.ws_addr.as_deref().or(gw.canvas_addr.as_deref()) else {
        return Ok(None);
    };
    // Port 0 means "any free port", so two `:0` addresses are still two listeners.
    if raw.trim().is_empty() || (raw == gw.http_addr && !raw.ends_with(":0")) {
        return Ok(None);
    }
    let key = if gw.ws_addr.is_some() {
        "gateway.ws_addr"
    } else {
        "gateway.canvas_addr"
    };
    parse_listen_addr(key, raw).map(Some)
}

/// `kill -HUP <gateway>` reloads the policy directory, like `POST /v1/policy/reload`; a broken
/// directory is logged and the current policy stays.
async fn reload_policy_on_sighup(state: AppState, stop: CancellationToken) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload policy with POST /v1/policy/reload");
        return;
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            got = hup.recv() => {
                if got.is_none() {
                    return;
                }
                match state.policy.reload() {
                    Ok(done) => tracing::info!(generation = done.generation, files = ?done.files, "policy reloaded on SIGHUP"),
                    Err(err) => tracing::error!(error = %err, generation = state.policy.generation(), "policy reload on SIGHUP refused; the previous policy stays in force"),
                }
            }
        }
    }
}

/// Binds a listener and reads back its address (the port when `addr` asked for port 0).
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartupError> {
    let error = |source| StartupError::Bind {
        addr: addr.to_string(),
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(error)?;
    let local = listener.local_addr().map_err(error)?;
    Ok((listener, local))
}
