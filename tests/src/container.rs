//! The container image with podman: a containers.conf that fits this host,
//! the `debian:bookworm(-slim)` base image made with debootstrap (there is no
//! Docker Hub here), the repository's Dockerfile built with the host-built
//! binaries, and containers and networks removed when dropped.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::daemon::daemon_bin;
use crate::util::{run_timeout, scratch_dir, tests_dir};

/// The image the tests build.
pub const IMAGE: &str = "localhost/rtpengine-rs:test";

/// podman with this host's settings.
pub struct Podman {
    conf: PathBuf,
}

/// Where the repository's files are.
fn repo() -> PathBuf {
    tests_dir().join("..")
}

impl Podman {
    /// podman set up and [`IMAGE`] built, once per test process (tests run
    /// in parallel and must not build the same tag side by side).
    pub fn with_image() -> &'static Podman {
        static ONCE: std::sync::OnceLock<Result<Podman, String>> = std::sync::OnceLock::new();
        let p = ONCE.get_or_init(|| {
            let p = Podman::setup().map_err(|e| format!("{e:#}"))?;
            p.build().map_err(|e| format!("{e:#}"))?;
            Ok(p)
        });
        match p {
            Ok(p) => p,
            Err(e) => panic!("podman and the image: {e}"),
        }
    }

    /// Writes the containers.conf and makes the base image if missing.
    pub fn setup() -> anyhow::Result<Podman> {
        let dir = repo().join("target/podman");
        std::fs::create_dir_all(&dir)?;
        let conf = dir.join("containers.conf");
        // podman's default ulimits exceed this host's hard limits (runc then
        // fails with "error setting rlimit"): use the hard limits.
        let (nofile, nproc) = (
            hard_limit(libc::RLIMIT_NOFILE),
            hard_limit(libc::RLIMIT_NPROC),
        );
        let nproc = nproc.min(32768);
        std::fs::write(
            &conf,
            format!(
                "[containers]\ndefault_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n\n\
                 [engine]\nruntime = \"runc\"\n"
            ),
        )?;
        let p = Podman { conf };
        p.base_image()?;
        Ok(p)
    }

    /// A podman command.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", &self.conf);
        c
    }

    /// Runs podman with `args`; its stdout, or an error with the transcript.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let ran = run_timeout(self.cmd().args(args), Duration::from_secs(300))?;
        if ran.code != Some(0) {
            bail!("podman {args:?}:\n{}", ran.transcript());
        }
        Ok(ran.stdout)
    }

    /// `debian:bookworm` and `debian:bookworm-slim` from debootstrap, as the
    /// Dockerfile names them, unless present.
    fn base_image(&self) -> anyhow::Result<()> {
        let exists = |tag| self.run(&["image", "exists", tag]).is_ok();
        if exists("debian:bookworm") && exists("debian:bookworm-slim") {
            return Ok(());
        }
        let root = scratch_dir("bookworm-rootfs");
        let mirror = "http://deb.debian.org/debian";
        let ran = run_timeout(
            Command::new("debootstrap")
                .args(["--variant=minbase", "bookworm"])
                .arg(&root)
                .arg(mirror),
            Duration::from_secs(600),
        )?;
        if ran.code != Some(0) {
            bail!("debootstrap:\n{}", ran.transcript());
        }
        // Plain-HTTP apt sources, as the official image has them (HTTPS
        // would need the host's CA bundle inside the build).
        let _ = std::fs::remove_file(root.join("etc/apt/sources.list"));
        std::fs::write(
            root.join("etc/apt/sources.list.d/debian.sources"),
            format!(
                "Types: deb\nURIs: {mirror}\nSuites: bookworm bookworm-updates\nComponents: main\n\
                 Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
                 Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n\
                 Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
            ),
        )?;
        let import = format!(
            "tar -C {} -c . | podman import --change 'CMD [\"bash\"]' - debian:bookworm",
            root.display()
        );
        let ran = run_timeout(
            Command::new("sh")
                .args(["-c", &import])
                .env("CONTAINERS_CONF", &self.conf),
            Duration::from_secs(300),
        )?;
        let _ = std::fs::remove_dir_all(&root);
        if ran.code != Some(0) {
            bail!("podman import:\n{}", ran.transcript());
        }
        self.run(&["tag", "debian:bookworm", "debian:bookworm-slim"])?;
        Ok(())
    }

    /// Builds [`IMAGE`] from the repository's Dockerfile, taking the
    /// binaries this test run built (`RTPENGINE_BUILD=prebuilt`; the source
    /// stage needs Docker Hub and rustup, which are not reachable here).
    pub fn build(&self) -> anyhow::Result<()> {
        let ctx = scratch_dir("rtpengine-image");
        let release = ctx.join("target/release");
        std::fs::create_dir_all(&release)?;
        std::fs::create_dir_all(ctx.join("docker"))?;
        for f in [
            "Dockerfile",
            ".dockerignore",
            "docker/entrypoint.sh",
            "docker/healthcheck.sh",
        ] {
            std::fs::copy(repo().join(f), ctx.join(f)).with_context(|| f.to_owned())?;
        }
        // The image this tag names now, to remove once rebuilt (only ours:
        // pruning would take other dangling images of the host too).
        let old = self
            .run(&["image", "inspect", IMAGE, "--format", "{{.Id}}"])
            .ok()
            .map(|id| id.trim().to_owned());
        let bin = daemon_bin();
        std::fs::copy(&bin, release.join("rtpengine"))?;
        std::fs::copy(
            bin.with_file_name("rtpengine-ctl"),
            release.join("rtpengine-ctl"),
        )?;
        // --format docker keeps the HEALTHCHECK (OCI images drop it).
        let res = self.run(&[
            "build",
            "--pull=never",
            "--format",
            "docker",
            "--layers",
            "--build-arg",
            "RTPENGINE_BUILD=prebuilt",
            "-t",
            IMAGE,
            &ctx.to_string_lossy(),
        ]);
        let _ = std::fs::remove_dir_all(&ctx);
        let new = self
            .run(&["image", "inspect", IMAGE, "--format", "{{.Id}}"])
            .ok()
            .map(|id| id.trim().to_owned());
        if let Some(old) = old.filter(|o| Some(o) != new.as_ref()) {
            let _ = self.run(&["rmi", &old]);
        }
        res.map(drop)
    }
}

