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
    /// Isolate with user, mount, PID, network, IPC and UTS namespaces (the network namespace
    /// is always private; egress goes through the proxy only).
    pub namespaces: bool,
    /// `pivot_root` into a minimal root (system dirs, the program, generated `/etc`, the working
    /// directory, `mounts`) instead of seeing the host's filesystem.
    pub minimal_root: bool,
    /// The minimal root is read-only (the working directory and `/tmp` stay writable).
    pub read_only_root: bool,
    /// Extra binds into the minimal root: `HOST`, `HOST:INSIDE` or `HOST:INSIDE:rw`.
    pub mounts: Vec<String>,
    /// `uid[:gid]` the tool runs as (inside its user namespace; mapped to the same host ids when
    /// the caller is root, else to the caller's own). Default 65534:65534.
    pub user: Option<String>,
    /// `default` (the built-in filter), `none`, or a path to a seccompiler JSON profile whose
    /// filter is named `tool`.
    pub seccomp: Option<String>,
    /// Empty the capability bounding set and the ambient set.
    pub drop_caps: bool,
    /// Refuse to run when namespaces or the minimal root are not available (instead of running
    /// with a process group and rlimits only).
    pub require_isolation: bool,
    /// Refuse to run when the seccomp filter cannot be installed.
    pub require_seccomp: bool,
    /// Working directory; default a private temporary directory removed afterwards.
    pub working_dir: Option<String>,
    /// `working_dir` belongs to this run alone (e.g. a directory of generated values): hand it
    /// and its files to the tool's uid when the caller is root.
    pub own_working_dir: bool,
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
            minimal_root: true,
            read_only_root: true,
            mounts: Vec::new(),
            user: None,
            seccomp: None,
            drop_caps: true,
            require_isolation: false,
            require_seccomp: false,
            working_dir: None,
            own_working_dir: false,
        }
    }
}

impl SandboxPolicy {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }

    /// The uid and gid the tool runs as.
    pub fn ids(&self) -> Result<(u32, u32), String> {
        let Some(spec) = self
            .user
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        else {
            return Ok((65534, 65534));
        };
        let (uid, gid) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let parse = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("user {spec:?}: expected uid[:gid] as numbers"))
        };
        let uid = parse(uid)?;
        if uid == 0 {
            return Err("user: the tool never runs as uid 0".into());
        }
        let gid = match gid {
            Some(g) => parse(g)?,
            None => uid,
        };
        Ok((uid, gid))
    }
}
