//! What each subcommand does.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use carapulse_core::auth::{mint_dev_token, DevTokenRequest};
use carapulse_core::config::{Component, Config};
use carapulse_core::policy::PolicyEngine;
use carapulse_core::store::Store;

use crate::client::{CliError, Client};
use crate::output::{cell, details, print_value, table, OutputFormat};
use crate::spinner::Spinner;
use crate::{
    ApprovalsCommand, ApproveArgs, AuditCommand, AuditListArgs, Cli, Command, ContextCommand,
    DevTokenArgs, ExecCommand, LlmCommand, PageArgs, PlanCommand, PlanCreateArgs, PolicyCommand,
    WorkflowCommand, WorkflowStartArgs,
};

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let g = &cli.global;
    let fmt = g.output;
    let client = || {
        Client::new(
            &g.url,
            g.token.clone(),
            Duration::from_secs(g.timeout.max(1)),
        )
    };
    match cli.command {
        Command::DevToken(args) => dev_token(g.config.as_deref(), &args),
        Command::Plan(cmd) => plan(&client()?, fmt, cmd).await,
        Command::Approve(args) => approve(&client()?, fmt, &args).await,
        Command::Approvals(cmd) => approvals(&client()?, fmt, cmd).await,
        Command::Exec(cmd) => exec(&client()?, fmt, cmd).await,
        Command::Workflow(cmd) => workflow(&client()?, fmt, cmd).await,
        Command::Llm(LlmCommand::Auth(cmd)) => crate::llm_auth::run(cmd, fmt),
        Command::Context(cmd) => context(&client()?, fmt, cmd).await,
        Command::Session(cmd) => crate::resources::session(&client()?, fmt, cmd).await,
        Command::Schedule(cmd) => crate::resources::schedule(&client()?, fmt, cmd).await,
        Command::Playbook(cmd) => crate::resources::doc(&client()?, fmt, "playbooks", cmd).await,
        Command::Runbook(cmd) => crate::resources::doc(&client()?, fmt, "runbooks", cmd).await,
        Command::Memory(cmd) => crate::resources::memory(&client()?, fmt, cmd).await,
        Command::Events {
            kinds,
            plan,
            execution,
            count,
        } => events(&client()?, fmt, kinds, plan, execution, count).await,
        Command::Audit(cmd) => audit(&client()?, fmt, cmd).await,
        Command::Policy(PolicyCommand::Impact {
            dir,
            since,
            until,
            limit,
        }) => policy_impact(&client()?, fmt, &dir, &since, until.as_deref(), limit).await,
        Command::Policy(PolicyCommand::Whatif { plan_id, dir }) => {
            policy_whatif(&client()?, fmt, &plan_id, dir.as_deref()).await
        }
        Command::Policy(PolicyCommand::Test { input, policy_dir }) => {
            policy_test(g.config.as_deref(), &input, policy_dir.as_deref(), fmt)
        }
        Command::Migrate(args) => migrate(g.config.as_deref(), args.dsn).await,
        Command::Config(crate::ConfigCommand::Convert(args)) => crate::config_convert::run(&args),
        Command::ImportGo(args) => crate::import_go::run(g.config.as_deref(), fmt, &args).await,
        Command::Replay(args) => crate::replay::run(&client()?, fmt, args).await,
        Command::Health => health(&client()?, fmt).await,
        Command::Diagnostics => diagnostics(&client()?, fmt).await,
        Command::Completions { .. } => Ok(()),
    }
}

fn load_config(path: Option<&Path>) -> Result<Config, CliError> {
    Config::load(path).map_err(|e| CliError::Local(e.to_string()))
}

fn dev_token(config: Option<&Path>, args: &DevTokenArgs) -> Result<(), CliError> {
    let cfg = load_config(config)?;
    let gw = &cfg.gateway;
    if !gw.dev_mode {
        return Err(CliError::Local(
            "gateway.dev_mode is off in this config: dev tokens would be refused".into(),
        ));
    }
    let secret = gw
        .dev_jwt_secret
        .as_deref()
        .ok_or_else(|| CliError::Local("gateway.dev_jwt_secret is not set".into()))?;
    let token = mint_dev_token(&DevTokenRequest {
        secret,
        issuer: &gw.dev_issuer,
        audience: None,
        subject: &args.sub,
        tenant: &args.tenant,
        roles: &args.roles,
        email: args.email.as_deref(),
        ttl_secs: args.ttl,
        tenant_claim: &gw.tenant_claim,
        roles_claim: &gw.roles_claim,
    })
    .map_err(|e| CliError::Local(e.to_string()))?;
    println!("{token}");
    Ok(())
}

pub(crate) fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut url = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            url.append_pair(k, v);
        }
    }
    let q = url.finish();
    if q.is_empty() {
        q
    } else {
        format!("?{q}")
    }
}

pub(crate) fn pagination_footer(body: &Value) -> String {
    let p = &body["pagination"];
    let shown = body["data"].as_array().map(Vec::len).unwrap_or(0);
    let mut s = format!("{shown} shown");
    if let Some(total) = p["total"].as_i64() {
        let about = if p["total_is_estimate"] == true {
            "about "
        } else {
            ""
        };
        s.push_str(&format!(" of {about}{total}"));
    }
    if let Some(next) = p["next_cursor"].as_str() {
        s.push_str(&format!("; next page: --cursor {next} (or --all-pages)"));
    }
    s
}

/// Most pages `--all-pages` follows, so a list that keeps growing cannot keep it going forever.
const MAX_FOLLOWED_PAGES: usize = 100;

/// `GET path` with `filters` and the paging flags; with `--all-pages`, follows `next_cursor` and
/// returns every row in one body whose `pagination` is the last page's.
pub(crate) async fn get_list(
    client: &Client,
    path: &str,
    mut filters: Vec<(&str, Option<String>)>,
    page: &PageArgs,
) -> Result<Value, CliError> {
    filters.extend([
        ("limit", page.limit.map(|v| v.to_string())),
        ("offset", page.offset.map(|v| v.to_string())),
        ("count", page.count.clone()),
    ]);
    let first = filters.len();
    filters.push(("cursor", page.cursor.clone()));
    let mut body = client.get(&format!("{path}{}", query(&filters))).await?;
    if !page.all_pages {
        return Ok(body);
    }
    let mut rows = match body["data"].take() {
        Value::Array(rows) => rows,
        _ => Vec::new(),
    };
    let mut pages = 1;
    while let Some(next) = body["pagination"]["next_cursor"]
        .as_str()
        .map(str::to_owned)
    {
        if pages == MAX_FOLLOWED_PAGES {
            eprintln!("stopped after {pages} pages");
            break;
        }
        // The total (if asked for) came with the first page; later pages need only rows.
        filters.truncate(first - 1);
        filters.push(("cursor", Some(next)));
        let total = body["pagination"]["total"].clone();
        body = client.get(&format!("{path}{}", query(&filters))).await?;
        body["pagination"]["total"] = total;
        if let Value::Array(more) = body["data"].take() {
            rows.extend(more);
        }
        pages += 1;
    }
    body["data"] = Value::Array(rows);
    Ok(body)
}

