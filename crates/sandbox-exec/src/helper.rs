//! Running a sandboxed command from a large process without copying it.
//!
//! Why: [`crate::run`] builds the sandbox between `fork` and `exec` (`pre_exec`), so the process
//! that calls it is forked, page tables and all — twice with a PID namespace. In the tool router,
//! whose memory grows with traffic, that made every tool call cost more the bigger the router
//! got (5 ms at 2 MiB, 150+ ms at 1 GiB). [`Helper::run`] instead starts the small `sandbox-exec`
//! binary with a plain spawn (no `pre_exec`: std uses `posix_spawn`/vfork, which copies nothing)
//! and lets it build the sandbox in its own small address space: the router's size no longer
//! matters.
//!
//! Protocol: the parent writes one JSON [`HelperRequest`] to the helper's stdin and closes it;
//! the helper answers on stdout with JSON lines — output lines as the tool prints them (already
//! redacted), then exactly one report or error — and exits.
//!
//! Warm helpers: starting the helper (exec, dynamic linking, compiling the seccomp filter) is
//! about a millisecond of every call. A [`Helper`] therefore keeps [`WARM_HELPERS`] helpers
//! started ahead of need, each blocked reading its request with its filter already compiled; a
//! call takes one and a background thread starts its replacement. Each helper still serves
//! exactly one request in a sandbox of its own, so nothing is shared between calls: only the
//! start-up work moves off the caller's path. A waiting helper has built its sandbox already
//! (`ahead.rs`). Idle helpers go when their request pipe closes — the last clone of their
//! `Helper` dropped, or the caller died — after killing their sandbox and removing its
//! directories; a helper that has its request dies with the caller (parent-death signal).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use carapulse_core::redact::Redactor;

use crate::{LineSink, Report, SandboxError, SandboxPolicy, StreamKind};

/// The argument that makes `sandbox-exec` serve one request on stdin.
pub const SERVE_ONE: &str = "--serve-one";

/// Extra time the parent gives the helper past the tool's own timeout before killing it (the
/// helper enforces the timeout itself; this only covers a helper that hangs).
const HELPER_GRACE: Duration = Duration::from_secs(15);

/// What the parent asks the helper to run.
#[derive(Debug, Serialize, Deserialize)]
pub struct HelperRequest {
    pub argv: Vec<String>,
    pub policy: SandboxPolicy,
    /// Whether to send output lines as they come (the parent has a sink).
    pub stream: bool,
    /// The parent's namespace probe, so the helper does not spend a spawn probing again.
    #[serde(default)]
    pub namespaces: Option<Result<(), String>>,
}

/// One line of the helper's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Frame {
    Line { stream: StreamKind, text: String },
    Report(Box<Report>),
    Error { kind: ErrorKind, message: String },
}

/// [`SandboxError`] variants, for the wire.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ErrorKind {
    EmptyArgv,
    BadProgram,
    Spawn,
    Setup,
    Unavailable,
}

fn to_wire(err: &SandboxError) -> Frame {
    let (kind, message) = match err {
        SandboxError::EmptyArgv => (ErrorKind::EmptyArgv, String::new()),
        SandboxError::BadProgram(p) => (ErrorKind::BadProgram, p.clone()),
        SandboxError::Spawn { program, source } => {
            (ErrorKind::Spawn, format!("{program}\u{0}{source}"))
        }
        SandboxError::Setup(m) => (ErrorKind::Setup, m.clone()),
        SandboxError::Unavailable(m) => (ErrorKind::Unavailable, m.clone()),
    };
    Frame::Error { kind, message }
}

fn from_wire(kind: ErrorKind, message: String) -> SandboxError {
    match kind {
        ErrorKind::EmptyArgv => SandboxError::EmptyArgv,
        ErrorKind::BadProgram => SandboxError::BadProgram(message),
        ErrorKind::Spawn => {
            let (program, why) = message.split_once('\u{0}').unwrap_or(("", &message));
            SandboxError::Spawn {
                program: program.to_owned(),
                source: std::io::Error::other(why.to_owned()),
            }
        }
        ErrorKind::Setup => SandboxError::Setup(message),
        ErrorKind::Unavailable => SandboxError::Unavailable(message),
    }
}

