//! Helm `values_ref` resolution: fetch the values from a git path in the workspace, the object
//! store, or inline text; verify the optional SHA-256; write them into the command's private
//! working directory as `values.yaml`.
//!
//! Object-store values are read only under `values/<tenant>/` of the calling tenant, and no error
//! reveals a digest or whether another object exists: a values reference must not become a way
//! to read (or fingerprint) someone else's objects, such as stored tool outputs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use carapulse_core::canonical::sha256_hex;
use carapulse_core::config::SandboxConfig;
use carapulse_core::model::ModelError;
use carapulse_core::objects::{valid_key, ObjectStore};
use carapulse_core::redact::Redactor;
use carapulse_core::tools::{FieldKind, ToolInput};

/// Largest values document accepted.
const MAX_VALUES_BYTES: usize = 1024 * 1024;

/// A resolved values file and the directory holding it (removed on drop).
pub struct ResolvedValues {
    pub dir: tempfile::TempDir,
    pub file_name: &'static str,
}

fn bad(field: &str, message: impl Into<String>) -> ModelError {
    ModelError::new(format!("input.values_ref.{field}"), message)
}

/// Reads `<rev>:<path>` from the git repository at `workspace` with `git show`, in the sandbox.
fn git_show(
    (sandbox, runner): (&SandboxConfig, &sandbox_exec::Runner),
    workspace: &Path,
    reference: &str,
) -> Result<Vec<u8>, ModelError> {
    let (rev, path) = reference
        .split_once(':')
        .ok_or_else(|| bad("ref", "git_path refs look like <revision>:<path>"))?;
    FieldKind::GitRef
        .check(&Value::String(rev.into()))
        .map_err(|m| bad("ref", format!("revision: {m}")))?;
    FieldKind::RelPath
        .check(&Value::String(path.into()))
        .map_err(|m| bad("ref", format!("path: {m}")))?;
    let argv = vec!["git".to_owned(), "show".to_owned(), format!("{rev}:{path}")];
    let mut policy = crate::executor::base_policy(sandbox, false);
    policy.working_dir = Some(workspace.to_string_lossy().into_owned());
    policy.timeout_ms = 30_000;
    policy.max_output_bytes = MAX_VALUES_BYTES + 1;
    crate::executor::git_trusts_workspace(&mut policy);
    // The router's own git, not whatever a tool PATH names.
    policy
        .env
        .insert("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into());
    // The values file is read verbatim (not redacted): it is handed to helm, never returned.
    let report = runner
        .run(&argv, &policy, &Redactor::verbatim(), None)
        .map_err(|e| bad("ref", format!("git show failed to start: {e}")))?;
    if !report.succeeded() {
        return Err(bad(
            "ref",
            format!("git show {rev}:{path} failed: {}", report.stderr.trim()),
        ));
    }
    Ok(report.stdout.into_bytes())
}

/// What a values reference may be read from.
pub struct Sources {
    pub tenant: String,
    pub sandbox: SandboxConfig,
    pub runner: Arc<sandbox_exec::Runner>,
    pub workspace: Option<String>,
    pub objects: Arc<dyn ObjectStore>,
}

/// Resolves `values_ref` of a helm action into a file; returns the rewritten input.
pub async fn resolve(
    input: &ToolInput,
    sources: Sources,
) -> Result<Option<(Value, ResolvedValues)>, ModelError> {
    let Some(spec) = input.value("values_ref") else {
        return Ok(None);
    };
    if input.has("values_file") {
        return Err(ModelError::new(
            "input.values_file",
            "give values_file or values_ref, not both",
        ));
    }
    let kind = spec
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("kind", "required: git_path, object_store or inline"))?;
    let reference = spec
        .get("ref")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("ref", "required"))?;
    if let Some(extra) = spec.as_object().and_then(|m| {
        m.keys()
            .find(|k| !["kind", "ref", "sha256"].contains(&k.as_str()))
    }) {
        return Err(bad(extra, "unknown field"));
    }
    let bytes = match kind {
        "inline" => reference.as_bytes().to_vec(),
        "object_store" => {
            // A key, or a reference this store handed out (`fs://…`, `s3://bucket/…`).
            let key = sources.objects.key_of(reference).unwrap_or(reference);
            let prefix = format!("values/{}/", sources.tenant);
            let inside = key.starts_with(&prefix) && key.len() > prefix.len() && valid_key(key);
            if !inside {
                return Err(bad(
                    "ref",
                    format!("object_store values must be under {prefix} (your tenant's values)"),
                ));
            }
            sources
                .objects
                .get(key)
                .await
                .map_err(|_| bad("ref", "no such values object"))?
        }
        "git_path" => {
            let workspace = sources
                .workspace
                .ok_or_else(|| bad("kind", "git_path needs storage.workspace_dir"))?;
            let (sandbox, runner, reference) =
                (sources.sandbox, sources.runner, reference.to_owned());
            tokio::task::spawn_blocking(move || {
                git_show((&sandbox, &runner), Path::new(&workspace), &reference)
            })
            .await
            .map_err(|e| ModelError::new("input.values_ref", format!("git show: {e}")))??
        }
        other => {
            return Err(bad(
                "kind",
                format!("{other:?} is not git_path, object_store or inline"),
            ))
        }
    };
    if bytes.len() > MAX_VALUES_BYTES {
        return Err(bad("ref", "values are larger than 1 MiB"));
    }
    if let Some(expected) = spec.get("sha256") {
        let expected = expected
            .as_str()
            .ok_or_else(|| bad("sha256", "must be a hex string"))?;
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(expected) {
            // Never the actual digest: that would let a caller fingerprint content it cannot read.
            return Err(bad(
                "sha256",
                "checksum mismatch: the values do not hash to the given sha256",
            ));
        }
    }
    let file_name = "values.yaml";
    let dir = tokio::task::spawn_blocking(move || {
        let dir = tempfile::Builder::new()
            .prefix("carapulse-helm-")
            .tempdir()
            .map_err(|e| ModelError::new("input.values_ref", format!("temp dir: {e}")))?;
        std::fs::write(dir.path().join(file_name), &bytes)
            .map_err(|e| ModelError::new("input.values_ref", format!("write: {e}")))?;
        Ok::<_, ModelError>(dir)
    })
    .await
    .map_err(|e| ModelError::new("input.values_ref", format!("write: {e}")))??;
    let mut rewritten = input.as_value();
    if let Value::Object(map) = &mut rewritten {
        map.remove("values_ref");
        map.insert("values_file".into(), Value::String(file_name.into()));
    }
    Ok(Some((rewritten, ResolvedValues { dir, file_name })))
}

impl ResolvedValues {
    pub fn path(&self) -> PathBuf {
        self.dir.path().join(self.file_name)
    }
}
