//! Field kinds: the formats a tool input value may take, with their validation and JSON schema.

use serde_json::{json, Value};

/// What a list field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOf {
    Names,
    Paths,
    Texts,
    /// Positive integers (numeric ids, e.g. Grafana folder ids).
    Ids,
    /// JSON objects, passed to an API body or as JSON text.
    Objects,
}

/// The format of one input field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Kubernetes object name (DNS-1123 subdomain).
    K8sName,
    /// `kind`, `kind/name` or `kind.group/name` (e.g. `deployment/web`).
    K8sResource,
    /// Kubernetes namespace (DNS-1123 label).
    Namespace,
    /// Label selector (`app=web,tier!=db`).
    Selector,
    /// A generic identifier: alphanumeric start, then `[A-Za-z0-9_.:@/-]`.
    Name,
    /// A version or revision (`1.2.3`, `v2`, `42`, a git sha).
    Revision,
    /// A git ref name.
    GitRef,
    /// A hex git commit sha (7-40).
    GitSha,
    /// `owner/name`.
    Repo,
    /// A Helm chart reference (`repo/chart`, `oci://...`, or a workspace path).
    Chart,
    /// AWS region (`eu-west-1`).
    Region,
    /// AWS ARN.
    Arn,
    /// A Vault path (`secret/data/app`, `database/rotate-role/app`).
    VaultPath,
    /// A path relative to the workspace (no `..`, not absolute).
    RelPath,
    /// A finite number, zero or more (thresholds, factors).
    Number,
    /// Integer within bounds.
    Int {
        min: i64,
        max: i64,
    },
    Bool,
    /// Free text up to `max` characters (only ever passed as `--flag=value` or in a body).
    Text {
        max: usize,
    },
    /// One of a fixed set.
    Enum(&'static [&'static str]),
    /// A Go-style duration (`30s`, `5m`, `1h30m`).
    Duration,
    /// RFC 3339 time or Unix seconds.
    Timestamp,
    /// An http(s) URL.
    Url,
    /// A UUID.
    Uuid,
    /// Hex trace id (16 or 32 hex digits).
    TraceId,
    List(ListOf),
    /// Any JSON object (API bodies).
    Object,
}

/// One declared input field.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    pub kind: FieldKind,
    pub required: bool,
    pub description: &'static str,
}

impl FieldSpec {
    pub const fn req(name: &'static str, kind: FieldKind, description: &'static str) -> Self {
        Self {
            name,
            kind,
            required: true,
            description,
        }
    }

    pub const fn opt(name: &'static str, kind: FieldKind, description: &'static str) -> Self {
        Self {
            name,
            kind,
            required: false,
            description,
        }
    }
}

