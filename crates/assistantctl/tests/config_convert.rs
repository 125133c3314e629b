//! `assistantctl config convert --from-go` on files shaped like the three the Go original ships
//! (same keys, our values) and on one with every Go key: the output loads as this project's
//! config, every Go key is either kept at its path or named in the report, the report says what
//! was done, and `--out` writes a file only its owner can read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use carapulse_core::config::Config;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/go")
        .join(name)
}

struct Converted {
    config: Value,
    report: String,
}

fn convert(name: &str) -> Converted {
    let out = Command::new(env!("CARGO_BIN_EXE_assistantctl"))
        .args(["config", "convert", "--from-go"])
        .arg(fixture(name))
        .output()
        .unwrap();
    let report = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{name}: {report}");
    let config: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{name}: stdout is not the JSON file ({e}); stderr: {report}"));
    // The new file loads: no retired, renamed or unknown key is left in it.
    Config::from_json_str(&config.to_string())
        .unwrap_or_else(|e| panic!("{name}: the converted file does not load: {e}\n{report}"));
    Converted { config, report }
}

fn leaves(prefix: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&path, v, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

fn at<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |node, part| node.get(part))
}

/// Every key of the Go file is kept (same path, same value) or named in the report.
fn nothing_vanishes_silently(name: &str, converted: &Converted) {
    let go: Value = serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap();
    let mut keys = Vec::new();
    leaves("", &go, &mut keys);
    for key in keys {
        let kept = at(&converted.config, &key) == at(&go, &key);
        let reported = converted
            .report
            .lines()
            .any(|line| line.contains(&format!(" {key}:")) || line.contains(&format!(" {key} ")));
        assert!(
            kept || reported,
            "{name}: {key} changed without a word\n{}",
            converted.report
        );
    }
}

fn lines_of(report: &str, label: &str) -> BTreeSet<String> {
    report
        .lines()
        .filter(|l| l.starts_with(label))
        .filter_map(|l| l[label.len()..].trim().split(':').next().map(str::to_owned))
        .collect()
}

#[test]
fn the_e2e_sample_converts() {
    let c = convert("e2e-sample.json");
    nothing_vanishes_silently("e2e-sample.json", &c);
    assert_eq!(c.config["storage"]["object_store"]["backend"], "s3");
    assert_eq!(c.config["context"]["intervals"]["helm"], 30);
    assert!(at(&c.config, "context.watch_interval_secs").is_none());
    // The four event-loop sources get webhook sources of the context's tenant, with secrets.
    for source in ["alertmanager", "argocd", "git", "k8s"] {
        let hook = &c.config["webhooks"][source];
        assert_eq!(hook["tenant_id"], "e2e", "{source}");
        let secret = hook
            .get("bearer_token")
            .or(hook.get("hmac_secret"))
            .and_then(Value::as_str)
            .unwrap();
        assert_eq!(secret.len(), 64, "{source}");
    }
    assert_eq!(
        c.config["webhooks"]["alertmanager"]["bearer_token"]
            .as_str()
            .map(str::len),
        Some(64)
    );
    let added = lines_of(&c.report, "added");
    for key in [
        "tool_router.auth_token",
        "tool_router.grant_key",
        "storage.audit_checkpoint_key",
        "gateway.tenant_claim",
        "gateway.roles_claim",
        "webhooks.alertmanager",
    ] {
        assert!(added.contains(key), "{key} not added: {}", c.report);
    }
    let decide = lines_of(&c.report, "DECIDE");
    assert!(decide.contains("gateway.oidc_issuer"), "{}", c.report);
    assert!(decide.contains("storage.object_store.access_key_id"));
    assert!(c.report.contains("decisions left to you"), "{}", c.report);
}

#[test]
fn the_compose_files_convert() {
    let c = convert("compose.json");
    nothing_vanishes_silently("compose.json", &c);
    assert!(at(&c.config, "policy.opa_url").is_none());
    assert_eq!(c.config["policy"]["policy_package"], "policy.assistant.v1");
    assert!(lines_of(&c.report, "DECIDE").contains("policy.opa_url"));
    // No event loop and no tenant: webhook sources are still written, with the tenant to decide.
    assert!(lines_of(&c.report, "DECIDE").contains("webhooks.*.tenant_id"));

    let c = convert("compose-chatops.json");
    nothing_vanishes_silently("compose-chatops.json", &c);
    assert_eq!(c.config["chatops"]["gateway_url"], "http://gateway:8080");
    // The agent's own requirements are reported, not guessed.
    assert!(
        c.report.contains("the Slack agent would refuse to start"),
        "{}",
        c.report
    );
}

#[test]
fn every_go_key_is_kept_mapped_or_reported() {
    let c = convert("every-key.json");
    nothing_vanishes_silently("every-key.json", &c);
    let config = &c.config;
    assert_eq!(config["storage"]["conn_max_lifetime_secs"], 300);
    assert_eq!(config["approvals"]["timeout_hours"], 12);
    assert_eq!(config["policy"]["fail_open_reads"], false);
    assert_eq!(config["scheduler"]["default_cron"], "0 3 * * *");
    assert_eq!(config["context"]["labels"]["team"], "sre");
    let decide = lines_of(&c.report, "DECIDE");
    for key in [
        "sandbox.image",
        "sandbox.runtime",
        "sandbox.tmpfs",
        "connectors.aws.role_arn",
        "connectors.vault.sink_path",
        "connectors.vault.audit_enable",
        "connectors.boundary.target_id",
        "gateway.alert_poll_interval_secs",
        "policy.fail_open_reads",
    ] {
        assert!(
            decide.contains(key),
            "{key} not left to the operator: {}",
            c.report
        );
    }
    let dropped = lines_of(&c.report, "dropped");
    for key in ["sandbox.no_new_privs", "sandbox.drop_caps"] {
        assert!(dropped.contains(key), "{key}: {}", c.report);
    }
    let renamed = lines_of(&c.report, "renamed");
    assert!(
        renamed.contains("storage.conn_max_lifetime"),
        "{}",
        c.report
    );
}

#[test]
fn out_writes_an_owner_only_file_and_bad_input_is_an_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("new.json");
    std::fs::write(&target, "old").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_assistantctl"))
        .args(["config", "convert", "--from-go"])
        .arg(fixture("compose.json"))
        .arg("--out")
        .arg(&target)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "the file went to --out, not stdout");
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    Config::from_json_str(&std::fs::read_to_string(&target).unwrap()).unwrap();

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "[1, 2]").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_assistantctl"))
        .args(["config", "convert", "--from-go"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be a JSON object"));
}
