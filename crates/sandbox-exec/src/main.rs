//! `sandbox-exec [--policy FILE] [flags] -- PROGRAM [ARGS...]`: runs one argv under a policy and
//! prints a JSON report. Flags override the policy file; with neither, the defaults are strict
//! (scrubbed environment, 60 s timeout, no egress).
//!
//! Exit code: the command's own exit code; 124 when it timed out; 128+N when killed by signal N;
//! 125 when the sandbox could not run it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use carapulse_core::redact::Redactor;
use sandbox_exec::{run, SandboxPolicy};

#[derive(Debug, Parser)]
#[command(
    name = "sandbox-exec",
    version,
    about = "Run one argv isolated and report JSON"
)]
struct Args {
    /// JSON policy file (keys of SandboxPolicy).
    #[arg(long)]
    policy: Option<PathBuf>,
    #[arg(long)]
    timeout_ms: Option<u64>,
    #[arg(long)]
    cpu_seconds: Option<u64>,
    #[arg(long)]
    memory_mb: Option<u64>,
    #[arg(long)]
    max_processes: Option<u64>,
    #[arg(long)]
    max_output_bytes: Option<usize>,
    /// Pass this parent environment variable through (repeatable).
    #[arg(long = "env-allow")]
    env_allow: Vec<String>,
    /// Allow egress to HOST:PORT through the proxy (repeatable).
    #[arg(long = "allow-egress")]
    allow_egress: Vec<String>,
    /// Do not try to unshare namespaces.
    #[arg(long)]
    no_namespaces: bool,
    /// Extra redaction regex (repeatable).
    #[arg(long = "redact")]
    redact: Vec<String>,
    /// The command, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

const EXIT_SANDBOX_ERROR: u8 = 125;
const EXIT_TIMEOUT: u8 = 124;

fn main() -> ExitCode {
    // The tool router's per-run helper mode (see helper.rs): one JSON request on stdin.
    if std::env::args().nth(1).as_deref() == Some(sandbox_exec::SERVE_ONE) {
        return ExitCode::from(sandbox_exec::serve_one());
    }
    let args = Args::parse();
    match execute(args) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("sandbox-exec: {err:#}");
            ExitCode::from(EXIT_SANDBOX_ERROR)
        }
    }
}

fn execute(args: Args) -> anyhow::Result<u8> {
    let mut policy = match &args.policy {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            serde_json::from_str::<SandboxPolicy>(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => SandboxPolicy::default(),
    };
    if let Some(v) = args.timeout_ms {
        policy.timeout_ms = v;
    }
    if args.cpu_seconds.is_some() {
        policy.cpu_seconds = args.cpu_seconds;
    }
    if args.memory_mb.is_some() {
        policy.memory_mb = args.memory_mb;
    }
    if args.max_processes.is_some() {
        policy.max_processes = args.max_processes;
    }
    if let Some(v) = args.max_output_bytes {
        policy.max_output_bytes = v;
    }
    policy.env_allow.extend(args.env_allow);
    policy.allow_egress.extend(args.allow_egress);
    if args.no_namespaces {
        policy.namespaces = false;
    }
    let redactor = Redactor::new(&args.redact)?;
    let report = run(&args.command, &policy, &redactor, None)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.timed_out {
        EXIT_TIMEOUT
    } else if let Some(code) = report.exit_code {
        u8::try_from(code).unwrap_or(1)
    } else if let Some(sig) = report.signal {
        u8::try_from(128 + sig).unwrap_or(137)
    } else {
        1
    })
}
