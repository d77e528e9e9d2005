//! The request budgets, as `config` validates them into the budget's own type.

use crate::endpoint::Endpoint;
use std::time::Duration;

/// The request budgets.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Per-token budget, in requests per `window`: the configured number, or with
    /// `auto_budget` the documented default until the org's own limit has been read.
    pub token_budget: u32,
    /// `requests_per_minute = "auto"`: read the org's limit from the platform at start.
    pub auto_budget: bool,
    /// The platform's counting window (one minute on Genesys Cloud).
    pub window: Duration,
    pub target_utilization: f64,
    /// Per-endpoint budgets in requests per `window`; `None` where the operator set none.
    pub endpoint_budgets: [(Endpoint, Option<u32>); Endpoint::COUNT],
    /// The budget kept in Redis for several replicas; `None`: this process's alone.
    pub shared: Option<SharedBudgetSettings>,
}

/// `[limits] shared` and `replicas`.
#[derive(Debug, Clone)]
pub struct SharedBudgetSettings {
    /// `redis://…` (may hold a password: never logged).
    pub url: secrecy::SecretString,
    /// Replicas expected to share the budget: the local share while Redis is away is
    /// the budget divided by this.
    pub replicas: u32,
}

impl LimitSettings {
    pub fn endpoint_budget(&self, endpoint: Endpoint) -> Option<u32> {
        self.endpoint_budgets
            .iter()
            .find(|(e, _)| *e == endpoint)
            .and_then(|(_, b)| *b)
    }
}
