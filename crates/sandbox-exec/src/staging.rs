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

/// The directories a run makes, each named `<kind><pid>-<random>` after the process that made
/// it, so that whoever reaps a helper that was killed can find what it left ([`remove_left_by`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scratch {
    /// The tool's working directory, on the temporary filesystem.
    Work,
    /// The new root's staging directory.
    Root,
    Creds,
    Egress,
}

impl Scratch {
    const ALL: [Self; 4] = [Self::Work, Self::Root, Self::Creds, Self::Egress];

    fn kind(self) -> &'static str {
        match self {
            Self::Work => "sandbox-exec-",
            Self::Root => "sandbox-root-",
            Self::Creds => "sandbox-creds-",
            Self::Egress => "sandbox-egress-",
        }
    }

    /// Where directories of this kind go: the tool's working directory on the temporary
    /// filesystem (tools write caches and files into it), the sandbox's own small files on
    /// [`scratch_base`].
    fn base(self) -> std::path::PathBuf {
        match (self, scratch_base()) {
            (Self::Work, _) | (_, None) => std::env::temp_dir(),
            (_, Some(shm)) => shm.to_path_buf(),
        }
    }

    /// A new private directory of this kind, named after `pid` (this process).
    pub(crate) fn make(self) -> Result<tempfile::TempDir, SandboxError> {
        let prefix = format!("{}{}-", self.kind(), std::process::id());
        tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in(self.base())
            .map_err(|e| SandboxError::Setup(format!("{} dir: {e}", self.kind())))
    }
}

/// Removes the directories process `pid` made ([`Scratch::make`]): called by the parent of a
/// helper that was killed (from outside, or by its caller's deadline) before it could remove
/// them itself, while the dead helper is not yet reaped (so `pid` is not anyone else's yet).
pub(crate) fn remove_left_by(pid: u32) {
    let mut bases: Vec<std::path::PathBuf> = Scratch::ALL.iter().map(|s| s.base()).collect();
    bases.dedup();
    let prefixes: Vec<String> = Scratch::ALL
        .iter()
        .map(|s| format!("{}{pid}-", s.kind()))
        .collect();
    for base in bases {
        let Ok(entries) = std::fs::read_dir(&base) else {
            continue;
        };
        for entry in entries.flatten() {
            let named = entry
                .file_name()
                .to_str()
                .is_some_and(|n| prefixes.iter().any(|p| n.starts_with(p.as_str())));
            if named {
                // Gone already or not ours to remove: nothing more to do either way.
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// `/dev/shm` when it is a tmpfs this process may write to (checked once): where the sandbox's
/// own small directories go (the new root's mount point, the credentials copies, the egress
/// socket). Why: a run makes and removes them at the rate of calls, and on a disk filesystem
/// (ext4 here) that was a quarter of a helper's CPU time (inode allocation scanning past
/// recently deleted inodes, block frees); on a tmpfs it is memory only.
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
    let temp = Scratch::Work.make()?;
    if root_parent {
        std::os::unix::fs::chown(temp.path(), Some(uid), Some(gid))
            .map_err(|e| SandboxError::Setup(format!("chown {}: {e}", temp.path().display())))?;
    }
    Ok(temp)
}

/// The new root's staging directory: `root/`, the tmpfs mount point (the generated `/etc` files
/// are written into the tmpfs; see `isolate.rs`).
pub(crate) fn root_staging() -> Result<tempfile::TempDir, SandboxError> {
    let staging = Scratch::Root.make()?;
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
            creds: Scratch::Creds.make()?,
            egress: Scratch::Egress.make()?,
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
