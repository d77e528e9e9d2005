//! Whose budget a 429 spent, read from the `inin-ratelimit-*` headers that came with it
//! (they describe the per-token budget): a refusal while that budget still has room is
//! the endpoint's; otherwise (or without headers) it is the per-token budget's, the
//! conservative choice, since pausing it pauses everything. One rule for the local and
//! the shared budget.

use super::Endpoint;
use super::headers::RateHeaders;
use super::scope::CooldownCause;
use std::time::Duration;

/// The scope a refusal is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    /// The endpoint's own budget: only its callers pause.
    Endpoint,
    /// The per-token budget: every endpoint that uses the token pauses.
    Token,
}

/// A 429, charged to a scope, with the platform's own wait when it said one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Refusal {
    pub spent: Spent,
    /// Retry-After (or the body's wait), else the reset of a spent window.
    pub hint: Option<(Duration, CooldownCause)>,
}

/// `token_headers` are the answer's headers when `endpoint` spends the token budget.
pub fn classify(endpoint: Endpoint, token_headers: Option<RateHeaders>, retry_after: Option<Duration>) -> Refusal {
    let hint = retry_after.map(|d| (d, CooldownCause::RetryAfter));
    let (spent, hint) = match token_headers {
        Some(h) if !h.exhausted() => (Spent::Endpoint, hint),
        Some(h) => (
            Spent::Token,
            hint.or((!h.reset.is_zero()).then_some((h.reset, CooldownCause::WindowReset))),
        ),
        None if endpoint.uses_token_budget() => (Spent::Token, hint),
        None => (Spent::Endpoint, hint),
    };
    Refusal { spent, hint }
}
