//! Prometheus queries through the router against a real Prometheus server (Debian package
//! `prometheus`, installed by scripts/test.sh) started here on a free port, scraping itself.

mod common;

use common::TOKEN;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tool_router::Application;

#[tokio::test]
async fn promql_through_the_router_against_real_prometheus() {
    let Some(prom) = carapulse_core::testing::prometheus::RealPrometheus::start(&[]).await else {
        return;
    };
    let objects = tempfile::tempdir().unwrap();
    let mut config = common::router_config(objects.path());
    config.connectors.prometheus.addr = Some(prom.url.clone());
    let app = Application::build(config).await.unwrap();
    let url = format!("http://127.0.0.1:{}/v1/tools/execute", app.port());
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    let query = |action: &'static str, input: Value| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let body = json!({"tool_name": "prometheus", "action": action, "input": input, "context": {"tenant_id": "acme"}});
            let resp: Value = http
                .post(url)
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            resp
        }
    };
    // Wait for the first self-scrape to land.
    let deadline = Instant::now() + Duration::from_secs(20);
    let result = loop {
        let resp = query("query", json!({"query": "up{job=\"self\"}"})).await;
        assert_eq!(resp["used"], "api", "{resp}");
        let parsed: Value = serde_json::from_str(resp["output"].as_str().unwrap()).unwrap();
        if parsed["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            break parsed;
        }
        assert!(Instant::now() < deadline, "no samples yet: {parsed}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(result["status"], "success");
    assert_eq!(result["data"]["result"][0]["value"][1], "1");
    let now = chrono::Utc::now().timestamp();
    let range = query("query_range", json!({"query": "up", "start": (now - 60).to_string(), "end": now.to_string(), "step": "1s"})).await;
    let parsed: Value = serde_json::from_str(range["output"].as_str().unwrap()).unwrap();
    assert_eq!(parsed["data"]["resultType"], "matrix", "{parsed}");
    let bad = query("query", json!({"query": "up{"})).await;
    assert_eq!(
        (bad["status"].as_str(), bad["http_status"].as_u64()),
        (Some("failed"), Some(400)),
        "{bad}"
    );
    let rules = query("rules", json!({})).await;
    assert_eq!(rules["status"], "succeeded");

    // The context service's Prometheus collector, through this router, against this server:
    // the query result is kept on the node and `job` links it to a service.
    use carapulse_context::collectors::polled::{PollKind, Polled};
    use carapulse_context::Collector;
    let runner = carapulse_context::tool_runner::ToolRunner::new(
        &url.replace("/v1/tools/execute", ""),
        Some(TOKEN.into()),
        carapulse_core::model::ContextRef {
            tenant_id: "acme".into(),
            ..Default::default()
        },
        Duration::from_secs(10),
    )
    .unwrap();
    let collector = Polled {
        kind: PollKind::Metrics {
            tool: "prometheus",
            queries: vec!["up{job=\"self\"}".into()],
        },
        runner,
    };
    let snap = collector.collect().await.unwrap();
    let q = snap
        .nodes
        .iter()
        .find(|n| n.kind == "prometheus.query")
        .expect("query node");
    assert_eq!(
        q.labels.get("value").map(String::as_str),
        Some("1"),
        "{q:?}"
    );
    assert_eq!(q.labels.get("series").map(String::as_str), Some("1"));
    assert!(snap
        .edges
        .iter()
        .any(|e| e.from_node_id == "service/self" && e.relation == "monitored_by"));
}
