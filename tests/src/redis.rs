//! A `redis-server` of the test's own (Debian's package), started in a
//! network namespace on loopback and killed on drop. Tests that need it fail
//! when it is missing: `cargo xtask test` / `.ci/run` install it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::util::wait_until;

/// A running server.
pub struct RedisServer {
    child: Child,
    ns: String,
    host: String,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts one on 127.0.0.1:`port` inside namespace `ns`, without
    /// persistence of its own, and waits until it answers.
    pub fn start(ns: &str, port: u16) -> anyhow::Result<RedisServer> {
        Self::start_on(ns, "127.0.0.1", port)
    }

    /// [`RedisServer::start`] on address `host` of the namespace.
    pub fn start_on(ns: &str, host: &str, port: u16) -> anyhow::Result<RedisServer> {
        let dir = std::env::temp_dir().join(format!("rtpe-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "redis-server", "--bind", host])
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--dir", &dir.to_string_lossy()])
            // Clients on a LAN of namespaces, without a password.
            .args(["--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (Debian package redis-server)")?;
        let r = RedisServer {
            child,
            ns: ns.to_owned(),
            host: host.to_owned(),
            port,
            dir,
        };
        if !wait_until(Duration::from_secs(5), || {
            r.cli(&["PING"]).is_ok_and(|o| o.trim() == "PONG")
        }) {
            bail!("redis-server did not answer on port {port} in {ns}");
        }
        Ok(r)
    }

    /// `redis-cli -h HOST -p PORT ARGS…` in the namespace; its output.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let port = self.port.to_string();
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "redis-cli", "-h", &self.host])
            .args(["-p", &port])
            .args(args)
            .output()
            .context("running redis-cli")?;
        if !out.status.success() {
            bail!(
                "redis-cli {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Number of keys in database `db`.
    pub fn dbsize(&self, db: u32) -> usize {
        self.cli(&["-n", &db.to_string(), "DBSIZE"])
            .ok()
            .and_then(|o| o.trim().parse().ok())
            .unwrap_or(usize::MAX)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
