//! Node ids and the service a Kubernetes object belongs to.

use std::collections::BTreeMap;

use carapulse_core::store::ContextNode;

/// `parts` joined with `/`, empty parts dropped (`k8s/deployment/shop/web`).
pub fn node_id(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

pub fn node(id: String, kind: &str, name: &str, labels: BTreeMap<String, String>) -> ContextNode {
    ContextNode {
        node_id: id,
        kind: kind.to_owned(),
        name: name.to_owned(),
        labels,
        owner_team: None,
    }
}

/// The service node id for a name.
pub fn service_id(name: &str) -> String {
    node_id(&["service", name])
}

/// The service named by common Kubernetes labels, if any.
pub fn service_from_labels(labels: &BTreeMap<String, String>) -> Option<String> {
    ["app.kubernetes.io/name", "app", "k8s-app", "service"]
        .iter()
        .find_map(|k| labels.get(*k).filter(|v| !v.is_empty()))
        .cloned()
}
