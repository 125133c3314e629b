//! Pollers that read through the tool router: Helm releases, Argo CD apps, Prometheus and
//! Thanos queries (with their results), Alertmanager alerts, Grafana dashboards and data
//! sources, Tempo traces and AWS tagged resources. Each turns one read into nodes and edges; services they only point
//! at are references, never overwritten.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use carapulse_core::config::ServiceGraphQuery;
use carapulse_core::store::{Snapshot, Traffic};

use crate::ids::{node, node_id, service_from_labels, service_id};
use crate::tool_runner::ToolRunner;
use crate::{CollectError, Collector};

/// What a poller reads.
#[derive(Debug, Clone)]
pub enum PollKind {
    Helm {
        namespaces: Vec<String>,
    },
    Argocd {
        apps: Vec<String>,
    },
    /// `tool` is `prometheus` or `thanos`.
    Metrics {
        tool: &'static str,
        queries: Vec<String>,
    },
    /// Service-to-service traffic (`calls` edges with rates) from service-graph metrics
    /// (`context.service_graph_queries`); `tool` is `prometheus` or `thanos`.
    ServiceGraph {
        tool: &'static str,
        queries: Vec<ServiceGraphQuery>,
    },
    Alertmanager,
    /// Dashboards, limited to these folders when any are named (`context.grafana_folders`).
    Grafana {
        folder_ids: Vec<i64>,
    },
    Tempo {
        queries: Vec<String>,
    },
    Aws {
        tags: BTreeMap<String, Vec<String>>,
    },
}

