//! Every configuration key either does something or is refused at start.
//!
//! The schema is walked from the typed config itself (the defaults serialised, with the entries
//! of `webhooks.*` and `context.services[]`), so a key added later is covered without editing
//! this file. Each key must be read by code outside the config module (found in the sources, by
//! field name, qualified by its section when the name is shared), or appear in the table of
//! keys whose reading the scan cannot attribute, which names the file and the line that reads
//! it. Each retired key of the Go original must be gone from the schema and refused with its
//! replacement when set to anything but a harmless value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use carapulse_core::config::retired::{self, RETIRED};
use carapulse_core::config::{Config, ConfigError, ServiceMapping, WebhookSource};

/// Keys read through a local name the scan cannot tie to their section: key, file (from the
/// workspace's `crates/`), text that reads it there.
const READ_ELSEWHERE: &[(&str, &str, &str)] = &[
    (
        "context.region",
        "gateway/src/context.rs",
        "region: c.region.clone()",
    ),
    (
        "context.services[].environment",
        "context/src/collectors/static_map.rs",
        "m.environment",
    ),
    (
        "context.services[].cluster_id",
        "context/src/collectors/static_map.rs",
        "m.cluster_id",
    ),
    (
        "context.services[].namespace",
        "context/src/collectors/static_map.rs",
        "m.namespace",
    ),
    (
        "webhooks.*.tenant_id",
        "gateway/src/routes/hooks.rs",
        "TenantId::parse(&cfg.tenant_id)",
    ),
    (
        "webhooks.*.environment",
        "gateway/src/background/event_loop.rs",
        "source_cfg.environment",
    ),
    (
        "webhooks.*.cluster_id",
        "gateway/src/background/event_loop.rs",
        "source_cfg.cluster_id",
    ),
    (
        "webhooks.*.namespace",
        "gateway/src/background/event_loop.rs",
        "source_cfg.namespace",
    ),
    (
        "context.cluster_id",
        "gateway/src/context.rs",
        "cluster_id: c.cluster_id.clone()",
    ),
    (
        "context.poll_interval_secs",
        "gateway/src/context.rs",
        "c.poll_interval_secs.max(5)",
    ),
    (
        "gateway.oidc_client_id",
        "carapulse-core/src/auth/verifier.rs",
        "oidc_audience: cfg.oidc_client_id",
    ),
    (
        "gateway.oidc_jwks_url",
        "carapulse-core/src/auth/verifier.rs",
        "jwks_url: cfg.oidc_jwks_url",
    ),
    (
        "storage.object_store.region",
        "carapulse-core/src/objects.rs",
        "cfg.region.as_deref()",
    ),
    // Read only by validation, where the effect is a refusal to start.
    (
        "policy.fail_open_reads",
        "carapulse-core/src/config/mod.rs",
        "self.policy.fail_open_reads",
    ),
    (
        "sandbox.require_egress_allowlist",
        "carapulse-core/src/config/mod.rs",
        "sb.require_egress_allowlist && sb.egress_allowlist.is_empty()",
    ),
];

fn leaves(prefix: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(&path, child, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

/// Every key of the schema, entries of maps and lists of structs included.
fn schema_keys() -> Vec<String> {
    let mut keys = Vec::new();
    let mut doc = serde_json::to_value(Config::default()).unwrap();
    // Struct-valued collections are empty by default: walk one entry of each.
    doc["webhooks"] = json!({ "*": WebhookSource::default() });
    doc["context"]["services"] = json!({ "[]": ServiceMapping::default() });
    leaves("", &doc, &mut keys);
    for key in &mut keys {
        *key = key.replace(".[]", "[]");
    }
    keys
}

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The non-test sources of every crate, without the config module (which declares every key)
/// except its connector bindings.
fn sources() -> String {
    fn walk(dir: &Path, out: &mut String) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs")
                // The config module declares and validates every key; of it, only the
                // connector bindings act on keys at run time.
                && (!path.parent().is_some_and(|p| p.ends_with("config"))
                    || path.ends_with("bindings.rs"))
            {
                out.push_str(&std::fs::read_to_string(&path).unwrap());
                out.push('\n');
            }
        }
    }
    let mut out = String::new();
    for krate in std::fs::read_dir(crates_dir()).unwrap().flatten() {
        walk(&krate.path().join("src"), &mut out);
    }
    out
}

