//! Command line and configuration file, with rtpengine's option names.
//!
//! The INI file (`--config-file`, section `[rtpengine]` or `--config-section`)
//! uses the long option names as keys. Command-line options override the file;
//! for the repeatable `interface`, any `--interface` on the command line
//! replaces the file's list. `--config-file=none` disables the file.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::{CommandFactory, Parser, ValueEnum};

/// The file read when `--config-file` is not given (as upstream's packages).
pub const DEFAULT_CONFIG_FILE: &str = "/etc/rtpengine/rtpengine.conf";

/// How a stream learns its peer's real address (`--endpoint-learning`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum EndpointLearning {
    /// Track sources for 3 s after signalling; the next packet confirms.
    Delayed,
    /// The first packet's source confirms.
    Immediate,
    /// Never learn; send to the SDP address.
    Off,
    /// Rank sources by how well they match the SDP for 3 s (upstream default).
    #[default]
    Heuristic,
}

/// XDP attach mode (`--xdp-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum XdpMode {
    /// Native (driver) mode where the driver supports it, else generic.
    #[default]
    Auto,
    /// Native mode only.
    Native,
    /// Generic (SKB) mode only.
    Generic,
}

/// rtpengine's command-line options (the subset this daemon knows).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "rtpengine",
    version,
    about = "rtpengine-compatible media proxy (Rust, eBPF offload)",
    // A later occurrence wins, as with upstream (and as the file merge needs).
    args_override_self = true
)]
pub struct Config {
    /// Configuration file ("none" to skip).
    #[arg(long, value_name = "FILE")]
    pub config_file: Option<String>,
    /// Section of the configuration file to read.
    #[arg(long, value_name = "STRING", default_value = "rtpengine")]
    pub config_section: String,

    /// Kernel forwarding table 0..63 to own; negative = userspace relaying only.
    #[arg(short = 't', long, value_name = "INT", default_value_t = -1, allow_negative_numbers = true)]
    pub table: i32,
    /// Exit instead of relaying in userspace when the kernel table is unusable.
    #[arg(short = 'F', long)]
    pub no_fallback: bool,
    /// Network device to attach the XDP dataplane to (repeatable; default: the
    /// devices that carry the `--interface` addresses).
    #[arg(long = "xdp-device", value_name = "DEV")]
    pub xdp_devices: Vec<String>,
    /// XDP attach mode: native (driver) with generic fallback, or one of them only.
    #[arg(long, value_enum, default_value_t = XdpMode::Auto)]
    pub xdp_mode: XdpMode,
    /// bpffs directory of the shared forwarding maps.
    #[arg(long, value_name = "DIR", default_value = "/sys/fs/bpf/rtpengine/v1")]
    pub bpf_pin_dir: PathBuf,
    /// Print the entries of kernel table N (from the pinned maps) and exit.
    #[arg(long, value_name = "N")]
    pub dump_table: Option<u32>,

    /// Local media interface `[NAME/]IP[!ADVERTISED]` (repeatable).
    #[arg(short = 'i', long = "interface", value_name = "[NAME/]IP[!IP]")]
    pub interfaces: Vec<String>,
    /// UDP address for the ng control protocol, `[IP:]PORT`.
    #[arg(short = 'n', long, value_name = "[IP:]PORT")]
    pub listen_ng: Option<String>,
    /// TCP address for the ng control protocol, `[IP:]PORT`.
    #[arg(short = 'N', long, value_name = "[IP:]PORT")]
    pub listen_tcp_ng: Option<String>,
    /// HTTP/WebSocket address for the ng control protocol, `[IP:]PORT`.
    #[arg(long, value_name = "[IP:]PORT")]
    pub listen_http: Option<String>,

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
    /// How streams learn their peer's address.
    #[arg(long, value_enum, default_value_t = EndpointLearning::Heuristic)]
    pub endpoint_learning: EndpointLearning,
    /// Largest number of concurrent calls (-1 = unlimited).
    #[arg(long, value_name = "INT", default_value_t = -1, allow_negative_numbers = true)]
    pub max_sessions: i64,

