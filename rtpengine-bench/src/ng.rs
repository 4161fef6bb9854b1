//! ng signalling: a pipelined UDP client like a SIP proxy's (many requests in
//! flight, cookies, retransmissions), Kamailio-style unsorted request
//! dictionaries, and the SDP a phone would send.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rtpengine::ng::bencode::decode_bencode;
use rtpengine::ng::value::{Dict, Value};

/// A bencode value to encode in the given (insertion) order.
pub enum B<'a> {
    /// String.
    S(&'a str),
    /// Integer.
    I(i64),
    /// List of strings.
    L(&'a [&'a str]),
}

/// Encodes a dictionary in the given key order (as Kamailio does: unsorted).
pub fn encode(pairs: &[(&str, B<'_>)]) -> Vec<u8> {
    fn s(out: &mut Vec<u8>, v: &str) {
        out.extend(format!("{}:", v.len()).as_bytes());
        out.extend(v.as_bytes());
    }
    let mut out = b"d".to_vec();
    for (k, v) in pairs {
        s(&mut out, k);
        match v {
            B::S(v) => s(&mut out, v),
            B::I(i) => out.extend(format!("i{i}e").as_bytes()),
            B::L(l) => {
                out.push(b'l');
                for v in l.iter() {
                    s(&mut out, v);
                }
                out.push(b'e');
            }
        }
    }
    out.push(b'e');
    out
}

/// The SDP of a G.711 phone at `addr:port`, CRLF line endings.
pub fn phone_sdp(addr: IpAddr, port: u16, session: u64) -> String {
    let fam = if addr.is_ipv4() { "IP4" } else { "IP6" };
    [
        "v=0".to_string(),
        format!("o=- {session} 1 IN {fam} {addr}"),
        "s=-".into(),
        format!("c=IN {fam} {addr}"),
        "t=0 0".into(),
        format!("m=audio {port} RTP/AVP 0 8 101"),
        "a=rtpmap:0 PCMU/8000".into(),
        "a=rtpmap:8 PCMA/8000".into(),
        "a=rtpmap:101 telephone-event/8000".into(),
        "a=fmtp:101 0-16".into(),
        "a=ptime:20".into(),
        "a=sendrecv".into(),
        String::new(),
    ]
    .join("\r\n")
}

/// The media address of the first audio stream of `sdp` (media-level `c=`
/// wins over session-level).
pub fn media_addr(sdp: &str) -> Option<SocketAddr> {
    let mut session_c: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    let mut media_c: Option<IpAddr> = None;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            if port.is_some() {
                break;
            }
            let mut f = m.split_whitespace();
            if f.next() == Some("audio") {
                port = f.next().and_then(|p| p.parse().ok());
            }
        } else if let Some(c) = line
            .strip_prefix("c=IN IP4 ")
            .or_else(|| line.strip_prefix("c=IN IP6 "))
        {
            let a = c.split('/').next().and_then(|a| a.trim().parse().ok());
            if port.is_some() {
                media_c = a;
            } else {
                session_c = a;
            }
        }
    }
    Some(SocketAddr::new(media_c.or(session_c)?, port?))
}

/// A string from a reply dictionary.
pub fn get_str<'a>(d: &'a Dict, key: &str) -> Option<&'a str> {
    d.get(key.as_bytes()).and_then(Value::as_str)
}

