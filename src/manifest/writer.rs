//! Writes an org's daily manifests once their days are final, chaining each to the one
//! written before it (the chain's head is kept in the ledger, per org).
//!
//! A day is final when nothing can add to it any more: it ended more than the
//! `horizon` ago (the sweep's reach: a conversation analytics shows late is still found
//! until then), discovery has read past it, and every conversation that started on it
//! has settled with no recording of it still waiting (archived, parked and failed are
//! final). The daemon walks the days in order after each discovery pass, from the day
//! after the last one it wrote (the first time, from the day after its oldest
//! conversation's: that day may have started before the lookback); `backfill` writes
//! the whole days of its range. A manifest already at a day's key (written before a
//! crash, or by `backfill`) is left as it is, and adopted as the chain's head when it
//! follows it.

use super::key::ManifestKey;
use super::{Link, Manifest, digest};
use crate::ledger::{Ledger, LedgerError};
use crate::metrics::OrgMetrics;
use crate::sink::{Sink, SinkError};
use chrono::{DateTime, Days, NaiveDate, Utc};
use std::sync::Arc;
use std::time::Duration;

/// The ledger note with the chain's head (a [`Link`] as JSON).
pub const CHAIN: &str = "manifest_chain";
/// The ledger note with the last day the daemon's walk has passed.
const THROUGH: &str = "manifest_through";
/// Largest manifest read back (a day of a large org: ~250 bytes a file).
pub const MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Days one walk writes at most (the rest at the next pass).
const DAYS_PER_WALK: usize = 31;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("manifest: {0}")]
    Sink(#[from] SinkError),
}

/// What became of one day.
#[derive(Debug, Clone, PartialEq)]
pub enum Day {
    Written(Link),
    /// A manifest was at its key already.
    Exists,
    /// Something of the day is not final yet.
    NotFinal,
}

/// The org's chain head, as the ledger keeps it: the manifest written last.
pub async fn head(ledger: &dyn Ledger) -> Result<Option<Link>, LedgerError> {
    Ok(ledger.note(CHAIN).await?.and_then(|v| serde_json::from_str(&v).ok()))
}

pub struct Manifests {
    /// The org's name in this configuration (written into each manifest).
    pub org: String,
    pub ledger: Arc<dyn Ledger>,
    pub sink: Arc<dyn Sink>,
    pub key: ManifestKey,
    /// How long after a day's end it may still change (see the module doc).
    pub horizon: Duration,
    pub metrics: OrgMetrics,
    /// The day the walk last found not final long after it should have been (logged
    /// once per day, not once per pass).
    pub blocked: std::sync::Mutex<Option<NaiveDate>>,
}

/// A UTC day's `[start, end)`.
pub fn bounds(day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
    (start, start + chrono::Duration::days(1))
}

impl Manifests {
    /// The daemon's walk: every final day after the last one written, in order, up to
    /// the first that is not final. Returns how many were written.
    pub async fn write_due(&self, now: DateTime<Utc>) -> Result<u32, ManifestError> {
        let next = match self.ledger.note(THROUGH).await? {
            Some(day) => day
                .parse::<NaiveDate>()
                .ok()
                .and_then(|d| d.checked_add_days(Days::new(1))),
            None => self
                .ledger
                .first_start()
                .await?
                .and_then(|t| t.date_naive().checked_add_days(Days::new(1))),
        };
        let Some(mut day) = next else { return Ok(0) };
        let mut written = 0;
        for _ in 0..DAYS_PER_WALK {
            if !self.ended_long_enough(day, now, true).await? {
                break;
            }
            match self.write_day(day).await? {
                Day::NotFinal => {
                    self.say_blocked(day, now);
                    break;
                }
                Day::Written(_) => written += 1,
                Day::Exists => {}
            }
            self.ledger.set_note(THROUGH, day.to_string()).await?;
            day = day.succ_opt().expect("days go on");
        }
        Ok(written)
    }