    /// Do not detach from the terminal.
    #[arg(short = 'f', long)]
    pub foreground: bool,
    /// Log to standard error (this daemon always does; accepted for compatibility).
    #[arg(short = 'E', long)]
    pub log_stderr: bool,
    /// Log level as syslog's 0 (emergencies only) to 7 (debug).
    #[arg(short = 'L', long, value_name = "INT", default_value_t = 6, value_parser = clap::value_parser!(u8).range(0..=7))]
    pub log_level: u8,
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

/// Options upstream has that this daemon accepts in a configuration file but
/// does not implement; each one found is reported at startup.
const UNIMPLEMENTED_KEYS: &[&str] = &[
    "listen-cli",
    "listen-tcp",
    "listen-udp",
    "listen-https",
    "log-facility",
    "log-facility-cdr",
    "log-facility-rtcp",
    "recording-dir",
    "recording-method",
    "recording-format",
    "redis",
    "redis-write",
    "redis-num-threads",
    "homer",
    "homer-protocol",
    "homer-id",
    "sip-source",
    "dtls-passive",
    "b2b-url",
    "xmlrpc-format",
    "graphite",
    "graphite-interval",
    "max-load",
    "max-cpu",
    "max-bandwidth",
    "num-media-threads",
    "codec-num-threads",
    "nftables-chain",
    "nftables-base-chain",
    "nftables-family",
    "no-log-timestamps",
    "log-name",
    "log-mark-prefix",
    "log-mark-suffix",
];

/// A parsed `--interface` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceSpec {
    /// Logical interface name (`default` when not given).
    pub name: String,
    /// Local address media sockets bind to.
    pub address: IpAddr,
    /// Address written into SDP (the local one unless `!ADV` was given).
    pub advertised: IpAddr,
}

impl Config {
    /// Parses the process arguments and the configuration file.
    pub fn load() -> anyhow::Result<(Config, Vec<String>)> {
        Self::load_from(std::env::args_os())
    }

    /// Parses `args` (program name first) and the configuration file they name.
    /// Returns the configuration and warnings to log once logging is up.
    pub fn load_from<I, T>(args: I) -> anyhow::Result<(Config, Vec<String>)>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let cli = Config::try_parse_from(&args).map_err(clap_err)?;
        let mut warnings = Vec::new();
        let file = match cli.config_file.as_deref() {
            Some("none") => None,
            Some(f) => Some(PathBuf::from(f)),
            None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.exists()),
        };
        let Some(file) = file else {
            cli.validate()?;
            return Ok((cli, warnings));
        };
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading config file {}", file.display()))?;
        let section = parse_ini(&text, &cli.config_section)
            .with_context(|| format!("parsing config file {}", file.display()))?;

        let matches = Config::command()
            .try_get_matches_from(&args)
            .map_err(clap_err)?;
        let known: Vec<String> = Config::command()
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_owned))
            .collect();
        let mut merged: Vec<OsString> =
            vec![args.first().cloned().unwrap_or_else(|| "rtpengine".into())];
        for (key, values) in &section {
            if !known.contains(key) {
                if UNIMPLEMENTED_KEYS.contains(&key.as_str()) {
                    warnings.push(format!(
                        "config option '{key}' is not implemented by this daemon and is ignored"
                    ));
                    continue;
                }
                bail!("unknown option '{key}' in config file {}", file.display());
            }
            let id = Config::command()
                .get_arguments()
                .find(|a| a.get_long() == Some(key))
                .map(|a| a.get_id().to_string())
                .unwrap_or_default();
            // Command line wins over the file.
            if matches.value_source(&id) == Some(clap::parser::ValueSource::CommandLine) {
                continue;
            }
            let is_flag = Config::command()
                .get_arguments()
                .any(|a| a.get_long() == Some(key) && !a.get_action().takes_values());
            for v in values {
                if is_flag {
                    match v.to_ascii_lowercase().as_str() {
                        "true" | "yes" | "1" | "on" => merged.push(format!("--{key}").into()),
                        "false" | "no" | "0" | "off" => {}
                        _ => bail!("option '{key}' in config file wants true or false, got '{v}'"),
                    }
                } else {
                    merged.push(format!("--{key}={v}").into());
                }
            }
        }
        merged.extend(args.iter().skip(1).cloned());
        let cfg = Config::try_parse_from(merged).map_err(clap_err)?;
        cfg.validate()?;
        Ok((cfg, warnings))
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.table >= rtpengine_common::MAX_TABLES as i32 {
            bail!(
                "--table must be below {} (or negative)",
                rtpengine_common::MAX_TABLES
            );
        }
        // Room for at least one even RTP port with its RTCP port after it.
        if self.port_min == 0 || u32::from(self.port_min) + 1 > u32::from(self.port_max) {
            bail!(
                "invalid port range {}-{}: need 0 < port-min < port-max (RTP and RTCP need two ports)",
                self.port_min,
                self.port_max
            );
        }
        self.interface_specs()?;
        self.ng_addr()?;
        for (name, v) in [
            ("--listen-tcp-ng", &self.listen_tcp_ng),
            ("--listen-http", &self.listen_http),
        ] {
            if let Some(v) = v {
                parse_listen(v).with_context(|| format!("invalid {name}"))?;
            }
        }
        Ok(())
    }

    /// The interfaces, parsed; `127.0.0.1` when none is configured.
    pub fn interface_specs(&self) -> anyhow::Result<Vec<InterfaceSpec>> {
        if self.interfaces.is_empty() {
            return parse_interface("127.0.0.1");
        }
        let mut out = Vec::new();
        for i in &self.interfaces {
            out.extend(parse_interface(i)?);
        }
        Ok(out)
    }

    /// The ng UDP address; `127.0.0.1:2223` when none is configured.
    pub fn ng_addr(&self) -> anyhow::Result<SocketAddr> {
        parse_listen(self.listen_ng.as_deref().unwrap_or("127.0.0.1:2223"))
            .context("invalid --listen-ng")
    }
}

