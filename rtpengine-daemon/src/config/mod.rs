//! Command line and configuration file, with rtpengine's option names: the
//! options themselves and what the rest of the daemon reads from them here,
//! the INI file and its merge under the command line in [`file`].
//!
//! This is the edge of the daemon: it turns options into the plain settings
//! of the modules below ([`call::Settings`], [`InterfaceSpec`]s,
//! [`TableId`]), which never see the options themselves.

mod file;
mod upstream;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::Parser;

use crate::call;
use crate::interfaces::{parse_section, Entry, InterfaceConfig};
use crate::kernel::{TableId, XdpAttachMode};
use crate::relay::learning::EndpointLearning;

pub use file::{parse_ini, LoadError};
pub use upstream::{Kind, Upstream, UNIMPLEMENTED};

/// The file read when `--config-file` is not given (as upstream's packages).
pub const DEFAULT_CONFIG_FILE: &str = "/etc/rtpengine/rtpengine.conf";

/// rtpengine's command-line options (the subset this daemon knows).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "rtpengine",
    // Upstream's `-v/--version` prints `Version: …` (see `main.rs`).
    disable_version_flag = true,
    about = "rtpengine-compatible media proxy (Rust, eBPF offload)",
    // A later occurrence wins, as with upstream (and as the file merge needs).
    args_override_self = true
)]
pub struct Config {
    /// Print the version and exit.
    #[arg(short = 'v', long)]
    pub version: bool,
    /// Configuration file ("none" to skip).
    #[arg(long, value_name = "FILE")]
    pub config_file: Option<String>,
    /// Section of the configuration file to read.
    #[arg(long, value_name = "STRING", default_value = "rtpengine")]
    pub config_section: String,

    /// Kernel forwarding table 0..63 to own; negative = userspace relaying only.
    #[arg(short = 't', long, value_name = "INT", default_value_t = -1, allow_negative_numbers = true)]
    pub table: i64,
    /// Exit instead of relaying in userspace when the kernel table is unusable.
    #[arg(short = 'F', long)]
    pub no_fallback: bool,
    /// Network device to attach the XDP dataplane to (repeatable; default: the
    /// devices that carry the `--interface` addresses).
    #[arg(long = "xdp-device", value_name = "DEV")]
    pub xdp_devices: Vec<String>,
    /// XDP attach mode: auto (native where the driver supports it, else
    /// generic), native or generic.
    #[arg(long, value_name = "auto|native|generic", default_value = "auto")]
    pub xdp_mode: XdpAttachMode,
    /// Next hops of kernel flows: resolved by the daemon over rtnetlink (no
    /// IP forwarding needed), or looked up in the FIB per packet (needs
    /// forwarding enabled on the media devices).
    #[arg(long, value_name = "resolve|fib", default_value = "resolve")]
    pub xdp_next_hop: crate::kernel::NextHopMode,
    /// Relay the streams the kernel cannot forward (SRTP to encrypt or
    /// decrypt, bundles) through their UDP sockets even where the XDP
    /// dataplane could hand them over AF_XDP (which needs CAP_NET_RAW).
    #[arg(long)]
    pub no_af_xdp: bool,
    /// bpffs directory of the shared forwarding maps.
    #[arg(long, value_name = "DIR", default_value_os_t = crate::kernel::default_pin_dir())]
    pub bpf_pin_dir: PathBuf,
    /// Seconds the kernel keeps forwarding this table's media after the
    /// daemon stopped renewing its lease (killed, crashed, frozen); 0 = for
    /// ever, as rtpengine's kernel module.
    #[arg(long, value_name = "SECS", default_value_t = crate::kernel::DEFAULT_LEASE.as_secs())]
    pub kernel_lease: u64,
    /// Redis database for call persistence, `[PW@]HOST:PORT/DB` (the
    /// password may come from RTPENGINE_REDIS_AUTH_PW): calls are restored
    /// from it at start and every change is written to it.
    #[arg(short = 'r', long, value_name = "[PW@]HOST:PORT/DB")]
    pub redis: Option<String>,
    /// A separate Redis database for the writes (RTPENGINE_REDIS_WRITE_AUTH_PW).
    #[arg(short = 'w', long, value_name = "[PW@]HOST:PORT/DB")]
    pub redis_write: Option<String>,
    /// Upstream's restore threads; accepted (the journals replay in order).
    #[arg(long, value_name = "INT", default_value_t = 4)]
    pub redis_num_threads: u32,
    /// Expiry of the Redis keys, seconds.
    #[arg(long, value_name = "INT", default_value_t = 86400)]
    pub redis_expires: u64,
    /// Follow another daemon's calls as a standby: Redis keyspace numbers
    /// (DBs) whose notifications create, update and delete foreign calls.
    #[arg(short = 'k', long, value_name = "INT", value_delimiter = ';')]
    pub subscribe_keyspace: Vec<i64>,
    /// The Redis server to subscribe to (default: `--redis`'s);
    /// RTPENGINE_REDIS_SUBSCRIBE_AUTH_PW for its password.
    #[arg(long, value_name = "[PW@]HOST:PORT[/DB]")]
    pub redis_subscribe: Option<String>,
    /// Activity on a foreign call makes it ours: always so here (accepted
    /// for upstream's configurations).
    #[arg(long)]
    pub active_switchover: bool,
    /// Start even when Redis cannot be reached (nothing restored).
    #[arg(short = 'q', long)]
    pub no_redis_required: bool,
    /// Print the entries of kernel table N (from the pinned maps) and exit.
    #[arg(long, value_name = "N")]
    pub dump_table: Option<TableId>,

