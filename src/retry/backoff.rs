//! Exponential backoff with full jitter, as a `backon` builder.
//!
//! Full jitter (a uniform draw in `[0, min(cap, base * 2^n)]`) rather than backon's
//! additive jitter: when many callers fail together, the spread of their next attempts
//! is what stops a herd from thundering back at the same instant. The sequence ends
//! when `max_attempts` is reached or when the next sleep would take the call past
//! `max_elapsed`, measured on tokio's clock (so paused-time tests control it).

use crate::retry::settings::RetrySettings;
use std::time::Duration;
use tokio::time::Instant;

/// The ceiling of the `n`th delay (0-based): `min(cap, base * 2^n)`.
pub fn ceiling(settings: &RetrySettings, n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
    settings.base.saturating_mul(factor).min(settings.cap)
}

/// A uniform draw in `[0, ceiling(n)]`.
pub fn full_jitter(settings: &RetrySettings, n: u32, rng: &mut fastrand::Rng) -> Duration {
    let ceiling = ceiling(settings, n);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.u64(0..=nanos))
}

/// Builds a [`FullJitterBackoff`]; one per call.
#[derive(Debug, Clone)]
pub struct FullJitter {
    pub settings: RetrySettings,
    pub seed: Option<u64>,
}

impl FullJitter {
    pub fn new(settings: RetrySettings) -> Self {
        Self { settings, seed: None }
    }
}

impl backon::BackoffBuilder for FullJitter {
    type Backoff = FullJitterBackoff;

    fn build(self) -> FullJitterBackoff {
        FullJitterBackoff {
            rng: self.seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
            started: Instant::now(),
            retries: 0,
            settings: self.settings,
        }
    }
}

/// The delays before retry 1, 2, …; `None` when the call must give up.
#[derive(Debug)]
pub struct FullJitterBackoff {
    settings: RetrySettings,
    rng: fastrand::Rng,
    started: Instant,
    retries: u32,
}

impl Iterator for FullJitterBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        // max_attempts counts the first attempt too.
        if self.retries + 1 >= self.settings.max_attempts {
            return None;
        }
        let delay = full_jitter(&self.settings, self.retries, &mut self.rng);
        if self.started.elapsed() + delay > self.settings.max_elapsed {
            return None;
        }
        self.retries += 1;
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backon::BackoffBuilder;

    fn settings() -> RetrySettings {
        RetrySettings {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            max_elapsed: Duration::from_secs(3600),
            max_attempts: 12,
        }
    }

    #[test]
    fn ceilings_double_then_cap() {
        let s = settings();
        let ceilings: Vec<_> = (0..7).map(|n| ceiling(&s, n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(ceiling(&s, 200), s.cap);
    }

    #[tokio::test(start_paused = true)]
    async fn every_delay_stays_within_its_bounds_and_spreads() {
        let s = settings();
        for seed in 0..200 {
            let delays: Vec<_> = FullJitter {
                settings: s.clone(),
                seed: Some(seed),
            }
            .build()
            .collect();
            assert_eq!(delays.len(), 11, "max_attempts - 1 retries");
            for (n, d) in delays.iter().enumerate() {
                assert!(*d <= ceiling(&s, n as u32), "seed {seed} retry {n}: {d:?}");
            }
        }
        // Full jitter: the first delays of many callers are spread over the whole range.
        let firsts: Vec<_> = (0..200)
            .map(|seed| {
                FullJitter {
                    settings: s.clone(),
                    seed: Some(seed),
                }
                .build()
                .next()
                .unwrap()
            })
            .collect();
        assert!(firsts.iter().any(|d| *d < Duration::from_millis(25)));
        assert!(firsts.iter().any(|d| *d > Duration::from_millis(75)));
    }

    #[tokio::test(start_paused = true)]
    async fn total_time_limit_ends_the_sequence() {
        let s = RetrySettings {
            max_elapsed: Duration::from_secs(10),
            ..settings()
        };
        let backoff = FullJitter {
            settings: s,
            seed: Some(7),
        }
        .build();
        let mut slept = Duration::ZERO;
        for d in backoff {
            tokio::time::sleep(d).await;
            slept += d;
        }
        assert!(slept <= Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(11)).await;
        let mut late = FullJitter {
            settings: RetrySettings {
                max_elapsed: Duration::from_secs(10),
                ..settings()
            },
            seed: Some(1),
        }
        .build();
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(late.next(), None, "a call already past its limit does not retry");
    }
}