    /// Logs, once per day, a walk that a day holds up a day longer than it should: a
    /// conversation that does not settle (a listing that keeps failing, a recording
    /// waiting in Genesys) keeps every later manifest back, and `status` says which.
    fn say_blocked(&self, day: NaiveDate, now: DateTime<Utc>) {
        let late = bounds(day).1
            + chrono::Duration::from_std(self.horizon).unwrap_or(chrono::Duration::MAX)
            + chrono::Duration::days(1);
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        if now > late && *blocked != Some(day) {
            *blocked = Some(day);
            tracing::warn!(
                message = "Daily manifests are held back: a day is not final a day after it should be (see `status`: conversations not settled, recordings waiting).",
                day = %day,
            );
        }
    }

    /// `backfill`'s: every whole day of `[from, to)` that is final, in order.
    pub async fn write_range(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u32, ManifestError> {
        let mut day = from.date_naive();
        if bounds(day).0 < from {
            day = day.succ_opt().expect("days go on");
        }
        let mut written = 0;
        // The range was just read whole: the watermark says nothing about it.
        while bounds(day).1 <= to && self.ended_long_enough(day, now, false).await? {
            if let Day::Written(_) = self.write_day(day).await? {
                written += 1;
            }
            day = day.succ_opt().expect("days go on");
        }
        Ok(written)
    }

    /// The day ended more than the horizon ago, and (with `read_past`) discovery's
    /// passes have read past it.
    async fn ended_long_enough(
        &self,
        day: NaiveDate,
        now: DateTime<Utc>,
        read_past: bool,
    ) -> Result<bool, ManifestError> {
        let end = bounds(day).1;
        let horizon = chrono::Duration::from_std(self.horizon).unwrap_or(chrono::Duration::MAX);
        if end + horizon > now {
            return Ok(false);
        }
        Ok(!read_past || self.ledger.watermark().await?.is_some_and(|w| w >= end))
    }

    /// The chain's head: the manifest written last.
    pub async fn head(&self) -> Result<Option<Link>, ManifestError> {
        Ok(head(self.ledger.as_ref()).await?)
    }

    /// `day`'s manifest, if the day is final and has none yet.
    pub async fn write_day(&self, day: NaiveDate) -> Result<Day, ManifestError> {
        let (start, end) = bounds(day);
        if self.ledger.unsettled_between(start, end).await? > 0 {
            return Ok(Day::NotFinal);
        }
        let key = self.key.render(self.sink.prefix(), day);
        let head = self.head().await?;
        if let Some(existing) = self.sink.get_bytes(&key, MAX_BYTES).await? {
            // Written before a crash lost the note, or by `backfill`: never rewritten.
            let link = Link {
                key: key.clone(),
                sha256: digest(&existing),
            };
            let follows = Manifest::parse(&existing).is_ok_and(|m| m.trailer.previous == head);
            if follows && head.as_ref() != Some(&link) {
                self.set_head(&link).await?;
            }
            return Ok(Day::Exists);
        }
        let records = self.ledger.records(start, end).await?;
        let manifest = Manifest::of_day(&self.org, day, &records, head);
        let bytes = manifest.to_bytes();
        let link = Link {
            key: key.clone(),
            sha256: digest(&bytes),
        };
        self.sink
            // Locked (with Object Lock) as long as the day's recordings.
            .put_bytes(&key, bytes.into(), "application/x-ndjson", None, Some(start))
            .await?;
        self.set_head(&link).await?;
        self.metrics.manifest_written();
        tracing::info!(message = "Daily manifest written.", day = %day, key = %key, files = manifest.trailer.files);
        Ok(Day::Written(link))
    }

    async fn set_head(&self, link: &Link) -> Result<(), ManifestError> {
        let value = serde_json::to_string(link).expect("links serialize");
        Ok(self.ledger.set_note(CHAIN, value).await?)
    }
}