/// How many helpers a [`Helper`] keeps started and waiting for a request.
pub const WARM_HELPERS: usize = 2;

/// What the pool's thread is asked to do.
enum PoolJob {
    /// Top the pool up to [`WARM_HELPERS`].
    Refill,
    /// Reap a helper that has answered and is cleaning up before it exits.
    Reap(Child),
}

/// Longest a helper that has answered may take to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(10);

/// Started helpers waiting for their one request, and the thread that starts and reaps them.
///
/// One long-lived thread starts every warm helper: a child's parent-death signal fires when the
/// *thread* that spawned it exits, so helpers started from short-lived threads would be killed
/// while they wait. The same thread reaps helpers that have answered, so a caller gets its
/// report without waiting for the helper to remove the run's directories and exit.
#[derive(Debug, Default)]
struct WarmPool {
    idle: Mutex<Vec<Child>>,
    jobs: Mutex<Option<std::sync::mpsc::Sender<PoolJob>>>,
}

impl std::fmt::Debug for PoolJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refill => f.write_str("Refill"),
            Self::Reap(child) => write!(f, "Reap({})", child.id()),
        }
    }
}

impl WarmPool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Child>> {
        // A poisoned lock is recovered: the vector holds no invariant a panic could break.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A waiting helper that is still alive, if there is one.
    fn take(&self) -> Option<Child> {
        let mut idle = self.lock();
        while let Some(mut child) = idle.pop() {
            if !reaped(&mut child, false) {
                return Some(child);
            }
            // It died while waiting (killed from outside): reaped, its directories removed.
        }
        None
    }

    /// Hands `job` to the pool's thread, starting the thread on first use. A job that cannot
    /// be handed over is done here instead (a reap blocks; a refill is skipped).
    fn send(self: &Arc<Self>, path: &Path, job: PoolJob) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let job = match jobs.as_ref() {
            Some(tx) => match tx.send(job) {
                Ok(()) => return,
                Err(std::sync::mpsc::SendError(job)) => job,
            },
            None => job,
        };
        let (tx, rx) = std::sync::mpsc::channel::<PoolJob>();
        let weak: Weak<WarmPool> = Arc::downgrade(self);
        let path = path.to_owned();
        let started = std::thread::Builder::new()
            .name("sandbox-pool".into())
            .spawn(move || pool_thread(&weak, &path, &rx));
        match (started, tx.send(job)) {
            (Ok(_), Ok(())) => *jobs = Some(tx),
            (_, Err(std::sync::mpsc::SendError(PoolJob::Reap(mut child)))) => {
                kill_and_reap(&mut child);
            }
            _ => {}
        }
    }
}

/// The pool's thread: starts warm helpers on request and reaps answered ones (killing any that
/// take longer than [`EXIT_GRACE`] to exit). Ends when the pool (which holds the sender) goes
/// away, killing what it still reaps.
fn pool_thread(weak: &Weak<WarmPool>, path: &Path, jobs: &std::sync::mpsc::Receiver<PoolJob>) {
    use std::sync::mpsc::RecvTimeoutError;
    let mut exiting: Vec<(Child, std::time::Instant)> = Vec::new();
    loop {
        let job = if exiting.is_empty() {
            jobs.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            jobs.recv_timeout(Duration::from_millis(5))
        };
        match job {
            Ok(PoolJob::Refill) => loop {
                let missing = match weak.upgrade() {
                    Some(pool) => pool.lock().len() < WARM_HELPERS,
                    None => break,
                };
                if !missing {
                    break;
                }
                // A failed start is left to the next call, which starts its own helper and
                // reports the error.
                let Ok(mut child) = Helper::start(path) else {
                    break;
                };
                match weak.upgrade() {
                    Some(pool) => pool.lock().push(child),
                    None => {
                        kill_and_reap(&mut child);
                        break;
                    }
                }
            },
            Ok(PoolJob::Reap(child)) => exiting.push((child, std::time::Instant::now())),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        exiting.retain_mut(|(child, since)| {
            if reaped(child, false) {
                false
            } else if since.elapsed() < EXIT_GRACE {
                true
            } else {
                kill_and_reap(child);
                false
            }
        });
    }
    for (mut child, _) in exiting {
        kill_and_reap(&mut child);
    }
}

/// Whether `child` has exited, reaping it if so (waiting for that with `block`). A helper that
/// was killed could not remove its run's directories: they are removed here first, while the
/// dead helper is a zombie and its pid, which names them, is not anyone else's yet.
fn reaped(child: &mut Child, block: bool) -> bool {
    let pid = child.id();
    // SAFETY: waitid on our own unreaped child fills a zeroed siginfo; WNOWAIT leaves it
    // waitable, so std's `Child` still reaps it below.
    let (waited, info) = loop {
        let (waited, info) = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let flags = libc::WEXITED | libc::WNOWAIT | if block { 0 } else { libc::WNOHANG };
            let waited = libc::waitid(libc::P_PID, pid, &mut info, flags);
            (waited, info)
        };
        let interrupted =
            waited != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR);
        if !interrupted {
            break (waited, info);
        }
    };
    if waited == 0 {
        // SAFETY: filled by waitid for a child state change (zero when none with WNOHANG).
        if unsafe { info.si_pid() } == 0 {
            return false;
        }
        if info.si_code != libc::CLD_EXITED {
            crate::staging::remove_left_by(pid);
        }
    }
    // Reaped now (or already: std keeps the status).
    match if block {
        child.wait().map(Some)
    } else {
        child.try_wait()
    } {
        Ok(status) => status.is_some(),
        Err(_) => true,
    }
}

