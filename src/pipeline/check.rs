//! Listing one ended conversation's recordings: a worker's job, one rate-limited call.
//!
//! With `fetch_mode = "conversation"` the one call (`recordings_path`) answers every
//! recording of the conversation with the download URLs of the ready ones: those go
//! into the ledger as due and their URLs into [`super::urls::UrlCache`], so a worker
//! downloads them at once without another call. A screen recording listed without a URL
//! is still transcoding: it goes in as `transcoding`, and the per-recording call follows
//! it. `UPLOADING` and `RESTORING` ones are not in the ledger yet: the conversation is
//! listed again (growing intervals) until they are ready. With `fetch_mode =
//! "recording"` the call is recordingmetadata and every screen recording costs its own
//! recording call later (today's flow, for orgs where the list call is not permitted).

use super::lifecycle::Lifecycle;
use super::poller::park_conversation;
use super::settings::FetchMode;
use super::urls::UrlCache;
use super::worker::park_reason;
use crate::genesys::model::{FileState, Media, Recording, RecordingFetch, RecordingMetadata};
use crate::genesys::{ApiError, GenesysClient};
use crate::ledger::{ConversationRow, Ledger, LedgerResult, NewRecording};
use crate::sink::layout::is_safe_id;
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

pub struct Checker {
    pub client: Arc<GenesysClient>,
    pub ledger: Arc<dyn Ledger>,
    pub urls: Arc<UrlCache>,
    pub lifecycle: Lifecycle,
    pub mode: FetchMode,
    /// Woken when recordings were added.
    pub work: Arc<Notify>,
}

/// What one listing found.
#[derive(Debug, Default)]
pub struct Listing {
    pub recordings: Vec<NewRecording>,
    /// Download URLs of the ready ones: handed to the workers once their rows exist.
    pub urls: Vec<(Box<Recording>, reqwest::Url)>,
    /// A screen recording was listed as not ready yet (UPLOADING, RESTORING).
    pub waiting: bool,
}

impl Checker {
    /// Lists the conversation, records what it found and when to look again. Only a
    /// ledger failure is an error.
    pub async fn check(&self, row: ConversationRow) -> LedgerResult<()> {
        let cid = row.conversation_id.clone();
        let listing = match self.mode {
            FetchMode::Conversation => self
                .client
                .conversation_recordings(&cid)
                .await
                .map(|all| self.read_list(&cid, all)),
            FetchMode::Recording => self
                .client
                .recording_metadata(&cid)
                .await
                .map(|all| read_metadata(&cid, all)),
        };
        let now = Utc::now();
        let listing = match listing {
            Ok(listing) => listing,
            Err(error) if concerns_one_conversation(&error) => {
                return park_conversation(self.ledger.as_ref(), self.client.metrics(), &cid, error.to_string()).await;
            }
            Err(error) => {
                // The platform is down or refusing us after retries: look again later.
                let next = self.lifecycle.after_listing(&row, true, now);
                tracing::warn!(
                    message = "Listing a conversation's recordings failed; will look again.",
                    conversation_id = %cid,
                    error = %error,
                );
                return self.ledger.save_conversations(vec![next]).await;
            }
        };
        tracing::debug!(
            message = "Conversation listed.",
            conversation_id = %cid,
            recordings = listing.recordings.len(),
            waiting = listing.waiting,
        );
        let added = self.ledger.insert(listing.recordings).await?;
        // After the rows exist: a worker that finds a URL must find its row too.
        let listed = !listing.urls.is_empty();
        for (recording, url) in listing.urls {
            self.urls.put(recording, url);
        }
        self.ledger
            .save_conversations(vec![self.lifecycle.after_listing(&row, listing.waiting, now)])
            .await?;
        if added > 0 || listed {
            self.work.notify_one();
        }
        Ok(())
    }

