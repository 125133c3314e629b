//! The isolation policy of one run; strict by default.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Wall-clock limit when none is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// What the child may do. Deserialises from the `--policy` JSON file (all keys optional).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxPolicy {
    /// Wall-clock limit; the whole process group is killed when it passes.
    pub timeout_ms: u64,
    /// RLIMIT_CPU in seconds.
    pub cpu_seconds: Option<u64>,
    /// RLIMIT_AS in MiB.
    pub memory_mb: Option<u64>,
    /// RLIMIT_NPROC (not enforced by the kernel for root).
    pub max_processes: Option<u64>,
    /// RLIMIT_FSIZE in MiB.
    pub max_file_mb: Option<u64>,
    /// Bytes kept of stdout and of stderr each; the rest is counted and dropped.
    pub max_output_bytes: usize,
    /// Names of parent environment variables passed through.
    pub env_allow: Vec<String>,
    /// Variables set for the child (credentials injected by the router).
    pub env: BTreeMap<String, String>,
    /// `host:port` pairs the child may reach through the egress proxy. Empty: no egress.
    pub allow_egress: Vec<String>,
    /// Try to unshare user (+ network when no egress) namespaces.
    pub namespaces: bool,
    /// Working directory; default a private temporary directory removed afterwards.
    pub working_dir: Option<String>,
}

impl Default for SandboxPolicy {
    fn default() -> Self {
        Self {
            timeout_ms: DEFAULT_TIMEOUT.as_millis() as u64,
            cpu_seconds: Some(60),
            memory_mb: Some(1024),
            max_processes: Some(256),
            max_file_mb: Some(256),
            max_output_bytes: 1_000_000,
            env_allow: Vec::new(),
            env: BTreeMap::new(),
            allow_egress: Vec::new(),
            namespaces: true,
            working_dir: None,
        }
    }
}

impl SandboxPolicy {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }
}
