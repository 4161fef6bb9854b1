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
