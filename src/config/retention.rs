//! `[retention]`: the hand-off of a recording's retention to Genesys, validated into
//! the pipeline's settings.

use super::raw::RawRetention;
use super::settings::{ConfigError, SinkKind, SinkSettings, parse_duration};
use crate::pipeline::handoff::HandoffSettings;
use crate::sink::settings::ChecksumAlgorithm;
use std::time::Duration;

/// `None` when `genesys_delete_after` is absent (never hand off).
pub fn validate(raw: &RawRetention, sink: &SinkSettings) -> Result<Option<HandoffSettings>, ConfigError> {
    let key = "retention.genesys_delete_after";
    let Some(value) = raw.genesys_delete_after.as_deref() else {
        if raw.dry_run.is_some() {
            return Err(ConfigError::new(
                "retention.dry_run",
                "needs retention.genesys_delete_after",
            ));
        }
        return Ok(None);
    };
    let delete_after = parse_duration(key, value)?;
    // Genesys keeps a recording a year at most; a day at least leaves time to look.
    if !(Duration::from_secs(1)..=Duration::from_secs(366 * 86_400)).contains(&delete_after) {
        return Err(ConfigError::new(key, "must be between 1s and 366d"));
    }
    // The source is freed only once its copy is proven by the store itself.
    let lock = match &sink.kind {
        SinkKind::S3(s3) if s3.checksum != ChecksumAlgorithm::Off => s3.lock,
        _ => {
            return Err(ConfigError::new(
                key,
                "needs an S3 sink with checksums (s3.checksum_algorithm not \"none\"): \
                 a recording's source is freed only once the store has verified its copy",
            ));
        }
    };
    Ok(Some(HandoffSettings {
        delete_after,
        dry_run: raw.dry_run.unwrap_or(false),
        lock,
    }))
}
