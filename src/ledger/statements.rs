//! Every statement the two ledgers share, written once.
//!
//! In SQLite's numbered placeholders with [`super::dialect`] markers; a backend runs
//! `dialect.sql(STATEMENT)` (rendered once, kept). What only one backend does stays beside it: the
//! PostgreSQL ledger's leases and `FOR UPDATE SKIP LOCKED` claims, its sharded
//! counters; the SQLite ledger's recovery at start and its trigger-kept counts.
//! Times are milliseconds since the epoch ([`super::encoding`]).

/// The columns of a [`super::Claimed`], in the order [`super::rows::claimed`] reads.
macro_rules! claimed_columns {
    () => {
        "recording_id, conversation_id, start_time, end_time, metadata, attempts, object_key, upload_id, claim_token, discovered_at, upload_key"
    };
}
pub(crate) use claimed_columns;

/// The columns of a [`super::ConversationRow`], in the order
/// [`super::rows::conversation`] reads.
macro_rules! conversation_columns {
    () => {
        "conversation_id, start_time, end_time, state, checks, next_check_at, reason"
    };
}
pub(crate) use conversation_columns;

/// [`super::Ledger::insert`], one recording: `?1` id, `?2` conversation, `?3` state,
/// `?4` reason, `?5` due, `?6`/`?7` start/end, `?8` metadata, `?9` now, `?10` org,
/// `?11`/`?12` archive/delete dates, `?13` deadline ([`super::changes::new_recording`]).
/// A row already known is left alone unless it waits for its transcode.
pub(crate) const INSERT_RECORDING: &str =
    "INSERT INTO recordings (recording_id, conversation_id, state, reason, next_attempt_at,
        start_time, end_time, metadata, discovered_at, updated_at, org,
        archive_date, delete_date, deadline)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12, ?13)
     ON CONFLICT (org, recording_id) DO UPDATE SET state = excluded.state, reason = excluded.reason,
        next_attempt_at = CASE WHEN excluded.state = 'parked' THEN NULL
            ELSE {least}(recordings.next_attempt_at, excluded.next_attempt_at) END,
        archive_date = COALESCE(excluded.archive_date, recordings.archive_date),
        delete_date = COALESCE(excluded.delete_date, recordings.delete_date),
        deadline = {least}(recordings.deadline, excluded.deadline),
        metadata = excluded.metadata, updated_at = excluded.updated_at
     WHERE recordings.state = 'transcoding'";

/// [`super::Ledger::conversations`]: `?1` the ids (one per run on SQLite), `?2` org.
pub(crate) const CONVERSATIONS: &str = concat!(
    "SELECT ",
    conversation_columns!(),
    " FROM conversations WHERE org = ?2 AND conversation_id = {any:?1}"
);

/// The parked conversations among `?1` (as [`CONVERSATIONS`]).
pub(crate) const PARKED_AMONG: &str =
    "SELECT conversation_id FROM parked_conversations WHERE org = ?2 AND conversation_id = {any:?1}";

/// [`super::Ledger::save_conversations`], one row ([`super::changes::conversation`]).
/// Saved, a conversation is no longer being listed: its claim ends.
pub(crate) const SAVE_CONVERSATION: &str =
    "INSERT INTO conversations (conversation_id, start_time, end_time, state, checks, next_check_at, updated_at,
        org, reason)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
     ON CONFLICT (org, conversation_id) DO UPDATE SET start_time = excluded.start_time,
        end_time = excluded.end_time, state = excluded.state, checks = excluded.checks,
        next_check_at = excluded.next_check_at, updated_at = excluded.updated_at,
        reason = excluded.reason{release}";

/// [`super::Ledger::active_by_next_check`]: `?1` org, `?2` limit.
pub(crate) const ACTIVE_BY_NEXT_CHECK: &str = concat!(
    "SELECT ",
    conversation_columns!(),
    " FROM conversations {index:conversations_due}
     WHERE org = ?1 AND state = 'active' ORDER BY next_check_at LIMIT ?2"
);

/// [`super::Ledger::next_conversation_due`].
pub(crate) const NEXT_CONVERSATION_DUE: &str =
    "SELECT MIN(next_check_at) FROM conversations WHERE org = ?1 AND state = 'ended'";

// The state changes of a claimed recording ([`super::changes::ClaimedChange`]): their
// own values first, then `updated_at`, the recording id, the claim token and the org.
// Each names the token, so a claim taken over changes nothing.

