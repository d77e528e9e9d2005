//! `[workers]`: the pool, its retries, its shutdown, validated.

use super::raw::RawWorkers;
use super::settings::{ConfigError, duration_or, parse_size};
use crate::pipeline::settings::WorkerSettings;
use crate::retry::settings::RetrySettings;
use std::time::Duration;

pub(super) fn validate_workers(raw: RawWorkers) -> Result<WorkerSettings, ConfigError> {
    let count = raw.count.unwrap_or(8);
    if !(1..=256).contains(&count) {
        return Err(ConfigError::new("workers.count", "must be between 1 and 256"));
    }
    let per_org_max = raw.per_org_max.unwrap_or(count);
    if !(1..=count).contains(&per_org_max) {
        return Err(ConfigError::new(
            "workers.per_org_max",
            "must be between 1 and workers.count",
        ));
    }
    let max_attempts = raw.max_attempts.unwrap_or(8);
    if max_attempts == 0 {
        return Err(ConfigError::new("workers.max_attempts", "must be at least 1"));
    }
    let base = duration_or("workers.retry_base", raw.retry_base.as_deref(), Duration::from_secs(30))?;
    let cap = duration_or("workers.retry_cap", raw.retry_cap.as_deref(), Duration::from_secs(3600))?;
    if base.is_zero() {
        return Err(ConfigError::new("workers.retry_base", "must be more than zero"));
    }
    if cap < base {
        return Err(ConfigError::new(
            "workers.retry_cap",
            "must not be less than workers.retry_base",
        ));
    }
    let backoff = RetrySettings {
        base,
        cap,
        max_elapsed: Duration::MAX,
        max_attempts,
    };
    let shutdown_grace = duration_or(
        "workers.shutdown_grace",
        raw.shutdown_grace.as_deref(),
        Duration::from_secs(20),
    )?;
    if shutdown_grace > Duration::from_secs(3600) {
        return Err(ConfigError::new("workers.shutdown_grace", "must be at most 1h"));
    }
    // The platform estimates transcoding in minutes; six hours is two orders of
    // magnitude beyond that (a recording stuck in Genesys, not a slow one), and short
    // enough that it shows up as failed within the operator's shift.
    let max_transcode_wait = duration_or(
        "workers.max_transcode_wait",
        raw.max_transcode_wait.as_deref(),
        Duration::from_secs(6 * 3600),
    )?;
    if max_transcode_wait.is_zero() {
        return Err(ConfigError::new("workers.max_transcode_wait", "must be more than zero"));
    }
    // 16 KiB/s moves a 100 MiB recording in under two hours; below it a host is
    // trickling, not serving.
    let min_download_rate = match raw.min_download_rate.as_deref() {
        None => 16 * 1024,
        Some(v) => parse_size("workers.min_download_rate", v)?,
    };
    Ok(WorkerSettings {
        count,
        per_org_max,
        max_attempts,
        backoff,
        shutdown_grace,
        max_transcode_wait,
        min_download_rate,
    })
}
