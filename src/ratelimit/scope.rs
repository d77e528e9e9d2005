//! One budget the platform counts against: the per-token budget, or one endpoint's.
//!
//! A scope paces requests with a governor token bucket and holds *one* cooldown that
//! every caller of the scope waits out together:
//! - A caller takes the scope's `gate` (a fair, FIFO tokio mutex) before it asks the
//!   bucket, so waiters are served in arrival order and never poll in a herd.
//! - A 429 starts the cooldown for the whole scope: until the Retry-After (or the
//!   platform's reset, or a jittered backoff when it said nothing), nobody in the scope
//!   sends. The start of a cooldown is logged once; 429s of requests already in flight
//!   only extend it.
//! - The pace adapts to what the platform reveals: `inin-ratelimit-allowed` caps the rate
//!   at the real limit; a 429 without that information caps it at what the platform
//!   accepted during the last window (the limit it just proved), and the cap is raised
//!   again slowly after clean windows (additive increase) in case the refusal came from
//!   another client sharing the token.
//! - The bucket runs at `target_utilization` of the limit with a burst of one: the spare
//!   few percent absorb network jitter, so a client configured with the exact limit draws
//!   no 429 at all.

use super::BudgetStats;
use super::clock::TokioClock;
use super::headers::RateHeaders;
use crate::metrics::OrgMetrics;
use crate::retry::backoff::full_jitter;
use crate::retry::settings::RetrySettings;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Fewest accepted requests in a window from which a refusal teaches a limit.
const MIN_PROVEN: u32 = 10;

type Bucket = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

/// Where a cooldown's length came from, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CooldownCause {
    /// The 429's Retry-After header, or the wait named in its body.
    RetryAfter,
    /// The `inin-ratelimit-reset` header of a spent window.
    WindowReset,
    /// Nothing said when: full-jitter exponential backoff on the scope's refusal streak.
    Backoff,
}

impl CooldownCause {
    pub fn as_str(self) -> &'static str {
        match self {
            CooldownCause::RetryAfter => "retry-after",
            CooldownCause::WindowReset => "window-reset",
            CooldownCause::Backoff => "jittered-backoff",
        }
    }
}

/// Settings shared by all scopes of a budget.
#[derive(Debug, Clone)]
pub struct ScopeSettings {
    pub window: Duration,
    pub target_utilization: f64,
    /// Timing of the cooldown when a 429 says nothing about when to come back.
    pub fallback: RetrySettings,
}

pub struct Scope {
    name: String,
    settings: ScopeSettings,
    clock: TokioClock,
    /// Taken before the bucket is asked: FIFO order among waiters.
    gate: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    stats: Arc<BudgetStats>,
    /// The org's metrics: cooldowns started.
    metrics: OrgMetrics,
}

struct State {
    /// Configured limit per window; `None`: only learned limits apply.
    configured: Option<u32>,
    bucket: Option<Arc<Bucket>>,
    /// The limit per window the bucket currently runs at (`None`: unlimited).
    effective: Option<u32>,
    /// The limit the platform's headers reported.
    header_cap: Option<u32>,
    /// The limit proven by the last refusal, raised again after clean windows.
    refusal_cap: Option<u32>,
    cooldown_until: Option<Instant>,
    /// 429s in a row without an accepted request between them.
    refusal_streak: u32,
    /// When requests were accepted during the last window.
    accepted: VecDeque<Instant>,
    last_refusal: Option<Instant>,
    last_raise: Option<Instant>,
    rng: fastrand::Rng,
}

impl Scope {
    pub fn new(
        name: impl Into<String>,
        configured: Option<u32>,
        settings: ScopeSettings,
        stats: Arc<BudgetStats>,
        metrics: OrgMetrics,
    ) -> Self {
        let scope = Self {
            name: name.into(),
            settings,
            clock: TokioClock::new(),
            gate: tokio::sync::Mutex::new(()),
            state: Mutex::new(State {
                configured,
                bucket: None,
                effective: None,
                header_cap: None,
                refusal_cap: None,
                cooldown_until: None,
                refusal_streak: 0,
                accepted: VecDeque::new(),
                last_refusal: None,
                last_raise: None,
                rng: fastrand::Rng::new(),
            }),
            stats,
            metrics,
        };
        scope.rebuild(&mut scope.state.lock().unwrap());
        scope
    }

    /// Replaces the configured limit (the org's own, read from the platform at start).
    pub fn set_configured(&self, limit: u32) {
        let mut state = self.state.lock().unwrap();
        state.configured = Some(limit);
        self.rebuild(&mut state);
    }

    /// The limit per window the scope currently paces at (`None`: unlimited).
    pub fn effective_limit(&self) -> Option<u32> {
        self.state.lock().unwrap().effective
    }

    /// Time left in the current cooldown.
    pub fn cooldown_remaining(&self) -> Option<Duration> {
        let state = self.state.lock().unwrap();
        let until = state.cooldown_until?;
        let now = Instant::now();
        (until > now).then(|| until - now)
    }

