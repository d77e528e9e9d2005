//! The retention hand-off: once a recording is archived and its copy proven by the
//! store (every file's checksum, as the store keeps it, equal to the one recorded at
//! upload; with Object Lock, each file's lock read back), its `deleteDate` in Genesys
//! is set to the archive time plus `retention.genesys_delete_after`. A delete date
//! already set earlier (by a retention policy) is kept: the hand-off only ever brings
//! the deletion of the source forward, never puts it off. Every outcome is recorded in
//! the ledger (`list --state handed-off`).
//!
//! Exactly once across crashes: a recording is due until the ledger records its
//! hand-off; a crash before the call makes it after the restart; one between the call
//! and the record repeats the same call with the same date, which the platform keeps
//! as it is. The calls go through the org's budget like every other.

use crate::genesys::{ApiError, GenesysClient};
use crate::ledger::{Handoff, HandoffDue, Ledger, LedgerError};
use crate::sink::Sink;
use crate::sink::settings::ObjectLock;
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What `[retention]` asks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HandoffSettings {
    /// The source's new delete date: the archive time plus this.
    pub delete_after: Duration,
    /// Say what would change, change nothing.
    pub dry_run: bool,
    /// The Object Lock every archived file must carry before its source is freed.
    pub lock: Option<ObjectLock>,
}

/// Due hand-offs read per ledger query.
const BATCH: u32 = 50;

/// Hand-offs in flight at once: each waits for the budget like any call, and with
/// several waiting they get their turns beside the workers' calls instead of one at a
/// time behind all of them (measured: one at a time made 16 hand-offs a minute beside
/// 650 archived recordings on a saturated budget).
const IN_FLIGHT: usize = 4;

pub struct Handoffs {
    pub client: Arc<GenesysClient>,
    pub ledger: Arc<dyn Ledger>,
    pub sink: Arc<dyn Sink>,
    pub settings: HandoffSettings,
    /// Dry run: the recordings already reported, each said once per process.
    reported: Mutex<HashSet<String>>,
}

