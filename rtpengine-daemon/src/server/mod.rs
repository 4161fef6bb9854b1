//! The control server: the ng transports and the dispatcher they share,
//! and the CLI's TCP listener ([`cli`]).
//!
//! Each transport ([`udp`], [`tcp`], [`http`] with WebSocket) turns bytes
//! from the wire into whole messages and hands them to [`Control`], which
//! runs them through the protocol ([`crate::ng`]) and the command handlers
//! ([`crate::commands`]); the reply leaves from the address the request hit.

pub mod cli;
pub mod dispatch;
pub mod http;
pub mod limits;
pub mod sources;
pub mod tcp;
pub mod udp;

pub use dispatch::Control;

use std::net::SocketAddr;

/// A listening TCP socket. The IPv6 wildcard `[::]` is IPv6-only, so a bare
/// port can listen on `0.0.0.0` and `[::]` side by side (upstream does the
/// same); specific addresses, v4-mapped ones included, bind as given.
pub(crate) fn tcp_listener(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    tokio::net::TcpListener::from_std(s.into())
}

/// Connections the TCP listeners (ng TCP, CLI) failed to accept since the
/// start (`rtpengine_accept_failures_total`).
pub static ACCEPT_FAILURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Accept failures of one listener: counted, and logged at most once per
/// [`AcceptErrors::LOG_EVERY`] (a descriptor shortage fails every accept).
#[derive(Debug)]
pub(crate) struct AcceptErrors {
    what: &'static str,
    count: u64,
    logged: Option<std::time::Instant>,
}

impl AcceptErrors {
    const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

    pub(crate) fn new(what: &'static str) -> AcceptErrors {
        AcceptErrors {
            what,
            count: 0,
            logged: None,
        }
    }
}

/// The next connection of `listener`. A failed accept never ends the
/// listener (nor the daemon): out of descriptors or memory (`EMFILE`,
/// `ENFILE`, `ENOBUFS`, `ENOMEM`) it backs off 100 ms, so the pending
/// connection waits in the backlog until descriptors are free again; any
/// other failure (a connection reset before it was accepted) is skipped.
pub(crate) async fn accept(
    listener: &tokio::net::TcpListener,
    errors: &mut AcceptErrors,
) -> (tokio::net::TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(c) => return c,
            Err(e) => {
                errors.count += 1;
                ACCEPT_FAILURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if errors
                    .logged
                    .is_none_or(|t| t.elapsed() >= AcceptErrors::LOG_EVERY)
                {
                    errors.logged = Some(std::time::Instant::now());
                    tracing::error!(
                        listener = errors.what,
                        error = %e,
                        failures = errors.count,
                        "Failed to accept a connection; the listener keeps going"
                    );
                }
                let exhausted = matches!(
                    e.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                );
                if exhausted {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
}