/// A poller.
#[derive(Debug, Clone)]
pub struct Polled {
    pub kind: PollKind,
    pub runner: ToolRunner,
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

fn service_ref(snap: &mut Snapshot, name: &str) -> String {
    snap.reference(node(service_id(name), "service", name, BTreeMap::new()))
}

fn array<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>, CollectError> {
    v.as_array()
        .ok_or_else(|| CollectError::Parse(format!("{what}: expected a JSON array")))
}

impl Polled {
    async fn run(&self) -> Result<Snapshot, CollectError> {
        let mut snap = Snapshot::default();
        match &self.kind {
            PollKind::Helm { namespaces } => {
                let targets: Vec<Option<&String>> = if namespaces.is_empty() {
                    vec![None]
                } else {
                    namespaces.iter().map(Some).collect()
                };
                for ns in targets {
                    let input = match ns {
                        Some(ns) => json!({"namespace": ns}),
                        None => json!({"all_namespaces": true}),
                    };
                    let out = self.runner.run_json("helm", "list", input).await?;
                    for r in array(&out, "helm list")? {
                        let (name, ns) = (s(r, "/name"), s(r, "/namespace"));
                        if name.is_empty() {
                            continue;
                        }
                        let id = snap.node(node(
                            node_id(&["helm", "release", ns, name]),
                            "helm.release",
                            name,
                            labels(&[
                                ("namespace", ns),
                                ("chart", s(r, "/chart")),
                                ("status", s(r, "/status")),
                                ("app_version", s(r, "/app_version")),
                            ]),
                        ));
                        let svc = service_ref(&mut snap, name);
                        snap.edge(&svc, &id, "released_by");
                    }
                }
            }
            PollKind::Argocd { apps } => {
                let out = self.runner.run_json("argocd", "list", json!({})).await?;
                for a in array(&out, "argocd app list")? {
                    let name = s(a, "/metadata/name");
                    if name.is_empty() || (!apps.is_empty() && !apps.iter().any(|x| x == name)) {
                        continue;
                    }
                    let id = snap.node(node(
                        node_id(&["argocd", "app", name]),
                        "argocd.app",
                        name,
                        labels(&[
                            ("namespace", s(a, "/spec/destination/namespace")),
                            ("sync", s(a, "/status/sync/status")),
                            ("health", s(a, "/status/health/status")),
                            ("revision", s(a, "/status/sync/revision")),
                        ]),
                    ));
                    let app_labels: BTreeMap<String, String> = serde_json::from_value(
                        a.pointer("/metadata/labels")
                            .cloned()
                            .unwrap_or(Value::Null),
                    )
                    .unwrap_or_default();
                    let svc = service_ref(
                        &mut snap,
                        &service_from_labels(&app_labels).unwrap_or_else(|| name.to_owned()),
                    );
                    snap.edge(&svc, &id, "deployed_by");
                }
            }
            PollKind::Metrics { tool, queries } => {
                for q in queries {
                    let out = self
                        .runner
                        .run_json(tool, "query", json!({"query": q}))
                        .await?;
                    let series = out
                        .pointer("/data/result")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let first = series
                        .first()
                        .and_then(|r| r.pointer("/value/1"))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    let id = snap.node(node(
                        node_id(&[tool, "query", &short_hash(q)]),
                        &format!("{tool}.query"),
                        q,
                        labels(&[
                            ("query", q),
                            ("series", &series.len().to_string()),
                            ("value", first),
                        ]),
                    ));
                    for r in &series {
                        let metric: BTreeMap<String, String> =
                            serde_json::from_value(r.get("metric").cloned().unwrap_or(Value::Null))
                                .unwrap_or_default();
                        if let Some(svc) = ["service", "app", "job"]
                            .iter()
                            .find_map(|k| metric.get(*k))
                        {
                            let svc = service_ref(&mut snap, svc);
                            snap.edge(&svc, &id, "monitored_by");
                        }
                    }
                }
            }
            PollKind::ServiceGraph { tool, queries } => {
                self.service_graph(tool, queries, &mut snap).await?;
            }
            PollKind::Alertmanager => {
                let out = self
                    .runner
                    .run_json("alertmanager", "alerts", json!({"active": true}))
                    .await?;
                for a in array(&out, "alertmanager alerts")? {
                    let fp = s(a, "/fingerprint");
                    if fp.is_empty() {
                        continue;
                    }
                    let alert_labels: BTreeMap<String, String> =
                        serde_json::from_value(a.get("labels").cloned().unwrap_or(Value::Null))
                            .unwrap_or_default();
                    let name = alert_labels
                        .get("alertname")
                        .cloned()
                        .unwrap_or_else(|| fp.to_owned());
                    let id = snap.node(node(
                        node_id(&["alert", fp]),
                        "alert",
                        &name,
                        labels(&[
                            (
                                "severity",
                                alert_labels
                                    .get("severity")
                                    .map(String::as_str)
                                    .unwrap_or(""),
                            ),
                            ("state", s(a, "/status/state")),
                            (
                                "namespace",
                                alert_labels
                                    .get("namespace")
                                    .map(String::as_str)
                                    .unwrap_or(""),
                            ),
                        ]),
                    ));
                    let svc = ["service", "app", "deployment", "statefulset", "job"]
                        .iter()
                        .find_map(|k| alert_labels.get(*k));
                    if let Some(svc) = svc {
                        let svc = service_ref(&mut snap, svc);
                        snap.edge(&id, &svc, "alerts");
                    }
                }
            }
            PollKind::Grafana { folder_ids } => {
                let input = if folder_ids.is_empty() {
                    json!({})
                } else {
                    json!({ "folder_ids": folder_ids })
                };
                let out = self.runner.run_json("grafana", "dashboards", input).await?;
                for d in array(&out, "grafana search")? {
                    let (uid, title) = (s(d, "/uid"), s(d, "/title"));
                    if uid.is_empty() {
                        continue;
                    }
                    let id = snap.node(node(
                        node_id(&["grafana", "dashboard", uid]),
                        "grafana.dashboard",
                        if title.is_empty() { uid } else { title },
                        labels(&[("folder", s(d, "/folderTitle")), ("url", s(d, "/url"))]),
                    ));
                    for tag in d
                        .get("tags")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                    {
                        if let Some(svc) = tag
                            .strip_prefix("service:")
                            .or_else(|| tag.strip_prefix("service="))
                        {
                            let svc = service_ref(&mut snap, svc.trim());
                            snap.edge(&svc, &id, "dashboards");
                        }
                    }
                }
                let sources = self
                    .runner
                    .run_json("grafana", "datasources", json!({}))
                    .await?;
                for d in array(&sources, "grafana datasources")? {
                    let (uid, name) = (s(d, "/uid"), s(d, "/name"));
                    if uid.is_empty() {
                        continue;
                    }
                    snap.node(node(
                        node_id(&["grafana", "datasource", uid]),
                        "grafana.datasource",
                        if name.is_empty() { uid } else { name },
                        labels(&[("type", s(d, "/type")), ("url", s(d, "/url"))]),
                    ));
                }
            }
            PollKind::Tempo { queries } => {
                for q in queries {
                    let out = self
                        .runner
                        .run_json("tempo", "search", json!({"q": q, "limit": 20}))
                        .await?;
                    for t in out
                        .get("traces")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let trace = s(t, "/traceID");
                        if trace.is_empty() {
                            continue;
                        }
                        let root = s(t, "/rootServiceName");
                        let id = snap.node(node(
                            node_id(&["tempo", "trace", trace]),
                            "tempo.trace",
                            s(t, "/rootTraceName"),
                            labels(&[
                                (
                                    "duration_ms",
                                    &t.get("durationMs")
                                        .map(Value::to_string)
                                        .unwrap_or_default(),
                                ),
                                ("query", q),
                            ]),
                        ));
                        if !root.is_empty() {
                            let svc = service_ref(&mut snap, root);
                            snap.edge(&svc, &id, "traces");
                        }
                    }
                }
            }
            PollKind::Aws { tags } => {
                let filters: Vec<Value> = tags
                    .iter()
                    .map(|(k, v)| json!({"key": k, "values": v}))
                    .collect();
                let input = if filters.is_empty() {
                    json!({})
                } else {
                    json!({"tag_filters": filters})
                };
                let out = self
                    .runner
                    .run_json("aws", "tagging-get-resources", input)
                    .await?;
                for r in out
                    .get("ResourceTagMappingList")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let arn = s(r, "/ResourceARN");
                    let parts: Vec<&str> = arn.split(':').collect();
                    if parts.len() < 6 {
                        continue;
                    }
                    let (service, account) = (parts[2], parts[4]);
                    let tag_map: BTreeMap<String, String> = r
                        .get("Tags")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|t| {
                            Some((
                                t.get("Key")?.as_str()?.to_owned(),
                                t.get("Value")?.as_str()?.to_owned(),
                            ))
                        })
                        .collect();
                    let id = snap.node(node(
                        node_id(&["aws", service, arn]),
                        "aws.resource",
                        arn,
                        labels(&[
                            ("service", service),
                            ("account", account),
                            ("region", parts[3]),
                        ]),
                    ));
                    if !account.is_empty() {
                        let acct = snap.node(node(
                            node_id(&["aws", "account", account]),
                            "aws.account",
                            account,
                            BTreeMap::new(),
                        ));
                        snap.edge(&acct, &id, "contains");
                    }
                    if let Some(svc) = ["service", "app", "Service", "App"]
                        .iter()
                        .find_map(|k| tag_map.get(*k))
                    {
                        let svc = service_ref(&mut snap, svc);
                        snap.edge(&svc, &id, "uses");
                    }
                }
            }
        }
        Ok(snap)
    }
}

