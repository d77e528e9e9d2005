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

/// The `meta` key of an org's note `name` ([`super::Ledger::note`]).
pub fn note_key(name: &str, org: &str) -> String {
    format!("{name}:{org}")
}

/// A watermark as the `meta` table keeps it (RFC 3339, milliseconds).
pub fn format_watermark(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A watermark read back; a value this version cannot read is none.
pub fn parse_watermark(value: Option<String>) -> Option<DateTime<Utc>> {
    value
        .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// An org's recorded state read back: a value this version cannot read (written by a
/// newer one) is no state, not an error.
pub fn parse_org_state(value: Option<String>) -> Option<super::OrgState> {
    value.and_then(|v| serde_json::from_str(&v).ok())
}
