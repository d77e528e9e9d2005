//! One recording, from "claimed" to a ledger state.
//!
//! [`Worker::process`] is the single step that `run`, `backfill`, `demo`, the load test
//! and the tests all drive. The order of operations is what makes "exactly once" hold:
//! 1. fetch the recording (through the budget); transcoding is rescheduled, not waited on;
//! 2. look at the key first: an object there that the archiver wrote for this recording
//!    (a finished upload whose ledger update a crash lost) is adopted after reading its
//!    checksum back; anything else there is never overwritten, and the recording is parked;
//! 3. stream the download through a counter and hasher that fails the body if it is
//!    short, so the sink aborts instead of completing a truncated object; an expired
//!    URL (403) gets a fresh one and starts over;
//! 4. confirm the object with the sink and check its size, write the sidecar, and only
//!    then mark the recording archived.
//!
//! Over 500 lines: one recording's attempt (URL, download, upload of every part,
//! confirmation, sidecar, ledger state) is one sequence, read top to bottom; what it
//! calls is apart (`check.rs`, `urls.rs`, the sink, the ledger).

use super::settings::WorkerSettings;
use super::stats::PipelineStats;
use crate::genesys::media_policy::UrlRejected;
use crate::genesys::model::{FileState, FormatId, MediaPart, Recording, RecordingFetch};
use crate::genesys::pace::{self, paced};
use crate::genesys::{ApiError, GenesysClient};
use crate::ledger::{ArchiveFacts, Claim, Claimed, Ledger, LedgerError, LedgerResult, PartFacts, State};
use crate::retry::backoff::full_jitter;
use crate::sink::layout::{KeyLayout, RecordingKeys, part_label};
use crate::sink::tally::tallied;
use crate::sink::{Owner, PutRequest, Sink, SinkError, UploadJournal};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What became of one claimed recording.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Archived {
        size: u64,
        adopted: bool,
    },
    /// Not ready in Genesys yet; due again later.
    Pending,
    Parked(String),
    Retrying(String),
    Failed(String),
    /// Shutdown stopped it; it is due again at the next start.
    Interrupted,
    /// Another owner took the recording over (its claim changed); this worker left
    /// every row and object alone.
    ClaimLost,
}

/// Why an attempt did not archive the recording.
#[derive(Debug)]
enum Failure {
    /// Worth another attempt later.
    Transient(String),
    /// Never archivable as it stands.
    Permanent(String),
    Cancelled,
    /// The claim was taken over: stop without touching anything.
    ClaimLost,
}

enum Step {
    Done(ArchiveFacts, bool),
    /// Not ready: transcoding (no state) or `UPLOADING`/`RESTORING`, ask again after
    /// the estimate.
    Pending(Option<FileState>, Option<Duration>),
    Park(String),
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        match &error {
            ApiError::Status { status: 404 | 410, .. } => Failure::Permanent(format!("not found in Genesys ({error})")),
            // A name that resolves here only to internal addresses: the environment's
            // doing as likely as the URL's; retried with backoff (then failed, which
            // `retry` undoes), never parked for good.
            ApiError::UrlRejected(UrlRejected::Resolved(_)) => Failure::Transient(error.to_string()),
            ApiError::Payload { .. } | ApiError::UrlRejected(_) | ApiError::TooLarge { .. } => {
                Failure::Permanent(error.to_string())
            }
            _ => Failure::Transient(error.to_string()),
        }
    }
}

impl From<SinkError> for Failure {
    /// Sink failures are counted by the sink itself ([`crate::sink::counted`]).
    fn from(error: SinkError) -> Self {
        match error {
            SinkError::Cancelled => Failure::Cancelled,
            SinkError::Source(e) => Failure::from(ApiError::from(e)),
            other => Failure::Transient(format!("sink: {other}")),
        }
    }
}

/// Why a recording that Genesys will not hand out is parked.
pub(super) fn park_reason(state: &FileState) -> String {
    match state {
        FileState::Deleted => "deleted in Genesys".into(),
        FileState::Archived => "archived in Genesys (restore it there to archive it)".into(),
        FileState::Error => "fileState ERROR in Genesys".into(),
        other => format!("fileState {other} cannot be downloaded"),
    }
}

