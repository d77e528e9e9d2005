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
use super::worker::{park_reason, uploading_reason};
use crate::genesys::model::{FileState, MediaPart, Recording, RecordingFetch, RecordingMetadata};
use crate::genesys::{ApiError, GenesysClient};
use crate::ledger::{ConversationRow, ConversationState, Ledger, LedgerError, LedgerResult, NewRecording};
use crate::untrusted::{self, is_safe_id};
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
    /// How long a screen recording listed as `UPLOADING` or `RESTORING` is waited for
    /// (`discovery.upload_deadline`).
    pub upload_deadline: Duration,
    /// Woken when recordings were added.
    pub work: Arc<Notify>,
}

/// What one listing found.
#[derive(Debug, Default)]
pub struct Listing {
    pub recordings: Vec<NewRecording>,
    /// Download URLs of the ready ones: handed to the workers once their rows exist.
    pub urls: Vec<(Box<Recording>, Vec<MediaPart>)>,
    /// A screen recording was listed as not ready yet (UPLOADING, RESTORING).
    pub waiting: bool,
    /// Screen recordings listed, whatever their state.
    pub screen: usize,
}

impl Checker {
    /// Lists the conversation, records what it found and when to look again. Only a
    /// ledger failure is an error.
    /// [`Checker::check`] unless `abort` comes first (a listing waiting out a long
    /// shared cooldown would hold the stop past its grace period): then the
    /// conversation is handed back, due again, for this or another process.
    pub async fn check_or_hand_back(
        &self,
        row: ConversationRow,
        abort: &tokio_util::sync::CancellationToken,
    ) -> LedgerResult<()> {
        let back = ConversationRow {
            state: ConversationState::Ended,
            next_check_at: Some(Utc::now()),
            ..row.clone()
        };
        tokio::select! {
            done = self.check(row) => done,
            _ = abort.cancelled() => {
                tracing::info!(message = "Listing stopped by the shutdown; the conversation is handed back.", conversation_id = %back.conversation_id);
                self.ledger.save_conversations(vec![back]).await
            }
        }
    }

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
                .map(|all| self.read_metadata(&cid, all)),
        };
        let now = Utc::now();
        let mut listing = match listing {
            Ok(listing) => listing,
            Err(error) if concerns_one_conversation(&error) => {
                return park_conversation(self.ledger.as_ref(), self.client.metrics(), &cid, error.to_string()).await;
            }
            Err(error) => {
                // The platform is down or refusing us after retries (a 403 for a
                // missing permission): look again later, and say why in `status` and
                // `list --state waiting` meanwhile.
                let mut next = self.lifecycle.after_listing(&row, true, now);
                next.reason = Some(format!("listing failed: {error}"));
                tracing::warn!(
                    message = "Listing a conversation's recordings failed; will look again.",
                    conversation_id = %cid,
                    error = %error,
                );
                return self.ledger.save_conversations(vec![next]).await;
            }
        };
        // Recordings not ready in Genesys are waited for up to the deadline after the
        // conversation's end; their rows then go to a worker, which fails them if they
        // are still not ready, and the conversation settles.
        let end = row.end.unwrap_or(now);
        let patience = chrono::Duration::from_std(self.lifecycle.settle_after_end + self.upload_deadline)
            .unwrap_or(chrono::Duration::MAX);
        listing.waiting &= now < end + patience;
        tracing::debug!(
            message = "Conversation listed.",
            conversation_id = %cid,
            recordings = listing.recordings.len(),
            waiting = listing.waiting,
        );
        let added = match self.ledger.insert(listing.recordings).await {
            Ok(added) => added,
            // A value of one of its rows was refused (what slipped past the sanitizer):
            // this conversation is parked, visible with the reason; the org goes on.
            Err(LedgerError::Data(why)) => {
                let reason = format!("the ledger refused its recordings: {why}");
                return park_conversation(self.ledger.as_ref(), self.client.metrics(), &cid, reason).await;
            }
            Err(other) => return Err(other),
        };
        // After the rows exist: a worker that finds a URL must find its row too.
        let listed = !listing.urls.is_empty();
        for (recording, url) in listing.urls {
            self.urls.put(recording, url);
        }
        let mut next = self.lifecycle.after_listing(&row, listing.waiting, now);
        next.reason = None;
        if next.state == ConversationState::Settled && listing.screen == 0 {
            // Flagged `screenRecording` by analytics (the default filter), and nothing:
            // the recording failed on the desktop, or was deleted before it was listed.
            self.client.metrics().conversation_without_screen_recording();
            tracing::info!(
                message = "Conversation settled without any screen recording listed.",
                conversation_id = %cid,
            );
        }
        self.ledger.save_conversations(vec![next]).await?;
        if added > 0 || listed {
            self.work.notify_one();
        }
        Ok(())
    }

    /// The row of a screen recording listed as `UPLOADING` or `RESTORING`: in the
    /// ledger (visible, counted in the oldest unarchived) from the first listing on,
    /// due to a worker only at the deadline; its conversation's listings hand it over
    /// sooner once it is ready.
    fn not_ready(&self, mut row: NewRecording, state: &FileState) -> NewRecording {
        let deadline = chrono::Duration::from_std(self.upload_deadline).unwrap_or(chrono::Duration::MAX);
        row.not_before = Some(Utc::now() + deadline);
        row.transcoding = true;
        row.waiting = Some(uploading_reason(state));
        row
    }

    /// recordingmetadata: screen recordings go in as due (the recording call follows),
    /// the rest parked; UPLOADING and RESTORING ones wait ([`Checker::not_ready`]).
    fn read_metadata(&self, conversation_id: &str, all: Vec<RecordingMetadata>) -> Listing {
        let mut listing = Listing::default();
        for r in all {
            listing.screen += usize::from(r.is_screen());
            let parked = never_archived(conversation_id, &r);
            let row = new_recording(conversation_id, &r, parked.clone());
            match r.file_state.as_ref().filter(|s| s.is_transient()) {
                Some(state) if parked.is_none() => {
                    listing.waiting = true;
                    listing.recordings.push(self.not_ready(row, state));
                }
                _ => listing.recordings.push(row),
            }
        }
        listing
    }

    fn read_list(&self, conversation_id: &str, all: Vec<Recording>) -> Listing {
        let mut listing = Listing::default();
        for recording in all {
            listing.screen += usize::from(recording.metadata.is_screen());
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
                Ok(RecordingFetch::Ready { recording, parts }) => {
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
                    listing.urls.push((recording, parts));
                }
                Ok(RecordingFetch::Pending {
                    file_state: Some(state),
                    ..
                }) => {
                    listing.waiting = true;
                    let row = self.not_ready(new(None, None, false), &state);
                    listing.recordings.push(row);
                }
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
                    tracing::warn!(message = "Listed recording cannot be used.", recording_id = %untrusted::shown(&id), %error);
                    listing.recordings.push(new(Some(error.to_string()), None, false));
                }
            }
        }
        listing
    }
}

