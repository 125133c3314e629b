//! A sandbox built while its helper waits for the request.
//!
//! Why: most of an isolated run's cost is building the sandbox — `unshare` (a new network
//! namespace alone is ~0.5 ms), the uid map, some forty mounts of the new root, the fork of the
//! tool's process, a fresh `/proc` — and none of that depends on the request. A warm helper
//! (see `helper.rs`) therefore builds it before reading its request: the sandbox's first process
//! unshares, is mapped, mounts the root's fixed part (system directories, generated `/etc`,
//! devices, private `/tmp`), then forks the tool's process (PID 1 of the
//! new PID namespace), which mounts `/proc` and waits. When the request comes, only its own part
//! is left on the caller's path: the order (program, argv, environment, working directory, extra
//! binds, limits, seccomp, egress) goes down a pipe; the first process brings loopback up and
//! opens the egress listeners when the run has egress, and passes it on; the tool's process binds the request's directories, pivots into
//! the root, sets limits, drops privileges and execs.
//!
//! Nothing is shared between runs: each helper serves one request, so each sandbox built ahead
//! serves one run and dies with it. A request the built sandbox does not fit (another uid, no
//! minimal root, no namespaces) kills it and is built from nothing as before (`run.rs`).
//!
//! The helper is single-threaded when it forks the first process, so both sandbox processes
//! may allocate (they never return into the helper's code: they exec or `_exit`).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::forward::{ForwardPlan, ListenerPlan, MAX_LISTENERS};
use crate::isolate::{self, Plan, RootPlan, RootSpec};
use crate::run::{pipe, Launched};
use crate::{SandboxError, SandboxPolicy};

/// What a request adds to a sandbox built ahead: sent to its first process, which passes it on
/// to the tool's process.
#[derive(Serialize, Deserialize)]
pub(crate) struct Order {
    /// The program's resolved path (the same path inside the root).
    pub program: PathBuf,
    /// As the caller gave it (`argv[0]` as given).
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: PathBuf,
    /// Extra binds: host path, inside path, writable.
    pub extra: Vec<(PathBuf, PathBuf, bool)>,
    /// The egress forwarder's proxy socket (as seen inside) and listeners.
    pub forward: Option<(Vec<u8>, Vec<ListenerPlan>)>,
    /// Limits, seccomp profile, capabilities, read-only root.
    pub policy: SandboxPolicy,
}

/// A sandbox waiting for its order (see the module comment).
pub(crate) struct Ahead {
    /// The first process (0 once launched or reaped).
    first: libc::pid_t,
    order: Option<File>,
    /// Read end of the launch-status pipe: end of file when the tool has exec'd, an error
    /// record otherwise.
    status: File,
    stdout: Option<File>,
    stderr: Option<File>,
    /// The root's plan; holds the staging directory, removed after the run.
    root: Option<RootPlan>,
}

/// Descriptors the first process keeps (everything else is closed in it).
struct FirstEnds {
    order: libc::c_int,
    built: libc::c_int,
    status: libc::c_int,
    proceed: Option<libc::c_int>,
    stdin: libc::c_int,
    stdout: libc::c_int,
    stderr: libc::c_int,
}

/// Stages a failure is reported from (in the error record on the status pipe).
const STAGE_ORDER: u8 = 1;
const STAGE_ROOT: u8 = 2;
const STAGE_LIMITS: u8 = 3;
const STAGE_PRIVILEGES: u8 = 4;
const STAGE_EXEC: u8 = 5;
const STAGE_EGRESS: u8 = 6;

fn stage_name(stage: u8) -> &'static str {
    match stage {
        STAGE_ORDER => "reading the order",
        STAGE_ROOT => "mounting the request's directories and entering the root",
        STAGE_LIMITS => "setting limits",
        STAGE_PRIVILEGES => "dropping privileges",
        STAGE_EGRESS => "opening the egress listeners",
        _ => "exec",
    }
}

