//! Shared state of the router.

use std::sync::Arc;

use carapulse_core::config::Config;
use carapulse_core::objects::ObjectStore;
use carapulse_core::policy::PolicyEngine;
use carapulse_core::redact::Redactor;

use crate::logs::LogHub;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct RouterState {
    pub config: Arc<Config>,
    pub policy: Arc<PolicyEngine>,
    /// Key that checks execution grants; `None` refuses every gated call.
    pub grant_key: Option<Arc<Vec<u8>>>,
    pub redactor: Arc<Redactor>,
    /// Where sandboxed commands are built and run (`sandbox.exec_helper`).
    pub sandbox: Arc<sandbox_exec::Runner>,
    pub hub: Arc<LogHub>,
    pub objects: Arc<dyn ObjectStore>,
    pub http: reqwest::Client,
    pub metrics: Arc<Metrics>,
    /// `tool_router.demo_cli_dir`, made canonical once at start (the sandbox binds a binary's
    /// directory as named, so a path through `..` would name nothing inside it).
    pub demo_cli_dir: Option<Arc<std::path::PathBuf>>,
}
