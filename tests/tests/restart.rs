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

/// How the daemon goes down.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// `systemctl restart`: SIGTERM, then start.
    Clean,
    /// A crash: SIGKILL, then start (within the kernel lease).
    Crash,
}

fn restart_under_load(kernel: bool, stop_how: Stop) {
    let t = Topology::new(match (kernel, stop_how) {
        (true, Stop::Clean) => "rsk",
        (true, Stop::Crash) => "rsc",
        (false, _) => "rsu",
    });
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
    let flows = |p: &Proxy| dumped_flows(&dump_table(&p.pin_dir, 0));
    if kernel {
        assert!(
            wait_until(Duration::from_secs(5), || flows(&p)
                == Some(2 * usize::from(CALLS))),
            "{:?} flows",
            flows(&p)
        );
    } else {
        std::thread::sleep(Duration::from_millis(1500));
    }
    let down = Instant::now();
    match stop_how {
        Stop::Clean => {
            p.daemon.terminate().unwrap();
        }
        Stop::Crash => {
            p.daemon.signal(libc::SIGKILL).unwrap();
            p.daemon.wait(Duration::from_secs(5)).unwrap();
        }
    }
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
        "restart ({}, {}) under {CALLS} calls, {} streams at 50 packets/s: daemon down for {:.0} ms; \
         {lost} of {total} packets lost, longest gap {worst_gap} packets ({} ms)",
        if kernel {
            "in-kernel forwarding"
        } else {
            "userspace relaying"
        },
        if stop_how == Stop::Clean {
            "SIGTERM"
        } else {
            "SIGKILL"
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
        // The new daemon adopted them: they are its streams' flows, their
        // packets count in its statistics.
        assert!(stream_flags(&p, "r7", "ft").contains(&"kernelized".to_owned()));
        assert!(stat(&p, "relayedpackets_kernel") > 0);
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
    if kernel {
        // Its adopted flows went with it.
        assert_eq!(flows(&p), Some(2 * (usize::from(CALLS) - 1)));
    }
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn calls_survive_a_restart_with_redis_in_the_kernel() {
    restart_under_load(true, Stop::Clean);
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn calls_survive_a_crash_with_redis_in_the_kernel() {
    restart_under_load(true, Stop::Crash);
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn calls_survive_a_restart_with_redis_in_userspace() {
    restart_under_load(false, Stop::Clean);
}

/// Failover to a standby (`--subscribe-keyspace`, as upstream): on one LAN
/// (a bridge) the active daemon owns media address 10.9.0.100 and writes
/// its calls to Redis; the standby follows them through keyspace
/// notifications, binding the same ports on the address it does not have
/// yet. The active is killed, the address moves to the standby (as a
/// floating IP would) and the phones learn its MAC: media continues on the
/// same ports through the standby, which takes the calls over (written by
/// it from then on) and ends them on `delete`.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn a_standby_takes_the_calls_over_when_the_active_dies() {
    const N: u16 = 10;
    let sw = Netns::new("sbsw").unwrap();
    let caller = Netns::new("sbc").unwrap();
    let callee = Netns::new("sbe").unwrap();
    let a = Netns::new("sba").unwrap();
    let b = Netns::new("sbb").unwrap();
    for cmd in [
        "ip link set lo up",
        "ip link add br0 type bridge",
        "ip link set br0 up",
        "ip addr add 10.9.0.1/24 dev br0",
    ] {
        sw.exec(&cmd.split(' ').collect::<Vec<_>>()).unwrap();
    }
    for (i, (ns, ip)) in [
        (&caller, "10.9.0.2"),
        (&callee, "10.9.0.3"),
        (&a, "10.9.0.10"),
        (&b, "10.9.0.11"),
    ]
    .into_iter()
    .enumerate()
    {
        let port = format!("v{i}");
        sw.exec(&[
            "ip", "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
        ])
        .unwrap();
        sw.exec(&["ip", "link", "set", &port, "master", "br0"])
            .unwrap();
        sw.exec(&["ip", "link", "set", &port, "up"]).unwrap();
        ns.exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"])
            .unwrap();
        ns.exec(&["ip", "link", "set", "eth0", "up"]).unwrap();
        ns.exec(&["ip", "link", "set", "lo", "up"]).unwrap();
    }
    a.exec(&["ip", "addr", "add", "10.9.0.100/24", "dev", "eth0"])
        .unwrap();
    let redis = RedisServer::start_on(&sw.name, "10.9.0.1", 6391).unwrap();
    let common = [
        "--table=-1",
        "-i",
        "10.9.0.100",
        "--redis=10.9.0.1:6391/2",
        "--delete-delay=0",
    ];
    let mut active = Daemon::start_with(Some(&a.name), sa("10.9.0.10", 2223), &common).unwrap();
    let log = std::env::temp_dir().join(format!("rtpe-standby-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut standby_args = common.to_vec();
    standby_args.push("--subscribe-keyspace=2");
    let _standby = Daemon::start_logged(
        Some(&b.name),
        sa("10.9.0.11", 2223),
        &standby_args,
        "",
        &log,
    )
    .unwrap();
    let ng_a = a.run(|| NgClient::new(sa("10.9.0.10", 2223)).unwrap());
    let ng_b = b.run(|| NgClient::new(sa("10.9.0.11", 2223)).unwrap());
    let listed = |ng: &NgClient| match ng
        .call(&dict([
            ("command", Value::str("list")),
            ("limit", Value::Int(100)),
        ]))
        .ok()
        .and_then(|r| r.get(&b"calls"[..]).cloned())
    {
        Some(Value::List(l)) => l.len(),
        _ => usize::MAX,
    };

    let mut phones = Vec::new();
    for i in 0..N {
        let (cp, ep) = (5000 + 2 * i, 6000 + 2 * i);
        let id = format!("sb{i}");
        let r = ng_a
            .call(&sdp_cmd(
                "offer",
                &id,
                "ft",
                None,
                &phone_sdp("10.9.0.2", cp),
                vec![],
            ))
            .unwrap();
        assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
        let to_callee_port = media_ports(get_str(&r, "sdp"))[0];
        let r = ng_a
            .call(&sdp_cmd(
                "answer",
                &id,
                "ft",
                Some("tt"),
                &phone_sdp("10.9.0.3", ep),
                vec![],
            ))
            .unwrap();
        assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
        let to_caller_port = media_ports(get_str(&r, "sdp"))[0];
        let x = caller.bind_udp(&format!("10.9.0.2:{cp}"));
        let y = callee.bind_udp(&format!("10.9.0.3:{ep}"));
        let (to_x, to_y) = (
            sa("10.9.0.100", to_caller_port),
            sa("10.9.0.100", to_callee_port),
        );
        exchange(&x, &y, to_x, to_y, 3, 1);
        phones.push((x, y, to_x, to_y));
    }
    assert!(
        wait_until(Duration::from_secs(5), || listed(&ng_b) == usize::from(N)),
        "the standby follows {} calls",
        listed(&ng_b)
    );
    assert_eq!(redis.dbsize(2), usize::from(N));

    // Failover.
    active.signal(libc::SIGKILL).unwrap();
    active.wait(Duration::from_secs(5)).unwrap();
    a.exec(&["ip", "addr", "del", "10.9.0.100/24", "dev", "eth0"])
        .unwrap();
    b.exec(&["ip", "addr", "add", "10.9.0.100/24", "dev", "eth0"])
        .unwrap();
    for ns in [&caller, &callee] {
        ns.exec(&["ip", "neigh", "flush", "dev", "eth0"]).unwrap();
    }
    // Media continues on the same ports, now through the standby.
    for (x, y, to_x, to_y) in &phones {
        exchange(x, y, *to_x, *to_y, 3, 100);
    }
    // Media made the calls the standby's own: it writes them now, and a
    // delete through it ends them in Redis too.
    assert!(
        wait_until(Duration::from_secs(3), || std::fs::read_to_string(&log)
            .is_ok_and(
                |t| t.matches("taking it over").count() == usize::from(N)
            )),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let r = ng_b
        .call(&dict([
            ("command", Value::str("delete")),
            ("call-id", Value::str("sb0")),
        ]))
        .unwrap();
    assert_eq!(get_str(&r, "result"), "ok", "{r:?}");
    assert!(wait_until(Duration::from_secs(3), || redis.dbsize(2)
        == usize::from(N) - 1));
    assert_eq!(listed(&ng_b), usize::from(N) - 1);
    let _ = std::fs::remove_file(&log);
}
