//! `GET /openapi.json` against the live routes: every documented operation is served (the router
//! never answers it with its own "no such route" or "method not allowed"), every method the
//! document leaves out of a path is refused by the router, references resolve, and the typed
//! request bodies carry the handlers' fields.

mod common;

use common::*;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// The router's own answers, as opposed to a handler's 404/405.
fn is_router_fallback(status: u16, body: &Value) -> bool {
    let message = body["error"]["message"].as_str().unwrap_or("");
    (status == 404 && message == "no such route")
        || (status == 405 && message == "method not allowed on this route")
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "0196e0a4-1b2c-7d3e-8f40-123456789abc")
        .replace("{name}", "scale_service")
        .replace("{member}", "bob")
        .replace("{source}", "alertmanager")
}

async fn call(app: &TestApp, method: &str, path: &str, token: &str) -> (u16, Value) {
    let url = format!("{}{}", app.url, concrete(path));
    let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .expect("a known method");
    let resp = app
        .http
        .request(method, url)
        .bearer_auth(token)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let is_stream = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    // Streams never end on their own: the status and headers are all we need.
    let body = if is_stream {
        Value::Null
    } else {
        resp.json().await.unwrap_or(Value::Null)
    };
    (status, body)
}

/// Walks `$ref`s in `value` and returns those that do not resolve in `components.schemas`.
fn dangling_refs(doc: &Value, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                let name = r.trim_start_matches("#/components/schemas/");
                if doc["components"]["schemas"].get(name).is_none() {
                    out.push(r.clone());
                }
            }
            map.values().for_each(|v| dangling_refs(doc, v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| dangling_refs(doc, v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn openapi_document_matches_the_live_routes() {
    let app = spawn_app().await;
    let admin = token("root", "acme", &["admin"]);

    let resp = app
        .http
        .get(format!("{}/openapi.json", app.url))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200, "served without a token");
    let doc: Value = resp.json().await.expect("json");
    assert!(doc["openapi"].as_str().unwrap_or("").starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 35, "only {} paths documented", paths.len());

    // A feature switched off by configuration is a 409 to fix, not a 503 to retry.
    let (status, body) = app
        .post("/v1/context/refresh", &admin, &serde_json::json!(null))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "context_disabled");

    let mut operations = 0;
    for (path, item) in paths {
        for method in METHODS {
            let documented = item.get(method).is_some();
            let (status, body) = call(&app, method, path, &admin).await;
            if documented {
                operations += 1;
                assert!(
                    !is_router_fallback(status, &body),
                    "{method} {path} is documented but not served: {status} {body}"
                );
                let op = &item[method];
                assert!(
                    op["responses"].get(status.to_string()).is_some(),
                    "{method} {path} answered {status}, which it does not document: {body}"
                );
                assert_ne!(status, 500, "{method} {path}: {body}");
                let public = ["/healthz", "/readyz", "/metrics"].contains(&path.as_str())
                    || path.starts_with("/v1/hooks/");
                if path.starts_with("/v1/") && !public {
                    assert!(
                        op["security"].as_array().is_some_and(|s| !s.is_empty()),
                        "{method} {path} does not declare its bearer token"
                    );
                    let anonymous = app
                        .http
                        .request(
                            reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                                .expect("method"),
                            format!("{}{}", app.url, concrete(path)),
                        )
                        .send()
                        .await
                        .expect("request");
                    assert_eq!(
                        anonymous.status(),
                        401,
                        "{method} {path} must refuse a request without a token"
                    );
                }
            } else {
                assert!(
                    is_router_fallback(status, &body),
                    "{method} {path} is served ({status} {body}) but not documented"
                );
            }
        }
    }
    assert!(operations >= 50, "only {operations} operations documented");

    // Paths the document does not name are not served either.
    for path in ["/v1/nope", "/v1/plans/x/y/z", "/admin"] {
        let (status, body) = call(&app, "get", path, &admin).await;
        assert!(is_router_fallback(status, &body), "{path}: {status}");
    }

    let mut dangling = Vec::new();
    dangling_refs(&doc, &doc, &mut dangling);
    assert!(dangling.is_empty(), "unresolved references: {dangling:?}");

    // Typed bodies and parameters come from the handlers' own types.
    let create = &doc["paths"]["/v1/plans"]["post"];
    let body_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .expect("plan body is a schema reference");
    let name = body_ref.trim_start_matches("#/components/schemas/");
    let schema = &doc["components"]["schemas"][name];
    for field in [
        "summary",
        "intent",
        "context",
        "steps",
        "trigger",
        "session_id",
    ] {
        assert!(
            schema["properties"].get(field).is_some(),
            "{name} lacks {field}: {schema}"
        );
    }
    assert!(
        schema["properties"].get("alert").is_none(),
        "server-only fields are not part of the body"
    );
    let list_params: Vec<&str> = doc["paths"]["/v1/plans"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for p in [
        "limit",
        "offset",
        "approval_state",
        "risk_level",
        "session_id",
    ] {
        assert!(list_params.contains(&p), "GET /v1/plans lacks {p}");
    }
    assert!(doc["components"]["securitySchemes"].get("bearer").is_some());
    assert!(doc["components"]["schemas"].get("ErrorBody").is_some());

    app.stop().await;
}