pub(crate) const RESCHEDULE: &str =
    "UPDATE recordings SET state = ?1, next_attempt_at = ?2, attempts = ?3, reason = ?4, claim_token = NULL{release},
        updated_at = ?5
     WHERE recording_id = ?6 AND claim_token = ?7 AND org = ?8 AND state = 'uploading'";

pub(crate) const PARK: &str =
    "UPDATE recordings SET state = 'parked', reason = ?1, next_attempt_at = NULL, claim_token = NULL{release},
        updated_at = ?2
     WHERE recording_id = ?3 AND claim_token = ?4 AND org = ?5 AND state = 'uploading'";

pub(crate) const FAIL: &str =
    "UPDATE recordings SET state = 'failed', attempts = ?1, reason = ?2, next_attempt_at = NULL,
        claim_token = NULL{release}, updated_at = ?3
     WHERE recording_id = ?4 AND claim_token = ?5 AND org = ?6 AND state = 'uploading'";

pub(crate) const ARCHIVED: &str =
    "UPDATE recordings SET state = 'archived', object_key = ?1, size = ?2, sha256 = ?3, archived_at = ?4,
        parts = ?5, reason = NULL, next_attempt_at = NULL, upload_id = NULL, upload_key = NULL,
        claim_token = NULL{release}, updated_at = ?6
     WHERE recording_id = ?7 AND claim_token = ?8 AND org = ?9 AND state = 'uploading'";

/// Journalled before any byte is sent, once the key is fixed.
pub(crate) const UPLOAD_OPENED: &str = "UPDATE recordings SET upload_id = ?1, upload_key = ?2, updated_at = ?3
     WHERE recording_id = ?4 AND claim_token = ?5 AND org = ?6 AND state = 'uploading' AND object_key IS NOT NULL";

pub(crate) const UPLOAD_CLOSED: &str = "UPDATE recordings SET upload_id = NULL, upload_key = NULL, updated_at = ?1
     WHERE recording_id = ?2 AND claim_token = ?3 AND org = ?4 AND state = 'uploading'";

/// [`super::Ledger::fix_key`]: `?1` key, `?2` now, `?3` id, `?4` token, `?5` org; the
/// first key stays.
pub(crate) const FIX_KEY: &str = "UPDATE recordings SET object_key = COALESCE(object_key, ?1), updated_at = ?2
     WHERE recording_id = ?3 AND claim_token = ?4 AND org = ?5 AND state = 'uploading'
     RETURNING object_key";

/// [`super::Ledger::forget_upload`]: `?1` now, `?2` id, `?3` org.
pub(crate) const FORGET_UPLOAD: &str = "UPDATE recordings SET upload_id = NULL, upload_key = NULL, updated_at = ?1
     WHERE org = ?3 AND recording_id = ?2";

/// A `meta` value (watermarks, org states, notes) by key.
pub(crate) const READ_META: &str = "SELECT value FROM meta WHERE key = ?1";

/// `?1` key, `?2` value.
pub(crate) const WRITE_META: &str =
    "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value";

// The report ([`super::Ledger::status`]): `?1` org. None may scan the recordings (a
// test reads their plans on SQLite; PostgreSQL has the same partial indexes).

pub(crate) const OLDEST_UNARCHIVED: &str =
    "SELECT recording_id, COALESCE(end_time, start_time, discovered_at) FROM recordings {index:recordings_unfinished}
     WHERE org = ?1 AND state NOT IN ('archived', 'parked')
     ORDER BY COALESCE(end_time, start_time, discovered_at) LIMIT 1";

pub(crate) const SOONEST_DEADLINE: &str =
    "SELECT recording_id, deadline FROM recordings {index:recordings_open_deadline}
     WHERE org = ?1 AND state NOT IN ('archived', 'parked') ORDER BY deadline LIMIT 1";

pub(crate) const OLDEST_UNSETTLED: &str =
    "SELECT conversation_id, end_time FROM conversations {index:conversations_unsettled}
     WHERE org = ?1 AND state IN ('ended', 'checking') AND end_time IS NOT NULL ORDER BY end_time LIMIT 1";

pub(crate) const FAILING_CONVERSATIONS: &str =
    "SELECT conversation_id, reason FROM conversations {index:conversations_failing}
     WHERE org = ?1 AND reason IS NOT NULL AND state IN ('active', 'ended', 'checking') LIMIT 1000";

