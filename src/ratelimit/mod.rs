//! The request budget every API call spends before it is sent.
//!
//! The platform counts requests per access token (300 a minute by default, shared by
//! every worker and endpoint) and per endpoint. Workers that each pace themselves and
//! back off alone still overrun that shared count, so here the budget is one object that
//! all callers go through: [`Budget::acquire`] before *every* attempt (retries too) and
//! [`Budget::observe`] with what the platform answered.
//!
//! The trait is deliberately narrow: [`local::LocalBudget`] keeps the state in this
//! process; [`shared::SharedBudget`] keeps it in Redis for several replicas, behind the
//! same calls.

pub mod clock;
pub mod headers;
pub mod local;
pub mod refusal;
pub mod scope;
pub mod settings;
pub mod shared;

pub use crate::endpoint::Endpoint;
pub use headers::RateHeaders;
pub use local::LocalBudget;

use futures_util::future::BoxFuture;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What the platform made of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Any answer that is not a 429 (success or not): it was counted by the platform.
    Accepted,
    /// A 429, with the wait the platform asked for if it said one (header or body).
    Refused { retry_after: Option<Duration> },
    /// No answer (connection failure, timeout): says nothing about the budget.
    NoAnswer,
}

/// One answer, as the budget learns from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    pub outcome: Outcome,
    /// The `inin-ratelimit-*` headers, when all three were present and readable.
    pub headers: Option<RateHeaders>,
}

/// The shared budget.
pub trait Budget: Send + Sync {
    /// Waits until one request to `endpoint` may be sent and takes it from every scope the
    /// request counts against. Returns how long the caller waited.
    fn acquire(&self, endpoint: Endpoint) -> BoxFuture<'_, Duration>;

    /// Learns from an answer: a 429 starts the shared cooldown of the scope that refused;
    /// headers tune the pace before the platform has to refuse anything.
    fn observe(&self, endpoint: Endpoint, feedback: &Feedback);

    /// Counters for reports and metrics.
    fn stats(&self) -> &BudgetStats;

    /// The per-token limit the org really has (`requests_per_minute = "auto"`), read
    /// after the budget was built with the documented default.
    fn set_token_limit(&self, _limit: u32) {}

    /// Whether the store a budget shares with other replicas answers now (`None`: the
    /// budget is this process's alone), for readiness.
    fn shared_reachable(&self) -> BoxFuture<'_, Option<Result<(), String>>> {
        Box::pin(async { None })
    }

    /// How long a caller refused with 429 sleeps on its own before it asks the budget
    /// again. The shared budget holds the cooldown itself, so: no private sleep.
    fn refusal_wait(&self, _retry_after: Option<Duration>) -> Duration {
        Duration::ZERO
    }
}

/// Counters kept by a budget, read by the demo summary, the load test and metrics.
#[derive(Debug, Default)]
pub struct BudgetStats {
    /// Cooldowns started (one per episode, however many callers waited in it).
    pub cooldowns: AtomicU64,
    /// Pauses started because the headers said the window was spent, before any 429.
    pub header_pauses: AtomicU64,
    /// 429 answers observed.
    pub refusals: AtomicU64,
    /// Total time callers spent waiting in `acquire`, in microseconds.
    pub wait_micros: AtomicU64,
    /// Requests let through.
    pub acquired: AtomicU64,
}

impl BudgetStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }
}
