//! ng over TCP (`--listen-tcp-ng`): `cookie SP bencode-dict` messages back to
//! back, no length prefix. A message ends where its dictionary is complete,
//! so the reader scans with the bencode decoder. Several messages per read
//! and messages split across reads both work; a connection that sends
//! something that can never become a message, or more than
//! [`MAX_MESSAGE`] bytes without completing one, is closed.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::{debug, info, warn, Instrument};

use super::dispatch::Control;
use crate::ng::bencode::bencode_len;
use crate::ng::frame::MAX_MESSAGE;

/// Binds the listener.
pub fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    super::tcp_listener(addr).with_context(|| format!("binding ng TCP socket {addr}"))
}

/// Accepts connections until cancelled, within `bounds`.
pub async fn serve(
    listener: TcpListener,
    control: Arc<Control>,
    bounds: super::limits::Bounds,
) -> anyhow::Result<()> {
    info!(local = %listener.local_addr()?, "Listening for ng over TCP");
    let mut errors = super::AcceptErrors::new("ng TCP");
    let limits = super::limits::Limits::new(bounds);
    loop {
        let (stream, peer) = super::accept(&listener, &mut errors).await;
        if !super::sources::allows(peer.ip()) {
            drop(stream);
            continue;
        }
        let Some(admitted) = limits.admit(peer.ip()) else {
            drop(stream);
            continue;
        };
        let control = control.clone();
        let idle = limits.idle();
        // One write per reply: rtpengine-client's TcpClient cannot split replies.
        if let Err(e) = stream.set_nodelay(true) {
            debug!(error = %e, "TCP_NODELAY");
        }
        tokio::spawn(
            async move {
                let _admitted = admitted;
                match connection(stream, &control, peer, idle).await {
                    Ok(()) => debug!("ng TCP connection closed"),
                    Err(e) => warn!(error = %e, "ng TCP connection closed"),
                }
            }
            .instrument(tracing::info_span!("ng-tcp", %peer)),
        );
    }
}

/// What the front of the buffer holds.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// A complete message of this many bytes.
    Message(usize),
    /// Not complete yet.
    Incomplete,
    /// Cannot become a message.
    Garbage(&'static str),
}

/// Whether `buf` can still become `cookie SP d…` (garbage is reported at once
/// instead of waiting for more data).
fn plausible(buf: &[u8]) -> bool {
    match buf.iter().position(|&b| b == b' ') {
        None => true,
        Some(0) => false,
        Some(sp) => buf.get(sp + 1).is_none_or(|&b| b == b'd'),
    }
}

fn next_message(buf: &[u8]) -> Next {
    let Some(sp) = buf.iter().position(|&b| b == b' ') else {
        return Next::Incomplete;
    };
    if sp == 0 {
        return Next::Garbage("no cookie");
    }
    let body = &buf[sp + 1..];
    match body.first() {
        None => Next::Incomplete,
        Some(b'd') => match bencode_len(body) {
            Ok(Some(n)) => Next::Message(sp + 1 + n),
            Ok(None) => Next::Incomplete,
            Err(_) => Next::Garbage("invalid bencode"),
        },
        Some(_) => Next::Garbage("body is not a bencode dictionary"),
    }
}

/// Serves one connection from `peer` until it closes, goes silent for
/// `idle`, or sends what can never become a message (an error). Generic
/// over the stream so the fuzz harness drives it in memory.
pub async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    control: &Control,
    peer: SocketAddr,
    idle: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        loop {
            match next_message(&buf) {
                Next::Message(n) => {
                    let msg: Vec<u8> = buf.drain(..n).collect();
                    if let Some(reply) = control.handle_framed(&msg, peer).await {
                        stream.write_all(&reply).await?;
                    }
                    // Whitespace between messages is tolerated.
                    let ws = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
                    buf.drain(..ws);
                }
                Next::Incomplete if buf.len() > MAX_MESSAGE => {
                    anyhow::bail!("more than {MAX_MESSAGE} bytes without a complete message");
                }
                Next::Incomplete => break,
                Next::Garbage(why) => anyhow::bail!("unparseable data: {why}"),
            }
        }
        // Read until the pending message can have completed: a dictionary
        // ends with `e`, so data without one cannot finish it. This keeps a
        // peer that trickles a large message byte by byte from making us
        // rescan the buffer once per byte.
        loop {
            let n = match idle {
                Some(idle) => match tokio::time::timeout(idle, stream.read(&mut chunk)).await {
                    Ok(r) => r?,
                    Err(_) => anyhow::bail!("idle for {} s", idle.as_secs()),
                },
                None => stream.read(&mut chunk).await?,
            };
            if n == 0 {
                if !buf.is_empty() {
                    anyhow::bail!("peer closed mid-message ({} bytes pending)", buf.len());
                }
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
            if chunk[..n].contains(&b'e') || buf.len() > MAX_MESSAGE || !plausible(&buf) {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_boundaries() {
        assert_eq!(next_message(b"c1 d7:command4:pinge"), Next::Message(20));
        assert_eq!(next_message(b"c1 d7:command4:pingec2 d"), Next::Message(20));
        assert_eq!(next_message(b"c1 d7:comma"), Next::Incomplete);
        assert_eq!(next_message(b"c1"), Next::Incomplete);
        assert_eq!(next_message(b"c1 "), Next::Incomplete);
        assert_eq!(
            next_message(b" d7:command4:pinge"),
            Next::Garbage("no cookie")
        );
        assert_eq!(
            next_message(b"c1 {\"command\":\"ping\"}"),
            Next::Garbage("body is not a bencode dictionary")
        );
        assert_eq!(next_message(b"c1 dx"), Next::Garbage("invalid bencode"));
    }
}
