//! Loading playbooks and runbooks from the workspace folder (`storage.workspace_dir`), so teams
//! can keep them in Git: `playbooks/<name>.yaml|yml|json` (an alert rule: `alertname`,
//! `match_labels`, `workflow`, `input`, optional `tags`) and `runbooks/<service>/<name>.md`.
//! They belong to the workspace's tenant (`context.tenant_id`). A file adds a version only when
//! its content differs from the newest stored one; a bad file is reported and skipped. Loads
//! run at gateway start and on `POST /v1/library/reload`, one at a time.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Value};

use carapulse_core::audit::{AuditActor, AuditDecision, AuditEntry};
use carapulse_core::model::TenantId;
use carapulse_core::planner::rules::PlaybookRule;
use carapulse_core::store::{Page, Shelf};

use crate::state::AppState;

/// What a load did.
#[derive(Debug, Default, Serialize)]
pub struct LoadReport {
    pub added: Vec<String>,
    pub unchanged: usize,
    pub errors: Vec<String>,
}

fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| exts.contains(&e))
        })
        .collect();
    out.sort();
    out
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned()
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
    for path in files(&root.join("playbooks"), &["yaml", "yml", "json"]) {
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
    let runbooks = root.join("runbooks");
    let mut services: Vec<PathBuf> = std::fs::read_dir(&runbooks)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    services.sort();
    for dir in services {
        let service = dir
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        for path in files(&dir, &["md", "markdown"]) {
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
    guard.commit().await.map_err(|e| e.to_string())?;
    Ok(report)
}
