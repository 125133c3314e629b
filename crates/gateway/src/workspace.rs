//! Loading playbooks and runbooks from the workspace folder (`storage.workspace_dir`), so teams
//! can keep them in Git: `playbooks/<name>.yaml|yml|json` (an alert rule: `alertname`,
//! `match_labels`, `workflow`, `input`, optional `tags`) and `runbooks/<service>/<name>.md`.
//! They belong to the workspace's tenant (`context.tenant_id`). A file adds a version only when
//! its content differs from the newest stored one; a bad file is reported and skipped. Loads
//! run at gateway start and on `POST /v1/library/reload`, one at a time.
//!
//! The Go version's workspace files are read too, so a team moving over keeps its library:
//! `memory/runbooks.json` (an array of `{service, name, body, tags}`) adds runbook versions and
//! `memory/operator_memory.json` (an array of `{title, body, tags}`) adds memory notes not
//! already stored with the same title and body. Entries naming another `tenant_id` are skipped
//! and reported.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Value};

use carapulse_core::audit::{AuditActor, AuditDecision, AuditEntry};
use carapulse_core::model::TenantId;
use carapulse_core::planner::rules::PlaybookRule;
use carapulse_core::store::{Page, Shelf};
use carapulse_core::workspace::{
    files, folders, name as folder_name, PLAYBOOK_EXTENSIONS, RUNBOOK_EXTENSIONS,
};

use crate::state::AppState;

/// What a load did.
#[derive(Debug, Default, Serialize)]
pub struct LoadReport {
    pub added: Vec<String>,
    pub unchanged: usize,
    pub errors: Vec<String>,
}

fn stem(path: &Path) -> String {
    carapulse_core::workspace::stem(path).to_owned()
}

fn parse_playbook(path: &Path) -> Result<(Value, Vec<String>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut doc: Value = if path.extension().and_then(|e| e.to_str()) == Some("json") {
        serde_json::from_str(&text).map_err(|e| e.to_string())?
    } else {
        serde_saphyr::from_str(&text).map_err(|e| e.to_string())?
    };
    let obj = doc.as_object_mut().ok_or("a playbook must be a mapping")?;
    let tags: Vec<String> = obj
        .remove("tags")
        .map(|t| serde_json::from_value(t).map_err(|e| format!("tags: {e}")))
        .transpose()?
        .unwrap_or_default();
    obj.remove("name");
    let mut with_name = doc.clone();
    with_name["name"] = json!(stem(path));
    let rule: PlaybookRule = serde_json::from_value(with_name).map_err(|e| e.to_string())?;
    if carapulse_core::workflows::find(&rule.workflow).is_none() {
        return Err(format!(
            "workflow {:?} is not in the catalogue",
            rule.workflow
        ));
    }
    Ok((doc, tags))
}

/// The audit event of one document version loaded from the workspace folder (it commits with
/// the version).
fn loaded(tenant: &TenantId, action: &str, label: &str) -> AuditEntry {
    AuditEntry::new(
        tenant.clone(),
        AuditActor::system(),
        action,
        AuditDecision::Allow,
    )
    .reason(format!("loaded from the workspace folder: {label}"))
}