/// The break-glass headers for `reason`, or none.
fn break_glass_headers(reason: Option<&str>) -> Vec<(&'static str, &str)> {
    match reason {
        Some(reason) => vec![("X-Break-Glass", "true"), ("X-Break-Glass-Reason", reason)],
        None => Vec::new(),
    }
}

async fn plan(client: &Client, fmt: OutputFormat, cmd: PlanCommand) -> Result<(), CliError> {
    match cmd {
        PlanCommand::Create(args) => {
            let body = plan_body(&args)?;
            let headers = break_glass_headers(args.break_glass.as_deref());
            let resp = client.post("/v1/plans", &body, &headers).await?;
            if fmt.structured() {
                print_value(fmt, &resp);
            } else {
                print!(
                    "{}",
                    details(&[
                        ("plan_id", cell(&resp, &["plan_id"])),
                        ("risk", cell(&resp, &["plan", "risk_level"])),
                        ("decision", cell(&resp, &["policy", "decision"])),
                        ("approval", cell(&resp, &["plan", "approval_state"])),
                        ("reasons", cell(&resp, &["policy", "reasons"])),
                    ])
                );
            }
        }
        PlanCommand::Risk { plan_id } => {
            let risk = client.get(&format!("/v1/plans/{plan_id}/risk")).await?;
            if fmt.structured() {
                print_value(fmt, &risk);
            } else {
                let a = &risk["assessment"];
                print!(
                    "{}",
                    details(&[
                        ("plan_id", cell(&risk, &["plan_id"])),
                        ("risk", cell(&risk, &["risk_level"])),
                        ("recomputed", cell(a, &["level"])),
                        ("blast_radius", cell(a, &["blast_radius"])),
                        ("targets", cell(a, &["targets"])),
                        ("writes", cell(a, &["writes"])),
                        ("reasons", cell(a, &["reasons"])),
                    ])
                );
                let rows: Vec<Vec<String>> = risk["steps"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        vec![
                            cell(s, &["ordinal"]),
                            cell(s, &["stage"]),
                            format!("{} {}", cell(s, &["tool"]), cell(s, &["action"])),
                            cell(s, &["type"]),
                            cell(s, &["risk"]),
                            cell(s, &["rollback"]),
                        ]
                    })
                    .collect();
                println!();
                print!(
                    "{}",
                    table(&["#", "STAGE", "CALL", "TYPE", "RISK", "ROLLBACK"], &rows)
                );
            }
        }
        PlanCommand::Revise(args) => {
            let steps = read_steps(args.steps_file.as_deref(), &args.steps)?;
            let mut body = json!({});
            if !steps.is_empty() {
                body["steps"] = json!(steps);
            }
            for (key, value) in [
                ("summary", &args.summary),
                ("intent", &args.intent),
                ("note", &args.note),
            ] {
                if let Some(v) = value {
                    body[key] = json!(v);
                }
            }
            if let Some(raw) = &args.constraints {
                body["constraints"] = json_arg("--constraints", raw)?;
            }
            if args.replan {
                body["replan"] = json!(true);
            }
            let plan_id = &args.plan_id;
            let resp = client
                .post(&format!("/v1/plans/{plan_id}/revisions"), &body, &[])
                .await?;
            if fmt.structured() {
                print_value(fmt, &resp);
            } else {
                print!(
                    "{}",
                    details(&[
                        ("plan_id", cell(&resp, &["plan_id"])),
                        ("revision", cell(&resp, &["revision"])),
                        ("risk", cell(&resp, &["plan", "risk_level"])),
                        ("decision", cell(&resp, &["policy", "decision"])),
                        ("approval", cell(&resp, &["plan", "approval_state"])),
                        ("superseded", cell(&resp, &["superseded_approvals"])),
                        ("changes", cell(&resp, &["diff", "summary"])),
                    ])
                );
                print_diff_lines(&resp["diff"]);
            }
        }
        PlanCommand::Revisions { plan_id } => {
            let resp = client
                .get(&format!("/v1/plans/{plan_id}/revisions"))
                .await?;
            if fmt.structured() {
                print_value(fmt, &resp);
            } else {
                let current = resp["current"].as_i64();
                let rows: Vec<Vec<String>> = resp["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        let mark = if r["revision"].as_i64() == current {
                            "*"
                        } else {
                            ""
                        };
                        vec![
                            format!("{}{mark}", cell(r, &["revision"])),
                            cell(r, &["created_at"]),
                            cell(r, &["created_by"]),
                            cell(r, &["steps"]),
                            cell(r, &["risk_level"]),
                            cell(r, &["policy_decision"]),
                            cell(r, &["note"]),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &["REV", "AT", "BY", "STEPS", "RISK", "POLICY", "NOTE"],
                        &rows
                    )
                );
            }
        }
        PlanCommand::Diff { plan_id, from, to } => {
            let mut query = Vec::new();
            if let Some(n) = from {
                query.push(format!("from={n}"));
            }
            if let Some(n) = to {
                query.push(format!("to={n}"));
            }
            let suffix = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            let diff = client
                .get(&format!("/v1/plans/{plan_id}/diff{suffix}"))
                .await?;
            if fmt.structured() {
                print_value(fmt, &diff);
            } else {
                println!(
                    "revision {} -> {}: {}",
                    cell(&diff, &["from"]),
                    cell(&diff, &["to"]),
                    cell(&diff, &["summary"])
                );
                print_diff_lines(&diff);
            }
        }
        PlanCommand::Delete { plan_id } => {
            client.delete(&format!("/v1/plans/{plan_id}")).await?;
            if fmt.structured() {
                print_value(fmt, &json!({"plan_id": plan_id, "deleted": true}));
            } else {
                println!("plan {plan_id} withdrawn");
            }
        }
        PlanCommand::Get { plan_id } => {
            let plan = client.get(&format!("/v1/plans/{plan_id}")).await?;
            if fmt.structured() {
                print_value(fmt, &plan);
            } else {
                print!(
                    "{}",
                    details(&[
                        ("plan_id", cell(&plan, &["plan_id"])),
                        ("summary", cell(&plan, &["summary"])),
                        ("created_by", cell(&plan, &["created_by"])),
                        ("environment", cell(&plan, &["context", "environment"])),
                        ("risk", cell(&plan, &["risk_level"])),
                        ("approval", cell(&plan, &["approval_state"])),
                        (
                            "approvers",
                            format!(
                                "{} required, approved by {}",
                                cell(&plan, &["approvals", "required"]),
                                cell(&plan, &["approvals", "approved_by"])
                            ),
                        ),
                        ("blast radius", blast_radius_line(&plan["blast_radius"])),
                        ("hash", cell(&plan, &["plan_hash"])),
                    ])
                );
                print!("{}", affected_services(&plan["blast_radius"]));
                let rows: Vec<Vec<String>> = plan["steps"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        vec![
                            cell(s, &["ordinal"]),
                            cell(s, &["stage"]),
                            cell(s, &["tool"]),
                            cell(s, &["action"]),
                            cell(s, &["input"]),
                        ]
                    })
                    .collect();
                println!();
                print!(
                    "{}",
                    table(&["#", "STAGE", "TOOL", "ACTION", "INPUT"], &rows)
                );
            }
        }
        PlanCommand::List(args) => {
            let filters = vec![
                ("approval_state", args.state),
                ("risk_level", args.risk),
                ("trigger", args.trigger),
            ];
            let body = get_list(client, "/v1/plans", filters, &args.page).await?;
            if fmt.structured() {
                print_value(fmt, &body);
            } else {
                let rows: Vec<Vec<String>> = body["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        vec![
                            cell(p, &["plan_id"]),
                            cell(p, &["created_at"]),
                            cell(p, &["risk_level"]),
                            cell(p, &["approval_state"]),
                            cell(p, &["summary"]),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["PLAN", "CREATED", "RISK", "APPROVAL", "SUMMARY"], &rows)
                );
                eprintln!("{}", pagination_footer(&body));
            }
        }
        PlanCommand::Execute {
            plan_id,
            break_glass,
            wait,
            wait_timeout,
        } => {
            let headers = break_glass_headers(break_glass.as_deref());
            let resp = client
                .post(
                    &format!("/v1/plans/{plan_id}/execute"),
                    &json!({}),
                    &headers,
                )
                .await?;
            if fmt.structured() {
                print_value(fmt, &resp);
            } else {
                print!(
                    "{}",
                    details(&[
                        ("execution_id", cell(&resp, &["execution_id"])),
                        ("status", cell(&resp, &["status"])),
                        ("created", cell(&resp, &["created"])),
                        ("workflow_id", cell(&resp, &["workflow_id"])),
                    ])
                );
            }
            if wait {
                let id = cell(&resp, &["execution_id"]);
                wait_for_execution(client, fmt, &id, wait_timeout).await?;
            }
        }
    }
    Ok(())
}

