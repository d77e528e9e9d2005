//! A sliding-log rate limit, as the simulated platform counts.
//!
//! A request is admitted when fewer than `limit` were admitted in the last `window`.
//! Refused requests are not counted. `reset` is when the oldest counted request leaves
//! the window, i.e. when the next slot frees up.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
pub struct SlidingWindow {
    limit: u32,
    window: Duration,
    hits: VecDeque<Instant>,
}

/// The window's state after an admitted request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub count: u32,
    pub allowed: u32,
    pub reset: Duration,
}

impl SlidingWindow {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            hits: VecDeque::new(),
        }
    }

    fn forget(&mut self, now: Instant) {
        while self.hits.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            self.hits.pop_front();
        }
    }

    fn reset(&self, now: Instant) -> Duration {
        self.hits.front().map_or(self.window, |oldest| {
            (*oldest + self.window).saturating_duration_since(now)
        })
    }

    /// `Err(wait)` when the window is full: the time until a slot frees.
    pub fn check(&mut self, now: Instant) -> Result<(), Duration> {
        self.forget(now);
        if self.hits.len() as u32 >= self.limit {
            Err(self.reset(now))
        } else {
            Ok(())
        }
    }

    /// Counts a request that [`SlidingWindow::check`] admitted.
    pub fn hit(&mut self, now: Instant) -> Usage {
        self.hits.push_back(now);
        self.usage(now)
    }

    pub fn usage(&mut self, now: Instant) -> Usage {
        self.forget(now);
        Usage {
            count: self.hits.len() as u32,
            allowed: self.limit,
            reset: self.reset(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn admits_limit_per_window_then_frees_slots_as_they_age() {
        let mut w = SlidingWindow::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        for _ in 0..3 {
            w.check(t0).unwrap();
            w.hit(t0);
        }
        assert_eq!(w.check(t0), Err(Duration::from_secs(10)));
        assert_eq!(w.check(t0 + Duration::from_secs(4)), Err(Duration::from_secs(6)));
        assert!(w.check(t0 + Duration::from_secs(10)).is_ok());
    }
}
