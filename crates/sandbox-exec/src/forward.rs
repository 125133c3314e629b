//! The in-namespace forwarder: the tool's private network namespace has only loopback, and this
//! loop — running in the sandbox's first process, inside that namespace — is its only way out.
//! It listens on 127.0.0.1 inside the namespace and relays every connection to the egress proxy's
//! Unix socket, which the proxy (outside, in the router) checks against the allow-list.
//!
//! Two kinds of listener: the proxy port (`HTTP(S)_PROXY` points at it; bytes are relayed as
//! they are), and one port per allow-listed loopback destination (`127.0.0.1:9090`): programs
//! such as Go's HTTP client never use a proxy for loopback, so for those the forwarder listens
//! on the same port and opens a `CONNECT` tunnel through the proxy itself.
//!
//! It runs between fork and exec in a process forked from a multi-threaded one and never execs,
//! so it uses system calls only: no allocation, fixed-size tables, a stack buffer.

use std::io;

/// Connections relayed at once; more are refused (closed) until one ends.
const MAX_CONNECTIONS: usize = 32;
/// Listeners: the proxy port plus loopback destinations.
pub(crate) const MAX_LISTENERS: usize = 8;

/// One listener inside the namespace, prepared in the parent.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct ListenerPlan {
    pub port: u16,
    /// `CONNECT host:port` preamble for loopback destinations; `None` for the proxy port.
    pub preamble: Option<Vec<u8>>,
}

/// What the forwarder needs, prepared in the parent.
pub(crate) struct ForwardPlan {
    pub listeners: Vec<ListenerPlan>,
    /// The proxy's Unix socket address as the forwarder will see it.
    pub proxy: libc::sockaddr_un,
}

impl ForwardPlan {
    /// A plan relaying to the Unix socket at `path`.
    pub(crate) fn new(path: &[u8], listeners: Vec<ListenerPlan>) -> io::Result<Self> {
        // SAFETY: sockaddr_un is plain old data.
        let mut proxy: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        proxy.sun_family = libc::AF_UNIX as libc::sa_family_t;
        if path.len() >= proxy.sun_path.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "egress socket path too long",
            ));
        }
        for (i, b) in path.iter().enumerate() {
            proxy.sun_path[i] = *b as libc::c_char;
        }
        if listeners.len() > MAX_LISTENERS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "too many loopback egress destinations",
            ));
        }
        Ok(Self { listeners, proxy })
    }
}

fn last_err() -> io::Error {
    io::Error::last_os_error()
}

/// Listens on 127.0.0.1:`port`.
///
/// # Safety
/// Between fork and exec.
unsafe fn listen_on(port: u16) -> io::Result<libc::c_int> {
    let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
    if fd < 0 {
        return Err(last_err());
    }
    let one: libc::c_int = 1;
    libc::setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_REUSEADDR,
        (&one as *const libc::c_int).cast(),
        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
    );
    let mut addr: libc::sockaddr_in = std::mem::zeroed();
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_port = port.to_be();
    addr.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
    if libc::bind(
        fd,
        (&addr as *const libc::sockaddr_in).cast(),
        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
    ) != 0
        || libc::listen(fd, 64) != 0
    {
        let err = last_err();
        libc::close(fd);
        return Err(err);
    }
    Ok(fd)
}

/// Opens the listeners; their fds go into `out` (in plan order).
///
/// # Safety
/// Between fork and exec.
pub(crate) unsafe fn open_listeners(
    plan: &ForwardPlan,
    out: &mut [libc::c_int; MAX_LISTENERS],
) -> io::Result<()> {
    for (i, l) in plan.listeners.iter().enumerate() {
        out[i] = listen_on(l.port)?;
    }
    Ok(())
}

unsafe fn write_all(fd: libc::c_int, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        let n = libc::write(fd, buf.as_ptr().cast(), buf.len());
        if n < 0 {
            if *libc::__errno_location() == libc::EINTR {
                continue;
            }
            return false;
        }
        buf = &buf[n as usize..];
    }
    true
}

