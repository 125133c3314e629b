//! Isolation of one run: user, mount, PID, network, IPC and UTS namespaces; a minimal root
//! (`pivot_root` into a tmpfs holding read-only binds of what the tool needs, generated
//! `/etc` files, a fresh `/proc`, private `/tmp`); an unprivileged mapped uid; the capability
//! bounding set emptied; a seccomp filter.
//!
//! Why this shape: the tool runs with the router's credentials and must not be able to read the
//! router's own config (JWT secret, DSN), `/etc/shadow` or other processes' command lines, write
//! anywhere but its working directory, or open a socket to Postgres or the gateway. A network
//! namespace is therefore always private; the only way out is the egress proxy (see
//! `forward.rs`).
//!
//! Everything the child needs is prepared here in the parent ([`Plan`]): paths as C strings,
//! the generated files' contents, the seccomp program compiled. Between `fork` and `exec` only
//! async-signal-safe system calls run (no allocation, no locks), because the caller may fork
//! from a multi-threaded process. (A sandbox built ahead, `ahead.rs`, runs the same steps in
//! processes forked from a single-threaded helper.)

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::SandboxError;

/// Namespaces every isolated run gets.
pub(crate) const NS_FLAGS: libc::c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS;

/// A bind mount into the new root.
pub(crate) struct Bind {
    src: CString,
    dst: CString,
    read_only: bool,
    /// Flags the source mount carries that a read-only remount inside a user namespace must
    /// keep (the kernel refuses to drop locked `nosuid`/`nodev`/`noexec`).
    locked: libc::c_ulong,
}

/// Mount points to make under the new root, and what to mount on them.
#[derive(Default)]
pub(crate) struct MountSet {
    dirs: Vec<CString>,
    /// Files written into the new root's tmpfs (the generated `/etc` files): no mount needed,
    /// read-only with the root.
    written: Vec<(CString, Vec<u8>)>,
    files: Vec<CString>,
    symlinks: Vec<(CString, CString)>,
    binds: Vec<Bind>,
}

/// The new root, prepared in the parent: a fixed part every run gets the same way (system
/// directories, generated `/etc`, devices, private `/tmp`) and the part a request adds (the
/// program's directory outside the system ones, extra mounts, the working directory). A sandbox
/// built ahead mounts the fixed part before its request arrives (see `ahead.rs`).
pub(crate) struct RootPlan {
    /// Holds `root/` (the tmpfs mount point) and the generated `etc/` files; removed with the
    /// plan.
    _staging: tempfile::TempDir,
    newroot_path: PathBuf,
    newroot: CString,
    tmp: CString,
    proc_dir: CString,
    fixed: MountSet,
    /// Inside paths the fixed binds cover: a program under one needs no bind of its own.
    covered: Vec<PathBuf>,
    request: MountSet,
    read_only: bool,
    /// `.` relative to the new root after `pivot_root`, then the working directory.
    workdir: CString,
}

/// Paths of a [`MountSet`] while it is being planned.
#[derive(Default)]
struct Layout {
    dirs: Vec<PathBuf>,
    written: Vec<(PathBuf, Vec<u8>)>,
    files: Vec<PathBuf>,
    symlinks: Vec<(PathBuf, PathBuf)>,
    binds: Vec<(PathBuf, PathBuf, bool)>,
}

impl Layout {
    /// `inside` and each of its parents, as directories to make (once each, parents first).
    fn add_dir(&mut self, inside: &Path) {
        let mut acc = PathBuf::from("/");
        for comp in inside.components().skip(1) {
            acc.push(comp);
            if !self.dirs.contains(&acc) {
                self.dirs.push(acc.clone());
            }
        }
    }

    fn into_set(self, newroot: &Path) -> Result<MountSet, SandboxError> {
        let mut binds = Vec::with_capacity(self.binds.len());
        for (host, inside, rw) in &self.binds {
            binds.push(Bind {
                src: cstr(host)?,
                dst: cstr(&under(newroot, inside))?,
                read_only: !rw,
                locked: locked_flags(host),
            });
        }
        let to_c = |list: &[PathBuf]| -> Result<Vec<CString>, SandboxError> {
            list.iter().map(|p| cstr(&under(newroot, p))).collect()
        };
        Ok(MountSet {
            dirs: to_c(&self.dirs)?,
            written: self
                .written
                .into_iter()
                .map(|(inside, content)| Ok((cstr(&under(newroot, &inside))?, content)))
                .collect::<Result<_, SandboxError>>()?,
            files: to_c(&self.files)?,
            symlinks: self
                .symlinks
                .iter()
                .map(|(target, link)| Ok((cstr(target)?, cstr(&under(newroot, link))?)))
                .collect::<Result<_, SandboxError>>()?,
            binds,
        })
    }
}

