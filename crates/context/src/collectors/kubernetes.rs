//! Kubernetes, watched with kube-rs: a list-then-watch (or a streaming list with initial
//! events, `context.watch_send_initial_events`) per resource, bookmarks as
//! `context.watch_allow_bookmarks` says, each watch call bounded by `context.watch_timeout_secs`,
//! `context.labels` under every node's own labels, relisting after
//! `410 Gone` (the watcher does this), backoff on errors. The initial list replaces what the
//! resource's source owns; later events are applied as deltas (deletes remove nodes).
//! Graph: namespace -contains-> object; service -runs-> deployment/statefulset/daemonset;
//! deployment -owns-> pod (through the ReplicaSet name); k8s Service -selects-> service;
//! ingress -routes_to-> k8s Service (each backend); a Warning event -about-> the object it names
//! (Normal events are not kept: they would drown the graph, and say nothing is wrong).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Event as K8sEvent, Node, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use carapulse_core::model::TenantId;
use carapulse_core::store::{Snapshot, Store};

use crate::ids::{node, node_id, service_from_labels, service_id};
use crate::service::HealthBoard;

/// Turns an object into graph nodes and edges; returns the object's own node id.
pub trait ToGraph {
    fn graph(&self, snap: &mut Snapshot) -> Option<String>;
}

fn ns_node(snap: &mut Snapshot, ns: &str) -> String {
    snap.reference(node(
        node_id(&["k8s", "namespace", ns]),
        "k8s.namespace",
        ns,
        BTreeMap::new(),
    ))
}

fn object<K: Resource<DynamicType = ()> + ResourceExt>(
    snap: &mut Snapshot,
    obj: &K,
    kind: &str,
    mut extra: BTreeMap<String, String>,
) -> Option<String> {
    let name = obj.meta().name.clone()?;
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    let id = node_id(&["k8s", kind, &ns, &name]);
    if !ns.is_empty() {
        extra.insert("namespace".into(), ns.clone());
    }
    let labels: BTreeMap<String, String> = obj.labels().clone().into_iter().collect();
    if let Some(svc) = service_from_labels(&labels) {
        extra.insert("service".into(), svc);
    }
    snap.node(node(id.clone(), &format!("k8s.{kind}"), &name, extra));
    if !ns.is_empty() {
        let n = ns_node(snap, &ns);
        snap.edge(&n, &id, "contains");
    }
    Some(id)
}

fn workload<K: Resource<DynamicType = ()> + ResourceExt>(
    snap: &mut Snapshot,
    obj: &K,
    kind: &str,
    replicas: Option<i32>,
    ready: Option<i32>,
) -> Option<String> {
    let mut extra = BTreeMap::new();
    if let Some(r) = replicas {
        extra.insert("replicas".into(), r.to_string());
    }
    if let Some(r) = ready {
        extra.insert("ready".into(), r.to_string());
    }
    let id = object(snap, obj, kind, extra)?;
    let labels: BTreeMap<String, String> = obj.labels().clone().into_iter().collect();
    let svc_name = service_from_labels(&labels).unwrap_or_else(|| obj.name_any());
    let svc = snap.reference(node(
        service_id(&svc_name),
        "service",
        &svc_name,
        BTreeMap::new(),
    ));
    snap.edge(&svc, &id, "runs");
    Some(id)
}

impl ToGraph for Deployment {
    fn graph(&self, snap: &mut Snapshot) -> Option<String> {
        let status = self.status.as_ref();
        workload(
            snap,
            self,
            "deployment",
            self.spec.replicas,
            status.and_then(|s| s.ready_replicas),
        )
    }
}

impl ToGraph for StatefulSet {
    fn graph(&self, snap: &mut Snapshot) -> Option<String> {
        workload(
            snap,
            self,
            "statefulset",
            self.spec.replicas,
            self.status.as_ref().and_then(|s| s.ready_replicas),
        )
    }
}

impl ToGraph for DaemonSet {
    fn graph(&self, snap: &mut Snapshot) -> Option<String> {
        workload(
            snap,
            self,
            "daemonset",
            None,
            self.status.as_ref().map(|s| s.number_ready),
        )
    }
}

