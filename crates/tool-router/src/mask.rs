//! Structural masking of sensitive reads: the values of Kubernetes Secrets and Vault data are
//! replaced by `[MASKED]`, keeping their keys, whatever the keys are called.
//!
//! Why structural: a key-name regex misses `password2`, `DB_URL` or a key in another language;
//! the shape of a Secret (`kind: Secret`, `data`, `stringData`) and of a Vault response (`data`,
//! `data.data`) does not lie. Output that cannot be parsed is withheld rather than guessed at.

use serde_json::{Map, Value};

use carapulse_core::model::ToolName;

pub const MASK: &str = "[MASKED]";

/// Annotation in which `kubectl apply` keeps a full copy of the object, Secret data included.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn mask_values(map: &mut Map<String, Value>) {
    for v in map.values_mut() {
        *v = Value::String(MASK.into());
    }
}

fn mask_field(obj: &mut Map<String, Value>, key: &str) {
    match obj.get_mut(key) {
        Some(Value::Object(map)) => mask_values(map),
        Some(v @ Value::String(_)) => *v = Value::String(MASK.into()),
        _ => {}
    }
}

/// Masks every Secret in a Kubernetes JSON document (single objects and lists).
fn mask_kube(value: &mut Value) {
    match value {
        Value::Object(obj) => {
            let is_secret = obj.get("kind").and_then(Value::as_str) == Some("Secret");
            if is_secret {
                mask_field(obj, "data");
                mask_field(obj, "stringData");
            }
            if let Some(Value::Object(ann)) = obj
                .get_mut("metadata")
                .and_then(|m| m.get_mut("annotations"))
            {
                if let Some(v) = ann.get_mut(LAST_APPLIED) {
                    *v = Value::String(MASK.into());
                }
            }
            for v in obj.values_mut() {
                mask_kube(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_kube),
        _ => {}
    }
}

/// Masks a Vault response: `data` values (KV v1, dynamic secrets), `data.data` (KV v2), and
/// tokens in `auth` / `wrap_info`.
fn mask_vault(value: &mut Value) {
    let Value::Object(obj) = value else { return };
    if let Some(Value::Object(data)) = obj.get_mut("data") {
        if let Some(Value::Object(inner)) = data.get_mut("data") {
            mask_values(inner);
        } else {
            mask_values(data);
        }
    }
    for (section, key) in [("auth", "client_token"), ("wrap_info", "token")] {
        if let Some(Value::Object(s)) = obj.get_mut(section) {
            mask_field(s, key);
        }
    }
}

/// Masks cloud secret-store responses (AWS Secrets Manager, SSM, KMS).
fn mask_cloud(value: &mut Value) {
    match value {
        Value::Object(obj) => {
            for (k, v) in obj.iter_mut() {
                if matches!(
                    k.as_str(),
                    "SecretString" | "SecretBinary" | "Plaintext" | "Value"
                ) {
                    *v = Value::String(MASK.into());
                } else {
                    mask_cloud(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_cloud),
        _ => {}
    }
}

/// The output of a sensitive read as it may leave the router.
pub fn mask_output(tool: ToolName, action: &str, output: &str) -> String {
    // `kubectl describe secret` prints sizes, never values.
    if tool == ToolName::Kubectl && action == "describe" {
        return output.to_owned();
    }
    if tool == ToolName::Helm {
        return withheld(output, "Helm values and manifests carry secrets");
    }
    let mut value: Value = match serde_json::from_str(output.trim()) {
        Ok(v) => v,
        Err(_) => return withheld(output, "output is not JSON, so it cannot be masked"),
    };
    match tool {
        ToolName::Kubectl => mask_kube(&mut value),
        ToolName::Vault => mask_vault(&mut value),
        _ => mask_cloud(&mut value),
    }
    serde_json::to_string_pretty(&value).unwrap_or_else(|_| withheld(output, "re-encoding failed"))
}

fn withheld(output: &str, why: &str) -> String {
    format!(
        "[output withheld: sensitive read; {why}; {} bytes]",
        output.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubernetes_secrets_keep_keys_lose_values() {
        let doc = json!({"kind": "List", "items": [
            {"kind": "Secret", "metadata": {"name": "db", "annotations": {LAST_APPLIED: "{\"data\":{\"pw\":\"aHVudGVyMg==\"}}"}},
             "data": {"pw": "aHVudGVyMg==", "weird_key_2": "c2VjcmV0"}, "stringData": {"x": "y"}},
            {"kind": "ConfigMap", "data": {"plain": "visible"}}
        ]});
        let out = mask_output(ToolName::Kubectl, "get", &doc.to_string());
        assert!(!out.contains("aHVudGVyMg=="), "{out}");
        assert!(!out.contains("c2VjcmV0"), "{out}");
        assert!(
            out.contains("weird_key_2") && out.contains("visible"),
            "{out}"
        );
    }

    #[test]
    fn vault_data_and_tokens_are_masked() {
        let v1 = json!({"data": {"password": "hunter2", "zz": "s3"}, "lease_id": "l"});
        let out = mask_output(ToolName::Vault, "read", &v1.to_string());
        assert!(!out.contains("hunter2") && !out.contains("\"s3\"") && out.contains("zz"));
        let v2 = json!({"data": {"data": {"k": "secret-value"}, "metadata": {"version": 3}},
                        "auth": {"client_token": "hvs.abc"}});
        let out = mask_output(ToolName::Vault, "read", &v2.to_string());
        assert!(
            !out.contains("secret-value") && !out.contains("hvs.abc"),
            "{out}"
        );
        assert!(out.contains("\"version\": 3"), "{out}");
    }

    #[test]
    fn unparseable_output_is_withheld() {
        let out = mask_output(ToolName::Kubectl, "get", "password: hunter2\n");
        assert!(out.starts_with("[output withheld") && !out.contains("hunter2"));
        let out = mask_output(ToolName::Helm, "get", "{\"a\": \"hunter2\"}");
        assert!(!out.contains("hunter2"));
    }
}