pub(crate) const PARKED_CONVERSATIONS: &str =
    "SELECT conversation_id, reason FROM parked_conversations {index:parked_conversations_org}
     WHERE org = ?1 ORDER BY parked_at LIMIT 1000";

/// [`super::Ledger::retry_failed`]: `?1` now, `?2` org.
pub(crate) const RETRY_FAILED: &str =
    "UPDATE recordings SET state = 'discovered', attempts = 0, next_attempt_at = ?1, updated_at = ?1
     WHERE org = ?2 AND state = 'failed'";

/// [`super::Ledger::retry_parked`]: `?1` now, `?2` org, `{condition}` from
/// [`parked_condition`] with its value `?3`.
pub(crate) const RETRY_PARKED: &str =
    "UPDATE recordings SET state = 'discovered', attempts = 0, reason = NULL, next_attempt_at = ?1, updated_at = ?1
     WHERE org = ?2 AND state = 'parked' AND {condition}";

/// Which parked rows [`RETRY_PARKED`] puts back, and the value of its `?3`.
pub(crate) fn parked_condition(which: super::ParkedSelection) -> (&'static str, Option<String>) {
    match which {
        // `?3` is bound (NULL) in every form: one parameter list for all three.
        super::ParkedSelection::All => ("CAST(?3 AS TEXT) IS NULL", None),
        super::ParkedSelection::ReasonContains(text) => {
            ("{find}(lower(COALESCE(reason, '')), lower(?3)) > 0", Some(text))
        }
        super::ParkedSelection::Id(id) => ("recording_id = ?3", Some(id)),
    }
}

// [`super::Ledger::prune`], one slice: `?1` cutoff, `?2` batch. Finished rows only.

pub(crate) const PRUNE_RECORDINGS: &str = "DELETE FROM recordings WHERE (org, recording_id) IN (
         SELECT org, recording_id FROM recordings {index:recordings_finished}
         WHERE state IN ('archived', 'parked') AND COALESCE(start_time, discovered_at) < ?1 LIMIT ?2)";

pub(crate) const PRUNE_CONVERSATIONS: &str = "DELETE FROM conversations WHERE (org, conversation_id) IN (
         SELECT org, conversation_id FROM conversations {index:conversations_start}
         WHERE start_time < ?1 AND state IN ('settled', 'parked') LIMIT ?2)";

pub(crate) const PRUNE_PARKED: &str = "DELETE FROM parked_conversations WHERE parked_at < ?1";

/// [`super::Ledger::park_conversation`]: `?1` id, `?2` reason, `?3` now, `?4` org.
pub(crate) const PARK_CONVERSATION: &str =
    "INSERT INTO parked_conversations (conversation_id, reason, parked_at, org) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (org, conversation_id) DO UPDATE SET reason = excluded.reason, parked_at = excluded.parked_at";

/// Its row, if listed: `?1` id, `?2` now, `?3` org.
pub(crate) const CONVERSATION_PARKED: &str =
    "UPDATE conversations SET state = 'parked', next_check_at = NULL{release}, updated_at = ?2
     WHERE org = ?3 AND conversation_id = ?1";

/// [`super::Ledger::retry_conversations`]: `?1` now, `?2` org; then
/// [`UNPARK_CONVERSATIONS`].
pub(crate) const RETRY_CONVERSATIONS: &str =
    "UPDATE conversations SET state = 'ended', checks = 0, next_check_at = ?1, updated_at = ?1
     WHERE org = ?2 AND state = 'parked'";

pub(crate) const UNPARK_CONVERSATIONS: &str = "DELETE FROM parked_conversations WHERE org = ?1";

/// [`super::Ledger::first_start`].
pub(crate) const FIRST_START: &str = "SELECT MIN(start_time) FROM conversations WHERE org = ?1";

/// [`super::Ledger::records`]: the recordings of the conversations that started in a
/// range (`?2`, `?3`), through the conversations' start index.
pub(crate) const RECORDS: &str =
    "SELECT r.recording_id, r.conversation_id, r.state, r.reason, c.start_time, r.object_key,
        r.size, r.sha256, r.parts, r.handoff_at, r.handoff_old, r.handoff_new, r.handoff_note
     FROM conversations c JOIN recordings r ON r.org = c.org AND r.conversation_id = c.conversation_id
     WHERE c.org = ?1 AND c.start_time >= ?2 AND c.start_time < ?3
     ORDER BY c.start_time, r.recording_id";