/// An integer at `path` in a reply dictionary.
pub fn get_int(d: &Dict, path: &[&str]) -> Option<i64> {
    let (last, dirs) = path.split_last()?;
    let mut cur = d;
    for k in dirs {
        match cur.get(k.as_bytes())? {
            Value::Dict(x) => cur = x,
            _ => return None,
        }
    }
    match cur.get(last.as_bytes())? {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

static COOKIE_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A UDP ng client.
pub struct Ng {
    sock: UdpSocket,
}

impl Ng {
    /// A socket connected to `addr` (create it inside the right namespace).
    pub fn connect(addr: SocketAddr) -> anyhow::Result<Ng> {
        let sock = UdpSocket::bind(if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        })?;
        sock.connect(addr)?;
        Ok(Ng { sock })
    }

    /// One ping; true on its pong within `timeout`. Other datagrams on the
    /// socket (a late duplicate reply to a retransmitted request, an
    /// earlier ping's late pong) are skipped, not taken for the answer.
    pub fn ping(&self, timeout: Duration) -> bool {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cookie = format!("bp{n} ");
        let want = format!("{cookie}d6:result4:ponge");
        if self
            .sock
            .send(format!("{cookie}d7:command4:pinge").as_bytes())
            .is_err()
        {
            return false;
        }
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.sock.set_read_timeout(Some(left)).is_err() {
                return false;
            }
            match self.sock.recv(&mut buf) {
                Ok(n) if buf[..n] == *want.as_bytes() => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// Runs `jobs` request chains with at most `window` requests in flight.
    ///
    /// `next(job, reply)` returns the job's first request (reply `None`), then
    /// its next request after each reply, or `None` when the job is done; an
    /// error reply (`result: error`) ends the job as failed. Requests are
    /// retransmitted with the same cookie after 1 s, three times at most.
    pub fn pipeline(
        &self,
        jobs: usize,
        window: usize,
        tag: &str,
        mut next: impl FnMut(usize, Option<&Dict>) -> anyhow::Result<Option<Vec<u8>>>,
        mut progress: impl FnMut(usize),
    ) -> anyhow::Result<PipeStats> {
        struct Pending {
            job: usize,
            msg: Vec<u8>,
            first_sent: Instant,
            last_sent: Instant,
            tries: u32,
        }
        self.sock.set_read_timeout(Some(Duration::from_millis(5)))?;
        let mut stats = PipeStats::default();
        let mut pending: HashMap<String, Pending> = HashMap::new();
        let mut next_job = 0usize;
        let mut buf = vec![0u8; 65536];
        let start = Instant::now();
        let mut last_progress = Instant::now();
        // Cookies must be unique for the daemon's lifetime (its cookie cache
        // answers a repeated cookie with the cached reply).
        let send = |pending: &mut HashMap<String, Pending>,
                    job: usize,
                    body: Vec<u8>|
         -> anyhow::Result<()> {
            let seq = COOKIE_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let cookie = format!("{}{tag}{job}x{seq}", std::process::id());
            let mut msg = cookie.clone().into_bytes();
            msg.push(b' ');
            msg.extend(body);
            self.sock.send(&msg).context("sending ng request")?;
            let now = Instant::now();
            pending.insert(
                cookie,
                Pending {
                    job,
                    msg,
                    first_sent: now,
                    last_sent: now,
                    tries: 1,
                },
            );
            Ok(())
        };
        loop {
            super::stop::check()?;
            while pending.len() < window && next_job < jobs {
                let job = next_job;
                next_job += 1;
                if let Some(body) = next(job, None)? {
                    send(&mut pending, job, body)?;
                } else {
                    stats.completed += 1;
                }
            }
            if pending.is_empty() && next_job >= jobs {
                break;
            }
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    let msg = &buf[..n];
                    let Some(sp) = msg.iter().position(|&b| b == b' ') else {
                        continue;
                    };
                    let cookie = String::from_utf8_lossy(&msg[..sp]).into_owned();
                    let Some(p) = pending.remove(&cookie) else {
                        continue; // a duplicate reply to a retransmission
                    };
                    stats
                        .latencies_us
                        .push(p.first_sent.elapsed().as_micros() as u64);
                    stats.requests += 1;
                    let reply = match decode_bencode(&msg[sp + 1..]) {
                        Ok(d) => d,
                        Err(e) => {
                            stats.note_error(format!("bad reply: {e}"));
                            continue;
                        }
                    };
                    if get_str(&reply, "result") != Some("ok") {
                        let why = get_str(&reply, "error-reason").unwrap_or("no reason");
                        stats.note_error(why.to_string());
                        continue;
                    }
                    match next(p.job, Some(&reply)) {
                        Ok(Some(body)) => send(&mut pending, p.job, body)?,
                        Ok(None) => stats.completed += 1,
                        Err(e) => stats.note_error(format!("{e:#}")),
                    }
                }
                // A signal interrupts a receive with a timeout even under
                // SA_RESTART (signal(7)); whether to stop is `stop`'s call.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => crate::stop::check()?,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e).context("receiving ng reply"),
            }
            let now = Instant::now();
            let mut dead = Vec::new();
            for (cookie, p) in pending.iter_mut() {
                if now.duration_since(p.last_sent) >= Duration::from_secs(1) {
                    if p.tries >= 4 {
                        dead.push(cookie.clone());
                    } else {
                        p.tries += 1;
                        p.last_sent = now;
                        stats.retransmits += 1;
                        let _ = self.sock.send(&p.msg);
                    }
                }
            }
            for c in dead {
                pending.remove(&c);
                stats.note_error("no reply after 4 tries".into());
            }
            if last_progress.elapsed() >= Duration::from_secs(2) {
                last_progress = Instant::now();
                progress(stats.completed);
            }
        }
        stats.elapsed = start.elapsed();
        Ok(stats)
    }
}

/// Outcome of a pipeline.
#[derive(Debug, Default)]
pub struct PipeStats {
    /// Jobs that finished every request.
    pub completed: usize,
    /// Replies received.
    pub requests: usize,
    /// Request latencies (first send to reply), µs.
    pub latencies_us: Vec<u64>,
    /// Failed jobs.
    pub errors: usize,
    /// The first few error messages.
    pub error_samples: Vec<String>,
    /// Retransmissions sent.
    pub retransmits: usize,
    /// Wall time.
    pub elapsed: Duration,
}

impl PipeStats {
    fn note_error(&mut self, e: String) {
        self.errors += 1;
        if self.error_samples.len() < 3 {
            self.error_samples.push(e);
        }
    }

    /// Latency percentile `p` (0..=100) in µs.
    pub fn percentile(&self, p: f64) -> u64 {
        percentile(&self.latencies_us, p)
    }

    /// Jobs completed per second.
    pub fn rate(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Percentile of unsorted values (nearest rank).
pub fn percentile(values: &[u64], p: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Fails with the pipeline's first error when any job failed.
pub fn require_ok(what: &str, s: &PipeStats) -> anyhow::Result<()> {
    if s.errors > 0 {
        bail!(
            "{what}: {} of the jobs failed, e.g. {:?}",
            s.errors,
            s.error_samples
        );
    }
    Ok(())
}