/// Kills `child` and reaps it (removing what it left, see [`reaped`]).
fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    reaped(child, true);
}

/// Longest the waiting helpers get to clean up and exit once their pool goes away.
const IDLE_EXIT_GRACE: Duration = Duration::from_secs(1);

impl Drop for WarmPool {
    /// Closes each waiting helper's request pipe: it then kills the sandbox it built, removes
    /// its directories and exits. Helpers still there after [`IDLE_EXIT_GRACE`] are killed.
    fn drop(&mut self) {
        let mut waiting: Vec<Child> = self.lock().drain(..).collect();
        for child in &mut waiting {
            drop(child.stdin.take());
        }
        let deadline = std::time::Instant::now() + IDLE_EXIT_GRACE;
        for mut child in waiting {
            while !reaped(&mut child, false) {
                if std::time::Instant::now() >= deadline {
                    kill_and_reap(&mut child);
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

/// The `sandbox-exec` binary the parent starts per run (see the module comment on warm helpers).
#[derive(Debug, Clone)]
pub struct Helper {
    path: PathBuf,
    warm: Arc<WarmPool>,
}

impl Helper {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            warm: Arc::default(),
        }
    }

    /// Starts a helper that waits for its request on stdin. No pre_exec, no uid change: std
    /// spawns this with posix_spawn, copying nothing.
    fn start(path: &Path) -> Result<Child, SandboxError> {
        Command::new(path)
            .arg(SERVE_ONE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                SandboxError::Unavailable(format!(
                    "cannot start the sandbox helper {}: {e}",
                    path.display()
                ))
            })
    }

    /// Process ids of the started helpers waiting for a request (for tests and diagnostics).
    pub fn warm_pids(&self) -> Vec<u32> {
        self.warm.lock().iter().map(Child::id).collect()
    }

    /// `sandbox-exec` next to the running executable (how the images ship it), else on `PATH`.
    pub fn locate() -> Option<Self> {
        let beside = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("sandbox-exec")));
        let on_path = std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("sandbox-exec"))
                .find(|p| p.is_file())
        });
        beside.filter(|p| p.is_file()).or(on_path).map(Self::new)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `argv` under `policy` in a fresh helper process; blocking, like [`crate::run`], and
    /// with the same result.
    pub fn run(
        &self,
        argv: &[String],
        policy: &SandboxPolicy,
        redactor: &Redactor,
        sink: Option<LineSink>,
    ) -> Result<Report, SandboxError> {
        // The helper does not redact: compiling the rules would cost every run milliseconds, and
        // this process has them compiled. Lines and the report are redacted here, on arrival.
        let request = HelperRequest {
            argv: argv.to_vec(),
            policy: with_inherited_env(policy),
            stream: sink.is_some(),
            namespaces: policy.namespaces.then(crate::run::namespaces_available),
        };
        let body = serde_json::to_vec(&request)
            .map_err(|e| SandboxError::Setup(format!("helper request: {e}")))?;
        let warm = self.warm.take();
        let mut child = match warm {
            Some(child) => child,
            None => Self::start(&self.path)?,
        };
        let pid = child.id() as libc::pid_t;
        let (done, watch) = std::sync::mpsc::channel::<()>();
        let limit = Duration::from_millis(policy.timeout_ms) + HELPER_GRACE;
        let watchdog = std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = watch.recv_timeout(limit) {
                // SAFETY: signalling our own child, which we have not reaped yet.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        let wrote = child
            .stdin
            .take()
            .map(|mut stdin| stdin.write_all(&body))
            .transpose();
        let stderr = child.stderr.take();
        let diagnostics = std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut stderr) = stderr {
                use std::io::Read;
                let _ = (&mut stderr).take(16 * 1024).read_to_string(&mut text);
            }
            text
        });
        let mut outcome = None;
        if let Some(stdout) = child.stdout.take() {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Frame>(&line) {
                    Ok(Frame::Line { stream, text }) => {
                        if let Some(sink) = &sink {
                            sink(stream, &redactor.redact(&text));
                        }
                    }
                    Ok(Frame::Report(report)) => {
                        let mut report = *report;
                        for arg in &mut report.argv {
                            *arg = redactor.redact(arg).into_owned();
                        }
                        report.stdout = redactor.redact(&report.stdout).into_owned();
                        report.stderr = redactor.redact(&report.stderr).into_owned();
                        outcome = Some(Ok(report));
                        break;
                    }
                    Ok(Frame::Error { kind, message }) => {
                        outcome = Some(Err(from_wire(kind, message)));
                        break;
                    }
                    Err(e) => {
                        outcome = Some(Err(SandboxError::Setup(format!(
                            "unreadable answer from the sandbox helper: {e}"
                        ))));
                        break;
                    }
                }
            }
        }
        let _ = done.send(());
        let _ = watchdog.join();
        let Some(result) = outcome else {
            // No answer: the helper's exit status and its stderr say why.
            reaped(&mut child, true);
            let status = child.wait();
            let stderr = diagnostics.join().unwrap_or_default();
            self.warm.send(&self.path, PoolJob::Refill);
            return Err(SandboxError::Setup(format!(
                "the sandbox helper ended without a report ({}; request {}): {}",
                status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|e| e.to_string()),
                match wrote {
                    Ok(_) => "sent".to_owned(),
                    Err(e) => format!("not sent: {e}"),
                },
                stderr.trim()
            )));
        };
        // Answered: the helper now removes the run's directories and exits; the pool's thread
        // reaps it (and its stderr reader ends with it). The replacement starts after this run,
        // not while its sandbox was being built: on a small machine they would compete.
        self.warm.send(&self.path, PoolJob::Reap(child));
        self.warm.send(&self.path, PoolJob::Refill);
        result
    }
}