    /// Config-file sections `[PREFIX-NAME]` that define interfaces
    /// (`address`, `advertised`, `name`, `alias`, `port-min`, `port-max`,
    /// `exclude-ports`).
    #[arg(long, value_name = "PREFIX")]
    pub interfaces_config: Option<String>,
    /// The `interfaces-config` sections found in the file: the name after
    /// `PREFIX-` and the section's keys.
    #[arg(skip)]
    pub interface_sections: Vec<(String, BTreeMap<String, Vec<String>>)>,
    /// Config-file section whose keys are signalling templates (ng flags
    /// strings, used by the ng `template` key; `default` and templates named
    /// after a command apply to every such request).
    #[arg(long, value_name = "SECTION")]
    pub templates: Option<String>,
    /// The templates of that section: name and flags.
    #[arg(skip)]
    pub template_values: Vec<(String, String)>,
    /// Local media interface `[NAME/]IP[!ADVERTISED]` or `ALIAS=NAME`
    /// (repeatable).
    #[arg(short = 'i', long = "interface", value_name = "[NAME/]IP[!IP]")]
    pub interfaces: Vec<String>,
    /// UDP address for the ng control protocol, `[IP:]PORT` (repeatable; a
    /// bare port listens on every address, IPv4 and IPv6).
    #[arg(short = 'n', long, value_name = "[IP:]PORT")]
    pub listen_ng: Vec<String>,
    /// TCP address for the ng control protocol, `[IP:]PORT` (repeatable).
    #[arg(short = 'N', long, value_name = "[IP:]PORT")]
    pub listen_tcp_ng: Vec<String>,
    /// UDP address for the legacy rtpproxy control protocol (Kamailio's
    /// and OpenSIPS's `rtpproxy` modules), `[IP:]PORT` (repeatable).
    #[arg(short = 'u', long, value_name = "[IP:]PORT")]
    pub listen_udp: Vec<String>,
    /// HTTP/WebSocket address for the ng control protocol, `[IP:]PORT`
    /// (repeatable).
    #[arg(long, value_name = "[IP:]PORT")]
    pub listen_http: Vec<String>,
    /// Origins (`scheme://host[:port]`, or `*`) whose browser pages may use
    /// the HTTP/WebSocket listener; by default none: requests a browser
    /// makes for a page (an `Origin` header, cross-site fetch metadata) are
    /// refused.
    #[arg(long = "http-allow-origin", value_name = "ORIGIN")]
    pub http_allow_origins: Vec<String>,
    /// Sources (`ADDR[/LEN]`, repeatable or comma-separated) that may send
    /// control requests (ng on every transport, rtpproxy); others are
    /// dropped and counted. Default: anyone, as upstream.
    #[arg(
        long = "ng-allow-from",
        value_name = "ADDR[/LEN]",
        value_delimiter = ','
    )]
    pub ng_allow_from: Vec<crate::server::sources::Prefix>,
    /// Connections at once per TCP control listener (ng TCP, HTTP, CLI);
    /// more are closed at once.
    #[arg(long, value_name = "INT", default_value_t = 1000)]
    pub control_max_connections: usize,
    /// Connections at once from one source per TCP control listener.
    #[arg(long, value_name = "INT", default_value_t = 100)]
    pub control_max_connections_per_source: usize,
    /// Seconds an ng TCP, HTTP (keep-alive) or WebSocket connection may
    /// stay silent before it is closed; 0 = never.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub control_idle_timeout: u64,
    /// TCP address for the CLI (`rtpengine-ctl`), `[IP:]PORT` (repeatable).
    #[arg(short = 'c', long, value_name = "[IP:]PORT")]
    pub listen_cli: Vec<String>,

    /// Lowest local media port.
    #[arg(short = 'm', long, value_name = "INT", default_value_t = 30000)]
    pub port_min: u16,
    /// Highest local media port.
    #[arg(short = 'M', long, value_name = "INT", default_value_t = 40000)]
    pub port_max: u16,

    /// Default IP TOS for relayed packets.
    #[arg(short = 'T', long, value_name = "INT", value_parser = clap::value_parser!(u8))]
    pub tos: Option<u8>,
    /// Seconds without media before an established call is closed.
    #[arg(short = 'o', long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u32,
    /// Seconds without media before a call on hold is closed.
    #[arg(short = 's', long, value_name = "SECS", default_value_t = 3600)]
    pub silent_timeout: u32,
    /// Seconds before a call that was offered but never answered is closed.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub offer_timeout: u32,
    /// Seconds after which any call is closed (0 = never).
    #[arg(short = 'a', long, value_name = "SECS", default_value_t = 0)]
    pub final_timeout: u32,
    /// Seconds a deleted call lingers before it is destroyed.
    #[arg(short = 'd', long, value_name = "SECS", default_value_t = 30)]
    pub delete_delay: u32,
    /// How streams learn their peer's address: delayed, immediate, off or
    /// heuristic.
    #[arg(long, value_name = "MODE", default_value = "heuristic")]
    pub endpoint_learning: EndpointLearning,
    /// Largest number of concurrent calls (-1 = unlimited).
    #[arg(long, value_name = "INT", default_value_t = -1, allow_negative_numbers = true)]
    pub max_sessions: i64,

    /// DTLS-SRTP: take the passive (server) role where the peer lets us
    /// choose (`DTLS=active` reverts it for a call).
    #[arg(long)]
    pub dtls_passive: bool,
    /// Key type of the DTLS certificate: prime256v1 (ECDSA) or RSA.
    #[arg(long, value_name = "TYPE", default_value = "prime256v1",
          value_parser = ["prime256v1", "RSA", "ec_prime256v1", "ec-prime256v1"])]
    pub dtls_cert_cipher: String,
    /// Bits of the RSA key with `--dtls-cert-cipher=RSA`.
    #[arg(long, value_name = "INT", default_value_t = 2048)]
    pub dtls_rsa_key_size: u32,
    /// Largest DTLS datagram, bytes (at least 576).
    #[arg(long, value_name = "INT", default_value_t = crate::crypto::dtls::DEFAULT_MTU)]
    pub dtls_mtu: u32,
    /// OpenSSL cipher list of DTLS handshakes.
    #[arg(long, value_name = "LIST", default_value = crate::crypto::dtls::DEFAULT_CIPHERS)]
    pub dtls_ciphers: String,

    /// Do not detach from the terminal.
    #[arg(short = 'f', long)]
    pub foreground: bool,
    /// Log to standard error instead of syslog (with `--foreground`).
    #[arg(short = 'E', long)]
    pub log_stderr: bool,
    /// Log level as syslog's 0 (emergencies only) to 7 (debug); the
    /// default for every `--log-level-<subsystem>`.
    #[arg(short = 'L', long, value_name = "INT", default_value_t = 6, allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(-1..=15))]
    pub log_level: i32,
    /// Per-subsystem levels given (`--log-level-<subsystem>`; index into
    /// [`crate::logging::SUBSYSTEMS`]).
    #[arg(skip)]
    pub log_levels: Vec<(usize, i32)>,
    /// No timestamps on stderr lines (journald and container runtimes add
    /// their own).
    #[arg(long)]
    pub no_log_timestamps: bool,
    /// Syslog facility.
    #[arg(long, value_name = "NAME", default_value = "daemon", value_parser = parse_facility)]
    pub log_facility: String,
    /// Syslog ident.
    #[arg(long, value_name = "STRING", default_value = "rtpengine")]
    pub log_name: String,
    /// Worker threads (default: one per core); also the relay thread count
    /// unless `--media-num-threads` is given.
    #[arg(long, value_name = "INT", value_parser = clap::value_parser!(u16).range(1..))]
    pub num_threads: Option<u16>,
    /// Userspace relay threads (default: `--num-threads`, else one per core).
    #[arg(long, value_name = "INT", value_parser = clap::value_parser!(u16).range(1..))]
    pub media_num_threads: Option<u16>,
    /// Longest a packet waits so that a relay thread handles many packets per
    /// wake-up, in microseconds; 0 = wake for every packet (an extension).
    #[arg(long, value_name = "USEC", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub media_coalesce: u32,
    /// Write the process id to this file.
    #[arg(short = 'p', long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
}

