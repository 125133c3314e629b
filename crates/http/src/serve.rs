//! The HTTP server loop every Carapulse service uses instead of `axum::serve`, because
//! `axum::serve` has no header-read timeout, no idle timeout and no per-peer connection cap: a
//! client that opens thousands of sockets and sends half a request (or nothing) holds them — and
//! the process's descriptors — forever, with no token needed.
//!
//! Here each connection gets: a header-read timeout (a request head must arrive in time), an
//! idle timeout (no bytes either way for that long closes it; streams send keep-alives well
//! within it), and a cap on concurrent connections per peer address. Shutdown is graceful:
//! in-flight requests finish (up to the grace period), idle connections close at once.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A request head must be complete this long after its first byte is awaited.
    pub header_read_timeout: Duration,
    /// A connection with no bytes in either direction for this long is closed.
    pub idle_timeout: Duration,
    /// Concurrent connections one peer address may hold.
    pub max_connections_per_peer: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            max_connections_per_peer: 256,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Counts holders per key (a peer address, an actor) up to a cap; a slot is released when its
/// guard drops.
#[derive(Debug)]
pub struct Slots<K: std::hash::Hash + Eq + Clone> {
    counts: Mutex<HashMap<K, usize>>,
}

impl<K: std::hash::Hash + Eq + Clone> Default for Slots<K> {
    fn default() -> Self {
        Self {
            counts: Mutex::new(HashMap::new()),
        }
    }
}

/// One held slot of a [`Slots`].
#[derive(Debug)]
pub struct SlotGuard<K: std::hash::Hash + Eq + Clone> {
    slots: Arc<Slots<K>>,
    key: K,
}

impl<K: std::hash::Hash + Eq + Clone> Slots<K> {
    /// Takes a slot for `key`, or `None` when it already holds `max`.
    pub fn take(self: &Arc<Self>, key: K, max: usize) -> Option<SlotGuard<K>> {
        let mut counts = match self.counts.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let n = counts.entry(key.clone()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(SlotGuard {
            slots: self.clone(),
            key,
        })
    }
}

impl<K: std::hash::Hash + Eq + Clone> Drop for SlotGuard<K> {
    fn drop(&mut self) {
        let mut counts = match self.slots.counts.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(n) = counts.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// A TCP stream that records when bytes last moved, for the idle timeout.
struct Tracked {
    inner: TcpStream,
    epoch: Instant,
    last: Arc<AtomicU64>,
}

impl Tracked {
    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        poll
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves `app` on `listener` until `shutdown` completes. Handlers can extract
/// `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots: Arc<Slots<IpAddr>> = Arc::new(Slots::default());
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = slots.take(peer.ip(), limits.max_connections_per_peer) else {
            tracing::debug!(%peer, "connection refused: per-peer connection cap reached");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let last = Arc::new(AtomicU64::new(0));
        let io = TokioIo::new(Tracked {
            inner: stream,
            epoch: Instant::now(),
            last: last.clone(),
        });
        let app = app.clone();
        // A request being handled (a long tool call answers only at its end) is not idleness.
        let busy = Arc::new(AtomicUsize::new(0));
        let busy_in_service = busy.clone();
        let service = tower::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            let busy = busy_in_service.clone();
            busy.fetch_add(1, Ordering::Relaxed);
            let response = app.clone().oneshot(req);
            async move {
                let out = response.await;
                busy.fetch_sub(1, Ordering::Relaxed);
                out
            }
        });
        let conn = builder
            .serve_connection_with_upgrades(io, TowerToHyperService::new(service))
            .into_owned();
        let conn = graceful.watch(conn);
        let idle = limits.idle_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let epoch = Instant::now();
            tokio::pin!(conn);
            let mut tick = tokio::time::interval(idle / 4);
            loop {
                tokio::select! {
                    _ = &mut conn => break,
                    _ = tick.tick() => {
                        let quiet = epoch.elapsed().saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
                        if quiet >= idle && busy.load(Ordering::Relaxed) == 0 {
                            tracing::debug!(%peer, "closing idle connection");
                            break;
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!("shutdown grace period over; closing the remaining connections");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cap_per_peer_and_release_on_drop() {
        let slots: Arc<Slots<IpAddr>> = Arc::new(Slots::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let g1 = slots.take(a, 2).unwrap();
        let _g2 = slots.take(a, 2).unwrap();
        assert!(slots.take(a, 2).is_none());
        assert!(slots.take(b, 2).is_some());
        drop(g1);
        assert!(slots.take(a, 2).is_some());
    }
}

#[cfg(test)]
mod connection_tests {
    use super::*;
    use std::io::{Read, Write};

    async fn start(limits: ConnectionLimits) -> (String, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let app = Router::new().route("/", axum::routing::get(|| async { "hi" }));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, app, limits, async move {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(2),
            max_connections_per_peer: 5,
            shutdown_grace: Duration::from_secs(1),
        }
    }

    /// Blocking read on a helper thread: when the server closed the socket, and after how long.
    async fn closed_after(mut s: std::net::TcpStream, limit: Duration) -> Option<Duration> {
        tokio::task::spawn_blocking(move || {
            s.set_read_timeout(Some(limit)).unwrap();
            let started = Instant::now();
            let mut buf = [0u8; 512];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => return Some(started.elapsed()),
                    Ok(_) => continue,
                    Err(_) => return None,
                }
            }
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn half_sent_heads_and_idle_connections_are_closed() {
        let (addr, _stop) = start(limits()).await;
        let mut half = std::net::TcpStream::connect(&addr).unwrap();
        half.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
        let t = closed_after(half, Duration::from_secs(6))
            .await
            .expect("half-sent head kept open");
        assert!(t < Duration::from_secs(4), "{t:?}");
        let idle = std::net::TcpStream::connect(&addr).unwrap();
        let t = closed_after(idle, Duration::from_secs(6))
            .await
            .expect("idle connection kept open");
        assert!(t < Duration::from_secs(4), "{t:?}");
    }

    #[tokio::test]
    async fn one_peer_cannot_hold_more_than_its_cap() {
        let (addr, _stop) = start(limits()).await;
        let held: Vec<std::net::TcpStream> = (0..12)
            .map(|_| std::net::TcpStream::connect(&addr).unwrap())
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut closed = 0;
        for s in held {
            if closed_after(s, Duration::from_millis(300)).await.is_some() {
                closed += 1;
            }
        }
        assert_eq!(closed, 7, "12 connections, cap 5");
    }
}
