//! Blast radius before approval: who depends on what a plan is about to change, and how much
//! traffic flows through it.
//!
//! A plan's write steps name targets (a workload, a release, an app, a secret path); the store
//! resolves each to the service(s) of the context graph it belongs to, then loads the `calls`
//! edges upstream of them (see `Store::blast_radius`). This module is the pure part: which
//! targets a step names, and the walk from the touched services to their callers — depth-capped
//! and cycle-safe — that yields the affected services, namespaces, teams, the request rate into
//! the targets and the most critical tier.
//!
//! The estimate is **unknown**, never zero, when it cannot be made: no service-graph data for the
//! tenant, data older than [`STALE_AFTER_SECS`], or a write target that resolves to no service.
//! Policy sees it as `input.blast_radius` ([`BlastEstimate::policy_input`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::model::{ActionName, ToolName};
use crate::tools::classify;

/// How many caller hops the walk follows by default, and at most.
pub const DEFAULT_DEPTH: u32 = 4;
pub const MAX_DEPTH: u32 = 8;
/// Service-graph data older than this (the collector stopped) no longer counts.
pub const STALE_AFTER_SECS: i64 = 15 * 60;
/// Most services and edges an estimate lists (its totals still count everything walked).
pub const MAX_LISTED_SERVICES: usize = 300;
pub const MAX_LISTED_EDGES: usize = 600;
/// Most targets one estimate resolves (a step listing thousands of names is not walked: its
/// estimate is unknown, and says why).
pub const MAX_TARGETS: usize = 200;

/// What one write step changes, as named by its input.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StepTarget {
    /// Index of the step in the plan.
    pub step: usize,
    /// `workload`, `release`, `app`, `service` or `secret`.
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl StepTarget {
    /// `kind name@namespace`, for reasons and cards.
    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {}@{ns}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// Input fields naming a single target, in the order they are trusted, with their kind.
const NAMED_FIELDS: &[(&str, &str)] = &[
    ("deployment", "workload"),
    ("statefulset", "workload"),
    ("daemonset", "workload"),
    ("release", "release"),
    ("app", "app"),
    ("application", "app"),
    ("service", "service"),
    ("resource", "workload"),
    ("name", "workload"),
];
/// Fields naming a secret path.
const SECRET_FIELDS: &[&str] = &["secret_path", "path"];
/// Fields listing several targets.
const LIST_FIELDS: &[&str] = &["targets", "resources", "names"];

fn text<'a>(input: &'a Value, key: &str) -> Option<&'a str> {
    input
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `deployment/web` -> `web`; `web` stays.
fn object_name(raw: &str) -> &str {
    raw.rsplit('/').next().unwrap_or(raw).trim()
}

/// The targets of a plan's write steps (reads change nothing and have no blast radius).
pub fn step_targets<'a>(
    steps: impl IntoIterator<Item = (ToolName, &'a ActionName, &'a Value)>,
) -> Vec<StepTarget> {
    let mut out = Vec::new();
    for (index, (tool, action, input)) in steps.into_iter().enumerate() {
        if !classify(tool, action).is_write() {
            continue;
        }
        let namespace = text(input, "namespace").map(str::to_owned);
        let mut push = |kind: &str, name: &str| {
            let name = name.trim();
            if !name.is_empty() {
                out.push(StepTarget {
                    step: index,
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                    namespace: namespace.clone(),
                });
            }
        };
        let listed: Vec<&str> = LIST_FIELDS
            .iter()
            .filter_map(|k| input.get(*k).and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !listed.is_empty() {
            for item in listed {
                push("workload", object_name(item));
            }
        } else if let Some((kind, name)) = NAMED_FIELDS
            .iter()
            .find_map(|(field, kind)| text(input, field).map(|v| (*kind, object_name(v))))
        {
            push(kind, name);
        } else if let Some(path) = SECRET_FIELDS.iter().find_map(|f| text(input, f)) {
            push("secret", path);
        } else {
            // A write that names nothing we can resolve: kept with an empty name so the
            // estimate says unknown for it instead of leaving it out.
            out.push(StepTarget {
                step: index,
                kind: "unnamed".to_owned(),
                name: String::new(),
                namespace: namespace.clone(),
            });
        }
    }
    out
}

/// A service of the graph with what people need to know about it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The service's own tier label (`0`, `tier1`, `critical`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
}