/// Statuses after which an execution never changes.
const TERMINAL: &[&str] = &["succeeded", "failed", "rolled_back", "cancelled", "expired"];

/// Polls an execution until it ends, with a spinner; exit 6 unless it succeeded.
async fn wait_for_execution(
    client: &Client,
    fmt: OutputFormat,
    execution_id: &str,
    timeout_secs: u64,
) -> Result<(), CliError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(timeout_secs);
    let mut spinner = Spinner::new();
    let mut delay = Duration::from_millis(250);
    loop {
        let e = client
            .get(&format!("/v1/executions/{execution_id}"))
            .await?;
        let status = cell(&e, &["status"]);
        if TERMINAL.contains(&status.as_str()) {
            spinner.finish();
            if fmt.structured() {
                print_value(fmt, &e);
            } else {
                print!(
                    "{}",
                    details(&[
                        ("execution_id", cell(&e, &["execution_id"])),
                        ("status", status.clone()),
                        ("error", cell(&e, &["error"])),
                    ])
                );
            }
            return if status == "succeeded" {
                Ok(())
            } else {
                Err(CliError::VerifyFailed(format!(
                    "execution {execution_id} ended {status}"
                )))
            };
        }
        let done = e["steps"]
            .as_array()
            .map(|s| s.iter().filter(|x| x["status"] == "succeeded").count())
            .unwrap_or(0);
        spinner.tick(&format!(
            "execution {execution_id}: {status}, {done} steps done"
        ));
        if std::time::Instant::now() >= deadline {
            spinner.finish();
            return Err(CliError::Local(format!(
                "execution {execution_id} still {status} after {timeout_secs}s"
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

async fn approvals(
    client: &Client,
    fmt: OutputFormat,
    cmd: ApprovalsCommand,
) -> Result<(), CliError> {
    let ApprovalsCommand::List {
        status,
        plan,
        source,
        page,
    } = cmd;
    let pending = status == "pending";
    let filters = vec![
        ("status", Some(status)),
        ("plan_id", plan),
        ("source", source),
    ];
    let body = get_list(client, "/v1/approvals", filters, &page).await?;
    if fmt.structured() {
        print_value(fmt, &body);
        return Ok(());
    }
    let items = body["data"].as_array().cloned().unwrap_or_default();
    if pending {
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|a| {
                vec![
                    cell(a, &["plan_id"]),
                    cell(a, &["risk_level"]),
                    cell(a, &["created_by"]),
                    cell(a, &["approval_expires_at"]),
                    cell(a, &["external", "key"]),
                    cell(a, &["summary"]),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &["PLAN", "RISK", "CREATED BY", "EXPIRES", "LINEAR", "SUMMARY"],
                &rows
            )
        );
    } else {
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|a| {
                vec![
                    cell(a, &["plan_id"]),
                    cell(a, &["status"]),
                    cell(a, &["approver"]),
                    cell(a, &["source"]),
                    cell(a, &["created_at"]),
                    cell(a, &["note"]),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &["PLAN", "STATUS", "APPROVER", "SOURCE", "AT", "NOTE"],
                &rows
            )
        );
    }
    eprintln!("{}", pagination_footer(&body));
    Ok(())
}

/// A JSON argument given inline or as `@file`.
pub(crate) fn json_arg(flag: &str, raw: &str) -> Result<Value, CliError> {
    let text = match raw.strip_prefix('@') {
        Some(path) if !path.is_empty() => std::fs::read_to_string(path)
            .map_err(|e| CliError::Local(format!("{flag} {path}: {e}")))?,
        Some(_) => return Err(CliError::Usage(format!("{flag}: a path is needed after @"))),
        None => raw.to_owned(),
    };
    serde_json::from_str(&text).map_err(|e| CliError::Usage(format!("{flag}: {e}")))
}

async fn workflow(
    client: &Client,
    fmt: OutputFormat,
    cmd: WorkflowCommand,
) -> Result<(), CliError> {
    match cmd {
        WorkflowCommand::List => {
            let body = client.get("/v1/workflows").await?;
            if fmt.structured() {
                print_value(fmt, &body);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = body["data"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|w| {
                    let schema = &w["input_schema"];
                    let required: Vec<String> = schema["required"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r.as_str().map(str::to_owned))
                        .collect();
                    let mut fields: Vec<String> = schema["properties"]
                        .as_object()
                        .map(|p| {
                            p.keys()
                                .map(|k| {
                                    if required.contains(k) {
                                        format!("{k}*")
                                    } else {
                                        k.clone()
                                    }
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    fields.sort();
                    vec![
                        cell(w, &["name"]),
                        fields.join(","),
                        cell(w, &["description"]),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(&["WORKFLOW", "INPUT (* required)", "DESCRIPTION"], &rows)
            );
        }
        WorkflowCommand::Start(args) => {
            let resp = client
                .post(
                    &format!("/v1/workflows/{}/start", args.name),
                    &workflow_body(&args)?,
                    &[],
                )
                .await?;
            if fmt.structured() {
                print_value(fmt, &resp);
            } else {
                print!(
                    "{}",
                    details(&[
                        ("plan_id", cell(&resp, &["plan_id"])),
                        ("risk", cell(&resp, &["plan", "risk_level"])),
                        ("approval", cell(&resp, &["plan", "approval_state"])),
                        ("execution_id", cell(&resp, &["execution_id"])),
                        ("execution", cell(&resp, &["status"])),
                    ])
                );
            }
        }
    }
    Ok(())
}

fn workflow_body(args: &WorkflowStartArgs) -> Result<Value, CliError> {
    let input = json_arg("--input", &args.input)?;
    if !input.is_object() {
        return Err(CliError::Usage("--input must be a JSON object".into()));
    }
    let mut context = json!({"environment": args.environment});
    if let Some(ns) = &args.namespace {
        context["namespace"] = json!(ns);
    }
    if let Some(c) = &args.cluster {
        context["cluster_id"] = json!(c);
    }
    let mut body = json!({"input": input, "context": context});
    if let Some(s) = &args.summary {
        body["summary"] = json!(s);
    }
    Ok(body)
}

/// The human rendering of a plan diff, one change per line.
fn print_diff_lines(diff: &Value) {
    for line in diff["text"].as_array().into_iter().flatten() {
        if let Some(line) = line.as_str() {
            println!("  {line}");
        }
    }
}

/// Steps from `--steps-file` (an array, or an object with `steps`) then each `--step`.
fn read_steps(steps_file: Option<&Path>, step_args: &[String]) -> Result<Vec<Value>, CliError> {
    let mut steps: Vec<Value> = Vec::new();
    if let Some(path) = steps_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::Local(format!("{}: {e}", path.display())))?;
        let parsed: Value = serde_json::from_str(&text)
            .map_err(|e| CliError::Local(format!("{}: {e}", path.display())))?;
        match parsed {
            Value::Array(items) => steps.extend(items),
            Value::Object(mut map) => match map.remove("steps") {
                Some(Value::Array(items)) => steps.extend(items),
                _ => {
                    return Err(CliError::Local(format!(
                        "{}: expected an array of steps",
                        path.display()
                    )))
                }
            },
            _ => {
                return Err(CliError::Local(format!(
                    "{}: expected an array of steps",
                    path.display()
                )))
            }
        }
    }
    for raw in step_args {
        steps.push(
            serde_json::from_str(raw)
                .map_err(|e| CliError::Usage(format!("--step {raw:?}: {e}")))?,
        );
    }
    Ok(steps)
}

fn plan_body(args: &PlanCreateArgs) -> Result<Value, CliError> {
    let steps = read_steps(args.steps_file.as_deref(), &args.steps)?;
    let constraints = match &args.constraints {
        Some(raw) => Some(
            serde_json::from_str::<Value>(raw)
                .map_err(|e| CliError::Usage(format!("--constraints: {e}")))?,
        ),
        None => None,
    };
    let mut context = json!({"environment": args.environment});
    for (k, v) in [
        ("namespace", &args.namespace),
        ("cluster_id", &args.cluster),
        ("region", &args.region),
    ] {
        if let Some(v) = v {
            context[k] = json!(v);
        }
    }
    let mut body = json!({
        "summary": args.summary,
        "intent": args.intent,
        "trigger": args.trigger,
        "context": context,
        "steps": steps,
    });
    if let Some(c) = constraints {
        body["constraints"] = c;
    }
    if let Some(s) = &args.session {
        body["session_id"] = json!(s);
    }
    Ok(body)
}

async fn approve(client: &Client, fmt: OutputFormat, args: &ApproveArgs) -> Result<(), CliError> {
    let mut body = json!({
        "plan_id": args.plan_id,
        "status": if args.deny { "denied" } else { "approved" },
        "source": "cli",
    });
    if let Some(note) = &args.note {
        body["note"] = json!(note);
    }
    let resp = client.post("/v1/approvals", &body, &[]).await?;
    if fmt.structured() {
        print_value(fmt, &resp);
    } else {
        print!(
            "{}",
            details(&[
                ("approval_id", cell(&resp, &["approval_id"])),
                ("plan_id", cell(&resp, &["plan_id"])),
                ("status", cell(&resp, &["status"])),
                ("revision", cell(&resp, &["revision"])),
                ("plan", cell(&resp, &["plan_approval_state"])),
                (
                    "approvals",
                    format!(
                        "{} of {}",
                        resp["approved_by"].as_array().map_or(0, Vec::len),
                        cell(&resp, &["approvals_required"])
                    ),
                ),
                ("approved_hash", cell(&resp, &["approved_hash"])),
            ])
        );
    }
    Ok(())
}

async fn exec(client: &Client, fmt: OutputFormat, cmd: ExecCommand) -> Result<(), CliError> {
    match cmd {
        ExecCommand::Get { execution_id } => {
            let e = client
                .get(&format!("/v1/executions/{execution_id}"))
                .await?;
            if fmt.structured() {
                print_value(fmt, &e);
            } else {
                print!(
                    "{}",
                    details(&[
                        ("execution_id", cell(&e, &["execution_id"])),
                        ("plan_id", cell(&e, &["plan_id"])),
                        ("status", cell(&e, &["status"])),
                        ("created_at", cell(&e, &["created_at"])),
                        ("started_at", cell(&e, &["started_at"])),
                        ("completed_at", cell(&e, &["completed_at"])),
                        ("workflow_id", cell(&e, &["workflow_id"])),
                        ("error", cell(&e, &["error"])),
                    ])
                );
                let calls = e["tool_calls"].as_array().map(Vec::as_slice).unwrap_or(&[]);
                let rows: Vec<Vec<String>> = calls
                    .iter()
                    .map(|t| {
                        let mut tool = cell(t, &["tool_name"]);
                        if t["demo"] == true {
                            tool.push_str(" (demo)");
                        }
                        vec![
                            cell(t, &["tool_call_id"]),
                            tool,
                            cell(t, &["action"]),
                            cell(t, &["status"]),
                            cell(t, &["exit_code"]),
                        ]
                    })
                    .collect();
                println!();
                print!(
                    "{}",
                    table(&["TOOL CALL", "TOOL", "ACTION", "STATUS", "EXIT"], &rows)
                );
                if calls.iter().any(|t| t["demo"] == true) {
                    println!("{DEMO_CALLS_NOTE}");
                }
                print!("{}", verification_text(&e["verification"]));
            }
        }
        ExecCommand::List { status, plan, page } => {
            let filters = vec![("status", status), ("plan_id", plan)];
            let body = get_list(client, "/v1/executions", filters, &page).await?;
            if fmt.structured() {
                print_value(fmt, &body);
            } else {
                let rows: Vec<Vec<String>> = body["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| {
                        vec![
                            cell(e, &["execution_id"]),
                            cell(e, &["plan_id"]),
                            cell(e, &["status"]),
                            cell(e, &["created_at"]),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["EXECUTION", "PLAN", "STATUS", "CREATED"], &rows)
                );
                eprintln!("{}", pagination_footer(&body));
            }
        }
        ExecCommand::Wait {
            execution_id,
            timeout,
        } => wait_for_execution(client, fmt, &execution_id, timeout).await?,
        ExecCommand::Logs {
            execution_id,
            follow,
            tool_call_id,
            level,
        } => {
            let q = query(&[
                ("tool_call_id", tool_call_id),
                ("level", level),
                ("follow", Some(follow.to_string())),
            ]);
            let mut end_status = None;
            client
                .stream_sse(
                    &format!("/v1/executions/{execution_id}/logs{q}"),
                    |event, data| {
                        let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
                        match event {
                            "log" if fmt.structured() => println!("{data}"),
                            "log" => println!(
                                "{} {:<5} {} {}",
                                cell(&v, &["ts"]),
                                cell(&v, &["level"]),
                                cell(&v, &["tool_call_id"])
                                    .chars()
                                    .take(8)
                                    .collect::<String>(),
                                cell(&v, &["message"])
                            ),
                            "end" => {
                                end_status = Some(cell(&v, &["status"]));
                                return false;
                            }
                            _ => {}
                        }
                        true
                    },
                )
                .await?;
            if let Some(status) = end_status {
                eprintln!("execution {execution_id} {status}");
            }
        }
        ExecCommand::Decide {
            execution_id,
            decision,
            note,
        } => {
            let resp = client
                .post(
                    &format!("/v1/executions/{execution_id}/decision"),
                    &json!({"decision": decision, "note": note}),
                    &[],
                )
                .await?;
            if fmt.structured() {
                print_value(fmt, &resp);
            } else {
                println!(
                    "execution {execution_id}: {decision} delivered to step {}",
                    cell(&resp, &["step"])
                );
            }
        }
        ExecCommand::Cancel { execution_id } => {
            let resp = client
                .post(
                    &format!("/v1/executions/{execution_id}/cancel"),
                    &json!({}),
                    &[],
                )
                .await?;
            if fmt.structured() {
                print_value(fmt, &resp);
            } else {
                print!(
                    "{}",
                    details(&[
                        ("execution_id", cell(&resp, &["execution_id"])),
                        ("status", cell(&resp, &["status"])),
                    ])
                );
            }
        }
    }
    Ok(())
}

fn audit_filters(f: &AuditListArgs) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("from", f.from.clone()),
        ("to", f.to.clone()),
        ("actor_id", f.actor.clone()),
        ("action", f.action.clone()),
        ("decision", f.decision.clone()),
    ]
}

async fn audit(client: &Client, fmt: OutputFormat, cmd: AuditCommand) -> Result<(), CliError> {
    match cmd {
        AuditCommand::List(f) => {
            let body = get_list(client, "/v1/audit/events", audit_filters(&f), &f.page).await?;
            if fmt.structured() {
                print_value(fmt, &body);
            } else {
                let rows: Vec<Vec<String>> = body["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| {
                        vec![
                            cell(e, &["seq"]),
                            cell(e, &["occurred_at"]),
                            cell(e, &["actor", "id"]),
                            cell(e, &["action"]),
                            cell(e, &["decision"]),
                            cell(e, &["resource_id"]),
                            cell(e, &["reason"]),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &["SEQ", "TIME", "ACTOR", "ACTION", "DECISION", "RESOURCE", "REASON"],
                        &rows
                    )
                );
                eprintln!("{}", pagination_footer(&body));
            }
        }
        AuditCommand::Verify => {
            let report = verify_streamed(client, fmt).await?;
            if fmt.structured() {
                print_value(fmt, &report);
            } else {
                print!(
                    "{}",
                    details(&[
                        ("tenant", cell(&report, &["tenant_id"])),
                        ("ok", cell(&report, &["ok"])),
                        ("events_checked", cell(&report, &["events_checked"])),
                        ("head_seq", cell(&report, &["head_seq"])),
                        ("first_break_seq", cell(&report, &["first_break", "seq"])),
                        ("reason", cell(&report, &["first_break", "reason"])),
                    ])
                );
            }
            if report["ok"] != Value::Bool(true) {
                return Err(CliError::VerifyFailed(format!(
                    "audit chain broken at seq {}: {}",
                    cell(&report, &["first_break", "seq"]),
                    cell(&report, &["first_break", "reason"])
                )));
            }
        }
        AuditCommand::Export {
            format,
            file,
            filter,
        } => {
            let path = format!(
                "/v1/audit/export{}",
                query(&[audit_filters(&filter), vec![("format", Some(format))]].concat())
            );
            // Streamed to the file (or stdout) chunk by chunk: a year of events does not fit in
            // memory, and must not be cut by the request timeout.
            let mut out: Box<dyn std::io::Write> = match &file {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .map_err(|e| CliError::Local(format!("{}: {e}", p.display())))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let write_error = |e: std::io::Error| {
                CliError::Local(match &file {
                    Some(p) => format!("{}: {e}", p.display()),
                    None => format!("stdout: {e}"),
                })
            };
            client
                .get_streamed(&path, "*/*", |chunk| {
                    out.write_all(chunk).map_err(write_error)
                })
                .await?;
            out.flush().map_err(write_error)?;
        }
    }
    Ok(())
}

/// `GET /v1/audit/verify` as NDJSON: progress on stderr while the chain is walked (tables mode),
/// then the report.
async fn verify_streamed(client: &Client, fmt: OutputFormat) -> Result<Value, CliError> {
    let mut pending = Vec::new();
    let mut report = None;
    let mut failure = None;
    client
        .get_streamed("/v1/audit/verify", "application/x-ndjson", |chunk| {
            pending.extend_from_slice(chunk);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let Ok(line) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                if let Some(p) = line.get("progress") {
                    if !fmt.structured() {
                        eprintln!(
                            "verified {} of {} events",
                            cell(p, &["events_checked"]),
                            cell(p, &["head_seq"])
                        );
                    }
                } else if let Some(r) = line.get("report") {
                    report = Some(r.clone());
                } else if let Some(e) = line.get("error") {
                    failure = Some(CliError::Api {
                        status: 503,
                        code: cell(e, &["code"]),
                        message: cell(e, &["message"]),
                    });
                }
            }
            Ok(())
        })
        .await?;
    if let Some(err) = failure {
        return Err(err);
    }
    report.ok_or_else(|| CliError::Api {
        status: 502,
        code: "invalid_response".into(),
        message: "the verification stream ended without a report".into(),
    })
}

fn policy_test(
    config: Option<&Path>,
    input: &Path,
    dir: Option<&Path>,
    fmt: OutputFormat,
) -> Result<(), CliError> {
    let cfg = load_config(config)?;
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cfg.policy.policy_dir.clone().into());
    let engine = PolicyEngine::load_dir(&dir, &cfg.policy.policy_package)
        .map_err(|e| CliError::Local(e.to_string()))?;
    let text = std::fs::read_to_string(input)
        .map_err(|e| CliError::Local(format!("{}: {e}", input.display())))?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| CliError::Local(format!("{}: {e}", input.display())))?;
    // Accept both a bare input and OPA's {"input": ...} envelope.
    let doc = match doc.get("input") {
        Some(inner) if doc.as_object().is_some_and(|o| o.len() == 1) => inner.clone(),
        _ => doc,
    };
    let outcome = engine.evaluate_json(&doc);
    let value = serde_json::to_value(&outcome).map_err(|e| CliError::Local(e.to_string()))?;
    if fmt.structured() {
        print_value(fmt, &value);
    } else {
        print!(
            "{}",
            details(&[
                ("decision", cell(&value, &["decision"])),
                ("constraints", cell(&value, &["constraints"])),
                ("ttl", cell(&value, &["ttl"])),
                ("reasons", outcome.reasons.join(", ")),
                ("error", outcome.error.clone().unwrap_or_default()),
            ])
        );
    }
    Ok(())
}

async fn migrate(config: Option<&Path>, dsn: Option<String>) -> Result<(), CliError> {
    let mut cfg = load_config(config)?;
    if let Some(dsn) = dsn {
        cfg.storage.postgres_dsn = dsn;
    }
    cfg.validate(Component::Cli)
        .map_err(|e| CliError::Local(e.to_string()))?;
    let store = Store::connect_lazy(&cfg.storage).map_err(|e| CliError::Local(e.to_string()))?;
    store
        .migrate()
        .await
        .map_err(|e| CliError::Local(e.to_string()))?;
    println!("migrations applied");
    Ok(())
}

/// Printed under tool calls that ran a demo CLI.
const DEMO_CALLS_NOTE: &str = "(demo) = a recording fake from tool_router.demo_cli_dir ran instead of the real CLI: nothing outside this machine changed";

async fn diagnostics(client: &Client, fmt: OutputFormat) -> Result<(), CliError> {
    let d = client.get("/v1/diagnostics").await?;
    if fmt.structured() {
        print_value(fmt, &d);
    } else {
        print!("{}", diagnostics_text(&d));
    }
    Ok(())
}

/// `assistantctl diagnostics` as text: a demo banner first when the router runs fakes.
fn diagnostics_text(d: &Value) -> String {
    let mut out = String::new();
    if d["demo"] == true {
        let clis = d["tool_router"]["demo"]["clis"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "DEMO MODE: the tool router runs recording fakes ({clis}) from {}; nothing real is changed\n\n",
            cell(d, &["tool_router", "demo", "cli_dir"]),
        ));
    }
    let state = |v: &Value| match (v["ok"].as_bool(), v["error"].as_str()) {
        (Some(true), _) => "ok".to_owned(),
        (_, Some(e)) => format!("FAILING: {e}"),
        _ => "unknown".to_owned(),
    };
    let policy_files = d["policy"]["files"].as_array().map(Vec::len).unwrap_or(0);
    out.push_str(&details(&[
        ("version", cell(d, &["version"])),
        ("uptime_secs", cell(d, &["uptime_secs"])),
        ("database", state(&d["database"])),
        ("temporal", state(&d["orchestrator"]["temporal"])),
        ("tool_router", state(&d["tool_router"])),
        ("planner", cell(d, &["planner", "provider"])),
        ("policy_files", policy_files.to_string()),
    ]));
    out
}

async fn health(client: &Client, fmt: OutputFormat) -> Result<(), CliError> {
    let live = client.get("/healthz").await?;
    let ready = client.get("/readyz").await;
    let ready_value = match &ready {
        Ok(v) => v.clone(),
        Err(CliError::Api {
            status, message, ..
        }) => json!({"status": "not_ready", "http_status": status, "message": message}),
        Err(other) => {
            return Err(CliError::Network {
                url: "readyz".into(),
                message: other.to_string(),
            })
        }
    };
    if fmt.structured() {
        print_value(fmt, &json!({"live": live, "ready": ready_value}));
    } else {
        print!(
            "{}",
            details(&[
                ("live", cell(&live, &["status"])),
                ("ready", cell(&ready_value, &["status"])),
                ("postgres", cell(&ready_value, &["checks", "postgres"])),
            ])
        );
    }
    ready.map(|_| ())
}

async fn context(client: &Client, fmt: OutputFormat, cmd: ContextCommand) -> Result<(), CliError> {
    match cmd {
        ContextCommand::Services { page } => {
            let body = get_list(client, "/v1/context/services", Vec::new(), &page).await?;
            if fmt.structured() {
                print_value(fmt, &body);
            } else {
                let rows: Vec<Vec<String>> = body["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        vec![
                            cell(s, &["name"]),
                            cell(s, &["labels", "environment"]),
                            cell(s, &["labels", "namespace"]),
                            cell(s, &["owner_team"]),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["SERVICE", "ENVIRONMENT", "NAMESPACE", "OWNER"], &rows)
                );
                eprintln!("{}", pagination_footer(&body));
            }
        }
        ContextCommand::Graph { service, depth } => {
            let q = query(&[
                ("service", Some(service)),
                ("depth", Some(depth.to_string())),
            ]);
            let body = client.get(&format!("/v1/context/graph{q}")).await?;
            if fmt.structured() {
                print_value(fmt, &body);
            } else {
                let rows: Vec<Vec<String>> = body["edges"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| {
                        vec![
                            cell(e, &["from_node_id"]),
                            cell(e, &["relation"]),
                            cell(e, &["to_node_id"]),
                        ]
                    })
                    .collect();
                print!("{}", table(&["FROM", "RELATION", "TO"], &rows));
                eprintln!(
                    "{} nodes, {} edges",
                    body["nodes"].as_array().map(Vec::len).unwrap_or(0),
                    rows.len()
                );
            }
        }
        ContextCommand::Snapshots { id } => {
            let path = match &id {
                Some(id) => format!("/v1/context/snapshots/{id}"),
                None => "/v1/context/snapshots".into(),
            };
            let body = client.get(&path).await?;
            if fmt.structured() || id.is_some() {
                print_value(
                    if fmt.structured() {
                        fmt
                    } else {
                        OutputFormat::Json
                    },
                    &body,
                );
            } else {
                let rows: Vec<Vec<String>> = body["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        vec![
                            cell(s, &["snapshot_id"]),
                            cell(s, &["collected_at"]),
                            cell(s, &["node_count"]),
                            cell(s, &["edge_count"]),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["SNAPSHOT", "COLLECTED", "NODES", "EDGES"], &rows)
                );
            }
        }
        ContextCommand::Refresh => {
            let body = client.post("/v1/context/refresh", &json!({}), &[]).await?;
            if fmt.structured() {
                print_value(fmt, &body);
            } else {
                let rows: Vec<Vec<String>> = body["collectors"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, r)| vec![name.clone(), cell(r, &["ok"]), cell(r, &["error"])])
                    .collect();
                print!("{}", table(&["COLLECTOR", "OK", "ERROR"], &rows));
            }
        }
    }
    Ok(())
}

async fn events(
    client: &Client,
    fmt: OutputFormat,
    kinds: Option<String>,
    plan: Option<String>,
    execution: Option<String>,
    count: Option<usize>,
) -> Result<(), CliError> {
    let q = query(&[
        ("kinds", kinds),
        ("plan_id", plan),
        ("execution_id", execution),
    ]);
    let mut seen = 0usize;
    client
        .stream_sse(&format!("/v1/events{q}"), |event, data| {
            if fmt.structured() {
                println!("{data}");
            } else {
                let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
                println!("{} {:<18} {}", cell(&v, &["ts"]), event, v["data"]);
            }
            seen += 1;
            count.is_none_or(|c| seen < c)
        })
        .await
}

/// The `verification` section of an execution as text: captured values, preconditions, and each
/// analysis with its samples (empty when the run observed nothing).
fn verification_text(v: &Value) -> String {
    let mut out = String::new();
    if let Some(captures) = v["captures"].as_object().filter(|c| !c.is_empty()) {
        out.push_str("\nCaptured\n");
        for (name, c) in captures {
            out.push_str(&format!(
                "  {name} = {}  ({})\n",
                c["value"],
                c["path"].as_str().unwrap_or("")
            ));
        }
    }
    for p in v["preconditions"].as_array().into_iter().flatten() {
        let passed = p["passed"] == true;
        out.push_str(&format!(
            "\nPreconditions: {}\n",
            if passed { "met" } else { "NOT met" }
        ));
        for check in p["checks"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  {:<12} {}\n",
                check["outcome"]["verdict"].as_str().unwrap_or(""),
                check["outcome"]["reason"].as_str().unwrap_or("")
            ));
        }
    }
    for a in v["analyses"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\nAnalysis of step {}: {}{}\n",
            a["ordinal"],
            a["verdict"].as_str().unwrap_or(""),
            a["reason"]
                .as_str()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
        let rows: Vec<Vec<String>> = a["samples"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                vec![
                    cell(s, &["number"]),
                    cell(s, &["verdict"]),
                    s["measured"].to_string(),
                    s["threshold"].to_string(),
                    cell(s, &["at"]),
                ]
            })
            .collect();
        out.push_str(&table(
            &["SAMPLE", "VERDICT", "MEASURED", "THRESHOLD", "AT"],
            &rows,
        ));
    }
    if v["awaiting_decision"] == true {
        out.push_str(
            "\nWaiting for a decision: assistantctl exec decide <execution> continue|rollback\n",
        );
    }
    out
}

