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
use clap::builder::PossibleValuesParser;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};

use super::upstream::{Kind, Upstream, UNIMPLEMENTED};
use super::{Config, DEFAULT_CONFIG_FILE};
use crate::logging::SUBSYSTEMS;

impl Config {
    /// Parses the process arguments and the configuration file.
    pub fn load() -> Result<(Config, Vec<String>), LoadError> {
        Self::load_from(std::env::args_os())
    }

    /// Parses `args` (program name first) and the configuration file they
    /// name. Returns the configuration and warnings to log once logging is
    /// up: one for each upstream option given that this daemon does not
    /// implement.
    pub fn load_from<I, T>(args: I) -> Result<(Config, Vec<String>), LoadError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let cmd = command();
        let matches = cmd.clone().try_get_matches_from(&args).map_err(clap_err)?;
        let mut cli = Config::from_arg_matches(&matches).map_err(clap_err)?;
        cli.log_levels = subsystem_levels(&matches);
        let file = match cli.config_file.as_deref() {
            Some("none") => None,
            Some(f) => Some(PathBuf::from(f)),
            None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.exists()),
        };
        let Some(file) = file else {
            // Both name parts of a config file: without one they would be
            // ignored without a word.
            for (given, opt) in [
                (cli.templates.is_some(), "--templates"),
                (cli.interfaces_config.is_some(), "--interfaces-config"),
            ] {
                if given {
                    return Err(anyhow::anyhow!(
                        "{opt} names sections of a config file, but no config file is read"
                    )
                    .into());
                }
            }
            cli.validate()?;
            return Ok((cli, unimplemented_given(&matches)));
        };
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading config file {}", file.display()))?;
        // Parsed once: the options' section, and the sections other options
        // point at (`interfaces-config`, `templates`).
        let sections = parse_ini_sections(&text)
            .with_context(|| format!("parsing config file {}", file.display()))?;
        let section = section_of(&sections, &cli.config_section);

        let mut merged: Vec<OsString> =
            vec![args.first().cloned().unwrap_or_else(|| "rtpengine".into())];
        for (key, values) in &section {
            let Some(arg) = cmd.get_arguments().find(|a| a.get_long() == Some(key)) else {
                return Err(anyhow::anyhow!(
                    "unknown option '{key}' in config file {}",
                    file.display()
                )
                .into());
            };
            // The command line wins over the file (a list given there
            // replaces the file's list, as upstream).
            if matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine) {
                continue;
            }
            let list = matches!(arg.get_action(), ArgAction::Append);
            for v in values {
                if !arg.get_action().takes_values() {
                    match v.to_ascii_lowercase().as_str() {
                        "true" | "yes" | "1" | "on" => merged.push(format!("--{key}").into()),
                        "false" | "no" | "0" | "off" => {}
                        _ => {
                            return Err(anyhow::anyhow!(
                                "option '{key}' in config file wants true or false, got '{v}'"
                            )
                            .into())
                        }
                    }
                } else if list {
                    // glib key files separate list items with `;`.
                    for item in v.split(';').map(str::trim).filter(|i| !i.is_empty()) {
                        merged.push(format!("--{key}={item}").into());
                    }
                } else {
                    merged.push(format!("--{key}={v}").into());
                }
            }
        }
        merged.extend(args.iter().skip(1).cloned());
        let matches = cmd.try_get_matches_from(merged).map_err(clap_err)?;
        let mut cfg = Config::from_arg_matches(&matches).map_err(clap_err)?;
        cfg.log_levels = subsystem_levels(&matches);
        cfg.read_sections(&sections)
            .with_context(|| format!("config file {}", file.display()))?;
        cfg.validate()?;
        Ok((cfg, unimplemented_given(&matches)))
    }
}

impl Config {
    /// The sections other options point at: `interfaces-config` (every
    /// `[PREFIX-NAME]`) and `templates` (one section).
    fn read_sections(&mut self, sections: &[(String, Section)]) -> anyhow::Result<()> {
        if let Some(prefix) = self.interfaces_config.as_deref().filter(|p| !p.is_empty()) {
            let head = format!("{prefix}-");
            self.interface_sections = sections
                .iter()
                .filter_map(|(name, keys)| {
                    let ident = name.strip_prefix(&head).filter(|i| !i.is_empty())?;
                    Some((ident.to_owned(), keys.clone()))
                })
                .collect();
        }
        if let Some(t) = self.templates.as_deref().filter(|t| !t.is_empty()) {
            let (_, keys) = sections
                .iter()
                .find(|(name, _)| name == t)
                .ok_or_else(|| anyhow::anyhow!("templates section [{t}] not found"))?;
            self.template_values = keys
                .iter()
                .map(|(k, v)| (k.clone(), v.last().cloned().unwrap_or_default()))
                .collect();
        }
        Ok(())
    }
}

