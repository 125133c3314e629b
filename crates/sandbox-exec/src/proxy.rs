//! The egress proxy: an HTTP proxy that only connects to allow-listed `host:port`s.
//!
//! It understands `CONNECT host:port` (HTTPS and any TCP) and absolute-URI HTTP requests
//! (`GET http://host:port/path`). Anything else, and any destination not on the list, gets
//! `403 Forbidden` and is recorded.
//!
//! With namespaces the tool lives in a private network namespace with nothing but loopback, so
//! the proxy listens on a Unix socket instead (reachable through the filesystem, not the
//! network) and a forwarder inside the namespace relays to it: the proxy is the only way out.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Where the proxy listens.
#[derive(Debug)]
enum Endpoint {
    Tcp(SocketAddr),
    /// The socket path, and a handle on the listener to wake its accept loop on drop even when
    /// the path is already gone.
    Unix(PathBuf, UnixListener),
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct EgressProxy {
    endpoint: Endpoint,
    stop: Arc<AtomicBool>,
    denied: Arc<Mutex<Vec<String>>>,
    accept: Option<JoinHandle<()>>,
}

/// A client connection the handler can split into two directions.
trait Duplex: Read + Write + Send + Sized + 'static {
    fn duplicate(&self) -> std::io::Result<Self>;
    fn close_write(&self);
    fn read_timeout(&self, t: Option<Duration>) -> std::io::Result<()>;
}

impl Duplex for TcpStream {
    fn duplicate(&self) -> std::io::Result<Self> {
        self.try_clone()
    }
    fn close_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
    fn read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(t)
    }
}

impl Duplex for UnixStream {
    fn duplicate(&self) -> std::io::Result<Self> {
        self.try_clone()
    }
    fn close_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
    fn read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(t)
    }
}

fn normalise(entry: &str) -> Option<(String, u16)> {
    let (host, port) = entry.trim().rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host
        .trim_matches(|c| c == '[' || c == ']')
        .to_ascii_lowercase();
    (!host.is_empty()).then_some((host, port))
}

