//! Executing one tool action: validate, authorise, then CLI first through the sandbox, API as
//! fallback; redact; store large output; stream lines.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::Instrument;

use carapulse_core::config::SandboxConfig;
use carapulse_core::model::{ContextRef, Decision, ModelError, TenantId, ToolName};
use carapulse_core::policy::{assess_steps, ActionType, PolicyInput, StepRef};
use carapulse_core::store::DecisionRecord;
use carapulse_core::tools::{find, ActionSpec, HttpMethod, ToolInput};
use sandbox_exec::{isolation_available, LineSink, SandboxPolicy, StreamKind};

use crate::state::RouterState;
use carapulse_core::grant::{call_digest, verify as verify_grant, GrantError};

/// Output kept inline in the response; the full output goes to the object store beyond this.
pub const INLINE_OUTPUT_BYTES: usize = 64 * 1024;

/// Body of `POST /v1/tools/execute`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    #[serde(default)]
    pub tool_name: String,
    /// The Go version's name for `tool_name`: accepted, answered with a deprecation notice.
    #[serde(default)]
    pub tool: Option<String>,
    pub action: String,
    #[serde(default)]
    pub input: Value,
    #[serde(default)]
    pub context: ContextRef,
    #[serde(default)]
    pub execution_id: Option<String>,
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// What ran and what came out.
#[derive(Debug, Clone, Serialize)]
pub struct ExecuteResponse {
    pub tool_call_id: String,
    pub status: &'static str,
    pub exit_code: Option<i32>,
    pub http_status: Option<u16>,
    pub output: String,
    pub stderr: String,
    pub output_truncated: bool,
    pub output_ref: Option<String>,
    pub used: &'static str,
    pub duration_ms: u64,
    pub timed_out: bool,
    pub sandbox: Option<Value>,
    /// The output parsed as JSON, when the tool answered JSON and nothing was cut off. Callers
    /// capture and judge from it; it is returned whole (the output cap bounds it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Where the result is kept when it is larger than the inline limit of a tool call row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_ref: Option<String>,
    /// A demo CLI ran (`tool_router.demo_cli_dir`, a recording fake): nothing real changed.
    pub demo: bool,
    /// Old spellings the request used (the Go version's), each naming the current one; the
    /// route also sends them as `Deprecation`/`Warning` headers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deprecations: Vec<String>,
    /// The policy decision of a write (redacted input and outcome): the router has no database,
    /// so the orchestrator keeps it for policy impact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_decision: Option<DecisionRecord>,
}

