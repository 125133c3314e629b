//! Running one argv under a [`SandboxPolicy`].

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use carapulse_core::redact::Redactor;

use crate::forward::{ForwardPlan, ListenerPlan, MAX_LISTENERS};
use crate::isolate::{self, Plan, RootPlan, RootSpec};
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
    /// Isolation the policy requires is not available on this host.
    #[error("sandbox isolation unavailable: {0}")]
    Unavailable(String),
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    Stdout,
    Stderr,
}

/// Receives output lines (already redacted) while the command runs.
pub type LineSink = Arc<dyn Fn(StreamKind, &str) + Send + Sync>;

/// What happened.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
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
    /// Namespaces the child got (`user`, `mount`, `pid`, `net`, `ipc`, `uts`).
    pub namespaces: Vec<String>,
    /// `minimal` (pivot_root into a minimal root), or `host` (the host's filesystem).
    pub root: String,
    pub read_only_root: bool,
    /// The seccomp filter installed: `default`, a profile path, or `none`.
    pub seccomp: String,
    pub capabilities_dropped: bool,
    /// The uid the tool ran as (inside its user namespace when it had one).
    pub uid: u32,
    /// Why namespaces were not used, if they were wanted.
    pub namespaces_unavailable: Option<String>,
    pub egress_proxy: Option<String>,
    pub egress_denied: Vec<String>,
    pub limits: serde_json::Value,
    /// The sandbox was built before the request arrived (a warm helper's; see `ahead.rs`).
    #[serde(default)]
    pub built_ahead: bool,
}