/// Loads the workspace library into the workspace tenant.
pub async fn load(state: &AppState) -> Result<LoadReport, String> {
    let Some(root) = state
        .config
        .storage
        .workspace_dir
        .as_deref()
        .map(PathBuf::from)
    else {
        return Err("storage.workspace_dir is not set".into());
    };
    let tenant = TenantId::parse(&state.config.context.tenant_id)
        .map_err(|_| "context.tenant_id (the workspace's tenant) is not set".to_owned())?;
    // One load at a time, across replicas too: a transaction-scoped advisory lock held for the
    // whole load (the comparison with the newest version must not race another load).
    let mut guard = state
        .store
        .pool()
        .begin()
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('carapulse:workspace-library'))")
        .execute(&mut *guard)
        .await
        .map_err(|e| e.to_string())?;
    let mut report = LoadReport::default();
    let actor = "workspace";
    for path in files(&root.join("playbooks"), PLAYBOOK_EXTENSIONS) {
        let name = stem(&path);
        let label = format!(
            "playbooks/{}",
            path.file_name().and_then(|f| f.to_str()).unwrap_or("")
        );
        let (spec, tags) = match parse_playbook(&path) {
            Ok(p) => p,
            Err(e) => {
                report.errors.push(format!("{label}: {e}"));
                continue;
            }
        };
        let latest = state
            .store
            .list_latest(
                Shelf::Playbooks,
                &tenant,
                Some(&name),
                None,
                None,
                Page::new(Some(1), None),
            )
            .await
            .map_err(|e| e.to_string())?;
        if latest
            .items
            .first()
            .is_some_and(|d| d.spec == spec && d.tags == json!(tags))
        {
            report.unchanged += 1;
            continue;
        }
        state
            .store
            .add_version(
                Shelf::Playbooks,
                &tenant,
                "",
                &name,
                &json!(tags),
                &spec,
                None,
                actor,
                loaded(&tenant, "playbook.load", &label),
            )
            .await
            .map_err(|e| e.to_string())?;
        report.added.push(label);
    }
    for dir in folders(&root.join("runbooks")) {
        let service = folder_name(&dir).to_owned();
        for path in files(&dir, RUNBOOK_EXTENSIONS) {
            let name = stem(&path);
            let label = format!("runbooks/{service}/{name}");
            let body = match std::fs::read_to_string(&path) {
                Ok(b) if !b.trim().is_empty() && b.len() <= 200_000 => b,
                Ok(_) => {
                    report
                        .errors
                        .push(format!("{label}: empty or larger than 200 kB"));
                    continue;
                }
                Err(e) => {
                    report.errors.push(format!("{label}: {e}"));
                    continue;
                }
            };
            let latest = state
                .store
                .list_latest(
                    Shelf::Runbooks,
                    &tenant,
                    Some(&name),
                    Some(&service),
                    None,
                    Page::new(Some(1), None),
                )
                .await
                .map_err(|e| e.to_string())?;
            if latest
                .items
                .first()
                .is_some_and(|d| d.body.as_deref() == Some(body.as_str()))
            {
                report.unchanged += 1;
                continue;
            }
            state
                .store
                .add_version(
                    Shelf::Runbooks,
                    &tenant,
                    &service,
                    &name,
                    &json!([]),
                    &json!({}),
                    Some(&body),
                    actor,
                    loaded(&tenant, "runbook.load", &label),
                )
                .await
                .map_err(|e| e.to_string())?;
            report.added.push(label);
        }
    }
    load_go_runbooks(state, &root, &tenant, &mut report).await?;
    load_go_memory(state, &root, &tenant, &mut report).await?;
    guard.commit().await.map_err(|e| e.to_string())?;
    Ok(report)
}

/// The entries of a Go workspace file `memory/<file>` (absent: none) with their index in the
/// file, each checked for the workspace tenant.
fn go_entries(
    root: &Path,
    file: &str,
    tenant: &TenantId,
    report: &mut LoadReport,
) -> Vec<(usize, Value)> {
    let path = root.join("memory").join(file);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            report.errors.push(format!("memory/{file}: {e}"));
            return Vec::new();
        }
    };
    let entries: Vec<Value> = match serde_json::from_str(&text) {
        Ok(Value::Array(a)) => a,
        Ok(_) => {
            report
                .errors
                .push(format!("memory/{file}: not a JSON array"));
            return Vec::new();
        }
        Err(e) => {
            report.errors.push(format!("memory/{file}: {e}"));
            return Vec::new();
        }
    };
    entries
        .into_iter()
        .enumerate()
        .filter(|(i, e)| match e.get("tenant_id").and_then(Value::as_str) {
            Some(t) if !t.is_empty() && t != tenant.as_str() => {
                report.errors.push(format!(
                    "memory/{file}[{i}]: tenant {t:?} is not the workspace's ({tenant}); skipped"
                ));
                false
            }
            _ => true,
        })
        .collect()
}

