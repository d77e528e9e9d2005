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
use crate::sink::layout::is_safe_id;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
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
    /// Conversations whose recording list was unusable (parked in the ledger).
    pub parked_conversations: u64,
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
            let mut fresh = Vec::new();
            for c in answer.conversations {
                if known.contains(&c.conversation_id) {
                    continue;
                }
                if !is_safe_id(&c.conversation_id) {
                    // Never sent back to the API, never part of a key.
                    self.park_conversation(&c.conversation_id, "unsafe conversation id".into())
                        .await?;
                    report.parked_conversations += 1;
                    continue;
                }
                fresh.push(c);
            }
            let fresh = fresh.into_iter().map(|c| {
                let client = &self.client;
                async move {
                    let recordings = client.recording_metadata(&c.conversation_id).await;
                    (c.conversation_id, recordings)
                }
            });
            // In order, `concurrency` calls in flight; each is inserted as soon as it and
            // every one before it have answered, so workers start without waiting for the page.
            let mut answers = futures_util::stream::iter(fresh).buffered(self.settings.concurrency);
            while let Some((conversation_id, recordings)) = answers.next().await {
                let recordings = match recordings {
                    Ok(r) => r,
                    Err(e) if concerns_one_conversation(&e) => {
                        self.park_conversation(&conversation_id, e.to_string()).await?;
                        report.parked_conversations += 1;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                let found: Vec<_> = recordings.into_iter().map(|r| to_new(&conversation_id, r)).collect();
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
            parked_conversations = report.parked_conversations,
        );
        Ok(report)
    }

    async fn park_conversation(&self, conversation_id: &str, reason: String) -> Result<(), LedgerError> {
        tracing::error!(
            message = "Conversation parked: its recording list cannot be used.",
            conversation_id = %conversation_id.escape_debug(),
            reason = %reason,
        );
        crate::metrics::global()
            .conversations_parked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.ledger.park_conversation(conversation_id.to_owned(), reason).await
    }
}

/// Errors that are about this one conversation's answer (it will not get better by
/// asking again right away), as opposed to the platform being down or refusing us:
/// those fail the pass, which is read again at the next interval.
fn concerns_one_conversation(error: &ApiError) -> bool {
    match error {
        ApiError::Payload { .. } | ApiError::TooLarge { .. } => true,
        ApiError::Status { status, .. } => matches!(status, 400 | 404 | 410 | 422),
        _ => false,
    }
}

/// A discovered recording as the ledger keeps it; what can never be archived is parked
/// at once, with its reason, so it is visible without spending a recording call on it.
fn to_new(conversation_id: &str, r: RecordingMetadata) -> NewRecording {
    let conversation_id = r.conversation_id.clone().unwrap_or_else(|| conversation_id.to_owned());
    let parked = match (&r.media, &r.file_state) {
        // Ids shape API paths, object keys and file names: an unsafe one is never used.
        _ if !is_safe_id(&r.id) => Some(format!("unsafe recording id {:?}", r.id)),
        _ if !is_safe_id(&conversation_id) => Some(format!("unsafe conversation id {conversation_id:?}")),
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
        conversation_id,
        start_time: r.start_time,
        end_time: r.end_time,
        metadata: serde_json::to_string(&r).expect("metadata serializes"),
        parked,
    }
}
