//! The store's clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix milliseconds now: the clock of every time the library records.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
