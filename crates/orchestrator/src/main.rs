//! `orchestrator`: Carapulse orchestrator: the Temporal worker that runs plan-execute-verify workflows.
//!
//! Not built yet: it loads and validates its configuration, then exits with code 3 and says what
//! is missing, instead of pretending to run.

use std::process::ExitCode;

use clap::Parser;

use carapulse_core::cli::{not_implemented, ConfigArgs};
use carapulse_core::config::Component;

/// Carapulse orchestrator: the Temporal worker that runs plan-execute-verify workflows.
#[derive(Debug, Parser)]
#[command(name = "orchestrator", version, about)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
}

fn main() -> ExitCode {
    carapulse_core::telemetry::init("orchestrator");
    let args = Args::parse();
    if let Err(err) = args.config.load(Component::Orchestrator) {
        eprintln!("orchestrator: {err}");
        return ExitCode::FAILURE;
    }
    let code = not_implemented("orchestrator", "the Temporal worker and workflows");
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