/// `x.field` (or `section.field` for names several sections share) as a whole word.
fn is_read(source: &str, key: &str, shared: bool) -> bool {
    let parts: Vec<&str> = key
        .split(['.', '['])
        .filter(|p| !p.is_empty() && *p != "]" && *p != "*")
        .collect();
    let field = parts[parts.len() - 1];
    let needle = if shared && parts.len() >= 2 {
        format!("{}.{field}", parts[parts.len() - 2].trim_end_matches(']'))
    } else {
        format!(".{field}")
    };
    source.match_indices(&needle).any(|(at, _)| {
        let end = at + needle.len();
        !source[end..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
    })
}

#[test]
fn every_key_is_read_or_refused() {
    let keys = schema_keys();
    assert!(keys.len() > 150, "the walk found the schema: {keys:?}");
    let source = sources();
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for key in &keys {
        let field = key.rsplit(['.', ']']).next().unwrap();
        *names.entry(field).or_default() += 1;
    }
    let mut unread = Vec::new();
    for key in &keys {
        if let Some((_, file, text)) = READ_ELSEWHERE.iter().find(|(k, ..)| k == key) {
            let body = std::fs::read_to_string(crates_dir().join(file)).unwrap();
            assert!(
                body.contains(text),
                "{key}: {file} no longer reads it ({text})"
            );
            continue;
        }
        let field = key.rsplit(['.', ']']).next().unwrap();
        if !is_read(&source, key, names[field] > 1) {
            unread.push(key.clone());
        }
    }
    assert!(
        unread.is_empty(),
        "keys accepted but read by nothing: {unread:?}"
    );
    // The table must not keep keys that left the schema.
    for (key, ..) in READ_ELSEWHERE {
        assert!(keys.iter().any(|k| k == key), "{key} is not in the schema");
    }
}

/// A value each retired key would have to act on.
fn meaningful(path: &str) -> Value {
    match path {
        "sandbox.no_new_privs"
        | "connectors.vault.audit_enable"
        | "connectors.boundary.auto_close"
        | "connectors.boundary.enable_tunnel" => {
            if path == "sandbox.no_new_privs" {
                json!(false)
            } else {
                json!(true)
            }
        }
        "sandbox.tmpfs" => json!(["/scratch"]),
        "sandbox.drop_caps" => json!(["NET_RAW"]),
        p if p.ends_with("_secs")
            || p.ends_with("interval_secs")
            || p.ends_with("timeout_hours") =>
        {
            json!(7)
        }
        _ => json!("something"),
    }
}

fn doc_with(path: &str, value: Value) -> Value {
    let mut doc = json!({});
    let mut node = &mut doc;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        node = node
            .as_object_mut()
            .unwrap()
            .entry(*part)
            .or_insert(json!({}));
    }
    node[parts[parts.len() - 1]] = value;
    doc
}

#[test]
fn retired_keys_are_refused_with_their_replacement() {
    let keys = schema_keys();
    for key in RETIRED {
        assert!(
            !keys.iter().any(|k| k == key.path),
            "{} is retired but still in the schema",
            key.path
        );
        let doc = doc_with(key.path, meaningful(key.path));
        let err = Config::from_json_str(&doc.to_string())
            .expect_err(&format!("{} = {} must be refused", key.path, doc));
        match &err {
            ConfigError::Retired { field, instead } => {
                assert_eq!(field, key.path);
                assert_eq!(instead, key.instead);
            }
            other => panic!("{}: wrong error {other}", key.path),
        }
        let text = err.to_string();
        assert!(text.starts_with(key.path), "{text}");
        // Harmless values (the Go zero value) load and mean nothing.
        let inert = match meaningful(key.path) {
            Value::Bool(_) => json!(false),
            Value::Number(_) => json!(0),
            Value::Array(_) => json!([]),
            _ => json!(""),
        };
        let doc = doc_with(key.path, inert);
        if key.path != "sandbox.no_new_privs" {
            Config::from_json_str(&doc.to_string())
                .unwrap_or_else(|e| panic!("{}: a zero value is harmless: {e}", key.path));
        }
    }
    // What always happens may be written down.
    Config::from_json_str(
        r#"{"sandbox": {"no_new_privs": true, "drop_caps": ["ALL"], "tmpfs": ["/tmp"]},
            "connectors": {"linear": {"timeout_hours": 24}}}"#,
    )
    .unwrap();
    // Environment overrides go through the same check.
    let err = Config::load_with_env(
        None,
        &[(
            "CARAPULSE__CONNECTORS__VAULT__SINK_PATH".into(),
            "/vault/token".into(),
        )],
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("connectors.vault.sink_path is not supported: no Vault Agent"),
        "{err}"
    );
    assert_eq!(retired::RETIRED.len(), 33);
}

/// The three config files the Go original ships: each loads or is refused only for retired keys.
#[test]
fn go_sample_configs_are_refused_only_for_retired_keys() {
    let samples = [
        (
            "e2e/config.sample.json",
            r#"{"gateway": {"http_addr": ":8080", "ws_addr": ":8082", "enable_event_loop": true, "event_loop_sources": ["alertmanager", "argocd", "git", "k8s"], "session_required": false},
                "storage": {"postgres_dsn": "postgres://carapulse:carapulse@127.0.0.1:5432/carapulse?sslmode=disable", "workspace_dir": "./e2e/workspace"},
                "context": {"enabled": true, "poll_interval_secs": 60, "watch_interval_secs": 30, "labels": {"tenant_id": "e2e"}}}"#,
            Some("context.watch_interval_secs"),
        ),
        (
            "deploy/config.compose.json",
            r#"{"policy": {"opa_url": "http://opa:8181", "policy_package": "policy.assistant.v1", "fail_open_reads": false}}"#,
            Some("policy.opa_url"),
        ),
        (
            "deploy/config.compose.chatops.json",
            r#"{"gateway": {"http_addr": ":8080"}, "chatops": {"slack_bot_token": "REPLACE", "slack_signing_secret": "REPLACE", "gateway_url": "http://gateway:8080", "gateway_token": ""}}"#,
            None,
        ),
    ];
    for (name, text, refused) in samples {
        match (Config::from_json_str(text), refused) {
            (Ok(_), None) => {}
            (Err(ConfigError::Retired { field, .. }), Some(expected)) => {
                assert_eq!(field, expected, "{name}")
            }
            (other, _) => panic!("{name}: {other:?}"),
        }
    }
}
