//! Renders the Helm chart in `deploy/helm/carapulse` the way `helm template` would, for tests on
//! machines without a `helm` binary.
//!
//! The chart is written to need only Go template actions, `include`, `required` and Sprig
//! functions. Sprig comes from `gtmpl-ng`'s Helm function set; the Helm-specific functions
//! (`include`, `required`, `nindent`, `indent`) and the serialisers (`toYaml`, `toJson`,
//! `toPrettyJson`, which must sort keys as Go does so checksums are stable) are implemented here
//! with Helm's semantics.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gtmpl_ng::{Context, Func, FuncError, Template, Value};

/// Why the chart did not render.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid YAML: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error("{template}: {message}")]
    Template { template: String, message: String },
}

/// The release a chart is rendered for (`.Release`).
#[derive(Debug, Clone)]
pub struct Release {
    pub name: String,
    pub namespace: String,
}

/// One rendered template file.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub template: String,
    pub text: String,
}

thread_local! {
    /// The chart's named templates (`_*.tpl`), for `include` calls during a render.
    static HELPERS: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Renders every template of `chart` with `values.yaml` overlaid by `value_files` in order.
pub fn render_chart(
    chart: &Path,
    value_files: &[PathBuf],
    release: &Release,
) -> Result<Vec<Rendered>, ChartError> {
    let meta = read_yaml(&chart.join("Chart.yaml"))?;
    let mut values = read_yaml(&chart.join("values.yaml"))?;
    for file in value_files {
        merge(&mut values, read_yaml(file)?);
    }
    let context = serde_json::json!({
        "Values": values,
        "Release": {
            "Name": release.name,
            "Namespace": release.namespace,
            "Service": "Helm",
            "IsInstall": true,
            "IsUpgrade": false,
            "Revision": 1,
        },
        "Chart": {
            "Name": meta["name"],
            "Version": meta["version"],
            "AppVersion": meta["appVersion"],
        },
    });
    let templates_dir = chart.join("templates");
    let mut helpers = String::new();
    let mut files = Vec::new();
    for entry in read_dir(&templates_dir)? {
        let name = entry
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if name.starts_with('_') {
            helpers.push_str(&read(&entry)?);
            helpers.push('\n');
        } else if name.ends_with(".yaml") || name.ends_with(".yml") || name == "NOTES.txt" {
            files.push((name, read(&entry)?));
        }
    }
    files.sort();
    HELPERS.with(|h| *h.borrow_mut() = helpers.clone());
    let ctx = to_gtmpl(&context);
    files
        .into_iter()
        .map(|(name, text)| {
            let rendered =
                render_text(&helpers, &text, &ctx).map_err(|message| ChartError::Template {
                    template: name.clone(),
                    message,
                })?;
            Ok(Rendered {
                template: name,
                text: rendered,
            })
        })
        .collect()
}

/// Splits rendered manifests into YAML documents, dropping empty ones (what `kubectl` sees).
pub fn documents(rendered: &[Rendered]) -> Result<Vec<(String, serde_json::Value)>, ChartError> {
    let mut docs = Vec::new();
    for r in rendered.iter().filter(|r| r.template != "NOTES.txt") {
        for part in r.text.split("\n---") {
            let doc: serde_json::Value =
                serde_yaml::from_str(part).map_err(|e| ChartError::Yaml {
                    path: PathBuf::from(&r.template),
                    message: format!("{e}\n--- document ---\n{part}"),
                })?;
            if !doc.is_null() {
                docs.push((r.template.clone(), doc));
            }
        }
    }
    Ok(docs)
}

fn render_text(helpers: &str, text: &str, ctx: &Value) -> Result<String, String> {
    let mut tmpl = Template::default();
    tmpl.add_funcs(&gtmpl_ng::helm_functions::HELM_FUNCTIONS);
    tmpl.add_funcs(&HELM_ONLY);
    tmpl.parse(format!("{helpers}{text}"))
        .map_err(|e| e.to_string())?;
    tmpl.render(&Context::from(ctx.clone()))
        .map_err(|e| e.to_string())
}

/// Functions Helm adds on top of Sprig, and serialisers with Go's sorted keys.
const HELM_ONLY: [(&str, Func); 7] = [
    ("include", include),
    ("required", required),
    ("indent", indent),
    ("nindent", nindent),
    ("toYaml", to_yaml),
    ("toJson", to_json),
    ("toPrettyJson", to_pretty_json),
];

fn arg(args: &[Value], i: usize, n: usize) -> Result<&Value, FuncError> {
    args.get(i)
        .ok_or_else(|| FuncError::ExactlyXArgs(format!("expects {n} arguments"), n))
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Nil | Value::NoValue => String::new(),
        other => other.to_string(),
    }
}

