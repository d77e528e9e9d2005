//! A governor clock that reads tokio's clock.
//!
//! governor's default clock reads real time, which `tokio::time::pause()` does not
//! control; with this clock the budget's pacing and cooldowns can be tested with paused
//! time, and both agree on what "now" is.

use std::time::Duration;
use tokio::time::Instant;

/// Time since the clock was made, on tokio's clock.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    epoch: Instant,
}

impl TokioClock {
    pub fn new() -> Self {
        Self { epoch: Instant::now() }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl governor::clock::Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }
}