/// Why a call was refused or could not run.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{0}")]
    Invalid(ModelError),
    #[error("{0}")]
    Forbidden(String),
    /// Policy refused a write; the decision goes back to the caller to keep.
    #[error("{message}")]
    PolicyRefused {
        message: String,
        decision: Option<Box<DecisionRecord>>,
    },
    #[error("{0}")]
    BreakGlass(String),
    #[error("{0}")]
    Grant(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

fn invalid(field: &str, message: impl Into<String>) -> ExecError {
    ExecError::Invalid(ModelError::new(field, message))
}

/// The executable a CLI step runs.
struct ResolvedCli {
    path: PathBuf,
    /// Found in `tool_router.demo_cli_dir`: a recording fake, not the real tool.
    demo: bool,
}

/// Finds `name` in the demo CLI directory when one is configured, else on the router's PATH.
/// (The file itself is not resolved: a multi-call binary behind a symlink dispatches on the name
/// it was run as.)
fn resolve_cli(state: &RouterState, name: &str) -> Option<ResolvedCli> {
    let demo = state
        .demo_cli_dir
        .as_deref()
        .map(|dir| dir.join(name))
        .filter(|p| p.is_file() && is_executable(p));
    if let Some(path) = demo {
        return Some(ResolvedCli { path, demo: true });
    }
    which(name).map(|path| ResolvedCli { path, demo: false })
}

/// The stand-in CLIs of `tool_router.demo_cli_dir`, by name (empty when demo mode is off).
pub fn demo_clis(state: &RouterState) -> Vec<String> {
    let Some(dir) = state.demo_cli_dir.as_deref() else {
        return Vec::new();
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file() && is_executable(&e.path()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Finds `name` on the router's PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file() && is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// Host:port of a connector URL, for the egress allow-list.
fn host_port(addr: &str) -> Option<String> {
    let url = url::Url::parse(addr).ok()?;
    Some(format!(
        "{}:{}",
        url.host_str()?,
        url.port_or_known_default()?
    ))
}

/// The connector (base address, token) an API call of `tool` uses.
fn connector(state: &RouterState, tool: ToolName) -> (Option<String>, Option<String>) {
    let c = &state.config.connectors;
    match tool {
        ToolName::Aws => (c.aws.addr.clone(), c.aws.token.clone()),
        ToolName::Vault => (c.vault.addr.clone(), c.vault.token.clone()),
        ToolName::Boundary => (c.boundary.addr.clone(), c.boundary.token.clone()),
        ToolName::Argocd => (c.argocd.addr.clone(), c.argocd.token.clone()),
        ToolName::Prometheus => (c.prometheus.addr.clone(), c.prometheus.token.clone()),
        ToolName::Thanos => (c.thanos.addr.clone(), c.thanos.token.clone()),
        ToolName::Alertmanager => (c.alertmanager.addr.clone(), c.alertmanager.token.clone()),
        ToolName::Grafana => (c.grafana.addr.clone(), c.grafana.token.clone()),
        ToolName::Tempo => (c.tempo.addr.clone(), c.tempo.token.clone()),
        ToolName::Linear => (
            Some(c.linear.base_url.trim_end_matches("/graphql").to_owned()),
            c.linear.token.clone(),
        ),
        ToolName::Pagerduty => (c.pagerduty.addr.clone(), c.pagerduty.token.clone()),
        ToolName::Github => (c.github.addr.clone(), c.github.token.clone()),
        ToolName::Gitlab => (c.gitlab.addr.clone(), c.gitlab.token.clone()),
        ToolName::Kubectl | ToolName::Helm | ToolName::Git => (None, None),
    }
}

/// Parent variables a tool's CLI may see, and credentials injected for it.
fn tool_env(state: &RouterState, tool: ToolName) -> (Vec<String>, Vec<(String, String)>) {
    let c = &state.config.connectors;
    let mut allow: Vec<String> = Vec::new();
    let mut set: Vec<(String, String)> = Vec::new();
    let (addr, token) = connector(state, tool);
    match tool {
        ToolName::Kubectl | ToolName::Helm => {
            allow.push("KUBECONFIG".into());
            if let Some(path) = &c.k8s.kubeconfig_path {
                set.push(("KUBECONFIG".into(), path.clone()));
            }
        }
        ToolName::Aws => {
            for v in [
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
                "AWS_REGION",
                "AWS_DEFAULT_REGION",
                "AWS_PROFILE",
                "AWS_CONFIG_FILE",
                "AWS_SHARED_CREDENTIALS_FILE",
            ] {
                allow.push(v.into());
            }
            // connectors.aws.region: the default region (a step's own --region still wins).
            if let Some(region) = c.aws.region.as_deref().filter(|r| !r.trim().is_empty()) {
                set.push(("AWS_REGION".into(), region.to_owned()));
                set.push(("AWS_DEFAULT_REGION".into(), region.to_owned()));
            }
        }
        ToolName::Vault => {
            if let Some(a) = addr {
                set.push(("VAULT_ADDR".into(), a));
            }
            if let Some(t) = token {
                set.push(("VAULT_TOKEN".into(), t));
            }
            if let Some(ns) = &c.vault.namespace {
                set.push(("VAULT_NAMESPACE".into(), ns.clone()));
            }
        }
        ToolName::Boundary => {
            if let Some(a) = addr {
                set.push(("BOUNDARY_ADDR".into(), a));
            }
            if let Some(t) = token {
                set.push(("BOUNDARY_TOKEN".into(), t));
            }
        }
        ToolName::Argocd => {
            if let Some(a) = addr.as_deref().and_then(|a| url::Url::parse(a).ok()) {
                if let (Some(h), Some(p)) = (a.host_str(), a.port_or_known_default()) {
                    set.push(("ARGOCD_SERVER".into(), format!("{h}:{p}")));
                }
            }
            if let Some(t) = token {
                set.push(("ARGOCD_AUTH_TOKEN".into(), t));
            }
        }
        ToolName::Github => {
            if let Some(t) = token {
                set.push(("GH_TOKEN".into(), t));
            }
        }
        ToolName::Gitlab => {
            if let Some(t) = token {
                set.push(("GITLAB_TOKEN".into(), t));
            }
        }
        _ => {}
    }
    (allow, set)
}

/// What authorisation concluded about one call.
struct Authorised {
    /// Reads secret material: its output is masked and its lines are not streamed.
    sensitive: bool,
    /// The tool call id, bound by the grant (gated calls) or minted here (plain reads).
    tool_call_id: String,
    /// The policy decision of a write, for the caller to keep (policy impact).
    decision: Option<DecisionRecord>,
}

/// Authorises one call of a service principal.
///
/// Plain reads need only a valid tenant (the context collectors read without executions).
/// Writes and sensitive reads need an execution grant covering exactly this call (see
/// `carapulse_core::grant`); policy is then evaluated here again, with break-glass taken from
/// the grant, never from a header. `require_approval` is satisfied only by a grant of an
/// approved plan.
fn authorise(
    state: &RouterState,
    spec: &ActionSpec,
    input: &ToolInput,
    req: &ExecuteRequest,
    grant: Option<&str>,
) -> Result<Authorised, ExecError> {
    let value = input.as_value();
    let sensitive = !spec.is_write()
        && carapulse_core::tools::is_sensitive_read(spec.tool, spec.action, &value);
    let gated = spec.is_write() || sensitive;
    // A plain read without a tool call id is a collector's read: the router names the call.
    // A caller-chosen id could collide with (and write into) another call's log stream, so
    // naming the call needs a grant that binds the id, reads included.
    if !gated && req.tool_call_id.is_none() {
        return Ok(Authorised {
            sensitive: false,
            tool_call_id: carapulse_core::model::ToolCallId::new().to_string(),
            decision: None,
        });
    }
    let key = state
        .grant_key
        .as_deref()
        .ok_or_else(|| ExecError::Grant(GrantError::NoKey.to_string()))?;
    let encoded = grant.ok_or_else(|| ExecError::Grant(GrantError::Missing.to_string()))?;
    let claims = verify_grant(encoded, key, chrono::Utc::now())
        .map_err(|e| ExecError::Grant(e.to_string()))?;
    let digest = call_digest(spec.tool, spec.action, &req.input);
    claims
        .covers(
            &req.context.tenant_id,
            req.execution_id.as_deref(),
            req.tool_call_id.as_deref(),
            &digest,
        )
        .map_err(|e| ExecError::Grant(e.to_string()))?;
    // The plan's environment label is the caller's; the connector's binding is the server's.
    state
        .config
        .connectors
        .check_binding(spec.tool, &req.context)
        .map_err(ExecError::Forbidden)?;
    if !gated {
        return Ok(Authorised {
            sensitive: false,
            tool_call_id: claims.tool_call_id,
            decision: None,
        });
    }
    if spec.break_glass && !claims.break_glass {
        return Err(ExecError::BreakGlass(format!(
            "{}.{} is break-glass only: the execution must be started with break-glass",
            spec.tool, spec.action
        )));
    }
    req.context.validate().map_err(ExecError::Invalid)?;
    let action =
        carapulse_core::model::ActionName::parse(spec.action).map_err(ExecError::Invalid)?;
    let risk = assess_steps(&[StepRef::act(spec.tool, &action, &value)], &req.context);
    let service_actor = carapulse_core::model::Actor {
        id: carapulse_core::model::ActorId::parse("service:orchestrator")
            .map_err(ExecError::Invalid)?,
        email: None,
        roles: vec!["service".into(), "operator".into()],
        tenant_id: TenantId::parse(&req.context.tenant_id).map_err(ExecError::Invalid)?,
    };
    let policy_input = PolicyInput::new(
        Some(&service_actor),
        "tool.execute",
        ActionType::Write,
        &req.context,
        &risk,
        claims.break_glass,
        chrono::Utc::now(),
    );
    let outcome = state.policy.evaluate(&policy_input);
    let decision = DecisionRecord::of(&policy_input, "tool.execute", &outcome);
    let refused = |message: String| ExecError::PolicyRefused {
        message,
        decision: decision.clone().map(Box::new),
    };
    match outcome.decision {
        Decision::Allow => {}
        Decision::RequireApproval if claims.approved => {}
        Decision::RequireApproval => {
            return Err(refused(format!(
                "policy requires approval for {}.{} ({}) and the plan was not approved",
                spec.tool,
                spec.action,
                outcome.reasons.join(", ")
            )))
        }
        Decision::Deny => {
            return Err(refused(format!(
                "denied by policy: {}",
                outcome.reasons.join(", ")
            )))
        }
    }
    Ok(Authorised {
        sensitive,
        tool_call_id: claims.tool_call_id,
        decision,
    })
}

/// The sandbox policy `sandbox.*` asks for; every setting takes effect. `sandbox.enforce` and
/// the `require_*` switches make missing isolation a refusal instead of a weaker run.
pub(crate) fn base_policy(sandbox: &SandboxConfig, write: bool) -> SandboxPolicy {
    let required = sandbox.enforce
        || sandbox.require_user
        || sandbox.require_drop_caps
        || sandbox.require_no_new_privs
        || (sandbox.require_on_write && write);
    SandboxPolicy {
        timeout_ms: sandbox.timeout_ms,
        max_output_bytes: sandbox.max_output_bytes,
        env_allow: sandbox.env_allow.clone(),
        namespaces: true,
        minimal_root: true,
        read_only_root: sandbox.read_only_root,
        mounts: sandbox.mounts.clone(),
        user: sandbox.user.clone(),
        seccomp: sandbox.seccomp_profile.clone(),
        // Capabilities are always dropped (all of them): `drop_caps` may name a subset, and
        // dropping more is never weaker.
        drop_caps: true,
        require_isolation: required,
        require_seccomp: sandbox.require_seccomp,
        ..SandboxPolicy::default()
    }
}

/// Git refuses repositories owned by another uid ("dubious ownership"); the workspace is the
/// router's, the tool runs as the sandbox uid, so it is declared safe for that run only.
pub(crate) fn git_trusts_workspace(policy: &mut SandboxPolicy) {
    policy.env.insert("GIT_CONFIG_COUNT".into(), "1".into());
    policy
        .env
        .insert("GIT_CONFIG_KEY_0".into(), "safe.directory".into());
    policy.env.insert("GIT_CONFIG_VALUE_0".into(), "*".into());
}

/// Runs the request to completion. `grant` is the `X-Carapulse-Grant` header.
pub async fn execute(
    state: &RouterState,
    mut req: ExecuteRequest,
    grant: Option<&str>,
) -> Result<ExecuteResponse, ExecError> {
    let mut deprecations = Vec::new();
    match (req.tool.take(), req.tool_name.is_empty()) {
        (Some(old), true) => {
            deprecations.push("tool is deprecated; use tool_name".to_owned());
            req.tool_name = old;
        }
        (Some(old), false) if old != req.tool_name => {
            return Err(invalid(
                "tool",
                "names another tool than tool_name; send only tool_name",
            ));
        }
        _ => {}
    }
    let tool = ToolName::parse(&req.tool_name).map_err(|e| invalid("tool_name", e.message))?;
    if let Some(current) = carapulse_core::tools::compat::current_action(tool, &req.action) {
        deprecations.push(format!(
            "action {tool}.{} is deprecated; use {tool}.{current}",
            req.action
        ));
        req.action = current.to_owned();
    }
    let spec = find(tool, &req.action)
        .ok_or_else(|| invalid("action", format!("{tool} has no action {:?}", req.action)))?;
    let input = spec
        .validate(&req.input)
        .map_err(|e| invalid(&format!("input.{}", e.field), e.message))?;
    let tenant = TenantId::parse(&req.context.tenant_id)
        .map_err(|e| invalid("context.tenant_id", e.message))?;
    req.context.tenant_id = tenant.to_string();
    if let Some(exec) = &req.execution_id {
        carapulse_core::model::ExecutionId::parse(exec)
            .map_err(|e| invalid("execution_id", e.message))?;
    }
    if let Some(id) = &req.tool_call_id {
        carapulse_core::model::ToolCallId::parse(id)
            .map_err(|e| invalid("tool_call_id", e.message))?;
    }
    let authorised = authorise(state, spec, &input, &req, grant)?;
    let sensitive = authorised.sensitive;

    // Helm values references become a file in the command's own working directory.
    let mut workdir = None;
    // Every action that declares `values_ref` gets it resolved (helm upgrade, template, lint).
    let input = if spec.fields.iter().any(|f| f.name == "values_ref") {
        let sources = crate::values::Sources {
            tenant: tenant.to_string(),
            sandbox: state.config.sandbox.clone(),
            runner: state.sandbox.clone(),
            workspace: state.config.storage.workspace_dir.clone(),
            objects: state.objects.clone(),
        };
        let resolved = crate::values::resolve(&input, sources)
            .await
            .map_err(ExecError::Invalid)?;
        match resolved {
            Some((rewritten, values)) => {
                let validated = spec
                    .validate(&rewritten)
                    .map_err(|e| invalid(&format!("input.{}", e.field), e.message))?;
                workdir = Some(values);
                validated
            }
            None => input,
        }
    } else {
        input
    };
    let id = authorised.tool_call_id;
    if !state.hub.open(&id, tenant.as_str()) {
        return Err(ExecError::Conflict(format!(
            "tool call {id} has already run here; a tool call id is used once"
        )));
    }
    let started = Instant::now();
    let result = run(
        state,
        spec,
        &input,
        &id,
        workdir.as_ref().map(|v| v.dir.path().to_path_buf()),
        sensitive,
    )
    .await;
    drop(workdir);
    let elapsed = started.elapsed();
    let (outcome, used) = match &result {
        Ok(r) => (r.status, r.used),
        Err(_) => ("error", "none"),
    };
    state.metrics.record(
        tool.as_str(),
        spec.action,
        outcome,
        used,
        elapsed.as_secs_f64(),
    );
    state.hub.end(&id, outcome);
    let mut response = result?;
    response.policy_decision = authorised.decision;
    response.duration_ms = elapsed.as_millis() as u64;
    response.deprecations = deprecations;
    if sensitive {
        response.output = crate::mask::mask_output(tool, spec.action, &response.output);
    }
    if !response.output_truncated {
        response.result = serde_json::from_str::<Value>(response.output.trim()).ok();
    }
    let result_bytes = match &response.result {
        Some(result) => {
            serde_json::to_vec(result).map_err(|e| ExecError::Internal(e.to_string()))?
        }
        None => Vec::new(),
    };
    if result_bytes.len() > carapulse_core::store::INLINE_RESULT_BYTES {
        let key = format!("tool-result/{id}.json");
        let reference = state
            .objects
            .put(&key, result_bytes)
            .await
            .map_err(|e| ExecError::Internal(format!("storing result: {e}")))?;
        response.result_ref = Some(reference);
    }
    if response.output.len() > INLINE_OUTPUT_BYTES || response.stderr.len() > INLINE_OUTPUT_BYTES {
        let doc = json!({
            "tool_call_id": id, "tenant_id": tenant.as_str(), "tool": tool, "action": spec.action,
            "execution_id": req.execution_id, "output": response.output, "stderr": response.stderr,
        });
        let key = format!("tool-output/{id}.json");
        let bytes = serde_json::to_vec(&doc).map_err(|e| ExecError::Internal(e.to_string()))?;
        let reference = state
            .objects
            .put(&key, bytes)
            .await
            .map_err(|e| ExecError::Internal(format!("storing output: {e}")))?;
        response.output_ref = Some(reference);
        truncate(&mut response.output, INLINE_OUTPUT_BYTES);
        truncate(&mut response.stderr, INLINE_OUTPUT_BYTES);
        response.output_truncated = true;
    }
    Ok(response)
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

async fn run(
    state: &RouterState,
    spec: &'static ActionSpec,
    input: &ToolInput,
    id: &str,
    workdir: Option<PathBuf>,
    sensitive: bool,
) -> Result<ExecuteResponse, ExecError> {
    let sandbox = &state.config.sandbox;
    let mut cli_refusal = None;
    if let Some(argv) = spec.argv(input) {
        match resolve_cli(state, &argv[0]) {
            None => cli_refusal = Some(format!("{} is not installed", argv[0])),
            Some(_) if sandbox.enforce && !sandbox.enabled => {
                cli_refusal = Some("sandbox.enforce is on but sandbox.enabled is off".into())
            }
            Some(_) if base_policy(sandbox, spec.is_write()).require_isolation
                && isolation_available().is_err() =>
            {
                cli_refusal = Some(format!(
                    "sandbox isolation unavailable on this host ({}); tools are refused while sandbox.enforce (or a sandbox.require_* setting) is on",
                    isolation_available().err().unwrap_or_default()
                ))
            }
            Some(cli) => {
                let mut argv = argv;
                let mut mounts = Vec::new();
                if spec.tool == ToolName::Helm {
                    let exposed = crate::helm_paths::expose(
                        state.config.storage.workspace_dir.as_deref(),
                        input,
                        workdir.is_some(),
                    )
                    .map_err(ExecError::Invalid)?;
                    exposed.apply(&mut argv);
                    mounts = exposed.mounts;
                }
                let mut response =
                    run_cli(state, spec, argv, cli.path, id, workdir, mounts, sensitive).await?;
                response.demo = cli.demo;
                return Ok(response);
            }
        }
    }
    if let Some(request) = spec.api_request(input) {
        let (addr, token) = connector(state, spec.tool);
        if let Some(addr) = addr.filter(|a| !a.is_empty()) {
            return run_api(
                state,
                spec.tool,
                request,
                &addr,
                token.as_deref(),
                id,
                sensitive,
            )
            .await;
        }
        return Err(ExecError::Unavailable(format!(
            "{}.{}: {}no API address configured (connectors.{}.addr)",
            spec.tool,
            spec.action,
            cli_refusal.map(|r| format!("{r}; ")).unwrap_or_default(),
            spec.tool
        )));
    }
    Err(ExecError::Unavailable(format!(
        "{}.{}: {} and it has no API fallback",
        spec.tool,
        spec.action,
        cli_refusal.unwrap_or_else(|| "no CLI".into())
    )))
}

/// `extra_mounts`: read-only binds for this call alone (the workspace chart and values file of a
/// helm call).
#[allow(clippy::too_many_arguments)]
async fn run_cli(
    state: &RouterState,
    spec: &ActionSpec,
    mut argv: Vec<String>,
    binary: PathBuf,
    id: &str,
    workdir: Option<PathBuf>,
    extra_mounts: Vec<String>,
    sensitive: bool,
) -> Result<ExecuteResponse, ExecError> {
    let sandbox = &state.config.sandbox;
    argv[0] = binary.to_string_lossy().into_owned();
    let (extra_allow, env) = tool_env(state, spec.tool);
    let mut allow_egress = sandbox.egress_allowlist.clone();
    if let Some(hp) = connector(state, spec.tool).0.as_deref().and_then(host_port) {
        allow_egress.push(hp);
    }
    let own_working_dir = workdir.is_some();
    let working_dir = match (workdir, spec.tool) {
        (Some(dir), _) => Some(dir.to_string_lossy().into_owned()),
        (None, ToolName::Git | ToolName::Github | ToolName::Gitlab) => {
            state.config.storage.workspace_dir.clone()
        }
        (None, _) => None,
    };
    let mut policy = base_policy(sandbox, spec.is_write());
    policy.env_allow.extend(extra_allow);
    policy.env.extend(env);
    if matches!(
        spec.tool,
        ToolName::Git | ToolName::Github | ToolName::Gitlab
    ) {
        git_trusts_workspace(&mut policy);
    }
    policy.allow_egress = allow_egress;
    policy.mounts.extend(extra_mounts);
    policy.working_dir = working_dir;
    policy.own_working_dir = own_working_dir;
    let hub = state.hub.clone();
    let call_id = id.to_owned();
    let sink: LineSink = Arc::new(move |kind, line| {
        let stream = match kind {
            StreamKind::Stdout => "stdout",
            StreamKind::Stderr => "stderr",
        };
        hub.push(&call_id, stream, line);
    });
    let redactor = state.redactor.clone();
    // A sensitive read's lines are never streamed: only its masked output leaves the router.
    let sink = if sensitive {
        state.hub.push(
            id,
            "stdout",
            "sensitive read: output is masked and not streamed",
        );
        None
    } else {
        Some(sink)
    };
    // The sandboxed process is the trace's last hop: its own span, and the W3C TRACEPARENT
    // variable (the OpenTelemetry convention for processes) for tools that read it.
    let span = tracing::info_span!(
        "sandbox",
        otel.name = %format!("sandbox {}", spec.tool),
        tool_call_id = %id,
        tool = %spec.tool,
        action = %spec.action,
        exit_code = tracing::field::Empty,
        max_rss_kb = tracing::field::Empty,
    );
    if let Some(traceparent) = span.in_scope(carapulse_core::telemetry::current_traceparent) {
        policy.env.insert("TRACEPARENT".into(), traceparent);
    }
    let runner = state.sandbox.clone();
    let report = tokio::task::spawn_blocking(move || runner.run(&argv, &policy, &redactor, sink))
        .instrument(span.clone())
        .await
        .map_err(|e| ExecError::Internal(e.to_string()))?
        .map_err(|e| ExecError::Unavailable(e.to_string()))?;
    if let Some(code) = report.exit_code {
        span.record("exit_code", code);
    }
    span.record("max_rss_kb", report.max_rss_kb);
    let sandbox_report = json!({
        "namespaces": report.namespaces,
        "root": report.root,
        "read_only_root": report.read_only_root,
        "seccomp": report.seccomp,
        "capabilities_dropped": report.capabilities_dropped,
        "uid": report.uid,
        "namespaces_unavailable": report.namespaces_unavailable,
        "egress_denied": report.egress_denied,
        "max_rss_kb": report.max_rss_kb,
        "signal": report.signal,
    });
    Ok(ExecuteResponse {
        tool_call_id: id.to_owned(),
        status: if report.succeeded() {
            "succeeded"
        } else {
            "failed"
        },
        exit_code: report.exit_code,
        http_status: None,
        output: report.stdout,
        stderr: report.stderr,
        output_truncated: report.stdout_truncated || report.stderr_truncated,
        output_ref: None,
        used: "cli",
        duration_ms: report.duration_ms,
        timed_out: report.timed_out,
        sandbox: Some(sandbox_report),
        result: None,
        result_ref: None,
        demo: false,
        deprecations: Vec::new(),
        policy_decision: None,
    })
}

async fn run_api(
    state: &RouterState,
    tool: ToolName,
    request: carapulse_core::tools::ApiRequest,
    base: &str,
    token: Option<&str>,
    id: &str,
    sensitive: bool,
) -> Result<ExecuteResponse, ExecError> {
    let url = format!("{}{}", base.trim_end_matches('/'), request.path);
    let method = match request.method {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Delete => reqwest::Method::DELETE,
    };
    let mut builder = state
        .http
        .request(method, &url)
        .timeout(std::time::Duration::from_millis(
            state.config.sandbox.timeout_ms,
        ));
    if !request.query.is_empty() {
        builder = builder.query(&request.query);
    }
    if let Some(body) = &request.body {
        let mut body = body.clone();
        if tool == ToolName::Pagerduty {
            if let (Value::Object(map), Some(t)) = (&mut body, token) {
                map.insert("routing_key".into(), Value::String(t.to_owned()));
            }
        }
        builder = builder.json(&body);
    }
    match (tool, token) {
        (ToolName::Pagerduty, _) | (_, None) => {}
        (ToolName::Linear, Some(t)) => builder = builder.header("Authorization", t),
        (ToolName::Vault, Some(t)) => builder = builder.header("X-Vault-Token", t),
        (_, Some(t)) => builder = builder.bearer_auth(t),
    }
    if tool == ToolName::Grafana {
        builder = builder.header(
            "X-Grafana-Org-Id",
            state.config.connectors.grafana.org_id.clone(),
        );
    }
    // Connectors that trace see the call as part of the execution's trace.
    builder = carapulse_core::telemetry::traced(builder);
    state.hub.push(
        id,
        "stdout",
        &format!("{} {}", request.method_str(), request.path),
    );
    let started = Instant::now();
    let response = builder.send().await.map_err(|e| {
        ExecError::Unavailable(format!("{tool} API at {base}: {}", without_url(&e)))
    })?;
    let status = response.status();
    let cap = state.config.sandbox.max_output_bytes;
    let mut body = Vec::new();
    let mut truncated = false;
    let mut stream = response.bytes_stream();
    use futures::StreamExt;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ExecError::Unavailable(format!("{tool} API: {}", without_url(&e))))?;
        if body.len() + chunk.len() > cap {
            body.extend_from_slice(&chunk[..cap.saturating_sub(body.len())]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    let output = state.redactor.redact_bytes(&body);
    if sensitive {
        state.hub.push(
            id,
            "stdout",
            "sensitive read: output is masked and not streamed",
        );
    } else {
        for line in output.lines().take(1000) {
            state.hub.push(id, "stdout", line);
        }
    }
    Ok(ExecuteResponse {
        tool_call_id: id.to_owned(),
        status: if status.is_success() {
            "succeeded"
        } else {
            "failed"
        },
        exit_code: None,
        http_status: Some(status.as_u16()),
        output,
        stderr: String::new(),
        output_truncated: truncated,
        output_ref: None,
        used: "api",
        duration_ms: started.elapsed().as_millis() as u64,
        timed_out: false,
        sandbox: None,
        result: None,
        result_ref: None,
        demo: false,
        deprecations: Vec::new(),
        policy_decision: None,
    })
}

/// reqwest errors include the URL, which may carry query values; keep only the kind.
fn without_url(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        e.to_string()
            .split(" for url")
            .next()
            .unwrap_or("request failed")
            .to_owned()
    }
}

trait MethodStr {
    fn method_str(&self) -> &'static str;
}

impl MethodStr for carapulse_core::tools::ApiRequest {
    fn method_str(&self) -> &'static str {
        match self.method {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
        }
    }
}
