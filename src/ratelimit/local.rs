//! The in-process budget: one per-token scope shared by every endpoint, plus one scope
//! per endpoint.
//!
//! A request waits for its endpoint's scope, then for the per-token scope, then for any
//! cooldown that began while it stood in line. Which scope a 429 belongs to is
//! [`super::refusal`]'s rule.

use super::refusal::{self, Spent};
use super::scope::{Scope, ScopeSettings};
use super::{Budget, BudgetStats, Endpoint, Feedback, Outcome};
use crate::metrics::OrgMetrics;
use crate::ratelimit::settings::LimitSettings;
use crate::retry::settings::RetrySettings;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub struct LocalBudget {
    token: Scope,
    /// Indexed like [`Endpoint::ALL`].
    endpoints: [Scope; Endpoint::COUNT],
    stats: Arc<BudgetStats>,
}

impl LocalBudget {
    /// The org's budget; `metrics` counts its cooldowns.
    pub fn new(limits: &LimitSettings, retry: &RetrySettings, metrics: OrgMetrics) -> Self {
        let stats = Arc::new(BudgetStats::default());
        let settings = ScopeSettings {
            window: limits.window,
            target_utilization: limits.target_utilization,
            fallback: retry.clone(),
        };
        let scope = |name: String, limit: Option<u32>| {
            Scope::new(name, limit, settings.clone(), stats.clone(), metrics.clone())
        };
        Self {
            token: scope("token-budget".into(), Some(limits.token_budget)),
            endpoints: Endpoint::ALL.map(|e| scope(format!("endpoint:{e}"), limits.endpoint_budget(e))),
            stats,
        }
    }

    fn endpoint(&self, endpoint: Endpoint) -> &Scope {
        &self.endpoints[endpoint.index()]
    }

    /// The per-token scope, for reports.
    pub fn token_scope(&self) -> &Scope {
        &self.token
    }

    /// An endpoint's scope, for reports.
    pub fn endpoint_scope(&self, endpoint: Endpoint) -> &Scope {
        self.endpoint(endpoint)
    }

    fn scopes_of(&self, endpoint: Endpoint) -> impl Iterator<Item = &Scope> {
        std::iter::once(self.endpoint(endpoint)).chain(endpoint.uses_token_budget().then_some(&self.token))
    }
}

impl Budget for LocalBudget {
    fn acquire(&self, endpoint: Endpoint) -> BoxFuture<'_, Duration> {
        Box::pin(async move {
            let start = Instant::now();
            // Waiting here is the budget working as designed (every wait has an end):
            // it counts as progress for liveness.
            for scope in self.scopes_of(endpoint) {
                crate::progress::waiting(scope.take()).await;
            }
            // A cooldown may have begun while this request stood in line for the other scope.
            while let Some(left) = self.scopes_of(endpoint).filter_map(Scope::cooldown_remaining).max() {
                crate::progress::waiting(tokio::time::sleep(left)).await;
            }
            let waited = start.elapsed();
            BudgetStats::bump(&self.stats.acquired, 1);
            BudgetStats::bump(&self.stats.wait_micros, waited.as_micros() as u64);
            waited
        })
    }

    fn observe(&self, endpoint: Endpoint, feedback: &Feedback) {
        let token_headers = feedback.headers.filter(|_| endpoint.uses_token_budget());
        match &feedback.outcome {
            Outcome::Accepted => {
                for scope in self.scopes_of(endpoint) {
                    scope.on_accepted();
                }
            }
            Outcome::Refused { retry_after } => {
                BudgetStats::bump(&self.stats.refusals, 1);
                let refusal = refusal::classify(endpoint, token_headers, *retry_after);
                match refusal.spent {
                    Spent::Endpoint => self.endpoint(endpoint).on_refused(refusal.hint),
                    Spent::Token => self.token.on_refused(refusal.hint),
                }
            }
            Outcome::NoAnswer => {}
        }
        if let Some(h) = token_headers {
            self.token.on_headers(&h, feedback.outcome == Outcome::Accepted);
        }
    }

    fn stats(&self) -> &BudgetStats {
        &self.stats
    }

    fn set_token_limit(&self, limit: u32) {
        self.token.set_configured(limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::RateHeaders;

    fn budget(token: u32, recording: Option<u32>) -> LocalBudget {
        let mut endpoint_budgets = Endpoint::ALL.map(|e| (e, None));
        endpoint_budgets[3].1 = recording;
        let limits = LimitSettings {
            token_budget: token,
            auto_budget: false,
            window: Duration::from_secs(60),
            target_utilization: 1.0,
            endpoint_budgets,
            shared: None,
        };
        LocalBudget::new(&limits, &RetrySettings::default(), OrgMetrics::unregistered("test"))
    }

    fn refused(count: u32, allowed: u32) -> Feedback {
        Feedback {
            outcome: Outcome::Refused {
                retry_after: Some(Duration::from_secs(5)),
            },
            headers: Some(RateHeaders {
                count,
                allowed,
                reset: Duration::from_secs(40),
            }),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_with_room_left_pauses_only_that_endpoint() {
        let b = budget(300, Some(100));
        b.observe(Endpoint::Recording, &refused(10, 300));
        assert!(b.endpoint_scope(Endpoint::Recording).cooldown_remaining().is_some());
        assert!(b.token_scope().cooldown_remaining().is_none());
        // Other endpoints go on.
        let start = Instant::now();
        b.acquire(Endpoint::RecordingMetadata).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        let waited = b.acquire(Endpoint::Recording).await;
        assert_eq!(waited, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_of_a_spent_token_budget_pauses_everything() {
        let b = budget(300, None);
        b.observe(Endpoint::Recording, &refused(300, 300));
        assert_eq!(b.token_scope().cooldown_remaining(), Some(Duration::from_secs(5)));
        let waited = b.acquire(Endpoint::Analytics).await;
        assert_eq!(waited, Duration::from_secs(5));
        assert_eq!(BudgetStats::get(&b.stats().refusals), 1);
        assert_eq!(BudgetStats::get(&b.stats().cooldowns), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn login_calls_do_not_spend_the_token_budget() {
        let b = budget(1, None);
        b.acquire(Endpoint::Recording).await;
        let start = Instant::now();
        b.acquire(Endpoint::Token).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
