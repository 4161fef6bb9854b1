//! The floods at the end of a soak phase: ng requests, then RTP from a
//! stranger, each while the stable calls' media runs.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{json, Value as Json};

use super::{media_v6, setup, Ctx, Phase};
use crate::media::{bind_sockets, Interval, Media, Path};
use crate::ng;
use crate::scenario::iv_json;
use crate::topo::{self, in_ns};

/// The RTP flooder's port in the caller namespace.
const FLOOD_PORT: u16 = 31000;
/// Calls with ports but no media, the RTP flood's allocated targets.
const FLOOD_VICTIMS: usize = 50;

/// The ng flood, then the RTP flood, each during one media interval of
/// `--flood-secs`; a quiet interval before them is the reference.
pub(super) fn run_floods(
    ph: &Phase<'_>,
    cx: &Ctx<'_>,
    media: &mut Media,
    problems: &mut Vec<String>,
) -> anyhow::Result<Json> {
    let (o, ngc, meter, topo, rate) = (ph.o, cx.ngc, cx.meter, cx.topo, cx.rate);
    let dur = Duration::from_secs(o.flood_secs);
    let drain = Duration::from_millis(500);
    // Calls with ports but no media: the RTP flood's allocated targets.
    let (victim_callers, victim_callees) = setup(ph, ngc, "v", FLOOD_VICTIMS, cx.k)?;
    let quiet = media.interval(Path::Proxy, Some(rate), dur, drain, meter, None)?;
    eprintln!("soak: quiet: loss {:.3}%", quiet.loss() * 100.0);

    // ng flood.
    let ng_addr = crate::daemon::NG_ADDR.parse::<SocketAddr>()?;
    let flood_sock = in_ns(&topo.proxy, move || {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        s.connect(ng_addr)?;
        s.set_nonblocking(true)?;
        Ok(s)
    })?;
    let msgs = ng_flood_messages();
    let mut framed = Vec::with_capacity(65536);
    let (iv, sent, replies) = during_flood(cx, media, dur, o.ng_flood_rate, &flood_sock, |i| {
        let m = match &msgs[i as usize % msgs.len()] {
            FloodMsg::Raw(m) => m,
            FloodMsg::Body(b) => {
                framed.clear();
                framed.extend_from_slice(format!("fl{}-{i} ", ph.name).as_bytes());
                framed.extend_from_slice(b);
                &framed
            }
        };
        flood_sock.send(m).is_ok()
    })?;
    *ph.ng_flood_end.lock().map_err(super::poisoned)? = Some(Instant::now());
    eprintln!(
        "soak: ng flood: {sent} requests ({:.0}/s), {replies} replies; media loss {:.3}%",
        sent as f64 / iv.secs.max(1e-9),
        iv.loss() * 100.0
    );
    check_loss("ng flood", &iv, o.flood_max_loss, problems);
    // Served again within the patience of Kamailio's rtpengine module (its
    // defaults: 1-s timeout, 5 tries): a ping sent as the flood ends can be
    // dropped in the full socket buffer like the flood's own datagrams.
    let asked = Instant::now();
    let pong = (0..5).any(|_| ngc.ping(Duration::from_secs(1)));
    let pong_after = asked.elapsed().as_secs_f64();
    eprintln!("soak: ng flood: answered again after {pong_after:.2} s");
    if !pong {
        problems.push("ng flood: no pong within 5 tries of 1 s afterwards".into());
    }
    let ng_json = json!({"sent": sent, "rate": sent as f64 / iv.secs.max(1e-9),
                         "replies": replies, "media": iv_json(&iv),
                         "pong_after_s": pong.then_some(pong_after)});

    // RTP flood from a stranger: half to the victim calls' ports, half to
    // ports of the range nobody holds.
    let allocated: Vec<SocketAddr> = victim_callers
        .iter()
        .chain(&victim_callees)
        .map(|a| media_v6(*a))
        .collect();
    // Unallocated: ports of the range the daemon does not hold now (the
    // churn has stopped), found by binding them in its namespace.
    let unallocated: Vec<SocketAddr> = in_ns(&topo.proxy, || {
        Ok((20000u16..60000)
            .step_by(97)
            .filter(|&p| {
                let a = SocketAddr::new(topo::PROXY_CALLER_IP.into(), p);
                UdpSocket::bind(a).is_ok()
            })
            .take(200)
            .map(|p| media_v6(SocketAddr::new(topo::PROXY_CALLER_IP.into(), p)))
            .collect())
    })?;
    if unallocated.is_empty() || allocated.is_empty() {
        bail!(
            "no ports to flood ({} allocated, {} free)",
            allocated.len(),
            unallocated.len()
        );
    }
    let rtp = bind_sockets(&topo.caller, vec![FLOOD_PORT])?;
    let stranger = &rtp[0];
    let mut pkt = [0u8; 172];
    pkt[0] = 0x80;
    pkt[8..12].copy_from_slice(&0xdead_beefu32.to_be_bytes());
    let (iv, sent, _) = during_flood(cx, media, dur, o.rtp_flood_rate, stranger, |i| {
        let to = if i % 2 == 0 {
            allocated[(i / 2) as usize % allocated.len()]
        } else {
            unallocated[(i / 2) as usize % unallocated.len()]
        };
        stranger.send_to(&pkt, to).is_ok()
    })?;
    eprintln!(
        "soak: RTP flood: {sent} packets ({:.0}/s) to {} allocated and {} unallocated ports; media loss {:.3}%",
        sent as f64 / iv.secs.max(1e-9),
        allocated.len(),
        unallocated.len(),
        iv.loss() * 100.0
    );
    let rtp_json = json!({"sent": sent, "rate": sent as f64 / iv.secs.max(1e-9),
                          "allocated_ports": allocated.len(), "unallocated_ports": unallocated.len(),
                          "media": iv_json(&iv)});
    check_loss("RTP flood", &iv, o.flood_max_loss, problems);
    if iv.wrong_src > 0 {
        problems.push(format!(
            "RTP flood: {} packets relayed from a wrong source",
            iv.wrong_src
        ));
    }
    // The victims go with the stable calls' teardown.
    ph.delete(ngc, "v", FLOOD_VICTIMS)?;
    Ok(
        json!({"quiet": iv_json(&quiet), "ng": ng_json, "rtp": rtp_json,
              "max_loss": o.flood_max_loss}),
    )
}