    /// Waits for this scope's turn, its cooldown and its bucket, then takes one request.
    pub async fn take(&self) {
        let _turn = self.gate.lock().await;
        loop {
            let wait = {
                let state = self.state.lock().unwrap();
                let now = Instant::now();
                match state.cooldown_until {
                    Some(until) if until > now => until - now,
                    _ => match &state.bucket {
                        None => return,
                        Some(bucket) => match bucket.check() {
                            Ok(()) => return,
                            Err(not_until) => not_until.wait_time_from(governor::clock::Clock::now(&self.clock)),
                        },
                    },
                }
            };
            tokio::time::sleep(wait.max(Duration::from_micros(100))).await;
        }
    }

    /// An answer other than 429 counted against this scope.
    pub fn on_accepted(&self) {
        let mut state = self.state.lock().unwrap();
        let now = Instant::now();
        state.refusal_streak = 0;
        state.accepted.push_back(now);
        self.forget_old(&mut state, now);
        // Additive increase: after a clean window, give back part of what a refusal took.
        if let (Some(cap), Some(last)) = (state.refusal_cap, state.last_refusal) {
            let clean = now.duration_since(last) >= self.settings.window
                && state
                    .last_raise
                    .is_none_or(|r| now.duration_since(r) >= self.settings.window);
            if clean {
                let ceiling = self.ceiling(&state);
                let raised = cap.saturating_add((cap / 20).max(1));
                state.refusal_cap = ceiling.is_none_or(|c| raised < c).then_some(raised);
                state.last_raise = Some(now);
                self.rebuild(&mut state);
            }
        }
    }

    /// The platform's headers for this scope.
    ///
    /// `allowed` caps the pace at the real limit. A spent window (`count >= allowed`)
    /// on an accepted answer pauses the scope until the window resets, so the next
    /// request is not refused; `accepted` is false for a 429, which
    /// [`Scope::on_refused`] handles.
    pub fn on_headers(&self, headers: &RateHeaders, accepted: bool) {
        let mut state = self.state.lock().unwrap();
        if state.header_cap != Some(headers.allowed) {
            state.header_cap = Some(headers.allowed);
            let before = state.effective;
            self.rebuild(&mut state);
            if before != state.effective {
                tracing::info!(
                    message = "Rate limit learned from the platform's headers; pacing adjusted.",
                    scope = %self.name,
                    allowed = headers.allowed,
                    configured = state.configured,
                );
            }
        }
        if accepted && headers.exhausted() && !headers.reset.is_zero() {
            let started = self.start_cooldown(&mut state, headers.reset);
            if started {
                BudgetStats::bump(&self.stats.header_pauses, 1);
                tracing::info!(
                    message = "Window spent according to the platform; pausing until it resets.",
                    scope = %self.name,
                    cooldown_ms = headers.reset.as_millis() as u64,
                );
            }
        }
    }

    /// A 429 counted against this scope. `hint` is the platform's own wait (Retry-After,
    /// body, or reset of a spent window), with where it came from.
    pub fn on_refused(&self, hint: Option<(Duration, CooldownCause)>) {
        let mut state = self.state.lock().unwrap();
        let now = Instant::now();
        self.forget_old(&mut state, now);
        // The platform just proved its limit: what it accepted during the last window.
        // Only a credible share teaches anything: when little or nothing of ours got
        // through, someone else spent the window, and the cooldown alone is the answer.
        let proven = u32::try_from(state.accepted.len()).unwrap_or(u32::MAX);
        let credible = proven >= (self.ceiling(&state).unwrap_or(0) / 10).max(MIN_PROVEN);
        if credible && self.ceiling(&state).is_none_or(|c| proven < c) && state.refusal_cap.is_none_or(|c| proven < c) {
            state.refusal_cap = Some(proven);
            self.rebuild(&mut state);
        }
        state.last_refusal = Some(now);
        let streak = state.refusal_streak;
        state.refusal_streak = streak.saturating_add(1);
        let (delay, cause) = hint.unwrap_or_else(|| {
            (
                full_jitter(&self.settings.fallback, streak, &mut state.rng),
                CooldownCause::Backoff,
            )
        });
        if self.start_cooldown(&mut state, delay) {
            BudgetStats::bump(&self.stats.cooldowns, 1);
            self.metrics.cooldown(&self.name);
            tracing::warn!(
                message = "Rate limited; every caller of this scope pauses until the cooldown ends.",
                scope = %self.name,
                cooldown_ms = delay.as_millis() as u64,
                cause = cause.as_str(),
                limit_per_window = state.effective,
            );
        }
    }

    /// Sets or extends the cooldown; true if none was running (a new episode).
    fn start_cooldown(&self, state: &mut State, delay: Duration) -> bool {
        let now = Instant::now();
        let until = now + delay;
        let running = state.cooldown_until.is_some_and(|u| u > now);
        if state.cooldown_until.is_none_or(|u| u < until) {
            state.cooldown_until = Some(until);
        }
        !running && !delay.is_zero()
    }

