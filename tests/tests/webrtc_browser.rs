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
/// The phone's video port (the bundle test).
const VIDEO: &str = "198.51.100.3:6012";
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

/// The page's reports, in order: (path, JSON body).
type Reports = mpsc::Receiver<(String, Json)>;

/// Starts Chromium in the rig's namespace on the test page with `query`,
/// serving the page and collecting its reports.
fn open_page(rig: &Rig, tag: &str, query: &str) -> (Browser, Reports) {
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
    let profile = scratch_dir(&format!("chromium-profile-{tag}"));
    let url = format!("http://127.0.0.1:8090/webrtc.html?ng=ws://{HTTP}/&{query}");
    let browser = Browser(
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
                // The camera of the bundle test: a generated picture.
                "--use-fake-device-for-media-stream",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(&url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium"),
    );
    (browser, rx)
}

/// The next report of the page, which must be `what`.
fn wait(rx: &Reports, what: &str) -> Json {
    let (path, v) = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("the page did not report {what}"));
    assert_eq!(path, what, "{v}");
    v
}

fn daemon_rig(name: &str) -> Rig {
    Rig::new(
        name,
        &[
            &format!("--listen-http={HTTP}"),
            "--http-allow-origin=http://127.0.0.1:8090",
        ],
    )
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn chromium_to_plain_phone() {
    require_root();
    let rig = daemon_rig("webrtc-chromium");
    let phone = rig.socket(PHONE);
    let (_browser, rx) = open_page(
        &rig,
        "plain",
        &format!("call=chromium-1&phone={PHONE}&secs=4&restart=1"),
    );
    let wait = |what: &str| wait(&rx, what);
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
    // Plain PCMU (a header, maybe a header extension such as a bundle's
    // MID, and 20 ms of G.711), not SRTP (which keeps a clear header but
    // adds a tag and has random-looking bytes).
    let pcmu: Vec<&[u8]> = got
        .iter()
        .filter(|p| p.len() > 12 && p[0] >> 6 == 2 && p[1] & 0x7f == 0)
        .filter_map(|p| payload_of(p).filter(|payload| payload.len() == 160))
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
            let distinct: std::collections::BTreeSet<u8> = p.iter().copied().collect();
            distinct.len() <= 40 && p.iter().any(|&b| b != 0xff && b != 0x7f)
        })
        .count();
    assert!(tone > 25, "{tone} of {} packets carry the tone", pcmu.len());
}

/// A max-bundle Chromium with audio and video (the fake camera, VP8) on one
/// transport, `bundle=accept`: the phone gets two sections with ports of
/// their own; the browser's answer is bundled on one port. Each section's
/// media reaches its own port on the phone's side; the phone's tone comes
/// back into the audio section, and the browser's own video, echoed by the
/// phone under another SSRC, into the video section, where the browser
/// decodes frames of it.
#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn chromium_max_bundle_audio_and_video() {
    require_root();
    let rig = daemon_rig("webrtc-chromium-bundle");
    let phone = rig.socket(PHONE);
    let video = rig.socket(VIDEO);
    let (_browser, rx) = open_page(
        &rig,
        "bundle",
        &format!("call=chromium-2&phone={PHONE}&video={VIDEO}&secs=5&bundle=1"),
    );
    let started = wait(&rx, "/started");
    let to_phone = started["to_phone"].as_str().expect("to_phone");
    let to_browser = started["to_browser"].as_str().expect("to_browser");
    let group = |sdp: &str| {
        sdp.lines()
            .filter(|l| l.starts_with("a=group:"))
            .map(|l| l.trim_end().to_owned())
            .collect::<Vec<_>>()
    };
    assert!(group(to_phone).is_empty(), "{to_phone}");
    assert_eq!(group(to_browser), ["a=group:BUNDLE 0 1"], "{to_browser}");
    let ports = media_ports(to_phone);
    assert!(ports.len() == 2 && ports[0] != ports[1], "{to_phone}");
    let bports = media_ports(to_browser);
    assert!(bports.len() == 2 && bports[0] == bports[1], "{to_browser}");
    let vp8: u8 = to_phone
        .lines()
        .find_map(|l| l.strip_prefix("a=rtpmap:")?.strip_suffix(" VP8/90000"))
        .and_then(|pt| pt.parse().ok())
        .expect("VP8 offered");
    let to: Vec<SocketAddr> = ports
        .iter()
        .map(|p| format!("203.0.113.1:{p}").parse().unwrap())
        .collect();

    // 5.5 s: the phone's tone into the audio section; what arrives on the
    // video port goes back under another SSRC (RTP only; RTCP about the
    // echo would name SSRCs the browser never sent).
    for s in [&phone, &video] {
        s.set_nonblocking(true).expect("nonblocking");
    }
    let (mut audio_got, mut video_got) = (Vec::new(), Vec::new());
    let start = std::time::Instant::now();
    let mut next = start;
    let mut seq = 0u16;
    let mut buf = [0u8; 2048];
    while start.elapsed() < Duration::from_millis(5500) {
        if std::time::Instant::now() >= next {
            let _ = phone.send_to(&rtp(0, seq, 160 * u32::from(seq), 0x7070, 0x8f), to[0]);
            seq = seq.wrapping_add(1);
            next += Duration::from_millis(20);
        }
        while let Ok((n, _)) = phone.recv_from(&mut buf) {
            audio_got.push(buf[..n].to_vec());
        }
        while let Ok((n, _)) = video.recv_from(&mut buf) {
            let mut p = buf[..n].to_vec();
            if p.len() > 12 && !(200..=206).contains(&(p[1] & 0x7f | 0x80)) {
                video_got.push(p.clone());
                p[8..12].copy_from_slice(&0x0e_c0_0e_c0u32.to_be_bytes());
                let _ = video.send_to(&p, to[1]);
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let result = wait(&rx, "/result");
    eprintln!(
        "browser: {result}; phone got {} audio, {} video packets",
        audio_got.len(),
        video_got.len()
    );
    assert!(result.get("error").is_none(), "{result}");
    assert_eq!(result["state"], "connected", "{result}");
    // Nothing crossed over: the audio port got PCMU of the tone, the video
    // port VP8 only.
    check_tone(&audio_got);
    assert!(
        audio_got.iter().all(|p| p[1] & 0x7f != vp8),
        "video on the audio port"
    );
    let vp8_packets = video_got.iter().filter(|p| p[1] & 0x7f == vp8).count();
    assert!(vp8_packets > 50, "{vp8_packets} VP8 packets");
    assert_eq!(vp8_packets, video_got.len(), "only VP8 on the video port");
    // And back: the tone in the audio section, decoded video in the video
    // section.
    assert!(result["received"].as_u64().unwrap_or(0) > 50, "{result}");
    assert!(result["energy"].as_f64().unwrap_or(0.0) > 0.0, "{result}");
    assert!(
        result["video_received"].as_u64().unwrap_or(0) > 50,
        "{result}"
    );
    assert!(
        result["frames_decoded"].as_u64().unwrap_or(0) > 10,
        "{result}"
    );
}