/// The `.rego` files of `dir` (not its subdirectories), by file name.
pub(crate) fn candidate_files(dir: &Path) -> Result<serde_json::Map<String, Value>, CliError> {
    let mut files = serde_json::Map::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| CliError::Local(format!("{}: {e}", dir.display())))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if path.is_file() && name.ends_with(".rego") {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| CliError::Local(format!("{}: {e}", path.display())))?;
            files.insert(name.to_owned(), json!(text));
        }
    }
    if files.is_empty() {
        return Err(CliError::Usage(format!(
            "{}: no .rego files to compare",
            dir.display()
        )));
    }
    Ok(files)
}

async fn policy_impact(
    client: &Client,
    fmt: OutputFormat,
    dir: &Path,
    since: &str,
    until: Option<&str>,
    limit: i64,
) -> Result<(), CliError> {
    let mut body = json!({"candidate": {"files": candidate_files(dir)?}, "since": since,
        "limit": limit, "background": true});
    if let Some(until) = until {
        body["until"] = json!(until);
    }
    let started = client.post("/v1/policy/impact", &body, &[]).await?;
    let job = started["job_id"]
        .as_str()
        .ok_or_else(|| CliError::Local(format!("no job id in the answer: {started}")))?
        .to_owned();
    let job = follow_impact_job(client, &job, started["total"].as_u64().unwrap_or(0)).await?;
    let report = job["report"].clone();
    if fmt.structured() {
        print_value(fmt, &report);
        return Ok(());
    }
    println!(
        "{} decisions re-evaluated, {} would change{}",
        cell(&report, &["evaluated"]),
        cell(&report, &["changed"]),
        if report["truncated"] == true {
            " (limit reached: more decisions were not evaluated)"
        } else {
            ""
        }
    );
    let counts = |key: &str| -> Vec<Vec<String>> {
        report[key]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| vec![k.clone(), v.to_string()])
            .collect()
    };
    for (title, key) in [
        ("CHANGE", "by_transition"),
        ("ACTION", "by_action"),
        ("ENVIRONMENT", "by_environment"),
    ] {
        let rows = counts(key);
        if !rows.is_empty() {
            println!();
            print!("{}", table(&[title, "COUNT"], &rows));
        }
    }
    Ok(())
}

