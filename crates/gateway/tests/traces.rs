//! One execution, one trace: an OTLP/gRPC receiver started here (the collector's own protobuf
//! service, `opentelemetry-proto` over tonic) collects what the gateway, the Temporal worker and
//! the tool router export, and the test checks the parent/child chain of the execution's spans
//! from the caller's `traceparent` down to each sandboxed process, with the plan, execution, step
//! and tool-call ids on them; and that the latency histograms carry the trace id as exemplars.
//!
//! Its own test binary: the tracer provider and subscriber are process-wide.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use serde_json::json;

/// The caller's trace: every span of the execution must belong to it.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// A received span, flattened.
#[derive(Debug, Clone)]
struct Got {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: HashMap<String, String>,
}

#[derive(Default, Clone)]
struct Receiver {
    spans: Arc<Mutex<Vec<Got>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut out = self.spans.lock().expect("receiver lock");
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    let attributes = span
                        .attributes
                        .iter()
                        .map(|kv| {
                            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                                Some(AnyValue::StringValue(s)) => s.clone(),
                                Some(AnyValue::IntValue(i)) => i.to_string(),
                                Some(AnyValue::BoolValue(b)) => b.to_string(),
                                Some(AnyValue::DoubleValue(d)) => d.to_string(),
                                other => format!("{other:?}"),
                            };
                            (kv.key.clone(), value)
                        })
                        .collect();
                    out.push(Got {
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent: hex(&span.parent_span_id),
                        attributes,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `ancestor` is on the parent chain of `span` (within the collected spans).
fn descends(spans: &HashMap<String, Got>, span: &Got, ancestor: &str) -> bool {
    let mut parent = span.parent.clone();
    for _ in 0..64 {
        if parent == ancestor {
            return true;
        }
        match spans.get(&parent) {
            Some(p) => parent = p.parent.clone(),
            None => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_execution_is_one_trace_from_the_api_to_the_sandbox() {
    // The receiver, on a free port.
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let otlp = format!("http://{}", listener.local_addr().expect("addr"));
    let incoming = tokio_stream_listener(listener);
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(receiver.clone()))
        .serve_with_incoming(incoming);
    tokio::spawn(server);

    // Traces on for the whole process (gateway, worker and router all run here), before any
    // Temporal client is built so both get the tracing plugin.
    let cfg = carapulse_core::config::TelemetryConfig {
        otlp_endpoint: Some(otlp.clone()),
        sample_ratio: 1.0,
    };
    let provider = orchestrator::telemetry::tracer_provider("carapulse-tests", &cfg, &otlp)
        .expect("tracer provider");
    let telemetry =
        carapulse_core::telemetry::init_with_provider("carapulse-tests", Some(provider));
    assert!(telemetry.tracing());

    fake_tool_on_path(
        "helm",
        "case \"$*\" in *--output=json*) echo '{\"version\":2,\"info\":{\"status\":\"deployed\"}}'; exit 0;; esac\necho \"helm ok: $*\"",
    );
    let temporal = temporal_addr();
    let queue = format!("traces-{}", uuid::Uuid::new_v4().simple());
    let router_port = free_port();
    let (q, t) = (queue.clone(), temporal.clone());
    let app = spawn_app_with(move |c| execution_config(c, &t, &q, router_port)).await;
    let stack = ExecutionStack::start(&app, &temporal, &queue, router_port).await;

    let alice = token("alice", "acme", &["operator"]);
    let bob = token("bob", "acme", &["approver"]);
    let (status, created) = app
        .post(
            "/v1/plans",
            &alice,
            &json!({
                "summary": "Upgrade web (traced)",
                "context": {"environment": "staging", "namespace": "web"},
                "steps": [
                    {"tool": "helm", "action": "upgrade", "input": {"release": "web", "chart": "charts/web", "namespace": "web"},
                     "rollback": {"tool": "helm", "action": "rollback", "input": {"release": "web", "namespace": "web"}}},
                    {"stage": "verify", "tool": "helm", "action": "status", "input": {"release": "web", "namespace": "web"},
                     "expect": [{"path": ".version", "op": ">=", "value": 1}]}
                ]
            }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let plan_id = created["plan_id"].as_str().expect("plan id").to_owned();
    // A staging upgrade waits for approval: bob's decision is counted below.
    assert_eq!(created["approval_required"], true, "{created}");
    let (status, body) = app
        .post(
            "/v1/approvals",
            &bob,
            &json!({"plan_id": plan_id, "status": "approved"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // The caller is already in a trace: the execution must continue it.
    let resp = app
        .http
        .post(format!("{}/v1/plans/{plan_id}/execute", app.url))
        .bearer_auth(&alice)
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .json(&json!({}))
        .send()
        .await
        .expect("execute");
    assert_eq!(resp.status().as_u16(), 202);
    let started: serde_json::Value = resp.json().await.expect("json");
    let exec_id = started["execution_id"]
        .as_str()
        .expect("execution id")
        .to_owned();
    let mut view = serde_json::Value::Null;
    for _ in 0..120 {
        view = app
            .get(&format!("/v1/executions/{exec_id}"), &alice)
            .await
            .1;
        if view["status"] == "succeeded" || view["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(view["status"], "succeeded", "{view}");
    let tool_calls: Vec<String> = view["tool_calls"]
        .as_array()
        .expect("tool calls")
        .iter()
        .map(|c| c["tool_call_id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(tool_calls.len() >= 2, "{view}");

    // Exemplars: the execute request's latency carries its trace id.
    let metrics = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.lines().any(
            |l| l.starts_with("carapulse_http_request_duration_seconds_bucket")
                && l.contains("/execute")
                && l.contains(&format!("# {{trace_id=\"{TRACE_ID}\"}}"))
        ),
        "no exemplar with the trace id on the execute route:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("duration"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Every service exports its process metrics; the approval above was counted.
    assert!(
        metrics.contains("carapulse_process_cpu_seconds_total "),
        "{metrics}"
    );
    assert!(
        metrics.contains("carapulse_approvals_total{status=\"approved\",source=\"api\"} 1"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("approvals"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let router_metrics = app
        .http
        .get(format!("http://127.0.0.1:{router_port}/metrics"))
        .send()
        .await
        .expect("router metrics")
        .text()
        .await
        .expect("text");
    assert!(
        router_metrics.contains(&format!("trace_id=\"{TRACE_ID}\"")),
        "tool call latency carries the trace id:\n{router_metrics}"
    );
    assert!(router_metrics.contains("carapulse_process_resident_memory_bytes "));

    // Every span of the execution, exported.
    let wanted = |spans: &[Got]| {
        let mine: Vec<&Got> = spans.iter().filter(|s| s.trace_id == TRACE_ID).collect();
        mine.iter()
            .filter(|s| s.name.starts_with("sandbox"))
            .count()
            >= tool_calls.len()
            && mine.iter().any(|s| s.name.starts_with("RunWorkflow:"))
    };
    let mut spans = Vec::new();
    for _ in 0..40 {
        telemetry.flush();
        spans = receiver.spans.lock().expect("lock").clone();
        if wanted(&spans) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mine: Vec<Got> = spans
        .into_iter()
        .filter(|s| s.trace_id == TRACE_ID)
        .collect();
    let names: Vec<&str> = mine.iter().map(|s| s.name.as_str()).collect();
    let by_id: HashMap<String, Got> = mine
        .iter()
        .map(|s| (s.span_id.clone(), s.clone()))
        .collect();
    println!("spans of trace {TRACE_ID}: {names:?}");
    let one = |prefix: &str| -> &Got {
        mine.iter()
            .find(|s| s.name.starts_with(prefix))
            .unwrap_or_else(|| panic!("no span {prefix}: {names:?}"))
    };

    // The API request continues the caller's span.
    let http = one(&format!("POST /v1/plans/{plan_id}/execute"));
    assert_eq!(http.parent, CALLER_SPAN, "{http:?}");
    let dispatch = one("execution.dispatch");
    assert!(descends(&by_id, dispatch, &http.span_id), "{dispatch:?}");
    assert_eq!(dispatch.attributes.get("plan_id"), Some(&plan_id));
    assert_eq!(dispatch.attributes.get("execution_id"), Some(&exec_id));
    // Through Temporal: the start, the workflow run, its activities.
    let start = one("StartWorkflow:");
    assert!(descends(&by_id, start, &dispatch.span_id), "{start:?}");
    let workflow = one("RunWorkflow:");
    assert!(
        descends(&by_id, workflow, &start.span_id),
        "{workflow:?} {names:?}"
    );
    let steps: Vec<&Got> = mine
        .iter()
        .filter(|s| s.name.starts_with("step "))
        .collect();
    assert!(steps.len() >= tool_calls.len(), "{names:?}");
    for tool_call in &tool_calls {
        let step = steps
            .iter()
            .find(|s| s.attributes.get("tool_call_id") == Some(tool_call))
            .unwrap_or_else(|| panic!("no step span for tool call {tool_call}: {steps:?}"));
        let activity = by_id
            .get(&step.parent)
            .unwrap_or_else(|| panic!("step's parent not exported: {step:?}"));
        assert!(
            activity.name.starts_with("RunActivity:carapulse.run_step"),
            "{activity:?}"
        );
        assert!(
            descends(&by_id, activity, &workflow.span_id),
            "{activity:?}"
        );
        assert_eq!(step.attributes.get("plan_id"), Some(&plan_id), "{step:?}");
        assert_eq!(
            step.attributes.get("execution_id"),
            Some(&exec_id),
            "{step:?}"
        );
        assert!(step.attributes.contains_key("step_id"), "{step:?}");
        // Across HTTP into the router, then the sandboxed process.
        let router = mine
            .iter()
            .find(|s| {
                s.name.starts_with("tool ") && s.attributes.get("tool_call_id") == Some(tool_call)
            })
            .unwrap_or_else(|| panic!("no router span for {tool_call}: {names:?}"));
        assert!(descends(&by_id, router, &step.span_id), "{router:?}");
        let sandbox = mine
            .iter()
            .find(|s| {
                s.name.starts_with("sandbox") && s.attributes.get("tool_call_id") == Some(tool_call)
            })
            .unwrap_or_else(|| panic!("no sandbox span for {tool_call}: {names:?}"));
        assert_eq!(sandbox.parent, router.span_id, "{sandbox:?}");
        assert_eq!(
            sandbox.attributes.get("exit_code").map(String::as_str),
            Some("0")
        );
    }

    stack.stop();
    app.stop().await;
}

/// The accepted connections of `listener` as the stream tonic serves.
fn tokio_stream_listener(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let next = listener.accept().await.map(|(stream, _)| stream);
        Some((next, listener))
    })
}
