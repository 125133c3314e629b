//! The Kubernetes watcher against a fake API server that serves list + watch: bookmarks move
//! the resume point, a `410 Gone` forces a relist, and the graph follows (objects gone after
//! the relist are removed, later modifications applied).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use carapulse_context::collectors::kubernetes::{KubeWatch, WatchSettings};
use carapulse_context::HealthBoard;
use carapulse_core::model::TenantId;
use carapulse_core::testing::TestDatabase;

#[derive(Default)]
struct Fake {
    lists: usize,
    watches: Vec<String>,
    /// The query of every watch request, to check what the settings asked for.
    watch_queries: Vec<std::collections::HashMap<String, String>>,
}

fn deployment(name: &str, rv: &str, ready: i32) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": name, "namespace": "shop", "resourceVersion": rv, "uid": format!("uid-{name}"),
                        "labels": {"app.kubernetes.io/name": name}},
           "spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}},
           "status": {"readyReplicas": ready}})
}

fn lines(events: &[Value]) -> String {
    events.iter().map(|e| format!("{e}\n")).collect()
}

async fn deployments(
    State(fake): State<Arc<Mutex<Fake>>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let watching = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    if !watching {
        let n = {
            let mut f = fake.lock().unwrap();
            f.lists += 1;
            f.lists
        };
        let (rv, items) = if n == 1 {
            ("10", vec![deployment("web", "9", 3)])
        } else {
            (
                "20",
                vec![deployment("api", "11", 3), deployment("worker", "19", 1)],
            )
        };
        return axum::Json(json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {"resourceVersion": rv}, "items": items})).into_response();
    }
    let rv = q.get("resourceVersion").cloned().unwrap_or_default();
    let n = {
        let mut f = fake.lock().unwrap();
        f.watch_queries.push(q.clone());
        f.watches.push(rv.clone());
        f.watches.len()
    };
    let body = match n {
        1 => lines(&[
            json!({"type": "ADDED", "object": deployment("api", "11", 3)}),
            json!({"type": "BOOKMARK", "object": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"resourceVersion": "12"}}}),
        ]),
        2 => lines(&[
            json!({"type": "ERROR", "object": {"apiVersion": "v1", "kind": "Status", "status": "Failure",
                                                       "message": "too old resource version: 12 (15)", "reason": "Expired", "code": 410}}),
        ]),
        3 => {
            // Keep the last watch open: a change, then silence until the test ends.
            let first =
                lines(&[json!({"type": "MODIFIED", "object": deployment("worker", "21", 3)})]);
            let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(first) })
                .chain(futures::stream::once(async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok(String::new())
                }));
            return axum::body::Body::from_stream(stream).into_response();
        }
        _ => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            String::new()
        }
    };
    body.into_response()
}

use futures::StreamExt;

/// The fake API server of `shop`'s deployments (see [`deployments`]); its state and URL.
async fn deployments_server() -> (Arc<Mutex<Fake>>, String) {
    let fake = Arc::new(Mutex::new(Fake::default()));
    let app = Router::new()
        .route(
            "/apis/apps/v1/namespaces/shop/deployments",
            get(deployments),
        )
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (fake, url)
}