/// A required string field of a Go workspace entry, or the error naming it.
fn field<'a>(entry: &'a Value, key: &str, label: &str) -> Result<&'a str, String> {
    entry
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{label}: {key} is missing or empty"))
}

fn entry_tags(entry: &Value) -> Value {
    json!(entry
        .get("tags")
        .and_then(Value::as_array)
        .map(|t| t.iter().filter_map(Value::as_str).collect::<Vec<_>>())
        .unwrap_or_default())
}

async fn load_go_runbooks(
    state: &AppState,
    root: &Path,
    tenant: &TenantId,
    report: &mut LoadReport,
) -> Result<(), String> {
    for (i, entry) in go_entries(root, "runbooks.json", tenant, report) {
        let at = format!("memory/runbooks.json[{i}]");
        let (name, body) = match (field(&entry, "name", &at), field(&entry, "body", &at)) {
            (Ok(n), Ok(b)) if b.len() <= 200_000 => (n, b),
            (Ok(_), Ok(_)) => {
                report.errors.push(format!("{at}: body larger than 200 kB"));
                continue;
            }
            (Err(e), _) | (_, Err(e)) => {
                report.errors.push(e);
                continue;
            }
        };
        let service = entry
            .get("service")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim();
        let label = format!("memory/runbooks.json: {service}/{name}");
        let latest = state
            .store
            .list_latest(
                Shelf::Runbooks,
                tenant,
                Some(name),
                Some(service),
                None,
                Page::new(Some(1), None),
            )
            .await
            .map_err(|e| e.to_string())?;
        let tags = entry_tags(&entry);
        if latest
            .items
            .first()
            .is_some_and(|d| d.body.as_deref() == Some(body) && d.tags == tags)
        {
            report.unchanged += 1;
            continue;
        }
        state
            .store
            .add_version(
                Shelf::Runbooks,
                tenant,
                service,
                name,
                &tags,
                &json!({}),
                Some(body),
                "workspace",
                loaded(tenant, "runbook.load", &label),
            )
            .await
            .map_err(|e| e.to_string())?;
        report.added.push(label);
    }
    Ok(())
}

async fn load_go_memory(
    state: &AppState,
    root: &Path,
    tenant: &TenantId,
    report: &mut LoadReport,
) -> Result<(), String> {
    for (i, entry) in go_entries(root, "operator_memory.json", tenant, report) {
        let at = format!("memory/operator_memory.json[{i}]");
        let (title, body) = match (field(&entry, "title", &at), field(&entry, "body", &at)) {
            (Ok(t), Ok(b)) if t.chars().count() <= 200 && b.chars().count() <= 20_000 => (t, b),
            (Ok(_), Ok(_)) => {
                report.errors.push(format!(
                    "{at}: title over 200 or body over 20,000 characters"
                ));
                continue;
            }
            (Err(e), _) | (_, Err(e)) => {
                report.errors.push(e);
                continue;
            }
        };
        // Go deduplicated on the title; a note edited since keeps the stored one too.
        let same = state
            .store
            .list_memory(tenant, Some(title), None, Page::new(Some(200), None))
            .await
            .map_err(|e| e.to_string())?;
        if same
            .items
            .iter()
            .any(|m| m.title == title && m.body == body)
        {
            report.unchanged += 1;
            continue;
        }
        let label = format!("memory/operator_memory.json: {title}");
        state
            .store
            .create_memory(
                tenant,
                title,
                body,
                &entry_tags(&entry),
                "workspace",
                loaded(tenant, "memory.load", &label),
            )
            .await
            .map_err(|e| e.to_string())?;
        report.added.push(label);
    }
    Ok(())
}
