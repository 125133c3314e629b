//! Real Prometheus (a rule that always fires) -> real Alertmanager -> the gateway's webhook ->
//! the event loop -> an incident plan, watched on the SSE stream: `alert.received`, then
//! `plan.updated`. Both servers come from the Debian packages installed by scripts/test.sh and
//! are started here on free ports.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use serde_json::Value;

use carapulse_core::config::WebhookSource;

const BEARER: &str = "alertmanager-e2e-bearer-0123456789";

struct Server {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn binary(names: &[&str]) -> String {
    names
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| p.to_string())
        .unwrap_or_else(|| panic!("none of {names:?} installed: run ./scripts/test.sh (it installs prometheus and prometheus-alertmanager)"))
}

async fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(url).await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{url} not ready");
}

async fn start_alertmanager(gateway: &str) -> (Server, u16) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: carapulse\n  group_by: ['alertname']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
receivers:\n  - name: carapulse\n    webhook_configs:\n      - url: '{gateway}/v1/hooks/alertmanager'\n        send_resolved: true\n        http_config:\n          authorization:\n            credentials: '{BEARER}'\n"
        ),
    )
    .unwrap();
    let child = Command::new(binary(&[
        "/usr/bin/prometheus-alertmanager",
        "/usr/local/bin/alertmanager",
    ]))
    .arg(format!("--config.file={}", config.display()))
    .arg(format!(
        "--storage.path={}",
        dir.path().join("data").display()
    ))
    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
    .arg("--cluster.listen-address=")
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    wait_ready(&format!("http://127.0.0.1:{port}/-/ready")).await;
    (Server { child, _dir: dir }, port)
}

async fn start_prometheus(alertmanager_port: u16) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: carapulse-e2e\n    interval: 1s\n    rules:\n      - alert: CheckoutLatencyHigh\n        expr: vector(1)\n        labels:\n          severity: page\n          deployment: checkout\n          namespace: shop\n        annotations:\n          summary: p99 above 2s\n",
    )
    .unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{alertmanager_port}']\n",
            rules.display()
        ),
    )
    .unwrap();
    let child = Command::new(binary(&[
        "/usr/bin/prometheus",
        "/usr/local/bin/prometheus",
    ]))
    .arg(format!("--config.file={}", config.display()))
    .arg(format!(
        "--storage.tsdb.path={}",
        dir.path().join("data").display()
    ))
    // The default (1m) holds the first notification for a minute after start.
    .arg("--rules.alert.resend-delay=1s")
    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    wait_ready(&format!("http://127.0.0.1:{port}/-/ready")).await;
    Server { child, _dir: dir }
}

#[tokio::test]
async fn a_firing_prometheus_rule_becomes_an_incident_plan() {
    let app = spawn_app_with(|c| {
        c.webhooks.insert(
            "alertmanager".into(),
            WebhookSource {
                tenant_id: "acme".into(),
                bearer_token: Some(BEARER.into()),
                environment: "prod".into(),
                ..Default::default()
            },
        );
        c.gateway.enable_event_loop = true;
    })
    .await;
    let viewer = token("viewer", "acme", &["viewer"]);
    let resp = app
        .http
        .get(format!(
            "{}/v1/events?kinds=alert.received,plan.updated",
            app.url
        ))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let started = Instant::now();
    let (am, am_port) = start_alertmanager(&app.url).await;
    let prom = start_prometheus(am_port).await;

    // Read the stream until the alert's plan shows up.
    let mut body = resp.bytes_stream();
    let mut parser = carapulse_core::sse::SseParser::new();
    let mut seen: Vec<(String, Value)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    'outer: while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, body.next()).await {
        for f in parser.push(&chunk) {
            if f.data.is_empty() {
                continue;
            }
            let done = f.event == "plan.updated";
            seen.push((
                f.event,
                serde_json::from_str(&f.data).unwrap_or(Value::Null),
            ));
            if done {
                break 'outer;
            }
        }
    }
    let took = started.elapsed();
    eprintln!("plan appeared {took:?} after the servers started");
    assert!(took < Duration::from_secs(30), "{took:?}");
    let kinds: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    let alert_at = kinds
        .iter()
        .position(|k| *k == "alert.received")
        .expect("alert.received on the stream");
    let plan_at = kinds
        .iter()
        .position(|k| *k == "plan.updated")
        .expect("plan.updated on the stream");
    assert!(alert_at < plan_at, "alert first, then the plan: {kinds:?}");
    assert_eq!(seen[alert_at].1["data"]["status"], "firing");
    assert_eq!(seen[alert_at].1["data"]["source"], "alertmanager");

    let plan_id = seen[plan_at].1["data"]["plan_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, plan) = app.get(&format!("/v1/plans/{plan_id}"), &viewer).await;
    assert_eq!(plan["trigger"], "alert");
    assert_eq!(plan["approval_state"], "pending");
    assert_eq!(plan["meta"]["alert"]["alertname"], "CheckoutLatencyHigh");
    assert_eq!(plan["meta"]["workflow"]["name"], "incident_remediation");
    assert_eq!(plan["context"]["namespace"], "shop");
    assert!(plan["summary"].as_str().unwrap().contains("p99 above 2s"));
    let steps: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert!(steps.contains(&"rollout-restart"), "{steps:?}");
    drop(prom);
    drop(am);
    app.stop().await;
}