impl Ahead {
    /// Builds a sandbox for `uid`/`gid` on the root staging directory `staging`, and waits
    /// until it is ready. An error when anything fails (no user namespaces on this host, say):
    /// the run then builds its own.
    pub(crate) fn build(
        uid: libc::uid_t,
        gid: libc::gid_t,
        staging: tempfile::TempDir,
    ) -> Result<Self, String> {
        let root = RootPlan::fixed(uid, gid, Some(staging)).map_err(|e| e.to_string())?;
        // The default filter: the order may name another, which the tool's process compiles.
        let mut plan = Plan::new(Some(root), uid, gid, Vec::new(), true);
        let pipe = || pipe().map_err(|e| format!("pipe: {e}"));
        let (order_r, order_w) = pipe()?;
        let (mut built_r, built_w) = pipe()?;
        let (status_r, status_w) = pipe()?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let stdin = File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
        let proceed = if plan.parent_maps() {
            let (proceed_r, proceed_w) = pipe()?;
            plan.sync = Some((built_w.as_raw_fd(), proceed_r.as_raw_fd()));
            Some((proceed_r, proceed_w))
        } else {
            None
        };
        let ends = FirstEnds {
            order: order_r.as_raw_fd(),
            built: built_w.as_raw_fd(),
            status: status_w.as_raw_fd(),
            proceed: proceed.as_ref().map(|(r, _)| r.as_raw_fd()),
            stdin: stdin.as_raw_fd(),
            stdout: out_w.as_raw_fd(),
            stderr: err_w.as_raw_fd(),
        };
        // SAFETY: this process is single-threaded here (a helper before its request); the child
        // never returns into this code (first_process ends in _exit).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(format!("fork: {}", std::io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: the child of the fork above, with the ends it keeps.
            unsafe { first_process(&mut plan, &ends) }
        }
        let mut ahead = Self {
            first: pid,
            order: Some(order_w),
            status: status_r,
            stdout: Some(out_r),
            stderr: Some(err_r),
            root: plan.root.take(),
        };
        // The child's ends are the child's.
        drop((order_r, built_w, status_w, out_w, err_w, stdin));
        if let Some((proceed_r, proceed_w)) = proceed {
            drop(proceed_r);
            let notify = built_r.try_clone().map_err(|e| format!("dup: {e}"))?;
            isolate::map_child(notify, proceed_w, uid, gid)?;
        }
        let mut ready = [0u8; 1];
        match built_r.read(&mut ready) {
            Ok(1) if ready[0] == 1 => Ok(ahead),
            _ => {
                ahead.kill();
                Err("the sandbox built ahead did not come up".into())
            }
        }
    }

    /// Sends the order and waits until the tool has exec'd (or failed to). The root's plan goes
    /// back to the caller, to be dropped once the run is over.
    pub(crate) fn launch(mut self, order: &Order) -> Result<(Launched, RootPlan), SandboxError> {
        let program = order.argv.first().cloned().unwrap_or_default();
        let body = serde_json::to_vec(order)
            .map_err(|e| SandboxError::Setup(format!("sandbox order: {e}")))?;
        let sent = match self.order.take() {
            Some(mut pipe) => pipe.write_all(&body),
            None => Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe)),
        };
        let mut record = Vec::new();
        let read = self.status.read_to_end(&mut record);
        if let (Ok(()), Ok(_), true) = (&sent, &read, record.is_empty()) {
            let pid = std::mem::replace(&mut self.first, 0);
            if let (Some(stdout), Some(stderr), Some(root)) =
                (self.stdout.take(), self.stderr.take(), self.root.take())
            {
                return Ok((
                    Launched {
                        pid,
                        stdout,
                        stderr,
                    },
                    root,
                ));
            }
            self.first = pid;
        }
        self.kill();
        let source = match record.as_slice() {
            [stage, errno @ ..] if errno.len() >= 4 => {
                let errno = i32::from_ne_bytes([errno[0], errno[1], errno[2], errno[3]]);
                let err = std::io::Error::from_raw_os_error(errno);
                if *stage == STAGE_EXEC {
                    err
                } else {
                    std::io::Error::new(err.kind(), format!("{}: {err}", stage_name(*stage)))
                }
            }
            _ => std::io::Error::other(format!(
                "the sandbox built ahead ended without starting the tool (order {})",
                match sent {
                    Ok(()) => "sent".to_owned(),
                    Err(e) => format!("not sent: {e}"),
                }
            )),
        };
        Err(SandboxError::Spawn { program, source })
    }

    /// Kills and reaps the first process (the tool's process dies with it, and the namespaces
    /// with both).
    fn kill(&mut self) {
        let pid = std::mem::replace(&mut self.first, 0);
        if pid > 0 {
            // SAFETY: signalling and reaping our own child, not reaped yet.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                let mut status = 0;
                while libc::waitpid(pid, &mut status, 0) < 0
                    && *libc::__errno_location() == libc::EINTR
                {}
            }
        }
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---- the sandbox's processes ---------------------------------------------------------------

/// Closes every descriptor of this process but `keep`.
///
/// # Safety
/// In a forked child.
unsafe fn close_except(keep: &mut [libc::c_int]) {
    keep.sort_unstable();
    let mut from: libc::c_int = 0;
    for &fd in keep.iter() {
        if fd > from {
            libc::syscall(libc::SYS_close_range, from as u32, (fd - 1) as u32, 0u32);
        }
        from = from.max(fd + 1);
    }
    libc::syscall(libc::SYS_close_range, from as u32, u32::MAX, 0u32);
}

