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

/// The process arguments, with the Go binaries' single-dash `-config PATH` (or `-config=PATH`)
/// rewritten to `--config`, and a notice on stderr when it was used: deployments written for the
/// Go version start unchanged.
pub fn args_accepting_go_config() -> Vec<std::ffi::OsString> {
    let (args, rewritten) = rewrite_go_config(std::env::args_os().collect());
    if rewritten {
        eprintln!("warning: -config is deprecated; use --config (or CARAPULSE_CONFIG)");
    }
    args
}

fn rewrite_go_config(args: Vec<std::ffi::OsString>) -> (Vec<std::ffi::OsString>, bool) {
    let mut rewritten = false;
    let out = args
        .into_iter()
        .map(|arg| match arg.to_str() {
            Some("-config") => {
                rewritten = true;
                "--config".into()
            }
            Some(a) if a.starts_with("-config=") => {
                rewritten = true;
                format!("-{a}").into()
            }
            _ => arg,
        })
        .collect();
    (out, rewritten)
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

/// Turns off backtraces for library errors unless `RUST_LIB_BACKTRACE` says otherwise; panics
/// keep theirs (`RUST_BACKTRACE`). Call it first thing in `main`, before any thread starts.
///
/// Why: with `RUST_BACKTRACE=1` (a common setting for debugging panics) every `anyhow` error
/// and `Backtrace::capture` walks and resolves the stack. regorus's Rego parser builds and drops
/// such an error at each point where it backtracks, so compiling a policy — a what-if with a new
/// candidate, a reload — spent about a third of its time capturing stacks nobody reads. This
/// project's own errors never show a backtrace.
pub fn library_backtraces_off() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: called before the process starts any thread (see above), so nothing reads
        // the environment concurrently.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}

#[cfg(test)]
mod tests {
    use super::rewrite_go_config;

    #[test]
    fn go_single_dash_config_becomes_the_long_flag() {
        let os = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(
            rewrite_go_config(os(&["gateway", "-config", "/etc/c.json"])),
            (os(&["gateway", "--config", "/etc/c.json"]), true)
        );
        assert_eq!(
            rewrite_go_config(os(&["gateway", "-config=/etc/c.json"])),
            (os(&["gateway", "--config=/etc/c.json"]), true)
        );
        let current = os(&["gateway", "--config", "x", "-c", "y"]);
        assert_eq!(rewrite_go_config(current.clone()), (current, false));
    }
}
