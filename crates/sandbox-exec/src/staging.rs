//! The directories an isolated run needs — its private working directory, the credentials and
//! egress directories, and the new root's staging directory —
//! made by a warm helper while it waits for its request.
//!
//! Why: creating them (a handful of directories and files on the host's disk, one `chown`) was
//! about 0.7 ms of every call, none of it depending on the request except the tool's uid/gid,
//! which the staging assumes to be the default (65534) and a run checks. A run with other ids,
//! or with its own working directory, makes what it needs as before. The staged directories are
//! this helper's one run's: nothing is shared between calls.
//!
//! With the directories in place, the helper also builds the sandbox itself ahead (`ahead.rs`):
//! the root's staging directory then belongs to that sandbox.

use std::sync::Mutex;

use crate::SandboxError;

/// What was made ahead.
pub(crate) struct Staged {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    /// The private working directory (owned by `uid` when the helper runs as root).
    pub workdir: tempfile::TempDir,
    pub creds: tempfile::TempDir,
    pub egress: tempfile::TempDir,
    /// Holds `root/`; `None` when the
    /// sandbox built ahead holds it.
    pub root: Option<tempfile::TempDir>,
    /// The sandbox built ahead for `uid`/`gid`, when building it worked.
    pub ahead: Option<crate::ahead::Ahead>,
}

static STAGED: Mutex<Option<Staged>> = Mutex::new(None);

/// A private directory on the host's temporary filesystem (the tool's working directory lives
/// there: tools write caches and files into it).
fn dir(prefix: &str) -> Result<tempfile::TempDir, SandboxError> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| SandboxError::Setup(format!("{prefix} dir: {e}")))
}

/// A private directory for the sandbox's own small files (the new root's mount point, the
/// credentials copies, the egress socket): on `/dev/shm` when it is a writable tmpfs, else like
/// [`dir`]. Why: a run makes and removes these at the rate of calls, and on a disk filesystem
/// (ext4 here) that was a quarter of a helper's CPU time (inode allocation scanning past
/// recently deleted inodes, block frees); on a tmpfs it is memory only.
pub(crate) fn scratch_dir(prefix: &str) -> Result<tempfile::TempDir, SandboxError> {
    match scratch_base() {
        Some(base) => tempfile::Builder::new().prefix(prefix).tempdir_in(base),
        None => tempfile::Builder::new().prefix(prefix).tempdir(),
    }
    .map_err(|e| SandboxError::Setup(format!("{prefix} dir: {e}")))
}

/// `/dev/shm` when it is a tmpfs this process may write to (checked once).
fn scratch_base() -> Option<&'static std::path::Path> {
    static BASE: std::sync::OnceLock<Option<&'static std::path::Path>> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        // SAFETY: statfs and access fill/read plain values from a valid C string.
        let usable = unsafe {
            let mut st: libc::statfs = std::mem::zeroed();
            libc::statfs(c"/dev/shm".as_ptr(), &mut st) == 0
                && st.f_type == libc::TMPFS_MAGIC
                && libc::access(c"/dev/shm".as_ptr(), libc::W_OK | libc::X_OK) == 0
        };
        usable.then_some(shm)
    })
}

/// A private working directory for `uid`/`gid` (handed over when the caller is root).
pub(crate) fn workdir(
    uid: libc::uid_t,
    gid: libc::gid_t,
    root_parent: bool,
) -> Result<tempfile::TempDir, SandboxError> {
    let temp = dir("sandbox-exec-")?;
    if root_parent {
        std::os::unix::fs::chown(temp.path(), Some(uid), Some(gid))
            .map_err(|e| SandboxError::Setup(format!("chown {}: {e}", temp.path().display())))?;
    }
    Ok(temp)
}

/// The new root's staging directory: `root/`, the tmpfs mount point (the generated `/etc` files
/// are written into the tmpfs; see `isolate.rs`).
pub(crate) fn root_staging() -> Result<tempfile::TempDir, SandboxError> {
    let staging = scratch_dir("sandbox-root-")?;
    std::fs::create_dir(staging.path().join("root"))
        .map_err(|e| SandboxError::Setup(format!("new root: {e}")))?;
    Ok(staging)
}

/// Makes the directories of one isolated run for the default uid/gid, ahead of its request,
/// and (with `build`) the sandbox on them. Failures are not errors here: the run then makes
/// what it needs itself and reports what fails.
pub(crate) fn stage_ahead(build: bool) {
    let (uid, gid) = (65534, 65534);
    // SAFETY: plain getter.
    let root_parent = unsafe { libc::geteuid() } == 0;
    let made = (|| {
        let root = root_staging()?;
        let (root, ahead) = if build {
            match crate::ahead::Ahead::build(uid, gid, root) {
                Ok(ahead) => (None, Some(ahead)),
                Err(_) => (None, None),
            }
        } else {
            (Some(root), None)
        };
        Ok::<_, SandboxError>(Staged {
            uid,
            gid,
            workdir: workdir(uid, gid, root_parent)?,
            creds: scratch_dir("sandbox-creds-")?,
            egress: scratch_dir("sandbox-egress-")?,
            root,
            ahead,
        })
    })();
    if let Ok(staged) = made {
        *STAGED.lock().unwrap_or_else(|p| p.into_inner()) = Some(staged);
    }
}

/// The staged directories, when they were made for `uid`/`gid` (taken: one run uses them).
pub(crate) fn take(uid: libc::uid_t, gid: libc::gid_t) -> Option<Staged> {
    let mut slot = STAGED.lock().unwrap_or_else(|p| p.into_inner());
    match slot.take() {
        Some(s) if s.uid == uid && s.gid == gid => Some(s),
        _ => None,
    }
}

/// Drops whatever is still staged: a helper that got no request (its caller went away) kills
/// the sandbox it built and removes the directories before it exits, rather than leaving them
/// (statics are not dropped at exit).
pub(crate) fn discard() {
    let staged = STAGED.lock().unwrap_or_else(|p| p.into_inner()).take();
    drop(staged);
}
