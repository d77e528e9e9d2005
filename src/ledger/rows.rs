//! How a ledger row becomes one of the ledger's types, written once for both backends.
//!
//! A backend hands its row type over as [`Columns`] (by position, in the order the
//! shared statements select); the mappers here do the rest: times from milliseconds,
//! counts clamped to what they mean, the archived files from their columns.

use super::encoding::from_ms;
use super::{
    Claimed, ConversationRow, ConversationState, Handoff, HandoffDue, LedgerRecord, RecordingRow, record_files,
};
use chrono::{DateTime, Utc};

/// A row of either backend, read by column position.
pub(crate) trait Columns {
    type Error;
    fn text(&self, i: usize) -> Result<String, Self::Error>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error>;
    /// An integer column of either width.
    fn opt_int(&self, i: usize) -> Result<Option<i64>, Self::Error>;

    fn int(&self, i: usize) -> Result<i64, Self::Error> {
        Ok(self.opt_int(i)?.unwrap_or_default())
    }

    fn opt_time(&self, i: usize) -> Result<Option<DateTime<Utc>>, Self::Error> {
        Ok(from_ms(self.opt_int(i)?))
    }

    fn time(&self, i: usize) -> Result<DateTime<Utc>, Self::Error> {
        Ok(self.opt_time(i)?.unwrap_or_default())
    }

    /// A count column (attempts, checks): never negative.
    fn count(&self, i: usize) -> Result<u32, Self::Error> {
        Ok(self.int(i)?.clamp(0, i64::from(u32::MAX)) as u32)
    }

    /// The four hand-off columns from `i` on.
    fn handoff(&self, i: usize) -> Result<Option<Handoff>, Self::Error> {
        Ok(Handoff::from_columns(
            self.opt_int(i)?,
            self.opt_int(i + 1)?,
            self.opt_int(i + 2)?,
            self.opt_text(i + 3)?,
        ))
    }
}

/// The columns of [`super::statements::claimed_columns`].
pub(crate) fn claimed<R: Columns>(row: &R) -> Result<Claimed, R::Error> {
    Ok(Claimed {
        recording_id: row.text(0)?,
        conversation_id: row.text(1)?,
        start_time: row.opt_time(2)?,
        end_time: row.opt_time(3)?,
        metadata: row.text(4)?,
        attempts: row.count(5)?,
        key: row.opt_text(6)?,
        open_upload: row.opt_text(7)?,
        token: row.int(8)?,
        discovered_at: row.time(9)?,
        upload_key: row.opt_text(10)?,
    })
}

/// The columns of [`super::statements::conversation_columns`].
pub(crate) fn conversation<R: Columns>(row: &R) -> Result<ConversationRow, R::Error> {
    Ok(ConversationRow {
        conversation_id: row.text(0)?,
        start: row.time(1)?,
        end: row.opt_time(2)?,
        state: ConversationState::parse(&row.text(3)?),
        checks: row.count(4)?,
        next_check_at: row.opt_time(5)?,
        reason: row.opt_text(6)?,
    })
}

/// What a conversation known only as parked reads as (its row pruned or never saved).
pub(crate) fn parked_conversation(conversation_id: String) -> ConversationRow {
    ConversationRow {
        conversation_id,
        start: DateTime::default(),
        end: None,
        state: ConversationState::Parked,
        checks: 0,
        next_check_at: None,
        reason: None,
    }
}

/// A row of [`super::statements::LIST`].
pub(crate) fn recording_row<R: Columns>(row: &R) -> Result<RecordingRow, R::Error> {
    Ok(RecordingRow {
        recording_id: row.text(0)?,
        conversation_id: row.text(1)?,
        state: row.text(2)?,
        reason: row.opt_text(3)?,
        attempts: row.count(4)?,
        start_time: row.opt_time(5)?,
        discovered_at: row.time(6)?,
        updated_at: row.time(7)?,
        deadline: row.opt_time(8)?,
        handoff: row.handoff(9)?,
    })
}

/// A row of [`super::statements::HANDOFF_DUE`].
pub(crate) fn handoff_due<R: Columns>(row: &R) -> Result<HandoffDue, R::Error> {
    let (key, sha256, parts) = (row.opt_text(6)?, row.opt_text(8)?, row.opt_text(9)?);
    Ok(HandoffDue {
        recording_id: row.text(0)?,
        conversation_id: row.text(1)?,
        start_time: row.opt_time(2)?,
        archived_at: row.time(3)?,
        archive_date: row.opt_time(4)?,
        delete_date: row.opt_time(5)?,
        files: record_files(
            "archived",
            key.as_deref(),
            row.opt_int(7)?,
            sha256.as_deref(),
            parts.as_deref(),
        ),
    })
}

/// A row of [`super::statements::RECORDS`].
pub(crate) fn ledger_record<R: Columns>(row: &R) -> Result<LedgerRecord, R::Error> {
    let (state, key, sha256, parts) = (row.text(2)?, row.opt_text(5)?, row.opt_text(7)?, row.opt_text(8)?);
    let files = record_files(
        &state,
        key.as_deref(),
        row.opt_int(6)?,
        sha256.as_deref(),
        parts.as_deref(),
    );
    Ok(LedgerRecord {
        recording_id: row.text(0)?,
        conversation_id: row.text(1)?,
        state,
        reason: row.opt_text(3)?,
        conversation_start: row.time(4)?,
        key,
        files,
        handoff: row.handoff(9)?,
    })
}

/// An id and a time (the report's oldest and soonest rows); a time out of range is none.
pub(crate) fn id_and_time<R: Columns>(row: &R) -> Result<Option<(String, DateTime<Utc>)>, R::Error> {
    let id = row.text(0)?;
    Ok(row.opt_time(1)?.map(|t| (id, t)))
}

/// An id and a reason (failing and parked conversations).
pub(crate) fn id_and_reason<R: Columns>(row: &R) -> Result<(String, String), R::Error> {
    Ok((row.text(0)?, row.text(1)?))
}
