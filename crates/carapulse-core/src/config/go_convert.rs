//! `assistantctl config convert --from-go`: turns a Go Carapulse config file into one this
//! project loads, and says what it did and what is left to decide.
//!
//! Renamed keys are moved, Go-only keys are mapped where a replacement exists (the S3 object
//! store, per-collector intervals, the approval timeout) and otherwise removed with the reason
//! from the retired table, and the sections this project needs that Go never had are added:
//! webhook sources with generated secrets, the token claims and roles the gateway reads, the
//! tool-router token, the grant key and the audit checkpoint key. Finally the result is loaded
//! and validated as each service would; what still fails is reported for the operator.

use serde_json::{json, Map, Value};

use super::retired::{self, Outcome};
use super::{Component, Config};

/// What one change was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Moved to a new name (value kept or converted).
    Renamed,
    /// Replaced by what does the same here.
    Mapped,
    /// Removed: it asked for nothing (a zero value, or what always happens).
    Dropped,
    /// Added: the new file needs it.
    Added,
    /// Left to the operator: read the note.
    Decide,
}

impl ChangeKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Renamed => "renamed",
            Self::Mapped => "mapped",
            Self::Dropped => "dropped",
            Self::Added => "added",
            Self::Decide => "DECIDE",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: ChangeKind,
    pub key: String,
    pub note: String,
}

/// The converted file and the report.
#[derive(Debug, Clone)]
pub struct Conversion {
    pub config: Value,
    pub changes: Vec<Change>,
}

impl Conversion {
    /// The decisions left to the operator.
    pub fn decisions(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.kind == ChangeKind::Decide)
    }
}

/// Why a file cannot be converted at all.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("the Go config must be a JSON object")]
    NotAnObject,
}

/// Collectors that poll (everything but Kubernetes, which is watched): Go's
/// `watch_interval_secs` re-polled each of them at that interval.
const POLLED_COLLECTORS: &[&str] = &[
    "helm",
    "argocd",
    "prometheus",
    "thanos",
    "alertmanager",
    "grafana",
    "tempo",
    "aws",
];

struct Report(Vec<Change>);

impl Report {
    fn add(&mut self, kind: ChangeKind, key: impl Into<String>, note: impl Into<String>) {
        self.0.push(Change {
            kind,
            key: key.into(),
            note: note.into(),
        });
    }
}

/// The object at a dotted path, made (or replaced, when not an object) as needed.
fn object_at<'a>(doc: &'a mut Value, path: &str) -> &'a mut Map<String, Value> {
    let mut node = doc;
    for part in path.split('.') {
        let map = match node {
            Value::Object(map) => map,
            other => {
                *other = json!({});
                other.as_object_mut().expect("just made an object")
            }
        };
        node = map.entry(part).or_insert_with(|| json!({}));
    }
    if !node.is_object() {
        *node = json!({});
    }
    node.as_object_mut().expect("made an object above")
}

fn get<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |node, part| node.get(part))
}

fn text(doc: &Value, path: &str) -> Option<String> {
    get(doc, path)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn take(doc: &mut Value, path: &str) -> Option<Value> {
    let (parent, leaf) = path.rsplit_once('.')?;
    let node = parent
        .split('.')
        .try_fold(&mut *doc, |node, part| node.get_mut(part))?;
    node.as_object_mut()?.remove(leaf)
}

/// Go's `time.ParseDuration` forms this file could hold (`90s`, `5m`, `1h30m`, `300ms`).
fn go_duration_secs(text: &str) -> Option<u64> {
    let mut total_ms: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let value: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return None,
        };
        total_ms = total_ms.checked_add(value.checked_mul(factor)?)?;
        rest = &rest[unit_len..];
    }
    Some(total_ms.div_ceil(1000))
}

/// A new secret: 64 hex characters from two random UUIDs (244 random bits).
pub fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Converts a Go config document. `secret` makes one new random secret per call.
pub fn convert(go: &Value, secret: &mut dyn FnMut() -> String) -> Result<Conversion, ConvertError> {
    if !go.is_object() {
        return Err(ConvertError::NotAnObject);
    }
    let mut doc = go.clone();
    let mut report = Report(Vec::new());

    renamed_keys(&mut doc, &mut report);
    mapped_keys(&mut doc, &mut report);
    for outcome in retired::sweep(&mut doc) {
        match outcome {
            Outcome::Dropped { path, value } => report.add(
                ChangeKind::Dropped,
                path,
                format!("{value} asks for nothing here (a zero value, or what always happens)"),
            ),
            Outcome::Refused {
                path,
                value,
                instead,
            } => report.add(
                ChangeKind::Decide,
                path,
                format!("removed ({value}): {instead}"),
            ),
        }
    }
    changed_meanings(&mut doc, &mut report);
    added_sections(&mut doc, &mut report, secret);
    unknown_keys(&mut doc, &mut report);
    validation(&doc, &mut report);
    Ok(Conversion {
        config: doc,
        changes: report.0,
    })
}

