//! Bounds on the connections of one TCP control listener (ng TCP, HTTP and
//! WebSocket, CLI): at most so many at once, at most so many from one
//! source, and closed after an idle time (ng TCP and CLI in their read
//! loops; HTTP and WebSocket in [`LimitedStream`], so keep-alive connections
//! and silent WebSockets go too). A connection over a
//! bound is closed at once and counted (`rtpengine_connections_refused_total`),
//! so idle or hostile clients cannot use up the daemon's descriptors.

use std::collections::HashMap;
use std::future::Future as _;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Connections refused by a bound since the start.
pub static REFUSED: AtomicU64 = AtomicU64::new(0);

/// The bounds (`--control-max-connections`,
/// `--control-max-connections-per-source`, `--control-idle-timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Connections at once per listener.
    pub total: usize,
    /// Connections at once from one source address.
    pub per_source: usize,
    /// A connection that sends nothing for this long is closed (`None`:
    /// never).
    pub idle: Option<Duration>,
}

/// The open connections of one listener.
#[derive(Debug)]
pub struct Limits {
    bounds: Bounds,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; dropping it makes room again.
#[derive(Debug)]
pub struct Admitted {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Limits {
    /// A listener's limits.
    pub fn new(bounds: Bounds) -> Arc<Limits> {
        Arc::new(Limits {
            bounds,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// The idle timeout.
    pub fn idle(&self) -> Option<Duration> {
        self.bounds.idle
    }

    /// Admits a connection from `ip`, or refuses it (counted).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let from_ip = open.1.get(&ip).copied().unwrap_or(0);
        if open.0 >= self.bounds.total || from_ip >= self.bounds.per_source {
            drop(open);
            REFUSED.fetch_add(1, Relaxed);
            tracing::debug!(source = %ip, "Control connection refused: too many open");
            return None;
        }
        open.0 += 1;
        *open.1.entry(ip).or_default() += 1;
        Some(Admitted {
            limits: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self
            .limits
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

/// A TCP listener for axum that survives accept failures and applies
/// [`Limits`] to every connection (the source allow-list answers 403 in
/// the HTTP layer).
pub struct LimitedListener {
    listener: TcpListener,
    limits: Arc<Limits>,
    errors: super::AcceptErrors,
}

impl LimitedListener {
    /// Wraps `listener`.
    pub fn new(listener: TcpListener, limits: Arc<Limits>, what: &'static str) -> Self {
        LimitedListener {
            listener,
            limits,
            errors: super::AcceptErrors::new(what),
        }
    }
}

/// A connection of a [`LimitedListener`], holding its place; a read that
/// waits longer than the idle timeout since the last read or write fails
/// (`TimedOut`), which ends the connection.
pub struct LimitedStream {
    stream: TcpStream,
    idle: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
    _admitted: Admitted,
}

impl axum::serve::Listener for LimitedListener {
    type Io = LimitedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = super::accept(&self.listener, &mut self.errors).await;
            if let Some(admitted) = self.limits.admit(peer.ip()) {
                let idle = self
                    .limits
                    .idle()
                    .map(|d| (d, Box::pin(tokio::time::sleep(d))));
                return (
                    LimitedStream {
                        stream,
                        idle,
                        _admitted: admitted,
                    },
                    peer,
                );
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

impl LimitedStream {
    /// Progress (a read, or a write: a long response is no idleness):
    /// the idle time starts again.
    fn touch(&mut self) {
        if let Some((d, sleep)) = self.idle.as_mut() {
            sleep.as_mut().reset(tokio::time::Instant::now() + *d);
        }
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.touch();
                Poll::Ready(r)
            }
            Poll::Pending => {
                if let Some((d, sleep)) = this.idle.as_mut() {
                    if sleep.as_mut().poll(cx).is_ready() {
                        tracing::debug!("Control connection idle for {} s: closed", d.as_secs());
                        return Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()));
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.stream).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_within_the_bounds_and_makes_room_on_close() {
        let l = Limits::new(Bounds {
            total: 3,
            per_source: 2,
            idle: None,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = l.admit(a).unwrap();
        let _a2 = l.admit(a).unwrap();
        assert!(l.admit(a).is_none(), "per source");
        let _b1 = l.admit(b).unwrap();
        assert!(l.admit(b).is_none(), "total");
        drop(a1);
        assert!(
            l.admit("::ffff:192.0.2.1".parse().unwrap()).is_some(),
            "room again, mapped = IPv4"
        );
    }
}
