//! What changed between two context snapshots (`GET /v1/context/snapshots/{id}/diff?base=`):
//! nodes keyed by `node_id`, edges by `edge_id`, so a node whose labels or owner moved is
//! "changed" (with both versions), not removed and added. Output is sorted by id, so two diffs of
//! the same snapshots are byte-identical.

use std::collections::BTreeMap;

use serde::Serialize;

use super::context::{ContextEdge, ContextNode, Snapshot};

/// A node present in both snapshots whose fields differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeChange {
    pub node_id: String,
    pub before: ContextNode,
    pub after: ContextNode,
}

/// An edge present in both whose endpoints or relation differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EdgeChange {
    pub edge_id: String,
    pub before: ContextEdge,
    pub after: ContextEdge,
}

/// The difference from `base` to `snapshot`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SnapshotDiff {
    pub nodes_added: Vec<ContextNode>,
    pub nodes_removed: Vec<ContextNode>,
    pub nodes_changed: Vec<NodeChange>,
    pub edges_added: Vec<ContextEdge>,
    pub edges_removed: Vec<ContextEdge>,
    pub edges_changed: Vec<EdgeChange>,
}

impl SnapshotDiff {
    pub fn between(base: &Snapshot, snapshot: &Snapshot) -> Self {
        let (nodes_added, nodes_removed, nodes_changed) = diff_by(
            &base.nodes,
            &snapshot.nodes,
            |n| n.node_id.as_str(),
            |id, before, after| NodeChange {
                node_id: id.to_owned(),
                before,
                after,
            },
        );
        let (edges_added, edges_removed, edges_changed) = diff_by(
            &base.edges,
            &snapshot.edges,
            |e| e.edge_id.as_str(),
            |id, before, after| EdgeChange {
                edge_id: id.to_owned(),
                before,
                after,
            },
        );
        Self {
            nodes_added,
            nodes_removed,
            nodes_changed,
            edges_added,
            edges_removed,
            edges_changed,
        }
    }

    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Added, removed and changed items from `before` to `after`, keyed by `key`, sorted by key.
fn diff_by<T: Clone + PartialEq, C>(
    before: &[T],
    after: &[T],
    key: impl Fn(&T) -> &str,
    change: impl Fn(&str, T, T) -> C,
) -> (Vec<T>, Vec<T>, Vec<C>) {
    let old: BTreeMap<&str, &T> = before.iter().map(|t| (key(t), t)).collect();
    let new: BTreeMap<&str, &T> = after.iter().map(|t| (key(t), t)).collect();
    let added = new
        .iter()
        .filter(|(k, _)| !old.contains_key(*k))
        .map(|(_, t)| (*t).clone())
        .collect();
    let removed = old
        .iter()
        .filter(|(k, _)| !new.contains_key(*k))
        .map(|(_, t)| (*t).clone())
        .collect();
    let changed = new
        .iter()
        .filter_map(|(k, t)| {
            let was = old.get(k)?;
            (*was != *t).then(|| change(k, (*was).clone(), (*t).clone()))
        })
        .collect();
    (added, removed, changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, owner: Option<&str>) -> ContextNode {
        ContextNode {
            node_id: id.into(),
            kind: "service".into(),
            name: id.into(),
            labels: Default::default(),
            owner_team: owner.map(str::to_owned),
        }
    }

    #[test]
    fn added_removed_and_changed_by_identity() {
        let base = Snapshot {
            nodes: vec![node("service/web", Some("a")), node("service/db", None)],
            edges: vec![ContextEdge::new("service/web", "service/db", "calls")],
            refs: Vec::new(),
        };
        let now = Snapshot {
            nodes: vec![node("service/web", Some("b")), node("service/cache", None)],
            edges: vec![ContextEdge::new("service/web", "service/cache", "calls")],
            refs: Vec::new(),
        };
        let d = SnapshotDiff::between(&base, &now);
        assert_eq!(d.nodes_added, vec![node("service/cache", None)]);
        assert_eq!(d.nodes_removed, vec![node("service/db", None)]);
        assert_eq!(d.nodes_changed.len(), 1);
        assert_eq!(d.nodes_changed[0].before.owner_team.as_deref(), Some("a"));
        assert_eq!(d.nodes_changed[0].after.owner_team.as_deref(), Some("b"));
        assert_eq!(d.edges_added.len(), 1);
        assert_eq!(d.edges_removed.len(), 1);
        assert!(SnapshotDiff::between(&now, &now).is_empty());
    }
}
