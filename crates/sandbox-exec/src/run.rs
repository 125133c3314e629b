//! Running one argv under a [`SandboxPolicy`].

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use carapulse_core::redact::Redactor;

use crate::{EgressProxy, SandboxPolicy};

/// Why a run could not happen (the command's own failure is in the [`Report`], not here).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("empty argv")]
    EmptyArgv,
    #[error("argv[0] {0:?} must be a program name or path, not an option")]
    BadProgram(String),
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("sandbox setup: {0}")]
    Setup(String),
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    Stdout,
    Stderr,
}

/// Receives output lines (already redacted) while the command runs.
pub type LineSink = Arc<dyn Fn(StreamKind, &str) + Send + Sync>;

/// What happened.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub argv: Vec<String>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub duration_ms: u64,
    pub max_rss_kb: i64,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    /// Namespaces the child got (`user`, `mount`, `pid`, `net`).
    pub namespaces: Vec<String>,
    /// Why namespaces were not used, if they were wanted.
    pub namespaces_unavailable: Option<String>,
    pub egress_proxy: Option<String>,
    pub egress_denied: Vec<String>,
    pub limits: serde_json::Value,
}

impl Report {
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

/// Whether this host lets an unprivileged process unshare user + network namespaces (probed once).
pub fn namespaces_available() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let mut cmd = Command::new("/bin/true");
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: only async-signal-safe libc calls run between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWNET)
                        != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            match cmd.status() {
                Ok(s) if s.success() => Ok(()),
                Ok(s) => Err(format!("probe exited with {s}")),
                Err(e) => Err(format!(
                    "unshare(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWNET) refused: {e}"
                )),
            }
        })
        .clone()
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: value as libc::rlim_t,
        rlim_max: value as libc::rlim_t,
    };
    // SAFETY: plain syscall on a stack value.
    if unsafe { libc::setrlimit(resource, &lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Reads a stream to its end, keeping at most `cap` bytes, forwarding redacted lines to `sink`.
fn drain(
    mut stream: impl Read,
    cap: usize,
    kind: StreamKind,
    sink: Option<LineSink>,
    redactor: Arc<Redactor>,
) -> (Vec<u8>, u64, bool) {
    let mut kept = Vec::new();
    let mut total: u64 = 0;
    let mut buf = [0u8; 8192];
    let mut pending = Vec::new();
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        total += n as u64;
        if kept.len() < cap {
            let take = n.min(cap - kept.len());
            kept.extend_from_slice(&buf[..take]);
        }
        if let Some(sink) = &sink {
            pending.extend_from_slice(&buf[..n]);
            while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=pos).collect();
                sink(
                    kind,
                    redactor.redact_bytes(&line[..line.len() - 1]).as_str(),
                );
            }
            if pending.len() > 64 * 1024 {
                sink(kind, redactor.redact_bytes(&pending).as_str());
                pending.clear();
            }
        }
    }
    if let (Some(sink), false) = (&sink, pending.is_empty()) {
        sink(kind, redactor.redact_bytes(&pending).as_str());
    }
    let truncated = total > kept.len() as u64;
    (kept, total, truncated)
}

/// After `unshare(CLONE_NEWPID)` only children join the new namespace, so fork once more: the
/// grandchild returns here, execs the tool and is PID 1 of the namespace (when it exits, the
/// kernel kills everything it left behind); the intermediate process waits for it and exits with
/// its status. The intermediate closes every descriptor above stderr first, so std's exec-error
/// pipe reaches EOF as soon as the grandchild execs and `spawn` returns.
///
/// Runs between fork and exec: only async-signal-safe calls.
fn enter_pid_namespace() {
    // SAFETY: fork/close_range/waitpid/_exit are async-signal-safe; no allocation happens here.
    unsafe {
        let pid = libc::fork();
        if pid <= 0 {
            // Grandchild (PID 1 in the new namespace), or fork failed: carry on to exec.
            return;
        }
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        let mut status: libc::c_int = 0;
        loop {
            let r = libc::waitpid(pid, &mut status, 0);
            if r == pid {
                break;
            }
            if r < 0 && *libc::__errno_location() != libc::EINTR {
                libc::_exit(125);
            }
        }
        if libc::WIFEXITED(status) {
            libc::_exit(libc::WEXITSTATUS(status));
        }
        if libc::WIFSIGNALED(status) {
            let sig = libc::WTERMSIG(status);
            libc::signal(sig, libc::SIG_DFL);
            libc::kill(libc::getpid(), sig);
        }
        libc::_exit(125);
    }
}

fn deadline_from(started: Instant, timeout: Duration) -> Duration {
    timeout.saturating_sub(started.elapsed())
}

