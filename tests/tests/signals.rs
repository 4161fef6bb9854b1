//! Signals as upstream: SIGTERM and SIGINT stop cleanly, SIGUSR1/SIGUSR2
//! lower/raise the log level, SIGHUP stops cleanly with status 42; none of
//! them kills the daemon without cleanup (the pidfile goes away).

use std::path::PathBuf;
use std::time::Duration;

use rtpengine_tests::*;

struct Run {
    daemon: Daemon,
    ng: NgClient,
    log: PathBuf,
    pidfile: PathBuf,
}

fn start(tag: &str) -> Run {
    let dir = std::env::temp_dir();
    let log = dir.join(format!("rtpe-sig-{tag}-{}.log", std::process::id()));
    let pidfile = dir.join(format!("rtpe-sig-{tag}-{}.pid", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let ng_addr = sa("127.0.0.1", free_udp_port());
    let pid_arg = format!("--pidfile={}", pidfile.display());
    // No RTPENGINE_LOG override: the level is the daemon's own (6).
    let daemon = Daemon::start_logged(None, ng_addr, &[&pid_arg], "", &log).unwrap();
    assert!(pidfile.exists(), "pidfile written");
    let ng = NgClient::new(ng_addr).unwrap();
    Run {
        daemon,
        ng,
        log,
        pidfile,
    }
}

impl Run {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `needle` (signals are handled asynchronously).
    fn logged(&self, needle: &str) -> bool {
        wait_until(Duration::from_secs(5), || self.log().contains(needle))
    }

    fn ping(&self) {
        let r = self.ng.call(&dict([("command", "ping".into())])).unwrap();
        assert_eq!(get_str(&r, "result"), "pong");
    }

    fn stop_with(mut self, sig: libc::c_int) -> i32 {
        self.daemon.signal(sig).unwrap();
        let status = self.daemon.wait(Duration::from_secs(10)).unwrap();
        assert!(!self.pidfile.exists(), "pidfile removed on {sig}");
        let _ = std::fs::remove_file(&self.log);
        status.code().expect("exited, not killed by the signal")
    }
}

#[test]
fn usr1_usr2_change_the_log_level_and_keep_running() {
    let mut run = start("usr");
    run.ping();
    assert!(!run.log().contains("Received command"), "debug is off at 6");
    run.daemon.signal(libc::SIGUSR2).unwrap();
    assert!(run.logged("log level raised to 7"), "{}", run.log());
    run.ping();
    assert!(
        run.logged("Received command"),
        "debug on at 7: {}",
        run.log()
    );
    // Bounded at 7.
    run.daemon.signal(libc::SIGUSR2).unwrap();
    assert!(wait_until(Duration::from_secs(5), || run
        .log()
        .matches("raised to 7")
        .count()
        == 2));
    // One step at a time: signals of one kind sent back to back coalesce.
    for level in [6, 5, 4] {
        run.daemon.signal(libc::SIGUSR1).unwrap();
        let line = format!("log level lowered to {level}");
        assert!(run.logged(&line), "{line}: {}", run.log());
    }
    // To 3: errors only, so even the confirmation is not shown any more,
    // nor are warnings.
    run.daemon.signal(libc::SIGUSR1).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    run.daemon.signal(libc::SIGUSR1).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!run.log().contains("lowered to 3"), "{}", run.log());
    assert!(run.daemon.alive());
    run.ping();
    assert_eq!(run.stop_with(libc::SIGTERM), 0);
}

#[test]
fn term_and_int_stop_cleanly() {
    assert_eq!(start("term").stop_with(libc::SIGTERM), 0);
    assert_eq!(start("int").stop_with(libc::SIGINT), 0);
}

#[test]
fn hup_stops_cleanly_with_42() {
    let run = start("hup");
    run.ping();
    assert_eq!(run.stop_with(libc::SIGHUP), 42);
}
