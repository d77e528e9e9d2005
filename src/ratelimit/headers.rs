//! The platform's `inin-ratelimit-*` response headers.
//!
//! `count` requests of `allowed` have been spent in the current window, which resets in
//! `reset` seconds. They let the budget learn the real limit (which may differ from the
//! configured one) and pause before the platform has to refuse.

use reqwest::header::HeaderMap;
use std::time::Duration;

pub const COUNT: &str = "inin-ratelimit-count";
pub const ALLOWED: &str = "inin-ratelimit-allowed";
pub const RESET: &str = "inin-ratelimit-reset";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    pub count: u32,
    pub allowed: u32,
    pub reset: Duration,
}

impl RateHeaders {
    /// All three headers, or `None` if any is missing or unreadable (half a signal is
    /// worse than none).
    pub fn parse(headers: &HeaderMap) -> Option<Self> {
        let number = |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        let allowed = u32::try_from(number(ALLOWED)?).ok().filter(|a| *a > 0)?;
        Some(Self {
            count: u32::try_from(number(COUNT)?).unwrap_or(u32::MAX),
            allowed,
            reset: Duration::from_secs(number(RESET)?.min(3600)),
        })
    }

    /// The window is spent: the next request would be refused.
    pub fn exhausted(&self) -> bool {
        self.count >= self.allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn reads_all_three_or_nothing() {
        let h = map(&[(COUNT, "1"), (ALLOWED, "180"), (RESET, "61")]);
        assert_eq!(
            RateHeaders::parse(&h),
            Some(RateHeaders {
                count: 1,
                allowed: 180,
                reset: Duration::from_secs(61)
            })
        );
        assert_eq!(RateHeaders::parse(&map(&[(COUNT, "1"), (ALLOWED, "180")])), None);
        assert_eq!(
            RateHeaders::parse(&map(&[(COUNT, "x"), (ALLOWED, "180"), (RESET, "3")])),
            None
        );
        assert_eq!(
            RateHeaders::parse(&map(&[(COUNT, "1"), (ALLOWED, "0"), (RESET, "3")])),
            None
        );
    }
}
