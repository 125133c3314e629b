//! Start-up helpers every binary shares: the `--config` flag, loading and validating the config,
//! and the shutdown signal.

use std::path::PathBuf;

use crate::config::{Component, Config, ConfigError};

/// The flag every long-running binary accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// Path to the shared JSON config file.
    #[arg(long, short = 'c', env = "CARAPULSE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
}

impl ConfigArgs {
    /// Loads and validates the config for `component`, logging its warnings.
    pub fn load(&self, component: Component) -> Result<Config, ConfigError> {
        let config = Config::load(self.config.as_deref())?;
        config.validate(component)?;
        for warning in config.warnings(component) {
            tracing::warn!(%warning, "configuration");
        }
        Ok(config)
    }
}

/// Resolves on SIGINT or SIGTERM: the one shutdown signal every service waits for.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
