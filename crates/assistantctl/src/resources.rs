//! Sessions, schedules, playbooks, runbooks and memory: list as tables, show documents as
//! JSON/YAML, write with the same flags the API takes.

use serde_json::{json, Value};

use crate::client::{CliError, Client};
use crate::commands::{get_list, json_arg, pagination_footer};
use crate::output::{cell, print_value, table, OutputFormat};
use crate::{DocCommand, MemoryCommand, ScheduleCommand, SessionCommand};

fn show(fmt: OutputFormat, value: &Value) {
    print_value(
        if fmt.structured() {
            fmt
        } else {
            OutputFormat::Yaml
        },
        value,
    );
}

fn list(fmt: OutputFormat, body: &Value, headers: &[&str], fields: &[&[&str]]) {
    if fmt.structured() {
        print_value(fmt, body);
        return;
    }
    let rows: Vec<Vec<String>> = body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| fields.iter().map(|f| cell(item, f)).collect())
        .collect();
    print!("{}", table(headers, &rows));
    eprintln!("{}", pagination_footer(body));
}

fn text_arg(raw: &str) -> Result<String, CliError> {
    match raw.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| CliError::Local(format!("{path}: {e}")))
        }
        None => Ok(raw.to_owned()),
    }
}

pub async fn session(
    client: &Client,
    fmt: OutputFormat,
    cmd: SessionCommand,
) -> Result<(), CliError> {
    match cmd {
        SessionCommand::Create {
            name,
            group,
            members,
        } => {
            let v = client
                .post(
                    "/v1/sessions",
                    &json!({"name": name, "group": group, "members": members}),
                    &[],
                )
                .await?;
            show(fmt, &v);
        }
        SessionCommand::List { all, group, page } => {
            let filters = vec![("all", all.then(|| "true".to_owned())), ("group", group)];
            let body = get_list(client, "/v1/sessions", filters, &page).await?;
            list(
                fmt,
                &body,
                &["SESSION", "NAME", "GROUP", "OWNER", "CREATED"],
                &[
                    &["session_id"],
                    &["name"],
                    &["group"],
                    &["owner_actor_id"],
                    &["created_at"],
                ],
            );
        }
        SessionCommand::Get { id } => show(fmt, &client.get(&format!("/v1/sessions/{id}")).await?),
        SessionCommand::AddMember { id, member, role } => {
            client
                .post(
                    &format!("/v1/sessions/{id}/members"),
                    &json!({"member_id": member, "role": role}),
                    &[],
                )
                .await?;
            eprintln!("{member} added to {id}");
        }
        SessionCommand::Update {
            id,
            name,
            group,
            no_group,
            metadata,
        } => {
            let mut body = serde_json::Map::new();
            if let Some(name) = name {
                body.insert("name".into(), json!(name));
            }
            if no_group {
                body.insert("group".into(), Value::Null);
            } else if let Some(group) = group {
                body.insert("group".into(), json!(group));
            }
            if let Some(raw) = metadata {
                body.insert("metadata".into(), json_arg("--metadata", &raw)?);
            }
            let updated = client
                .put(&format!("/v1/sessions/{id}"), &Value::Object(body))
                .await?;
            show(fmt, &updated);
        }
        SessionCommand::Delete { id } => {
            client.delete(&format!("/v1/sessions/{id}")).await?;
            eprintln!("session {id} deleted");
        }
        SessionCommand::RemoveMember { id, member } => {
            client
                .delete(&format!("/v1/sessions/{id}/members/{member}"))
                .await?;
            eprintln!("{member} removed from {id}");
        }
    }
    Ok(())
}