/// (client, server) -> (rate, sample time in Unix seconds).
type PairRates = BTreeMap<(String, String), (f64, Option<f64>)>;

/// One instant-vector sample per (client, server) pair of a service-graph query: its value
/// and sample time.
fn pair_rates(out: &Value, query: &ServiceGraphQuery) -> Result<PairRates, CollectError> {
    let series = out
        .pointer("/data/result")
        .and_then(Value::as_array)
        .ok_or_else(|| CollectError::Parse("service graph: expected data.result".into()))?;
    let mut rates = BTreeMap::new();
    for r in series {
        let label = |name: &str| {
            r.pointer(&format!("/metric/{name}"))
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let (Some(client), Some(server)) = (label(&query.client_label), label(&query.server_label))
        else {
            continue;
        };
        let value = r
            .pointer("/value/1")
            .and_then(Value::as_str)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN);
        let at = r.pointer("/value/0").and_then(Value::as_f64);
        rates.insert((client, server), (value, at));
    }
    Ok(rates)
}

impl Polled {
    /// `calls` edges from each query; a pair reported by two sources (Tempo and Istio) keeps
    /// the larger rate — the same requests seen twice, not twice the requests. A pair without
    /// traffic gets no edge, so an edge vanishes when its traffic stops.
    async fn service_graph(
        &self,
        tool: &str,
        queries: &[ServiceGraphQuery],
        snap: &mut Snapshot,
    ) -> Result<(), CollectError> {
        let mut pairs: BTreeMap<(String, String), Traffic> = BTreeMap::new();
        for query in queries {
            let out = self
                .runner
                .run_json(tool, "query", json!({"query": query.requests}))
                .await?;
            let requests = pair_rates(&out, query)?;
            let errors = if query.errors.trim().is_empty() {
                BTreeMap::new()
            } else {
                let out = self
                    .runner
                    .run_json(tool, "query", json!({"query": query.errors}))
                    .await?;
                pair_rates(&out, query)?
            };
            for (pair, (rps, at)) in requests {
                let failed = errors.get(&pair).map_or(0.0, |(v, _)| *v);
                let observed_at = at
                    .and_then(|secs| {
                        chrono::DateTime::from_timestamp_millis((secs * 1000.0) as i64)
                    })
                    .unwrap_or_else(chrono::Utc::now);
                let Some(traffic) = Traffic::measured(rps, failed / rps, observed_at) else {
                    continue;
                };
                match pairs.get(&pair) {
                    Some(known) if known.rps >= traffic.rps => {}
                    _ => {
                        pairs.insert(pair, traffic);
                    }
                }
            }
        }
        for ((client, server), traffic) in pairs {
            if client == server {
                continue;
            }
            let caller = service_ref(snap, &client);
            let callee = service_ref(snap, &server);
            snap.call(&caller, &callee, traffic);
        }
        Ok(())
    }
}

impl Collector for Polled {
    fn name(&self) -> String {
        match &self.kind {
            PollKind::Helm { .. } => "helm".into(),
            PollKind::Argocd { .. } => "argocd".into(),
            PollKind::Metrics { tool, .. } => (*tool).into(),
            PollKind::ServiceGraph { .. } => "service_graph".into(),
            PollKind::Alertmanager => "alertmanager".into(),
            PollKind::Grafana { .. } => "grafana".into(),
            PollKind::Tempo { .. } => "tempo".into(),
            PollKind::Aws { .. } => "aws".into(),
        }
    }

    fn collect(&self) -> BoxFuture<'_, Result<Snapshot, CollectError>> {
        Box::pin(self.run())
    }
}