/// Why a recording that Genesys lists as not ready yet (`UPLOADING`, `RESTORING`) waits.
pub(super) fn uploading_reason(state: &FileState) -> String {
    format!("{state} in Genesys (waited for up to discovery.upload_deadline)")
}

/// How many fresh download URLs one attempt may ask for when they keep expiring.
const URL_ROUNDS: u32 = 3;

pub struct Worker {
    pub client: Arc<GenesysClient>,
    pub ledger: Arc<dyn Ledger>,
    pub sink: Arc<dyn Sink>,
    pub layout: KeyLayout,
    pub format: FormatId,
    pub settings: WorkerSettings,
    /// A recording still `UPLOADING` or `RESTORING` in Genesys this long after it was
    /// first listed fails with that reason (`discovery.upload_deadline`).
    pub upload_deadline: Duration,
    pub stats: Arc<PipelineStats>,
}

/// A recording as a conversation listing described it, with its fresh download URLs.
pub type Listed = (Box<Recording>, Vec<MediaPart>);

/// Journals a recording's multipart upload at one of its keys in the ledger, under the
/// worker's claim.
struct LedgerJournal<'a> {
    ledger: &'a dyn Ledger,
    claim: Claim,
    key: &'a str,
}

impl UploadJournal for LedgerJournal<'_> {
    fn opened<'a>(&'a self, upload_id: &'a str) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            self.ledger
                .upload_opened(self.claim.clone(), self.key.to_owned(), upload_id.to_owned())
                .await
                .map_err(|e| SinkError::store("journal", e))
        })
    }

    fn closed(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            self.ledger
                .upload_closed(self.claim.clone())
                .await
                .map_err(|e| SinkError::store("journal", e))
        })
    }
}

impl Worker {
    /// Works one recording to its next ledger state. Only a ledger failure is an error:
    /// without the ledger nothing can be recorded, and the run must stop.
    pub async fn process(&self, claimed: Claimed, cancel: &CancellationToken) -> LedgerResult<Outcome> {
        self.process_listed(claimed, None, cancel).await
    }

    /// [`Worker::process`] with the URL a listing just handed out for it, if any: then
    /// no recording call is made unless that URL has expired.
    ///
    /// Everything runs inside the recording's span through `.instrument()`, never a
    /// guard held across an await: a guard would tag other tasks' lines on this thread
    /// with this recording's ids.
    pub async fn process_listed(
        &self,
        claimed: Claimed,
        listed: Option<Listed>,
        cancel: &CancellationToken,
    ) -> LedgerResult<Outcome> {
        let span = tracing::info_span!(
            "recording",
            recording_id = %claimed.recording_id,
            conversation_id = %claimed.conversation_id
        );
        tracing::Instrument::instrument(
            async move {
                let claim = claimed.claim();
                match self.settle(claimed, listed, cancel).await {
                    // The ledger refused a value of this row: parked with why (a
                    // reason is sanitized, so this write is accepted), not an outage.
                    Err(LedgerError::Data(why)) => {
                        let reason = format!("the ledger refused a value of this recording: {why}");
                        tracing::error!(message = "Recording parked: the ledger refused a value of it.", %reason);
                        self.ledger.park(claim, reason.clone()).await?;
                        Ok(Outcome::Parked(reason))
                    }
                    Err(LedgerError::ClaimLost(_)) => {
                        tracing::warn!(
                            message = "Recording taken over by another owner of the ledger; left to it untouched."
                        );
                        Ok(Outcome::ClaimLost)
                    }
                    other => other,
                }
            },
            span,
        )
        .await
    }