fn renamed_keys(doc: &mut Value, report: &mut Report) {
    if let Some(value) = take(doc, "storage.conn_max_lifetime") {
        match value.as_str().and_then(go_duration_secs) {
            Some(secs) => {
                object_at(doc, "storage").insert("conn_max_lifetime_secs".into(), json!(secs));
                report.add(
                    ChangeKind::Renamed,
                    "storage.conn_max_lifetime",
                    format!("-> storage.conn_max_lifetime_secs = {secs} (from {value})"),
                );
            }
            None => report.add(
                ChangeKind::Decide,
                "storage.conn_max_lifetime",
                format!(
                    "removed: {value} is not a Go duration; set storage.conn_max_lifetime_secs"
                ),
            ),
        }
    }
}

/// Go keys this project does not read but whose intent it serves another way.
fn mapped_keys(doc: &mut Value, report: &mut Report) {
    // The Go object store was S3-compatible (MinIO in the samples).
    let endpoint = text(doc, "storage.object_store.endpoint");
    let bucket = text(doc, "storage.object_store.bucket");
    if endpoint.is_some() || bucket.is_some() {
        let os = object_at(doc, "storage.object_store");
        if !os.contains_key("backend") {
            os.insert("backend".into(), json!("s3"));
            os.entry("path_style").or_insert(json!(true));
            report.add(
                ChangeKind::Mapped,
                "storage.object_store.endpoint",
                "backend = \"s3\" (path-style requests, as MinIO expects)",
            );
        }
        if bucket.is_none() {
            report.add(
                ChangeKind::Decide,
                "storage.object_store.bucket",
                "the s3 backend needs a bucket",
            );
        }
        report.add(
            ChangeKind::Decide,
            "storage.object_store.access_key_id",
            "give the S3 credentials as CARAPULSE_S3_ACCESS_KEY_ID and CARAPULSE_S3_SECRET_ACCESS_KEY (or the AWS environment / a web identity)",
        );
    }

    // watch_interval_secs re-polled every non-Kubernetes collector at that interval.
    let watch = get(doc, "context.watch_interval_secs").and_then(Value::as_u64);
    if let Some(secs) = watch.filter(|s| *s > 0) {
        take(doc, "context.watch_interval_secs");
        let poll = get(doc, "context.poll_interval_secs")
            .and_then(Value::as_u64)
            .unwrap_or(60);
        let every = secs.min(poll).max(5);
        let intervals = object_at(doc, "context.intervals");
        for collector in POLLED_COLLECTORS {
            intervals.entry(*collector).or_insert(json!(every));
        }
        report.add(
            ChangeKind::Mapped,
            "context.watch_interval_secs",
            format!("-> context.intervals: every polled collector ({}) every {every} s; Kubernetes is watched", POLLED_COLLECTORS.join(", ")),
        );
    }

    // One approval timeout for every channel.
    if let Some(hours) = get(doc, "connectors.linear.timeout_hours").and_then(Value::as_u64) {
        match get(doc, "approvals.timeout_hours").and_then(Value::as_u64) {
            None if hours > 0 => {
                take(doc, "connectors.linear.timeout_hours");
                object_at(doc, "approvals").insert("timeout_hours".into(), json!(hours));
                report.add(
                    ChangeKind::Mapped,
                    "connectors.linear.timeout_hours",
                    format!("-> approvals.timeout_hours = {hours} (one expiry for every channel)"),
                );
            }
            Some(same) if same == hours => {
                take(doc, "connectors.linear.timeout_hours");
                report.add(
                    ChangeKind::Dropped,
                    "connectors.linear.timeout_hours",
                    "equal to approvals.timeout_hours",
                );
            }
            _ => {}
        }
    }

    // Alerts are pushed, not polled: make sure the webhook source exists (added below).
    let polled = ["alert_poll_interval_secs", "alert_dedup_window_secs"]
        .iter()
        .any(|k| get(doc, &format!("gateway.{k}")).is_some_and(|v| !retired::is_inert(v)));
    if polled {
        for key in ["alert_poll_interval_secs", "alert_dedup_window_secs"] {
            if take(doc, &format!("gateway.{key}")).is_some() {
                report.add(
                    ChangeKind::Decide,
                    format!("gateway.{key}"),
                    "removed: alerts are pushed and deduplicated by fingerprint. Add an Alertmanager receiver: webhook_configs: [{url: http://GATEWAY/v1/hooks/alertmanager, http_config: {authorization: {credentials: <webhooks.alertmanager.bearer_token>}}}]",
                );
            }
        }
    }

    if let Some(url) = take(doc, "policy.opa_url").filter(|v| !retired::is_inert(v)) {
        report.add(
            ChangeKind::Decide,
            "policy.opa_url",
            format!("removed ({url}): policy is evaluated in process; copy your Rego into policy.policy_dir (default `policies`), package policy.assistant.v1 with the `outputs` rule of this project's policies"),
        );
    }
}

