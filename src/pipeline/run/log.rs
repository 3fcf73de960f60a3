//! Warnings from the stages, rate-limited.

use std::time::{Duration, Instant};
use tracing::warn;

use crate::error::Error;

/// Logs an error at most once per 5 s (a camera that fails at 30 fps must not flood the log).
pub(super) struct RateLimitedLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    pub(super) fn new() -> Self {
        RateLimitedLog {
            last: None,
            suppressed: 0,
        }
    }

    pub(super) fn warn(&mut self, what: &str, err: &Error) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(5))
        {
            self.suppressed += 1;
            return;
        }
        if self.suppressed > 0 {
            warn!(
                "{what}: {} ({} similar errors not shown)",
                err.chain(),
                self.suppressed
            );
        } else {
            warn!("{what}: {}", err.chain());
        }
        self.last = Some(Instant::now());
        self.suppressed = 0;
    }
}
