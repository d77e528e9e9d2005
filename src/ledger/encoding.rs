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

/// [`super::Ledger::records`]: the recordings of the conversations that started in a
/// range, through the conversations' start index. The same text on both backends
/// (`?N` placeholders become `$N` for PostgreSQL with [`numbered`]).
pub const RECORDS: &str = "SELECT r.recording_id, r.conversation_id, r.state, r.reason, c.start_time, r.object_key,
        r.size, r.sha256, r.parts, r.handoff_at, r.handoff_old, r.handoff_new, r.handoff_note
     FROM conversations c JOIN recordings r ON r.org = c.org AND r.conversation_id = c.conversation_id
     WHERE c.org = ?1 AND c.start_time >= ?2 AND c.start_time < ?3
     ORDER BY c.start_time, r.recording_id";

/// [`super::Ledger::unsettled_between`].
pub const UNSETTLED_BETWEEN: &str = "SELECT
        (SELECT COUNT(*) FROM conversations
         WHERE org = ?1 AND start_time >= ?2 AND start_time < ?3 AND state IN ('active', 'ended', 'checking'))
      + (SELECT COUNT(*) FROM conversations c JOIN recordings r ON r.org = c.org AND r.conversation_id = c.conversation_id
         WHERE c.org = ?1 AND c.start_time >= ?2 AND c.start_time < ?3
           AND r.state IN ('discovered', 'transcoding', 'retrying', 'uploading'))";

/// `sql` with SQLite's `?N` placeholders as PostgreSQL's `$N`.
pub fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// [`super::Ledger::list`]: the columns of a [`super::RecordingRow`], its hand-off last.
pub const LIST: &str = "SELECT recording_id, conversation_id, state, reason, attempts, start_time, discovered_at,
        updated_at, deadline, handoff_at, handoff_old, handoff_new, handoff_note
     FROM recordings WHERE org = ?1 AND {condition}
     ORDER BY COALESCE(start_time, discovered_at), recording_id LIMIT ?2";

/// Which rows [`LIST`] shows for a filter.
pub fn list_condition(filter: super::ListFilter) -> &'static str {
    match filter {
        super::ListFilter::Failed => "state = 'failed'",
        super::ListFilter::Parked => "state = 'parked'",
        super::ListFilter::Waiting => "state IN ('discovered', 'transcoding', 'retrying', 'uploading')",
        super::ListFilter::HandedOff => "state = 'archived' AND handoff_at IS NOT NULL",
    }
}

/// [`super::Ledger::handoff_due`]: archived rows without a hand-off, the earliest
/// archived first, after the cursor `(?3, ?4)` (archive time, id: a page of rows that
/// stay due, refused or reported, does not hide the ones behind it); `{free}` is the
/// backend's condition that no other process holds it.
pub const HANDOFF_DUE: &str =
    "SELECT recording_id, conversation_id, start_time, archived_at, archive_date, delete_date,
        object_key, size, sha256, parts
     FROM recordings WHERE org = ?1 AND state = 'archived' AND handoff_at IS NULL
       AND (archived_at > ?3 OR (archived_at = ?3 AND recording_id > ?4)) AND {free}
     ORDER BY archived_at, recording_id LIMIT ?2";

/// [`super::Ledger::handed_off`]: `?1` org, `?2` id, `?3`–`?6` when, old, new, note;
/// once only.
pub const HANDED_OFF: &str =
    "UPDATE recordings SET handoff_at = ?3, handoff_old = ?4, handoff_new = ?5, handoff_note = ?6
     {release}
     WHERE org = ?1 AND recording_id = ?2 AND state = 'archived' AND handoff_at IS NULL";