#[tokio::test]
async fn list_watch_bookmarks_and_relist_after_gone() {
    let (fake, url) = deployments_server().await;

    let db = TestDatabase::create().await;
    let config = kube::Config::new(url.parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let health = HealthBoard::default();
    let tenant = TenantId::parse("acme").unwrap();
    let watch = Arc::new(KubeWatch {
        client,
        store: db.store.clone(),
        tenant: tenant.clone(),
        namespace: Some("shop".into()),
        resource: "deployments".into(),
        settings: WatchSettings {
            timeout_secs: 45,
            ..WatchSettings::default()
        },
        health: health.clone(),
    });
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(watch.clone().run(stop.clone()));

    let mut graph = None;
    for _ in 0..100 {
        let g = db.store.context_all(&tenant).await.unwrap();
        let ready = g
            .nodes
            .iter()
            .find(|n| n.node_id == "k8s/deployment/shop/worker")
            .and_then(|n| n.labels.get("ready").cloned());
        if ready.as_deref() == Some("3") {
            graph = Some(g);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let graph = graph.expect("the graph followed the watch");
    let ids: Vec<&str> = graph.nodes.iter().map(|n| n.node_id.as_str()).collect();
    assert!(ids.contains(&"k8s/deployment/shop/api"), "{ids:?}");
    assert!(
        !ids.contains(&"k8s/deployment/shop/web"),
        "web vanished in the relist: {ids:?}"
    );
    assert!(
        ids.contains(&"service/worker") && ids.contains(&"k8s/namespace/shop"),
        "{ids:?}"
    );
    assert!(graph.edges.iter().any(|e| e.from_node_id == "service/api"
        && e.to_node_id == "k8s/deployment/shop/api"
        && e.relation == "runs"));
    let (lists, watches) = {
        let f = fake.lock().unwrap();
        (f.lists, f.watches.clone())
    };
    assert_eq!(lists, 2, "one relist after 410 Gone");
    assert_eq!(
        watches[..3],
        ["10".to_string(), "12".to_string(), "20".to_string()],
        "bookmark rv used to resume"
    );
    let first = fake.lock().unwrap().watch_queries[0].clone();
    assert_eq!(
        (
            first.get("allowWatchBookmarks").map(String::as_str),
            first.get("timeoutSeconds").map(String::as_str)
        ),
        (Some("true"), Some("45")),
        "bookmarks on and context.watch_timeout_secs bound each watch call: {first:?}"
    );
    let board = health.snapshot().await;
    assert!(board["k8s:deployments:shop"].ok, "{board:?}");
    stop.cancel();
    let _ = task.await;
    db.drop_now().await;
}

/// Streaming list: one watch with `sendInitialEvents=true` delivers the initial objects and a
/// bookmark marking their end (no LIST request at all).
async fn streaming(Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    if q.get("sendInitialEvents").map(String::as_str) != Some("true") {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            "expected a streaming list",
        )
            .into_response();
    }
    let initial = lines(&[
        json!({"type": "ADDED", "object": deployment("web", "31", 3)}),
        json!({"type": "ADDED", "object": deployment("api", "32", 2)}),
        json!({"type": "BOOKMARK", "object": {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"resourceVersion": "33", "annotations": {"k8s.io/initial-events-end": "true"}}}}),
        json!({"type": "DELETED", "object": deployment("web", "34", 3)}),
    ]);
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(initial) }).chain(
        futures::stream::once(async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(String::new())
        }),
    );
    axum::body::Body::from_stream(stream).into_response()
}

#[tokio::test]
async fn streaming_list_with_initial_events() {
    let app = Router::new().route("/apis/apps/v1/namespaces/shop/deployments", get(streaming));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let db = TestDatabase::create().await;
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let health = HealthBoard::default();
    let watch = Arc::new(KubeWatch {
        client,
        store: db.store.clone(),
        tenant: tenant.clone(),
        namespace: Some("shop".into()),
        resource: "deployments".into(),
        settings: WatchSettings {
            streaming_list: true,
            ..WatchSettings::default()
        },
        health: health.clone(),
    });
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(watch.run(stop.clone()));
    let mut ids = Vec::new();
    for _ in 0..100 {
        let g = db.store.context_all(&tenant).await.unwrap();
        ids = g.nodes.iter().map(|n| n.node_id.clone()).collect();
        if ids.contains(&"k8s/deployment/shop/api".to_string())
            && !ids.contains(&"k8s/deployment/shop/web".to_string())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ids.contains(&"k8s/deployment/shop/api".to_string()),
        "{ids:?}"
    );
    assert!(
        !ids.contains(&"k8s/deployment/shop/web".to_string()),
        "deleted after the initial events: {ids:?}"
    );
    assert!(health.snapshot().await["k8s:deployments:shop"].ok);
    stop.cancel();
    let _ = task.await;
    db.drop_now().await;
}

/// A resource served by a list and then a watch that stays silent.
async fn list_then_idle(
    kind: &'static str,
    api_version: &'static str,
    items: Value,
    q: std::collections::HashMap<String, String>,
) -> Response {
    if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
        tokio::time::sleep(Duration::from_secs(30)).await;
        return String::new().into_response();
    }
    axum::Json(
        json!({"apiVersion": api_version, "kind": format!("{kind}List"),
                      "metadata": {"resourceVersion": "5"}, "items": items}),
    )
    .into_response()
}

