//! `[s3]`'s compliance keys: the checksum S3 verifies, Object Lock (WORM) and the
//! bucket's expected owner, validated into the sink's types.

use super::raw::RawS3;
use super::settings::{ConfigError, parse_duration};
use crate::sink::settings::{ChecksumAlgorithm, LockMode, ObjectLock};
use std::time::Duration;

/// What the compliance keys ask of every write.
#[derive(Debug, Clone, PartialEq)]
pub struct Compliance {
    pub checksum: ChecksumAlgorithm,
    pub lock: Option<ObjectLock>,
    pub legal_hold: bool,
    pub expected_bucket_owner: Option<String>,
}

/// The longest retention S3 accepts is 100 years; shorter than a second is a typo.
const RETAIN: std::ops::RangeInclusive<Duration> = Duration::from_secs(1)..=Duration::from_secs(100 * 366 * 86_400);

pub fn validate(raw: &RawS3) -> Result<Compliance, ConfigError> {
    let checksum = match raw.checksum_algorithm.as_deref().map(str::trim) {
        None => ChecksumAlgorithm::Sha256,
        Some(name) if name.eq_ignore_ascii_case("SHA256") => ChecksumAlgorithm::Sha256,
        Some(name) if name.eq_ignore_ascii_case("CRC64NVME") => ChecksumAlgorithm::Crc64Nvme,
        Some(name) if name.eq_ignore_ascii_case("none") => ChecksumAlgorithm::Off,
        Some(other) => {
            return Err(ConfigError::new(
                "s3.checksum_algorithm",
                format!("`{other}` is not one of SHA256, CRC64NVME, none"),
            ));
        }
    };
    let mode = match raw.object_lock_mode.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(m) if m.eq_ignore_ascii_case("GOVERNANCE") => Some(LockMode::Governance),
        Some(m) if m.eq_ignore_ascii_case("COMPLIANCE") => Some(LockMode::Compliance),
        Some(other) => {
            return Err(ConfigError::new(
                "s3.object_lock_mode",
                format!("`{other}` is not one of GOVERNANCE, COMPLIANCE"),
            ));
        }
    };
    let retain = match raw.object_lock_retain.as_deref() {
        None => None,
        Some(value) => {
            let retain = parse_duration("s3.object_lock_retain", value)?;
            if !RETAIN.contains(&retain) {
                return Err(ConfigError::new(
                    "s3.object_lock_retain",
                    "must be between 1s and 100 years",
                ));
            }
            Some(retain)
        }
    };
    // S3 takes a retention as a mode and a date together.
    let lock = match (mode, retain) {
        (Some(mode), Some(retain)) => Some(ObjectLock { mode, retain }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError::new(
                "s3.object_lock_retain",
                "is needed with s3.object_lock_mode (how long, e.g. \"7y\")",
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                "s3.object_lock_mode",
                "is needed with s3.object_lock_retain (GOVERNANCE or COMPLIANCE)",
            ));
        }
    };
    let legal_hold = raw.legal_hold.unwrap_or(false);
    // S3 refuses a write into an Object Lock bucket that carries neither Content-MD5
    // nor an additional checksum.
    if (lock.is_some() || legal_hold) && checksum == ChecksumAlgorithm::Off {
        return Err(ConfigError::new(
            "s3.checksum_algorithm",
            "cannot be none with Object Lock (S3 refuses locked writes without a checksum)",
        ));
    }
    let expected_bucket_owner = match raw.expected_bucket_owner.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(id) if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) => Some(id.to_owned()),
        Some(_) => {
            return Err(ConfigError::new(
                "s3.expected_bucket_owner",
                "must be an AWS account id (12 digits)",
            ));
        }
    };
    Ok(Compliance {
        checksum,
        lock,
        legal_hold,
        expected_bucket_owner,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawS3 {
        let mut raw = RawS3::default();
        for (key, value) in pairs {
            let value = Some(value.to_string());
            match *key {
                "checksum_algorithm" => raw.checksum_algorithm = value,
                "object_lock_mode" => raw.object_lock_mode = value,
                "object_lock_retain" => raw.object_lock_retain = value,
                "expected_bucket_owner" => raw.expected_bucket_owner = value,
                "legal_hold" => raw.legal_hold = Some(value.as_deref() == Some("true")),
                other => panic!("{other}"),
            }
        }
        raw
    }

    fn refused(pairs: &[(&str, &str)]) -> String {
        validate(&raw(pairs)).unwrap_err().key
    }

    #[test]
    fn defaults_are_sha256_and_nothing_locked() {
        let c = validate(&RawS3::default()).unwrap();
        assert_eq!(c.checksum, ChecksumAlgorithm::Sha256);
        assert_eq!((c.lock, c.legal_hold, c.expected_bucket_owner), (None, false, None));
    }

    #[test]
    fn a_lock_needs_its_mode_its_duration_and_a_checksum() {
        let c = validate(&raw(&[
            ("object_lock_mode", "compliance"),
            ("object_lock_retain", "7y"),
        ]))
        .unwrap();
        assert_eq!(c.lock.unwrap().mode, LockMode::Compliance);
        assert_eq!(refused(&[("object_lock_mode", "COMPLIANCE")]), "s3.object_lock_retain");
        assert_eq!(refused(&[("object_lock_retain", "30d")]), "s3.object_lock_mode");
        assert_eq!(
            refused(&[("object_lock_mode", "FOREVER"), ("object_lock_retain", "1d")]),
            "s3.object_lock_mode"
        );
        assert_eq!(
            refused(&[("object_lock_mode", "GOVERNANCE"), ("object_lock_retain", "101y")]),
            "s3.object_lock_retain"
        );
        assert_eq!(
            refused(&[("legal_hold", "true"), ("checksum_algorithm", "none")]),
            "s3.checksum_algorithm"
        );
        assert_eq!(refused(&[("checksum_algorithm", "MD5")]), "s3.checksum_algorithm");
    }

    #[test]
    fn the_expected_owner_is_an_account_id() {
        let c = validate(&raw(&[("expected_bucket_owner", "123456789012")])).unwrap();
        assert_eq!(c.expected_bucket_owner.as_deref(), Some("123456789012"));
        assert_eq!(
            refused(&[("expected_bucket_owner", "arn:aws:iam::1")]),
            "s3.expected_bucket_owner"
        );
    }
}