impl ToGraph for Pod {
    fn graph(&self, snap: &mut Snapshot) -> Option<String> {
        let mut extra = BTreeMap::new();
        if let Some(phase) = self.status.as_ref().and_then(|s| s.phase.clone()) {
            extra.insert("phase".into(), phase);
        }
        if let Some(node_name) = self.spec.as_ref().and_then(|s| s.node_name.clone()) {
            extra.insert("node".into(), node_name);
        }
        let id = object(snap, self, "pod", extra)?;
        let ns = self.namespace().unwrap_or_default();
        for owner in self.owner_references() {
            let (kind, owner_name) = match owner.kind.as_str() {
                // web-5d8f7c9b6 -> deployment web
                "ReplicaSet" => match owner.name.rsplit_once('-') {
                    Some((deployment, _)) => ("deployment", deployment.to_owned()),
                    None => continue,
                },
                "StatefulSet" => ("statefulset", owner.name.clone()),
                "DaemonSet" => ("daemonset", owner.name.clone()),
                _ => continue,
            };
            let owner_id = snap.reference(node(
                node_id(&["k8s", kind, &ns, &owner_name]),
                &format!("k8s.{kind}"),
                &owner_name,
                BTreeMap::new(),
            ));
            snap.edge(&owner_id, &id, "owns");
        }
        Some(id)
    }
}

impl ToGraph for Service {
    fn graph(&self, snap: &mut Snapshot) -> Option<String> {
        let mut extra = BTreeMap::new();
        if let Some(t) = self.spec.as_ref().and_then(|s| s.type_.clone()) {
            extra.insert("type".into(), t);
        }
        let id = object(snap, self, "service", extra)?;
        let selector: BTreeMap<String, String> = self
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default()
            .into_iter()
            .collect();
        let name = service_from_labels(&selector).unwrap_or_else(|| self.name_any());
        let svc = snap.reference(node(service_id(&name), "service", &name, BTreeMap::new()));
        snap.edge(&id, &svc, "selects");
        Some(id)
    }
}

impl ToGraph for Node {
    fn graph(&self, snap: &mut Snapshot) -> Option<String> {
        let ready = self
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone())
            .unwrap_or_default();
        object(
            snap,
            self,
            "node",
            BTreeMap::from([("ready".to_owned(), ready)]),
        )
    }
}

impl ToGraph for Ingress {
    fn graph(&self, snap: &mut Snapshot) -> Option<String> {
        let spec = self.spec.as_ref();
        let hosts: Vec<String> = spec
            .and_then(|s| s.rules.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|r| r.host.clone())
            .collect();
        let mut extra = BTreeMap::new();
        if !hosts.is_empty() {
            extra.insert("hosts".into(), hosts.join(","));
        }
        if let Some(class) = spec.and_then(|s| s.ingress_class_name.clone()) {
            extra.insert("class".into(), class);
        }
        let id = object(snap, self, "ingress", extra)?;
        let ns = self.namespace().unwrap_or_default();
        let mut backends: Vec<String> = spec
            .and_then(|s| s.rules.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|r| r.http.as_ref())
            .flat_map(|h| h.paths.iter())
            .filter_map(|p| p.backend.service.as_ref().map(|s| s.name.clone()))
            .chain(
                spec.and_then(|s| s.default_backend.as_ref())
                    .and_then(|b| b.service.as_ref())
                    .map(|s| s.name.clone()),
            )
            .collect();
        backends.sort();
        backends.dedup();
        for name in backends {
            let svc = snap.reference(node(
                node_id(&["k8s", "service", &ns, &name]),
                "k8s.service",
                &name,
                BTreeMap::new(),
            ));
            snap.edge(&id, &svc, "routes_to");
        }
        Some(id)
    }
}

impl ToGraph for K8sEvent {
    fn graph(&self, snap: &mut Snapshot) -> Option<String> {
        if self.type_.as_deref() != Some("Warning") {
            return None;
        }
        let mut extra = BTreeMap::new();
        for (key, value) in [
            ("reason", self.reason.clone()),
            // Bounded: an event message can be long, and the graph is for orientation.
            (
                "message",
                self.message.as_ref().map(|m| m.chars().take(300).collect()),
            ),
            ("count", self.count.map(|c| c.to_string())),
            (
                "last_seen",
                self.last_timestamp.as_ref().map(|t| t.0.to_string()),
            ),
        ] {
            if let Some(v) = value {
                extra.insert(key.to_owned(), v);
            }
        }
        let id = object(snap, self, "event", extra)?;
        let target = &self.involved_object;
        if let (Some(kind), Some(name)) = (&target.kind, &target.name) {
            let kind = kind.to_ascii_lowercase();
            let ns = target.namespace.clone().unwrap_or_default();
            let about = snap.reference(node(
                node_id(&["k8s", &kind, &ns, name]),
                &format!("k8s.{kind}"),
                name,
                BTreeMap::new(),
            ));
            snap.edge(&id, &about, "about");
        }
        Some(id)
    }
}

