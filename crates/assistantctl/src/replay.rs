//! `assistantctl replay run|get|list`: incident replay from the terminal. A run starts in the
//! background, a progress bar follows it, and the summary and the incidents that changed are
//! printed as tables (or the whole run as JSON/YAML with `-o`).

use serde_json::{json, Value};

use crate::client::{CliError, Client};
use crate::output::{cell, print_value, table, OutputFormat};
use crate::{ReplayCommand, ReplayRunArgs};

pub async fn run(client: &Client, fmt: OutputFormat, cmd: ReplayCommand) -> Result<(), CliError> {
    match cmd {
        ReplayCommand::Run(args) => start(client, fmt, &args).await,
        ReplayCommand::Get { replay_id, changed } => {
            let run = client
                .get(&format!(
                    "/v1/replays/{replay_id}?limit=500&changed={changed}"
                ))
                .await?;
            show(fmt, &run);
            Ok(())
        }
        ReplayCommand::List => {
            let list = client.get("/v1/replays?limit=50").await?;
            if fmt.structured() {
                print_value(fmt, &list);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    vec![
                        cell(r, &["replay_id"]),
                        cell(r, &["status"]),
                        cell(r, &["request", "source", "kind"]),
                        cell(r, &["request", "planner"]),
                        cell(r, &["request", "policy", "choice"]),
                        format!("{}/{}", cell(r, &["replayed"]), cell(r, &["total"])),
                        cell(r, &["changed"]),
                        cell(r, &["created_at"]),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &[
                        "REPLAY", "STATUS", "SOURCE", "PLANNER", "POLICY", "DONE", "CHANGED",
                        "CREATED"
                    ],
                    &rows
                )
            );
            Ok(())
        }
    }
}

/// The request body of `args`.
fn body(args: &ReplayRunArgs) -> Result<Value, CliError> {
    let source = match (&args.plan, &args.alert, &args.since) {
        (Some(plan), None, None) => json!({"plan_id": plan}),
        (None, Some(alert), None) => json!({"alert_event_id": alert}),
        (None, None, Some(since)) => {
            let mut s = json!({"since": since});
            if let Some(until) = &args.until {
                s["until"] = json!(until);
            }
            s
        }
        _ => {
            return Err(CliError::Usage(
                "give one of --plan, --alert or --since".into(),
            ))
        }
    };
    let mut body = json!({"source": source, "planner": args.planner, "background": true});
    if let Some(dir) = &args.policy_dir {
        body["policy"] = json!("candidate");
        body["candidate"] = json!({"files": crate::commands::candidate_files(dir)?});
    }
    if let Some(path) = &args.playbooks {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::Local(format!("{}: {e}", path.display())))?;
        let playbooks: Value = serde_json::from_str(&text)
            .map_err(|e| CliError::Usage(format!("{}: not JSON: {e}", path.display())))?;
        if !playbooks.is_array() {
            return Err(CliError::Usage(format!(
                "{}: expected a JSON array of playbooks",
                path.display()
            )));
        }
        body["playbooks"] = json!("candidate");
        body["candidate_playbooks"] = playbooks;
    }
    Ok(body)
}

async fn start(client: &Client, fmt: OutputFormat, args: &ReplayRunArgs) -> Result<(), CliError> {
    let started = client.post("/v1/replays", &body(args)?, &[]).await?;
    let id = started["replay_id"]
        .as_str()
        .ok_or_else(|| CliError::Local(format!("no replay id in the answer: {started}")))?
        .to_owned();
    crate::jobs::follow(
        client,
        &crate::jobs::Job {
            what: "replay",
            kind: "replay.progress",
            id_field: "replay_id",
            id: &id,
            path: format!("/v1/replays/{id}?limit=1"),
            verb: "replaying",
            done_field: "replayed",
        },
        started["total"].as_u64().unwrap_or(0),
    )
    .await?;
    let run = client
        .get(&format!(
            "/v1/replays/{id}?limit=500&changed={}",
            args.changed
        ))
        .await?;
    show(fmt, &run);
    Ok(())
}

/// One side of an incident in a cell: the decision and approvers, or the gate that stopped it.
fn side(s: &Value) -> String {
    match s["decision"].as_str() {
        Some(decision) => {
            let approvers = s["approvals_required"].as_u64().unwrap_or(0);
            if approvers > 0 {
                format!(
                    "{decision} ({approvers} approver{})",
                    if approvers == 1 { "" } else { "s" }
                )
            } else {
                decision.to_owned()
            }
        }
        None => s["gate"].as_str().unwrap_or("-").to_owned(),
    }
}

fn show(fmt: OutputFormat, run: &Value) {
    if fmt.structured() {
        print_value(fmt, run);
        return;
    }
    let summary = &run["summary"];
    println!(
        "replay {}: {} — {} incidents, {} changed, {} unchanged",
        cell(run, &["replay_id"]),
        cell(run, &["status"]),
        cell(run, &["total"]),
        cell(summary, &["changed"]),
        cell(summary, &["unchanged"]),
    );
    println!(
        "planner {}, policy {}, playbooks {}; report {}",
        cell(run, &["request", "planner"]),
        cell(run, &["request", "policy", "choice"]),
        cell(run, &["request", "playbooks", "choice"]),
        cell(run, &["report_hash"]),
    );
    let counts: Vec<Vec<String>> = summary["by_transition"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| vec![k.clone(), v.to_string()])
        .collect();
    if !counts.is_empty() {
        println!();
        print!("{}", table(&["CHANGE", "INCIDENTS"], &counts));
    }
    let rows: Vec<Vec<String>> = run["incidents"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| &i["result"])
        .map(|r| {
            let what = r["alertname"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| cell(r, &["plan_id"]));
            let notes: Vec<String> = r["drift"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(r["missing"].as_array().into_iter().flatten())
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            vec![
                cell(r, &["seq"]),
                what,
                cell(r, &["service"]),
                side(&r["original"]),
                side(&r["replayed"]),
                r["changes"]
                    .as_array()
                    .map(|c| {
                        c.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "-".into()),
                if notes.is_empty() {
                    "-".into()
                } else {
                    notes.join("; ")
                },
            ]
        })
        .collect();
    if !rows.is_empty() {
        println!();
        print!(
            "{}",
            table(
                &["#", "INCIDENT", "SERVICE", "ORIGINAL", "REPLAYED", "CHANGES", "NOTES"],
                &rows
            )
        );
    }
    if !run["next_after"].is_null() {
        println!(
            "(more incidents: assistantctl replay get {} -o json)",
            cell(run, &["replay_id"])
        );
    }
}
