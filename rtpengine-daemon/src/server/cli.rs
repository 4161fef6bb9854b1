//! The CLI over TCP (`--listen-cli`), as upstream serves it: one command
//! line per connection (`\n` ends it, a trailing `\r` is dropped, blank
//! lines before it are skipped, and a half-close ends it too), the reply,
//! then the end of the stream, which is how `rtpengine-ctl` knows the reply
//! is complete. A line over [`MAX_LINE`] bytes, or none within
//! [`IDLE_TIMEOUT`], closes the connection without a reply.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, Instrument as _};

use crate::cli::Cli;

/// Longest command line (upstream's buffer).
pub const MAX_LINE: usize = 1024;

/// How long a connection may take to send its command (upstream waits
/// forever; `rtpengine-ctl` gives up after 3 s anyway). Idle connections
/// would otherwise hold descriptors that media ports need.
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Binds the listener.
pub fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    super::tcp_listener(addr).with_context(|| format!("binding CLI socket {addr}"))
}

/// Accepts connections until cancelled.
pub async fn serve(
    listener: TcpListener,
    cli: Arc<Cli>,
    bounds: super::limits::Bounds,
) -> anyhow::Result<()> {
    info!(local = %listener.local_addr()?, "Listening for CLI commands");
    let mut errors = super::AcceptErrors::new("CLI");
    let limits = super::limits::Limits::new(bounds);
    loop {
        let (stream, peer) = super::accept(&listener, &mut errors).await;
        let Some(admitted) = limits.admit(peer.ip()) else {
            drop(stream);
            continue;
        };
        let cli = Arc::clone(&cli);
        tokio::spawn(
            async move {
                let _admitted = admitted;
                debug!("New cli connection");
                if let Err(e) = connection(stream, &cli).await {
                    debug!(error = %e, "CLI connection closed");
                }
            }
            .instrument(tracing::info_span!("cli", %peer)),
        );
    }
}

async fn connection(mut stream: TcpStream, cli: &Cli) -> std::io::Result<()> {
    let line = match tokio::time::timeout(IDLE_TIMEOUT, read_line(&mut stream)).await {
        Ok(line) => line?,
        Err(_) => {
            debug!("CLI connection idle for {IDLE_TIMEOUT:?}, closed");
            return Ok(());
        }
    };
    let Some(line) = line else {
        return Ok(());
    };
    let reply = cli.run(&line);
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

/// The first non-blank line, or what came before a half-close; `None` for
/// nothing, or more than [`MAX_LINE`] bytes without a newline.
async fn read_line(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = buf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if !line.is_empty() {
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
        }
        if buf.len() > MAX_LINE {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            let line = String::from_utf8_lossy(&buf)
                .trim_end_matches('\r')
                .to_owned();
            return Ok((!line.is_empty()).then_some(line));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