    /// One attempt, then its outcome written to the ledger under the claim.
    async fn settle(
        &self,
        claimed: Claimed,
        listed: Option<Listed>,
        cancel: &CancellationToken,
    ) -> LedgerResult<Outcome> {
        let started = Instant::now();
        let claim = claimed.claim();
        let result = self.attempt(&claimed, listed, cancel).await;
        let outcome = match result {
            Ok(Step::Done(facts, adopted)) => {
                let size = facts.size;
                let key = facts.key.clone();
                let files = facts.files().len() as u64;
                self.ledger.archived(claim, facts).await?;
                self.stats.archived(size, claimed.end_time, started.elapsed());
                let lag = claimed.end_time.and_then(|end| (Utc::now() - end).to_std().ok());
                self.client.metrics().uploaded(size, files, started.elapsed(), lag);
                tracing::info!(
                    message = "Recording archived.",
                    size_bytes = size,
                    files,
                    duration_ms = started.elapsed().as_millis() as u64,
                    key = %key,
                    adopted,
                );
                Outcome::Archived { size, adopted }
            }
            Ok(Step::Pending(state, _)) if waited(&claimed) > self.patience(state.as_ref()) => {
                let error = match state {
                    Some(state) => format!(
                        "still {state} in Genesys after discovery.upload_deadline ({})",
                        humantime::format_duration(self.upload_deadline)
                    ),
                    None => format!(
                        "not ready in Genesys (HTTP 202, transcoding) for more than workers.max_transcode_wait ({})",
                        humantime::format_duration(self.settings.max_transcode_wait)
                    ),
                };
                self.fail_for_good(claim, claimed.attempts + 1, error).await?
            }
            Ok(Step::Pending(state, estimate)) => {
                // Looked at again after the platform's estimate (an uploading one, whose
                // conversation listing follows it too, after a minute at least), but not
                // after its deadline: a stuck recording fails on time.
                let floor = match state {
                    Some(_) => Duration::from_secs(60),
                    None => Duration::from_secs(1),
                };
                let wait = estimate
                    .unwrap_or(Duration::from_secs(5))
                    .clamp(floor, Duration::from_secs(600))
                    .min(self.patience(state.as_ref()).saturating_sub(waited(&claimed)))
                    .max(Duration::from_secs(1));
                // `list --state waiting` says why it waits.
                let why = state.map(|s| uploading_reason(&s));
                self.ledger
                    .reschedule(claim, State::Transcoding, later(wait), claimed.attempts, why)
                    .await?;
                self.stats.bump(&self.stats.pending);
                tracing::debug!(
                    message = "Recording not ready in Genesys; rescheduled.",
                    wait_ms = wait.as_millis() as u64
                );
                Outcome::Pending
            }
            Ok(Step::Park(reason)) | Err(Failure::Permanent(reason)) => {
                self.ledger.park(claim, reason.clone()).await?;
                self.client.metrics().recording_parked();
                tracing::warn!(message = "Recording parked.", reason = %reason);
                Outcome::Parked(reason)
            }
            Err(Failure::ClaimLost) => return Err(LedgerError::ClaimLost(claimed.recording_id)),
            Err(Failure::Cancelled) => {
                self.ledger
                    .reschedule(claim, State::Discovered, Utc::now(), claimed.attempts, None)
                    .await?;
                Outcome::Interrupted
            }
            Err(Failure::Transient(error)) => {
                let attempts = claimed.attempts + 1;
                if attempts >= self.settings.max_attempts {
                    self.fail_for_good(claim, attempts, error).await?
                } else {
                    let mut rng = fastrand::Rng::new();
                    let wait = full_jitter(&self.settings.backoff, attempts - 1, &mut rng);
                    self.ledger
                        .reschedule(claim, State::Retrying, later(wait), attempts, Some(error.clone()))
                        .await?;
                    tracing::warn!(message = "Recording attempt failed; will retry.", attempts, wait_ms = wait.as_millis() as u64, error = %error);
                    Outcome::Retrying(error)
                }
            }
        };
        Ok(outcome)
    }

    async fn fail_for_good(&self, claim: Claim, attempts: u32, error: String) -> LedgerResult<Outcome> {
        self.ledger.fail(claim, attempts, error.clone()).await?;
        self.client.metrics().recording_failed();
        tracing::error!(message = "Recording failed for good; `retry` puts it back.", attempts, error = %error);
        Ok(Outcome::Failed(error))
    }

    /// How long a recording not ready in Genesys is waited for after its discovery:
    /// `discovery.upload_deadline` while it is `UPLOADING` or `RESTORING`,
    /// `workers.max_transcode_wait` while it is transcoding.
    fn patience(&self, state: Option<&FileState>) -> Duration {
        match state {
            Some(_) => self.upload_deadline,
            None => self.settings.max_transcode_wait,
        }
    }