/// Why a round of hand-offs stops early: the rest wait for the next round.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The store could not be read (its objects cannot be verified now).
    #[error("sink: {0}")]
    Sink(#[from] crate::sink::SinkError),
    /// The platform refused or failed the call (a missing permission fails them all).
    #[error("genesys: {0}")]
    Api(#[from] ApiError),
}

/// What one due hand-off came to.
enum Outcome {
    Record(Handoff),
    /// Dry run: reported, nothing changed, still due.
    Reported,
}

impl Handoffs {
    pub fn new(
        client: Arc<GenesysClient>,
        ledger: Arc<dyn Ledger>,
        sink: Arc<dyn Sink>,
        settings: HandoffSettings,
    ) -> Self {
        Self {
            client,
            ledger,
            sink,
            settings,
            reported: Mutex::default(),
        }
    }

    /// Every due hand-off, until none is left that this round can do; how many were
    /// recorded. A store or platform failure ends the round (tried again next time).
    pub async fn run_due(&self) -> Result<u32, HandoffError> {
        use futures_util::StreamExt;
        let mut recorded = 0;
        // Page by page through what is due, once: rows that stay due (reported by a
        // dry run, held by another replica) never hide the ones behind them.
        let mut after = None;
        loop {
            let due = self.ledger.handoff_due(after.clone(), BATCH).await?;
            let Some(last) = due.last() else {
                return Ok(recorded);
            };
            after = Some((last.archived_at, last.recording_id.clone()));
            let results: Vec<Result<bool, HandoffError>> = futures_util::stream::iter(due)
                .map(|row| self.take(row))
                .buffer_unordered(IN_FLIGHT)
                .collect()
                .await;
            for result in results {
                recorded += u32::from(result?);
            }
        }
    }

    /// One due hand-off, if no other process holds it: `true` when it was recorded.
    async fn take(&self, row: HandoffDue) -> Result<bool, HandoffError> {
        if self.reported.lock().unwrap().contains(&row.recording_id) {
            return Ok(false);
        }
        // A dry run writes nothing, not even a claim.
        if !self.settings.dry_run && !self.ledger.claim_handoff(row.recording_id.clone()).await? {
            return Ok(false);
        }
        match self.one(&row).await? {
            Outcome::Record(handoff) => {
                log(&row, &handoff);
                self.ledger.handed_off(row.recording_id.clone(), handoff).await?;
                Ok(true)
            }
            Outcome::Reported => {
                self.reported.lock().unwrap().insert(row.recording_id);
                Ok(false)
            }
        }
    }

    async fn one(&self, row: &HandoffDue) -> Result<Outcome, HandoffError> {
        let now = Utc::now();
        let old = row.delete_date;
        let left = |note: String| {
            Outcome::Record(Handoff {
                at: now,
                old,
                new: None,
                note,
            })
        };
        // The archive time plus the setting; a day from now at the earliest, when the
        // hand-off comes late (a saturated budget, the setting turned on for recordings
        // archived long ago): never a date already past, which would delete the source
        // at once (or be refused).
        let new = (row.archived_at + chrono::Duration::from_std(self.settings.delete_after).unwrap_or_default())
            .max(now + chrono::Duration::days(1));
        let unchanged = match self.unproven(row).await? {
            Some(why) => Some(format!("not handed off: {why}")),
            None if old.is_some_and(|old| old <= new) => Some("an earlier deleteDate is kept".to_owned()),
            None => None,
        };
        // A dry run records nothing either: the ledger is as if it had not run.
        if let Some(note) = unchanged {
            if self.settings.dry_run {
                tracing::info!(
                    message = "Retention hand-off (dry run): the recording's deleteDate would be left as it is.",
                    recording_id = %row.recording_id,
                    old = %shown(old),
                    reason = %note,
                );
                return Ok(Outcome::Reported);
            }
            return Ok(left(note));
        }
        if self.settings.dry_run {
            tracing::info!(
                message = "Retention hand-off (dry run): the recording's deleteDate would be set.",
                recording_id = %row.recording_id,
                old = %shown(old),
                new = %shown(Some(new)),
            );
            return Ok(Outcome::Reported);
        }
        match self
            .client
            .set_delete_date(&row.conversation_id, &row.recording_id, row.archive_date, new)
            .await
        {
            Ok(kept) => Ok(Outcome::Record(Handoff {
                at: Utc::now(),
                old,
                new: Some(kept.unwrap_or(new)),
                note: "set".into(),
            })),
            Err(ApiError::Status { status: 404, .. }) => Ok(left("gone in Genesys".into())),
            // Refused for this recording (400, 409, an answer that cannot be read):
            // recorded, so it does not come back every round ahead of the others.
            Err(ApiError::Status { status, code, .. }) if !matches!(status, 401 | 403 | 408 | 429) && status < 500 => {
                Ok(left(format!(
                    "not handed off: Genesys refused the update (HTTP {status}{})",
                    code.map(|c| format!(", {c}")).unwrap_or_default()
                )))
            }
            Err(error @ ApiError::Payload { .. }) => Ok(left(format!("not handed off: {error}"))),
            // Refused for every recording (a missing permission, the budget, the
            // platform down): the round ends; the rest are tried next time.
            Err(error) => Err(error.into()),
        }
    }

    /// Why the copy is not proven, if it is not: a file missing, without the checksum
    /// the store verified, with another one now, or without the configured lock.
    async fn unproven(&self, row: &HandoffDue) -> Result<Option<String>, HandoffError> {
        if row.files.is_empty() {
            return Ok(Some("no archived file recorded".into()));
        }
        for file in &row.files {
            let Some(info) = self.sink.head(&file.key).await? else {
                return Ok(Some(format!("{} is not in the sink", file.key)));
            };
            if file.checksum.is_empty() {
                return Ok(Some(format!(
                    "{} was archived without a checksum the store verified",
                    file.key
                )));
            }
            match info.checksum.as_deref() {
                Some(kept) if crate::sink::checksum::same(&file.checksum, kept) => {}
                kept => {
                    return Ok(Some(format!(
                        "the store keeps checksum {} for {}, not {}",
                        kept.unwrap_or("none"),
                        file.key,
                        file.checksum
                    )));
                }
            }
            if let Some(lock) = self.settings.lock {
                // As the sink locked it: from the recording's start; one without a
                // start was locked from its upload, some time before its archive, so
                // only a lock still in force is asked of it.
                let wanted = match row.start_time {
                    Some(start) => start + chrono::Duration::from_std(lock.retain).unwrap_or_default(),
                    None => Utc::now(),
                };
                // To the second (S3 keeps the date in seconds).
                let held = info
                    .lock
                    .as_ref()
                    .is_some_and(|l| l.mode == lock.mode.as_str() && l.until.timestamp() >= wanted.timestamp() - 1);
                if !held {
                    return Ok(Some(format!(
                        "{} is not locked {} until {}",
                        file.key,
                        lock.mode.as_str(),
                        shown(Some(wanted))
                    )));
                }
            }
        }
        Ok(None)
    }
}

fn shown(date: Option<DateTime<Utc>>) -> String {
    date.map_or("none".into(), |d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn log(row: &HandoffDue, handoff: &Handoff) {
    match handoff.new {
        Some(new) => tracing::info!(
            message = "Retention handed off: the recording's deleteDate in Genesys is set.",
            recording_id = %row.recording_id,
            old = %shown(handoff.old),
            new = %shown(Some(new)),
        ),
        None if handoff.note.starts_with("not handed off") => tracing::error!(
            message = "Retention not handed off: the copy is not proven.",
            recording_id = %row.recording_id,
            reason = %handoff.note,
        ),
        None => tracing::info!(
            message = "Retention left as it was.",
            recording_id = %row.recording_id,
            old = %shown(handoff.old),
            reason = %handoff.note,
        ),
    }
}