/// Follows a background impact job to its end (see [`crate::jobs::follow`]).
async fn follow_impact_job(client: &Client, job: &str, total: u64) -> Result<Value, CliError> {
    crate::jobs::follow(
        client,
        &crate::jobs::Job {
            what: "policy impact job",
            kind: "policy.impact",
            id_field: "job_id",
            id: job,
            path: format!("/v1/policy/impact/{job}"),
            verb: "re-evaluating",
            done_field: "evaluated",
        },
        total,
    )
    .await
}

async fn policy_whatif(
    client: &Client,
    fmt: OutputFormat,
    plan_id: &str,
    dir: Option<&Path>,
) -> Result<(), CliError> {
    let body = match dir {
        Some(dir) => json!({"candidate": {"files": candidate_files(dir)?}}),
        None => json!({}),
    };
    let answer = client
        .post(&format!("/v1/plans/{plan_id}/whatif"), &body, &[])
        .await?;
    if fmt.structured() {
        print_value(fmt, &answer);
        return Ok(());
    }
    let decision = |v: &Value| {
        if v.is_null() {
            "-".to_owned()
        } else {
            cell(v, &["decision"])
        }
    };
    let mut rows = vec![vec![
        "plan".to_owned(),
        decision(&answer["plan"]["current"]),
        decision(&answer["plan"]["candidate"]),
        if answer["plan"]["changed"] == true {
            "CHANGED"
        } else {
            ""
        }
        .to_owned(),
    ]];
    for step in answer["steps"].as_array().into_iter().flatten() {
        rows.push(vec![
            format!(
                "{}. {}",
                step["index"].as_u64().unwrap_or(0) + 1,
                cell(step, &["step"])
            ),
            decision(&step["current"]),
            decision(&step["candidate"]),
            if step["changed"] == true {
                "CHANGED"
            } else {
                ""
            }
            .to_owned(),
        ]);
    }
    print!("{}", table(&["WHAT", "LOADED", "CANDIDATE", ""], &rows));
    // For every change, the candidate's rules that made it.
    for step in answer["steps"].as_array().into_iter().flatten() {
        if step["changed"] != true {
            continue;
        }
        for rule in step["candidate"]["rules"].as_array().into_iter().flatten() {
            if rule["rule"] == "decision" {
                continue;
            }
            println!(
                "  step {}: {} {} ({})",
                step["index"].as_u64().unwrap_or(0) + 1,
                cell(rule, &["rule"]),
                rule["value"],
                cell(rule, &["at"])
            );
        }
    }
    Ok(())
}

