//! `[discovery]`: windows, lifecycle, the sweep, filters, validated.

use super::ledger::lookback;
use super::raw::RawDiscovery;
use super::settings::{ConfigError, duration_or};
use crate::genesys::model::SegmentFilter;
use crate::pipeline::settings::{DiscoverySettings, FetchMode};
use std::time::Duration;

pub(super) fn validate_discovery(raw: RawDiscovery) -> Result<DiscoverySettings, ConfigError> {
    let settings = DiscoverySettings {
        poll_interval: duration_or(
            "discovery.poll_interval",
            raw.poll_interval.as_deref(),
            Duration::from_secs(60),
        )?,
        lookback: lookback(raw.lookback.as_deref())?,
        overlap: duration_or("discovery.overlap", raw.overlap.as_deref(), Duration::from_secs(600))?,
        settle_delay: duration_or(
            "discovery.settle_delay",
            raw.settle_delay.as_deref(),
            Duration::from_secs(120),
        )?,
        page_size: raw.page_size.unwrap_or(100),
        concurrency: raw.concurrency.unwrap_or(4),
        segment_filters: validate_filters(raw.segment_filters)?,
        fetch_mode: match raw.fetch_mode.as_deref().map(str::trim) {
            None | Some("conversation") => FetchMode::Conversation,
            Some("recording") => FetchMode::Recording,
            Some(other) => {
                return Err(ConfigError::new(
                    "discovery.fetch_mode",
                    format!("`{other}` is not one of conversation, recording"),
                ));
            }
        },
        settle_after_end: duration_or(
            "discovery.settle_after_end",
            raw.settle_after_end.as_deref(),
            Duration::from_secs(300),
        )?,
        recheck_max: duration_or(
            "discovery.recheck_max",
            raw.recheck_max.as_deref(),
            Duration::from_secs(600),
        )?,
        max_results: raw.max_results.unwrap_or(10_000),
        sweep_lookback: duration_or(
            "discovery.sweep_lookback",
            raw.sweep_lookback.as_deref(),
            Duration::from_secs(48 * 3600),
        )?,
        sweep_interval: duration_or(
            "discovery.sweep_interval",
            raw.sweep_interval.as_deref(),
            Duration::from_secs(3600),
        )?,
        // A day: screen recordings are normally AVAILABLE minutes after the session, and
        // a platform backlog after an incident clears within hours; a recording still
        // UPLOADING after a day is stuck (a case for Genesys support), and it should
        // show as failed the same day, far inside its retention.
        upload_deadline: duration_or(
            "discovery.upload_deadline",
            raw.upload_deadline.as_deref(),
            Duration::from_secs(24 * 3600),
        )?,
    };
    if settings.upload_deadline.is_zero() {
        return Err(ConfigError::new("discovery.upload_deadline", "must be more than zero"));
    }
    if settings.sweep_lookback > Duration::from_secs(34 * 24 * 3600) {
        // Beyond the synchronous query's 35-day reach the jobs API would be needed on
        // every sweep; `backfill` covers older history.
        return Err(ConfigError::new("discovery.sweep_lookback", "must be at most 34 days"));
    }
    if !settings.sweep_lookback.is_zero() && settings.sweep_lookback <= settings.overlap {
        return Err(ConfigError::new(
            "discovery.sweep_lookback",
            "must be longer than discovery.overlap (or \"0s\" to turn the sweep off)",
        ));
    }
    if settings.sweep_interval < Duration::from_secs(1) {
        return Err(ConfigError::new("discovery.sweep_interval", "must be at least 1s"));
    }
    if settings.settle_after_end > Duration::from_secs(7 * 24 * 3600) {
        return Err(ConfigError::new("discovery.settle_after_end", "must be at most 7 days"));
    }
    if settings.recheck_max < settings.poll_interval {
        return Err(ConfigError::new(
            "discovery.recheck_max",
            "must not be less than discovery.poll_interval",
        ));
    }
    if settings.max_results < u64::from(settings.page_size) {
        return Err(ConfigError::new(
            "discovery.max_results",
            "must be at least discovery.page_size",
        ));
    }
    if settings.poll_interval < Duration::from_secs(1) {
        return Err(ConfigError::new("discovery.poll_interval", "must be at least 1s"));
    }
    if settings.lookback.is_zero() || settings.lookback > Duration::from_secs(365 * 24 * 3600) {
        return Err(ConfigError::new(
            "discovery.lookback",
            "must be more than zero and at most a year",
        ));
    }
    if !(1..=100).contains(&settings.page_size) {
        return Err(ConfigError::new("discovery.page_size", "must be between 1 and 100"));
    }
    if !(1..=16).contains(&settings.concurrency) {
        return Err(ConfigError::new("discovery.concurrency", "must be between 1 and 16"));
    }
    Ok(settings)
}

/// Checks segment filters in the API's shape, naming the exact key of a bad part.
pub(super) fn validate_filters(raw: Option<super::raw::RawFilters>) -> Result<Vec<SegmentFilter>, ConfigError> {
    use super::raw::RawFilters;
    let key = "discovery.segment_filters";
    let filters = match raw {
        None => return Ok(SegmentFilter::screen_recorded()),
        Some(RawFilters::Tables(filters)) => filters,
        Some(RawFilters::Json(text)) => {
            let de = &mut serde_json::Deserializer::from_str(&text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                ConfigError::new(
                    key,
                    format!(
                        "not segment filters in the API's JSON shape at {}: {}",
                        e.path(),
                        e.inner()
                    ),
                )
            })?
        }
    };
    for (i, filter) in filters.iter().enumerate() {
        let at = format!("{key}[{i}]");
        if !["and", "or"].contains(&filter.kind.to_ascii_lowercase().as_str()) {
            return Err(ConfigError::new(
                format!("{at}.type"),
                format!("`{}` is not one of and, or", filter.kind),
            ));
        }
        if filter.predicates.is_empty() {
            return Err(ConfigError::new(
                format!("{at}.predicates"),
                "must hold at least one predicate",
            ));
        }
        for (j, p) in filter.predicates.iter().enumerate() {
            let at = format!("{at}.predicates[{j}]");
            if p.kind.as_deref().is_some_and(|k| k != "dimension") {
                return Err(ConfigError::new(
                    format!("{at}.type"),
                    "only `dimension` predicates are supported",
                ));
            }
            if p.dimension.is_empty() || !p.dimension.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(ConfigError::new(
                    format!("{at}.dimension"),
                    "must be a dimension name such as screenRecording",
                ));
            }
            match (p.operator.as_deref().unwrap_or("matches"), &p.value) {
                ("matches", Some(_)) | ("exists" | "notExists", None) => {}
                ("matches", None) => {
                    return Err(ConfigError::new(
                        format!("{at}.value"),
                        "must be set for operator matches",
                    ));
                }
                ("exists" | "notExists", Some(_)) => {
                    return Err(ConfigError::new(
                        format!("{at}.value"),
                        "must be left out for operators exists and notExists",
                    ));
                }
                (other, _) => {
                    return Err(ConfigError::new(
                        format!("{at}.operator"),
                        format!("`{other}` is not one of matches, exists, notExists"),
                    ));
                }
            }
        }
    }
    if !filters
        .iter()
        .any(|f| f.predicates.iter().any(|p| p.dimension == "screenRecording"))
    {
        tracing::warn!(
            message = "discovery.segment_filters has no screenRecording predicate: conversations without a screen recording will each cost a call.",
        );
    }
    Ok(filters)
}
