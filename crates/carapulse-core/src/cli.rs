//! Start-up helpers every binary shares: the `--config` flag, loading and validating the config,
//! and the honest exit of a binary whose job is not built yet.

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

/// Exit code of a binary asked to do something it cannot do yet.
pub const EXIT_NOT_IMPLEMENTED: i32 = 3;

/// Logs what is missing and returns the exit code to use, so an unfinished service never
/// pretends to run.
pub fn not_implemented(service: &str, missing: &str) -> i32 {
    tracing::error!(
        service,
        missing,
        "this service is not implemented yet; exiting"
    );
    eprintln!("{service}: not implemented yet: {missing}");
    EXIT_NOT_IMPLEMENTED
}