impl Report {
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

/// The namespace probe's answer, once per process.
static NAMESPACES: OnceLock<Result<(), String>> = OnceLock::new();

/// Takes the namespace probe's answer from the process that started this one (the sandbox
/// helper's parent probed already): probing costs a spawn, on every helper run otherwise.
pub(crate) fn assume_namespaces(known: Result<(), String>) {
    let _ = NAMESPACES.set(known);
}

/// Whether this host lets an unprivileged process unshare user + network namespaces (probed once).
pub fn namespaces_available() -> Result<(), String> {
    NAMESPACES
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

pub(crate) fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
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
/// Stops early once the clock passes `give_up_at` (ms since the epoch; `u64::MAX` until the
/// child is reaped): a descendant that escaped and still holds the pipe open must not keep the
/// run waiting past its deadline.
fn drain(
    stream: impl Read + std::os::fd::AsRawFd,
    cap: usize,
    kind: StreamKind,
    sink: Option<LineSink>,
    redactor: Arc<Redactor>,
    give_up_at: Arc<AtomicU64>,
) -> (Vec<u8>, u64, bool) {
    let mut stream = stream;
    let fd = stream.as_raw_fd();
    let mut kept = Vec::new();
    let mut total: u64 = 0;
    let mut buf = [0u8; 8192];
    let mut pending = Vec::new();
    loop {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: polling one descriptor we own.
        let ready = unsafe { libc::poll(&mut p, 1, 100) };
        if ready == 0 {
            if now_ms() >= give_up_at.load(Ordering::SeqCst) {
                break;
            }
            continue;
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
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

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Ends this process the way `status` (from `waitpid`) says the awaited one ended: same exit
/// code, or the same signal.
///
/// # Safety
/// Between fork and exec: only async-signal-safe calls.
pub(crate) unsafe fn exit_like(status: libc::c_int) -> ! {
    if libc::WIFEXITED(status) {
        libc::_exit(libc::WEXITSTATUS(status));
    }
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        libc::signal(sig, libc::SIG_DFL);
        libc::kill(libc::getpid(), sig);
    }
    libc::_exit(125)
}

/// Waits for `pid` and ends like it.
///
/// # Safety
/// Between fork and exec.
pub(crate) unsafe fn wait_and_exit_like(pid: libc::pid_t) -> ! {
    let mut status: libc::c_int = 0;
    loop {
        let r = libc::waitpid(pid, &mut status, 0);
        if r == pid {
            exit_like(status);
        }
        if r < 0 && *libc::__errno_location() != libc::EINTR {
            libc::_exit(125);
        }
    }
}

fn deadline_from(started: Instant, timeout: Duration) -> Duration {
    timeout.saturating_sub(started.elapsed())
}

/// Environment variables that name credential files: with a minimal root the file is copied
/// into the run's private credentials directory (owned by the tool's uid, mode 0400) and the
/// variable points at the copy, so the tool can read it and nothing next to it.
const CREDENTIAL_FILE_VARS: &[&str] = &[
    "KUBECONFIG",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "VAULT_CACERT",
];

/// The port the forwarder offers as `HTTP(S)_PROXY` inside the namespace.
const PROXY_PORT: u16 = 3128;

/// Finds `program` on `path` (or takes it as given when it has a slash).
fn resolve_program(program: &str, path: &str) -> Option<std::path::PathBuf> {
    if program.contains('/') {
        return Some(std::path::PathBuf::from(program));
    }
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Builds what every run needs whatever its request (the default seccomp filter), so a helper
/// started ahead of need has it ready.
pub(crate) fn prepare() {
    let _ = default_seccomp();
}

/// The compiled default seccomp filter (built once).
fn default_seccomp() -> Result<Vec<seccompiler::BpfProgram>, String> {
    static FILTER: OnceLock<Result<Vec<seccompiler::BpfProgram>, String>> = OnceLock::new();
    FILTER
        .get_or_init(|| isolate::default_filter().map_err(|e| e.to_string()))
        .clone()
}

/// The seccomp programs `policy` asks for, and how the report names them.
pub(crate) fn seccomp_for(
    policy: &SandboxPolicy,
) -> Result<(Vec<seccompiler::BpfProgram>, String), SandboxError> {
    match policy.seccomp.as_deref().map(str::trim) {
        None | Some("") | Some("default") => Ok((
            default_seccomp().map_err(SandboxError::Setup)?,
            "default".into(),
        )),
        Some("none") | Some("unconfined") => {
            if policy.require_seccomp {
                return Err(SandboxError::Unavailable(
                    "seccomp is required but the profile is \"none\"".into(),
                ));
            }
            Ok((Vec::new(), "none".into()))
        }
        Some(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| SandboxError::Setup(format!("seccomp profile {path}: {e}")))?;
            let arch: seccompiler::TargetArch = std::env::consts::ARCH
                .try_into()
                .map_err(|_| SandboxError::Setup("seccomp: unsupported architecture".into()))?;
            let mut filters = seccompiler::compile_from_json(file, arch)
                .map_err(|e| SandboxError::Setup(format!("seccomp profile {path}: {e}")))?;
            let tool = filters.remove("tool").ok_or_else(|| {
                SandboxError::Setup(format!("seccomp profile {path}: no filter named \"tool\""))
            })?;
            Ok((vec![tool], path.to_owned()))
        }
    }
}

/// The environment the tool starts with: allow-listed parent variables, then the policy's own.
fn base_env(policy: &SandboxPolicy) -> std::collections::BTreeMap<String, String> {
    let mut env = std::collections::BTreeMap::new();
    for name in &policy.env_allow {
        if let Ok(value) = std::env::var(name) {
            env.insert(name.clone(), value);
        }
    }
    env.entry("PATH".into())
        .or_insert_with(|| "/usr/local/bin:/usr/bin:/bin".into());
    for (k, v) in &policy.env {
        env.insert(k.clone(), v.clone());
    }
    env
}

/// Whether a full isolated run works on this host (namespaces, minimal root, seccomp), probed
/// once by running `/bin/true` that way. The reason when it does not.
pub fn isolation_available() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            namespaces_available()?;
            let policy = SandboxPolicy {
                timeout_ms: 10_000,
                require_isolation: true,
                require_seccomp: true,
                ..SandboxPolicy::default()
            };
            match run(&["true".to_owned()], &policy, &Redactor::verbatim(), None) {
                Ok(r) if r.succeeded() => Ok(()),
                Ok(r) => Err(format!(
                    "an isolated probe run failed: exit {:?}, {}",
                    r.exit_code,
                    r.stderr.trim()
                )),
                Err(e) => Err(e.to_string()),
            }
        })
        .clone()
}

/// The isolated half of a run, prepared in the parent.
struct Isolation {
    plan: Plan,
    /// The forwarder's socket (as seen inside) and listeners; the process that runs the
    /// forwarder builds its [`ForwardPlan`] from them (checked here first).
    forward: Option<(Vec<u8>, Vec<ListenerPlan>)>,
    /// Extra binds of the request (a sandbox built ahead mounts them when the order comes).
    extra: Vec<(std::path::PathBuf, std::path::PathBuf, bool)>,
    minimal_root: bool,
    /// Keeps the staging directory when there is no minimal root (the egress socket lives there).
    _staging: Option<tempfile::TempDir>,
    seccomp_name: String,
}

/// Runs `argv` under `policy`; blocking (call it from a blocking thread in async code).
pub fn run(
    argv: &[String],
    policy: &SandboxPolicy,
    redactor: &Redactor,
    sink: Option<LineSink>,
) -> Result<Report, SandboxError> {
    let mut leftovers = Leftovers::default();
    let report = run_keeping(argv, policy, redactor, sink, &mut leftovers);
    drop(leftovers);
    report
}

/// What a finished run still holds — its temporary directories (working, staging, credentials,
/// egress) and its egress proxy — so a caller can answer first and clean up after: removing the
/// directories is a fair part of a short run's time. Dropping it cleans up.
#[derive(Default)]
pub(crate) struct Leftovers(Vec<Box<dyn std::any::Any>>);

/// [`run`], handing what the run still holds to `leftovers` instead of cleaning it up before
/// returning (on success; a failed run cleans up as it returns).
pub(crate) fn run_keeping(
    argv: &[String],
    policy: &SandboxPolicy,
    redactor: &Redactor,
    sink: Option<LineSink>,
    leftovers: &mut Leftovers,
) -> Result<Report, SandboxError> {
    let program = argv.first().ok_or(SandboxError::EmptyArgv)?;
    if program.is_empty() || program.starts_with('-') {
        return Err(SandboxError::BadProgram(program.clone()));
    }
    let started = Instant::now();
    let (uid, gid) = policy.ids().map_err(SandboxError::Setup)?;
    let mut env = base_env(policy);
    let resolved = resolve_program(program, env.get("PATH").map(String::as_str).unwrap_or(""))
        .ok_or_else(|| SandboxError::Spawn {
            program: program.clone(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })?;

    let use_ns = policy.namespaces && namespaces_available().is_ok();
    if !use_ns && policy.require_isolation {
        let why = if policy.namespaces {
            namespaces_available().err().unwrap_or_default()
        } else {
            "disabled by policy".to_owned()
        };
        return Err(SandboxError::Unavailable(format!(
            "namespaces are required: {why}"
        )));
    }
    // SAFETY: plain getter.
    let root_parent = unsafe { libc::geteuid() } == 0;
    // Directories a warm helper made ahead for these ids (see staging.rs), else made now; and
    // the sandbox it built ahead (see ahead.rs), which an isolated run with a minimal root takes.
    // Taken whatever the run: what it does not use is removed (a built sandbox is killed).
    let (staged_work, staged_creds, staged_egress, staged_root, ahead) =
        match crate::staging::take(uid, gid).filter(|_| use_ns) {
            Some(s) => (
                Some(s.workdir),
                Some(s.creds),
                Some(s.egress),
                s.root,
                s.ahead.filter(|_| policy.minimal_root),
            ),
            None => (None, None, None, None, None),
        };
    let pre_owned = staged_work.is_some() && policy.working_dir.is_none();
    let temp = match &policy.working_dir {
        Some(_) => None,
        None => Some(match staged_work {
            Some(staged) => staged,
            None => crate::staging::Scratch::Work.make()?,
        }),
    };
    let cwd = match (&policy.working_dir, &temp) {
        (Some(dir), _) => std::path::PathBuf::from(dir),
        (None, Some(t)) => t.path().to_path_buf(),
        (None, None) => return Err(SandboxError::Setup("no working directory".into())),
    };
    if use_ns && root_parent && ((temp.is_some() && !pre_owned) || policy.own_working_dir) {
        // The tool runs as an unprivileged uid: its private directory must be its own.
        let chown = |p: &std::path::Path| {
            std::os::unix::fs::chown(p, Some(uid), Some(gid))
                .map_err(|e| SandboxError::Setup(format!("chown {}: {e}", p.display())))
        };
        chown(&cwd)?;
        if policy.own_working_dir {
            for entry in std::fs::read_dir(&cwd)
                .map_err(|e| SandboxError::Setup(format!("working dir: {e}")))?
                .flatten()
            {
                chown(&entry.path())?;
            }
        }
    }
    env.insert("HOME".into(), cwd.to_string_lossy().into_owned());
    env.insert(
        "TMPDIR".into(),
        if use_ns && policy.minimal_root {
            "/tmp".into()
        } else {
            cwd.to_string_lossy().into_owned()
        },
    );

    let mut proxy = None;
    let mut isolation = None;
    if use_ns {
        let (seccomp, seccomp_name) = seccomp_for(policy)?;
        let mut extra = Vec::new();
        for spec in &policy.mounts {
            extra.push(isolate::parse_mount(spec)?);
        }
        // Credential files: copied for the tool's uid, bound at /run/credentials.
        let creds = match staged_creds {
            Some(staged) => staged,
            None => crate::staging::Scratch::Creds.make()?,
        };
        let mut copied = false;
        if policy.minimal_root {
            for var in CREDENTIAL_FILE_VARS {
                let Some(path) = env.get(*var).cloned() else {
                    continue;
                };
                if !std::path::Path::new(&path).is_file() {
                    continue;
                }
                let dest = creds.path().join(var);
                std::fs::copy(&path, &dest)
                    .map_err(|e| SandboxError::Setup(format!("{var} {path}: {e}")))?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o400))
                    .map_err(|e| SandboxError::Setup(format!("{var}: {e}")))?;
                if root_parent {
                    std::os::unix::fs::chown(&dest, Some(uid), Some(gid))
                        .map_err(|e| SandboxError::Setup(format!("{var}: {e}")))?;
                }
                env.insert((*var).to_owned(), format!("/run/credentials/{var}"));
                copied = true;
            }
        }
        if copied {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(creds.path(), std::fs::Permissions::from_mode(0o755));
            extra.push((
                creds.path().to_path_buf(),
                std::path::PathBuf::from("/run/credentials"),
                false,
            ));
        }
        // Egress: a proxy on a Unix socket in a directory bound at /run/egress.
        let egress_dir = match staged_egress {
            Some(staged) => staged,
            None => crate::staging::Scratch::Egress.make()?,
        };
        let mut forward = None;
        if !policy.allow_egress.is_empty() {
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(
                    egress_dir.path(),
                    std::fs::Permissions::from_mode(0o755),
                );
            }
            let socket = egress_dir.path().join("proxy.sock");
            proxy = Some(
                EgressProxy::start_unix(&socket, &policy.allow_egress)
                    .map_err(|e| SandboxError::Setup(format!("egress proxy: {e}")))?,
            );
            let mut listeners = Vec::new();
            let mut loopback_ports = Vec::new();
            for entry in &policy.allow_egress {
                if let Some((host, port)) = entry.trim().rsplit_once(':') {
                    let host = host
                        .trim_matches(|c| c == '[' || c == ']')
                        .to_ascii_lowercase();
                    if let (true, Ok(port)) = (
                        matches!(host.as_str(), "127.0.0.1" | "localhost"),
                        port.parse::<u16>(),
                    ) {
                        if !loopback_ports.contains(&port) && listeners.len() < MAX_LISTENERS - 1 {
                            loopback_ports.push(port);
                            listeners.push(ListenerPlan {
                                port,
                                preamble: Some(
                                    format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n")
                                        .into_bytes(),
                                ),
                            });
                        }
                    }
                }
            }
            let proxy_port = (PROXY_PORT..PROXY_PORT + 16)
                .find(|p| !loopback_ports.contains(p))
                .unwrap_or(PROXY_PORT + 16);
            listeners.insert(
                0,
                ListenerPlan {
                    port: proxy_port,
                    preamble: None,
                },
            );
            let inside_socket = if policy.minimal_root {
                b"/run/egress/proxy.sock".to_vec()
            } else {
                use std::os::unix::ffi::OsStrExt;
                socket.as_os_str().as_bytes().to_vec()
            };
            // Refused here, before anything starts, rather than in the sandbox.
            forward_plan(&inside_socket, &listeners)?;
            forward = Some((inside_socket, listeners));
            if policy.minimal_root {
                extra.push((
                    egress_dir.path().to_path_buf(),
                    std::path::PathBuf::from("/run/egress"),
                    false,
                ));
            }
            let url = format!("http://127.0.0.1:{proxy_port}");
            for k in [
                "HTTP_PROXY",
                "HTTPS_PROXY",
                "ALL_PROXY",
                "http_proxy",
                "https_proxy",
                "all_proxy",
            ] {
                env.insert(k.into(), url.clone());
            }
            env.insert("NO_PROXY".into(), String::new());
            env.insert("no_proxy".into(), String::new());
        }
        // Built ahead: the root's fixed part is mounted already and the request's part goes
        // with the order; otherwise the whole root is planned here.
        let root = match (&ahead, policy.minimal_root) {
            (None, true) => {
                let spec = RootSpec {
                    program: &resolved,
                    workdir: &cwd,
                    extra: &extra,
                    read_only: policy.read_only_root,
                };
                Some(RootPlan::prepare(&spec, uid, gid, staged_root)?)
            }
            _ => None,
        };
        let plan = Plan::new(root, uid, gid, seccomp, policy.drop_caps);
        // The credentials and egress directories must outlive the run: keep them with it.
        isolation = Some((
            Isolation {
                plan,
                forward,
                extra,
                minimal_root: policy.minimal_root,
                _staging: Some(egress_dir),
                seccomp_name,
            },
            creds,
        ));
    } else if !policy.allow_egress.is_empty() {
        let p = EgressProxy::start(&policy.allow_egress)
            .map_err(|e| SandboxError::Setup(format!("egress proxy: {e}")))?;
        let url = p.url();
        for k in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            env.insert(k.into(), url.clone());
        }
        env.insert("NO_PROXY".into(), String::new());
        env.insert("no_proxy".into(), String::new());
        proxy = Some(p);
    }

    let built_ahead = ahead.is_some();
    let launched = match ahead {
        Some(ahead) => {
            let iso = isolation.as_ref().map(|(i, _)| i);
            let order = crate::ahead::Order {
                program: resolved.clone(),
                argv: argv.to_vec(),
                env: env.into_iter().collect(),
                workdir: cwd.clone(),
                extra: iso.map(|i| i.extra.clone()).unwrap_or_default(),
                forward: iso.and_then(|i| i.forward.clone()),
                policy: policy.clone(),
            };
            let (launched, root) = ahead.launch(&order)?;
            leftovers.0.push(Box::new(root));
            launched
        }
        None => launch_cold(
            program,
            &resolved,
            argv,
            &cwd,
            &env,
            policy,
            &mut isolation,
            uid,
            gid,
        )?,
    };
    let Launched {
        pid,
        stdout,
        stderr,
    } = launched;
    let redactor = Arc::new(redactor.clone());
    let cap = policy.max_output_bytes;
    let give_up = Arc::new(AtomicU64::new(u64::MAX));
    let out = Some(stdout).map(|s| {
        let (sink, red, stop) = (sink.clone(), redactor.clone(), give_up.clone());
        std::thread::spawn(move || drain(s, cap, StreamKind::Stdout, sink, red, stop))
    });
    let err = Some(stderr).map(|s| {
        let (sink, red, stop) = (sink.clone(), redactor.clone(), give_up.clone());
        std::thread::spawn(move || drain(s, cap, StreamKind::Stderr, sink, red, stop))
    });

    // A watchdog kills the whole group at the deadline; this thread blocks in wait4, which also
    // gives the child's own resource usage.
    let timed_out_flag = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let reaper = isolation.is_none();
    let watchdog = {
        let flag = timed_out_flag.clone();
        let timeout = deadline_from(started, policy.timeout());
        std::thread::spawn(move || {
            if done_rx.recv_timeout(timeout).is_err() {
                flag.store(true, Ordering::SeqCst);
                if reaper {
                    // The subreaper kills the tool and everything it left, then ends; the group
                    // kill below is the backstop if it does not within a second.
                    // SAFETY: signalling the child we spawned.
                    unsafe { libc::kill(pid, crate::reap::DEADLINE_SIGNAL) };
                    if done_rx.recv_timeout(Duration::from_secs(1)).is_ok() {
                        return;
                    }
                }
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
    let timed_out = timed_out_flag.load(Ordering::SeqCst);
    // Whatever the child left behind in its group goes too, so pipes close and nothing lingers.
    // SAFETY: signalling the (possibly empty) process group we created.
    unsafe { libc::killpg(pid, libc::SIGKILL) };
    // Output still buffered arrives within moments; a descendant that escaped the group and
    // holds the pipes gets one second, never the rest of the run.
    give_up.store(now_ms() + 1000, Ordering::SeqCst);
    let (stdout, stdout_bytes, stdout_truncated) =
        out.and_then(|h| h.join().ok()).unwrap_or_default();
    let (stderr, stderr_bytes, stderr_truncated) =
        err.and_then(|h| h.join().ok()).unwrap_or_default();
    let exited = libc::WIFEXITED(status);
    let signaled = libc::WIFSIGNALED(status);
    let egress_denied = proxy.as_ref().map(EgressProxy::denied).unwrap_or_default();
    let iso = isolation.as_ref().map(|(i, _)| i);
    let namespaces = if iso.is_some() {
        ["user", "mount", "pid", "net", "ipc", "uts"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        Vec::new()
    };
    let report = Report {
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
        root: if iso.is_some_and(|i| i.minimal_root) {
            "minimal".into()
        } else {
            "host".into()
        },
        read_only_root: iso.is_some_and(|i| i.minimal_root) && policy.read_only_root,
        seccomp: iso
            .map(|i| i.seccomp_name.clone())
            .unwrap_or_else(|| "none".into()),
        capabilities_dropped: iso.is_some() && policy.drop_caps,
        uid: if iso.is_some() {
            uid
        } else {
            // SAFETY: plain getter.
            unsafe { libc::geteuid() }
        },
        namespaces_unavailable: if use_ns {
            None
        } else if policy.namespaces {
            namespaces_available().err()
        } else {
            Some("disabled by policy".to_owned())
        },
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
        built_ahead,
    };
    leftovers.0.push(Box::new(proxy));
    leftovers.0.push(Box::new(isolation));
    leftovers.0.push(Box::new(temp));
    Ok(report)
}

/// A started sandbox: its first process (what the run waits for) and the tool's output.
pub(crate) struct Launched {
    pub pid: libc::pid_t,
    pub stdout: std::fs::File,
    pub stderr: std::fs::File,
}

/// Starts the sandbox from nothing: the first process is forked with `pre_exec` building the
/// namespaces and the root, then forks the tool.
#[allow(clippy::too_many_arguments)]
fn launch_cold(
    program: &str,
    resolved: &std::path::Path,
    argv: &[String],
    cwd: &std::path::Path,
    env: &std::collections::BTreeMap<String, String>,
    policy: &SandboxPolicy,
    isolation: &mut Option<(Isolation, tempfile::TempDir)>,
    uid: libc::uid_t,
    gid: libc::gid_t,
) -> Result<Launched, SandboxError> {
    let mut cmd = Command::new(resolved);
    cmd.arg0(program)
        .args(&argv[1..])
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_clear()
        .envs(env)
        .process_group(0);
    let limits = limits_of(policy);
    // Root parents map the tool's uid from outside: two pipes to hand over the child's pid.
    let mut helper = None;
    let mut child_ends: Vec<std::fs::File> = Vec::new();
    if let Some((iso, _)) = isolation {
        if iso.plan.parent_maps() {
            let (notify_r, notify_w) =
                pipe().map_err(|e| SandboxError::Setup(format!("pipe: {e}")))?;
            let (proceed_r, proceed_w) =
                pipe().map_err(|e| SandboxError::Setup(format!("pipe: {e}")))?;
            {
                use std::os::fd::AsRawFd;
                iso.plan.sync = Some((notify_w.as_raw_fd(), proceed_r.as_raw_fd()));
            }
            child_ends.push(notify_w);
            child_ends.push(proceed_r);
            helper = Some(std::thread::spawn(move || {
                isolate::map_child(notify_r, proceed_w, uid, gid)
            }));
        }
    }
    let iso_ref: Option<&Isolation> = isolation.as_ref().map(|(i, _)| i);
    // Pointers into data that lives until `spawn` returns; the closure runs in the forked child,
    // which has its own copy of this memory.
    let plan_ptr = iso_ref.map(|i| &i.plan as *const Plan as usize);
    // Built before the fork (the child must not allocate); lives until `spawn` returns.
    let forward = iso_ref
        .and_then(|i| i.forward.as_ref())
        .map(|(socket, listeners)| forward_plan(socket, listeners))
        .transpose()?;
    let forward_ptr = forward.as_ref().map(|f| f as *const ForwardPlan as usize);
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // system calls; the plans it reads were fully built before the fork.
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
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            let Some(plan_addr) = plan_ptr else {
                // No namespaces: this process becomes the tool's subreaper, so descendants that
                // leave the process group still die with the run (see reap.rs).
                crate::reap::become_reaper()?;
                let tool = libc::fork();
                if tool < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if tool == 0 {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                    return Ok(());
                }
                // Drop every descriptor but the output pipes, so the parent's spawn returns
                // once the tool execs.
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                crate::reap::reap(tool)
            };
            let plan = &*(plan_addr as *const Plan);
            isolate::setup_child(plan)?;
            let forward = forward_ptr.map(|a| &*(a as *const ForwardPlan));
            // The forwarder must listen before the tool runs: the tool waits on this pipe.
            let mut ready = [-1 as libc::c_int; 2];
            if forward.is_some() {
                isolate::loopback_up()?;
                if libc::pipe2(ready.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            let tool = libc::fork();
            if tool < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if tool == 0 {
                // The tool: PID 1 of its namespace; dies with the first process (which waits for
                // it, so it cannot be gone already).
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                if forward.is_some() {
                    libc::close(ready[1]);
                    let mut byte = [0u8; 1];
                    if libc::read(ready[0], byte.as_mut_ptr().cast(), 1) != 1 || byte[0] != 1 {
                        return Err(std::io::Error::from_raw_os_error(libc::ENETUNREACH));
                    }
                    libc::close(ready[0]);
                }
                isolate::setup_tool(plan)?;
                return Ok(());
            }
            // The first process: drops every descriptor (so the parent's spawn returns once the
            // tool execs), relays egress if any, and ends like the tool.
            match forward {
                None => {
                    libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                    wait_and_exit_like(tool)
                }
                Some(forward) => {
                    let keep = ready[1];
                    if keep > 3 {
                        libc::syscall(libc::SYS_close_range, 3u32, (keep - 1) as u32, 0u32);
                    }
                    libc::syscall(libc::SYS_close_range, (keep + 1) as u32, u32::MAX, 0u32);
                    let mut fds = [-1 as libc::c_int; MAX_LISTENERS];
                    let ok = crate::forward::open_listeners(forward, &mut fds).is_ok();
                    let byte = [u8::from(ok)];
                    libc::write(keep, byte.as_ptr().cast(), 1);
                    libc::close(keep);
                    if !ok {
                        libc::kill(tool, libc::SIGKILL);
                        wait_and_exit_like(tool)
                    }
                    crate::forward::run(forward, &fds, tool)
                }
            }
        });
    }
    let spawned = cmd.spawn();
    // The child has its copies; ours must close so the helper sees the end if it died early.
    drop(child_ends);
    let mapped = helper.map(|h| h.join().unwrap_or_else(|_| Err("helper panicked".into())));
    let mut child = match (spawned, mapped) {
        (Ok(child), _) => child,
        (Err(source), Some(Err(why))) => {
            return Err(SandboxError::Setup(format!(
                "cannot start {program}: {source}; uid mapping: {why}"
            )))
        }
        (Err(source), _) => {
            return Err(SandboxError::Spawn {
                program: program.to_owned(),
                source,
            })
        }
    };
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(SandboxError::Setup(
            "the sandbox's output pipes are missing".into(),
        ));
    };
    Ok(Launched {
        pid: child.id() as libc::pid_t,
        stdout: std::fs::File::from(std::os::fd::OwnedFd::from(stdout)),
        stderr: std::fs::File::from(std::os::fd::OwnedFd::from(stderr)),
    })
}

/// The forwarder's plan for the proxy socket `socket` (as seen inside) and `listeners`.
pub(crate) fn forward_plan(
    socket: &[u8],
    listeners: &[ListenerPlan],
) -> Result<ForwardPlan, SandboxError> {
    ForwardPlan::new(socket, listeners.to_vec()).map_err(|e| SandboxError::Setup(e.to_string()))
}

/// The resource limits `policy` sets, as `setrlimit` takes them.
pub(crate) fn limits_of(policy: &SandboxPolicy) -> [(libc::__rlimit_resource_t, Option<u64>); 4] {
    [
        (libc::RLIMIT_CPU, policy.cpu_seconds),
        (libc::RLIMIT_AS, policy.memory_mb.map(|m| m * 1024 * 1024)),
        (libc::RLIMIT_NPROC, policy.max_processes),
        (
            libc::RLIMIT_FSIZE,
            policy.max_file_mb.map(|m| m * 1024 * 1024),
        ),
    ]
}

/// A pipe whose ends close on exec.
pub(crate) fn pipe() -> std::io::Result<(std::fs::File, std::fs::File)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    })
}
