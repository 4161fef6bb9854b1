//! `rtpengine-ctl`: the operator's CLI client, with the arguments of the
//! Perl script in Debian's `rtpengine-utils`, so no Perl is needed:
//!
//! ```text
//! rtpengine-ctl [-ip <address>[:<port>]] [-port <port>] [-config-file <file>] <command words…>
//! ```
//!
//! The words are sent as one line to the daemon's `--listen-cli` socket
//! and the reply is printed as it arrives. Defaults: `listen-cli` from the
//! `[rtpengine]` section of `/etc/rtpengine/rtpengine.conf` when the file
//! exists, else 127.0.0.1:9900. Options end at the first command word.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use rtpengine::config::parse_ini;

const DEFAULT_CONFIG: &str = "/etc/rtpengine/rtpengine.conf";
const DEFAULT_PORT: u16 = 9900;
/// The Perl client's send/receive timeout.
const TIMEOUT: Duration = Duration::from_secs(3);

const USAGE: &str = "\
usage: rtpengine-ctl [ -ip <ipaddress>[:<port>] -port <port> ] [ -config-file <file> ] <command>

Sends <command> to rtpengine's CLI (--listen-cli) and prints the reply.
Commands: list|get <what>, set <what> <value>, terminate <call-id>|all|own|foreign;
`rtpengine-ctl help` and `rtpengine-ctl list help` ask the daemon for its words.
";

#[derive(Debug, Default, PartialEq)]
struct Args {
    ip: Option<String>,
    port: Option<String>,
    config: Option<String>,
    help: bool,
    words: Vec<String>,
}

/// Getopt::Long with `require_order`: `-opt`/`--opt`, value attached with
/// `=` or in the next argument; the first non-option ends the options.
fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            a.words.extend(it.by_ref().cloned());
            break;
        }
        let Some(opt) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            a.words.push(arg.clone());
            a.words.extend(it.by_ref().cloned());
            break;
        };
        let (name, inline) = match opt.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (opt, None),
        };
        let slot = match name {
            "h" | "help" => {
                a.help = true;
                continue;
            }
            "ip" => &mut a.ip,
            "port" => &mut a.port,
            "config-file" => &mut a.config,
            _ => return Err(format!("Unknown option: {name}")),
        };
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| format!("Option {name} requires an argument"))?,
        };
        *slot = Some(value);
    }
    Ok(a)
}

/// Where to connect: options first, then `listen-cli` from the config file
/// (a bare number is a port, anything else an address), then the defaults.
fn target(a: &Args) -> Result<(String, u16), String> {
    let mut ip = a.ip.clone();
    let mut port = match &a.port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("invalid port '{p}'"))?,
        ),
        None => None,
    };
    let file = a.config.as_deref().unwrap_or(DEFAULT_CONFIG);
    if let Ok(text) = std::fs::read_to_string(file) {
        let keys = parse_ini(&text, "rtpengine").map_err(|e| format!("{file}: {e:#}"))?;
        // The last `listen-cli` wins, and of a `;` list the first entry.
        let listen = keys
            .get("listen-cli")
            .and_then(|v| v.last())
            .and_then(|v| v.split(';').next())
            .map(str::trim);
        match listen {
            Some(l) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => {
                port = port.or(l.parse().ok());
            }
            Some(l) if !l.is_empty() => ip = ip.or(Some(l.to_owned())),
            _ => {}
        }
    }
    let ip = ip.unwrap_or_else(|| "127.0.0.1".to_owned());
    // `address:port`, `[v6]:port`, or a bare address.
    if let Ok(sa) = ip.parse::<SocketAddr>() {
        return Ok((sa.ip().to_string(), port.unwrap_or(sa.port())));
    }
    if let Ok(addr) = ip.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok((addr.to_string(), port.unwrap_or(DEFAULT_PORT)));
    }
    match ip.rsplit_once(':') {
        Some((host, p)) if p.parse::<u16>().is_ok() => Ok((
            host.to_owned(),
            port.unwrap_or(p.parse().unwrap_or(DEFAULT_PORT)),
        )),
        _ => Ok((ip, port.unwrap_or(DEFAULT_PORT))),
    }
}

fn run(host: &str, port: u16, line: &str) -> Result<(), String> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("Cannot connect to the rtpengine {e}"))?
        .collect();
    let mut last = None;
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let mut s = stream.ok_or_else(|| {
        let why = last.map_or_else(|| "no address".to_owned(), |e| e.to_string());
        format!("Cannot connect to the rtpengine {why}")
    })?;
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| format!("sending to the rtpengine: {e}"))?;
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.write_all(&buf[..n]).map_err(|e| e.to_string())?,
            // Like the Perl client: a silent daemon ends the reply.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => return Err(format!("reading from the rtpengine: {e}")),
        }
    }
    out.flush().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            print!("{USAGE}");
            return ExitCode::from(1);
        }
    };
    if args.help {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let line = args.words.join(" ");
    let line = line.trim();
    let (host, port) = match target(&args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            print!("{USAGE}");
            return ExitCode::from(1);
        }
    };
    if line.is_empty() {
        print!("{USAGE}");
        return ExitCode::from(1);
    }
    match run(&host, port, line) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options_end_at_the_first_word() {
        let a = parse_args(&args(&["-ip", "10.0.0.1:2224", "list", "-port", "x"])).unwrap();
        assert_eq!(a.ip.as_deref(), Some("10.0.0.1:2224"));
        assert_eq!(a.words, ["list", "-port", "x"]);
        let a = parse_args(&args(&["--port=9901", "terminate", "all"])).unwrap();
        assert_eq!(a.port.as_deref(), Some("9901"));
        assert!(parse_args(&args(&["-bogus", "list"])).is_err());
        assert!(parse_args(&args(&["-ip"])).is_err());
    }

    #[test]
    fn address_forms() {
        let t = |ip: Option<&str>, port: Option<&str>| {
            target(&Args {
                ip: ip.map(str::to_owned),
                port: port.map(str::to_owned),
                config: Some("/nonexistent".into()),
                ..Args::default()
            })
        };
        assert_eq!(t(None, None).unwrap(), ("127.0.0.1".into(), 9900));
        assert_eq!(
            t(Some("10.0.0.1:2224"), None).unwrap(),
            ("10.0.0.1".into(), 2224)
        );
        assert_eq!(
            t(Some("10.0.0.1:2224"), Some("5")).unwrap(),
            ("10.0.0.1".into(), 5)
        );
        assert_eq!(t(Some("[::1]:2224"), None).unwrap(), ("::1".into(), 2224));
        assert_eq!(t(Some("::1"), None).unwrap(), ("::1".into(), 9900));
        assert_eq!(
            t(Some("localhost:77"), None).unwrap(),
            ("localhost".into(), 77)
        );
        assert!(t(None, Some("0")).is_err());
        assert!(t(None, Some("70000")).is_err());
    }
}
