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
    sandbox_exec::Helper::new(env!("CARGO_BIN_EXE_sandbox-exec")).run(argv, policy, redactor, sink)
}
