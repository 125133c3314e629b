//! sandbox-exec: run one argv — never a shell string — under a policy, and report what happened.
//!
//! The child gets its own process group (the timeout kills the whole group, grandchildren
//! included), a scrubbed environment (only allow-listed variables plus injected credentials), a
//! private temporary working directory, no stdin, rlimits on memory, CPU time, process count and
//! file size, capped output, and — where the host allows unprivileged user namespaces — its own
//! user, mount and PID namespaces (the tool is PID 1 there), plus a network namespace when it
//! needs no egress. When it does need egress it gets a
//! loopback HTTP(S) CONNECT proxy that only reaches the allow-listed `host:port` pairs. Output is
//! redacted before it is reported.

mod policy;
mod proxy;
mod run;

pub use policy::{SandboxPolicy, DEFAULT_TIMEOUT};
pub use proxy::EgressProxy;
pub use run::{namespaces_available, run, LineSink, Report, SandboxError, StreamKind};