/// Everything the child does, prepared in the parent.
pub(crate) struct Plan {
    pub root: Option<RootPlan>,
    /// Uid/gid the tool runs as inside its user namespace.
    pub inside_uid: libc::uid_t,
    pub inside_gid: libc::gid_t,
    /// `<inside> <outside> 1`, written by the child itself when the parent is not root.
    self_uid_map: Option<Vec<u8>>,
    self_gid_map: Option<Vec<u8>>,
    /// Filters applied in order (all of them decide every call).
    pub seccomp: Vec<seccompiler::BpfProgram>,
    pub drop_caps: bool,
    /// Pipes of the parent-assisted uid mapping (root parents): the child writes its pid to
    /// `notify`, the parent maps it and answers on `proceed`.
    pub sync: Option<(libc::c_int, libc::c_int)>,
}

/// Generated `/etc` files: enough for tools that look up their user or `localhost`.
pub(crate) fn etc_files(uid: libc::uid_t, gid: libc::gid_t) -> [(&'static str, String); 5] {
    [
        (
            "passwd",
            format!("root:x:0:0:root:/:/usr/sbin/nologin\nsandbox:x:{uid}:{gid}:sandbox:/tmp:/usr/sbin/nologin\n"),
        ),
        ("group", format!("root:x:0:\nsandbox:x:{gid}:\n")),
        (
            "hosts",
            "127.0.0.1 localhost\n::1 localhost ip6-localhost\n".to_owned(),
        ),
        (
            "nsswitch.conf",
            "passwd: files\ngroup: files\nhosts: files dns\n".to_owned(),
        ),
        // No resolver: names are resolved by the egress proxy outside the namespace.
        ("resolv.conf", String::new()),
    ]
}

fn cstr(p: &Path) -> Result<CString, SandboxError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| SandboxError::Setup(format!("path with NUL: {}", p.display())))
}

/// `newroot` joined with an absolute inside path.
fn under(newroot: &Path, inside: &Path) -> PathBuf {
    newroot.join(inside.strip_prefix("/").unwrap_or(inside))
}

/// Flags of the mount holding `path` that a remount must keep.
fn locked_flags(path: &Path) -> libc::c_ulong {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return 0;
    };
    // SAFETY: statvfs fills a zeroed struct from a valid C string path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    let mut flags = 0;
    if st.f_flag & libc::ST_NOSUID != 0 {
        flags |= libc::MS_NOSUID;
    }
    if st.f_flag & libc::ST_NODEV != 0 {
        flags |= libc::MS_NODEV;
    }
    if st.f_flag & libc::ST_NOEXEC != 0 {
        flags |= libc::MS_NOEXEC;
    }
    flags
}

/// One extra mount from the policy: `HOST`, `HOST:INSIDE` or `HOST:INSIDE:rw`.
pub(crate) fn parse_mount(spec: &str) -> Result<(PathBuf, PathBuf, bool), SandboxError> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, inside, rw) = match parts.as_slice() {
        [h] => (*h, *h, false),
        [h, i] => (*h, *i, false),
        [h, i, "rw"] => (*h, *i, true),
        [h, i, "ro"] => (*h, *i, false),
        _ => {
            return Err(SandboxError::Setup(format!(
                "mount {spec:?}: expected HOST, HOST:INSIDE or HOST:INSIDE:rw|ro"
            )))
        }
    };
    let (host, inside) = (PathBuf::from(host), PathBuf::from(inside));
    if !host.is_absolute() || !inside.is_absolute() {
        return Err(SandboxError::Setup(format!(
            "mount {spec:?}: paths must be absolute"
        )));
    }
    if inside
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(SandboxError::Setup(format!("mount {spec:?}: no .. inside")));
    }
    Ok((host, inside, rw))
}

