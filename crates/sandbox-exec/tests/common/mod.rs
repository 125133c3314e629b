//! What both sandbox suites share: every run goes through a `sandbox-exec` helper process, as the
//! tool router runs it (see `helper.rs`), so the suites check the path production uses and the
//! in-process `run` inside it.

use carapulse_core::redact::Redactor;
use sandbox_exec::{LineSink, Report, SandboxError, SandboxPolicy};

pub fn run(
    argv: &[String],
    policy: &SandboxPolicy,
    redactor: &Redactor,
    sink: Option<LineSink>,
) -> Result<Report, SandboxError> {
    helper().run(argv, policy, redactor, sink)
}

/// One helper for the whole suite, as the router keeps one: runs take warm helper processes.
pub fn helper() -> &'static sandbox_exec::Helper {
    static HELPER: std::sync::OnceLock<sandbox_exec::Helper> = std::sync::OnceLock::new();
    HELPER.get_or_init(|| sandbox_exec::Helper::new(env!("CARGO_BIN_EXE_sandbox-exec")))
}
