//! Calls that survive a restart: the daemon with `--redis` (a real
//! `redis-server` in the proxy namespace) is restarted as `systemctl
//! restart` would (SIGTERM, start again) under 100 calls of live media. No
//! call may be lost; the packets lost during the restart are measured and
//! printed. With in-kernel forwarding the kept flows carry the media across
//! the restart (the new daemon adopts them), so nothing may be lost; in
//! userspace the gap is the time the daemon was down.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtpengine_tests::*;

const CALLS: u16 = 100;
/// One packet per stream every 20 ms (G.711).
const PTIME: Duration = Duration::from_millis(20);

/// One direction of one call: who sends, where to, who receives.
struct Stream {
    tx: UdpSocket,
    to: SocketAddr,
    rx: UdpSocket,
}

/// Sends every stream one packet per [`PTIME`] (sequence numbers from 0)
/// until `stop`; returns how many each got.
fn pump(streams: Arc<Vec<Stream>>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u16> {
    std::thread::spawn(move || {
        let mut seq: u16 = 0;
        let start = Instant::now();
        while !stop.load(Relaxed) {
            for s in streams.iter() {
                let p = rtp(8, seq, u32::from(seq) * 160, 0x5151, seq as u8);
                let _ = s.tx.send_to(&p, s.to);
            }
            seq = seq.wrapping_add(1);
            let next = start + PTIME * u32::from(seq);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        seq
    })
}

/// Drains every receiver, marking the sequence numbers that arrived.
fn collect(
    streams: Arc<Vec<Stream>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<Vec<bool>>> {
    std::thread::spawn(move || {
        let mut got = vec![vec![false; 65536]; streams.len()];
        for s in streams.iter() {
            s.rx.set_nonblocking(true).unwrap();
        }
        let mut buf = [0u8; 2048];
        let mut idle_since: Option<Instant> = None;
        loop {
            let mut any = false;
            for (i, s) in streams.iter().enumerate() {
                while let Ok((n, _)) = s.rx.recv_from(&mut buf) {
                    if n >= 4 {
                        got[i][usize::from(u16::from_be_bytes([buf[2], buf[3]]))] = true;
                        any = true;
                    }
                }
            }
            if stop.load(Relaxed) {
                // Drain what is still in flight, then stop.
                let since = *idle_since.get_or_insert_with(Instant::now);
                if !any && since.elapsed() > Duration::from_millis(300) {
                    return got;
                }
            }
            if !any {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    })
}

fn restart_under_load(kernel: bool) {
    let t = Topology::new(if kernel { "rsk" } else { "rsu" });
    let redis = RedisServer::start(&t.proxy.name, 6390).unwrap();
    let mut args = vec!["--redis=127.0.0.1:6390/3", "--delete-delay=0"];
    if !kernel {
        args.push("--table=-1");
    }
    let mut p = start_proxy(&t, &args).unwrap();

    let mut streams = Vec::new();
    for i in 0..CALLS {
        let (ca, cb) = (5000 + 2 * i, 6000 + 2 * i);
        let a = t.caller.bind_udp(&format!("10.1.0.2:{ca}"));
        let b = t.callee.bind_udp(&format!("10.2.0.2:{cb}"));
        let (pa, pb) = setup_call(
            &p,
            &format!("r{i}"),
            ("10.1.0.2", ca),
            ("10.2.0.2", cb),
            vec![],
        );
        streams.push(Stream {
            tx: a.try_clone().unwrap(),
            to: sa("10.1.0.1", pa),
            rx: b.try_clone().unwrap(),
        });
        streams.push(Stream {
            tx: b,
            to: sa("10.2.0.1", pb),
            rx: a,
        });
    }
    assert!(
        wait_until(Duration::from_secs(3), || redis.dbsize(3)
            == usize::from(CALLS)),
        "{} calls in Redis",
        redis.dbsize(3)
    );
    let streams = Arc::new(streams);
    let stop = Arc::new(AtomicBool::new(false));
    let rx = collect(Arc::clone(&streams), Arc::clone(&stop));
    let tx = pump(Arc::clone(&streams), Arc::clone(&stop));

    // Media settles (learning, offload), then the restart.
    std::thread::sleep(Duration::from_millis(1500));
    let down = Instant::now();
    p.daemon.terminate().unwrap();
    drop(p);
    let p = start_proxy(&t, &args).unwrap();
    let restart = down.elapsed();
    std::thread::sleep(Duration::from_millis(2500));
    stop.store(true, Relaxed);
    let sent = tx.join().unwrap();
    let got = rx.join().unwrap();

    // No call lost: all are back, answer queries and are still in Redis.
    let listed =
        p.ng.call(&dict([
            ("command", Value::str("list")),
            ("limit", Value::Int(1000)),
        ]))
        .unwrap();
    let Some(Value::List(ids)) = listed.get(&b"calls"[..]) else {
        panic!("{listed:?}")
    };
    assert_eq!(ids.len(), usize::from(CALLS), "{listed:?}");
    assert_eq!(redis.dbsize(3), usize::from(CALLS));

    // Packets: every stream from its first packet to the last sent.
    let (mut lost, mut worst_gap) = (0usize, 0usize);
    for g in &got {
        let first = g.iter().position(|&x| x).expect("a stream got nothing");
        let (mut run, mut gap) = (0, 0);
        for &x in &g[first..usize::from(sent)] {
            if x {
                run = 0;
            } else {
                run += 1;
                lost += 1;
                gap = gap.max(run);
            }
        }
        worst_gap = worst_gap.max(gap);
    }
    let total = usize::from(sent) * got.len();
    println!(
        "restart ({}) under {CALLS} calls, {} streams at 50 packets/s: daemon down for {:.0} ms; \
         {lost} of {total} packets lost, longest gap {worst_gap} packets ({} ms)",
        if kernel {
            "in-kernel forwarding"
        } else {
            "userspace relaying"
        },
        got.len(),
        restart.as_secs_f64() * 1000.0,
        worst_gap as u128 * PTIME.as_millis()
    );
    if kernel {
        assert_eq!(
            lost, 0,
            "the kept kernel flows carry media across the restart"
        );
    }
    // Media flows after the restart in every stream: the last second is
    // complete.
    let tail = usize::from(sent).saturating_sub(50);
    for (i, g) in got.iter().enumerate() {
        let missing = g[tail..usize::from(sent)].iter().filter(|&&x| !x).count();
        assert!(
            missing <= 1,
            "stream {i} lost {missing} of its last 50 packets"
        );
    }

    // The restored calls are fully alive: a delete ends one, in Redis too.
    let r =
        p.ng.call(&dict([
            ("command", Value::str("delete")),
            ("call-id", Value::str("r0")),
        ]))
        .unwrap();
    assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
    assert!(wait_until(Duration::from_secs(3), || redis.dbsize(3)
        == usize::from(CALLS) - 1));
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn calls_survive_a_restart_with_redis_in_the_kernel() {
    restart_under_load(true);
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn calls_survive_a_restart_with_redis_in_userspace() {
    restart_under_load(false);
}