    /// The recording's object keys: the pattern its first attempt stored, or computed
    /// now and stored before anything is written, so every later attempt (in another
    /// hour, after a restart, on another replica) writes each part to the same key.
    async fn key(&self, claimed: &Claimed, recording: &Recording) -> Result<RecordingKeys, Failure> {
        let (cid, rid) = (claimed.conversation_id.as_str(), claimed.recording_id.as_str());
        if let Some(key) = &claimed.key {
            return Ok(KeyLayout::fixed(key.as_str(), rid, self.sink.prefix()));
        }
        // The recording's own start time; without one, the conversation's; without
        // either, now: fixed from here on, so "now" is read once per recording.
        let start = recording
            .metadata
            .start_time
            .or(claimed.start_time)
            .unwrap_or_else(Utc::now);
        let keys = self
            .layout
            .keys(self.sink.prefix(), cid, rid, start, self.format.extension())
            .map_err(Failure::Permanent)?;
        let stored = self
            .ledger
            .fix_key(claimed.claim(), keys.pattern.clone())
            .await
            .map_err(|e| match e {
                LedgerError::ClaimLost(_) => Failure::ClaimLost,
                other => Failure::Transient(other.to_string()),
            })?;
        Ok(KeyLayout::fixed(stored, rid, self.sink.prefix()))
    }

    async fn attempt(
        &self,
        claimed: &Claimed,
        mut listed: Option<Listed>,
        cancel: &CancellationToken,
    ) -> Result<Step, Failure> {
        let (cid, rid) = (claimed.conversation_id.as_str(), claimed.recording_id.as_str());
        // Ids shape API paths and keys: one that discovery parked and an operator put back
        // (`retry --parked`) is parked again here, before any call.
        for (what, id) in [("conversation", cid), ("recording", rid)] {
            if !crate::untrusted::is_safe_id(id) {
                return Err(Failure::Permanent(format!(
                    "unsafe {what} id {}",
                    crate::untrusted::shown(id)
                )));
            }
        }
        let left_open = claimed.upload_key.as_ref().or(claimed.key.as_ref());
        if let (Some(key), Some(upload_id)) = (left_open, &claimed.open_upload) {
            // Left by an attempt that could not abort it (the store was down): abort it
            // now, or this attempt waits for the store like the abort does.
            self.sink.abort_upload(key, upload_id).await?;
            self.ledger
                .upload_closed(claimed.claim())
                .await
                .map_err(|e| SinkError::store("journal", e))?;
            tracing::info!(message = "Aborted a multipart upload an earlier attempt left open.", key = %key);
        }
        // Fixed (a ledger write on a first attempt) once, not again for each fresh URL.
        let mut fixed: Option<RecordingKeys> = None;
        // Parts archived by an earlier round of this attempt (a URL that expired halfway
        // through a recording of several files costs only the parts not yet written).
        let mut done: Vec<(PartFacts, bool)> = Vec::new();
        for _round in 0..URL_ROUNDS {
            // The URLs the conversation listing handed out, if any: no call at all.
            let fetch = match listed.take() {
                Some((recording, parts)) => RecordingFetch::Ready { recording, parts },
                None => tokio::select! {
                    _ = cancel.cancelled() => return Err(Failure::Cancelled),
                    fetch = self.client.recording(cid, rid) => fetch?,
                },
            };
            let (recording, parts) = match fetch {
                RecordingFetch::Ready { recording, parts } => (recording, parts),
                RecordingFetch::Pending { estimate, file_state } => return Ok(Step::Pending(file_state, estimate)),
                RecordingFetch::NotDownloadable { file_state } => return Ok(Step::Park(park_reason(&file_state))),
            };
            if fixed.is_none() {
                fixed = Some(self.key(claimed, &recording).await?);
            }
            let keys = fixed.as_ref().expect("fixed just above");
            let count = parts.len();
            let mut expired = false;
            for part in &parts {
                let label = part_label(&part.name);
                let key = keys.part(&label, count);
                if done.iter().any(|(facts, _)| facts.key == key) {
                    continue;
                }
                let target = PartTarget {
                    label: &label,
                    key: &key,
                    url: &part.url,
                    // Only a recording of one file may be checked against the size it
                    // declares: whether `outputSizeInBytes` is the sum of the parts or
                    // something else is not documented, so parts are held to their
                    // hosts' Content-Length alone.
                    declared: if count == 1 {
                        recording.output_size_in_bytes
                    } else {
                        None
                    },
                };
                match self.archive_part(claimed, &target, cancel).await? {
                    PartStep::Done(facts, adopted) => done.push((facts, adopted)),
                    PartStep::Expired => {
                        expired = true;
                        break;
                    }
                    PartStep::Park(reason) => return Ok(Step::Park(reason)),
                }
            }
            if expired {
                self.client.metrics().url_refreshed();
                tracing::info!(message = "Download URL expired; fetching a fresh one.");
                continue;
            }
            // Every part of this listing is in the sink; the facts in the listing's order.
            let adopted = done.iter().all(|(_, adopted)| *adopted);
            let files: Vec<PartFacts> = parts
                .iter()
                .filter_map(|p| {
                    let key = keys.part(&part_label(&p.name), count);
                    done.iter().find(|(f, _)| f.key == key).map(|(f, _)| f.clone())
                })
                .collect();
            if files.len() < done.len() {
                // A part written by an earlier round is not in this listing: the
                // recording's files changed between two listings. Parked, so that no
                // part is lost or left behind silently.
                return Ok(Step::Park(format!(
                    "the recording's files changed between two listings ({} written, {} listed now); \
                     look at it in Genesys, then `retry --parked --id`",
                    done.len(),
                    files.len()
                )));
            }
            let facts = ArchiveFacts::of_parts(files, Utc::now());
            self.write_sidecar(&recording, keys, &facts).await?;
            if adopted {
                tracing::info!(
                    message = "Objects already in the sink from an earlier attempt; adopted after reading them back."
                );
            }
            return Ok(Step::Done(facts, adopted));
        }
        Err(Failure::Transient(format!(
            "download URL expired {URL_ROUNDS} times in a row"
        )))
    }

