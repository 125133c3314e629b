//! `sandbox-exec`: Carapulse sandbox-exec: runs one argv under an isolation policy and reports JSON.
//!
//! Not built yet: it loads and validates its configuration, then exits with code 3 and says what
//! is missing, instead of pretending to run.

use std::process::ExitCode;

use clap::Parser;

use carapulse_core::cli::{not_implemented, ConfigArgs};
use carapulse_core::config::Component;

/// Carapulse sandbox-exec: runs one argv under an isolation policy and reports JSON.
#[derive(Debug, Parser)]
#[command(name = "sandbox-exec", version, about)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// The command to run, after `--`.
    #[arg(last = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    carapulse_core::telemetry::init("sandbox-exec");
    let args = Args::parse();
    if let Err(err) = args.config.load(Component::SandboxExec) {
        eprintln!("sandbox-exec: {err}");
        return ExitCode::FAILURE;
    }
    let code = not_implemented(
        "sandbox-exec",
        "process isolation, limits and the JSON report",
    );
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
