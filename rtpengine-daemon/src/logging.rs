//! Logging: the subscriber, and the log level that signals and the CLI
//! change while the daemon runs.
//!
//! Levels are syslog's, as upstream's `--log-level`: 0–3 errors, 4
//! warnings, 5–6 notices/info, 7 debug. `SIGUSR1` lowers the level by one,
//! `SIGUSR2` raises it (bounded to 0..=7; upstream lets it run past both
//! ends).

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU8, Ordering};

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Highest (most verbose) level.
pub const MAX_LEVEL: u8 = 7;

/// The installed subscriber's level, changeable at run time.
pub struct Logging {
    level: AtomicU8,
    filter: reload::Handle<EnvFilter, Registry>,
}

/// The tracing filter of a syslog level.
fn filter_of(level: u8) -> EnvFilter {
    EnvFilter::new(match level {
        0..=3 => "error",
        4 => "warn",
        5 | 6 => "info",
        _ => "debug",
    })
}

impl Logging {
    /// Installs the global subscriber at `level` (`RTPENGINE_LOG`, a tracing
    /// filter, overrides it until the level is changed). Log lines go to
    /// stderr, in colour only for a person at a terminal (never into files,
    /// pipes or journald, and never with `NO_COLOR`, see no-color.org).
    pub fn init(level: u8) -> Logging {
        let level = level.min(MAX_LEVEL);
        let filter = EnvFilter::try_from_env("RTPENGINE_LOG").unwrap_or_else(|_| filter_of(level));
        let (filter, handle) = reload::Layer::new(filter);
        let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi);
        tracing_subscriber::registry().with(filter).with(fmt).init();
        Logging {
            level: AtomicU8::new(level),
            filter: handle,
        }
    }

    /// The level now.
    pub fn level(&self) -> u8 {
        self.level.load(Ordering::Relaxed)
    }

    /// Sets the level (clamped to 0..=7) and returns it.
    pub fn set(&self, level: u8) -> u8 {
        let level = level.min(MAX_LEVEL);
        self.level.store(level, Ordering::Relaxed);
        if let Err(e) = self.filter.reload(filter_of(level)) {
            tracing::warn!(error = %e, "Failed to change the log level");
        }
        level
    }

    /// One step less verbose (`SIGUSR1`).
    pub fn lower(&self) -> u8 {
        self.set(self.level().saturating_sub(1))
    }

    /// One step more verbose (`SIGUSR2`).
    pub fn raise(&self) -> u8 {
        self.set(self.level().saturating_add(1))
    }
}
