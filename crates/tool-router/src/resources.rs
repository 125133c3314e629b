//! What the workspace folder offers to agents that talk to the router (the Go version's
//! `/v1/resources`, `/v1/prompts` and `/v1/resources:resolve`): the runbooks, playbooks and
//! catalogue workflows as `runbook://`, `playbook://` and `workflow://` URIs, prompts from
//! `memory/prompts.json`, and the content behind one URI.
//!
//! Unlike the Go version, resolution is exact (no substring match), confined to the workspace
//! folder (no path leaves it, symlinks included), size-capped, and does not fetch artifacts from
//! Git or S3: those are read only as a Helm `values_ref`, where the grant and tenant checks apply.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use carapulse_core::workspace as ws;

/// Largest document `resolve` returns.
pub const MAX_RESOLVED_BYTES: u64 = 1 << 20;

/// One listed resource.
fn entry(kind: &str, name: &str, uri: String) -> Value {
    json!({"name": name, "type": kind, "uri": uri})
}

/// Every resource of the workspace (`None`: no workspace folder) and the catalogue workflows.
pub fn list(workspace: Option<&Path>) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(root) = workspace {
        for dir in ws::folders(&root.join("runbooks")) {
            let service = ws::name(&dir);
            for file in ws::files(&dir, ws::RUNBOOK_EXTENSIONS) {
                let label = format!("{service}/{}", ws::stem(&file));
                out.push(entry("runbook", &label, format!("runbook://{label}")));
            }
        }
        for file in ws::files(&root.join("playbooks"), ws::PLAYBOOK_EXTENSIONS) {
            let name = ws::stem(&file);
            out.push(entry("playbook", name, format!("playbook://{name}")));
        }
    }
    for w in carapulse_core::workflows::CATALOGUE {
        out.push(entry("workflow", w.name, format!("workflow://{}", w.name)));
    }
    out
}

/// Prompts from `memory/prompts.json` (an array of `{name, body}`; entries without both are
/// skipped). An unreadable or malformed file is an error naming it.
pub fn prompts(workspace: Option<&Path>) -> Result<Vec<Value>, String> {
    let Some(root) = workspace else {
        return Ok(Vec::new());
    };
    let path = root.join("memory/prompts.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("memory/prompts.json: {e}")),
    };
    let items: Vec<Value> =
        serde_json::from_str(&text).map_err(|e| format!("memory/prompts.json: {e}"))?;
    Ok(items
        .into_iter()
        .filter(|p| {
            p.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty())
                && p.get("body").and_then(Value::as_str).is_some()
        })
        .map(|p| json!({"name": p["name"], "body": p["body"]}))
        .collect())
}

/// Why a URI could not be resolved.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ResolveError {
    #[error("{0}")]
    Invalid(String),
    #[error("no such resource")]
    NotFound,
    #[error("larger than {MAX_RESOLVED_BYTES} bytes")]
    TooLarge,
}

/// A path segment that names a file, not a way out of its folder.
fn plain(segment: &str) -> Result<&str, ResolveError> {
    let ok = !segment.is_empty()
        && segment.len() <= 200
        && segment != "."
        && segment != ".."
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(segment)
    } else {
        Err(ResolveError::Invalid(format!(
            "{segment:?} is not a plain name (letters, digits, '-', '_', '.')"
        )))
    }
}