fn hard_limit(resource: libc::__rlimit_resource_t) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into `r`.
    if unsafe { libc::getrlimit(resource, &mut r) } != 0 || r.rlim_max == libc::RLIM_INFINITY {
        return 1 << 20;
    }
    r.rlim_max
}

/// A container, removed (forcibly) on drop.
pub struct Container<'a> {
    podman: &'a Podman,
    /// Its name.
    pub name: String,
}

impl<'a> Container<'a> {
    /// `podman run -d --name NAME ARGS…` (any old container of that name
    /// is removed first).
    pub fn start(podman: &'a Podman, name: &str, args: &[&str]) -> anyhow::Result<Container<'a>> {
        let _ = podman.run(&["rm", "-f", "-t", "2", name]);
        let mut full = vec!["run", "-d", "--name", name];
        full.extend(args);
        podman.run(&full)?;
        Ok(Container {
            podman,
            name: name.to_owned(),
        })
    }

    /// Its log (stdout and stderr).
    pub fn logs(&self) -> String {
        run_timeout(
            self.podman.cmd().args(["logs", &self.name]),
            Duration::from_secs(30),
        )
        .map(|r| r.stdout + &r.stderr)
        .unwrap_or_default()
    }

    /// Waits until the log contains `text` (the daemon's startup line, …).
    pub fn wait_log(&self, text: &str, timeout: Duration) -> anyhow::Result<()> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.logs().contains(text) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("{}: no {text:?} in the log:\n{}", self.name, self.logs())
    }

    /// `podman inspect --format FORMAT`.
    pub fn inspect(&self, format: &str) -> anyhow::Result<String> {
        Ok(self
            .podman
            .run(&["inspect", &self.name, "--format", format])?
            .trim()
            .to_owned())
    }

    /// `podman stop` (SIGTERM, then SIGKILL after `secs`); its exit code.
    pub fn stop(&self, secs: u32) -> anyhow::Result<i64> {
        self.podman
            .run(&["stop", "-t", &secs.to_string(), &self.name])?;
        Ok(self.inspect("{{.State.ExitCode}}")?.parse()?)
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self.podman.run(&["rm", "-f", "-t", "2", &self.name]);
    }
}

/// A podman bridge network, removed on drop.
pub struct Network<'a> {
    podman: &'a Podman,
    /// Its name.
    pub name: String,
}

impl<'a> Network<'a> {
    /// `podman network create --subnet=SUBNET NAME` (an old one is removed).
    pub fn create(podman: &'a Podman, name: &str, subnet: &str) -> anyhow::Result<Network<'a>> {
        let _ = podman.run(&["network", "rm", "-f", name]);
        podman.run(&["network", "create", &format!("--subnet={subnet}"), name])?;
        Ok(Network {
            podman,
            name: name.to_owned(),
        })
    }
}

impl Drop for Network<'_> {
    fn drop(&mut self) {
        let _ = self.podman.run(&["network", "rm", "-f", &self.name]);
    }
}

/// `GET path` on `addr` over HTTP/1.0; the body of a 200 reply.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<String> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    match out.split_once("\r\n\r\n") {
        Some((head, body))
            if head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200") =>
        {
            Ok(body.to_owned())
        }
        _ => bail!("GET {path} from {addr}: {out}"),
    }
}
