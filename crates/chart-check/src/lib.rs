//! The chart tests' harness: renders `deploy/helm/carapulse` with the real `helm` binary
//! (`helm template`, `helm lint --strict`; 3.17.1, provisioned by `scripts/lib.sh ensure_helm`)
//! and splits what it prints into documents. It knows where helm is and how to read its output,
//! nothing about Kubernetes or Carapulse — the checks live in `tests/chart.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why the chart did not render or lint.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("cannot run {helm}: {source} (run ./scripts/test.sh: it installs helm into .dev/bin)")]
    Spawn {
        helm: PathBuf,
        source: std::io::Error,
    },
    #[error("helm {args} failed:\n{output}")]
    Helm { args: String, output: String },
    #[error("{template}: invalid YAML: {message}")]
    Yaml { template: String, message: String },
}

/// The release a chart is rendered for.
#[derive(Debug, Clone)]
pub struct Release {
    pub name: String,
    pub namespace: String,
}

/// What one template file rendered to.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The file under `templates/` (`deployment.yaml`).
    pub template: String,
    pub text: String,
}

/// The helm binary: `CARAPULSE_HELM`, else the repository's `.dev/bin/helm`.
pub fn helm() -> PathBuf {
    std::env::var_os("CARAPULSE_HELM")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.dev/bin/helm"))
}

fn run(args: &[String]) -> Result<String, ChartError> {
    let helm = helm();
    let out = Command::new(&helm)
        .args(args)
        .output()
        .map_err(|source| ChartError::Spawn {
            helm: helm.clone(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(ChartError::Helm {
            args: args.join(" "),
            output: format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
        });
    }
    Ok(stdout)
}

fn value_args(value_files: &[PathBuf]) -> Vec<String> {
    value_files
        .iter()
        .flat_map(|f| ["-f".to_owned(), f.to_string_lossy().into_owned()])
        .collect()
}

/// `helm template` of `chart` with `value_files` overlaid in order, one entry per document.
pub fn render_chart(
    chart: &Path,
    value_files: &[PathBuf],
    release: &Release,
) -> Result<Vec<Rendered>, ChartError> {
    let mut args = vec![
        "template".to_owned(),
        release.name.clone(),
        chart.to_string_lossy().into_owned(),
        "--namespace".to_owned(),
        release.namespace.clone(),
    ];
    args.extend(value_args(value_files));
    let out = run(&args)?;
    // Each document starts with `---` and a `# Source: <chart>/templates/<file>` comment.
    Ok(out
        .split("\n---\n")
        .map(|part| part.trim_start_matches("---\n"))
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let template = part
                .lines()
                .find_map(|l| l.strip_prefix("# Source: "))
                .and_then(|source| source.split_once("/templates/").map(|(_, f)| f))
                .unwrap_or("")
                .to_owned();
            Rendered {
                template,
                text: part.to_owned(),
            }
        })
        .collect())
}

/// `helm lint --strict` of `chart` with `value_files`; its report on success.
pub fn lint(chart: &Path, value_files: &[PathBuf]) -> Result<String, ChartError> {
    let mut args = vec![
        "lint".to_owned(),
        "--strict".to_owned(),
        chart.to_string_lossy().into_owned(),
    ];
    args.extend(value_args(value_files));
    run(&args)
}

/// Parses rendered documents, dropping empty ones (what `kubectl` sees).
pub fn documents(rendered: &[Rendered]) -> Result<Vec<(String, serde_json::Value)>, ChartError> {
    let mut docs = Vec::new();
    for r in rendered {
        let doc: serde_json::Value =
            serde_yaml::from_str(&r.text).map_err(|e| ChartError::Yaml {
                template: r.template.clone(),
                message: format!("{e}\n--- document ---\n{}", r.text),
            })?;
        if !doc.is_null() {
            docs.push((r.template.clone(), doc));
        }
    }
    Ok(docs)
}