/// What the tool needs to see, besides the extra mounts.
pub(crate) struct RootSpec<'a> {
    pub program: &'a Path,
    pub workdir: &'a Path,
    pub extra: &'a [(PathBuf, PathBuf, bool)],
    pub read_only: bool,
}

/// System directories bound read-only (when they exist): programs, libraries, certificates,
/// the alternatives symlinks Debian programs go through. Nothing under them is secret; the
/// rest of `/etc` is not bound.
const SYSTEM_DIRS: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/alternatives",
];

/// Device nodes the tool may use.
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

impl RootPlan {
    /// The whole root of one run: [`RootPlan::fixed`] plus [`RootPlan::add_request`].
    /// `staging`: the staging directory made ahead ([`crate::staging::root_staging`]), or
    /// `None` to make it now.
    pub(crate) fn prepare(
        spec: &RootSpec<'_>,
        uid: libc::uid_t,
        gid: libc::gid_t,
        staging: Option<tempfile::TempDir>,
    ) -> Result<Self, SandboxError> {
        let mut root = Self::fixed(uid, gid, staging)?;
        root.add_request(spec)?;
        Ok(root)
    }

    /// The part of the root that does not depend on the request: system directories, the
    /// generated `/etc` files for `uid`/`gid`, devices, `/dev/fd`, the mount points of `/proc`,
    /// `/tmp` and `/run`.
    pub(crate) fn fixed(
        uid: libc::uid_t,
        gid: libc::gid_t,
        staging: Option<tempfile::TempDir>,
    ) -> Result<Self, SandboxError> {
        let staging = match staging {
            Some(staged) => staged,
            None => crate::staging::root_staging()?,
        };
        let setup = |what: &str, e: io::Error| SandboxError::Setup(format!("{what}: {e}"));
        let newroot = staging.path().join("root");
        let mut layout = Layout::default();
        for d in ["/etc", "/dev", "/proc", "/tmp", "/run"] {
            layout.add_dir(Path::new(d));
        }
        for d in SYSTEM_DIRS {
            let p = Path::new(d);
            match std::fs::symlink_metadata(p) {
                Ok(m) if m.file_type().is_symlink() => {
                    let target = std::fs::read_link(p).map_err(|e| setup(d, e))?;
                    if let Some(parent) = p.parent() {
                        layout.add_dir(parent);
                    }
                    layout.symlinks.push((target, p.to_path_buf()));
                }
                Ok(m) if m.is_dir() => {
                    layout.add_dir(p);
                    layout.binds.push((p.to_path_buf(), p.to_path_buf(), false));
                }
                _ => {}
            }
        }
        for (name, content) in etc_files(uid, gid) {
            layout
                .written
                .push((Path::new("/etc").join(name), content.into_bytes()));
        }
        for dev in DEVICES {
            if Path::new(dev).exists() {
                layout.files.push(PathBuf::from(dev));
                layout
                    .binds
                    .push((PathBuf::from(dev), PathBuf::from(dev), false));
            }
        }
        layout
            .symlinks
            .push((PathBuf::from("/proc/self/fd"), PathBuf::from("/dev/fd")));
        let covered = layout
            .binds
            .iter()
            .map(|(_, inside, _)| inside.clone())
            .collect();
        Ok(Self {
            newroot: cstr(&newroot)?,
            tmp: cstr(&newroot.join("tmp"))?,
            proc_dir: cstr(&newroot.join("proc"))?,
            fixed: layout.into_set(&newroot)?,
            covered,
            request: MountSet::default(),
            read_only: true,
            workdir: cstr(Path::new("/"))?,
            newroot_path: newroot,
            _staging: staging,
        })
    }