/// Writes a failure record (`stage`, errno) to `fd`.
///
/// # Safety
/// In a sandbox process.
unsafe fn report(fd: libc::c_int, stage: u8, err: &std::io::Error) {
    let errno = err.raw_os_error().unwrap_or(libc::EIO).to_ne_bytes();
    let record = [stage, errno[0], errno[1], errno[2], errno[3]];
    libc::write(fd, record.as_ptr().cast(), record.len());
}

/// Everything on `fd` until its end.
fn read_all(fd: libc::c_int) -> std::io::Result<Vec<u8>> {
    // SAFETY: the descriptor is this process's and is not used after this.
    let mut file = unsafe { File::from_raw_fd(fd) };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The sandbox's first process: builds the namespaces and the root's fixed part, forks the
/// tool's process, waits for the order, opens the egress listeners, passes the order on, then
/// waits for the tool (relaying egress) and ends like it.
///
/// # Safety
/// The child of [`Ahead::build`]'s fork, of a single-threaded process.
unsafe fn first_process(plan: &mut Plan, ends: &FirstEnds) -> ! {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: as this function's.
        unsafe { first_process_inner(plan, ends) }
    }));
    let _ = outcome;
    libc::_exit(125)
}

unsafe fn first_process_inner(plan: &mut Plan, ends: &FirstEnds) {
    let helper = libc::getppid();
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
    if libc::getppid() != helper {
        return;
    }
    // Its own process group: the run's deadline kills the group.
    libc::setpgid(0, 0);
    if libc::dup2(ends.stdin, 0) < 0
        || libc::dup2(ends.stdout, 1) < 0
        || libc::dup2(ends.stderr, 2) < 0
    {
        return;
    }
    let mut keep = vec![0, 1, 2, ends.order, ends.built, ends.status];
    keep.extend(ends.proceed);
    close_except(&mut keep);
    // Tells the helper the sandbox could not be built (it waits for a 1).
    let fail = || {
        // SAFETY: writing one byte to our own pipe.
        unsafe { libc::write(ends.built, [0u8].as_ptr().cast(), 1) };
    };
    if isolate::unshare_and_map(plan).is_err() {
        return fail();
    }
    if let Some(fd) = ends.proceed {
        libc::close(fd);
    }
    let Some(root) = plan.root.as_ref() else {
        return fail();
    };
    if isolate::mount_fixed(root).is_err() {
        return fail();
    }
    let mut to_tool = [-1 as libc::c_int; 2];
    if libc::pipe2(to_tool.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
        return fail();
    }
    let tool = libc::fork();
    if tool < 0 {
        return fail();
    }
    if tool == 0 {
        libc::close(to_tool[1]);
        libc::close(ends.order);
        tool_process(plan, ends, to_tool[0]);
    }
    libc::close(to_tool[0]);
    libc::close(ends.built);
    // Waits here until the request comes (or the helper goes: its end closes, or it dies and
    // the parent-death signal ends this process).
    let order_bytes = match read_all(ends.order) {
        Ok(bytes) if !bytes.is_empty() => bytes,
        _ => {
            libc::kill(tool, libc::SIGKILL);
            crate::run::wait_and_exit_like(tool)
        }
    };
    let order: Order = match serde_json::from_slice(&order_bytes) {
        Ok(order) => order,
        Err(_) => {
            report(
                ends.status,
                STAGE_ORDER,
                &std::io::Error::from_raw_os_error(libc::EINVAL),
            );
            libc::kill(tool, libc::SIGKILL);
            crate::run::wait_and_exit_like(tool)
        }
    };
    // The forwarder must listen before the tool runs: the order reaches the tool after this.
    let mut listeners = [-1 as libc::c_int; MAX_LISTENERS];
    let forward = match &order.forward {
        None => None,
        Some((socket, plans)) => {
            // Loopback comes up only for a run with egress (as a run built from nothing does):
            // bringing it up is a fair part of a new network namespace's cost.
            let opened = ForwardPlan::new(socket, plans.clone()).and_then(|forward| {
                // SAFETY: in the sandbox's network namespace, before the tool runs.
                unsafe {
                    isolate::loopback_up()?;
                    crate::forward::open_listeners(&forward, &mut listeners)?;
                }
                Ok(forward)
            });
            match opened {
                Ok(forward) => Some(forward),
                Err(err) => {
                    report(ends.status, STAGE_EGRESS, &err);
                    libc::kill(tool, libc::SIGKILL);
                    crate::run::wait_and_exit_like(tool)
                }
            }
        }
    };
    let mut rest = order_bytes.as_slice();
    while !rest.is_empty() {
        let n = libc::write(to_tool[1], rest.as_ptr().cast(), rest.len());
        if n <= 0 {
            break;
        }
        rest = rest.get(n as usize..).unwrap_or_default();
    }
    libc::close(to_tool[1]);
    // From here on the tool's process reports its own failures; the caller's end of the
    // status pipe sees its end when the tool execs.
    libc::close(ends.status);
    match forward {
        None => crate::run::wait_and_exit_like(tool),
        Some(forward) => crate::forward::run(&forward, &listeners, tool),
    }
}