    /// One file of the recording into the sink, exactly once: adopted when an earlier
    /// attempt wrote it, else streamed from its URL and confirmed.
    async fn archive_part(
        &self,
        claimed: &Claimed,
        target: &PartTarget<'_>,
        cancel: &CancellationToken,
    ) -> Result<PartStep, Failure> {
        let rid = claimed.recording_id.as_str();
        // Twice at most: a key taken between the check and the write is looked at again.
        for _ in 0..2 {
            if let Some(existing) = self.sink.head(target.key).await? {
                return self.adopt(rid, claimed.start_time, target, existing, cancel).await;
            }
            let download = match self.client.open_media(target.url).await {
                Err(ApiError::UrlExpired) => return Ok(PartStep::Expired),
                other => other?,
            };
            // The body must end exactly at the announced length, or at the size the
            // recording declares when the host announced none: short or long, the
            // stream fails and the sink aborts.
            let expected = download.content_length.or(target.declared);
            let stream = paced(download.stream, self.settings.min_download_rate, pace::WINDOW);
            let (body, tally) = tallied(stream, expected);
            let request = PutRequest {
                key: target.key,
                recording_id: rid,
                conversation_id: &claimed.conversation_id,
                content_type: content_type(self.format),
                // A single streamed PutObject commits exactly the length it declares,
                // before an overrun could be seen: only the host's own Content-Length
                // may be declared. Without it, the upload is multipart, whose
                // completion waits for the whole body and its check.
                length: download.content_length,
                expected,
                // Object Lock's retention counts from the recording's start.
                locked_from: claimed.start_time,
            };
            let journal = LedgerJournal {
                ledger: self.ledger.as_ref(),
                claim: claimed.claim(),
                key: target.key,
            };
            let stored = match self.sink.put_stream(request, body, &journal, cancel).await {
                Ok(stored) => stored,
                Err(SinkError::Exists) => continue,
                Err(e) => return Err(e.into()),
            };
            let (size, sha256) = {
                let t = tally.lock().unwrap();
                (t.bytes, t.sha256())
            };
            return match self.sink.head(target.key).await? {
                Some(info) if info.size == size => {
                    let checksum =
                        confirmed_checksum(target.key, stored.checksum.as_deref(), info.checksum.as_deref())?;
                    Ok(PartStep::Done(target.facts(size, sha256, checksum), false))
                }
                Some(info) => Ok(PartStep::Park(format!(
                    "object at {} has {} bytes after uploading {size}",
                    target.key, info.size
                ))),
                None => Err(Failure::Transient("object not found right after its upload".into())),
            };
        }
        Err(Failure::Transient(format!(
            "the key {} was taken and freed again while writing",
            target.key
        )))
    }

