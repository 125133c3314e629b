//! `tool-router`: Carapulse tool router: typed tool RPC over HTTP, run through sandbox-exec.
//!
//! Not built yet: it loads and validates its configuration, then exits with code 3 and says what
//! is missing, instead of pretending to run.

use std::process::ExitCode;

use clap::Parser;

use carapulse_core::cli::{not_implemented, ConfigArgs};
use carapulse_core::config::Component;

/// Carapulse tool router: typed tool RPC over HTTP, run through sandbox-exec.
#[derive(Debug, Parser)]
#[command(name = "tool-router", version, about)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
}

fn main() -> ExitCode {
    carapulse_core::telemetry::init("tool-router");
    let args = Args::parse();
    if let Err(err) = args.config.load(Component::ToolRouter) {
        eprintln!("tool-router: {err}");
        return ExitCode::FAILURE;
    }
    let code = not_implemented(
        "tool-router",
        "the tool catalogue, router API and sandboxed execution",
    );
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