    /// Adds what `spec` needs beyond the fixed part: the program's directory (and a script's
    /// interpreter's) when no system directory covers it, the extra mounts, the working
    /// directory (writable, at the same path).
    pub(crate) fn add_request(&mut self, spec: &RootSpec<'_>) -> Result<(), SandboxError> {
        let setup = |what: &str, e: io::Error| SandboxError::Setup(format!("{what}: {e}"));
        let mut layout = Layout::default();
        let mut wanted: Vec<PathBuf> = Vec::new();
        if let Ok(program) = std::fs::canonicalize(spec.program) {
            if let Some(parent) = program.parent() {
                wanted.push(parent.to_path_buf());
            }
            if let Some(interp) = shebang_interpreter(&program) {
                if let Some(parent) = interp.parent() {
                    wanted.push(parent.to_path_buf());
                }
            }
        }
        for dir in wanted {
            let covered = self.covered.iter().any(|inside| dir.starts_with(inside))
                || layout
                    .binds
                    .iter()
                    .any(|(_, inside, _)| dir.starts_with(inside));
            if !covered && dir.is_dir() {
                layout.add_dir(&dir);
                layout.binds.push((dir.clone(), dir, false));
            }
        }
        for (host, inside, rw) in spec.extra {
            let meta = std::fs::metadata(host)
                .map_err(|e| setup(&format!("mount {}", host.display()), e))?;
            if meta.is_dir() {
                layout.add_dir(inside);
            } else {
                if let Some(parent) = inside.parent() {
                    layout.add_dir(parent);
                }
                layout.files.push(inside.clone());
            }
            layout.binds.push((host.clone(), inside.clone(), *rw));
        }
        layout.add_dir(spec.workdir);
        layout
            .binds
            .push((spec.workdir.to_path_buf(), spec.workdir.to_path_buf(), true));
        self.request = layout.into_set(&self.newroot_path)?;
        self.read_only = spec.read_only;
        self.workdir = cstr(spec.workdir)?;
        Ok(())
    }
}

/// The interpreter of a `#!` script, if `program` is one.
fn shebang_interpreter(program: &Path) -> Option<PathBuf> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(program).ok()?.read(&mut head).ok()?;
    let text = std::str::from_utf8(head.get(..n)?).ok()?;
    let line = text.strip_prefix("#!")?.lines().next()?;
    let interp = line.split_whitespace().next()?;
    std::fs::canonicalize(interp).ok()
}

impl Plan {
    pub(crate) fn new(
        root: Option<RootPlan>,
        inside_uid: libc::uid_t,
        inside_gid: libc::gid_t,
        seccomp: Vec<seccompiler::BpfProgram>,
        drop_caps: bool,
    ) -> Self {
        // SAFETY: plain getters.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let root_parent = euid == 0;
        Self {
            root,
            inside_uid,
            inside_gid,
            self_uid_map: (!root_parent).then(|| format!("{inside_uid} {euid} 1\n").into_bytes()),
            self_gid_map: (!root_parent).then(|| format!("{inside_gid} {egid} 1\n").into_bytes()),
            seccomp,
            drop_caps,
            sync: None,
        }
    }

    /// Whether the parent must write the child's uid/gid maps (it runs as root, and maps the
    /// tool to an unprivileged host uid, which only a privileged writer may do).
    pub(crate) fn parent_maps(&self) -> bool {
        self.self_uid_map.is_none()
    }
}

/// The parent's half of the uid mapping (root parents): waits for the child's pid on `notify`,
/// maps root and the tool's uid/gid to the same host ids, answers on `proceed`. Runs on a helper thread
/// while `spawn` blocks.
pub(crate) fn map_child(
    notify: std::fs::File,
    mut proceed: std::fs::File,
    uid: libc::uid_t,
    gid: libc::gid_t,
) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut notify = notify;
    let mut pid = [0u8; 4];
    notify
        .read_exact(&mut pid)
        .map_err(|e| format!("child did not report its pid: {e}"))?;
    let pid = i32::from_ne_bytes(pid);
    let write = |file: &str, content: String| {
        std::fs::write(format!("/proc/{pid}/{file}"), content)
            .map_err(|e| format!("/proc/{pid}/{file}: {e}"))
    };
    // Root stays root while the sandbox sets itself up (files it creates on its own tmpfs need a
    // mapped owner); the tool then switches to the unprivileged pair for good.
    let result = write("setgroups", "deny".into())
        .and_then(|()| write("gid_map", format!("0 0 1\n{gid} {gid} 1\n")))
        .and_then(|()| write("uid_map", format!("0 0 1\n{uid} {uid} 1\n")));
    let answer = if result.is_ok() { [1u8] } else { [0u8] };
    let _ = proceed.write_all(&answer);
    result
}

// ---- child side: async-signal-safe only --------------------------------------------------

