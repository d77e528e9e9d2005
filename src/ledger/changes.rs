//! What each ledger call writes, as statement and values, built once for both
//! backends: the state changes of a claimed recording, a new recording's row, a
//! conversation's row.

use super::encoding::ms;
use super::statements;
use super::value::Value;
use super::{ArchiveFacts, ConversationRow, NewRecording, State};
use chrono::{DateTime, Utc};

/// A state change of a claimed recording ([`super::Ledger::claimed_change`]), built
/// only by the ledger's own methods: `statement`'s own values; the backend adds
/// `updated_at`, the recording id, the claim token and the org, and checks that a row
/// changed (a claim taken over changes nothing).
pub struct ClaimedChange {
    pub(crate) statement: &'static str,
    pub(crate) values: Vec<Value>,
    /// The state the change leaves, if it ends the claim (a PostgreSQL try replayed
    /// after a lost reply that finds the row there succeeded).
    pub(crate) settles: Option<&'static str>,
}

impl ClaimedChange {
    /// Back to the queue at `at` (`transcoding`, `retrying` or `discovered`).
    pub(crate) fn reschedule(state: State, at: DateTime<Utc>, attempts: u32, error: Option<String>) -> Self {
        debug_assert!(matches!(
            state,
            State::Transcoding | State::Retrying | State::Discovered
        ));
        Self {
            statement: statements::RESCHEDULE,
            values: vec![
                state.as_str().into(),
                ms(at).into(),
                Value::count(attempts),
                error.as_deref().map(crate::untrusted::reason).into(),
            ],
            settles: Some(state.as_str()),
        }
    }

    pub(crate) fn park(reason: &str) -> Self {
        Self {
            statement: statements::PARK,
            values: vec![crate::untrusted::reason(reason).into()],
            settles: Some("parked"),
        }
    }

    pub(crate) fn fail(attempts: u32, error: &str) -> Self {
        Self {
            statement: statements::FAIL,
            values: vec![Value::count(attempts), crate::untrusted::reason(error).into()],
            settles: Some("failed"),
        }
    }

    pub(crate) fn archived(facts: &ArchiveFacts) -> Self {
        Self {
            statement: statements::ARCHIVED,
            values: vec![
                facts.key.clone().into(),
                (facts.size as i64).into(),
                facts.sha256_column().into(),
                ms(facts.archived_at).into(),
                facts.parts_column().into(),
            ],
            settles: Some("archived"),
        }
    }

    pub(crate) fn upload_opened(key: String, upload_id: String) -> Self {
        Self {
            statement: statements::UPLOAD_OPENED,
            values: vec![upload_id.into(), key.into()],
            settles: None,
        }
    }

    pub(crate) fn upload_closed() -> Self {
        Self {
            statement: statements::UPLOAD_CLOSED,
            values: Vec::new(),
            settles: None,
        }
    }

    /// Every value of the statement: its own, then `updated_at` (`now`), the
    /// recording id, the claim token and the org.
    pub(crate) fn bound(&self, now: i64, recording_id: &str, token: i64, org: &str) -> Vec<Value> {
        let mut all = self.values.clone();
        all.extend([now.into(), recording_id.into(), token.into(), org.into()]);
        all
    }
}

/// The values of [`statements::INSERT_RECORDING`] for one (sanitized) recording:
/// parked when it can never be archived, waiting for its transcode or due at its time
/// (now, when it has none).
pub(crate) fn new_recording(r: &NewRecording, org: &str, now: DateTime<Utc>) -> Vec<Value> {
    let (state, due) = match (&r.parked, r.not_before, r.transcoding) {
        (Some(_), _, _) => (State::Parked, None),
        (None, Some(at), true) => (State::Transcoding, Some(ms(at))),
        (None, Some(at), false) => (State::Discovered, Some(ms(at))),
        (None, None, _) => (State::Discovered, Some(ms(now))),
    };
    vec![
        r.recording_id.clone().into(),
        r.conversation_id.clone().into(),
        state.as_str().into(),
        r.parked.clone().or_else(|| r.waiting.clone()).into(),
        due.into(),
        r.start_time.map(ms).into(),
        r.end_time.map(ms).into(),
        r.metadata.clone().into(),
        ms(now).into(),
        org.into(),
        r.archive_date.map(ms).into(),
        r.delete_date.map(ms).into(),
        ms(r.deadline(now)).into(),
    ]
}

/// The values of [`statements::SAVE_CONVERSATION`] for one (sanitized) row.
pub(crate) fn conversation(r: &ConversationRow, org: &str, now: i64) -> Vec<Value> {
    vec![
        r.conversation_id.clone().into(),
        ms(r.start).into(),
        r.end.map(ms).into(),
        r.state.as_str().into(),
        Value::count(r.checks),
        r.next_check_at.map(ms).into(),
        now.into(),
        org.into(),
        r.reason.clone().into(),
    ]
}