/// `ingresses` and `events` (in the default `context.k8s_resources`) are watched: an ingress
/// routes to its backend Services, a Warning event points at the object it is about, and Normal
/// events are left out.
#[tokio::test]
async fn ingresses_and_warning_events_join_the_graph() {
    let ingresses = json!([{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "3", "uid": "u-ing"},
        "spec": {"ingressClassName": "nginx",
                 "rules": [{"host": "shop.example.com", "http": {"paths": [
                     {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                     {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80}}}}]}}]}}]);
    let events = json!([
        {"apiVersion": "v1", "kind": "Event",
         "metadata": {"name": "web-1.17a", "namespace": "shop", "resourceVersion": "4", "uid": "u-ev1"},
         "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "shop"},
         "type": "Warning", "reason": "BackOff", "message": "Back-off restarting failed container", "count": 7},
        {"apiVersion": "v1", "kind": "Event",
         "metadata": {"name": "web-1.17b", "namespace": "shop", "resourceVersion": "4", "uid": "u-ev2"},
         "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "shop"},
         "type": "Normal", "reason": "Pulled", "message": "Container image pulled"}]);
    let app = Router::new()
        .route(
            "/apis/networking.k8s.io/v1/namespaces/shop/ingresses",
            get(move |Query(q)| {
                list_then_idle("Ingress", "networking.k8s.io/v1", ingresses.clone(), q)
            }),
        )
        .route(
            "/api/v1/namespaces/shop/events",
            get(move |Query(q)| list_then_idle("Event", "v1", events.clone(), q)),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let db = TestDatabase::create().await;
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let health = HealthBoard::default();
    let tenant = TenantId::parse("acme").unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    for resource in ["ingresses", "events"] {
        let watch = Arc::new(KubeWatch {
            client: client.clone(),
            store: db.store.clone(),
            tenant: tenant.clone(),
            namespace: Some("shop".into()),
            resource: resource.into(),
            settings: WatchSettings::default(),
            health: health.clone(),
        });
        tokio::spawn(watch.run(stop.clone()));
    }
    let mut graph = None;
    for _ in 0..100 {
        let g = db.store.context_all(&tenant).await.unwrap();
        let has = |id: &str| g.nodes.iter().any(|n| n.node_id == id);
        if has("k8s/ingress/shop/web") && has("k8s/event/shop/web-1.17a") {
            graph = Some(g);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let graph = graph.expect("ingress and event nodes appear");
    let ingress = graph
        .nodes
        .iter()
        .find(|n| n.node_id == "k8s/ingress/shop/web")
        .unwrap();
    assert_eq!(
        ingress.labels.get("hosts").map(String::as_str),
        Some("shop.example.com")
    );
    for backend in ["web", "api"] {
        assert!(
            graph
                .edges
                .iter()
                .any(|e| e.from_node_id == "k8s/ingress/shop/web"
                    && e.to_node_id == format!("k8s/service/shop/{backend}")
                    && e.relation == "routes_to"),
            "{backend}: {:?}",
            graph.edges
        );
    }
    let warning = graph
        .nodes
        .iter()
        .find(|n| n.node_id == "k8s/event/shop/web-1.17a")
        .unwrap();
    assert_eq!(
        warning.labels.get("reason").map(String::as_str),
        Some("BackOff")
    );
    assert_eq!(warning.labels.get("count").map(String::as_str), Some("7"));
    assert!(graph
        .edges
        .iter()
        .any(|e| e.from_node_id == "k8s/event/shop/web-1.17a"
            && e.to_node_id == "k8s/pod/shop/web-1"
            && e.relation == "about"));
    assert!(
        !graph
            .nodes
            .iter()
            .any(|n| n.node_id == "k8s/event/shop/web-1.17b"),
        "Normal events are left out"
    );
    let board = health.snapshot().await;
    assert!(
        board["k8s:ingresses:shop"].ok && board["k8s:events:shop"].ok,
        "{board:?}"
    );
    stop.cancel();
    db.drop_now().await;
}

/// `context.watch_allow_bookmarks: false` and `context.labels` reach the watch: no bookmarks are
/// asked for, and every node written carries the base labels under its own.
#[tokio::test]
async fn watch_settings_reach_the_api_server_and_the_graph() {
    let (fake, url) = deployments_server().await;
    let db = TestDatabase::create().await;
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let base = std::collections::BTreeMap::from([
        ("team".to_owned(), "sre".to_owned()),
        ("namespace".to_owned(), "from-base".to_owned()),
    ]);
    let watch = Arc::new(KubeWatch {
        client,
        store: db.store.clone(),
        tenant: tenant.clone(),
        namespace: Some("shop".into()),
        resource: "deployments".into(),
        settings: WatchSettings {
            bookmarks: false,
            base_labels: Arc::new(base),
            ..WatchSettings::default()
        },
        health: HealthBoard::default(),
    });
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(watch.run(stop.clone()));
    let mut api = None;
    for _ in 0..100 {
        let g = db.store.context_all(&tenant).await.unwrap();
        if let Some(n) = g
            .nodes
            .iter()
            .find(|n| n.node_id == "k8s/deployment/shop/api")
        {
            api = Some((n.clone(), g));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (api, graph) = api.expect("the watched deployment reached the graph");
    assert_eq!(api.labels.get("team").map(String::as_str), Some("sre"));
    assert!(
        graph
            .nodes
            .iter()
            .all(|n| n.labels.get("team").map(String::as_str) == Some("sre")),
        "listed and watched nodes alike: {:?}",
        graph.nodes
    );
    assert_eq!(
        api.labels.get("namespace").map(String::as_str),
        Some("shop"),
        "a node's own label wins over the base label"
    );
    let first = fake.lock().unwrap().watch_queries[0].clone();
    assert_ne!(
        first.get("allowWatchBookmarks").map(String::as_str),
        Some("true"),
        "{first:?}"
    );
    stop.cancel();
    let _ = task.await;
    db.drop_now().await;
}