    /// An object is already at the part's key: adopt it if it is this recording's, else park.
    async fn adopt(
        &self,
        recording_id: &str,
        claimed_start: Option<DateTime<Utc>>,
        target: &PartTarget<'_>,
        existing: crate::sink::ObjectInfo,
        cancel: &CancellationToken,
    ) -> Result<PartStep, Failure> {
        let ours = match &existing.owner {
            Owner::Recording(id) => id == recording_id,
            Owner::Unknown => true,
            Owner::Foreign => false,
        };
        // Compared with what its upload recorded it would be (the host's Content-Length
        // may differ from the declared size, and the upload trusted it); an object
        // without that record, with the size the recording declares.
        let size_fits = match existing.recorded_size {
            Some(recorded) => recorded == existing.size,
            None => target.declared.is_none_or(|s| s == existing.size),
        };
        if !ours || !size_fits {
            // Never overwritten, never deleted; a locked one could not be either.
            let locked = existing
                .lock
                .as_ref()
                .map(|l| format!(" (locked in {} mode until {})", l.mode, l.until.to_rfc3339()))
                .unwrap_or_default();
            return Ok(PartStep::Park(format!(
                "an object already exists at {}{locked} and is not this recording's; it is never overwritten",
                target.key
            )));
        }
        // Reading a large object back takes a while: a stop does not wait for it (the
        // recording is due again, and adopted then).
        let (size, sha256) = tokio::select! {
            read = self.sink.read_checksum(target.key) => read?,
            _ = cancel.cancelled() => return Err(Failure::Cancelled),
        };
        // An attempt that stopped between its upload and its lock left it unlocked.
        self.sink.ensure_locked(target.key, claimed_start).await?;
        let checksum = adopted_checksum(target.key, existing.checksum.as_deref(), &sha256);
        Ok(PartStep::Done(target.facts(size, sha256, checksum), true))
    }

    async fn write_sidecar(
        &self,
        recording: &Recording,
        keys: &RecordingKeys,
        facts: &ArchiveFacts,
    ) -> Result<(), Failure> {
        let body = sidecar(recording, self.format, facts);
        match self
            .sink
            .put_bytes(
                &keys.sidecar,
                body.into(),
                "application/json",
                Some(recording.metadata.id.as_str()),
                recording.metadata.start_time,
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(SinkError::Exists) => Err(Failure::Permanent(format!(
                "an object that is not this recording's is at its sidecar key {}; it is never overwritten",
                keys.sidecar
            ))),
            Err(e) => Err(e.into()),
        }
    }
}

/// The checksum an upload is archived with: the one it sent, once the store reports
/// keeping exactly that (it verified the bytes against it on receipt). A store that
/// reports none kept no checksum (Garage, older MinIO): an error naming the setting,
/// rather than a claim of store-side integrity nothing backs.
fn confirmed_checksum(key: &str, sent: Option<&str>, reported: Option<&str>) -> Result<String, Failure> {
    match (sent, reported) {
        (None, _) => Ok(String::new()),
        (Some(sent), Some(kept)) if crate::sink::checksum::same(sent, kept) => Ok(kept.to_owned()),
        // Not retried: the object stays, and a retry would adopt it (adoption records
        // only a checksum it can match with the bytes read back).
        (Some(sent), Some(kept)) => Err(Failure::Permanent(format!(
            "the store keeps checksum {kept} for {key}, not the {sent} sent with it"
        ))),
        (Some(_), None) => Err(Failure::Permanent(format!(
            "the store kept no checksum for {key}: it does not support S3 additional checksums; \
             set s3.checksum_algorithm = \"none\" for it"
        ))),
    }
}

/// The store's checksum an adopted object is archived with: only one that the bytes
/// read back match (a single upload's SHA-256). Any other (a composite, CRC64NVME, one
/// that does not match) is left out: the copy is then not proven, and never handed off.
fn adopted_checksum(key: &str, kept: Option<&str>, sha256_hex: &str) -> String {
    let Some(kept) = kept else {
        return String::new();
    };
    let matches = kept
        .strip_prefix("SHA256:")
        .and_then(|b64| aws_smithy_types::base64::decode(b64).ok())
        .is_some_and(|digest| crate::hex::hex(&digest) == sha256_hex);
    if matches {
        return kept.to_owned();
    }
    tracing::warn!(
        message = "An adopted object's store checksum cannot be matched with its bytes; archived as not proven by the store.",
        key = %key,
        checksum = %kept,
    );
    String::new()
}