fn chars_ok(v: &str, extra: &str) -> bool {
    v.chars()
        .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

fn starts_alnum(v: &str) -> bool {
    v.starts_with(|c: char| c.is_ascii_alphanumeric())
}

pub(crate) fn is_dns1123_subdomain(v: &str) -> bool {
    !v.is_empty() && v.len() <= 253 && v.split('.').all(crate::model::is_dns1123_label)
}

fn is_duration(v: &str) -> bool {
    if v.is_empty() || v.len() > 32 {
        return false;
    }
    let mut digits = false;
    let mut unit = String::new();
    for c in v.chars() {
        if c.is_ascii_digit() {
            if !unit.is_empty() {
                if !matches!(unit.as_str(), "ms" | "s" | "m" | "h") {
                    return false;
                }
                unit.clear();
            }
            digits = true;
        } else if c.is_ascii_lowercase() && digits {
            unit.push(c);
        } else {
            return false;
        }
    }
    digits && matches!(unit.as_str(), "ms" | "s" | "m" | "h")
}

fn is_rel_path(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 512
        && !v.starts_with('/')
        && !v.starts_with('-')
        && !v.contains('\\')
        && !v.contains('\0')
        && v.split('/')
            .all(|part| !part.is_empty() && part != ".." && part != ".")
        && chars_ok(v, "_./-@+=")
}

impl FieldKind {
    /// Checks a string value of this kind; the message says what was expected.
    fn check_str(self, v: &str) -> Result<(), String> {
        let ok = match self {
            Self::K8sName => is_dns1123_subdomain(v),
            Self::Namespace => crate::model::is_dns1123_label(v),
            Self::K8sResource => {
                let (kind, name) = match v.split_once('/') {
                    Some((k, n)) => (k, Some(n)),
                    None => (v, None),
                };
                !kind.is_empty()
                    && kind.len() <= 63
                    && kind.starts_with(|c: char| c.is_ascii_lowercase())
                    && chars_ok(kind, ".-")
                    && name.is_none_or(is_dns1123_subdomain)
            }
            Self::Selector => {
                !v.is_empty() && v.len() <= 512 && starts_alnum(v) && chars_ok(v, "_./=!,()- ")
            }
            Self::Name => {
                !v.is_empty() && v.len() <= 253 && starts_alnum(v) && chars_ok(v, "_.:@/-")
            }
            Self::Revision => {
                !v.is_empty() && v.len() <= 128 && starts_alnum(v) && chars_ok(v, "_.+-")
            }
            Self::GitRef => {
                !v.is_empty()
                    && v.len() <= 255
                    && starts_alnum(v)
                    && chars_ok(v, "_./-")
                    && !v.contains("..")
                    && !v.contains("//")
                    && !v.ends_with('/')
                    && !v.ends_with(".lock")
            }
            Self::GitSha => (7..=40).contains(&v.len()) && v.chars().all(|c| c.is_ascii_hexdigit()),
            Self::Repo => {
                let parts: Vec<&str> = v.split('/').collect();
                parts.len() == 2
                    && parts.iter().all(|p| {
                        !p.is_empty() && p.len() <= 100 && starts_alnum(p) && chars_ok(p, "_.-")
                    })
            }
            Self::Chart => {
                if let Some(rest) = v.strip_prefix("oci://") {
                    !rest.is_empty() && chars_ok(rest, "_./:-@")
                } else {
                    is_rel_path(v)
                }
            }
            Self::Region => {
                let parts: Vec<&str> = v.split('-').collect();
                (3..=4).contains(&parts.len())
                    && parts[0].len() == 2
                    && parts.iter().all(|p| {
                        !p.is_empty()
                            && p.chars()
                                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                    })
                    && parts
                        .last()
                        .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
            }
            Self::Arn => {
                let parts: Vec<&str> = v.splitn(6, ':').collect();
                parts.len() == 6
                    && parts[0] == "arn"
                    && parts[1].starts_with("aws")
                    && chars_ok(parts[2], "-")
                    && !parts[2].is_empty()
                    && chars_ok(parts[3], "-")
                    && (parts[4].is_empty()
                        || (parts[4].len() == 12 && parts[4].chars().all(|c| c.is_ascii_digit())))
                    && !parts[5].is_empty()
                    && v.len() <= 2048
                    && chars_ok(parts[5], "_+=,.@/:-")
            }
            Self::VaultPath => is_rel_path(v),
            Self::RelPath => is_rel_path(v),
            Self::Duration => is_duration(v),
            Self::Timestamp => {
                chrono::DateTime::parse_from_rfc3339(v).is_ok()
                    || (v.len() <= 20 && v.parse::<f64>().is_ok_and(|n| n >= 0.0))
            }
            Self::Url => url::Url::parse(v).is_ok_and(|u| matches!(u.scheme(), "http" | "https")),
            Self::Uuid => uuid::Uuid::parse_str(v).is_ok(),
            Self::TraceId => {
                (v.len() == 16 || v.len() == 32) && v.chars().all(|c| c.is_ascii_hexdigit())
            }
            Self::Enum(options) => options.contains(&v),
            Self::Text { max } => v.chars().count() <= max && !v.contains('\0'),
            Self::Int { .. } | Self::Number | Self::Bool | Self::List(_) | Self::Object => false,
        };
        if ok {
            Ok(())
        } else {
            Err(self.expectation())
        }
    }

    fn expectation(self) -> String {
        match self {
            Self::K8sName => {
                "a Kubernetes name (DNS-1123: lower-case alphanumerics, '-', '.')".into()
            }
            Self::Namespace => "a Kubernetes namespace (DNS-1123 label)".into(),
            Self::K8sResource => "a resource like deployment/web".into(),
            Self::Selector => "a label selector like app=web".into(),
            Self::Name => "a name starting with a letter or digit ([A-Za-z0-9_.:@/-])".into(),
            Self::Revision => {
                "a revision or version ([A-Za-z0-9_.+-], starting alphanumeric)".into()
            }
            Self::GitRef => "a git ref name".into(),
            Self::GitSha => "a hex commit sha (7-40 digits)".into(),
            Self::Repo => "owner/name".into(),
            Self::Chart => "a chart reference (repo/chart, oci://..., or a workspace path)".into(),
            Self::Region => "an AWS region like eu-west-1".into(),
            Self::Arn => "an AWS ARN".into(),
            Self::VaultPath | Self::RelPath => {
                "a relative path inside the workspace (no '..', not absolute)".into()
            }
            Self::Duration => "a duration like 30s, 5m or 1h".into(),
            Self::Timestamp => "an RFC 3339 time or Unix seconds".into(),
            Self::Url => "an http(s) URL".into(),
            Self::Uuid => "a UUID".into(),
            Self::TraceId => "a 16 or 32 hex digit trace id".into(),
            Self::Enum(options) => format!("one of {}", options.join(", ")),
            Self::Text { max } => format!("text of at most {max} characters"),
            Self::Int { min, max } => format!("an integer from {min} to {max}"),
            Self::Number => "a finite number, zero or more".into(),
            Self::Bool => "true or false".into(),
            Self::List(of) => format!("a list of {of:?}"),
            Self::Object => "a JSON object".into(),
        }
    }

    /// Validates a JSON value of this kind.
    pub fn check(self, value: &Value) -> Result<(), String> {
        match (self, value) {
            (Self::Int { min, max }, Value::Number(n)) => match n.as_i64() {
                Some(i) if (min..=max).contains(&i) => Ok(()),
                _ => Err(self.expectation()),
            },
            (Self::Number, Value::Number(n)) => match n.as_f64() {
                Some(f) if f.is_finite() && f >= 0.0 => Ok(()),
                _ => Err(self.expectation()),
            },
            (Self::Bool, Value::Bool(_)) => Ok(()),
            (Self::Object, Value::Object(_)) => Ok(()),
            (Self::List(of), Value::Array(items)) => {
                if items.len() > 100 {
                    return Err("at most 100 items".into());
                }
                for (i, item) in items.iter().enumerate() {
                    let res = match (of, item) {
                        (ListOf::Names, Value::String(s)) => Self::Name.check_str(s),
                        (ListOf::Paths, Value::String(s)) => Self::RelPath.check_str(s),
                        (ListOf::Texts, Value::String(s)) => Self::Text { max: 1000 }.check_str(s),
                        (ListOf::Objects, Value::Object(_)) => Ok(()),
                        (ListOf::Ids, Value::Number(n)) if n.as_u64().is_some_and(|v| v > 0) => {
                            Ok(())
                        }
                        _ => Err(self.expectation()),
                    };
                    res.map_err(|e| format!("item {i}: {e}"))?;
                }
                Ok(())
            }
            (kind, Value::String(s))
                if !matches!(
                    kind,
                    Self::Int { .. } | Self::Number | Self::Bool | Self::Object | Self::List(_)
                ) =>
            {
                // Free text only ever travels as `--flag=value` or inside a body, so it may
                // start with '-'; every other kind may end up as its own argv element.
                if s.starts_with('-') && !matches!(kind, Self::Text { .. }) {
                    return Err(format!("must not start with '-' ({})", self.expectation()));
                }
                kind.check_str(s)
            }
            _ => Err(self.expectation()),
        }
    }

    /// The JSON schema of this kind.
    pub fn schema(self) -> Value {
        match self {
            Self::Int { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
            Self::Number => json!({"type": "number", "minimum": 0}),
            Self::Bool => json!({"type": "boolean"}),
            Self::Object => json!({"type": "object"}),
            Self::Enum(options) => json!({"type": "string", "enum": options}),
            Self::Text { max } => json!({"type": "string", "maxLength": max}),
            Self::List(ListOf::Objects) => {
                json!({"type": "array", "maxItems": 100, "items": {"type": "object"}})
            }
            Self::List(ListOf::Ids) => {
                json!({"type": "array", "maxItems": 100, "items": {"type": "integer", "minimum": 1}})
            }
            Self::List(_) => {
                json!({"type": "array", "maxItems": 100, "items": {"type": "string", "pattern": "^[^-]"}})
            }
            Self::K8sName => {
                json!({"type": "string", "maxLength": 253, "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"})
            }
            Self::Namespace => {
                json!({"type": "string", "maxLength": 63, "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"})
            }
            Self::GitSha => json!({"type": "string", "pattern": "^[0-9a-fA-F]{7,40}$"}),
            Self::Uuid => json!({"type": "string", "format": "uuid"}),
            Self::Url => json!({"type": "string", "format": "uri"}),
            Self::Timestamp => json!({"type": "string", "description": "RFC 3339 or Unix seconds"}),
            _ => json!({"type": "string", "pattern": "^[^-]", "description": self.expectation()}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_accept_and_reject() {
        let cases: &[(FieldKind, Value, bool)] = &[
            (FieldKind::K8sName, json!("web-1"), true),
            (FieldKind::K8sName, json!("Web"), false),
            (FieldKind::K8sName, json!("-n"), false),
            (FieldKind::K8sResource, json!("deployment/web"), true),
            (FieldKind::K8sResource, json!("deployments.apps/web"), true),
            (FieldKind::K8sResource, json!("deployment/--all"), false),
            (FieldKind::K8sResource, json!("--all-namespaces"), false),
            (FieldKind::Namespace, json!("kube-system"), true),
            (FieldKind::Namespace, json!("a.b"), false),
            (FieldKind::Region, json!("eu-west-1"), true),
            (FieldKind::Region, json!("us-gov-west-1"), true),
            (FieldKind::Region, json!("moon"), false),
            (
                FieldKind::Arn,
                json!("arn:aws:iam::123456789012:role/deploy"),
                true,
            ),
            (FieldKind::Arn, json!("arn:aws:iam::123:role/x"), false),
            (FieldKind::Arn, json!("role/x"), false),
            (FieldKind::GitRef, json!("feature/x"), true),
            (FieldKind::GitRef, json!("a..b"), false),
            (FieldKind::GitRef, json!("--upload-pack=x"), false),
            (FieldKind::RelPath, json!("charts/web/values.yaml"), true),
            (FieldKind::RelPath, json!("../etc/passwd"), false),
            (FieldKind::RelPath, json!("/etc/passwd"), false),
            (FieldKind::RelPath, json!("a/./b"), false),
            (FieldKind::Duration, json!("1h30m"), true),
            (FieldKind::Duration, json!("5"), false),
            (FieldKind::Duration, json!("5x"), false),
            (FieldKind::Int { min: 0, max: 10 }, json!(3), true),
            (FieldKind::Int { min: 0, max: 10 }, json!(11), false),
            (FieldKind::Int { min: 0, max: 10 }, json!("3"), false),
            (FieldKind::Text { max: 5 }, json!("hello"), true),
            (FieldKind::Text { max: 5 }, json!("hello!"), false),
            (FieldKind::Text { max: 50 }, json!("--inject"), true),
            (FieldKind::Enum(&["a", "b"]), json!("b"), true),
            (FieldKind::Enum(&["a", "b"]), json!("c"), false),
            (
                FieldKind::List(ListOf::Paths),
                json!(["a.txt", "b/c"]),
                true,
            ),
            (
                FieldKind::List(ListOf::Paths),
                json!(["a.txt", "-f"]),
                false,
            ),
            (
                FieldKind::Chart,
                json!("oci://registry.example/charts/web"),
                true,
            ),
            (FieldKind::Chart, json!("stable/web"), true),
            (FieldKind::TraceId, json!("0123456789abcdef"), true),
            (FieldKind::Timestamp, json!("2026-01-01T00:00:00Z"), true),
            (FieldKind::Timestamp, json!("yesterday"), false),
        ];
        for (kind, value, ok) in cases {
            assert_eq!(kind.check(value).is_ok(), *ok, "{kind:?} {value}");
        }
    }
}
