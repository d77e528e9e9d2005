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
