//! `[sink]` and `[s3]`: where recordings go, validated.

use super::raw::{RawS3, RawSink};
use super::settings::{ConfigError, duration_or, parse_base_url, parse_size};
use super::settings::{SinkKind, SinkSettings};
use crate::sink::layout::KeyLayout;
use crate::sink::settings::{MIN_PART_SIZE, S3Settings, Sse};
use std::path::PathBuf;
use std::time::Duration;

pub(super) fn validate_sink(raw: RawSink, s3: RawS3) -> Result<SinkSettings, ConfigError> {
    let layout = KeyLayout::parse(raw.key_template.as_deref().unwrap_or(KeyLayout::DEFAULT))
        .map_err(|m| ConfigError::new("sink.key_template", m))?;
    let kind = match raw.kind.as_deref().unwrap_or("s3") {
        "s3" => SinkKind::S3(Box::new(validate_s3(s3)?)),
        "file" => {
            let directory = raw.directory.filter(|d| !d.trim().is_empty());
            let directory =
                directory.ok_or_else(|| ConfigError::new("sink.directory", "must be set for kind = \"file\""))?;
            SinkKind::File {
                directory: PathBuf::from(directory),
            }
        }
        other => {
            return Err(ConfigError::new(
                "sink.kind",
                format!("`{other}` is not one of s3, file"),
            ));
        }
    };
    let manifest_key = crate::manifest::key::ManifestKey::parse(
        raw.manifest_key_template
            .as_deref()
            .unwrap_or(crate::manifest::key::ManifestKey::DEFAULT),
    )
    .map_err(|m| ConfigError::new("sink.manifest_key_template", m))?;
    Ok(SinkSettings {
        kind,
        layout,
        manifest_key,
    })
}

pub(super) fn validate_s3(raw: RawS3) -> Result<S3Settings, ConfigError> {
    let compliance = super::compliance::validate(&raw)?;
    let bucket = raw.bucket.unwrap_or_default().trim().to_owned();
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !valid_bucket {
        return Err(ConfigError::new(
            "s3.bucket",
            "must be a bucket name (3-63 lowercase letters, digits, `-`, `.`)",
        ));
    }
    let prefix = raw.prefix.unwrap_or_default();
    if prefix.starts_with('/') || prefix.split('/').any(|seg| seg == "..") {
        return Err(ConfigError::new("s3.prefix", "must not start with `/` or contain `..`"));
    }
    if prefix.replace("{orgId}", "").replace("{org}", "").contains(['{', '}']) {
        return Err(ConfigError::new(
            "s3.prefix",
            "the only placeholders a prefix takes are {org} and {orgId}",
        ));
    }
    if let Some(url) = &raw.endpoint_url {
        parse_base_url("s3.endpoint_url", url)?;
    }
    let sse = match raw.sse.as_deref() {
        None | Some("") => None,
        Some("AES256") => Some(Sse::Aes256),
        Some("aws:kms") => Some(Sse::Kms {
            key_id: raw.kms_key_id.clone(),
        }),
        Some(other) => {
            return Err(ConfigError::new(
                "s3.sse",
                format!("`{other}` is not one of AES256, aws:kms"),
            ));
        }
    };
    if raw.kms_key_id.is_some() && !matches!(sse, Some(Sse::Kms { .. })) {
        return Err(ConfigError::new("s3.kms_key_id", "needs sse = \"aws:kms\""));
    }
    let part_size = parse_size("s3.part_size", raw.part_size.as_deref().unwrap_or("8MiB"))?;
    if part_size < MIN_PART_SIZE as u64 || part_size > 5 * 1024 * 1024 * 1024 {
        return Err(ConfigError::new("s3.part_size", "must be between 5MiB and 5GiB"));
    }
    let parts_in_flight = raw.parts_in_flight.unwrap_or(2);
    if !(1..=16).contains(&parts_in_flight) {
        return Err(ConfigError::new("s3.parts_in_flight", "must be between 1 and 16"));
    }
    let single_put_max = parse_size("s3.single_put_max", raw.single_put_max.as_deref().unwrap_or("100MiB"))?;
    if single_put_max > 5 * 1024 * 1024 * 1024 {
        return Err(ConfigError::new(
            "s3.single_put_max",
            "must be at most 5GiB (the largest PutObject S3 takes)",
        ));
    }
    let operation_timeout = duration_or(
        "s3.operation_timeout",
        raw.operation_timeout.as_deref(),
        Duration::from_secs(60),
    )?;
    if !(Duration::from_secs(1)..=Duration::from_secs(600)).contains(&operation_timeout) {
        return Err(ConfigError::new("s3.operation_timeout", "must be between 1s and 10m"));
    }
    Ok(S3Settings {
        checksum: compliance.checksum,
        lock: compliance.lock,
        legal_hold: compliance.legal_hold,
        expected_bucket_owner: compliance.expected_bucket_owner,
        operation_timeout,
        bucket,
        prefix,
        region: raw.region.filter(|r| !r.trim().is_empty()),
        endpoint_url: raw.endpoint_url,
        force_path_style: raw.force_path_style.unwrap_or(false),
        sse,
        storage_class: raw.storage_class.filter(|c| !c.trim().is_empty()),
        part_size: part_size as usize,
        parts_in_flight,
        single_put_max,
    })
}