/// A measured `calls` edge between two services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEdge {
    pub caller: String,
    pub callee: String,
    pub rps: f64,
    pub error_ratio: f64,
    pub observed_at: DateTime<Utc>,
}

/// The part of a tenant's service graph an estimate needs: the resolved targets and the
/// `calls` edges upstream of them (or the whole graph: the walk only follows what it reaches).
#[derive(Debug, Clone, Default)]
pub struct CallGraph {
    /// Target (by index into the plan's targets) -> the services it resolved to.
    pub resolved: Vec<Vec<String>>,
    pub edges: Vec<CallEdge>,
    /// Service name -> what the graph knows about it.
    pub services: BTreeMap<String, ServiceInfo>,
    /// When the tenant's newest `calls` edge was observed (`None`: never).
    pub newest_observation: Option<DateTime<Utc>>,
    /// Target services seen calling others: in the graph even when nobody calls them (an
    /// upstream read does not return their outgoing edges).
    pub calling: BTreeSet<String>,
}

/// Tiers from most to least critical. A label maps by number (`0`, `tier1`, `t-2`) or name.
fn tier_rank(label: &str) -> Option<u8> {
    let l = label.trim().to_ascii_lowercase();
    let digits: String = l.chars().filter(char::is_ascii_digit).collect();
    if !digits.is_empty() && l.trim_start_matches(|c: char| !c.is_ascii_digit()) == digits {
        return digits.parse::<u8>().ok().map(|n| n.min(3));
    }
    match l.as_str() {
        "critical" | "p0" | "mission-critical" => Some(0),
        "high" | "p1" => Some(1),
        "medium" | "p2" => Some(2),
        "low" | "p3" | "best-effort" => Some(3),
        _ => None,
    }
}

/// The normalised name of a tier rank.
fn tier_name(rank: u8) -> &'static str {
    match rank {
        0 => "critical",
        1 => "high",
        2 => "medium",
        _ => "low",
    }
}

/// A service the change reaches: a target (depth 0) or a caller `depth` hops upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AffectedService {
    pub name: String,
    pub depth: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Requests per second into this service from the callers in the estimate.
    pub rps_in: f64,
    /// No caller seen: where requests enter the affected part of the graph.
    pub entry_point: bool,
}

/// The estimate stored on a plan revision and put to policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlastEstimate {
    /// No estimate could be made: see `unknown_reasons`. Never read an unknown estimate's
    /// counts as zero.
    pub unknown: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_reasons: Vec<String>,
    /// What the plan's write steps change.
    pub targets: Vec<StepTarget>,
    /// The services those targets resolved to.
    pub target_services: Vec<String>,
    /// Targets and their callers, nearest first (at most [`MAX_LISTED_SERVICES`]).
    pub services: Vec<AffectedService>,
    /// How many services the walk reached (may exceed the listed ones).
    pub service_count: usize,
    pub namespaces: Vec<String>,
    pub teams: Vec<String>,
    /// Requests per second into the targets from their callers.
    pub rps: f64,
    /// The most critical tier among the affected services (`critical`, `high`, `medium`,
    /// `low`), if any has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    pub entry_points: Vec<String>,
    /// The walked `calls` edges (at most [`MAX_LISTED_EDGES`]): the subgraph the UI draws.
    pub edges: Vec<CallEdge>,
    pub depth: u32,
    /// The walk stopped at `depth` with callers left beyond it.
    pub depth_capped: bool,
    /// Lists were cut at their caps.
    pub truncated: bool,
    /// Oldest observation among the walked edges (the estimate is as fresh as this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<DateTime<Utc>>,
    pub computed_at: DateTime<Utc>,
}