/// One watched resource./// How every watch runs (from `context.*`).
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// A streaming list (`sendInitialEvents`) instead of list-then-watch.
    pub streaming_list: bool,
    /// Ask for bookmarks; a streaming list needs them (config validation refuses the mix).
    pub bookmarks: bool,
    /// Upper bound of one watch call, after which the watcher reconnects from where it was.
    pub timeout_secs: u32,
    /// Labels every node gets under its own (`context.labels`).
    pub base_labels: Arc<BTreeMap<String, String>>,
}

impl Default for WatchSettings {
    fn default() -> Self {
        Self {
            streaming_list: false,
            bookmarks: true,
            timeout_secs: 290,
            base_labels: Arc::default(),
        }
    }
}

impl WatchSettings {
    fn watcher_config(&self) -> watcher::Config {
        let mut config = watcher::Config::default().timeout(self.timeout_secs.clamp(1, 290));
        if self.streaming_list {
            config = config.streaming_lists();
        }
        if !self.bookmarks {
            config = config.disable_bookmarks();
        }
        config
    }
}

/// One watched resource.
pub struct KubeWatch {
    pub client: Client,
    pub store: Store,
    pub tenant: TenantId,
    pub namespace: Option<String>,
    pub resource: String,
    pub settings: WatchSettings,
    pub health: HealthBoard,
}

impl KubeWatch {
    pub fn source(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("k8s:{}:{ns}", self.resource),
            None => format!("k8s:{}", self.resource),
        }
    }

    /// Watches until `stop`. Unknown resources are reported and end the watch.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let result = match self.resource.as_str() {
            "deployments" => self.drive(self.namespaced::<Deployment>(), stop).await,
            "statefulsets" => self.drive(self.namespaced::<StatefulSet>(), stop).await,
            "daemonsets" => self.drive(self.namespaced::<DaemonSet>(), stop).await,
            "pods" => self.drive(self.namespaced::<Pod>(), stop).await,
            "services" => self.drive(self.namespaced::<Service>(), stop).await,
            "nodes" => self.drive(Api::<Node>::all(self.client.clone()), stop).await,
            "ingresses" => self.drive(self.namespaced::<Ingress>(), stop).await,
            "events" => self.drive(self.namespaced::<K8sEvent>(), stop).await,
            other => Err(format!("resource {other:?} is not watched (deployments, statefulsets, daemonsets, pods, services, nodes, ingresses, events)")),
        };
        if let Err(e) = result {
            self.health.failed(&self.source(), &e).await;
        }
    }

    fn namespaced<K>(&self) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    async fn drive<K>(&self, api: Api<K>, stop: CancellationToken) -> Result<(), String>
    where
        K: Resource<DynamicType = ()>
            + ToGraph
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        let source = self.source();
        let base = &self.settings.base_labels;
        let mut stream = watcher::watcher(api, self.settings.watcher_config())
            .default_backoff()
            .boxed();
        let mut initial = Snapshot::default();
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                n = stream.try_next() => n,
            };
            match next {
                Ok(Some(Event::Init)) => initial = Snapshot::default(),
                Ok(Some(Event::InitApply(obj))) => {
                    obj.graph(&mut initial);
                }
                Ok(Some(Event::InitDone)) => {
                    let mut snap = std::mem::take(&mut initial);
                    snap.add_base_labels(base);
                    let count = snap.nodes.len();
                    match self
                        .store
                        .replace_context(&self.tenant, &source, &snap)
                        .await
                    {
                        Ok(_) => self.health.succeeded(&source, count).await,
                        Err(e) => self.health.failed(&source, &e.to_string()).await,
                    }
                }
                Ok(Some(Event::Apply(obj))) => {
                    let mut delta = Snapshot::default();
                    obj.graph(&mut delta);
                    delta.add_base_labels(base);
                    if let Err(e) = self
                        .store
                        .apply_context_delta(&self.tenant, &source, &delta, &[], None)
                        .await
                    {
                        self.health.failed(&source, &e.to_string()).await;
                    }
                }
                Ok(Some(Event::Delete(obj))) => {
                    let mut gone = Snapshot::default();
                    if let Some(id) = obj.graph(&mut gone) {
                        if let Err(e) = self
                            .store
                            .apply_context_delta(
                                &self.tenant,
                                &source,
                                &Snapshot::default(),
                                &[id],
                                None,
                            )
                            .await
                        {
                            self.health.failed(&source, &e.to_string()).await;
                        }
                    }
                }
                Ok(None) => return Ok(()),
                // The watcher retries with backoff (and relists after 410 Gone) by itself.
                Err(e) => self.health.failed(&source, &e.to_string()).await,
            }
        }
    }
}
