//! `assistantctl`: the Carapulse command-line client.
//!
//! Talks to the gateway (`--url`/`CARAPULSE_URL`, `--token`/`CARAPULSE_TOKEN`), prints tables or
//! `--output json`, and exits with codes scripts can rely on (see [`client::exit`]).

mod client;
mod commands;
mod config_convert;
mod go_compat;
mod import_go;
mod jobs;
mod llm_auth;
mod output;
mod progress;
mod replay;
mod resources;
mod spinner;
mod yaml;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use client::exit;
use output::OutputFormat;

const EXIT_CODES: &str =
    "Exit codes: 0 ok, 1 local error, 2 usage error, 3 API rejected the request (4xx), \
4 API failed (5xx), 5 network error, 6 verification failed.";

/// Carapulse CLI: plans, approvals, executions, workflows, audit, policy and model credentials.
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
    /// List approvals: pending plans, or recorded decisions.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// Inspect, wait for and cancel executions.
    #[command(subcommand)]
    Exec(ExecCommand),
    /// The workflow catalogue: list templates, start one.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Model credentials for the LLM planner.
    #[command(subcommand)]
    Llm(LlmCommand),
    /// The service graph: services, a service's neighbourhood, snapshots, refresh.
    #[command(subcommand)]
    Context(ContextCommand),
    /// Sessions and their members.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Cron schedules that start workflows or plan intents.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Alert playbooks (versioned).
    #[command(subcommand)]
    Playbook(DocCommand),
    /// Runbooks per service (versioned).
    #[command(subcommand)]
    Runbook(DocCommand),
    /// Operator memory notes fed to the planner.
    #[command(subcommand)]
    Memory(MemoryCommand),
    /// Follow change events (SSE) until interrupted.
    Events {
        /// Comma-separated kinds (plan.updated, execution.updated, approval.updated, audit.created, alert.received).
        #[arg(long)]
        kinds: Option<String>,
        #[arg(long)]
        plan: Option<String>,
        #[arg(long)]
        execution: Option<String>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
    },
    /// Query, verify and export the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Evaluate policy locally.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Apply database migrations (uses storage.postgres_dsn or --dsn).
    Migrate(MigrateArgs),
    /// Configuration files (offline).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Import a Go Carapulse database (plans, steps, approvals, executions, tool calls,
    /// evidence, sessions, schedules, playbooks, runbooks, memory, context, audit events) into
    /// storage.postgres_dsn (or --dsn). Idempotent and resumable; prints what it skipped.
    ImportGo(ImportGoArgs),
    /// Replay recorded incidents under the current or a candidate policy, playbooks and
    /// planner, without side effects; a progress bar, then a summary table.
    #[command(subcommand)]
    Replay(ReplayCommand),
    /// Check the gateway's liveness and readiness.
    Health,
    /// Versions and the state of every dependency (database, Temporal, tool router, policy,
    /// planner); says so loudly when the tool router runs demo CLIs.
    Diagnostics,
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct ImportGoArgs {
    /// The Go database (postgres://...).
    #[arg(long, value_name = "DSN")]
    pub from: String,
    /// The target database, instead of storage.postgres_dsn.
    #[arg(long, value_name = "DSN")]
    pub dsn: Option<String>,
    /// The tenant of records that name none (Go kept most records without one).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Read and map everything, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Rows per transaction.
    #[arg(long, default_value_t = 500)]
    pub batch_size: i64,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Convert a Go Carapulse config file: the new file on stdout (or --out), every change and
    /// every decision left to you on stderr.
    Convert(ConvertArgs),
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The Go config file.
    #[arg(long = "from-go", value_name = "OLD.json")]
    pub from_go: PathBuf,
    /// Write the new file here (mode 0600: it holds generated secrets) instead of stdout.
    #[arg(long, value_name = "NEW.json")]
    pub out: Option<PathBuf>,
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
// Parsed once per invocation: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum PlanCommand {
    /// Create a plan.
    Create(PlanCreateArgs),
    /// Show one plan with its steps.
    Get { plan_id: String },
    /// List plans.
    List(PlanListArgs),
    /// The plan's risk: stored level, the assessment recomputed from its steps, each step's class.
    Risk { plan_id: String },
    /// Withdraw a plan that never ran (its creator or an admin).
    Delete { plan_id: String },
    /// Revise a plan that is not running (new steps, summary, intent, constraints, or --replan);
    /// earlier approvals are superseded and policy decides again. Prints what changed.
    Revise(PlanReviseArgs),
    /// The plan's revisions, oldest first.
    Revisions { plan_id: String },
    /// What changed between two revisions (default: the current one and the one before).
    Diff {
        plan_id: String,
        #[arg(long)]
        from: Option<u32>,
        #[arg(long)]
        to: Option<u32>,
    },
    /// Execute an approved (or approval-free) plan.
    Execute {
        plan_id: String,
        /// Assert break-glass with this reason (X-Break-Glass + X-Break-Glass-Reason; needed for
        /// high-risk plans and a role from gateway.break_glass_roles).
        #[arg(long, value_name = "REASON")]
        break_glass: Option<String>,
        /// Wait until the execution ends (spinner on a terminal); exit 6 unless it succeeded.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 3600)]
        wait_timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// List pending approvals (default) or decisions (--status approved|denied|expired).
    List {
        #[arg(long, default_value = "pending")]
        status: String,
        #[arg(long)]
        plan: Option<String>,
        #[arg(long)]
        source: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// List the catalogue with each input schema's fields.
    List,
    /// Start a workflow: creates a plan through policy and approval like any other.
    Start(WorkflowStartArgs),
}

#[derive(Debug, Args)]
pub struct WorkflowStartArgs {
    pub name: String,
    /// Input as a JSON object, or @file.
    #[arg(long)]
    pub input: String,
    #[arg(long = "env")]
    pub environment: String,
    #[arg(long)]
    pub namespace: Option<String>,
    #[arg(long)]
    pub cluster: Option<String>,
    #[arg(long)]
    pub summary: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        group: Option<String>,
        /// Member actor ids; repeatable.
        #[arg(long = "member")]
        members: Vec<String>,
    },
    /// Your sessions (admins: --all).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        group: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    Get {
        id: String,
    },
    /// Rename, regroup or re-describe a session (owners).
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// A group name; `--no-group` takes the session out of its group.
        #[arg(long, conflicts_with = "no_group")]
        group: Option<String>,
        #[arg(long)]
        no_group: bool,
        /// Metadata as a JSON object, or @file.
        #[arg(long)]
        metadata: Option<String>,
    },
    /// Delete a session (owners; refused while its plans have executions running).
    Delete {
        id: String,
    },
    AddMember {
        id: String,
        member: String,
        #[arg(long, default_value = "member")]
        role: String,
    },
    RemoveMember {
        id: String,
        member: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    Create(ScheduleArgs),
    List {
        #[arg(long)]
        enabled: Option<bool>,
        #[command(flatten)]
        page: PageArgs,
    },
    Get {
        id: String,
    },
    Delete {
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    #[arg(long)]
    pub summary: String,
    /// Five-field cron: minute hour day-of-month month day-of-week (the gateway's
    /// scheduler.default_cron when left out).
    #[arg(long)]
    pub cron: Option<String>,
    #[arg(long, default_value = "UTC")]
    pub timezone: String,
    /// A catalogue workflow to start (with --input), or ...
    #[arg(long, requires = "input")]
    pub workflow: Option<String>,
    /// Workflow input as JSON or @file.
    #[arg(long)]
    pub input: Option<String>,
    /// ... an intent to plan.
    #[arg(long, conflicts_with = "workflow")]
    pub intent: Option<String>,
    #[arg(long = "env")]
    pub environment: String,
    #[arg(long)]
    pub namespace: Option<String>,
    /// skip (default) or run_once.
    #[arg(long, default_value = "skip")]
    pub missed: String,
    #[arg(long)]
    pub disabled: bool,
}

#[derive(Debug, Subcommand)]
pub enum DocCommand {
    List {
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// One document with its versions.
    Get {
        id: String,
    },
    /// Create (or, for an existing name, add a version).
    Create {
        #[arg(long)]
        name: String,
        /// Runbooks only.
        #[arg(long)]
        service: Option<String>,
        /// Spec as JSON or @file (playbooks: {alertname, match_labels, workflow, input}).
        #[arg(long)]
        spec: Option<String>,
        /// Runbook text, or @file.
        #[arg(long)]
        body: Option<String>,
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Store a new version of the document `id`.
    Update {
        id: String,
        #[arg(long)]
        spec: Option<String>,
        #[arg(long)]
        body: Option<String>,
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    Delete {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MemoryCommand {
    List {
        /// Text search in titles and bodies.
        #[arg(long)]
        q: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    Add {
        #[arg(long)]
        title: String,
        /// Text, or @file.
        #[arg(long)]
        body: String,
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    Get {
        id: String,
    },
    Delete {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// List services.
    Services {
        #[command(flatten)]
        page: PageArgs,
    },
    /// A service's neighbourhood.
    Graph {
        service: String,
        #[arg(long, default_value_t = 2)]
        depth: u32,
    },
    /// Stored snapshots, or one with --id.
    Snapshots {
        #[arg(long)]
        id: Option<String>,
    },
    /// Run the collectors now and show each one's result.
    Refresh,
}

#[derive(Debug, Subcommand)]
pub enum LlmCommand {
    /// Stored model credentials.
    #[command(subcommand)]
    Auth(LlmAuthCommand),
}

#[derive(Debug, Subcommand)]
pub enum LlmAuthCommand {
    /// Import a credential: from the Codex CLI (default), an OpenClaw file, or a given token.
    Import(LlmImportArgs),
    /// Run `codex login`, then import its credential.
    Login {
        /// The Codex CLI binary.
        #[arg(long, default_value = "codex")]
        codex_bin: String,
        #[arg(long)]
        codex_auth: Option<PathBuf>,
        #[arg(long)]
        auth_path: Option<PathBuf>,
        #[arg(long)]
        profile_id: Option<String>,
        /// Do not make this profile the provider's default.
        #[arg(long)]
        no_default: bool,
    },
    /// List stored profiles (never the tokens).
    List {
        #[arg(long)]
        auth_path: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct LlmImportArgs {
    #[arg(long, default_value = "openai-codex")]
    pub provider: String,
    /// The Codex CLI's auth.json (default $CODEX_HOME/auth.json or ~/.codex/auth.json).
    #[arg(long, conflicts_with_all = ["openclaw_auth", "access_token"])]
    pub codex_auth: Option<PathBuf>,
    /// An OpenClaw auth-profiles.json.
    #[arg(long, conflicts_with = "access_token")]
    pub openclaw_auth: Option<PathBuf>,
    /// A token given directly (prefer the env var to keep it out of shell history).
    #[arg(long, env = "CARAPULSE_IMPORT_ACCESS_TOKEN", hide_env_values = true)]
    pub access_token: Option<String>,
    #[arg(long)]
    pub account_id: Option<String>,
    /// RFC 3339 expiry of --access-token.
    #[arg(long)]
    pub expires_at: Option<String>,
    /// Target file (default ~/.carapulse/auth-profiles.json).
    #[arg(long)]
    pub auth_path: Option<PathBuf>,
    /// Id to store the profile under.
    #[arg(long)]
    pub profile_id: Option<String>,
    /// Do not make this profile the provider's default.
    #[arg(long)]
    pub no_default: bool,
}

#[derive(Debug, Args)]
pub struct PlanReviseArgs {
    pub plan_id: String,
    #[arg(long)]
    pub summary: Option<String>,
    #[arg(long)]
    pub intent: Option<String>,
    /// JSON file holding the new steps (all of them, in order).
    #[arg(long, conflicts_with = "replan")]
    pub steps_file: Option<PathBuf>,
    /// One step as JSON; repeatable (all of them, in order).
    #[arg(long = "step", conflicts_with = "replan")]
    pub steps: Vec<String>,
    /// Constraints as a JSON object (replacing the current ones).
    #[arg(long)]
    pub constraints: Option<String>,
    /// Plan again from the intent with fresh context.
    #[arg(long)]
    pub replan: bool,
    /// Why (kept with the revision).
    #[arg(long)]
    pub note: Option<String>,
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
    /// Assert break-glass with this reason (lets the planner use break-glass actions).
    #[arg(long, value_name = "REASON")]
    pub break_glass: Option<String>,
}

#[derive(Debug, Args)]
pub struct PlanListArgs {
    #[arg(long)]
    pub state: Option<String>,
    #[arg(long)]
    pub risk: Option<String>,
    /// Only plans created by this trigger: manual, alert, schedule, slack, ...
    #[arg(long)]
    pub trigger: Option<String>,
    #[command(flatten)]
    pub page: PageArgs,
}

/// Paging flags shared by every list.
#[derive(Debug, Clone, Default, Args)]
pub struct PageArgs {
    /// Rows per page (at most 200).
    #[arg(long)]
    pub limit: Option<i64>,
    /// Skip this many rows (at most 10000; deeper pages follow --cursor).
    #[arg(long, conflicts_with = "cursor")]
    pub offset: Option<i64>,
    /// Start after the page that printed this cursor.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Also report how many rows match: `exact` (count(*)) or `estimate` (query planner).
    #[arg(long, value_parser = ["exact", "estimate"])]
    pub count: Option<String>,
    /// Follow cursors and print every page (stops after 100 pages).
    #[arg(long, conflicts_with = "offset")]
    pub all_pages: bool,
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
        #[command(flatten)]
        page: PageArgs,
    },
    /// Wait until an execution ends; exit 6 unless it succeeded.
    Wait {
        execution_id: String,
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
    },
    /// Cancel a running execution (its compensation runs).
    Cancel { execution_id: String },
    /// Answer an inconclusive analysis the execution waits on: `continue` (needs an approver
    /// role) or `rollback`.
    Decide {
        execution_id: String,
        #[arg(value_parser = ["continue", "rollback"])]
        decision: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Tool output of an execution: what was written so far, then (with --follow) live lines
    /// until the execution ends.
    Logs {
        execution_id: String,
        #[arg(long, short = 'f')]
        follow: bool,
        #[arg(long)]
        tool_call_id: Option<String>,
        /// Only lines of this level (info, warn).
        #[arg(long)]
        level: Option<String>,
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
    #[command(flatten)]
    pub page: PageArgs,
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
    /// What the loaded policy and a candidate (the .rego files of --dir, over the loaded ones)
    /// decide about a stored plan and each of its steps, side by side, with the rules behind.
    Whatif {
        #[arg(long = "plan")]
        plan_id: String,
        /// Directory of candidate .rego files (each replaces the loaded file of its name or is
        /// added); without it, the loaded policy alone.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Re-run the tenant's stored decisions of a window under a candidate (--dir of .rego
    /// files over the loaded ones): what would change, by transition, action and environment.
    Impact {
        #[arg(long)]
        dir: PathBuf,
        /// RFC 3339 or an age: 7d, 24h, 30m.
        #[arg(long, default_value = "7d")]
        since: String,
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 10_000)]
        limit: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReplayCommand {
    /// Replay a plan, an alert event, or the alert events of a window (at most 500).
    Run(ReplayRunArgs),
    /// A replay's summary and incidents.
    Get {
        replay_id: String,
        /// Only the incidents whose outcome changed.
        #[arg(long)]
        changed: bool,
    },
    /// The tenant's replays, newest first.
    List,
}

#[derive(Debug, Args)]
pub struct ReplayRunArgs {
    /// A plan to replay.
    #[arg(long, conflicts_with_all = ["alert", "since"])]
    pub plan: Option<String>,
    /// An alert event to replay (each plan born from it).
    #[arg(long, conflicts_with = "since")]
    pub alert: Option<String>,
    /// Start of a window of alert events: RFC 3339 or an age (7d, 24h, 30m).
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long, requires = "since")]
    pub until: Option<String>,
    /// recorded (the recorded answer), rules, or current.
    #[arg(long, default_value = "recorded")]
    pub planner: String,
    /// A directory of candidate .rego files (over the loaded policy).
    #[arg(long)]
    pub policy_dir: Option<PathBuf>,
    /// A JSON file with an array of candidate playbooks (`{name, alertname, match_labels,
    /// workflow, input}`), in matching order.
    #[arg(long)]
    pub playbooks: Option<PathBuf>,
    /// List only the incidents whose outcome changed.
    #[arg(long)]
    pub changed: bool,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Postgres DSN (overrides the config).
    #[arg(long, env = "CARAPULSE_POSTGRES_DSN", hide_env_values = true)]
    pub dsn: Option<String>,
}

fn main() -> ExitCode {
    carapulse_core::cli::library_backtraces_off();
    main_async()
}

#[tokio::main]
async fn main_async() -> ExitCode {
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The Go CLI's spellings are rewritten (with a notice); a non-UTF-8 argument skips that.
    let cli = match raw
        .iter()
        .map(|a| a.to_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()
    {
        Some(args) => {
            let (args, notices) = go_compat::rewrite(args);
            for notice in notices {
                eprintln!("warning: {notice}");
            }
            Cli::parse_from(args)
        }
        None => Cli::parse_from(raw),
    };
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
