//! The systemd unit in `dist/`: it lints clean with `systemd-analyze
//! verify`; the daemon, run as an unprivileged user with exactly the unit's
//! capabilities (emulated with setpriv: PID 1 is not systemd here), opens
//! its kernel table and fails with any one removed; and it speaks the
//! `Type=notify` protocol: READY=1 once its listeners answer, STOPPING=1 on
//! a clean stop.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use rtpengine_tests::*;

fn unit() -> std::path::PathBuf {
    tests_dir().join("../dist/rtpengine.service")
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn unit_file_verifies() {
    let ran = run_timeout(
        Command::new("systemd-analyze").arg("verify").arg(unit()),
        Duration::from_secs(30),
    )
    .expect("systemd-analyze (package systemd)");
    // It exits 0 even for some invalid settings, printing a warning: any
    // output is a finding.
    assert_eq!(ran.code, Some(0), "{}", ran.transcript());
    assert_eq!(ran.stderr.trim(), "", "{}", ran.transcript());
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn unit_capabilities_open_the_kernel_table() {
    require_root();
    let script = tests_dir().join("systemd/unit_caps.sh");
    let ran = run_timeout(
        Command::new("bash")
            .arg(&script)
            .arg(unit())
            .arg(daemon_bin()),
        Duration::from_secs(120),
    )
    .unwrap();
    assert_eq!(ran.code, Some(0), "{}", ran.transcript());
    assert!(
        ran.stdout.contains("## 0 failure(s)"),
        "{}",
        ran.transcript()
    );
}

#[test]
#[ignore = "privileged: run with cargo xtask test"]
fn notifies_ready_after_binding_and_stopping_on_term() {
    let dir = scratch_dir("rtpe-notify");
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let ng = sa("127.0.0.1", free_udp_port());
    let mut child = Command::new(daemon_bin())
        .args([
            "--config-file=none",
            "--foreground",
            "--log-stderr",
            "--interface=127.0.0.1",
            &format!("--listen-ng={ng}"),
        ])
        .env("NOTIFY_SOCKET", &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("no READY=1 within 10 s");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg:?}");
    // Ready means ready: the ng socket answers at once.
    let client = NgClient::new(ng).unwrap();
    let r = client
        .call(&dict([("command", Value::str("ping"))]))
        .unwrap();
    assert_eq!(get_str(&r, "result"), "pong");
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let n = sock.recv(&mut buf).expect("no STOPPING=1");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.lines().any(|l| l == "STOPPING=1"), "{msg:?}");
    assert!(child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}