/// A `--log-facility` name this daemon can log with.
fn parse_facility(s: &str) -> Result<String, String> {
    match crate::logging::facility(s) {
        Some(_) => Ok(s.to_owned()),
        None => Err(format!(
            "'{s}' is not a facility for daemons (use daemon, user, local0..local7, auth, authpriv, cron, ftp, lpr, mail, news or uucp)"
        )),
    }
}

impl Config {
    /// How to log, from the logging options.
    pub fn log_options(&self) -> crate::logging::Options {
        crate::logging::Options {
            level: self.log_level,
            subsystems: self.log_levels.clone(),
            destination: crate::logging::Destination::of(self.foreground, self.log_stderr),
            timestamps: !self.no_log_timestamps,
            facility: crate::logging::facility(&self.log_facility)
                .unwrap_or(syslog_tracing::Facility::Daemon),
            ident: self.log_name.clone(),
        }
    }

    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        self.kernel_table()?;
        // Room for at least one even RTP port with its RTCP port after it.
        if self.port_min == 0 || u32::from(self.port_min) + 1 > u32::from(self.port_max) {
            bail!(
                "invalid port range {}-{}: need 0 < port-min < port-max (RTP and RTCP need two ports)",
                self.port_min,
                self.port_max
            );
        }
        self.interface_config()?;
        self.ng_addrs()?;
        listen_addrs("--listen-tcp-ng", &self.listen_tcp_ng)?;
        listen_addrs("--listen-udp", &self.listen_udp)?;
        listen_addrs("--listen-http", &self.listen_http)?;
        listen_addrs("--listen-cli", &self.listen_cli)?;
        Ok(())
    }

    /// The kernel table to own (`None`: userspace relaying only).
    pub fn kernel_table(&self) -> anyhow::Result<Option<TableId>> {
        TableId::from_option(self.table).context("invalid --table (0..63, or negative for none)")
    }

    /// The bounds of every TCP control listener.
    pub fn control_bounds(&self) -> crate::server::limits::Bounds {
        crate::server::limits::Bounds {
            total: self.control_max_connections,
            per_source: self.control_max_connections_per_source,
            idle: (self.control_idle_timeout > 0)
                .then(|| std::time::Duration::from_secs(self.control_idle_timeout)),
        }
    }

    /// `--kernel-lease` (`None`: never expires).
    pub fn kernel_lease(&self) -> Option<std::time::Duration> {
        (self.kernel_lease > 0).then(|| std::time::Duration::from_secs(self.kernel_lease))
    }

    /// What the call model needs of the options.
    pub fn call_settings(&self) -> call::Settings {
        call::Settings {
            learning: self.endpoint_learning,
            tos: self.tos,
            timeout: self.timeout.into(),
            silent_timeout: self.silent_timeout.into(),
            offer_timeout: self.offer_timeout.into(),
            final_timeout: self.final_timeout.into(),
            delete_delay: self.delete_delay.into(),
            max_sessions: self.max_sessions,
            dtls_passive: self.dtls_passive,
        }
    }

    /// The DTLS certificate's key type.
    pub fn dtls_key(&self) -> crate::crypto::dtls::KeyType {
        match self.dtls_cert_cipher.as_str() {
            "RSA" => crate::crypto::dtls::KeyType::Rsa(self.dtls_rsa_key_size),
            _ => crate::crypto::dtls::KeyType::Ec,
        }
    }

    /// The interfaces, parsed: `--interface` values, then the
    /// `interfaces-config` sections (as upstream); `127.0.0.1` when none is
    /// configured.
    pub fn interface_config(&self) -> anyhow::Result<InterfaceConfig> {
        let mut out = InterfaceConfig::default();
        for i in &self.interfaces {
            out.add(i)?;
        }
        for (ident, keys) in &self.interface_sections {
            match parse_section(ident, keys)? {
                Entry::Addresses(a) => out.specs.extend(a),
                Entry::Alias(a) => out.aliases.push(a),
            }
        }
        if out.specs.is_empty() {
            out.add("127.0.0.1")?;
        }
        Ok(out)
    }

    /// The ng UDP addresses; `127.0.0.1:2223` when none is configured.
    pub fn ng_addrs(&self) -> anyhow::Result<Vec<SocketAddr>> {
        if self.listen_ng.is_empty() {
            return Ok(vec![SocketAddr::from(([127, 0, 0, 1], 2223))]);
        }
        listen_addrs("--listen-ng", &self.listen_ng)
    }

    /// The ng TCP addresses.
    pub fn tcp_ng_addrs(&self) -> anyhow::Result<Vec<SocketAddr>> {
        listen_addrs("--listen-tcp-ng", &self.listen_tcp_ng)
    }

    /// The legacy rtpproxy-protocol addresses.
    pub fn rtpproxy_addrs(&self) -> anyhow::Result<Vec<SocketAddr>> {
        listen_addrs("--listen-udp", &self.listen_udp)
    }

    /// The CLI addresses.
    pub fn cli_addrs(&self) -> anyhow::Result<Vec<SocketAddr>> {
        listen_addrs("--listen-cli", &self.listen_cli)
    }

    /// The HTTP/WebSocket addresses.
    pub fn http_addrs(&self) -> anyhow::Result<Vec<SocketAddr>> {
        listen_addrs("--listen-http", &self.listen_http)
    }
}