/// Connects to the proxy; with a preamble, opens the tunnel and checks the `200` answer.
unsafe fn open_upstream(plan: &ForwardPlan, preamble: Option<&[u8]>) -> libc::c_int {
    let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
    if fd < 0 {
        return -1;
    }
    if libc::connect(
        fd,
        (&plan.proxy as *const libc::sockaddr_un).cast(),
        std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
    ) != 0
    {
        libc::close(fd);
        return -1;
    }
    if let Some(preamble) = preamble {
        if !write_all(fd, preamble) {
            libc::close(fd);
            return -1;
        }
        // Read the answer head byte by byte (it is short), waiting at most 15 s.
        let mut head = [0u8; 512];
        let mut len = 0;
        loop {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            if libc::poll(&mut p, 1, 15_000) <= 0 {
                libc::close(fd);
                return -1;
            }
            let n = libc::read(fd, head[len..].as_mut_ptr().cast(), 1);
            if n <= 0 {
                libc::close(fd);
                return -1;
            }
            len += 1;
            if len >= 4 && &head[len - 4..len] == b"\r\n\r\n" {
                break;
            }
            if len == head.len() {
                libc::close(fd);
                return -1;
            }
        }
        // "HTTP/1.1 200 ..."
        if len < 12 || &head[9..12] != b"200" {
            libc::close(fd);
            return -1;
        }
    }
    fd
}

#[derive(Clone, Copy)]
struct Pair {
    client: libc::c_int,
    upstream: libc::c_int,
    client_eof: bool,
    upstream_eof: bool,
}

const FREE: Pair = Pair {
    client: -1,
    upstream: -1,
    client_eof: false,
    upstream_eof: false,
};

/// Relays until `tool` exits; then exits this process with the tool's status.
///
/// # Safety
/// Between fork and exec, in the sandbox's first process; never returns.
pub(crate) unsafe fn run(
    plan: &ForwardPlan,
    listeners: &[libc::c_int; MAX_LISTENERS],
    tool: libc::pid_t,
) -> ! {
    let nl = plan.listeners.len();
    let mut pairs = [FREE; MAX_CONNECTIONS];
    let mut fds: [libc::pollfd; MAX_LISTENERS + 2 * MAX_CONNECTIONS] = std::mem::zeroed();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let mut status: libc::c_int = 0;
        if libc::waitpid(tool, &mut status, libc::WNOHANG) == tool {
            crate::run::exit_like(status);
        }
        let mut n = 0;
        for l in listeners.iter().take(nl) {
            fds[n] = libc::pollfd {
                fd: *l,
                events: libc::POLLIN,
                revents: 0,
            };
            n += 1;
        }
        for p in &pairs {
            for (fd, eof) in [(p.client, p.client_eof), (p.upstream, p.upstream_eof)] {
                fds[n] = libc::pollfd {
                    fd: if fd >= 0 && !eof { fd } else { -1 },
                    events: libc::POLLIN,
                    revents: 0,
                };
                n += 1;
            }
        }
        if libc::poll(fds.as_mut_ptr(), n as libc::nfds_t, 100) <= 0 {
            continue;
        }
        for (i, l) in listeners.iter().take(nl).enumerate() {
            if fds[i].revents & libc::POLLIN == 0 {
                continue;
            }
            let client = libc::accept4(
                *l,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            );
            if client < 0 {
                continue;
            }
            let Some(slot) = pairs.iter_mut().find(|p| p.client < 0) else {
                libc::close(client);
                continue;
            };
            let upstream = open_upstream(plan, plan.listeners[i].preamble.as_deref());
            if upstream < 0 {
                libc::close(client);
                continue;
            }
            *slot = Pair {
                client,
                upstream,
                client_eof: false,
                upstream_eof: false,
            };
        }
        for (k, pair) in pairs.iter_mut().enumerate() {
            if pair.client < 0 {
                continue;
            }
            for side in 0..2 {
                let pf = fds[nl + 2 * k + side];
                if pf.fd < 0 || pf.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
                    continue;
                }
                let (from, to) = if side == 0 {
                    (pair.client, pair.upstream)
                } else {
                    (pair.upstream, pair.client)
                };
                let got = libc::read(from, buf.as_mut_ptr().cast(), buf.len());
                if got > 0 && write_all(to, &buf[..got as usize]) {
                    continue;
                }
                // End of this direction (or an error): pass the end on.
                libc::shutdown(to, libc::SHUT_WR);
                if side == 0 {
                    pair.client_eof = true;
                } else {
                    pair.upstream_eof = true;
                }
                if got < 0 {
                    pair.client_eof = true;
                    pair.upstream_eof = true;
                }
            }
            if pair.client_eof && pair.upstream_eof {
                libc::close(pair.client);
                libc::close(pair.upstream);
                *pair = FREE;
            }
        }
    }
}