/// Runs `argv` under `policy`; blocking (call it from a blocking thread in async code).
pub fn run(
    argv: &[String],
    policy: &SandboxPolicy,
    redactor: &Redactor,
    sink: Option<LineSink>,
) -> Result<Report, SandboxError> {
    let program = argv.first().ok_or(SandboxError::EmptyArgv)?;
    if program.is_empty() || program.starts_with('-') {
        return Err(SandboxError::BadProgram(program.clone()));
    }
    let started = Instant::now();
    let temp = match &policy.working_dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("sandbox-exec-")
                .tempdir()
                .map_err(|e| SandboxError::Setup(format!("temp dir: {e}")))?,
        ),
    };
    let cwd = match (&policy.working_dir, &temp) {
        (Some(dir), _) => std::path::PathBuf::from(dir),
        (None, Some(t)) => t.path().to_path_buf(),
        (None, None) => return Err(SandboxError::Setup("no working directory".into())),
    };

    let proxy = if policy.allow_egress.is_empty() {
        None
    } else {
        Some(
            EgressProxy::start(&policy.allow_egress)
                .map_err(|e| SandboxError::Setup(format!("egress proxy: {e}")))?,
        )
    };
    let (use_ns, ns_unavailable) = if policy.namespaces {
        match namespaces_available() {
            Ok(()) => (true, None),
            Err(why) => (false, Some(why)),
        }
    } else {
        (false, Some("disabled by policy".to_owned()))
    };
    let mut namespaces = Vec::new();
    let mut ns_flags = 0;
    if use_ns {
        ns_flags |= libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID;
        namespaces.push("user".to_owned());
        namespaces.push("mount".to_owned());
        namespaces.push("pid".to_owned());
        if proxy.is_none() {
            ns_flags |= libc::CLONE_NEWNET;
            namespaces.push("net".to_owned());
        }
    }

    let mut cmd = Command::new(program);
    cmd.args(&argv[1..])
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_clear()
        .process_group(0);
    for name in &policy.env_allow {
        if let Ok(value) = std::env::var(name) {
            cmd.env(name, value);
        }
    }
    if !policy.env_allow.iter().any(|n| n == "PATH") {
        cmd.env("PATH", "/usr/local/bin:/usr/bin:/bin");
    }
    cmd.env("HOME", &cwd).env("TMPDIR", &cwd);
    for (k, v) in &policy.env {
        cmd.env(k, v);
    }
    if let Some(p) = &proxy {
        let url = p.url();
        for k in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            cmd.env(k, &url);
        }
        cmd.env("NO_PROXY", "").env("no_proxy", "");
    }
    let limits: [(libc::__rlimit_resource_t, Option<u64>); 4] = [
        (libc::RLIMIT_CPU, policy.cpu_seconds),
        (libc::RLIMIT_AS, policy.memory_mb.map(|m| m * 1024 * 1024)),
        (libc::RLIMIT_NPROC, policy.max_processes),
        (
            libc::RLIMIT_FSIZE,
            policy.max_file_mb.map(|m| m * 1024 * 1024),
        ),
    ];
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // syscalls (setrlimit, unshare, prctl).
    unsafe {
        cmd.pre_exec(move || {
            for (resource, value) in limits {
                if let Some(v) = value {
                    set_limit(resource, v)?;
                }
            }
            set_limit(libc::RLIMIT_CORE, 0)?;
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if ns_flags != 0 && libc::unshare(ns_flags) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if ns_flags & libc::CLONE_NEWPID != 0 {
                enter_pid_namespace();
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| SandboxError::Spawn {
        program: program.clone(),
        source,
    })?;
    let pid = child.id() as libc::pid_t;
    let redactor = Arc::new(redactor.clone());
    let cap = policy.max_output_bytes;
    let out = child.stdout.take().map(|s| {
        let (sink, red) = (sink.clone(), redactor.clone());
        std::thread::spawn(move || drain(s, cap, StreamKind::Stdout, sink, red))
    });
    let err = child.stderr.take().map(|s| {
        let (sink, red) = (sink.clone(), redactor.clone());
        std::thread::spawn(move || drain(s, cap, StreamKind::Stderr, sink, red))
    });

    // A watchdog kills the whole group at the deadline; this thread blocks in wait4, which also
    // gives the child's own resource usage.
    let timed_out_flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = {
        let flag = timed_out_flag.clone();
        let timeout = deadline_from(started, policy.timeout());
        std::thread::spawn(move || {
            if done_rx.recv_timeout(timeout).is_err() {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                // SAFETY: signalling the process group we created.
                unsafe { libc::killpg(pid, libc::SIGKILL) };
            }
        })
    };
    let mut status: libc::c_int = 0;
    // SAFETY: zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: blocking wait on our own child pid.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            let _ = done_tx.send(());
            return Err(SandboxError::Setup(format!("wait4: {err}")));
        }
    }
    let _ = done_tx.send(());
    let _ = watchdog.join();
    let timed_out = timed_out_flag.load(std::sync::atomic::Ordering::SeqCst);
    // Whatever the child left behind in its group goes too, so pipes close and nothing lingers.
    // SAFETY: signalling the (possibly empty) process group we created.
    unsafe { libc::killpg(pid, libc::SIGKILL) };
    std::mem::forget(child);
    let (stdout, stdout_bytes, stdout_truncated) =
        out.and_then(|h| h.join().ok()).unwrap_or_default();
    let (stderr, stderr_bytes, stderr_truncated) =
        err.and_then(|h| h.join().ok()).unwrap_or_default();
    let exited = libc::WIFEXITED(status);
    let signaled = libc::WIFSIGNALED(status);
    let egress_denied = proxy.as_ref().map(EgressProxy::denied).unwrap_or_default();
    Ok(Report {
        argv: argv
            .iter()
            .map(|a| redactor.redact(a).into_owned())
            .collect(),
        exit_code: exited.then(|| libc::WEXITSTATUS(status)),
        signal: signaled.then(|| libc::WTERMSIG(status)),
        timed_out,
        duration_ms: started.elapsed().as_millis() as u64,
        max_rss_kb: usage.ru_maxrss,
        stdout: redactor.redact_bytes(&stdout),
        stderr: redactor.redact_bytes(&stderr),
        stdout_truncated,
        stderr_truncated,
        stdout_bytes,
        stderr_bytes,
        namespaces,
        namespaces_unavailable: ns_unavailable,
        egress_proxy: proxy.as_ref().map(EgressProxy::url),
        egress_denied,
        limits: serde_json::json!({
            "timeout_ms": policy.timeout_ms,
            "cpu_seconds": policy.cpu_seconds,
            "memory_mb": policy.memory_mb,
            "max_processes": policy.max_processes,
            "max_file_mb": policy.max_file_mb,
            "max_output_bytes": policy.max_output_bytes,
        }),
    })
}