/// `policy` with the caller's allow-listed variables resolved now, in this process: a warm
/// helper was started earlier and its environment may be older than the caller's. The policy's
/// own values still win, as in [`crate::run`].
fn with_inherited_env(policy: &SandboxPolicy) -> SandboxPolicy {
    let mut resolved = policy.clone();
    for name in std::mem::take(&mut resolved.env_allow) {
        if let Ok(value) = std::env::var(&name) {
            resolved.env.entry(name).or_insert(value);
        }
    }
    resolved
}

/// The helper's side: reads one request from stdin, runs it, answers on stdout. Returns the exit
/// code (0 whenever an answer was written; the tool's own status is in the report).
pub fn serve_one() -> u8 {
    // SAFETY: plain getter.
    let parent = unsafe { libc::getppid() };
    let stdout = std::io::stdout();
    let write = |frame: &Frame| {
        let mut out = stdout.lock();
        // A parent that stopped reading is gone; nothing useful to do about a failed write.
        if let Ok(line) = serde_json::to_string(frame) {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    };
    // Work that does not depend on the request, done while waiting for it (see "warm helpers"):
    // the seccomp filter, the run's directories for the default ids (staging.rs) and the
    // sandbox itself on them (ahead.rs). This process is still single-threaded here, which
    // building the sandbox ahead relies on.
    crate::run::prepare();
    crate::staging::stage_ahead(true);
    let request: HelperRequest = match serde_json::from_reader(std::io::stdin().lock()) {
        Ok(r) => r,
        Err(e) => {
            // No request (the caller closed the pipe: it is going away) or a broken one.
            write(&to_wire(&SandboxError::Setup(format!(
                "unreadable helper request: {e}"
            ))));
            crate::staging::discard();
            return 0;
        }
    };
    // Die with the parent from here on: a helper whose router is gone must not keep its tool
    // running. Not while waiting: the parent's death closes the request pipe, and the end of
    // input above lets a waiting helper remove what it built (a kill would leave it behind).
    // A parent that died between the read and here has already been replaced as our parent.
    // SAFETY: plain prctl and getter on this process.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    if unsafe { libc::getppid() } != parent {
        crate::staging::discard();
        return 0;
    }
    if let Some(known) = request.namespaces.clone() {
        crate::run::assume_namespaces(known);
    }
    // The caller redacts what arrives (see `Helper::run`).
    let redactor = Redactor::verbatim();
    let sink: Option<LineSink> = request.stream.then(|| {
        let sink: LineSink = std::sync::Arc::new(move |stream, text: &str| {
            if let Ok(line) = serde_json::to_string(&Frame::Line {
                stream,
                text: text.to_owned(),
            }) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        });
        sink
    });
    // The answer goes out before the run's directories are removed (the caller is waiting).
    let mut leftovers = crate::run::Leftovers::default();
    match crate::run::run_keeping(
        &request.argv,
        &request.policy,
        &redactor,
        sink,
        &mut leftovers,
    ) {
        Ok(report) => write(&Frame::Report(Box::new(report))),
        Err(e) => write(&to_wire(&e)),
    }
    // The answer is complete: closing stdout lets the caller stop reading now, while this
    // process removes the run's directories.
    // SAFETY: nothing writes to stdout after this point; the descriptor is ours.
    unsafe { libc::close(libc::STDOUT_FILENO) };
    // The tool and its namespace are gone; what is left is removing the run's directories,
    // which must happen even if the caller exits as soon as it has its answer.
    // SAFETY: plain prctl on this process.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) };
    drop(leftovers);
    crate::staging::discard();
    0
}

