//! Workspace paths in helm calls. Helm runs in the sandbox's private working directory with a
//! minimal root, where a chart or values file named relative to the workspace (`charts/web`,
//! `values/web.yaml`) does not exist. Such paths are made absolute and exactly those entries are
//! bound read-only at the same place — never the whole workspace, never anything a symlink leads
//! out of it to. A chart name that is not a workspace path (`bitnami/nginx`) is left to helm's
//! repositories.

use std::path::{Path, PathBuf};

use carapulse_core::model::ModelError;
use carapulse_core::tools::ToolInput;

/// What to change in one helm call.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Exposed {
    /// `(as given, absolute)` argv rewrites.
    pub rewrites: Vec<(String, String)>,
    /// Sandbox mounts (`HOST:INSIDE:ro`).
    pub mounts: Vec<String>,
}

/// The workspace entries `input` names: the chart when it exists in the workspace, and
/// `values_file` unless it came from `values_ref` (then it is in the call's own directory).
pub fn expose(
    workspace: Option<&str>,
    input: &ToolInput,
    values_from_ref: bool,
) -> Result<Exposed, ModelError> {
    let mut out = Exposed::default();
    let Some(workspace) = workspace else {
        return Ok(out);
    };
    let root = std::fs::canonicalize(workspace)
        .map_err(|e| ModelError::new("storage.workspace_dir", format!("{workspace}: {e}")))?;
    if let Some(chart) = input.str("chart").filter(|c| !c.starts_with("oci://")) {
        if let Some(path) = inside(&root, chart, "input.chart")? {
            out.add(chart, &path);
        }
    }
    if !values_from_ref {
        if let Some(values) = input.str("values_file") {
            let path = inside(&root, values, "input.values_file")?.ok_or_else(|| {
                ModelError::new("input.values_file", "no such file in the workspace")
            })?;
            out.add(values, &path);
        }
    }
    Ok(out)
}

impl Exposed {
    fn add(&mut self, given: &str, path: &Path) {
        let path = path.to_string_lossy().into_owned();
        self.mounts.push(format!("{path}:{path}:ro"));
        self.rewrites.push((given.to_owned(), path));
    }

    /// Rewrites `argv` in place: a bare argument equal to a given path, or a `--flag=path`.
    pub fn apply(&self, argv: &mut [String]) {
        for arg in argv.iter_mut().skip(1) {
            for (given, absolute) in &self.rewrites {
                if arg == given {
                    *arg = absolute.clone();
                } else if let Some((flag, value)) = arg.split_once('=') {
                    if value == given && flag.starts_with("--") {
                        *arg = format!("{flag}={absolute}");
                    }
                }
            }
        }
    }
}

/// `relative` under `root` when it exists there, resolved through symlinks; an existing path
/// that resolves outside the workspace is refused.
fn inside(root: &Path, relative: &str, field: &str) -> Result<Option<PathBuf>, ModelError> {
    let Ok(path) = std::fs::canonicalize(root.join(relative)) else {
        return Ok(None);
    };
    if !path.starts_with(root) {
        return Err(ModelError::new(field, "leads outside the workspace"));
    }
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(v: serde_json::Value) -> ToolInput {
        let spec = carapulse_core::tools::find(carapulse_core::model::ToolName::Helm, "template")
            .expect("helm template");
        spec.validate(&v).expect("valid")
    }

    #[test]
    fn workspace_charts_and_values_are_exposed_and_nothing_else() {
        let ws = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(ws.path()).unwrap();
        std::fs::create_dir_all(root.join("charts/web")).unwrap();
        std::fs::create_dir_all(root.join("values")).unwrap();
        std::fs::write(root.join("values/web.yaml"), "a: 1\n").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("charts/escape")).unwrap();
        let ws_str = root.to_string_lossy().into_owned();

        let got = expose(
            Some(&ws_str),
            &input(
                json!({"release": "web", "chart": "charts/web", "values_file": "values/web.yaml"}),
            ),
            false,
        )
        .unwrap();
        let chart = format!("{ws_str}/charts/web");
        let values = format!("{ws_str}/values/web.yaml");
        assert_eq!(
            got.mounts,
            vec![
                format!("{chart}:{chart}:ro"),
                format!("{values}:{values}:ro")
            ]
        );
        let mut argv: Vec<String> = [
            "helm",
            "template",
            "web",
            "charts/web",
            "--values=values/web.yaml",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        got.apply(&mut argv);
        assert_eq!(argv[3], chart);
        assert_eq!(argv[4], format!("--values={values}"));

        // A repository chart is helm's business; a values file from values_ref is the call's own.
        let repo = expose(
            Some(&ws_str),
            &input(
                json!({"release": "web", "chart": "bitnami/nginx", "values_file": "values.yaml"}),
            ),
            true,
        )
        .unwrap();
        assert_eq!(repo, Exposed::default());
        // A symlink out of the workspace is refused; a missing values file too.
        let escape = expose(
            Some(&ws_str),
            &input(json!({"release": "web", "chart": "charts/escape"})),
            false,
        );
        assert_eq!(escape.unwrap_err().field, "input.chart");
        let missing = expose(
            Some(&ws_str),
            &input(
                json!({"release": "web", "chart": "charts/web", "values_file": "values/none.yaml"}),
            ),
            false,
        );
        assert_eq!(missing.unwrap_err().field, "input.values_file");
        // No workspace: nothing to expose.
        assert_eq!(
            expose(
                None,
                &input(json!({"release": "web", "chart": "charts/web"})),
                false
            )
            .unwrap(),
            Exposed::default()
        );
    }
}