/// Why a listed recording can never be archived: unsafe ids (they shape API paths,
/// object keys and file names), not a screen recording, deleted or archived in Genesys.
fn never_archived(conversation_id: &str, r: &RecordingMetadata) -> Option<String> {
    let conversation_id = r.conversation_id.as_deref().unwrap_or(conversation_id);
    if !is_safe_id(&r.id) {
        return Some(format!("unsafe recording id {}", untrusted::shown(&r.id)));
    }
    if !is_safe_id(conversation_id) {
        return Some(format!("unsafe conversation id {}", untrusted::shown(conversation_id)));
    }
    match (r.is_screen(), &r.file_state) {
        (true, Some(state @ (FileState::Deleted | FileState::Archived))) => Some(park_reason(state)),
        (true, _) => None,
        (false, _) => Some(format!(
            "not a screen recording (media {})",
            String::from(r.media.clone())
        )),
    }
}

fn new_recording(conversation_id: &str, r: &RecordingMetadata, parked: Option<String>) -> NewRecording {
    let conversation_id = r.conversation_id.as_deref().unwrap_or(conversation_id);
    NewRecording {
        end_time: r.end_time,
        metadata: serde_json::to_string(r).expect("metadata serializes"),
        parked,
        archive_date: r.archive_date,
        delete_date: r.delete_date,
        // Unsafe ids are kept by the ledger under a derived key (`NewRecording::sanitized`);
        // such a row is parked by `never_archived`.
        ..NewRecording::due(&r.id, conversation_id, r.start_time)
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