/// [`super::Ledger::unsettled_between`].
pub(crate) const UNSETTLED_BETWEEN: &str = "SELECT
        (SELECT COUNT(*) FROM conversations
         WHERE org = ?1 AND start_time >= ?2 AND start_time < ?3 AND state IN ('active', 'ended', 'checking'))
      + (SELECT COUNT(*) FROM conversations c JOIN recordings r ON r.org = c.org AND r.conversation_id = c.conversation_id
         WHERE c.org = ?1 AND c.start_time >= ?2 AND c.start_time < ?3
           AND r.state IN ('discovered', 'transcoding', 'retrying', 'uploading'))";

/// [`super::Ledger::list`]: the columns of a [`super::RecordingRow`], its hand-off
/// last; `?1` org, `?2` limit, `{condition}` from [`list_condition`].
pub(crate) const LIST: &str =
    "SELECT recording_id, conversation_id, state, reason, attempts, start_time, discovered_at,
        updated_at, deadline, handoff_at, handoff_old, handoff_new, handoff_note
     FROM recordings WHERE org = ?1 AND {condition}
     ORDER BY COALESCE(start_time, discovered_at), recording_id LIMIT ?2";

/// Which rows [`LIST`] shows for a filter.
pub(crate) fn list_condition(filter: super::ListFilter) -> &'static str {
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
pub(crate) const HANDOFF_DUE: &str =
    "SELECT recording_id, conversation_id, start_time, archived_at, archive_date, delete_date,
        object_key, size, sha256, parts
     FROM recordings WHERE org = ?1 AND state = 'archived' AND handoff_at IS NULL
       AND (archived_at > ?3 OR (archived_at = ?3 AND recording_id > ?4)) AND {free}
     ORDER BY archived_at, recording_id LIMIT ?2";

/// [`super::Ledger::handed_off`]: `?1` org, `?2` id, `?3`–`?6` when, old, new, note;
/// once only.
pub(crate) const HANDED_OFF: &str =
    "UPDATE recordings SET handoff_at = ?3, handoff_old = ?4, handoff_new = ?5, handoff_note = ?6{handoff_release}
     WHERE org = ?1 AND recording_id = ?2 AND state = 'archived' AND handoff_at IS NULL";

#[cfg(test)]
mod tests {
    use super::super::dialect::Dialect;
    use super::*;

    /// Every statement renders in both dialects, with no marker left.
    #[test]
    fn every_statement_renders_in_both_dialects() {
        let conditions = [
            list_condition(super::super::ListFilter::Waiting),
            parked_condition(super::super::ParkedSelection::All).0,
            parked_condition(super::super::ParkedSelection::ReasonContains("x".into())).0,
        ];
        for template in [
            INSERT_RECORDING,
            CONVERSATIONS,
            PARKED_AMONG,
            SAVE_CONVERSATION,
            ACTIVE_BY_NEXT_CHECK,
            NEXT_CONVERSATION_DUE,
            RESCHEDULE,
            PARK,
            FAIL,
            ARCHIVED,
            UPLOAD_OPENED,
            UPLOAD_CLOSED,
            FIX_KEY,
            FORGET_UPLOAD,
            READ_META,
            WRITE_META,
            OLDEST_UNARCHIVED,
            SOONEST_DEADLINE,
            OLDEST_UNSETTLED,
            FAILING_CONVERSATIONS,
            PARKED_CONVERSATIONS,
            RETRY_FAILED,
            PRUNE_RECORDINGS,
            PRUNE_CONVERSATIONS,
            PRUNE_PARKED,
            PARK_CONVERSATION,
            CONVERSATION_PARKED,
            RETRY_CONVERSATIONS,
            UNPARK_CONVERSATIONS,
            FIRST_START,
            RECORDS,
            UNSETTLED_BETWEEN,
            HANDED_OFF,
        ]
        .into_iter()
        .map(str::to_owned)
        .chain(conditions.iter().map(|c| RETRY_PARKED.replace("{condition}", c)))
        .chain(conditions.iter().map(|c| LIST.replace("{condition}", c)))
        .chain([HANDOFF_DUE.replace("{free}", "1 = 1")])
        {
            for dialect in [Dialect::Sqlite, Dialect::Postgres] {
                let sql = dialect.render(&template);
                assert!(!sql.contains(['{', '}']), "{dialect:?}: {sql}");
                assert_eq!(sql.contains('$'), dialect == Dialect::Postgres, "{sql}");
            }
        }
    }
}