fn clap_err(e: clap::Error) -> anyhow::Error {
    // Keep clap's own formatting (it explains the bad value and the usage).
    anyhow::anyhow!("{}", e.render().to_string().trim_end())
}

/// Parses `[IP:]PORT` (IPv6 as `[addr]:port`); a bare port binds 127.0.0.1 as
/// upstream's documentation recommends for the control port.
pub fn parse_listen(s: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(sa);
    }
    if let Some((host, port)) = s.rsplit_once(':') {
        if host == "localhost" {
            if let Ok(port) = port.parse::<u16>() {
                return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
            }
        }
    }
    bail!("'{s}' is not [IP:]PORT")
}

/// Parses one `--interface` value: `[NAME/]IP[!ADVERTISED]`, where IP is an
/// address or the name of a system network device (all its addresses).
pub fn parse_interface(s: &str) -> anyhow::Result<Vec<InterfaceSpec>> {
    let (name, rest) = match s.split_once('/') {
        // An IPv6 address never contains '/', so a slash always ends a name.
        Some((n, r)) if !n.is_empty() => (n.to_owned(), r),
        Some(_) => bail!("interface '{s}': empty name before '/'"),
        None => ("default".to_owned(), s),
    };
    let (addr, adv) = match rest.split_once('!') {
        Some((a, adv)) => (
            a,
            Some(
                adv.parse::<IpAddr>()
                    .with_context(|| format!("interface '{s}': bad advertised address '{adv}'"))?,
            ),
        ),
        None => (rest, None),
    };
    let addrs = match addr.parse::<IpAddr>() {
        Ok(a) => vec![a],
        Err(_) => device_addresses(addr).with_context(|| {
            format!("interface '{s}': '{addr}' is neither an address nor a network device")
        })?,
    };
    Ok(addrs
        .into_iter()
        .map(|address| InterfaceSpec {
            name: name.clone(),
            address,
            advertised: adv.unwrap_or(address),
        })
        .collect())
}

/// Every (device name, address) pair of the host's network devices.
fn local_addresses() -> std::io::Result<Vec<(String, IpAddr)>> {
    let mut out = Vec::new();
    // SAFETY: getifaddrs allocates a list we walk read-only and free once;
    // each ifa_addr is read as the sockaddr type its family names.
    unsafe {
        let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut ifap) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut p = ifap;
        while !p.is_null() {
            let ifa = &*p;
            if !ifa.ifa_addr.is_null() {
                let addr = match i32::from((*ifa.ifa_addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                        Some(IpAddr::from(
                            u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                        ))
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                        Some(IpAddr::from(sin6.sin6_addr.s6_addr))
                    }
                    _ => None,
                };
                if let Some(addr) = addr {
                    let name = std::ffi::CStr::from_ptr(ifa.ifa_name)
                        .to_string_lossy()
                        .into_owned();
                    out.push((name, addr));
                }
            }
            p = ifa.ifa_next;
        }
        libc::freeifaddrs(ifap);
    }
    Ok(out)
}

/// Addresses of a network device.
fn device_addresses(dev: &str) -> anyhow::Result<Vec<IpAddr>> {
    let out: Vec<IpAddr> = local_addresses()?
        .into_iter()
        .filter(|(name, _)| name == dev)
        .map(|(_, a)| a)
        // Link-local IPv6 addresses need a scope; SDP cannot carry one.
        .filter(|a| !matches!(a, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80))
        .collect();
    if out.is_empty() {
        bail!("no such device or it has no addresses");
    }
    Ok(out)
}

