//! Building the context service from config: which collectors run (only those whose source is
//! configured, so an absent connector is not a failing one), the Kubernetes client, the tool
//! router client of the pollers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use carapulse_context::collectors::kubernetes::{KubeWatch, WatchSettings};
use carapulse_context::collectors::polled::{PollKind, Polled};
use carapulse_context::collectors::static_map::StaticMappings;
use carapulse_context::service::Schedule;
use carapulse_context::tool_runner::ToolRunner;
use carapulse_context::{Collector, ContextService, HealthBoard};
use carapulse_core::config::Config;
use carapulse_core::model::{ContextRef, TenantId};
use carapulse_core::store::Store;

/// Resources the Kubernetes watcher knows.
const WATCHABLE: &[&str] = &[
    "deployments",
    "statefulsets",
    "daemonsets",
    "pods",
    "services",
    "nodes",
    "ingresses",
    "events",
];

async fn kube_client(config: &Config) -> Result<kube::Client, String> {
    let kube_config = match config
        .connectors
        .k8s
        .kubeconfig_path
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        Some(path) => {
            let kubeconfig =
                kube::config::Kubeconfig::read_from(path).map_err(|e| format!("{path}: {e}"))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|e| e.to_string())?
        }
        None => kube::Config::infer().await.map_err(|e| e.to_string())?,
    };
    kube::Client::try_from(kube_config).map_err(|e| e.to_string())
}

/// The service, or `None` when `context.enabled` is off.
pub async fn build(config: &Config, store: &Store) -> Option<Arc<ContextService>> {
    let c = &config.context;
    if !c.enabled {
        return None;
    }
    let tenant = match TenantId::parse(&c.tenant_id) {
        Ok(t) => t,
        Err(_) => {
            tracing::error!("context.enabled needs context.tenant_id; the context service is off");
            return None;
        }
    };
    let health = HealthBoard::default();
    let mut pollers: Vec<Arc<dyn Collector>> = vec![Arc::new(StaticMappings {
        configured: c.services.clone(),
        workspace_file: config.storage.workspace_dir.as_ref().map(|d| {
            PathBuf::from(d)
                .join("memory")
                .join("service_mappings.json")
        }),
    })];
    let timeout = Duration::from_secs(c.watch_timeout_secs.max(5));
    if let Some(base) = config.tool_router.base_url.as_deref() {
        let context = ContextRef {
            tenant_id: c.tenant_id.clone(),
            environment: c.environment.clone(),
            cluster_id: c.cluster_id.clone(),
            namespace: c.namespace.clone(),
            aws_account_id: c.aws_account_id.clone(),
            region: c.region.clone(),
            argocd_project: c.argocd_project.clone(),
            grafana_org_id: c.grafana_org_id.clone(),
        };
        match ToolRunner::new(
            base,
            config.tool_router.auth_token.clone(),
            context,
            timeout,
        ) {
            Ok(runner) => {
                let conn = &config.connectors;
                let mut kinds = vec![PollKind::Helm {
                    namespaces: c.helm_namespaces.clone(),
                }];
                if conn.argocd.addr.is_some() || !c.argo_apps.is_empty() {
                    kinds.push(PollKind::Argocd {
                        apps: c.argo_apps.clone(),
                    });
                }
                if conn.prometheus.addr.is_some() && !c.promql_queries.is_empty() {
                    kinds.push(PollKind::Metrics {
                        tool: "prometheus",
                        queries: c.promql_queries.clone(),
                    });
                }
                if conn.thanos.addr.is_some() && !c.promql_queries.is_empty() {
                    kinds.push(PollKind::Metrics {
                        tool: "thanos",
                        queries: c.promql_queries.clone(),
                    });
                }
                // Service-to-service traffic: from Thanos when there is one (the global view),
                // else Prometheus.
                let graph_source = if conn.thanos.addr.is_some() {
                    Some("thanos")
                } else if conn.prometheus.addr.is_some() {
                    Some("prometheus")
                } else {
                    None
                };
                if let Some(tool) = graph_source.filter(|_| !c.service_graph_queries.is_empty()) {
                    kinds.push(PollKind::ServiceGraph {
                        tool,
                        queries: c.service_graph_queries.clone(),
                    });
                }
                if conn.alertmanager.addr.is_some() {
                    kinds.push(PollKind::Alertmanager);
                }
                if conn.grafana.addr.is_some() {
                    kinds.push(PollKind::Grafana {
                        folder_ids: c.grafana_folders.clone(),
                    });
                }
                if conn.tempo.addr.is_some() && !c.traceql_queries.is_empty() {
                    kinds.push(PollKind::Tempo {
                        queries: c.traceql_queries.clone(),
                    });
                }
                if !c.aws_resource_tags.is_empty() {
                    kinds.push(PollKind::Aws {
                        tags: c.aws_resource_tags.clone(),
                    });
                }
                for kind in kinds {
                    pollers.push(Arc::new(Polled {
                        kind,
                        runner: runner.clone(),
                    }));
                }
            }
            Err(e) => health.failed("tool-router", &e.to_string()).await,
        }
    } else {
        tracing::warn!(
            "tool_router.base_url is unset: only static mappings and Kubernetes are collected"
        );
    }
    let base_labels = Arc::new(c.labels.clone());
    let settings = WatchSettings {
        streaming_list: c.watch_send_initial_events,
        bookmarks: c.watch_allow_bookmarks,
        timeout_secs: u32::try_from(c.watch_timeout_secs).unwrap_or(u32::MAX),
        base_labels: base_labels.clone(),
    };
    let mut watches = Vec::new();
    if !c.k8s_resources.is_empty() {
        match kube_client(config).await {
            Ok(client) => {
                let namespaces: Vec<Option<String>> = if !c.k8s_namespaces.is_empty() {
                    c.k8s_namespaces.iter().cloned().map(Some).collect()
                } else if !c.namespace.is_empty() {
                    vec![Some(c.namespace.clone())]
                } else {
                    vec![None]
                };
                for resource in &c.k8s_resources {
                    if !WATCHABLE.contains(&resource.as_str()) {
                        tracing::info!(%resource, "not part of the service graph; not watched");
                        continue;
                    }
                    let scopes: Vec<Option<String>> = if resource == "nodes" {
                        vec![None]
                    } else {
                        namespaces.clone()
                    };
                    for ns in scopes {
                        watches.push(Arc::new(KubeWatch {
                            client: client.clone(),
                            store: store.clone(),
                            tenant: tenant.clone(),
                            namespace: ns,
                            resource: resource.clone(),
                            settings: settings.clone(),
                            health: health.clone(),
                        }));
                    }
                }
            }
            Err(e) => {
                health
                    .failed("k8s", &format!("no Kubernetes client: {e}"))
                    .await
            }
        }
    }
    let schedule = Schedule {
        poll_interval: Duration::from_secs(c.poll_interval_secs.max(5)),
        intervals: c
            .intervals
            .iter()
            .map(|(k, v)| (k.clone(), Duration::from_secs((*v).max(5))))
            .collect(),
        timeout,
        snapshot_interval: Duration::from_secs(c.snapshot_interval_secs.max(10)),
    };
    Some(Arc::new(
        ContextService::new(store.clone(), tenant, pollers, watches, schedule, health)
            .with_base_labels(base_labels),
    ))
}