/// How a process runs sandboxed commands: through a helper process (what a long-lived service
/// should do), or in its own process (what the helper itself does).
#[derive(Debug, Clone)]
pub enum Runner {
    Helper(Helper),
    InProcess,
}

impl Runner {
    /// From the `sandbox.exec_helper` setting: a path to `sandbox-exec`, `in-process`, or unset
    /// (the binary next to this program or on `PATH`; in-process when there is none, which the
    /// caller should warn about).
    pub fn from_setting(setting: Option<&str>) -> Result<Self, String> {
        match setting.map(str::trim) {
            Some("in-process") => Ok(Self::InProcess),
            Some(path) if !path.is_empty() => {
                if Path::new(path).is_file() {
                    Ok(Self::Helper(Helper::new(path)))
                } else {
                    Err(format!("sandbox.exec_helper {path:?} is not a file"))
                }
            }
            _ => Ok(Helper::locate().map_or(Self::InProcess, Self::Helper)),
        }
    }

    /// Runs `argv` under `policy`; blocking.
    pub fn run(
        &self,
        argv: &[String],
        policy: &SandboxPolicy,
        redactor: &Redactor,
        sink: Option<LineSink>,
    ) -> Result<Report, SandboxError> {
        match self {
            Self::Helper(helper) => helper.run(argv, policy, redactor, sink),
            Self::InProcess => crate::run(argv, policy, redactor, sink),
        }
    }

    /// `helper <path>` or `in-process`, for diagnostics.
    pub fn describe(&self) -> String {
        match self {
            Self::Helper(helper) => format!("helper {}", helper.path().display()),
            Self::InProcess => "in-process".to_owned(),
        }
    }
}
