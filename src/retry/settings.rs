//! Retry timing, as `config` validates it into the retry policy's own type.

use std::time::Duration;

/// Timing of retries when the platform does not say when to come back.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySettings {
    pub base: Duration,
    pub cap: Duration,
    pub max_elapsed: Duration,
    pub max_attempts: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(60),
            max_elapsed: Duration::from_secs(600),
            max_attempts: 10,
        }
    }
}
