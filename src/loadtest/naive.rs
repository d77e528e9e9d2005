//! What hand-written pipelines do, kept only as the load test's baseline
//! (`loadtest --strategy naive`); the daemon never uses it.
//!
//! Each worker paces itself at its share of the configured per-token budget ("well below
//! 10 requests per second per thread"). Their schedules are independent, so together they
//! run at the configured rate with bursts of up to one request per worker. There are no
//! per-endpoint budgets, no shared cooldown and no learning from headers. On a 429 each
//! caller sleeps on its own: the Retry-After if there is one, else a static delay.

use crate::ratelimit::clock::TokioClock;
use crate::ratelimit::{Budget, BudgetStats, Endpoint, Feedback, Outcome};
use futures_util::future::BoxFuture;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;
use tokio::time::Instant;

pub struct NaiveBudget {
    pacer: RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>,
    clock: TokioClock,
    missing_retry_after: Duration,
    stats: BudgetStats,
}

impl NaiveBudget {
    /// `per_window` requests per `window` in all, spread over `workers` self-paced workers.
    pub fn new(per_window: u32, window: Duration, workers: u32, missing_retry_after: Duration) -> Self {
        let clock = TokioClock::new();
        let period = window.div_f64(f64::from(per_window.max(1)));
        let quota = Quota::with_period(period)
            .expect("positive period")
            .allow_burst(NonZeroU32::new(workers.max(1)).expect("nonzero"));
        Self {
            pacer: RateLimiter::direct_with_clock(quota, clock),
            clock,
            missing_retry_after,
            stats: BudgetStats::default(),
        }
    }
}

impl Budget for NaiveBudget {
    fn acquire(&self, _endpoint: Endpoint) -> BoxFuture<'_, Duration> {
        Box::pin(async move {
            let start = Instant::now();
            while let Err(not_until) = self.pacer.check() {
                tokio::time::sleep(not_until.wait_time_from(governor::clock::Clock::now(&self.clock))).await;
            }
            BudgetStats::bump(&self.stats.acquired, 1);
            BudgetStats::bump(&self.stats.wait_micros, start.elapsed().as_micros() as u64);
            start.elapsed()
        })
    }

    fn observe(&self, _endpoint: Endpoint, feedback: &Feedback) {
        if matches!(feedback.outcome, Outcome::Refused { .. }) {
            BudgetStats::bump(&self.stats.refusals, 1);
        }
    }

    fn stats(&self) -> &BudgetStats {
        &self.stats
    }

    fn refusal_wait(&self, retry_after: Option<Duration>) -> Duration {
        retry_after.unwrap_or(self.missing_retry_after)
    }
}
