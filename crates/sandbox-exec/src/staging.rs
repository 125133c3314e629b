//! The directories an isolated run needs — its private working directory, the credentials and
//! egress directories, and the new root's staging directory with the generated `/etc` files —
//! made by a warm helper while it waits for its request.
//!
//! Why: creating them (a handful of directories and files on the host's disk, one `chown`) was
//! about 0.7 ms of every call, none of it depending on the request except the tool's uid/gid,
//! which the staging assumes to be the default (65534) and a run checks. A run with other ids,
//! or with its own working directory, makes what it needs as before. The staged directories are
//! this helper's one run's: nothing is shared between calls.

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
    /// Holds `root/` and `etc/` with the generated files for `uid`/`gid`.
    pub root: tempfile::TempDir,
}

static STAGED: Mutex<Option<Staged>> = Mutex::new(None);

fn dir(prefix: &str) -> Result<tempfile::TempDir, SandboxError> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| SandboxError::Setup(format!("{prefix} dir: {e}")))
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

/// The new root's staging directory: `root/` (the tmpfs mount point) and `etc/` with the
/// generated files for `uid`/`gid`.
pub(crate) fn root_staging(
    uid: libc::uid_t,
    gid: libc::gid_t,
) -> Result<tempfile::TempDir, SandboxError> {
    let staging = dir("sandbox-root-")?;
    let setup = |what: &str, e: std::io::Error| SandboxError::Setup(format!("{what}: {e}"));
    std::fs::create_dir(staging.path().join("root")).map_err(|e| setup("new root", e))?;
    let etc = staging.path().join("etc");
    std::fs::create_dir(&etc).map_err(|e| setup("etc", e))?;
    for (name, content) in crate::isolate::etc_files(uid, gid) {
        std::fs::write(etc.join(name), content).map_err(|e| setup(name, e))?;
    }
    Ok(staging)
}

/// Makes the directories of one isolated run for the default uid/gid, ahead of its request.
/// Failures are not errors here: the run then makes them itself and reports what fails.
pub(crate) fn stage_ahead() {
    let (uid, gid) = (65534, 65534);
    // SAFETY: plain getter.
    let root_parent = unsafe { libc::geteuid() } == 0;
    let made = (|| {
        Ok::<_, SandboxError>(Staged {
            uid,
            gid,
            workdir: workdir(uid, gid, root_parent)?,
            creds: dir("sandbox-creds-")?,
            egress: dir("sandbox-egress-")?,
            root: root_staging(uid, gid)?,
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
