//! Keys the Go original accepted that this project does not act on, and what to use instead.
//!
//! A key that is read but changes nothing is worse than an unknown one: the operator believes a
//! setting holds when it does not. So each key here is taken out of the document before it is
//! typed: a value that asks for nothing (null, false, "", [], {}, 0) or for what always happens
//! anyway (`sandbox.no_new_privs: true`; there, `false` asks to turn it off and is refused) is
//! dropped, and any other value stops the start with an
//! error naming the key and what replaces it. `assistantctl config convert --from-go` applies the
//! same table when it rewrites an old file.

use serde_json::Value;

use super::ConfigError;

/// One retired key: its dotted path, which values are still harmless, and the replacement.
#[derive(Debug, Clone, Copy)]
pub struct RetiredKey {
    pub path: &'static str,
    /// Values that ask for nothing this project does not do: usually the inert ones (see
    /// [`is_inert`]), plus what always happens anyway.
    pub harmless: fn(&Value) -> bool,
    /// What to do instead, shown in the error and by the config converter.
    pub instead: &'static str,
}

const ALERT_PUSH: &str = "alerts arrive pushed by Alertmanager, not polled: add an Alertmanager webhook receiver with url http://GATEWAY/v1/hooks/alertmanager and configure webhooks.alertmanager (tenant_id, bearer_token or hmac_secret); alerts are deduplicated by fingerprint on arrival";
const WATCH_INTERVAL: &str = "set how often each collector polls with context.intervals (e.g. {\"helm\": 30, \"prometheus\": 30}) or context.poll_interval_secs; Kubernetes is watched continuously";
const OPA: &str = "policy is evaluated in process: put the Rego files in policy.policy_dir (POST /v1/policy/reload or SIGHUP reloads them); no OPA server is called";
const CONTAINER: &str = "tools do not run in a container: sandbox-exec isolates each call with Linux namespaces, a minimal read-only root, seccomp and rlimits (see sandbox.exec_helper, sandbox.mounts)";
const TMPFS: &str = "every run already has a private tmpfs at /tmp and a private working directory; other tmpfs mounts are not supported (use sandbox.mounts for read-only binds)";
const NO_NEW_PRIVS: &str =
    "no_new_privs is always set on sandboxed processes and cannot be turned off; remove the key";
const DROP_CAPS: &str =
    "every capability is always dropped in the sandbox; remove the key (or write [\"ALL\"])";
const AWS_ROLE: &str = "the tool router does not assume a role at start: give its pod the role (IRSA: the eks.amazonaws.com/role-arn annotation through the chart's serviceAccount.annotations) or add an aws assume-role step to the plan";
const VAULT_AGENT: &str = "no Vault Agent is started by Carapulse: run Vault Agent beside the tool router (a sidecar doing auth, renewal and templates) and pass its token as CARAPULSE_VAULT_TOKEN (connectors.vault.token)";
const VAULT_AUDIT: &str = "enable Vault audit devices in Vault itself (`vault audit enable file file_path=...`); the tool router does not change Vault at start";
const BOUNDARY: &str = "Boundary sessions are authorised per plan step (the boundary authorize-session action with target_id, session-cancel to end it), not at tool-router start";
const ROUTER_OIDC: &str = "the tool router accepts only its service token (tool_router.auth_token) and, for writes, the orchestrator's execution grants; people reach tools through the gateway, which verifies OIDC tokens (gateway.oidc_*)";
const LINEAR_TIMEOUT: &str = "approvals.timeout_hours sets the expiry of every approval, Linear's included; set that instead (this key is accepted only when equal to it)";

/// `no_new_privs` is always set: only null and true are harmless (false asks to turn it off).
fn privs_kept(v: &Value) -> bool {
    v.is_null() || v.as_bool() == Some(true)
}

fn is_all_caps(v: &Value) -> bool {
    is_inert(v)
        || v.as_array().is_some_and(|a| {
            a.len() == 1 && a[0].as_str().is_some_and(|s| s.eq_ignore_ascii_case("all"))
        })
}

fn is_only_tmp(v: &Value) -> bool {
    is_inert(v)
        || v.as_array()
            .is_some_and(|a| a.iter().all(|m| m.as_str() == Some("/tmp")))
}

const fn refused(path: &'static str, instead: &'static str) -> RetiredKey {
    RetiredKey {
        path,
        harmless: is_inert,
        instead,
    }
}

