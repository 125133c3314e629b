//! Running the collectors: each poller on its own interval with a timeout and exponential
//! backoff on failure, the Kubernetes watches, a whole-graph snapshot on an interval, an
//! on-demand refresh, and a health board with one entry per collector (a failing collector
//! degrades only itself).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

use carapulse_core::model::TenantId;
use carapulse_core::store::{Snapshot, Store};

use crate::collectors::kubernetes::KubeWatch;
use crate::Collector;

/// One collector's state.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CollectorHealth {
    pub ok: bool,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    pub nodes: usize,
}

/// Health of every collector, shared with `/readyz` and metrics.
#[derive(Debug, Clone, Default)]
pub struct HealthBoard(Arc<RwLock<BTreeMap<String, CollectorHealth>>>);

impl HealthBoard {
    pub async fn succeeded(&self, name: &str, nodes: usize) {
        let mut board = self.0.write().await;
        let h = board.entry(name.to_owned()).or_default();
        h.ok = true;
        h.last_success = Some(Utc::now());
        h.consecutive_failures = 0;
        h.nodes = nodes;
    }

    pub async fn failed(&self, name: &str, error: &str) {
        let mut board = self.0.write().await;
        let h = board.entry(name.to_owned()).or_default();
        h.ok = false;
        h.last_error = Some(error.chars().take(500).collect());
        h.consecutive_failures = h.consecutive_failures.saturating_add(1);
        tracing::warn!(
            collector = name,
            error,
            failures = h.consecutive_failures,
            "collector failed"
        );
    }

    pub async fn snapshot(&self) -> BTreeMap<String, CollectorHealth> {
        self.0.read().await.clone()
    }
}

/// Intervals and limits.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub poll_interval: Duration,
    /// Per-collector overrides of `poll_interval`.
    pub intervals: BTreeMap<String, Duration>,
    pub timeout: Duration,
    pub snapshot_interval: Duration,
}

/// The running context service of one tenant.
pub struct ContextService {
    pub store: Store,
    pub tenant: TenantId,
    pub pollers: Vec<Arc<dyn Collector>>,
    pub watches: Vec<Arc<KubeWatch>>,
    pub schedule: Schedule,
    pub health: HealthBoard,
    /// `context.labels`: under every polled node's own labels (watches carry their own copy).
    pub base_labels: Arc<BTreeMap<String, String>>,
    refresh: tokio::sync::Notify,
}

fn digest(snapshot: &Snapshot) -> Vec<u8> {
    Sha256::digest(serde_json::to_vec(snapshot).unwrap_or_default()).to_vec()
}

impl ContextService {
    pub fn new(
        store: Store,
        tenant: TenantId,
        pollers: Vec<Arc<dyn Collector>>,
        watches: Vec<Arc<KubeWatch>>,
        schedule: Schedule,
        health: HealthBoard,
    ) -> Self {
        Self {
            store,
            tenant,
            pollers,
            watches,
            schedule,
            health,
            base_labels: Arc::default(),
            refresh: tokio::sync::Notify::new(),
        }
    }

    /// Sets the labels every polled node gets under its own.
    pub fn with_base_labels(mut self, labels: Arc<BTreeMap<String, String>>) -> Self {
        self.base_labels = labels;
        self
    }

    /// Collects from one poller once and writes the result if it changed.
    async fn poll_once(
        &self,
        collector: &dyn Collector,
        last: &mut Option<Vec<u8>>,
    ) -> Result<(), String> {
        let name = collector.name();
        let mut snapshot = tokio::time::timeout(self.schedule.timeout, collector.collect())
            .await
            .map_err(|_| format!("timed out after {:?}", self.schedule.timeout))?
            .map_err(|e| e.to_string())?;
        snapshot.add_base_labels(&self.base_labels);
        let d = digest(&snapshot);
        if last.as_ref() != Some(&d) {
            self.store
                .replace_context(&self.tenant, &name, &snapshot)
                .await
                .map_err(|e| e.to_string())?;
            *last = Some(d);
        }
        self.health.succeeded(&name, snapshot.nodes.len()).await;
        Ok(())
    }

    /// Runs every poller now (for `POST /v1/context/refresh`); returns each one's outcome.
    pub async fn refresh_now(&self) -> BTreeMap<String, Result<(), String>> {
        let runs = self.pollers.iter().map(|p| async move {
            let mut none = None;
            let result = self.poll_once(p.as_ref(), &mut none).await;
            if let Err(e) = &result {
                self.health.failed(&p.name(), e).await;
            }
            (p.name(), result)
        });
        let out = futures::future::join_all(runs).await.into_iter().collect();
        self.refresh.notify_waiters();
        out
    }

    /// Stores a snapshot of the whole graph (skipped when nothing changed since the last one).
    pub async fn snapshot_now(
        &self,
        last: &mut Option<Vec<u8>>,
    ) -> Result<Option<uuid::Uuid>, String> {
        let all = self
            .store
            .context_all(&self.tenant)
            .await
            .map_err(|e| e.to_string())?;
        let d = digest(&all);
        if all.nodes.is_empty() || last.as_ref() == Some(&d) {
            return Ok(None);
        }
        let id = self
            .store
            .insert_context_snapshot(&self.tenant, "context", &all)
            .await
            .map_err(|e| e.to_string())?;
        *last = Some(d);
        Ok(Some(id))
    }

    /// Runs until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut tasks = Vec::new();
        for watch in &self.watches {
            tasks.push(tokio::spawn(watch.clone().run(stop.clone())));
        }
        for poller in self.pollers.clone() {
            let me = self.clone();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let mut last = None;
                let base = me
                    .schedule
                    .intervals
                    .get(&poller.name())
                    .copied()
                    .unwrap_or(me.schedule.poll_interval);
                loop {
                    let wait = match me.poll_once(poller.as_ref(), &mut last).await {
                        Ok(()) => base,
                        Err(e) => {
                            me.health.failed(&poller.name(), &e).await;
                            let failures = me
                                .health
                                .snapshot()
                                .await
                                .get(&poller.name())
                                .map(|h| h.consecutive_failures)
                                .unwrap_or(1);
                            (base * 2u32.saturating_pow(failures.min(6))).min(base * 10)
                        }
                    };
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(wait) => {}
                        _ = me.refresh.notified() => {}
                    }
                }
            }));
        }
        let me = self.clone();
        let snap_stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = None;
            loop {
                tokio::select! {
                    _ = snap_stop.cancelled() => break,
                    _ = tokio::time::sleep(me.schedule.snapshot_interval) => {}
                }
                if let Err(e) = me.snapshot_now(&mut last).await {
                    tracing::warn!(error = %e, "context snapshot failed");
                }
            }
        }));
        for t in tasks {
            let _ = t.await;
        }
    }
}
