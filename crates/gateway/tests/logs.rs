//! `GET /v1/executions/{id}/logs`: replay of stored lines, live lines announced through
//! Postgres, filters, the `end` event, tenant isolation.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::*;
use futures::StreamExt;
use serde_json::{json, Value};

use carapulse_core::model::{ExecutionId, ExecutionStatus, TenantId, ToolCallStatus};
use carapulse_core::store::{NewToolCall, ToolLogLine};

fn line(exec: ExecutionId, call: uuid::Uuid, seq: i64, level: &str, message: &str) -> ToolLogLine {
    ToolLogLine {
        execution_id: exec.0,
        tool_call_id: call,
        tenant_id: "acme".into(),
        seq,
        stream: if level == "warn" {
            "stderr".into()
        } else {
            "stdout".into()
        },
        level: level.into(),
        message: message.into(),
        ts: Utc::now(),
    }
}

/// Reads SSE frames (event, data) until `end` or the timeout.
async fn collect(resp: reqwest::Response, until_end: bool) -> Vec<(String, Value)> {
    let mut body = resp.bytes_stream();
    let mut parser = carapulse_core::sse::SseParser::new();
    let mut frames = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, body.next()).await {
        for f in parser.push(&chunk) {
            let done = f.event == "end";
            frames.push((
                f.event,
                serde_json::from_str(&f.data).unwrap_or(Value::Null),
            ));
            if done && until_end {
                return frames;
            }
        }
    }
    frames
}

#[tokio::test]
async fn replay_live_filters_end_and_tenancy() {
    let app = spawn_app().await;
    let alice = token("alice", "acme", &["operator"]);
    let bob = token("bob", "acme", &["approver"]);
    let eve = token("eve", "other", &["operator"]);
    let (_, created) = app.create_scale_plan(&alice).await;
    let plan_id = created["plan_id"].as_str().unwrap().to_owned();
    app.post(
        "/v1/approvals",
        &bob,
        &json!({"plan_id": plan_id, "status": "approved"}),
    )
    .await;
    let (_, exec) = app
        .post(&format!("/v1/plans/{plan_id}/execute"), &alice, &json!({}))
        .await;
    let exec_id = ExecutionId::parse(exec["execution_id"].as_str().unwrap()).unwrap();
    let store = app.db.store.clone();
    let tenant = TenantId::parse("acme").unwrap();
    let call = |action: &str| NewToolCall {
        execution_id: exec_id,
        step_id: None,
        tool_name: "kubectl".into(),
        action: action.into(),
        status: ToolCallStatus::Running,
        input_ref: None,
        attempt: 1,
    };
    let first = store
        .insert_tool_call(&tenant, &call("scale"))
        .await
        .unwrap();
    let second = store
        .insert_tool_call(&tenant, &call("rollout-status"))
        .await
        .unwrap();
    store
        .append_tool_logs(&[
            line(exec_id, first.0, 1, "info", "deployment.apps/web scaled"),
            line(
                exec_id,
                first.0,
                2,
                "warn",
                "warning: replicas above HPA max",
            ),
        ])
        .await
        .unwrap();

    let url = format!("{}/v1/executions/{exec_id}/logs", app.url);
    let all = app.http.get(&url).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(all.status(), 200);
    let warn_only = app
        .http
        .get(format!("{url}?level=warn&access_token={alice}"))
        .send()
        .await
        .unwrap();
    let by_call = app
        .http
        .get(format!("{url}?tool_call_id={second}"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    let readers = (
        tokio::spawn(collect(all, true)),
        tokio::spawn(collect(warn_only, true)),
        tokio::spawn(collect(by_call, true)),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Live lines, written by "the orchestrator" in another process, arrive through NOTIFY.
    store
        .append_tool_logs(&[
            line(
                exec_id,
                second.0,
                1,
                "info",
                "Waiting for rollout to finish",
            ),
            line(
                exec_id,
                second.0,
                2,
                "info",
                "deployment \"web\" successfully rolled out",
            ),
        ])
        .await
        .unwrap();
    // A duplicate copy (a retried copier) is ignored.
    store
        .append_tool_logs(&[line(exec_id, second.0, 2, "info", "duplicate")])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    store
        .transition_execution(&tenant, exec_id, ExecutionStatus::Running, None)
        .await
        .unwrap();
    store
        .transition_execution(&tenant, exec_id, ExecutionStatus::Succeeded, None)
        .await
        .unwrap();

    let all = readers.0.await.unwrap();
    let messages: Vec<&str> = all
        .iter()
        .filter(|(e, _)| e == "log")
        .map(|(_, d)| d["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        vec![
            "deployment.apps/web scaled",
            "warning: replicas above HPA max",
            "Waiting for rollout to finish",
            "deployment \"web\" successfully rolled out"
        ]
    );
    assert_eq!(
        all.last().unwrap(),
        &("end".to_string(), json!({"status": "succeeded"}))
    );
    let warn = readers.1.await.unwrap();
    let warn_lines: Vec<&Value> = warn
        .iter()
        .filter(|(e, _)| e == "log")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(warn_lines.len(), 1);
    assert_eq!(warn_lines[0]["stream"], "stderr");
    let by_call = readers.2.await.unwrap();
    assert_eq!(by_call.iter().filter(|(e, _)| e == "log").count(), 2);

    // A finished execution replays and ends at once.
    let again = app.http.get(&url).bearer_auth(&alice).send().await.unwrap();
    let frames = collect(again, true).await;
    assert_eq!(frames.iter().filter(|(e, _)| e == "log").count(), 4);
    assert_eq!(frames.last().unwrap().0, "end");

    // Another tenant cannot see it; bad ids are 404/400.
    let resp = app.http.get(&url).bearer_auth(&eve).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp = app
        .http
        .get(format!("{url}?tool_call_id=nope"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    app.stop().await;
}
