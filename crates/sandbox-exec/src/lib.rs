//! sandbox-exec: run one argv — never a shell string — under a policy, and report what happened.
//!
//! Where the host allows it (unprivileged user namespaces), the tool gets its own user, mount,
//! PID, network, IPC and UTS namespaces; a minimal read-only root (`pivot_root` into a tmpfs with
//! read-only binds of the system directories, the program, generated `/etc` files, a fresh
//! `/proc`, a private `/tmp` and its working directory); an unprivileged uid (65534 unless
//! `user` says otherwise); no capabilities; a seccomp filter; and — always — a private network
//! whose only way out is the egress proxy, reached through an in-namespace forwarder. The tool
//! is PID 1 of its namespace, so nothing it starts outlives it.
//!
//! Without namespaces the first process is a child subreaper instead of PID 1: descendants that
//! leave the process group are reparented to it and killed when the tool ends or times out.
//!
//! A large caller (the tool router) runs it through [`Helper`]: a fresh `sandbox-exec` process,
//! started without copying the caller, builds the sandbox instead (see `helper.rs`).
//!
//! Always: its own process group (the timeout kills the group), a scrubbed environment (only
//! allow-listed variables plus injected credentials), no stdin, rlimits on memory, CPU time,
//! process count and file size, capped and redacted output, and output draining bounded by the
//! deadline. When isolation is required (`require_isolation`, `require_seccomp`) and the host
//! cannot provide it, the run is refused instead of weakened.

mod ahead;
mod forward;
mod helper;
mod isolate;
mod policy;
mod proxy;
mod reap;
mod run;
mod staging;

pub use helper::{serve_one, Helper, HelperRequest, Runner, SERVE_ONE, WARM_HELPERS};
pub use policy::{SandboxPolicy, DEFAULT_TIMEOUT};
pub use proxy::EgressProxy;
pub use run::{
    isolation_available, namespaces_available, run, LineSink, Report, SandboxError, StreamKind,
};