/// The content behind `uri`: `{uri, type, media_type, content}`.
pub fn resolve(workspace: Option<&Path>, uri: &str) -> Result<Value, ResolveError> {
    let (scheme, rest) = uri.split_once("://").ok_or_else(|| {
        ResolveError::Invalid("expected runbook://, playbook:// or workflow://".into())
    })?;
    // A version query (`?version=2`, the Go form) is accepted and ignored: the folder holds one.
    let rest = rest.split('?').next().unwrap_or_default();
    if scheme == "workflow" {
        let template =
            carapulse_core::workflows::find(plain(rest)?).ok_or(ResolveError::NotFound)?;
        return Ok(
            json!({"uri": uri, "type": "workflow", "media_type": "application/json",
                         "content": template.describe()}),
        );
    }
    let root = workspace.ok_or(ResolveError::NotFound)?;
    let candidates: Vec<PathBuf> = match scheme {
        "runbook" => {
            let (service, name) = rest
                .split_once('/')
                .ok_or_else(|| ResolveError::Invalid("runbook://<service>/<name>".into()))?;
            let (service, name) = (plain(service)?, plain(name)?);
            ws::RUNBOOK_EXTENSIONS
                .iter()
                .map(|ext| root.join("runbooks").join(service).join(format!("{name}.{ext}")))
                .collect()
        }
        "playbook" => {
            let name = plain(rest)?;
            ws::PLAYBOOK_EXTENSIONS
                .iter()
                .map(|ext| root.join("playbooks").join(format!("{name}.{ext}")))
                .collect()
        }
        other => {
            return Err(ResolveError::Invalid(format!(
                "unsupported scheme {other:?}: runbook, playbook or workflow (artifacts from Git or S3 are read only as a Helm values_ref)"
            )))
        }
    };
    let path = candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or(ResolveError::NotFound)?;
    // A symlink must not lead out of the workspace folder.
    let (real, real_root) = (
        path.canonicalize().map_err(|_| ResolveError::NotFound)?,
        root.canonicalize().map_err(|_| ResolveError::NotFound)?,
    );
    if !real.starts_with(&real_root) {
        return Err(ResolveError::NotFound);
    }
    let size = std::fs::metadata(&real)
        .map_err(|_| ResolveError::NotFound)?
        .len();
    if size > MAX_RESOLVED_BYTES {
        return Err(ResolveError::TooLarge);
    }
    let content = std::fs::read_to_string(&real).map_err(|_| ResolveError::NotFound)?;
    let media_type = match real.extension().and_then(|e| e.to_str()) {
        Some("json") => "application/json",
        Some("yaml" | "yml") => "application/yaml",
        _ => "text/markdown",
    };
    Ok(json!({"uri": uri, "type": scheme, "media_type": media_type, "content": content}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("runbooks/web")).unwrap();
        std::fs::create_dir_all(root.join("playbooks")).unwrap();
        std::fs::create_dir_all(root.join("memory")).unwrap();
        std::fs::write(root.join("runbooks/web/restart.md"), "# Restart web").unwrap();
        std::fs::write(
            root.join("playbooks/latency.yaml"),
            "alertname: HighLatency\n",
        )
        .unwrap();
        std::fs::write(
            root.join("memory/prompts.json"),
            r#"[{"name": "triage", "body": "Look at the alerts first"}, {"name": ""}]"#,
        )
        .unwrap();
        dir
    }

    #[test]
    fn lists_prompts_and_resolves_exactly_inside_the_workspace() {
        let dir = workspace();
        let root = Some(dir.path());
        let uris: Vec<String> = list(root)
            .iter()
            .map(|r| r["uri"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            uris.contains(&"runbook://web/restart".to_owned()),
            "{uris:?}"
        );
        assert!(uris.contains(&"playbook://latency".to_owned()), "{uris:?}");
        assert!(
            uris.contains(&"workflow://scale_service".to_owned()),
            "{uris:?}"
        );
        let p = prompts(root).unwrap();
        assert_eq!(p.len(), 1, "the nameless prompt is skipped");
        assert_eq!(p[0]["name"], "triage");

        let r = resolve(root, "runbook://web/restart?version=1").unwrap();
        assert_eq!(r["content"], "# Restart web");
        assert_eq!(r["media_type"], "text/markdown");
        let w = resolve(root, "workflow://scale_service").unwrap();
        assert_eq!(w["content"]["name"], "scale_service");
        // Exact, not a substring match (the Go version's defect).
        assert_eq!(
            resolve(root, "runbook://web/rest"),
            Err(ResolveError::NotFound)
        );
        assert_eq!(
            resolve(root, "playbook://laten"),
            Err(ResolveError::NotFound)
        );
        // No way out of the folder.
        assert!(matches!(
            resolve(root, "runbook://../etc/passwd"),
            Err(ResolveError::Invalid(_))
        ));
        assert!(matches!(
            resolve(root, "runbook://web/..%2Fsecret"),
            Err(ResolveError::Invalid(_))
        ));
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("runbooks/web/escape.md"))
            .unwrap();
        assert_eq!(
            resolve(root, "runbook://web/escape"),
            Err(ResolveError::NotFound)
        );
        assert!(matches!(
            resolve(root, "s3://bucket/key"),
            Err(ResolveError::Invalid(_))
        ));
        // Too large.
        std::fs::write(
            dir.path().join("runbooks/web/huge.md"),
            vec![b'x'; (MAX_RESOLVED_BYTES + 1) as usize],
        )
        .unwrap();
        assert_eq!(
            resolve(root, "runbook://web/huge"),
            Err(ResolveError::TooLarge)
        );
        // Without a workspace: only the catalogue.
        assert!(list(None).iter().all(|r| r["type"] == "workflow"));
        assert_eq!(
            resolve(None, "playbook://latency"),
            Err(ResolveError::NotFound)
        );
    }
}