/// Every address of a repeatable listen option.
fn listen_addrs(option: &str, values: &[String]) -> anyhow::Result<Vec<SocketAddr>> {
    let mut out = Vec::new();
    for v in values {
        out.extend(parse_listen(v).with_context(|| format!("invalid {option}"))?);
    }
    Ok(out)
}

/// Parses `[IP:]PORT` (IPv6 as `[addr]:port`). A bare port means every
/// address, as upstream: one socket for IPv4 and one (IPv6-only) for IPv6.
pub fn parse_listen(s: &str) -> anyhow::Result<Vec<SocketAddr>> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(vec![
            SocketAddr::from(([0, 0, 0, 0], port)),
            SocketAddr::from(([0u16; 8], port)),
        ]);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(vec![sa]);
    }
    if let Some((host, port)) = s.rsplit_once(':') {
        if host == "localhost" {
            if let Ok(port) = port.parse::<u16>() {
                return Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]);
            }
        }
    }
    bail!("'{s}' is not [IP:]PORT")
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn load(args: &[&str]) -> anyhow::Result<Config> {
        let mut v = vec!["rtpengine"];
        v.extend(args);
        Config::load_from(v)
            .map(|(c, _)| c)
            .map_err(anyhow::Error::from)
    }

    #[test]
    fn defaults() {
        let c = load(&["--config-file=none"]).unwrap();
        assert_eq!(c.kernel_table().unwrap(), None);
        assert_eq!(
            c.ng_addrs().unwrap(),
            vec!["127.0.0.1:2223".parse().unwrap()]
        );
        assert_eq!(c.timeout, 60);
        assert_eq!(c.delete_delay, 30);
        assert_eq!(c.endpoint_learning, EndpointLearning::Heuristic);
        assert_eq!(
            c.interface_config().unwrap().specs[0].address,
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn upstream_style_command_line() {
        let c = load(&[
            "--config-file=none",
            "-t",
            "-1",
            "-i",
            "203.0.113.1",
            "-n",
            "2223",
            "-f",
            "-L",
            "7",
            "-E",
            "--endpoint-learning=delayed",
            "--interface=pub/10.0.0.1!203.0.113.9",
        ])
        .unwrap();
        assert_eq!(c.log_level, 7);
        assert!(c.foreground && c.log_stderr);
        assert_eq!(c.endpoint_learning, EndpointLearning::Delayed);
        let ifs = c.interface_config().unwrap().specs;
        assert_eq!(ifs.len(), 2);
        assert_eq!(ifs[1].name, "pub");
        assert_eq!(ifs[1].advertised, "203.0.113.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn bad_values_are_errors() {
        for bad in [
            &["--config-file=none", "--table=64"][..],
            &["--config-file=none", "--port-min=5000", "--port-max=4000"],
            &["--config-file=none", "--log-level=16"],
            &["--config-file=none", "--log-level-core=x"],
            &["--config-file=none", "--log-facility=kern"],
            &["--config-file=none", "--templates=t"],
            &["--config-file=none", "--interfaces-config=interface"],
            &["--config-file=none", "--interface=x/"],
            &["--config-file=none", "--interface=nosuchdev0"],
            &["--config-file=none", "--interface=1.2.3.4!bad"],
            &["--config-file=none", "--listen-ng=foo"],
            &["--config-file=none", "--tos=300"],
            &["--config-file=none", "--endpoint-learning=maybe"],
            &["--config-file=none", "--bogus"],
            &["--config-file=/nonexistent/rtpengine.conf"],
        ] {
            assert!(load(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn listen_forms() {
        let one = |s: &str| vec![s.parse::<SocketAddr>().unwrap()];
        assert_eq!(
            parse_listen("22222").unwrap(),
            vec![
                "0.0.0.0:22222".parse::<SocketAddr>().unwrap(),
                "[::]:22222".parse().unwrap()
            ],
            "a bare port listens everywhere, as upstream"
        );
        assert_eq!(parse_listen("0.0.0.0:22222").unwrap(), one("0.0.0.0:22222"));
        assert_eq!(parse_listen("[::1]:2223").unwrap(), one("[::1]:2223"));
        assert_eq!(parse_listen("localhost:9").unwrap(), one("127.0.0.1:9"));
    }
}
