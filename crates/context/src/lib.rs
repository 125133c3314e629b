//! The context service: collectors that build the tenant's service graph in Postgres.
//!
//! Kubernetes is *watched* ([`collectors::kubernetes`], kube-rs watcher with bookmarks,
//! relisting after `410 Gone`); everything else is *polled* through the tool router
//! ([`tool_runner`]) on its own interval with a timeout and backoff ([`service`]). Each
//! collector owns what it writes (`source`), replaces it in one transaction, and a failing one
//! degrades only itself: its health is reported per collector. A snapshot of the whole graph is
//! stored on an interval.

pub mod collectors;
pub mod ids;
pub mod service;
pub mod tool_runner;

pub use service::{CollectorHealth, ContextService, HealthBoard};

use carapulse_core::store::Snapshot;
use futures::future::BoxFuture;

/// Why a collection failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CollectError {
    #[error("tool router: {0}")]
    Router(String),
    #[error("unexpected output: {0}")]
    Parse(String),
    #[error("{0}")]
    Other(String),
}

/// A source polled on an interval.
pub trait Collector: Send + Sync {
    /// Stable name, also the `source` of what it writes (`helm`, `argocd`, ...).
    fn name(&self) -> String;
    fn collect(&self) -> BoxFuture<'_, Result<Snapshot, CollectError>>;
}