/// Runs one media interval of `dur` on the stable calls while
/// another thread calls `send(i)` at `rate` per second and drains whatever
/// comes back on `sock`; returns the interval, the sends that succeeded and
/// the datagrams drained.
fn during_flood(
    cx: &Ctx<'_>,
    media: &mut Media,
    dur: Duration,
    rate: f64,
    sock: &UdpSocket,
    mut send: impl FnMut(u64) -> bool + Send,
) -> anyhow::Result<(Interval, u64, u64)> {
    let stop = AtomicBool::new(false);
    let drain = || {
        let mut buf = [0u8; 65536];
        let mut n = 0;
        while sock.recv(&mut buf).is_ok() {
            n += 1;
        }
        n
    };
    std::thread::scope(|s| {
        let flooder = s.spawn(|| {
            let t0 = Instant::now();
            let (mut i, mut sent, mut drained) = (0u64, 0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let due = (rate * t0.elapsed().as_secs_f64()) as u64;
                let mut burst = 0;
                while i < due && burst < 256 {
                    if send(i) {
                        sent += 1;
                    }
                    i += 1;
                    burst += 1;
                }
                drained += drain();
                if i >= due {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            (sent, drained + drain())
        });
        let iv = media.interval(
            Path::Proxy,
            Some(cx.rate),
            dur,
            Duration::from_millis(500),
            cx.meter,
            None,
        );
        stop.store(true, Ordering::Relaxed);
        let (sent, drained) = flooder
            .join()
            .map_err(|_| anyhow::anyhow!("flood thread panicked"))?;
        Ok((iv?, sent, drained))
    })
}

/// Records a problem when the stable calls lost more than `bound` in `iv`.
pub(super) fn check_loss(what: &str, iv: &Interval, bound: f64, problems: &mut Vec<String>) {
    if iv.loss() > bound {
        problems.push(format!(
            "{what}: media loss {:.3} % on the stable calls (bound {:.3} %)",
            iv.loss() * 100.0,
            bound * 100.0
        ));
    }
}

/// One message of the ng flood: a body sent with a fresh cookie each time
/// (a repeated cookie would only exercise the cookie cache), or raw bytes.
enum FloodMsg {
    Body(Vec<u8>),
    Raw(Vec<u8>),
}

/// The ng flood's mix: valid requests (ping, statistics, query and delete of
/// unknown calls, a JSON ping), malformed ones (broken bencode, not a
/// dictionary, unknown command, a 60 KB string), datagrams without a cookie
/// and garbage.
fn ng_flood_messages() -> Vec<FloodMsg> {
    use FloodMsg::{Body, Raw};
    let mut v = Vec::new();
    for i in 0..16 {
        let call = format!("nope-{i}");
        v.push(Body(b"d7:command4:pinge".to_vec()));
        v.push(Body(ng::encode(&[
            ("command", ng::B::S("query")),
            ("call-id", ng::B::S(&call)),
        ])));
        v.push(Body(ng::encode(&[
            ("command", ng::B::S("delete")),
            ("call-id", ng::B::S(&call)),
            ("from-tag", ng::B::S("x")),
        ])));
        v.push(Body(br#"{"command":"ping"}"#.to_vec()));
        v.push(Body(b"d7:command".to_vec()));
        v.push(Body(b"l4:pinge".to_vec()));
        v.push(Body(b"d7:command7:explodee".to_vec()));
        v.push(Raw(b"no-cookie-here".to_vec()));
        v.push(Raw(vec![0xff; 40 + i]));
    }
    v.push(Body(ng::encode(&[
        ("command", ng::B::S("ping")),
        ("x", ng::B::S(&"a".repeat(60_000))),
    ])));
    v.push(Body(b"d7:command10:statisticse".to_vec()));
    v
}
