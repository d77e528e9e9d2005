//! How both ledgers write what they share: times as milliseconds since the epoch, the
//! default org's name, and the `meta` keys of an org's watermark and state. One place,
//! so a SQLite file copied into PostgreSQL (`migrate-ledger`) means the same there.

use chrono::{DateTime, Utc};

/// The org of a single-org configuration (and of every row written before orgs).
pub const DEFAULT_ORG: &str = "default";

pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(v: Option<i64>) -> Option<DateTime<Utc>> {
    v.and_then(DateTime::from_timestamp_millis)
}

pub fn now_ms() -> i64 {
    ms(Utc::now())
}

/// The `deadline` of a recording whose `archiveDate` and `deleteDate` are unknown: an
/// order by deadline puts it after every known one on both backends (SQLite sorts NULL
/// first, PostgreSQL last, so NULL is not used).
pub const NO_DEADLINE: i64 = i64::MAX;

/// The `deadline` column's value.
pub fn deadline_ms(t: Option<DateTime<Utc>>) -> i64 {
    t.map_or(NO_DEADLINE, ms)
}

/// A `deadline` column read back.
pub fn from_deadline_ms(v: i64) -> Option<DateTime<Utc>> {
    (v != NO_DEADLINE).then(|| from_ms(Some(v))).flatten()
}

/// The `meta` key of an org's watermark (`watermark` for the default org: the key
/// ledgers have had since before orgs).
pub fn watermark_key(org: &str) -> String {
    if org == DEFAULT_ORG {
        "watermark".to_owned()
    } else {
        format!("watermark:{org}")
    }
}

/// The `meta` key of what the daemon last recorded of an org.
pub fn org_state_key(org: &str) -> String {
    format!("org_state:{org}")
}
