//! A real browser through the daemon: Debian's headless Chromium loads
//! `tests/browser/webrtc.html`, which sends its offer (ICE, DTLS-SRTP,
//! rtcp-mux, SAVPF) to the daemon over the WebSocket ng transport, answers
//! for a plain-RTP phone and applies the daemon's answer. A WebAudio tone
//! goes out as PCMU and must reach the phone decrypted; the phone's tone
//! must reach the browser (its getStats() counts packets and audio energy).
//! Then the page restarts ICE (`restartIce()`, a re-INVITE through the
//! daemon): DTLS must carry on and media with it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rtpengine_tests::*;
use serde_json::Value as Json;

const PAGE: &str = include_str!("../browser/webrtc.html");
const HTTP: &str = "127.0.0.1:8089";
const PHONE: &str = "198.51.100.3:6010";
/// The browser's own address: Chromium gathers no candidates on `lo`.
const BROWSER_NET: &str = "198.18.0.1/24";

/// One HTTP request: the page, or a POST the page reports with.
fn serve(mut s: TcpStream, tx: &mpsc::Sender<(String, Json)>) {
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut len = 0;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    let _ = r.read_exact(&mut body);
    let (status, content) = if path.starts_with("/webrtc.html") {
        ("200 OK", PAGE)
    } else if line.starts_with("POST") {
        let v = serde_json::from_slice(&body).unwrap_or(Json::Null);
        let _ = tx.send((path, v));
        ("200 OK", "")
    } else {
        ("404 Not Found", "")
    };
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{content}",
        content.len()
    );
}

struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn chromium_to_plain_phone() {
    require_root();
    let rig = Rig::new(
        "webrtc-chromium",
        &[
            &format!("--listen-http={HTTP}"),
            "--http-allow-origin=http://127.0.0.1:8090",
        ],
    );
    // A veth pair gives the browser a non-loopback address.
    for cmd in [
        "ip link add wb0 type veth peer name wb1",
        &format!("ip addr add {BROWSER_NET} dev wb0"),
        "ip link set wb0 up",
        "ip link set wb1 up",
    ] {
        rig.ns
            .exec(&cmd.split(' ').collect::<Vec<_>>())
            .expect("veth");
    }
    let listener = rig
        .ns
        .run(|| TcpListener::bind("127.0.0.1:8090"))
        .expect("page server");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            serve(s, &tx);
        }
    });
    let phone = rig.socket(PHONE);
    let profile = scratch_dir("chromium-profile");
    let url = format!(
        "http://127.0.0.1:8090/webrtc.html?ng=ws://{HTTP}/&call=chromium-1&phone={PHONE}&secs=4&restart=1"
    );
    let _browser = Browser(
        Command::new("ip")
            .args(["netns", "exec", &rig.ns.name, "chromium"])
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--autoplay-policy=no-user-gesture-required",
                "--use-fake-ui-for-media-stream",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(&url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium"),
    );
    let wait = |what: &str| -> Json {
        let (path, v) = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the page did not report {what}"));
        assert_eq!(path, what, "{v}");
        v
    };
    let started = wait("/started");
    let to_phone = started["to_phone"].as_str().expect("to_phone");
    let to_browser = started["to_browser"].as_str().expect("to_browser");
    assert!(to_phone.contains(" RTP/AVP 0"), "{to_phone}");
    assert!(!to_phone.contains("a=fingerprint"), "{to_phone}");
    assert!(to_browser.contains(" UDP/TLS/RTP/SAVPF 0"), "{to_browser}");
    // A full ICE agent, as upstream by default: the browser controls.
    assert!(!to_browser.contains("a=ice-lite"), "{to_browser}");
    assert!(to_browser.contains("a=ice-ufrag:"), "{to_browser}");
    let port = media_ports(to_phone)[0];
    let to_daemon: SocketAddr = format!("203.0.113.1:{port}").parse().unwrap();

    // The phone sends a constant, non-silent level (the browser measures
    // its energy).
    let got = plain_side(&phone, to_daemon, 0x8f, 4.5);
    let result = wait("/result");
    eprintln!("browser: {result}; phone got {} packets", got.len());
    assert!(result.get("error").is_none(), "{result}");
    assert_eq!(result["state"], "connected", "{result}");
    assert!(result["received"].as_u64().unwrap_or(0) > 50, "{result}");
    assert!(result["energy"].as_f64().unwrap_or(0.0) > 0.0, "{result}");
    assert!(result["sent"].as_u64().unwrap_or(0) > 50, "{result}");
    assert!(
        result["srtp"]
            .as_str()
            .is_some_and(|s| s.starts_with("SRTP_")),
        "{result}"
    );
    check_tone(&got);

    // ICE restart (restartIce() and a re-INVITE through the daemon): new
    // ICE credentials from us, the same DTLS association (fingerprint,
    // role, tls-id), and media goes on without a new handshake.
    let restarted = wait("/restarted");
    let to_browser2 = restarted["to_browser"].as_str().expect("to_browser");
    let line = |sdp: &str, p: &str| {
        sdp.lines()
            .find(|l| l.starts_with(p))
            .map(|l| l.trim_end().to_owned())
    };
    assert_ne!(
        line(to_browser2, "a=ice-ufrag:"),
        line(to_browser, "a=ice-ufrag:"),
        "{to_browser2}"
    );
    for same in ["a=fingerprint:", "a=setup:", "a=tls-id:"] {
        assert_eq!(line(to_browser2, same), line(to_browser, same), "{same}");
    }
    let port2 = media_ports(restarted["to_phone"].as_str().expect("to_phone"))[0];
    let got = plain_side(
        &phone,
        format!("203.0.113.1:{port2}").parse().unwrap(),
        0x8f,
        4.5,
    );
    let result2 = wait("/result2");
    eprintln!(
        "browser after the ICE restart: {result2}; phone got {} packets",
        got.len()
    );
    assert_eq!(result2["state"], "connected", "{result2}");
    assert_eq!(result2["dtls"], "connected", "{result2}");
    // Chromium moved to a pair of the new ICE generation (the old one
    // would still work for 30 s: the old credentials are still answered).
    assert!(
        result2["pair_changes"].as_u64() > result["pair_changes"].as_u64(),
        "{result2}"
    );
    assert_eq!(result2["srtp"], result["srtp"], "{result2}");
    // The phone's second source (a new SSRC) reached the browser: most of
    // its 4 s of packets.
    assert_ne!(result2["ssrc"], result["ssrc"], "{result2}");
    assert!(result2["received"].as_u64().unwrap_or(0) > 100, "{result2}");
    assert!(result2["energy"].as_f64().unwrap_or(0.0) > 0.0, "{result2}");
    check_tone(&got);
}

/// What the phone got is plain PCMU carrying the browser's tone.
fn check_tone(got: &[Vec<u8>]) {
    // Plain PCMU (a 12-byte header and 20 ms of G.711), not SRTP (which
    // keeps a clear header but adds a tag and has random-looking bytes).
    let pcmu: Vec<&Vec<u8>> = got
        .iter()
        .filter(|p| p.len() == 172 && p[0] >> 6 == 2 && p[1] & 0x7f == 0)
        .collect();
    assert!(
        pcmu.len() > 50,
        "{} PCMU packets of {}",
        pcmu.len(),
        got.len()
    );
    // A 400 Hz tone, not silence (0xFF/0x7F) and not ciphertext: at 8 kHz
    // a period is 20 samples, so a packet holds few distinct bytes.
    let tone = pcmu
        .iter()
        .filter(|p| {
            let distinct: std::collections::BTreeSet<u8> = p[12..].iter().copied().collect();
            distinct.len() <= 40 && p[12..].iter().any(|&b| b != 0xff && b != 0x7f)
        })
        .count();
    assert!(tone > 25, "{tone} of {} packets carry the tone", pcmu.len());
}