/// The tool's process: PID 1 of the new PID namespace. Mounts `/proc`, says the sandbox is
/// ready, waits for the order, then binds the request's directories, enters the root, sets
/// limits, drops privileges and execs.
///
/// # Safety
/// The child of the first process's fork.
unsafe fn tool_process(plan: &mut Plan, ends: &FirstEnds, order_fd: libc::c_int) -> ! {
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
    let ready = match plan.root.as_ref() {
        Some(root) => isolate::mount_proc(root).is_ok(),
        None => false,
    };
    libc::write(ends.built, [u8::from(ready)].as_ptr().cast(), 1);
    libc::close(ends.built);
    if !ready {
        libc::_exit(125);
    }
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: as this function's.
        unsafe { start_tool(plan, order_fd) }
    }));
    let (stage, err) = match outcome {
        Ok((stage, err)) => (stage, err),
        Err(_) => (STAGE_ORDER, std::io::Error::from_raw_os_error(libc::EIO)),
    };
    report(ends.status, stage, &err);
    libc::_exit(125)
}

/// The order's part of the tool's setup, then exec. Returns only on failure (stage and error).
unsafe fn start_tool(plan: &mut Plan, order_fd: libc::c_int) -> (u8, std::io::Error) {
    use std::ffi::CString;
    let invalid = || std::io::Error::from_raw_os_error(libc::EINVAL);
    let order: Order = match read_all(order_fd)
        .ok()
        .filter(|b| !b.is_empty())
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(order) => order,
        None => return (STAGE_ORDER, invalid()),
    };
    let policy = &order.policy;
    let cstring = |s: &[u8]| CString::new(s).map_err(|_| invalid());
    use std::os::unix::ffi::OsStrExt;
    let program = match cstring(order.program.as_os_str().as_bytes()) {
        Ok(p) => p,
        Err(e) => return (STAGE_ORDER, e),
    };
    let argv: Result<Vec<CString>, _> = order.argv.iter().map(|a| cstring(a.as_bytes())).collect();
    let envp: Result<Vec<CString>, _> = order
        .env
        .iter()
        .map(|(k, v)| cstring(format!("{k}={v}").as_bytes()))
        .collect();
    let (argv, envp) = match (argv, envp) {
        (Ok(a), Ok(e)) => (a, e),
        (Err(e), _) | (_, Err(e)) => return (STAGE_ORDER, e),
    };
    match crate::run::seccomp_for(policy) {
        Ok((filters, _)) => plan.seccomp = filters,
        Err(_) => return (STAGE_PRIVILEGES, invalid()),
    }
    plan.drop_caps = policy.drop_caps;
    let Some(root) = plan.root.as_mut() else {
        return (STAGE_ROOT, invalid());
    };
    let spec = RootSpec {
        program: &order.program,
        workdir: &order.workdir,
        extra: &order.extra,
        read_only: policy.read_only_root,
    };
    if root.add_request(&spec).is_err() {
        return (STAGE_ROOT, invalid());
    }
    if let Err(e) = isolate::mount_request(root).and_then(|()| isolate::enter_root(root)) {
        return (STAGE_ROOT, e);
    }
    for (resource, value) in crate::run::limits_of(policy) {
        if let Some(v) = value {
            if let Err(e) = crate::run::set_limit(resource, v) {
                return (STAGE_LIMITS, e);
            }
        }
    }
    if let Err(e) = crate::run::set_limit(libc::RLIMIT_CORE, 0) {
        return (STAGE_LIMITS, e);
    }
    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
        return (STAGE_PRIVILEGES, std::io::Error::last_os_error());
    }
    if let Err(e) = isolate::drop_privileges(plan) {
        return (STAGE_PRIVILEGES, e);
    }
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    libc::execve(program.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr());
    (STAGE_EXEC, std::io::Error::last_os_error())
}
