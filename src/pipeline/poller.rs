//! Discovery: which recordings exist that the ledger does not know yet.
//!
//! Each pass reads conversations that *started* in `[watermark - overlap, now - settle)`
//! from the analytics query (narrowed to recorded conversations, paged), lists each
//! one's recordings, and inserts them into the ledger, which drops the ones it knows.
//! The overlap re-reads the end of the previous window because the analytics store lags
//! behind real time; the settle delay leaves the very latest starts for the next pass.
//! The watermark only advances once a whole window has been read.

use super::stats::PipelineStats;
use crate::config::settings::DiscoverySettings;
use crate::genesys::model::{AnalyticsQuery, FileState, Media, RecordingMetadata};
use crate::genesys::{ApiError, GenesysClient};
use crate::ledger::{Ledger, LedgerError, NewRecording};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("discovery: {0}")]
    Api(#[from] ApiError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// What one pass found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PassReport {
    pub conversations: u64,
    /// Conversations skipped because the ledger already had them (overlap re-reads).
    pub known: u64,
    pub new_recordings: u64,
}

pub struct Poller {
    pub client: Arc<GenesysClient>,
    pub ledger: Arc<dyn Ledger>,
    pub settings: DiscoverySettings,
    pub stats: Arc<PipelineStats>,
    /// Woken when new work is in the ledger.
    pub work: Arc<Notify>,
}

fn chrono(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Poller {
    /// The window of the next pass.
    pub fn window(&self, watermark: Option<DateTime<Utc>>, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let from = match watermark {
            Some(w) => w - chrono(self.settings.overlap),
            None => now - chrono(self.settings.lookback),
        };
        (from, now - chrono(self.settings.settle_delay))
    }

    /// Reads the window since the watermark and advances the watermark.
    pub async fn poll_once(&self) -> Result<PassReport, PollError> {
        let (from, to) = self.window(self.ledger.watermark().await?, Utc::now());
        if to <= from {
            return Ok(PassReport::default());
        }
        let report = self.pass(from, to).await?;
        self.ledger.set_watermark(to).await?;
        Ok(report)
    }

    /// Discovers every recording of conversations that started in `[from, to)`.
    pub async fn pass(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<PassReport, PollError> {
        let mut report = PassReport::default();
        for page in 1.. {
            let query = AnalyticsQuery::recorded_between(from, to, page, self.settings.page_size);
            let answer = self.client.analytics_page(&query).await?;
            if answer.conversations.is_empty() {
                break;
            }
            let full = answer.conversations.len() as u32 >= self.settings.page_size;
            let ids = answer.conversations.iter().map(|c| c.conversation_id.clone()).collect();
            let known = self.ledger.known_conversations(ids).await?;
            report.known += known.len() as u64;
            for conversation in answer
                .conversations
                .into_iter()
                .filter(|c| !known.contains(&c.conversation_id))
            {
                let recordings = self.client.recording_metadata(&conversation.conversation_id).await?;
                let found: Vec<_> = recordings
                    .into_iter()
                    .map(|r| to_new(&conversation.conversation_id, r))
                    .collect();
                let added = self.ledger.insert(found).await?;
                report.conversations += 1;
                report.new_recordings += added;
                if added > 0 {
                    self.work.notify_one();
                }
            }
            if !full {
                break;
            }
        }
        tracing::info!(
            message = "Discovery pass done.",
            from = %from.to_rfc3339(),
            to = %to.to_rfc3339(),
            conversations = report.conversations,
            new_recordings = report.new_recordings,
            already_known = report.known,
        );
        Ok(report)
    }
}

/// A discovered recording as the ledger keeps it; what can never be archived is parked
/// at once, with its reason, so it is visible without spending a recording call on it.
fn to_new(conversation_id: &str, r: RecordingMetadata) -> NewRecording {
    let parked = match (&r.media, &r.file_state) {
        (Media::Screen, Some(FileState::Deleted)) => Some("deleted in Genesys".to_owned()),
        (Media::Screen, Some(FileState::Archived)) => {
            Some("archived in Genesys (restore it there to archive it)".to_owned())
        }
        (Media::Screen, _) => None,
        (other, _) => Some(format!(
            "not a screen recording (media {})",
            String::from(other.clone())
        )),
    };
    NewRecording {
        recording_id: r.id.clone(),
        conversation_id: r.conversation_id.clone().unwrap_or_else(|| conversation_id.to_owned()),
        start_time: r.start_time,
        end_time: r.end_time,
        metadata: serde_json::to_string(&r).expect("metadata serializes"),
        parked,
    }
}