/// `6 services, ... (at approval, 3m ago)` from a plan's `blast_radius`; `-` for plans made
/// before estimates existed.
fn blast_radius_line(blast: &Value) -> String {
    if blast.is_null() {
        return "-".into();
    }
    let stage = match blast["stage"].as_str() {
        Some("approval") => "at approval",
        _ => "with the revision",
    };
    let age = carapulse_core::blast_radius::age(blast["age_secs"].as_i64().unwrap_or(0));
    format!(
        "{} (estimated {stage}, {age} ago)",
        blast["headline"].as_str().unwrap_or("-")
    )
}

/// The services a plan's change reaches, nearest first (at most 20 rows), as a table; empty
/// when the estimate is unknown or reaches nothing.
fn affected_services(blast: &Value) -> String {
    const ROWS: usize = 20;
    let services = blast["estimate"]["services"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if services.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = services
        .iter()
        .take(ROWS)
        .map(|s| {
            vec![
                cell(s, &["name"]),
                cell(s, &["depth"]),
                cell(s, &["namespace"]),
                cell(s, &["team"]),
                cell(s, &["tier"]),
                format!("{:.1}", s["rps_in"].as_f64().unwrap_or(0.0)),
            ]
        })
        .collect();
    let mut out = format!(
        "\n{}",
        table(
            &["SERVICE", "HOPS", "NAMESPACE", "TEAM", "TIER", "REQ/S IN"],
            &rows
        )
    );
    let total = blast["estimate"]["service_count"]
        .as_u64()
        .unwrap_or(services.len() as u64);
    if total as usize > ROWS {
        out.push_str(&format!("... and {} more\n", total as usize - ROWS));
    }
    out
}

#[cfg(test)]
mod verification_text_tests {
    use super::*;

    #[test]
    fn diagnostics_say_demo_mode_first_and_name_failures() {
        let demo = serde_json::json!({
            "demo": true, "version": "1.0.0",
            "database": {"ok": true},
            "orchestrator": {"temporal": {"ok": false, "error": "connection refused"}},
            "tool_router": {"ok": true, "demo": {"cli_dir": "/src/e2e/fakes", "clis": ["helm", "kubectl"]}},
            "policy": {"files": ["a.rego", "b.rego"]},
        });
        let text = diagnostics_text(&demo);
        assert!(
            text.starts_with("DEMO MODE: the tool router runs recording fakes (helm, kubectl) from /src/e2e/fakes"),
            "{text}"
        );
        assert!(text.contains("FAILING: connection refused"), "{text}");
        assert!(text.contains("policy_files  2\n"), "{text}");
        let real = serde_json::json!({"demo": false, "tool_router": {"ok": true}});
        assert!(
            !diagnostics_text(&real).contains("DEMO"),
            "no banner without demo mode"
        );
    }

    #[test]
    fn captures_preconditions_and_samples_are_printed() {
        let v = json!({
            "captures": {"revision": {"value": 4, "path": ".version"}},
            "preconditions": [{"passed": true, "checks": [{"outcome": {"verdict": "passed", "reason": ".replicas >= 3 holds"}}]}],
            "analyses": [{"ordinal": 2, "verdict": "failed", "reason": "0.31 <= 0.05 is false",
                          "samples": [{"number": 1, "verdict": "failed", "measured": ["0.31"], "threshold": 0.05, "at": "t1"}]}],
            "awaiting_decision": true
        });
        let text = verification_text(&v);
        assert!(text.contains("revision = 4  (.version)"), "{text}");
        assert!(text.contains("Preconditions: met"), "{text}");
        assert!(
            text.contains("Analysis of step 2: failed (0.31 <= 0.05 is false)"),
            "{text}"
        );
        assert!(
            text.contains("[\"0.31\"]") && text.contains("0.05"),
            "{text}"
        );
        assert!(text.contains("exec decide"), "{text}");
        assert_eq!(verification_text(&json!(null)), "");
    }
}
