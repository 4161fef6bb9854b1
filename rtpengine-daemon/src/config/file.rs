//! Reading the INI file and merging it under the command line.
//!
//! The file (`--config-file`, section `[rtpengine]` or `--config-section`)
//! uses the long option names as keys. Command-line options override the
//! file; for the repeatable `interface`, any `--interface` on the command
//! line replaces the file's list. `--config-file=none` disables the file.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::{CommandFactory, Parser};

use super::{Config, DEFAULT_CONFIG_FILE};

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
}

fn clap_err(e: clap::Error) -> anyhow::Error {
    // Keep clap's own formatting (it explains the bad value and the usage).
    anyhow::anyhow!("{}", e.render().to_string().trim_end())
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

#[cfg(test)]
mod tests {
    use super::*;

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