fn last_err() -> io::Error {
    io::Error::last_os_error()
}

unsafe fn write_file(path: &std::ffi::CStr, content: &[u8]) -> io::Result<()> {
    write_open(path, libc::O_WRONLY | libc::O_CLOEXEC, content)
}

/// Opens `path` with `flags` (mode 0644 when created) and writes `content` to it whole.
unsafe fn write_open(path: &std::ffi::CStr, flags: libc::c_int, content: &[u8]) -> io::Result<()> {
    let fd = libc::open(path.as_ptr(), flags, 0o644);
    if fd < 0 {
        return Err(last_err());
    }
    let n = libc::write(fd, content.as_ptr().cast(), content.len());
    let err = last_err();
    libc::close(fd);
    if n != content.len() as isize {
        return Err(err);
    }
    Ok(())
}

unsafe fn mount(
    src: *const libc::c_char,
    dst: *const libc::c_char,
    fstype: *const libc::c_char,
    flags: libc::c_ulong,
    data: *const libc::c_char,
) -> io::Result<()> {
    if libc::mount(src, dst, fstype, flags, data.cast()) != 0 {
        return Err(last_err());
    }
    Ok(())
}

/// In the first child, before it forks the tool: namespaces, uid map, the mount tree of the new
/// root (everything but `/proc` and the pivot, which the tool's own process does).
///
/// # Safety
/// Between fork and exec; `plan` was built in the parent.
pub(crate) unsafe fn setup_child(plan: &Plan) -> io::Result<()> {
    unshare_and_map(plan)?;
    if let Some(root) = &plan.root {
        mount_fixed(root)?;
        mount_request(root)?;
    }
    Ok(())
}