/// Every retired key. `connectors.linear.timeout_hours` is handled by [`check`] itself because
/// its harmless value depends on another key.
pub const RETIRED: &[RetiredKey] = &[
    refused("gateway.alert_poll_interval_secs", ALERT_PUSH),
    refused("gateway.alert_dedup_window_secs", ALERT_PUSH),
    refused("context.watch_interval_secs", WATCH_INTERVAL),
    refused("policy.opa_url", OPA),
    refused("tool_router.oidc_issuer", ROUTER_OIDC),
    refused("tool_router.oidc_client_id", ROUTER_OIDC),
    refused("tool_router.oidc_jwks_url", ROUTER_OIDC),
    refused("sandbox.image", CONTAINER),
    refused("sandbox.runtime", CONTAINER),
    RetiredKey {
        path: "sandbox.tmpfs",
        harmless: is_only_tmp,
        instead: TMPFS,
    },
    RetiredKey {
        path: "sandbox.no_new_privs",
        harmless: privs_kept,
        instead: NO_NEW_PRIVS,
    },
    RetiredKey {
        path: "sandbox.drop_caps",
        harmless: is_all_caps,
        instead: DROP_CAPS,
    },
    refused("connectors.aws.role_arn", AWS_ROLE),
    refused("connectors.vault.agent_role", VAULT_AGENT),
    refused("connectors.vault.auth_path", VAULT_AGENT),
    refused("connectors.vault.template_dir", VAULT_AGENT),
    refused("connectors.vault.sink_path", VAULT_AGENT),
    refused("connectors.vault.auto_auth_method", VAULT_AGENT),
    refused("connectors.vault.approle_id", VAULT_AGENT),
    refused("connectors.vault.approle_secret", VAULT_AGENT),
    refused("connectors.vault.template_source", VAULT_AGENT),
    refused("connectors.vault.template_dest", VAULT_AGENT),
    refused("connectors.vault.retry_max_backoff", VAULT_AGENT),
    refused("connectors.vault.health_interval_secs", VAULT_AGENT),
    refused("connectors.vault.renew_interval_secs", VAULT_AGENT),
    refused("connectors.vault.audit_enable", VAULT_AUDIT),
    refused("connectors.vault.audit_path", VAULT_AUDIT),
    refused("connectors.boundary.target_id", BOUNDARY),
    refused("connectors.boundary.session_duration", BOUNDARY),
    refused("connectors.boundary.auto_close", BOUNDARY),
    refused("connectors.boundary.enable_tunnel", BOUNDARY),
    refused("connectors.boundary.listen_addr", BOUNDARY),
    refused("connectors.linear.timeout_hours", LINEAR_TIMEOUT),
];

/// Values that ask for nothing: the Go original's zero values.
pub fn is_inert(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
    }
}

/// What happened to one retired key found in a document.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Harmless: removed.
    Dropped { path: &'static str, value: Value },
    /// Asks for something this project does not do.
    Refused {
        path: &'static str,
        value: Value,
        instead: &'static str,
    },
}

/// Removes every retired key from `doc` and reports each one found.
pub fn sweep(doc: &mut Value) -> Vec<Outcome> {
    let approval_hours = doc
        .pointer("/approvals/timeout_hours")
        .cloned()
        .unwrap_or(Value::from(24));
    let mut found = Vec::new();
    for key in RETIRED {
        let Some(value) = take(doc, key.path) else {
            continue;
        };
        let harmless = (key.harmless)(&value)
            || (key.path == "connectors.linear.timeout_hours" && value == approval_hours);
        found.push(if harmless {
            Outcome::Dropped {
                path: key.path,
                value,
            }
        } else {
            Outcome::Refused {
                path: key.path,
                value,
                instead: key.instead,
            }
        });
    }
    found
}

/// Removes retired keys from `doc`; the first one set to something this project does not do is
/// the error.
pub fn check(doc: &mut Value) -> Result<(), ConfigError> {
    for outcome in sweep(doc) {
        if let Outcome::Refused { path, instead, .. } = outcome {
            return Err(ConfigError::Retired {
                field: path.to_owned(),
                instead: instead.to_owned(),
            });
        }
    }
    Ok(())
}

/// Takes the value at a dotted path out of a JSON document.
fn take(doc: &mut Value, path: &str) -> Option<Value> {
    let (parents, leaf) = match path.rsplit_once('.') {
        Some((parents, leaf)) => (Some(parents), leaf),
        None => (None, path),
    };
    let mut node = doc;
    if let Some(parents) = parents {
        for part in parents.split('.') {
            node = node.get_mut(part)?;
        }
    }
    node.as_object_mut()?.remove(leaf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inert_values_are_dropped_and_others_refused() {
        let mut doc = json!({
            "sandbox": {"no_new_privs": true, "drop_caps": ["ALL"], "image": "", "tmpfs": ["/tmp"]},
            "connectors": {"vault": {"sink_path": "/vault/token"}, "linear": {"timeout_hours": 24}},
        });
        let found = sweep(&mut doc);
        assert_eq!(
            doc,
            json!({"sandbox": {}, "connectors": {"vault": {}, "linear": {}}})
        );
        let refused: Vec<_> = found
            .iter()
            .filter_map(|o| match o {
                Outcome::Refused { path, .. } => Some(*path),
                Outcome::Dropped { .. } => None,
            })
            .collect();
        assert_eq!(refused, ["connectors.vault.sink_path"]);
        assert_eq!(found.len(), 6);
    }

    #[test]
    fn linear_timeout_must_match_the_approval_timeout() {
        let mut doc = json!({"approvals": {"timeout_hours": 8}, "connectors": {"linear": {"timeout_hours": 8}}});
        check(&mut doc).unwrap();
        let mut doc = json!({"connectors": {"linear": {"timeout_hours": 8}}});
        let err = check(&mut doc).unwrap_err().to_string();
        assert!(err.contains("connectors.linear.timeout_hours"), "{err}");
        assert!(err.contains("approvals.timeout_hours"), "{err}");
    }

    #[test]
    fn every_path_is_unique() {
        let mut paths: Vec<_> = RETIRED.iter().map(|k| k.path).collect();
        paths.sort_unstable();
        let before = paths.len();
        paths.dedup();
        assert_eq!(before, paths.len());
    }
}
