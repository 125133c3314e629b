//! Static service mappings from config (`context.services`) and the workspace file
//! `<storage.workspace_dir>/memory/service_mappings.json`: which environment, cluster and
//! namespace a service runs in, its PromQL checks, traces and dashboards. This is where service
//! nodes get their labels (other collectors only reference services).

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures::future::BoxFuture;

use carapulse_core::config::ServiceMapping;
use carapulse_core::store::Snapshot;

use crate::ids::{node, node_id, service_id};
use crate::{CollectError, Collector};

#[derive(Debug, Clone)]
pub struct StaticMappings {
    pub configured: Vec<ServiceMapping>,
    pub workspace_file: Option<PathBuf>,
}

impl StaticMappings {
    fn load(&self) -> Result<Vec<ServiceMapping>, CollectError> {
        let mut all = self.configured.clone();
        if let Some(path) = &self.workspace_file {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    let from_file: Vec<ServiceMapping> = serde_json::from_str(&text)
                        .map_err(|e| CollectError::Parse(format!("{}: {e}", path.display())))?;
                    all.extend(from_file);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(CollectError::Other(format!("{}: {e}", path.display()))),
            }
        }
        Ok(all)
    }

    /// The snapshot of the mappings (no I/O besides the file).
    pub fn snapshot(&self) -> Result<Snapshot, CollectError> {
        let mut snap = Snapshot::default();
        for m in self.load()? {
            let name = m.service.trim();
            if name.is_empty() {
                continue;
            }
            let mut labels = BTreeMap::new();
            for (k, v) in [
                ("environment", &m.environment),
                ("cluster_id", &m.cluster_id),
                ("namespace", &m.namespace),
            ] {
                if !v.is_empty() {
                    labels.insert(k.to_owned(), v.clone());
                }
            }
            let svc = snap.node(node(service_id(name), "service", name, labels));
            if !m.environment.is_empty() {
                let env = snap.node(node(
                    node_id(&["env", &m.environment]),
                    "env",
                    &m.environment,
                    BTreeMap::new(),
                ));
                snap.edge(&svc, &env, "runs_in");
            }
            if !m.cluster_id.is_empty() {
                let c = snap.node(node(
                    node_id(&["cluster", &m.cluster_id]),
                    "cluster",
                    &m.cluster_id,
                    BTreeMap::new(),
                ));
                snap.edge(&svc, &c, "runs_on");
            }
            if !m.namespace.is_empty() {
                let ns = snap.reference(node(
                    node_id(&["k8s", "namespace", &m.namespace]),
                    "k8s.namespace",
                    &m.namespace,
                    BTreeMap::new(),
                ));
                snap.edge(&svc, &ns, "owns");
            }
            for q in &m.promql {
                let id = snap.reference(node(
                    node_id(&["promql", name, q]),
                    "prometheus.check",
                    q,
                    BTreeMap::new(),
                ));
                snap.edge(&svc, &id, "monitored_by");
            }
            for q in &m.traceql {
                let id = snap.reference(node(
                    node_id(&["traceql", name, q]),
                    "tempo.query",
                    q,
                    BTreeMap::new(),
                ));
                snap.edge(&svc, &id, "traces");
            }
            for d in &m.dashboards {
                let id = snap.reference(node(
                    node_id(&["grafana", "dashboard", d]),
                    "grafana.dashboard",
                    d,
                    BTreeMap::new(),
                ));
                snap.edge(&svc, &id, "dashboards");
            }
        }
        Ok(snap)
    }
}

impl Collector for StaticMappings {
    fn name(&self) -> String {
        "static".into()
    }

    fn collect(&self) -> BoxFuture<'_, Result<Snapshot, CollectError>> {
        Box::pin(async move { self.snapshot() })
    }
}