/// New namespaces for this process, and its uid/gid map: written by itself (unprivileged
/// parents) or by the parent, which this process hands its pid over `plan.sync` and waits for.
///
/// # Safety
/// Between fork and exec; `plan` was built in the parent.
pub(crate) unsafe fn unshare_and_map(plan: &Plan) -> io::Result<()> {
    if libc::unshare(NS_FLAGS) != 0 {
        return Err(last_err());
    }
    match (&plan.self_uid_map, &plan.self_gid_map, plan.sync) {
        (Some(uid_map), Some(gid_map), _) => {
            write_file(c"/proc/self/setgroups", b"deny")?;
            write_file(c"/proc/self/gid_map", gid_map)?;
            write_file(c"/proc/self/uid_map", uid_map)?;
        }
        (_, _, Some((notify, proceed))) => {
            let pid = libc::getpid().to_ne_bytes();
            if libc::write(notify, pid.as_ptr().cast(), 4) != 4 {
                return Err(last_err());
            }
            let mut ok = [0u8; 1];
            if libc::read(proceed, ok.as_mut_ptr().cast(), 1) != 1 || ok[0] != 1 {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
        }
        _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
    }
    Ok(())
}

/// The new root's tmpfs with the fixed part of the tree (and the private `/tmp`), in a mount
/// namespace made private first so nothing propagates back to the host.
///
/// # Safety
/// Between fork and exec, in the new mount namespace.
pub(crate) unsafe fn mount_fixed(root: &RootPlan) -> io::Result<()> {
    mount(
        std::ptr::null(),
        c"/".as_ptr(),
        std::ptr::null(),
        libc::MS_REC | libc::MS_PRIVATE,
        std::ptr::null(),
    )?;
    mount(
        c"tmpfs".as_ptr(),
        root.newroot.as_ptr(),
        c"tmpfs".as_ptr(),
        libc::MS_NOSUID | libc::MS_NODEV,
        c"mode=0755,size=16m".as_ptr(),
    )?;
    mount_set(&root.fixed, Some(&root.tmp))
}

/// The request's part of the tree (see [`RootPlan::add_request`]), on top of the fixed part.
///
/// # Safety
/// Between fork and exec, after [`mount_fixed`].
pub(crate) unsafe fn mount_request(root: &RootPlan) -> io::Result<()> {
    mount_set(&root.request, None)
}

/// Makes every mount point of `set` (mounting the private `/tmp` when its directory is made,
/// so directories under it come after it), then the symlinks and binds.
unsafe fn mount_set(set: &MountSet, private_tmp: Option<&std::ffi::CStr>) -> io::Result<()> {
    for dir in &set.dirs {
        if libc::mkdir(dir.as_ptr(), 0o755) != 0 && *libc::__errno_location() != libc::EEXIST {
            return Err(last_err());
        }
        if let Some(tmp) = private_tmp.filter(|tmp| dir.as_bytes() == tmp.to_bytes()) {
            mount(
                c"tmpfs".as_ptr(),
                tmp.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                c"mode=1777,size=64m".as_ptr(),
            )?;
        }
    }
    for (file, content) in &set.written {
        write_open(
            file,
            libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC | libc::O_CLOEXEC,
            content,
        )?;
    }
    for file in &set.files {
        let fd = libc::open(
            file.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
            0o644,
        );
        if fd < 0 {
            return Err(last_err());
        }
        libc::close(fd);
    }
    for (target, link) in &set.symlinks {
        if libc::symlink(target.as_ptr(), link.as_ptr()) != 0 {
            return Err(last_err());
        }
    }
    for bind in &set.binds {
        mount(
            bind.src.as_ptr(),
            bind.dst.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        )?;
        if bind.read_only {
            mount(
                std::ptr::null(),
                bind.dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | bind.locked,
                std::ptr::null(),
            )?;
        }
    }
    Ok(())
}

/// In the tool's own process (PID 1 of its namespace), last thing before exec: fresh `/proc`,
/// `pivot_root`, read-only root, working directory, capabilities, uid, seccomp.
///
/// # Safety
/// Between fork and exec; `plan` was built in the parent.
pub(crate) unsafe fn setup_tool(plan: &Plan) -> io::Result<()> {
    if let Some(root) = &plan.root {
        mount_proc(root)?;
        enter_root(root)?;
    }
    drop_privileges(plan)
}

/// A fresh `/proc` for the new PID namespace; mounted by a process inside it.
///
/// # Safety
/// Between fork and exec, in the new mount and PID namespaces.
pub(crate) unsafe fn mount_proc(root: &RootPlan) -> io::Result<()> {
    mount(
        c"proc".as_ptr(),
        root.proc_dir.as_ptr(),
        c"proc".as_ptr(),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        std::ptr::null(),
    )
}

/// `pivot_root` into the new root, the host's tree detached, the root made read-only when asked,
/// then into the working directory.
///
/// # Safety
/// Between fork and exec, after the whole tree is mounted.
pub(crate) unsafe fn enter_root(root: &RootPlan) -> io::Result<()> {
    if libc::chdir(root.newroot.as_ptr()) != 0 {
        return Err(last_err());
    }
    // pivot_root(".", "."): the old root ends up stacked under the new one and is
    // detached right away, so nothing of the host stays reachable.
    let dot = c".".as_ptr();
    if libc::syscall(libc::SYS_pivot_root, dot, dot) != 0 {
        return Err(last_err());
    }
    if libc::umount2(dot, libc::MNT_DETACH) != 0 {
        return Err(last_err());
    }
    if libc::chdir(c"/".as_ptr()) != 0 {
        return Err(last_err());
    }
    if root.read_only {
        mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
            std::ptr::null(),
        )?;
    }
    if libc::chdir(root.workdir.as_ptr()) != 0 {
        return Err(last_err());
    }
    Ok(())
}

/// Hostname, an empty capability bounding set, the unprivileged ids, the parent-death signal
/// (changing ids clears it), the seccomp filters.
///
/// # Safety
/// Between fork and exec.
pub(crate) unsafe fn drop_privileges(plan: &Plan) -> io::Result<()> {
    libc::sethostname(b"sandbox".as_ptr().cast(), 7);
    if plan.drop_caps {
        for cap in 0..=63 {
            // EINVAL past the kernel's last capability: ignored.
            libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
        }
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
    }
    if libc::setresgid(plan.inside_gid, plan.inside_gid, plan.inside_gid) != 0 {
        return Err(last_err());
    }
    if libc::setresuid(plan.inside_uid, plan.inside_uid, plan.inside_uid) != 0 {
        return Err(last_err());
    }
    // The tool dies with the sandbox's first process even if it left its process group (the
    // timeout's group kill would miss it): as PID 1, its death ends its whole namespace.
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
    for filter in &plan.seccomp {
        seccompiler::apply_filter(filter).map_err(|_| io::Error::from_raw_os_error(libc::EPERM))?;
    }
    Ok(())
}

