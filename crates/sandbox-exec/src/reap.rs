//! The subreaper that stands in for a PID namespace where the host has none.
//!
//! Why: without namespaces a tool's descendants can leave its process group (`setsid`), so the
//! group kill at the deadline misses them and daemons outlive the run. Here the first process
//! of a run marks itself a child subreaper (`PR_SET_CHILD_SUBREAPER`), forks the tool, and waits.
//! Whatever the tool leaves behind is reparented to it, not to init; when the tool ends — or the
//! parent signals the deadline — it kills every child it has (listed in
//! `/proc/thread-self/children`) until none is left, then ends the way the tool ended.
//!
//! Everything here runs between `fork` and `exec` in a child of a multi-threaded process:
//! async-signal-safe system calls only, no allocation.

use std::sync::atomic::{AtomicBool, Ordering};

/// The signal the parent sends the reaper at the deadline.
pub(crate) const DEADLINE_SIGNAL: libc::c_int = libc::SIGUSR1;

/// Set by the signal handler; the reaper's own copy (it lives in the forked process).
static DEADLINE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_deadline(_: libc::c_int) {
    DEADLINE.store(true, Ordering::SeqCst);
}

/// Makes the calling process the subreaper of what it forks and installs the deadline handler
/// (without `SA_RESTART`, so a blocked `waitpid` returns to look at it).
///
/// # Safety
/// Between fork and exec: async-signal-safe calls only.
pub(crate) unsafe fn become_reaper() -> std::io::Result<()> {
    if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut action: libc::sigaction = std::mem::zeroed();
    action.sa_sigaction = on_deadline as *const () as usize;
    libc::sigemptyset(&mut action.sa_mask);
    action.sa_flags = 0;
    if libc::sigaction(DEADLINE_SIGNAL, &action, std::ptr::null_mut()) != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Waits for `tool` (reaping orphans as they end), kills it at the deadline signal, then kills
/// and reaps every remaining descendant and ends like the tool.
///
/// # Safety
/// Between fork and exec, in the process that called [`become_reaper`].
pub(crate) unsafe fn reap(tool: libc::pid_t) -> ! {
    let mut status: libc::c_int = 0;
    let tool_status = loop {
        let r = libc::waitpid(-1, &mut status, 0);
        if r == tool {
            break status;
        }
        if r > 0 {
            // An orphan of the tool ended; keep waiting for the tool.
            continue;
        }
        if *libc::__errno_location() == libc::EINTR {
            if DEADLINE.load(Ordering::SeqCst) {
                libc::kill(tool, libc::SIGKILL);
            }
            continue;
        }
        libc::_exit(125);
    };
    kill_descendants();
    crate::run::exit_like(tool_status)
}

/// Kills every child (orphans of the tool reparented here) until none is left. A killed child's
/// own children are reparented here in turn, so rounds repeat; bounded, so a process that forks
/// faster than it is killed cannot keep the reaper forever (the parent's group kill follows).
unsafe fn kill_descendants() {
    const PATH: &[u8] = b"/proc/thread-self/children\0";
    let mut buf = [0u8; 4096];
    let mut st: libc::c_int = 0;
    for _ in 0..2000 {
        let fd = libc::open(PATH.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
        let mut listed = false;
        if fd >= 0 {
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            libc::close(fd);
            let n = usize::try_from(n).unwrap_or(0).min(buf.len());
            let mut pid: libc::pid_t = 0;
            for &b in buf[..n].iter().chain(std::iter::once(&b' ')) {
                if b.is_ascii_digit() {
                    pid = pid
                        .saturating_mul(10)
                        .saturating_add(libc::pid_t::from(b - b'0'));
                } else if pid > 0 {
                    libc::kill(pid, libc::SIGKILL);
                    listed = true;
                    pid = 0;
                }
            }
        }
        // Reap whatever has ended.
        while libc::waitpid(-1, &mut st, libc::WNOHANG) > 0 {}
        if !listed {
            // Nothing listed: done once no child remains (or when children cannot be listed).
            let r = libc::waitpid(-1, &mut st, libc::WNOHANG);
            if r < 0 || fd < 0 {
                return;
            }
        }
        let pause = libc::timespec {
            tv_sec: 0,
            tv_nsec: 2_000_000,
        };
        libc::nanosleep(&pause, std::ptr::null_mut());
    }
}