impl BlastEstimate {
    /// An estimate that could not be made, for `reason`.
    pub fn unknown(targets: Vec<StepTarget>, reason: String, now: DateTime<Utc>) -> Self {
        Self {
            unknown: true,
            unknown_reasons: vec![reason],
            targets,
            target_services: Vec::new(),
            services: Vec::new(),
            service_count: 0,
            namespaces: Vec::new(),
            teams: Vec::new(),
            rps: 0.0,
            tier: None,
            entry_points: Vec::new(),
            edges: Vec::new(),
            depth: 0,
            depth_capped: false,
            truncated: false,
            observed_at: None,
            computed_at: now,
        }
    }

    /// `input.blast_radius` for policy: counts, rate, tier and whether it is unknown.
    pub fn policy_input(&self) -> Value {
        json!({
            "unknown": self.unknown,
            "services": self.service_count,
            "namespaces": self.namespaces.len(),
            "teams": self.teams.len(),
            "rps": (self.rps * 100.0).round() / 100.0,
            "tier": self.tier.clone().unwrap_or_default(),
            "targets": self.targets.len(),
        })
    }

    /// One line for cards and the CLI: `6 services, 3 namespaces, 1 team, 840.5 req/s, tier
    /// critical (traffic observed 2m ago)` (`namespaces not labelled` when no service has one),
    /// or `unknown: ...`.
    pub fn headline(&self, now: DateTime<Utc>) -> String {
        if self.unknown {
            return format!("unknown: {}", self.unknown_reasons.join("; "));
        }
        if self.targets.is_empty() {
            return "none: the plan changes nothing".to_owned();
        }
        // Services without namespace or team labels leave those unknown, not zero.
        let labelled = |n: usize, what: &str| match n {
            0 => format!("{what}s not labelled"),
            1 => format!("1 {what}"),
            n => format!("{n} {what}s"),
        };
        let mut line = format!(
            "{}, {}, {}, {:.1} req/s",
            labelled(self.service_count, "service"),
            labelled(self.namespaces.len(), "namespace"),
            labelled(self.teams.len(), "team"),
            self.rps
        );
        if let Some(tier) = &self.tier {
            line.push_str(&format!(", tier {tier}"));
        }
        if let Some(seen) = self.observed_at {
            line.push_str(&format!(
                " (traffic observed {} ago)",
                age((now - seen).num_seconds())
            ));
        }
        line
    }
}