/// Brings the loopback interface of the new network namespace up (it starts down).
///
/// # Safety
/// Between fork and exec.
pub(crate) unsafe fn loopback_up() -> io::Result<()> {
    let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
    if fd < 0 {
        return Err(last_err());
    }
    let mut req: libc::ifreq = std::mem::zeroed();
    for (i, b) in b"lo\0".iter().enumerate() {
        req.ifr_name[i] = *b as libc::c_char;
    }
    let r = if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) == 0 {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        libc::ioctl(fd, libc::SIOCSIFFLAGS, &req)
    } else {
        -1
    };
    let err = last_err();
    libc::close(fd);
    if r != 0 {
        return Err(err);
    }
    Ok(())
}

/// The default seccomp filter: everything a CLI needs, minus what only breaks out or reaches
/// into the kernel — mounting, namespaces (including `clone` with namespace flags; `clone3` is
/// answered ENOSYS so libc falls back to `clone`), tracing other processes, loading modules or
/// BPF, keyrings, rebooting, changing the clock.
pub(crate) fn default_filter() -> Result<Vec<seccompiler::BpfProgram>, SandboxError> {
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    };
    use std::collections::BTreeMap;
    let arch: seccompiler::TargetArch = std::env::consts::ARCH
        .try_into()
        .map_err(|_| SandboxError::Setup("seccomp: unsupported architecture".into()))?;
    let denied = [
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_acct,
        libc::SYS_quotactl,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_syslog,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_fanotify_init,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_fsopen,
        libc::SYS_fsmount,
        libc::SYS_fsconfig,
        libc::SYS_fspick,
        libc::SYS_mount_setattr,
    ];
    let err = |e: seccompiler::BackendError| SandboxError::Setup(format!("seccomp: {e}"));
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        denied.iter().map(|nr| (*nr, Vec::new())).collect();
    // `clone` with any namespace flag: one rule per flag (a syscall matches when any rule does).
    let mut clone_rules = Vec::new();
    for bit in [
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWNS,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWCGROUP,
    ] {
        let bit = bit as u64;
        clone_rules.push(
            SeccompRule::new(vec![SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(bit),
                bit,
            )
            .map_err(err)?])
            .map_err(err)?,
        );
    }
    rules.insert(libc::SYS_clone, clone_rules);
    let main: seccompiler::BpfProgram = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(err)?
    .try_into()
    .map_err(err)?;
    Ok(vec![answer_clone3_enosys(main)])
}

/// `program` with `clone3` answered ENOSYS before anything else. `clone3` cannot be inspected
/// (its flags are behind a pointer): ENOSYS makes libc fall back to `clone`, whose flags the
/// program checks. One program rather than a second filter: each filter is compiled by the
/// kernel when installed and run on every system call the tool makes. The three instructions go
/// in front, so no jump of `program` (all relative and forward) crosses them; they come before
/// its architecture check, which is sound because `clone3` has the same number on every
/// architecture the kernel serves on this host.
pub(crate) fn answer_clone3_enosys(program: seccompiler::BpfProgram) -> seccompiler::BpfProgram {
    use seccompiler::sock_filter;
    // Classic BPF opcodes (linux/filter.h): load word at absolute offset, jump if equal,
    // return constant.
    // BPF_LD | BPF_W | BPF_ABS, BPF_JMP | BPF_JEQ | BPF_K, BPF_RET | BPF_K.
    const LD_W_ABS: u16 = 0x20;
    const JMP_JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    // `seccomp_data.nr` is its first field.
    const NR_OFFSET: u32 = 0;
    let prefix = [
        sock_filter {
            code: LD_W_ABS,
            jt: 0,
            jf: 0,
            k: NR_OFFSET,
        },
        // Equal: the next instruction (the answer); else skip it.
        sock_filter {
            code: JMP_JEQ_K,
            jt: 0,
            jf: 1,
            k: libc::SYS_clone3 as u32,
        },
        sock_filter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | (libc::ENOSYS as u32 & libc::SECCOMP_RET_DATA),
        },
    ];
    prefix.into_iter().chain(program).collect()
}