/// Keys that kept their name but not their meaning.
fn changed_meanings(doc: &mut Value, report: &mut Report) {
    if get(doc, "policy.fail_open_reads") == Some(&json!(true)) {
        object_at(doc, "policy").insert("fail_open_reads".into(), json!(false));
        report.add(
            ChangeKind::Decide,
            "policy.fail_open_reads",
            "set to false: a policy evaluation error always denies here",
        );
    }
    if text(doc, "gateway.ws_addr").is_some() {
        report.add(
            ChangeKind::Decide,
            "gateway.ws_addr",
            "kept: it now serves the web UI together with the API (Go: a second API listener); null turns the UI off",
        );
    }
    if text(doc, "gateway.canvas_addr").is_some() {
        report.add(
            ChangeKind::Decide,
            "gateway.canvas_addr",
            "kept: used for the web UI only when gateway.ws_addr is null; the UI needs a token like the API",
        );
    }
    if get(doc, "sandbox.enabled") == Some(&json!(false)) {
        report.add(
            ChangeKind::Decide,
            "sandbox.enabled",
            "kept false: no CLI runs (only API fallbacks) until the sandbox is enabled; sandbox-exec needs no container runtime",
        );
    }
    if get(doc, "sandbox.enforce") == Some(&json!(false)) {
        report.add(
            ChangeKind::Decide,
            "sandbox.enforce",
            "kept false: tool processes may run without isolation (a warning at every start)",
        );
    }
}