pub async fn schedule(
    client: &Client,
    fmt: OutputFormat,
    cmd: ScheduleCommand,
) -> Result<(), CliError> {
    match cmd {
        ScheduleCommand::Create(a) => {
            let mut context = json!({"environment": a.environment});
            if let Some(ns) = &a.namespace {
                context["namespace"] = json!(ns);
            }
            let mut body = json!({"summary": a.summary, "timezone": a.timezone, "context": context,
                                  "missed_run_policy": a.missed, "enabled": !a.disabled});
            if let Some(cron) = &a.cron {
                body["cron"] = json!(cron);
            }
            match (&a.workflow, &a.intent) {
                (Some(name), _) => {
                    let input = json_arg("--input", a.input.as_deref().unwrap_or("{}"))?;
                    body["workflow"] = json!({"name": name, "input": input});
                }
                (None, Some(intent)) => body["intent"] = json!(intent),
                (None, None) => {
                    return Err(CliError::Usage(
                        "give --workflow NAME --input JSON, or --intent TEXT".into(),
                    ))
                }
            }
            show(fmt, &client.post("/v1/schedules", &body, &[]).await?);
        }
        ScheduleCommand::List { enabled, page } => {
            let filters = vec![("enabled", enabled.map(|e| e.to_string()))];
            let body = get_list(client, "/v1/schedules", filters, &page).await?;
            list(
                fmt,
                &body,
                &["SCHEDULE", "CRON", "TZ", "ENABLED", "NEXT RUN", "SUMMARY"],
                &[
                    &["schedule_id"],
                    &["cron"],
                    &["timezone"],
                    &["enabled"],
                    &["next_run_at"],
                    &["summary"],
                ],
            );
        }
        ScheduleCommand::Get { id } => {
            show(fmt, &client.get(&format!("/v1/schedules/{id}")).await?)
        }
        ScheduleCommand::Delete { id } => {
            client.delete(&format!("/v1/schedules/{id}")).await?;
            eprintln!("schedule {id} deleted");
        }
    }
    Ok(())
}

pub async fn doc(
    client: &Client,
    fmt: OutputFormat,
    shelf: &str,
    cmd: DocCommand,
) -> Result<(), CliError> {
    match cmd {
        DocCommand::List {
            name,
            service,
            tag,
            page,
        } => {
            let filters = vec![("name", name), ("service", service), ("tag", tag)];
            let body = get_list(client, &format!("/v1/{shelf}"), filters, &page).await?;
            list(
                fmt,
                &body,
                &["ID", "NAME", "SERVICE", "VERSION", "CREATED BY"],
                &[
                    &["id"],
                    &["name"],
                    &["service"],
                    &["version"],
                    &["created_by"],
                ],
            );
        }
        DocCommand::Get { id } => show(fmt, &client.get(&format!("/v1/{shelf}/{id}")).await?),
        DocCommand::Create {
            name,
            service,
            spec,
            body,
            tags,
        } => {
            let mut doc = json!({"name": name, "tags": tags});
            if let Some(s) = service {
                doc["service"] = json!(s);
            }
            if let Some(s) = spec {
                doc["spec"] = json_arg("--spec", &s)?;
            }
            if let Some(b) = body {
                doc["body"] = json!(text_arg(&b)?);
            }
            show(fmt, &client.post(&format!("/v1/{shelf}"), &doc, &[]).await?);
        }
        DocCommand::Update {
            id,
            spec,
            body,
            tags,
        } => {
            let mut doc = json!({"tags": tags});
            if let Some(s) = spec {
                doc["spec"] = json_arg("--spec", &s)?;
            }
            if let Some(b) = body {
                doc["body"] = json!(text_arg(&b)?);
            }
            show(fmt, &client.put(&format!("/v1/{shelf}/{id}"), &doc).await?);
        }
        DocCommand::Delete { id } => {
            client.delete(&format!("/v1/{shelf}/{id}")).await?;
            eprintln!("{id} deleted");
        }
    }
    Ok(())
}

pub async fn memory(
    client: &Client,
    fmt: OutputFormat,
    cmd: MemoryCommand,
) -> Result<(), CliError> {
    match cmd {
        MemoryCommand::List { q, tag, page } => {
            let body = get_list(client, "/v1/memory", vec![("q", q), ("tag", tag)], &page).await?;
            list(
                fmt,
                &body,
                &["NOTE", "TITLE", "UPDATED", "OWNER"],
                &[
                    &["memory_id"],
                    &["title"],
                    &["updated_at"],
                    &["owner_actor_id"],
                ],
            );
        }
        MemoryCommand::Add { title, body, tags } => {
            let v = client
                .post(
                    "/v1/memory",
                    &json!({"title": title, "body": text_arg(&body)?, "tags": tags}),
                    &[],
                )
                .await?;
            show(fmt, &v);
        }
        MemoryCommand::Get { id } => show(fmt, &client.get(&format!("/v1/memory/{id}")).await?),
        MemoryCommand::Delete { id } => {
            client.delete(&format!("/v1/memory/{id}")).await?;
            eprintln!("note {id} deleted");
        }
    }
    Ok(())
}
