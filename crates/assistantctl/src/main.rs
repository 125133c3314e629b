//! `assistantctl`: the Carapulse command-line client.
//!
//! Talks to the gateway (`--url`/`CARAPULSE_URL`, `--token`/`CARAPULSE_TOKEN`), prints tables or
//! `--output json`, and exits with codes scripts can rely on (see [`client::exit`]).

mod client;
mod commands;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use client::exit;
use output::OutputFormat;

const EXIT_CODES: &str =
    "Exit codes: 0 ok, 1 local error, 2 usage error, 3 API rejected the request (4xx), \
4 API failed (5xx), 5 network error, 6 verification failed.";

/// Carapulse CLI: plans, approvals, executions, audit and policy.
#[derive(Debug, Parser)]
#[command(name = "assistantctl", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Gateway base URL.
    #[arg(
        long,
        global = true,
        env = "CARAPULSE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// Bearer token.
    #[arg(long, global = true, env = "CARAPULSE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value = "table")]
    pub output: OutputFormat,
    /// Shared config file (for dev-token, migrate and policy test).
    #[arg(long, short = 'c', global = true, env = "CARAPULSE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Request timeout in seconds.
    #[arg(long, global = true, default_value_t = 30)]
    pub timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mint an HS256 dev token from the config's dev secret (dev mode only).
    DevToken(DevTokenArgs),
    /// Create, inspect, list and execute plans.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Approve (or with --deny, deny) a plan.
    Approve(ApproveArgs),
    /// Inspect executions.
    #[command(subcommand)]
    Exec(ExecCommand),
    /// Query, verify and export the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Evaluate policy locally.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Apply database migrations (uses storage.postgres_dsn or --dsn).
    Migrate(MigrateArgs),
    /// Check the gateway's liveness and readiness.
    Health,
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct DevTokenArgs {
    #[arg(long)]
    pub sub: String,
    #[arg(long)]
    pub tenant: String,
    /// Comma-separated roles.
    #[arg(long, value_delimiter = ',', default_value = "operator")]
    pub roles: Vec<String>,
    #[arg(long)]
    pub email: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 8 * 3600)]
    pub ttl: i64,
}

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Create a plan.
    Create(PlanCreateArgs),
    /// Show one plan with its steps.
    Get { plan_id: String },
    /// List plans.
    List(PlanListArgs),
    /// Execute an approved (or approval-free) plan.
    Execute {
        plan_id: String,
        /// Send X-Break-Glass: true (needed for high-risk plans).
        #[arg(long)]
        break_glass: bool,
    },
}

#[derive(Debug, Args)]
pub struct PlanCreateArgs {
    #[arg(long)]
    pub summary: String,
    #[arg(long, default_value = "")]
    pub intent: String,
    #[arg(long = "env")]
    pub environment: String,
    #[arg(long)]
    pub namespace: Option<String>,
    #[arg(long)]
    pub cluster: Option<String>,
    #[arg(long)]
    pub region: Option<String>,
    #[arg(long, default_value = "manual")]
    pub trigger: String,
    /// JSON file holding an array of steps.
    #[arg(long)]
    pub steps_file: Option<PathBuf>,
    /// One step as JSON; repeatable.
    #[arg(long = "step")]
    pub steps: Vec<String>,
    /// Constraints as a JSON object.
    #[arg(long)]
    pub constraints: Option<String>,
    #[arg(long)]
    pub session: Option<String>,
    #[arg(long)]
    pub break_glass: bool,
}

#[derive(Debug, Args)]
pub struct PlanListArgs {
    #[arg(long)]
    pub state: Option<String>,
    #[arg(long)]
    pub risk: Option<String>,
    #[arg(long)]
    pub limit: Option<i64>,
    #[arg(long)]
    pub offset: Option<i64>,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    pub plan_id: String,
    /// Deny instead of approve.
    #[arg(long)]
    pub deny: bool,
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ExecCommand {
    /// Show one execution with its tool calls and evidence.
    Get { execution_id: String },
    /// List executions.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        plan: Option<String>,
        #[arg(long)]
        limit: Option<i64>,
        #[arg(long)]
        offset: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events, newest first.
    List(AuditListArgs),
    /// Verify the tenant's hash chain (exit 6 when broken).
    Verify,
    /// Export events as JSON or CSV.
    Export {
        #[arg(long, default_value = "json")]
        format: String,
        /// Write to this file instead of stdout.
        #[arg(long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        filter: AuditListArgs,
    },
}

#[derive(Debug, Args)]
pub struct AuditListArgs {
    #[arg(long)]
    pub from: Option<String>,
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long)]
    pub actor: Option<String>,
    #[arg(long)]
    pub action: Option<String>,
    #[arg(long)]
    pub decision: Option<String>,
    #[arg(long)]
    pub limit: Option<i64>,
    #[arg(long)]
    pub offset: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Evaluate an input document against the policies and print decision, constraints, ttl.
    Test {
        #[arg(long)]
        input: PathBuf,
        /// Policy directory (default: policy.policy_dir from the config, else ./policies).
        #[arg(long)]
        policy_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Postgres DSN (overrides the config).
    #[arg(long, env = "CARAPULSE_POSTGRES_DSN", hide_env_values = true)]
    pub dsn: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = &cli.command {
        clap_complete::generate(
            *shell,
            &mut Cli::command(),
            "assistantctl",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    match commands::run(cli).await {
        Ok(()) => ExitCode::from(exit::OK as u8),
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
