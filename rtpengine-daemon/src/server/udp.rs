//! Control over UDP, one datagram per message: ng ([`Control`]) and the
//! legacy rtpproxy protocol ([`Rtpproxy`]) share the socket handling.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use anyhow::Context as _;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tracing::{info, warn};

use super::dispatch::Control;
use crate::net;
use crate::ng::frame::MAX_MESSAGE;
use crate::rtpproxy::Rtpproxy;

/// A control protocol served one datagram at a time.
pub trait Datagrams: Send + Sync + 'static {
    /// The protocol's name, for logs.
    const NAME: &'static str;

    /// The reply to `msg` from `peer`, if any.
    fn reply(
        &self,
        msg: Vec<u8>,
        peer: SocketAddr,
    ) -> impl std::future::Future<Output = Option<Vec<u8>>> + Send;
}

impl Datagrams for Control {
    const NAME: &'static str = "ng";

    async fn reply(&self, msg: Vec<u8>, peer: SocketAddr) -> Option<Vec<u8>> {
        if !super::sources::allows(peer.ip()) {
            return None;
        }
        self.handle_framed(&msg, peer).await
    }
}

impl Datagrams for Rtpproxy {
    const NAME: &'static str = "rtpproxy";

    async fn reply(&self, msg: Vec<u8>, peer: SocketAddr) -> Option<Vec<u8>> {
        if !super::sources::allows(peer.ip()) {
            return None;
        }
        self.handle(&msg, peer).await
    }
}

/// Binds a control UDP socket. With a wildcard address, replies are sent from the
/// address each request hit (`IP_PKTINFO`).
pub fn bind(addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .context("creating ng socket")?;
    sock.set_nonblocking(true)?;
    // The IPv6 wildcard next to the IPv4 one (a bare port) must not also
    // take IPv4.
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        sock.set_only_v6(true).context("setting IPV6_V6ONLY")?;
    }
    if addr.ip().is_unspecified() {
        net::enable_pktinfo(sock.as_raw_fd(), addr.is_ipv6()).context("enabling IP_PKTINFO")?;
    }
    sock.bind(&addr.into())
        .with_context(|| format!("binding ng socket {addr}"))?;
    UdpSocket::from_std(sock.into()).context("registering ng socket")
}

/// Serves requests on `sock` until the task is cancelled.
pub async fn serve<P: Datagrams>(sock: UdpSocket, control: Arc<P>) -> anyhow::Result<()> {
    let sock = Arc::new(sock);
    let local = sock.local_addr()?;
    let wildcard = local.ip().is_unspecified();
    info!(%local, "Listening for {} over UDP", P::NAME);
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    loop {
        let received = sock
            .async_io(Interest::READABLE, || {
                net::recv_with_dst(sock.as_raw_fd(), &mut buf)
            })
            .await;
        // Errors concern one datagram (or a moment of memory pressure):
        // log and keep serving; the socket itself stays usable.
        let (n, src, dst) = match received {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, protocol = P::NAME, "Error receiving on control socket");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        if n > MAX_MESSAGE {
            warn!(%src, protocol = P::NAME, "Dropping oversized control datagram");
            continue;
        }
        let msg = buf[..n].to_vec();
        let (control, sock) = (control.clone(), sock.clone());
        let from = if wildcard { dst } else { None };
        tokio::spawn(async move {
            let Some(reply) = control.reply(msg, src).await else {
                return;
            };
            let sent = sock
                .async_io(Interest::WRITABLE, || {
                    net::send_from(sock.as_raw_fd(), &reply, src, from)
                })
                .await;
            if let Err(e) = sent {
                warn!(%src, error = %e, protocol = P::NAME, "Failed to send control reply");
            }
        });
    }
}