    fn forget_old(&self, state: &mut State, now: Instant) {
        while state
            .accepted
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.settings.window)
        {
            state.accepted.pop_front();
        }
    }

    /// The limit without refusal learning: configured, capped by the headers.
    fn ceiling(&self, state: &State) -> Option<u32> {
        match (state.configured, state.header_cap) {
            (Some(c), Some(h)) => Some(c.min(h)),
            (c, h) => c.or(h),
        }
    }

    /// Rebuilds the bucket for the current effective limit (only when it changed).
    fn rebuild(&self, state: &mut State) {
        let effective = match (self.ceiling(state), state.refusal_cap) {
            (Some(c), Some(r)) => Some(c.min(r)),
            (c, r) => c.or(r),
        };
        if effective == state.effective && (state.bucket.is_some() || effective.is_none()) {
            return;
        }
        state.effective = effective;
        state.bucket = effective.map(|limit| {
            let per_window = (f64::from(limit) * self.settings.target_utilization).max(0.01);
            let period = self.settings.window.div_f64(per_window).max(Duration::from_nanos(1));
            let quota = Quota::with_period(period)
                .expect("period is positive")
                .allow_burst(NonZeroU32::MIN);
            Arc::new(RateLimiter::direct_with_clock(quota, self.clock))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(limit: Option<u32>) -> Arc<Scope> {
        let settings = ScopeSettings {
            window: Duration::from_secs(60),
            target_utilization: 1.0,
            fallback: RetrySettings {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(8),
                ..RetrySettings::default()
            },
        };
        Arc::new(Scope::new(
            "test",
            limit,
            settings,
            Arc::default(),
            OrgMetrics::unregistered("test"),
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn paces_at_the_configured_rate() {
        let s = scope(Some(60)); // one a second
        let start = Instant::now();
        for _ in 0..10 {
            s.take().await;
        }
        // Burst of one, then one per second.
        assert_eq!(start.elapsed().as_secs(), 9);
    }

    #[tokio::test(start_paused = true)]
    async fn one_cooldown_is_shared_by_every_waiting_caller() {
        let s = scope(None);
        s.on_refused(Some((Duration::from_secs(30), CooldownCause::RetryAfter)));
        // Responses of requests already in flight extend the same episode, not a new one.
        s.on_refused(Some((Duration::from_secs(20), CooldownCause::RetryAfter)));
        let start = Instant::now();
        let waiters: Vec<_> = (0..16)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.take().await;
                    Instant::now()
                })
            })
            .collect();
        for w in waiters {
            let resumed = w.await.unwrap();
            assert_eq!(
                resumed.duration_since(start).as_secs(),
                30,
                "every caller waits the whole cooldown, no longer"
            );
        }
        assert_eq!(BudgetStats::get(&s.stats.cooldowns), 1, "one episode, logged once");
        assert_eq!(
            BudgetStats::get(&s.stats.refusals),
            0,
            "refusals are counted by the budget, not the scope"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn refusal_without_hint_uses_growing_jittered_cooldowns() {
        let s = scope(None);
        let mut last_ceiling = Duration::ZERO;
        for n in 0..4u32 {
            s.on_refused(None);
            let left = s.cooldown_remaining().unwrap_or_default();
            let ceiling = Duration::from_secs(1 << n).min(Duration::from_secs(8));
            assert!(left <= ceiling, "streak {n}: {left:?} > {ceiling:?}");
            assert!(ceiling >= last_ceiling);
            last_ceiling = ceiling;
            tokio::time::advance(left + Duration::from_millis(1)).await;
        }
        s.on_accepted();
        s.on_refused(None);
        assert!(
            s.cooldown_remaining().unwrap_or_default() <= Duration::from_secs(1),
            "an accepted answer resets the streak"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn headers_cap_the_pace_and_a_spent_window_pauses() {
        let s = scope(Some(600));
        s.on_headers(
            &RateHeaders {
                count: 1,
                allowed: 300,
                reset: Duration::from_secs(59),
            },
            true,
        );
        assert_eq!(s.effective_limit(), Some(300));
        assert!(s.cooldown_remaining().is_none());
        s.on_headers(
            &RateHeaders {
                count: 300,
                allowed: 300,
                reset: Duration::from_secs(7),
            },
            true,
        );
        assert_eq!(s.cooldown_remaining(), Some(Duration::from_secs(7)));
        assert_eq!(BudgetStats::get(&s.stats.header_pauses), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_when_little_of_ours_got_through_teaches_nothing() {
        let s = scope(Some(600));
        for _ in 0..5 {
            s.on_accepted();
        }
        s.on_refused(None);
        assert_eq!(s.effective_limit(), Some(600));
        assert!(s.cooldown_remaining().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_caps_the_pace_at_what_was_accepted_then_recovers() {
        let s = scope(Some(600));
        for _ in 0..250 {
            s.on_accepted();
        }
        s.on_refused(Some((Duration::from_secs(1), CooldownCause::RetryAfter)));
        assert_eq!(s.effective_limit(), Some(250));
        // Clean windows raise it again, 5% at a time, never above the configured limit.
        for _ in 0..40 {
            tokio::time::advance(Duration::from_secs(61)).await;
            s.on_accepted();
        }
        assert_eq!(s.effective_limit(), Some(600));
    }
}