/// Why the configuration did not load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `--help` (or clap's own output): print this to stdout and exit 0.
    #[error("{0}")]
    Display(String),
    /// A bad option, value or file.
    #[error(transparent)]
    Invalid(#[from] anyhow::Error),
}

/// Our options plus upstream's unimplemented ones, with upstream's short
/// letters and value types.
pub(crate) fn command() -> Command {
    let cmd = SUBSYSTEMS
        .iter()
        .fold(Config::command(), |cmd, (name, what)| {
            cmd.arg(
                Arg::new(format!("log-level-{name}"))
                    .long(format!("log-level-{name}"))
                    .value_name("INT")
                    .help(format!("Log level for subsystem: {what}"))
                    .action(ArgAction::Set)
                    .allow_negative_numbers(true)
                    .value_parser(clap::value_parser!(i32)),
            )
        });
    UNIMPLEMENTED
        .iter()
        .fold(cmd, |cmd, u| cmd.arg(upstream_arg(u)))
}

/// `--log-level-<subsystem>` values given (0 means "not set", as upstream).
fn subsystem_levels(matches: &ArgMatches) -> Vec<(usize, i32)> {
    SUBSYSTEMS
        .iter()
        .enumerate()
        .filter_map(|(i, (name, _))| {
            let v = matches
                .get_one::<i32>(&format!("log-level-{name}"))
                .copied()?;
            (v != 0).then_some((i, v))
        })
        .collect()
}

fn upstream_arg(u: &Upstream) -> Arg {
    let mut a = Arg::new(u.long)
        .long(u.long)
        .help(u.what)
        .hide(true)
        .help_heading("Upstream options accepted but not implemented");
    if let Some(c) = u.short {
        a = a.short(c);
    }
    match u.kind {
        Kind::Flag => a.action(ArgAction::SetTrue),
        Kind::Int => a
            .action(ArgAction::Set)
            .allow_negative_numbers(true)
            .value_parser(clap::value_parser!(i64)),
        Kind::Double => a
            .action(ArgAction::Set)
            .value_parser(clap::value_parser!(f64)),
        Kind::Text => a.action(ArgAction::Set),
        Kind::List => a.action(ArgAction::Append),
        Kind::Enum(values) => a
            .action(ArgAction::Set)
            .value_parser(PossibleValuesParser::new(values.iter().copied())),
    }
}

/// One warning per unimplemented upstream option that was given.
fn unimplemented_given(matches: &ArgMatches) -> Vec<String> {
    UNIMPLEMENTED
        .iter()
        .filter(|u| matches.value_source(u.long) == Some(ValueSource::CommandLine))
        .map(|u| {
            format!(
                "option '{}' is not implemented by this daemon and is ignored ({})",
                u.long, u.what
            )
        })
        .collect()
}

fn clap_err(e: clap::Error) -> LoadError {
    use clap::error::ErrorKind;
    let text = e.render().to_string();
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            LoadError::Display(text)
        }
        // Keep clap's own formatting (it explains the bad value and the usage).
        _ => LoadError::Invalid(anyhow::anyhow!("{}", text.trim_end())),
    }
}

/// The keys of one INI section (values of repeated keys in order).
pub type Section = BTreeMap<String, Vec<String>>;

/// Parses an INI file and returns the keys of `section` (values of repeated
/// keys in order; list values are split by the caller, which knows which
/// options are lists).
pub fn parse_ini(text: &str, section: &str) -> anyhow::Result<Section> {
    Ok(section_of(&parse_ini_sections(text)?, section))
}

/// The keys of `section` (all its occurrences merged).
fn section_of(sections: &[(String, Section)], section: &str) -> Section {
    let mut all = Section::new();
    for (_, keys) in sections.iter().filter(|(name, _)| name == section) {
        for (k, v) in keys {
            all.entry(k.clone()).or_default().extend(v.iter().cloned());
        }
    }
    all
}

/// Every section of an INI file, in file order.
pub fn parse_ini_sections(text: &str) -> anyhow::Result<Vec<(String, Section)>> {
    let mut out: Vec<(String, Section)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let Some(name) = name.strip_suffix(']') else {
                bail!("line {}: unterminated section header", n + 1);
            };
            out.push((name.trim().to_owned(), Section::new()));
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            bail!("line {}: expected key = value", n + 1);
        };
        // Keys before any section header belong to none (glib refuses
        // them; they are ignored here).
        if let Some((_, keys)) = out.last_mut() {
            keys.entry(k.trim().to_owned())
                .or_default()
                .push(v.trim().to_owned());
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
        assert_eq!(c.ng_addrs().unwrap()[0].port(), 2299);
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