/// One file of a recording to archive.
struct PartTarget<'a> {
    label: &'a str,
    key: &'a str,
    url: &'a reqwest::Url,
    /// The size the recording declares for this file, when that is known to apply.
    declared: Option<u64>,
}

impl PartTarget<'_> {
    /// This file's facts once it is in the sink.
    fn facts(&self, size: u64, sha256: String, checksum: String) -> PartFacts {
        PartFacts {
            part: self.label.to_owned(),
            key: self.key.to_owned(),
            size,
            sha256,
            checksum,
        }
    }
}

/// What became of one file.
enum PartStep {
    /// In the sink with these facts; `true` when an earlier attempt had written it.
    Done(PartFacts, bool),
    /// Its URL expired: the recording is fetched again for fresh ones.
    Expired,
    Park(String),
}

/// How long ago the recording was discovered.
fn waited(claimed: &Claimed) -> Duration {
    (Utc::now() - claimed.discovered_at).to_std().unwrap_or_default()
}

fn later(wait: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero())
}

fn content_type(format: FormatId) -> &'static str {
    match format {
        FormatId::Webm => "video/webm",
        FormatId::Wav => "audio/wav",
        FormatId::Mp3 => "audio/mpeg",
        FormatId::OggVorbis | FormatId::OggOpus => "audio/ogg",
        FormatId::None => "application/octet-stream",
    }
}

/// The `{recordingId}_metadata.json` sidecar: the recording as Genesys described it
/// (without its download URLs, which are credentials) and the archive's own facts,
/// every part listed with its key, size and SHA-256.
pub fn sidecar(recording: &Recording, format: FormatId, facts: &ArchiveFacts) -> Vec<u8> {
    let mut described = recording.clone();
    described.media_uris = None;
    let parts: Vec<serde_json::Value> = facts
        .files()
        .iter()
        .map(|p| {
            let mut file = serde_json::json!({"part": p.part, "key": p.key, "sizeBytes": p.size, "sha256": p.sha256});
            if !p.checksum.is_empty() {
                // The store's own checksum, which it verified when the bytes arrived.
                file["s3Checksum"] = p.checksum.clone().into();
            }
            file
        })
        .collect();
    let mut archive = serde_json::json!({
        "recordingId": recording.metadata.id,
        "conversationId": recording.metadata.conversation_id,
        "key": facts.key,
        "format": format.as_str(),
        "sizeBytes": facts.size,
        "parts": parts,
        "archivedAt": facts.archived_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "archiver": concat!("genesys-archiver/", env!("CARGO_PKG_VERSION")),
    });
    if !facts.sha256.is_empty() {
        archive["sha256"] = facts.sha256.clone().into();
    }
    let doc = serde_json::json!({ "recording": described, "archive": archive });
    serde_json::to_vec_pretty(&doc).expect("JSON values serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adopted_object_keeps_only_a_store_checksum_its_bytes_match() {
        // SHA-256("hello").
        let hex = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let b64 = "SHA256:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=";
        assert_eq!(adopted_checksum("k", Some(b64), hex), b64);
        assert_eq!(adopted_checksum("k", Some("SHA256:AAAA"), hex), "", "another digest");
        assert_eq!(
            adopted_checksum("k", Some("SHA256:AAAA-3"), hex),
            "",
            "a composite cannot be matched"
        );
        assert_eq!(adopted_checksum("k", None, hex), "");
    }

    #[test]
    fn a_name_resolving_internal_here_is_retried_and_a_url_naming_an_internal_address_parked() {
        let resolved = ApiError::UrlRejected(UrlRejected::Resolved("`media.example.com` resolves to 10.0.0.8".into()));
        assert!(matches!(Failure::from(resolved), Failure::Transient(_)));
        let literal = ApiError::UrlRejected(UrlRejected::Address("169.254.169.254".into()));
        assert!(matches!(Failure::from(literal), Failure::Permanent(_)));
        let host = ApiError::UrlRejected(UrlRejected::Host("evil.example".into()));
        assert!(matches!(Failure::from(host), Failure::Permanent(_)));
    }
}