fn added_sections(doc: &mut Value, report: &mut Report, secret: &mut dyn FnMut() -> String) {
    let tenant = text(doc, "context.tenant_id");
    let environment = text(doc, "context.environment");

    let gateway = object_at(doc, "gateway");
    for (key, value, note) in [
        (
            "tenant_claim",
            json!("tenant_id"),
            "the token claim naming the caller's tenant (Go took X-Tenant-Id headers)",
        ),
        (
            "roles_claim",
            json!("groups"),
            "the token claim listing the caller's roles",
        ),
        (
            "writer_roles",
            json!(["operator", "admin"]),
            "roles allowed to create and execute plans",
        ),
        (
            "approver_roles",
            json!(["approver", "admin"]),
            "roles allowed to approve",
        ),
    ] {
        if !gateway.contains_key(key) {
            gateway.insert(key.into(), value.clone());
            report.add(
                ChangeKind::Added,
                format!("gateway.{key}"),
                format!("{value}: {note}"),
            );
        }
    }
    let has_oidc = gateway
        .get("oidc_jwks_url")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    let dev = gateway.get("dev_mode") == Some(&json!(true));
    if dev && !gateway.contains_key("dev_jwt_secret") {
        gateway.insert("dev_jwt_secret".into(), json!(secret()));
        report.add(
            ChangeKind::Added,
            "gateway.dev_jwt_secret",
            "generated: dev tokens are HS256-signed with it (`assistantctl dev-token`); unsigned tokens are refused",
        );
    }
    if !has_oidc && !dev {
        report.add(
            ChangeKind::Decide,
            "gateway.oidc_issuer",
            "the gateway needs a token verifier: set gateway.oidc_issuer, oidc_client_id and oidc_jwks_url (or dev_mode with dev_jwt_secret for a laptop)",
        );
    }
    let event_loop = gateway.get("enable_event_loop") == Some(&json!(true));
    let sources: Vec<String> = gateway
        .get("event_loop_sources")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_else(|| {
            ["alertmanager", "argocd", "git", "k8s"]
                .map(String::from)
                .to_vec()
        });

    let router = object_at(doc, "tool_router");
    if !router.contains_key("auth_token") {
        router.insert("auth_token".into(), json!(secret()));
        report.add(
            ChangeKind::Added,
            "tool_router.auth_token",
            "generated: every caller of the tool router needs it (or pass CARAPULSE_TOOL_ROUTER_TOKEN)",
        );
    }
    if !router.contains_key("grant_key") {
        router.insert("grant_key".into(), json!(secret()));
        report.add(
            ChangeKind::Added,
            "tool_router.grant_key",
            "generated: the orchestrator signs execution grants with it and the router checks them (or pass CARAPULSE_TOOL_ROUTER_GRANT_KEY)",
        );
    }
    let storage = object_at(doc, "storage");
    if !storage.contains_key("audit_checkpoint_key") {
        storage.insert("audit_checkpoint_key".into(), json!(secret()));
        report.add(
            ChangeKind::Added,
            "storage.audit_checkpoint_key",
            "generated: signs the audit checkpoints that reveal a truncated chain (or pass CARAPULSE_AUDIT_CHECKPOINT_KEY)",
        );
    }

    if event_loop || doc.get("webhooks").is_none() {
        let tenant_id = tenant.clone().unwrap_or_else(|| "default".into());
        if tenant.is_none() {
            report.add(
                ChangeKind::Decide,
                "webhooks.*.tenant_id",
                "\"default\": no context.tenant_id to take it from; set the tenant each webhook source's events belong to",
            );
        }
        let webhooks = object_at(doc, "webhooks");
        for source in &sources {
            if webhooks.contains_key(source) {
                continue;
            }
            let mut entry = json!({ "tenant_id": tenant_id });
            let (field, how) = if source == "alertmanager" {
                (
                    "bearer_token",
                    "Alertmanager sends it as http_config.authorization.credentials",
                )
            } else {
                ("hmac_secret", "the sender signs each body with it (X-Hub-Signature-256 / X-Carapulse-Signature; GitLab's X-Gitlab-Token)")
            };
            entry[field] = json!(secret());
            if let Some(env) = &environment {
                entry["environment"] = json!(env);
            }
            webhooks.insert(source.clone(), entry);
            report.add(
                ChangeKind::Added,
                format!("webhooks.{source}"),
                format!("generated {field} ({how}); POST /v1/hooks/{source}"),
            );
        }
    }
}

/// Keys neither Go nor this project knows: removed, each reported.
fn unknown_keys(doc: &mut Value, report: &mut Report) {
    for _ in 0..500 {
        let Err(super::ConfigError::Parse { field, message, .. }) =
            Config::from_value("(converted)", doc.clone())
        else {
            return;
        };
        let Some(name) = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        else {
            return;
        };
        let parent = if field == "(root)" {
            String::new()
        } else {
            field.clone()
        };
        let path = if parent.is_empty() {
            name.to_owned()
        } else {
            format!("{parent}.{name}")
        };
        let removed = if parent.is_empty() {
            doc.as_object_mut().and_then(|m| m.remove(name))
        } else {
            take(doc, &path)
        };
        if removed.is_none() {
            return;
        }
        report.add(
            ChangeKind::Decide,
            path,
            "removed: not a key of the Go original or of this project (a typo?)",
        );
    }
}

fn validation(doc: &Value, report: &mut Report) {
    let config = match Config::from_value("(converted)", doc.clone()) {
        Ok(config) => config,
        Err(e) => {
            report.add(ChangeKind::Decide, "(file)", format!("does not load: {e}"));
            return;
        }
    };
    let mut seen = std::collections::BTreeSet::new();
    for (component, name) in [
        (Component::Gateway, "gateway"),
        (Component::ToolRouter, "tool router"),
        (Component::Orchestrator, "orchestrator"),
    ] {
        if let Err(e) = config.validate(component) {
            let text = e.to_string();
            if seen.insert(text.clone()) {
                report.add(
                    ChangeKind::Decide,
                    "(validation)",
                    format!("the {name} would refuse to start: {text}"),
                );
            }
        }
    }
    if config.chatops.slack_signing_secret.is_some() {
        if let Err(e) = config.validate(Component::Agent) {
            report.add(
                ChangeKind::Decide,
                "(validation)",
                format!("the Slack agent would refuse to start: {e}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_secs("5m"), Some(300));
        assert_eq!(go_duration_secs("1h30m"), Some(5400));
        assert_eq!(go_duration_secs("1500ms"), Some(2));
        assert_eq!(go_duration_secs("90s"), Some(90));
        assert_eq!(go_duration_secs("soon"), None);
        assert_eq!(go_duration_secs(""), None);
    }
}