fn include(args: &[Value]) -> Result<Value, FuncError> {
    let name = text_of(arg(args, 0, 2)?);
    let ctx = arg(args, 1, 2)?.clone();
    let helpers = HELPERS.with(|h| h.borrow().clone());
    let call = format!("{{{{- template {name:?} . -}}}}");
    render_text(&helpers, &call, &ctx)
        .map(Value::String)
        .map_err(|e| FuncError::Generic(format!("include {name:?}: {e}")))
}

fn required(args: &[Value]) -> Result<Value, FuncError> {
    let message = text_of(arg(args, 0, 2)?);
    let value = arg(args, 1, 2)?;
    let empty = match value {
        Value::Nil | Value::NoValue => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    };
    if empty {
        Err(FuncError::Generic(message))
    } else {
        Ok(value.clone())
    }
}

fn pad(n: &Value, text: &Value) -> Result<String, FuncError> {
    let n: usize = text_of(n)
        .parse()
        .map_err(|_| FuncError::Generic(format!("indent width must be a number, got {n}")))?;
    let pad = " ".repeat(n);
    Ok(format!(
        "{pad}{}",
        text_of(text).replace('\n', &format!("\n{pad}"))
    ))
}

fn indent(args: &[Value]) -> Result<Value, FuncError> {
    pad(arg(args, 0, 2)?, arg(args, 1, 2)?).map(Value::String)
}

fn nindent(args: &[Value]) -> Result<Value, FuncError> {
    pad(arg(args, 0, 2)?, arg(args, 1, 2)?).map(|s| Value::String(format!("\n{s}")))
}

fn to_yaml(args: &[Value]) -> Result<Value, FuncError> {
    let json = to_json_value(arg(args, 0, 1)?);
    let yaml = serde_yaml::to_string(&json).map_err(|e| FuncError::Generic(e.to_string()))?;
    // Helm trims the trailing newline, and renders nothing for null.
    let yaml = yaml.trim_end_matches('\n');
    Ok(Value::String(if yaml == "null" {
        String::new()
    } else {
        yaml.to_owned()
    }))
}

fn to_json(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(to_json_value(arg(args, 0, 1)?).to_string()))
}

fn to_pretty_json(args: &[Value]) -> Result<Value, FuncError> {
    serde_json::to_string_pretty(&to_json_value(arg(args, 0, 1)?))
        .map(Value::String)
        .map_err(|e| FuncError::Generic(e.to_string()))
}

/// gtmpl value -> JSON, maps with sorted keys.
fn to_json_value(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Nil | Value::NoValue | Value::Function(_) => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::String(s) => J::String(s.clone()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                J::from(i)
            } else if let Some(u) = n.as_u64() {
                J::from(u)
            } else {
                n.as_f64().map(J::from).unwrap_or(J::Null)
            }
        }
        Value::Array(items) => J::Array(items.iter().map(to_json_value).collect()),
        Value::Object(map) | Value::Map(map) => J::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_json_value(v)))
                .collect(),
        ),
    }
}

/// JSON -> gtmpl value.
fn to_gtmpl(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::from(i),
            (_, Some(u), _) => Value::from(u),
            (_, _, Some(f)) => Value::from(f),
            _ => Value::Nil,
        },
        J::String(s) => Value::String(s.clone()),
        J::Array(items) => Value::Array(items.iter().map(to_gtmpl).collect()),
        J::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_gtmpl(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

/// Helm's values merge: maps merge key by key, anything else replaces.
fn merge(base: &mut serde_json::Value, overlay: serde_json::Value) {
    match (base, overlay) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn read(path: &Path) -> Result<String, ChartError> {
    std::fs::read_to_string(path).map_err(|source| ChartError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_yaml(path: &Path) -> Result<serde_json::Value, ChartError> {
    let text = read(path)?;
    let value: serde_json::Value = serde_yaml::from_str(&text).map_err(|e| ChartError::Yaml {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    Ok(if value.is_null() {
        serde_json::json!({})
    } else {
        value
    })
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, ChartError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ChartError::Read {
        path: dir.to_owned(),
        source,
    })?;
    entries
        .map(|e| {
            e.map(|e| e.path()).map_err(|source| ChartError::Read {
                path: dir.to_owned(),
                source,
            })
        })
        .collect()
}
