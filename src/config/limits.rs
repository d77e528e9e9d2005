//! `[limits]` and `[retry]`: the budget and the retry policy, validated.

use super::raw::{RawLimits, RawRetry, RawSecret};
use super::settings::{ConfigError, duration_or};
use crate::endpoint::Endpoint;
use crate::ratelimit::settings::{LimitSettings, SharedBudgetSettings};
use crate::retry::settings::RetrySettings;
use std::time::Duration;

pub(super) fn validate_limits(raw: RawLimits) -> Result<LimitSettings, ConfigError> {
    use super::raw::RawRate;
    let key = "limits.requests_per_minute";
    let (token_budget, auto_budget) = match raw.requests_per_minute {
        None => (DOCUMENTED_TOKEN_BUDGET, true),
        Some(RawRate::Word(w)) if w.trim().eq_ignore_ascii_case("auto") => (DOCUMENTED_TOKEN_BUDGET, true),
        Some(RawRate::Word(w)) => match w.trim().parse::<i64>() {
            Ok(n) => (positive_rate(key, n)?, false),
            Err(_) => return Err(ConfigError::new(key, format!("`{w}` is neither a number nor \"auto\""))),
        },
        Some(RawRate::Number(n)) => (positive_rate(key, n)?, false),
    };
    let window = duration_or("limits.window", raw.window.as_deref(), Duration::from_secs(60))?;
    if window < Duration::from_millis(100) {
        return Err(ConfigError::new("limits.window", "must be at least 100ms"));
    }
    let target_utilization = raw.target_utilization.unwrap_or(0.98);
    if !(0.5..=1.0).contains(&target_utilization) {
        return Err(ConfigError::new(
            "limits.target_utilization",
            "must be between 0.5 and 1.0",
        ));
    }
    let mut endpoint_budgets = Endpoint::ALL.map(|e| (e, None));
    for (name, budget) in raw.endpoints {
        let key = format!("limits.endpoints.{name}");
        let Some(slot) = endpoint_budgets.iter_mut().find(|(e, _)| e.as_str() == name) else {
            return Err(ConfigError::new(
                key,
                format!(
                    "unknown endpoint (known: {})",
                    Endpoint::ALL.map(Endpoint::as_str).join(", ")
                ),
            ));
        };
        if budget == 0 {
            return Err(ConfigError::new(key, "must be at least 1"));
        }
        slot.1 = Some(budget);
    }
    let replicas = raw.replicas.unwrap_or(3);
    if replicas == 0 {
        return Err(ConfigError::new("limits.replicas", "must be at least 1"));
    }
    let shared = match raw.shared {
        Some(RawSecret(url)) => {
            let url = url.trim().to_owned();
            // TLS to Redis is not built in (a second TLS stack in the build for a
            // connection that stays inside the cluster); a TLS sidecar can front it.
            if !url.starts_with("redis://") {
                return Err(ConfigError::new(
                    "limits.shared",
                    "must be a URL like redis://host:6379/",
                ));
            }
            redis::Client::open(url.as_str())
                .map_err(|e| ConfigError::new("limits.shared", format!("not a Redis URL: {e}")))?;
            Some(SharedBudgetSettings {
                url: url.into(),
                replicas,
            })
        }
        None if raw.replicas.is_some() => {
            return Err(ConfigError::new(
                "limits.replicas",
                "applies to a shared budget (limits.shared) only",
            ));
        }
        None => None,
    };
    Ok(LimitSettings {
        token_budget,
        auto_budget,
        window,
        target_utilization,
        endpoint_budgets,
        shared,
    })
}

/// The per-token limit Genesys documents (`client.credentials.token.rate.per.minute`).
pub const DOCUMENTED_TOKEN_BUDGET: u32 = 300;

pub(super) fn positive_rate(key: &str, n: i64) -> Result<u32, ConfigError> {
    u32::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ConfigError::new(key, format!("{n} must be a whole number of at least 1 (or \"auto\")")))
}

pub(super) fn validate_retry(raw: RawRetry) -> Result<RetrySettings, ConfigError> {
    let d = RetrySettings::default();
    let settings = RetrySettings {
        base: duration_or("retry.base", raw.base.as_deref(), d.base)?,
        cap: duration_or("retry.cap", raw.cap.as_deref(), d.cap)?,
        max_elapsed: duration_or("retry.max_elapsed", raw.max_elapsed.as_deref(), d.max_elapsed)?,
        max_attempts: raw.max_attempts.unwrap_or(d.max_attempts),
    };
    if settings.base.is_zero() {
        return Err(ConfigError::new("retry.base", "must be more than zero"));
    }
    if settings.cap < settings.base {
        return Err(ConfigError::new("retry.cap", "must not be less than retry.base"));
    }
    if settings.max_attempts == 0 {
        return Err(ConfigError::new("retry.max_attempts", "must be at least 1"));
    }
    Ok(settings)
}
