//! `agent`: Carapulse agent: the Slack ChatOps bridge.
//!
//! Not built yet: it loads and validates its configuration, then exits with code 3 and says what
//! is missing, instead of pretending to run.

use std::process::ExitCode;

use clap::Parser;

use carapulse_core::cli::{not_implemented, ConfigArgs};
use carapulse_core::config::Component;

/// Carapulse agent: the Slack ChatOps bridge.
#[derive(Debug, Parser)]
#[command(name = "agent", version, about)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
}

fn main() -> ExitCode {
    carapulse_core::telemetry::init("agent");
    let args = Args::parse();
    if let Err(err) = args.config.load(Component::Agent) {
        eprintln!("agent: {err}");
        return ExitCode::FAILURE;
    }
    let code = not_implemented("agent", "the Slack command and interaction handlers");
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