/// `42s`, `7m`, `3h`: how long ago, for people.
pub fn age(secs: i64) -> String {
    match secs.max(0) {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

/// The estimate for `targets` over `graph`, walking callers up to `depth` hops.
pub fn estimate(
    targets: Vec<StepTarget>,
    graph: &CallGraph,
    depth: u32,
    now: DateTime<Utc>,
) -> BlastEstimate {
    let depth = depth.clamp(1, MAX_DEPTH);
    if targets.is_empty() {
        let mut none = BlastEstimate::unknown(Vec::new(), String::new(), now);
        none.unknown = false;
        none.unknown_reasons.clear();
        none.depth = depth;
        return none;
    }
    if targets.len() > MAX_TARGETS {
        let count = targets.len();
        return BlastEstimate::unknown(
            targets,
            format!("{count} targets: more than the {MAX_TARGETS} an estimate resolves"),
            now,
        );
    }
    let fresh_after = now - chrono::Duration::seconds(STALE_AFTER_SECS);
    match graph.newest_observation {
        None => {
            return BlastEstimate::unknown(
                targets,
                "no service-graph data for this tenant (context.service_graph_queries)".into(),
                now,
            )
        }
        Some(newest) if newest < fresh_after => {
            return BlastEstimate::unknown(
                targets,
                format!(
                    "service-graph data is stale (newest observation {} old)",
                    age((now - newest).num_seconds())
                ),
                now,
            )
        }
        Some(_) => {}
    }
    let unresolved: Vec<String> = targets
        .iter()
        .enumerate()
        .filter(|(i, _)| graph.resolved.get(*i).is_none_or(Vec::is_empty))
        .map(|(_, t)| {
            if t.name.is_empty() {
                format!("step {} names no target", t.step + 1)
            } else {
                format!("no service found for {}", t.label())
            }
        })
        .collect();
    let roots: BTreeSet<&str> = graph
        .resolved
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();

    // callee -> its callers, only fresh edges.
    let mut callers: BTreeMap<&str, Vec<&CallEdge>> = BTreeMap::new();
    let mut seen_in_graph: BTreeSet<&str> = BTreeSet::new();
    for edge in graph.edges.iter().filter(|e| e.observed_at >= fresh_after) {
        callers.entry(edge.callee.as_str()).or_default().push(edge);
        seen_in_graph.insert(edge.caller.as_str());
        seen_in_graph.insert(edge.callee.as_str());
    }
    let mut reasons = unresolved;
    for root in &roots {
        if !seen_in_graph.contains(root) && !graph.calling.contains(*root) {
            reasons.push(format!("no traffic observed to or from service {root}"));
        }
    }

    // Breadth first from the targets: each service keeps its nearest depth, each edge is
    // walked once, so cycles and diamonds end.
    let mut reached: BTreeMap<&str, u32> = roots.iter().map(|r| (*r, 0)).collect();
    let mut queue: VecDeque<&str> = roots.iter().copied().collect();
    let mut walked: Vec<&CallEdge> = Vec::new();
    let mut depth_capped = false;
    while let Some(service) = queue.pop_front() {
        let at = reached[service];
        for edge in callers.get(service).into_iter().flatten() {
            if at >= depth {
                depth_capped = true;
                break;
            }
            walked.push(edge);
            if !reached.contains_key(edge.caller.as_str()) {
                reached.insert(edge.caller.as_str(), at + 1);
                queue.push_back(edge.caller.as_str());
            }
        }
    }

    let mut rps_in: BTreeMap<&str, f64> = BTreeMap::new();
    for edge in &walked {
        *rps_in.entry(edge.callee.as_str()).or_default() += edge.rps;
    }
    let rps: f64 = walked
        .iter()
        .filter(|e| roots.contains(e.callee.as_str()) && !roots.contains(e.caller.as_str()))
        .map(|e| e.rps)
        .sum::<f64>()
        // An empty sum is -0.0; nobody wants to read "-0.0 req/s".
        + 0.0;
    let mut services: Vec<AffectedService> = reached
        .iter()
        .map(|(name, d)| {
            let info = graph.services.get(*name);
            AffectedService {
                name: (*name).to_owned(),
                depth: *d,
                namespace: info.and_then(|i| i.namespace.clone()),
                team: info.and_then(|i| i.team.clone()),
                tier: info.and_then(|i| i.tier.clone()),
                rps_in: rps_in.get(name).copied().unwrap_or(0.0),
                entry_point: !callers.contains_key(name),
            }
        })
        .collect();
    services.sort_by(|a, b| a.depth.cmp(&b.depth).then_with(|| a.name.cmp(&b.name)));
    let namespaces: BTreeSet<String> = services
        .iter()
        .filter_map(|s| s.namespace.clone())
        .collect();
    let teams: BTreeSet<String> = services.iter().filter_map(|s| s.team.clone()).collect();
    let tier = services
        .iter()
        .filter_map(|s| s.tier.as_deref().and_then(tier_rank))
        .min()
        .map(|rank| tier_name(rank).to_owned());
    let entry_points: Vec<String> = services
        .iter()
        .filter(|s| s.entry_point)
        .map(|s| s.name.clone())
        .collect();
    let observed_at = walked.iter().map(|e| e.observed_at).min();
    let mut edges: Vec<CallEdge> = walked.into_iter().cloned().collect();
    edges.sort_by(|a, b| (&a.callee, &a.caller).cmp(&(&b.callee, &b.caller)));
    let service_count = services.len();
    let truncated = services.len() > MAX_LISTED_SERVICES || edges.len() > MAX_LISTED_EDGES;
    services.truncate(MAX_LISTED_SERVICES);
    edges.truncate(MAX_LISTED_EDGES);
    BlastEstimate {
        unknown: !reasons.is_empty(),
        unknown_reasons: reasons,
        targets,
        target_services: roots.iter().map(|s| (*s).to_owned()).collect(),
        services,
        service_count,
        namespaces: namespaces.into_iter().collect(),
        teams: teams.into_iter().collect(),
        rps,
        tier,
        entry_points,
        edges,
        depth,
        depth_capped,
        truncated,
        observed_at,
        computed_at: now,
    }
}

/// What an estimate of `targets` needs, read from a stored context snapshot instead of the live
/// graph (incident replay estimates against the context planning saw). Resolves targets by the
/// same rules as the store (a service by name; a node of that name in the target's namespace
/// linked to a service; a secret path by its segments) and keeps every `calls` edge (the walk
/// follows only what it reaches).
pub fn snapshot_graph(snapshot: &crate::store::Snapshot, targets: &[StepTarget]) -> CallGraph {
    use crate::store::ContextNode;
    // Indexed once: node by id, nodes by name, and each node's neighbours over non-`calls`
    // links (either direction), so resolution and service details read no more than they need.
    let nodes: BTreeMap<&str, &ContextNode> = snapshot
        .nodes
        .iter()
        .map(|n| (n.node_id.as_str(), n))
        .collect();
    let mut by_name: BTreeMap<&str, Vec<&ContextNode>> = BTreeMap::new();
    for n in &snapshot.nodes {
        by_name.entry(n.name.as_str()).or_default().push(n);
    }
    let mut linked: BTreeMap<&str, Vec<&ContextNode>> = BTreeMap::new();
    for e in snapshot.edges.iter().filter(|e| e.relation != "calls") {
        for (from, to) in [
            (&e.from_node_id, &e.to_node_id),
            (&e.to_node_id, &e.from_node_id),
        ] {
            if let Some(other) = nodes.get(to.as_str()) {
                linked.entry(from.as_str()).or_default().push(other);
            }
        }
    }
    let neighbours = |id: &str| linked.get(id).map(Vec::as_slice).unwrap_or_default();
    let resolved: Vec<Vec<String>> = targets
        .iter()
        .map(|t| {
            let wanted: Vec<(&str, &str)> = if t.kind == "secret" {
                t.name
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(|s| (s, ""))
                    .collect()
            } else if t.name.is_empty() {
                Vec::new()
            } else {
                vec![(t.name.as_str(), t.namespace.as_deref().unwrap_or(""))]
            };
            let mut found = BTreeSet::new();
            for (name, ns) in wanted {
                let hits = by_name.get(name).map(Vec::as_slice).unwrap_or_default();
                for hit in hits.iter().filter(|n| {
                    ns.is_empty()
                        || n.kind == "service"
                        || n.labels
                            .get("namespace")
                            .is_none_or(|label| label.is_empty() || label == ns)
                }) {
                    let linked_services = neighbours(&hit.node_id)
                        .iter()
                        .filter(|n| n.kind == "service");
                    for service in std::iter::once(*hit)
                        .filter(|n| n.kind == "service")
                        .chain(linked_services.copied())
                    {
                        found.insert(service.name.clone());
                    }
                }
            }
            found.into_iter().collect()
        })
        .collect();
    let service_name = |id: &str| id.strip_prefix("service/").unwrap_or(id).to_owned();
    let calls: Vec<&crate::store::ContextEdge> = snapshot
        .edges
        .iter()
        .filter(|e| e.relation == "calls")
        .collect();
    let newest_observation = calls
        .iter()
        .filter_map(|e| e.traffic.map(|t| t.observed_at))
        .max();
    let edges: Vec<CallEdge> = calls
        .iter()
        .filter_map(|e| {
            let observed_at = e.traffic.map(|t| t.observed_at).or(newest_observation)?;
            Some(CallEdge {
                caller: service_name(&e.from_node_id),
                callee: service_name(&e.to_node_id),
                rps: e.traffic.map_or(0.0, |t| t.rps),
                error_ratio: e.traffic.map_or(0.0, |t| t.error_ratio),
                observed_at,
            })
        })
        .collect();
    let roots: BTreeSet<&String> = resolved.iter().flatten().collect();
    let calling = edges
        .iter()
        .filter(|e| roots.contains(&e.caller))
        .map(|e| e.caller.clone())
        .collect();
    let services = snapshot
        .nodes
        .iter()
        .filter(|n| n.kind == "service")
        .map(|s| {
            let label = |key: &str| s.labels.get(key).filter(|v| !v.is_empty()).cloned();
            // Else the namespace of the first (by id) Kubernetes object linked to it.
            let namespace = label("namespace").or_else(|| {
                neighbours(&s.node_id)
                    .iter()
                    .filter(|n| {
                        n.kind.starts_with("k8s.")
                            && n.labels.get("namespace").is_some_and(|v| !v.is_empty())
                    })
                    .min_by(|a, b| a.node_id.cmp(&b.node_id))
                    .and_then(|n| n.labels.get("namespace").cloned())
            });
            (
                s.name.clone(),
                ServiceInfo {
                    name: s.name.clone(),
                    namespace,
                    team: s
                        .owner_team
                        .clone()
                        .or_else(|| label("team"))
                        .or_else(|| label("owner")),
                    tier: label("tier").or_else(|| label("criticality")),
                },
            )
        })
        .collect();
    CallGraph {
        resolved,
        edges,
        services,
        newest_observation,
        calling,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> StepTarget {
        StepTarget {
            step: 0,
            kind: "workload".into(),
            name: name.into(),
            namespace: None,
        }
    }

    fn graph(now: DateTime<Utc>, edges: &[(&str, &str, f64)], resolved: &[&[&str]]) -> CallGraph {
        let mut services = BTreeMap::new();
        for (caller, callee, _) in edges {
            for s in [caller, callee] {
                services.insert(
                    (*s).to_owned(),
                    ServiceInfo {
                        name: (*s).to_owned(),
                        namespace: Some(format!("ns-{s}")),
                        team: Some(format!("team-{}", &s[..1])),
                        tier: None,
                    },
                );
            }
        }
        CallGraph {
            resolved: resolved
                .iter()
                .map(|r| r.iter().map(|s| (*s).to_owned()).collect())
                .collect(),
            edges: edges
                .iter()
                .map(|(a, b, rps)| CallEdge {
                    caller: (*a).into(),
                    callee: (*b).into(),
                    rps: *rps,
                    error_ratio: 0.0,
                    observed_at: now,
                })
                .collect(),
            services,
            newest_observation: Some(now),
            calling: BTreeSet::new(),
        }
    }

    fn depths(e: &BlastEstimate) -> Vec<(String, u32)> {
        e.services
            .iter()
            .map(|s| (s.name.clone(), s.depth))
            .collect()
    }

    #[test]
    fn a_chain_is_walked_to_its_entry_point_and_capped_by_depth() {
        let now = Utc::now();
        // edge -> api -> db: changing db reaches api then edge.
        let g = graph(
            now,
            &[("edge", "api", 50.0), ("api", "db", 120.0)],
            &[&["db"]],
        );
        let e = estimate(vec![t("db")], &g, 4, now);
        assert!(!e.unknown, "{:?}", e.unknown_reasons);
        assert_eq!(
            depths(&e),
            vec![("db".into(), 0), ("api".into(), 1), ("edge".into(), 2)]
        );
        assert_eq!(e.rps, 120.0);
        assert_eq!(e.entry_points, vec!["edge".to_owned()]);
        assert_eq!(e.namespaces, vec!["ns-api", "ns-db", "ns-edge"]);
        assert!(!e.depth_capped);
        let capped = estimate(vec![t("db")], &g, 1, now);
        assert_eq!(depths(&capped), vec![("db".into(), 0), ("api".into(), 1)]);
        assert!(capped.depth_capped);
        assert_eq!(capped.edges.len(), 1);
    }

    #[test]
    fn a_diamond_counts_the_shared_caller_once_at_its_nearest_depth() {
        let now = Utc::now();
        let g = graph(
            now,
            &[
                ("web", "cart", 10.0),
                ("web", "search", 20.0),
                ("cart", "db", 5.0),
                ("search", "db", 7.0),
            ],
            &[&["db"]],
        );
        let e = estimate(vec![t("db")], &g, 4, now);
        assert_eq!(
            depths(&e),
            vec![
                ("db".into(), 0),
                ("cart".into(), 1),
                ("search".into(), 1),
                ("web".into(), 2)
            ]
        );
        assert_eq!(e.service_count, 4);
        assert_eq!(e.rps, 12.0);
        assert_eq!(e.edges.len(), 4, "every walked edge once");
        assert_eq!(e.teams, vec!["team-c", "team-d", "team-s", "team-w"]);
    }

    #[test]
    fn a_cycle_ends_and_traffic_between_targets_is_not_counted_as_inbound() {
        let now = Utc::now();
        let g = graph(
            now,
            &[("a", "b", 3.0), ("b", "a", 4.0), ("c", "a", 1.5)],
            &[&["a"], &["b"]],
        );
        let e = estimate(vec![t("a"), t("b")], &g, 8, now);
        assert_eq!(
            depths(&e),
            vec![("a".into(), 0), ("b".into(), 0), ("c".into(), 1)]
        );
        assert_eq!(e.rps, 1.5, "a<->b is inside the change");
        assert_eq!(e.entry_points, vec!["c".to_owned()]);
        let one = estimate(
            vec![t("a")],
            &graph(now, &[("a", "b", 3.0), ("b", "a", 4.0)], &[&["a"]]),
            8,
            now,
        );
        assert_eq!(depths(&one), vec![("a".into(), 0), ("b".into(), 1)]);
        assert!(
            one.entry_points.is_empty(),
            "in a cycle everyone has a caller"
        );
    }

    #[test]
    fn unknown_never_reads_as_zero() {
        let now = Utc::now();
        let none = CallGraph {
            resolved: vec![vec!["db".into()]],
            ..Default::default()
        };
        let e = estimate(vec![t("db")], &none, 4, now);
        assert!(e.unknown);
        assert!(e.unknown_reasons[0].contains("no service-graph data"));
        assert_eq!(e.policy_input()["unknown"], true);
        assert!(e.headline(now).starts_with("unknown:"));

        let mut stale = graph(now, &[("api", "db", 1.0)], &[&["db"]]);
        stale.newest_observation = Some(now - chrono::Duration::hours(2));
        let e = estimate(vec![t("db")], &stale, 4, now);
        assert!(e.unknown && e.unknown_reasons[0].contains("stale (newest observation 2h old)"));

        let unresolved = graph(now, &[("api", "db", 1.0)], &[&[]]);
        let e = estimate(vec![t("ghost")], &unresolved, 4, now);
        assert!(e.unknown);
        assert_eq!(
            e.unknown_reasons,
            vec!["no service found for workload ghost"]
        );

        let silent = graph(now, &[("api", "db", 1.0)], &[&["lonely"]]);
        let e = estimate(vec![t("lonely")], &silent, 4, now);
        assert_eq!(
            e.unknown_reasons,
            vec!["no traffic observed to or from service lonely"]
        );
    }

    #[test]
    fn too_many_targets_are_unknown_not_walked() {
        let now = Utc::now();
        let many: Vec<StepTarget> = (0..=MAX_TARGETS).map(|i| t(&format!("w{i}"))).collect();
        let e = estimate(many, &CallGraph::default(), 4, now);
        assert!(e.unknown);
        assert_eq!(
            e.unknown_reasons,
            vec![format!(
                "{} targets: more than the {MAX_TARGETS} an estimate resolves",
                MAX_TARGETS + 1
            )]
        );
    }

    #[test]
    fn a_plan_without_writes_has_an_empty_known_estimate() {
        let e = estimate(Vec::new(), &CallGraph::default(), 4, Utc::now());
        assert!(!e.unknown);
        assert_eq!(e.service_count, 0);
        assert_eq!(e.headline(Utc::now()), "none: the plan changes nothing");
    }

    #[test]
    fn headlines_count_in_words_and_never_call_missing_labels_zero() {
        let now = Utc::now();
        let g = graph(
            now,
            &[("edge", "api", 50.0), ("api", "db", 120.0)],
            &[&["db"]],
        );
        let e = estimate(vec![t("db")], &g, 4, now);
        assert!(
            e.headline(now)
                .starts_with("3 services, 3 namespaces, 3 teams, 120.0 req/s (traffic observed"),
            "{}",
            e.headline(now)
        );
        let mut bare = g.clone();
        for info in bare.services.values_mut() {
            info.namespace = None;
            info.team = None;
        }
        bare.services.get_mut("db").unwrap().team = Some("data".into());
        let e = estimate(vec![t("db")], &bare, 1, now);
        assert!(
            e.headline(now)
                .starts_with("2 services, namespaces not labelled, 1 team, 120.0 req/s"),
            "{}",
            e.headline(now)
        );
    }

    #[test]
    fn tiers_rank_by_number_or_name() {
        assert_eq!(tier_rank("0"), Some(0));
        assert_eq!(tier_rank("tier1"), Some(1));
        assert_eq!(tier_rank("Tier-2"), Some(2));
        assert_eq!(tier_rank("critical"), Some(0));
        assert_eq!(tier_rank("low"), Some(3));
        assert_eq!(tier_rank("gold"), None);
        let now = Utc::now();
        let mut g = graph(now, &[("edge", "api", 1.0)], &[&["api"]]);
        g.services.get_mut("api").unwrap().tier = Some("tier2".into());
        g.services.get_mut("edge").unwrap().tier = Some("tier0".into());
        assert_eq!(
            estimate(vec![t("api")], &g, 4, now).tier.as_deref(),
            Some("critical")
        );
    }

    #[test]
    fn write_steps_name_their_targets_and_reads_none() {
        let scale = ActionName::parse("scale").unwrap();
        let get = ActionName::parse("get").unwrap();
        let upgrade = ActionName::parse("upgrade").unwrap();
        let put = ActionName::parse("kv-put").unwrap();
        let a = json!({"resource": "deployment/web", "namespace": "shop"});
        let b = json!({"resource": "deployment/web", "namespace": "shop"});
        let c = json!({"release": "cart", "namespace": "shop"});
        let d = json!({"path": "secret/data/shop/db"});
        let targets = step_targets([
            (ToolName::Kubectl, &scale, &a),
            (ToolName::Kubectl, &get, &b),
            (ToolName::Helm, &upgrade, &c),
            (ToolName::Vault, &put, &d),
        ]);
        let labels: Vec<(usize, String)> = targets.iter().map(|t| (t.step, t.label())).collect();
        assert_eq!(
            labels,
            vec![
                (0, "workload web@shop".to_owned()),
                (2, "release cart@shop".to_owned()),
                (3, "secret secret/data/shop/db".to_owned()),
            ]
        );
    }
}
