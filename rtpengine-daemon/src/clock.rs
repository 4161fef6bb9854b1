//! Clocks: a cheap monotonic millisecond counter for packet timestamps, and
//! conversion to UNIX time for replies.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

fn epoch() -> &'static (Instant, SystemTime) {
    static EPOCH: OnceLock<(Instant, SystemTime)> = OnceLock::new();
    EPOCH.get_or_init(|| (Instant::now(), SystemTime::now()))
}

/// Milliseconds since the process clock started; never 0 (0 means "never").
pub fn now_ms() -> u64 {
    ms_of(Instant::now())
}

/// [`now_ms`] of an instant already read (one clock read per packet).
pub fn ms_of(t: Instant) -> u64 {
    t.saturating_duration_since(epoch().0).as_millis() as u64 + 1
}

/// UNIX seconds of a [`now_ms`] value.
pub fn unix_secs(ms: u64) -> u64 {
    let base = epoch().1.duration_since(UNIX_EPOCH).unwrap_or_default();
    (base.as_millis() as u64 + ms.saturating_sub(1)) / 1000
}

/// Current UNIX time.
pub fn unix_now() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