impl EgressProxy {
    /// Starts a proxy on 127.0.0.1:0 allowing exactly `allow` (`host:port` entries).
    pub fn start(allow: &[String]) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        Ok(Self::serve(
            Endpoint::Tcp(addr),
            allow,
            move |stop, handler| {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    handler(Box::new(move |allow, denied| {
                        let _ = handle(conn, allow, denied);
                    }));
                }
            },
        ))
    }

    /// Starts a proxy listening on the Unix socket `path` (created here; its directory must
    /// exist), allowing exactly `allow`.
    pub fn start_unix(path: &Path, allow: &[String]) -> std::io::Result<Self> {
        let listener = UnixListener::bind(path)?;
        let waker = listener.try_clone()?;
        Ok(Self::serve(
            Endpoint::Unix(path.to_path_buf(), waker),
            allow,
            move |stop, handler| {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    handler(Box::new(move |allow, denied| {
                        let _ = handle(conn, allow, denied);
                    }));
                }
            },
        ))
    }

    #[allow(clippy::type_complexity)]
    fn serve(
        endpoint: Endpoint,
        allow: &[String],
        accept_loop: impl FnOnce(
                Arc<AtomicBool>,
                &dyn Fn(Box<dyn FnOnce(&[(String, u16)], &Mutex<Vec<String>>) + Send>),
            ) + Send
            + 'static,
    ) -> Self {
        let allow: Arc<Vec<(String, u16)>> =
            Arc::new(allow.iter().filter_map(|e| normalise(e)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let denied = Arc::new(Mutex::new(Vec::new()));
        let (stop2, denied2) = (stop.clone(), denied.clone());
        let accept = std::thread::spawn(move || {
            let spawn_handler =
                |job: Box<dyn FnOnce(&[(String, u16)], &Mutex<Vec<String>>) + Send>| {
                    let allow = allow.clone();
                    let denied = denied2.clone();
                    std::thread::spawn(move || job(&allow, &denied));
                };
            accept_loop(stop2, &spawn_handler);
        });
        Self {
            endpoint,
            stop,
            denied,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:<port>` for a TCP proxy; for a Unix one, the socket path.
    pub fn url(&self) -> String {
        match &self.endpoint {
            Endpoint::Tcp(addr) => format!("http://{addr}"),
            Endpoint::Unix(path, _) => format!("unix:{}", path.display()),
        }
    }

    /// Destinations refused so far.
    pub fn denied(&self) -> Vec<String> {
        match self.denied.lock() {
            Ok(d) => d.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        match &self.endpoint {
            Endpoint::Tcp(addr) => {
                let _ = TcpStream::connect_timeout(addr, Duration::from_millis(200));
            }
            Endpoint::Unix(_, listener) => {
                use std::os::fd::AsRawFd;
                // Shutting the listening socket down makes a blocked accept return at once.
                // SAFETY: shutdown on a descriptor we own.
                unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) };
            }
        }
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
    }
}

fn handle<S: Duplex>(
    mut client: S,
    allow: &[(String, u16)],
    denied: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    client.read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.duplicate()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        headers.push(line);
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let version = parts.next().unwrap_or("HTTP/1.1").to_owned();
    let (host, port, origin_path) = if method.eq_ignore_ascii_case("CONNECT") {
        match normalise(&target) {
            Some((h, p)) => (h, p, None),
            None => return refuse(&mut client, denied, &target),
        }
    } else if let Some(rest) = target.strip_prefix("http://") {
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let with_port = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        match normalise(&with_port) {
            Some((h, p)) => (h, p, Some(path.to_owned())),
            None => return refuse(&mut client, denied, &target),
        }
    } else {
        return refuse(&mut client, denied, &target);
    };
    if !allow.iter().any(|(h, p)| *h == host && *p == port) {
        return refuse(&mut client, denied, &format!("{host}:{port}"));
    }
    let upstream = match TcpStream::connect_timeout(
        &match (host.as_str(), port).to_socket_addr() {
            Some(a) => a,
            None => return bad_gateway(&mut client),
        },
        Duration::from_secs(10),
    ) {
        Ok(s) => s,
        Err(_) => return bad_gateway(&mut client),
    };
    let mut upstream_w = upstream.try_clone()?;
    match origin_path {
        None => client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")?,
        Some(path) => {
            // One write for the whole head, so a simple upstream reads it in one go.
            let mut head = format!("{method} {path} {version}\r\n");
            for h in &headers {
                if !h.to_ascii_lowercase().starts_with("proxy-") {
                    head.push_str(h);
                }
            }
            head.push_str("\r\n");
            upstream_w.write_all(head.as_bytes())?;
        }
    }
    // Bytes the reader buffered beyond the headers belong to the upstream.
    let buffered = reader.buffer().to_vec();
    if !buffered.is_empty() {
        upstream_w.write_all(&buffered)?;
    }
    // The tunnel lives as long as either side talks: no read timeout once it is set up.
    client.read_timeout(None)?;
    let mut client_r = client.duplicate()?;
    let mut upstream_r = upstream;
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_r, &mut upstream_w);
        let _ = upstream_w.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut upstream_r, &mut client);
    client.close_write();
    let _ = up.join();
    Ok(())
}

trait ToSocketAddr {
    fn to_socket_addr(&self) -> Option<SocketAddr>;
}

impl ToSocketAddr for (&str, u16) {
    fn to_socket_addr(&self) -> Option<SocketAddr> {
        use std::net::ToSocketAddrs;
        self.to_socket_addrs().ok()?.next()
    }
}

fn refuse<S: Duplex>(
    client: &mut S,
    denied: &Mutex<Vec<String>>,
    what: &str,
) -> std::io::Result<()> {
    if let Ok(mut d) = denied.lock() {
        if d.len() < 100 {
            d.push(what.to_owned());
        }
    }
    client
        .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    let mut sink = [0u8; 1];
    let _ = client.read(&mut sink);
    Ok(())
}

fn bad_gateway<S: Duplex>(client: &mut S) -> std::io::Result<()> {
    client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}