/// Parses an INI file and returns the keys of `section` (values of repeated
/// keys in order; `;`-separated values split, as glib key files do for lists).
pub fn parse_ini(text: &str, section: &str) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let Some(name) = name.strip_suffix(']') else {
                bail!("line {}: unterminated section header", n + 1);
            };
            current = Some(name.trim().to_owned());
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            bail!("line {}: expected key = value", n + 1);
        };
        if current.as_deref() != Some(section) {
            continue;
        }
        let key = k.trim().to_owned();
        let entry = out.entry(key.clone()).or_default();
        if key == "interface" {
            entry.extend(
                v.split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
        } else {
            entry.push(v.trim().to_owned());
        }
    }
    Ok(out)
}

/// Network devices that carry any of `addrs` (for attaching XDP).
pub fn devices_of(addrs: &[IpAddr]) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for (name, addr) in local_addresses()? {
        if addrs.contains(&addr) && !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// Writes the pid file.
pub fn write_pidfile(path: &Path) -> anyhow::Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id()))
        .with_context(|| format!("writing pid file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(args: &[&str]) -> anyhow::Result<Config> {
        let mut v = vec!["rtpengine"];
        v.extend(args);
        Config::load_from(v).map(|(c, _)| c)
    }

    #[test]
    fn defaults() {
        let c = load(&["--config-file=none"]).unwrap();
        assert_eq!(c.table, -1);
        assert_eq!(c.ng_addr().unwrap(), "127.0.0.1:2223".parse().unwrap());
        assert_eq!(c.timeout, 60);
        assert_eq!(c.delete_delay, 30);
        assert_eq!(c.endpoint_learning, EndpointLearning::Heuristic);
        assert_eq!(
            c.interface_specs().unwrap()[0].address,
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
        let ifs = c.interface_specs().unwrap();
        assert_eq!(ifs.len(), 2);
        assert_eq!(ifs[1].name, "pub");
        assert_eq!(ifs[1].advertised, "203.0.113.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn bad_values_are_errors() {
        for bad in [
            &["--config-file=none", "--table=64"][..],
            &["--config-file=none", "--port-min=5000", "--port-max=4000"],
            &["--config-file=none", "--log-level=9"],
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
        assert_eq!(
            parse_listen("2223").unwrap(),
            "127.0.0.1:2223".parse().unwrap()
        );
        assert_eq!(
            parse_listen("0.0.0.0:22222").unwrap(),
            "0.0.0.0:22222".parse().unwrap()
        );
        assert_eq!(
            parse_listen("[::1]:2223").unwrap(),
            "[::1]:2223".parse().unwrap()
        );
        assert_eq!(
            parse_listen("localhost:9").unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
    }

    #[test]
    fn ini_file_merges_under_command_line() {
        let dir = std::env::temp_dir().join(format!("rtpe-ini-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("rtpengine.conf");
        std::fs::write(
            &f,
            "# comment\n[other]\ntimeout = 1\n[rtpengine]\ntable = -1\ninterface = a/127.0.0.1;b/127.0.0.2\n\
             timeout = 20\nforeground = true\nlog-stderr = false\nlisten-ng = 127.0.0.1:2299\nrecording-dir = /tmp\n",
        )
        .unwrap();
        let path = f.to_str().unwrap();
        let (c, warnings) =
            Config::load_from(["rtpengine", "--config-file", path, "--timeout=30"]).unwrap();
        assert_eq!(c.timeout, 30, "command line wins");
        assert!(c.foreground);
        assert!(!c.log_stderr);
        assert_eq!(c.interfaces, vec!["a/127.0.0.1", "b/127.0.0.2"]);
        assert_eq!(c.ng_addr().unwrap().port(), 2299);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let (c, _) =
            Config::load_from(["rtpengine", "--config-file", path, "-i", "127.0.0.3"]).unwrap();
        assert_eq!(
            c.interfaces,
            vec!["127.0.0.3"],
            "command line interfaces replace the file's"
        );

        std::fs::write(&f, "[rtpengine]\nno-such-option = 1\n").unwrap();
        assert!(Config::load_from(["rtpengine", "--config-file", path]).is_err());
        std::fs::write(&f, "[rtpengine]\nforeground = maybe\n").unwrap();
        assert!(Config::load_from(["rtpengine", "--config-file", path]).is_err());
        std::fs::write(&f, "[rtpengine\n").unwrap();
        assert!(Config::load_from(["rtpengine", "--config-file", path]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
