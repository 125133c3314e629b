//! What both sandbox suites share: every run goes through a `sandbox-exec` helper process, as the
//! tool router runs it (see `helper.rs`), so the suites check the path production uses and the
//! in-process `run` inside it.

// Each suite uses a part of this module.
#![allow(dead_code)]

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

/// Which way a run's sandbox is built.
#[derive(Debug, Clone, Copy)]
pub enum Via {
    /// By a warm helper before the request came (`ahead.rs`): what the router's runs under the
    /// default uid get.
    Ahead,
    /// From nothing, in this process (`sandbox_exec::run`): what a helper does for any other run.
    InProcess,
}

impl Via {
    /// Runs `argv` this way; a run that could be built ahead is checked to have been built the
    /// way asked, so neither path passes in the other's place.
    pub fn run(
        self,
        argv: &[String],
        policy: &SandboxPolicy,
        redactor: &Redactor,
        sink: Option<LineSink>,
    ) -> Result<Report, SandboxError> {
        let report = match self {
            Self::Ahead => helper().run(argv, policy, redactor, sink)?,
            Self::InProcess => sandbox_exec::run(argv, policy, redactor, sink)?,
        };
        let qualifies = policy.namespaces && policy.minimal_root && policy.user.is_none();
        if qualifies {
            assert_eq!(
                report.built_ahead,
                matches!(self, Self::Ahead),
                "{self:?}: {report:?}"
            );
        }
        Ok(report)
    }
}