    fn read_list(&self, conversation_id: &str, all: Vec<Recording>) -> Listing {
        let mut listing = Listing::default();
        for recording in all {
            let mut described = recording.clone();
            described.media_uris = None;
            let metadata = serde_json::to_string(&described).expect("recordings serialize");
            let new = |parked: Option<String>, not_before, transcoding| {
                let mut n = new_recording(conversation_id, &recording.metadata, parked);
                n.metadata = metadata.clone();
                n.not_before = not_before;
                n.transcoding = transcoding;
                n
            };
            if let Some(reason) = never_archived(conversation_id, &recording.metadata) {
                listing.recordings.push(new(Some(reason), None, false));
                continue;
            }
            let id = recording.metadata.id.clone();
            match self.client.classify(recording.clone()) {
                Ok(RecordingFetch::Ready { recording, media_uri }) => {
                    // Claimed through its URL, whatever its due time; due only after the
                    // URL's useful life otherwise, so no worker takes it without the URL
                    // in the meantime, or, beside other replicas, once this one would be
                    // presumed dead (its URLs died with it).
                    let hold = self
                        .ledger
                        .listed_hold()
                        .map_or(super::urls::MAX_AGE, |h| h.min(super::urls::MAX_AGE));
                    let fallback = Utc::now() + chrono::Duration::from_std(hold).unwrap_or_default();
                    listing.recordings.push(new(None, Some(fallback), false));
                    // On a re-listing the row exists and stays; the URL is what is new.
                    listing.urls.push((recording, media_uri));
                }
                Ok(RecordingFetch::Pending {
                    file_state: Some(_), ..
                }) => listing.waiting = true,
                Ok(RecordingFetch::Pending {
                    file_state: None,
                    estimate,
                }) => {
                    let wait = estimate
                        .unwrap_or(Duration::from_secs(5))
                        .clamp(Duration::from_secs(1), Duration::from_secs(600));
                    let due = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                    listing.recordings.push(new(None, Some(due), true));
                }
                Ok(RecordingFetch::NotDownloadable { file_state }) => {
                    listing
                        .recordings
                        .push(new(Some(park_reason(&file_state)), None, false))
                }
                Err(error) => {
                    tracing::warn!(message = "Listed recording cannot be used.", recording_id = %id.escape_debug(), %error);
                    listing.recordings.push(new(Some(error.to_string()), None, false));
                }
            }
        }
        listing
    }
}

/// recordingmetadata: screen recordings go in as due (the recording call follows),
/// the rest parked; UPLOADING and RESTORING ones wait for the next listing.
fn read_metadata(conversation_id: &str, all: Vec<RecordingMetadata>) -> Listing {
    let mut listing = Listing::default();
    for r in all {
        let parked = never_archived(conversation_id, &r);
        if parked.is_none() && r.file_state.as_ref().is_some_and(FileState::is_transient) {
            listing.waiting = true;
            continue;
        }
        listing.recordings.push(new_recording(conversation_id, &r, parked));
    }
    listing
}

/// Why a listed recording can never be archived: unsafe ids (they shape API paths,
/// object keys and file names), not a screen recording, deleted or archived in Genesys.
fn never_archived(conversation_id: &str, r: &RecordingMetadata) -> Option<String> {
    let conversation_id = r.conversation_id.as_deref().unwrap_or(conversation_id);
    if !is_safe_id(&r.id) {
        return Some(format!("unsafe recording id {:?}", r.id));
    }
    if !is_safe_id(conversation_id) {
        return Some(format!("unsafe conversation id {conversation_id:?}"));
    }
    match (&r.media, &r.file_state) {
        (Media::Screen, Some(state @ (FileState::Deleted | FileState::Archived))) => Some(park_reason(state)),
        (Media::Screen, _) => None,
        (other, _) => Some(format!(
            "not a screen recording (media {})",
            String::from(other.clone())
        )),
    }
}

fn new_recording(conversation_id: &str, r: &RecordingMetadata, parked: Option<String>) -> NewRecording {
    NewRecording {
        recording_id: r.id.clone(),
        conversation_id: r.conversation_id.clone().unwrap_or_else(|| conversation_id.to_owned()),
        start_time: r.start_time,
        end_time: r.end_time,
        metadata: serde_json::to_string(r).expect("metadata serializes"),
        parked,
        not_before: None,
        transcoding: false,
    }
}

/// Errors that are about this one conversation's answer (it will not get better by
/// asking again right away), as opposed to the platform being down or refusing us.
fn concerns_one_conversation(error: &ApiError) -> bool {
    match error {
        ApiError::Payload { .. } | ApiError::TooLarge { .. } => true,
        ApiError::Status { status, .. } => matches!(status, 400 | 404 | 410 | 422),
        _ => false,
    }
}
