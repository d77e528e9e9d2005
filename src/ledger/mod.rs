//! The durable state of every recording: the archiver's memory across restarts, and
//! its work queue.
//!
//! The pipeline speaks only this interface; [`sqlite::SqliteLedger`] is the embedded
//! backend for one replica, [`postgres::PgLedger`] the shared one for several; the
//! process opens either as a [`store::LedgerStore`]. Every state change is one
//! transaction.
//!
//! States: `discovered` (due for work), `transcoding` and `retrying` (due later),
//! `uploading` (a worker holds it), then one of `archived`, `parked` (never archivable:
//! deleted or archived in Genesys, not a screen recording, unusable payload) or
//! `failed` (attempts exhausted; `retry` puts it back).
//!
//! Over 500 lines: the `Ledger` trait and the types it speaks (states, rows, facts,
//! reports) are the one vocabulary of both backends and every caller, kept together; most
//! of it is the interface's doc comments. The SQL is elsewhere (`statements.rs`).

mod changes;
mod dialect;
pub mod encoding;
pub mod lock;
pub mod org_state;
pub mod postgres;
mod rows;
pub mod sqlite;
mod statements;
pub mod store;
mod value;

use crate::untrusted;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;

pub use changes::ClaimedChange;
pub use org_state::{OrgCondition, OrgState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Discovered,
    Transcoding,
    Uploading,
    Retrying,
    Archived,
    Parked,
    Failed,
}

impl State {
    pub const ALL: [State; 7] = [
        State::Discovered,
        State::Transcoding,
        State::Uploading,
        State::Retrying,
        State::Archived,
        State::Parked,
        State::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Discovered => "discovered",
            State::Transcoding => "transcoding",
            State::Uploading => "uploading",
            State::Retrying => "retrying",
            State::Archived => "archived",
            State::Parked => "parked",
            State::Failed => "failed",
        }
    }

    /// No more work will be done on it without an operator.
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Archived | State::Parked | State::Failed)
    }
}

/// Where a discovered conversation is in its life, as the ledger keeps it.
///
/// `active` (no `conversationEnd` yet: re-read in batches), `ended` (its recordings are
/// listed when due, again while any is not ready), `checking` (a worker lists them now),
/// `settled` (ended, `settle_after_end` passed, nothing left to list; its recordings are
/// followed in the recordings table), `parked` (its recording list is unusable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationState {
    Active,
    Ended,
    Checking,
    Settled,
    Parked,
}

impl ConversationState {
    pub const ALL: [ConversationState; 5] = [
        ConversationState::Active,
        ConversationState::Ended,
        ConversationState::Checking,
        ConversationState::Settled,
        ConversationState::Parked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConversationState::Active => "active",
            ConversationState::Ended => "ended",
            ConversationState::Checking => "checking",
            ConversationState::Settled => "settled",
            ConversationState::Parked => "parked",
        }
    }

    pub fn parse(s: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .unwrap_or(ConversationState::Ended)
    }
}

/// One conversation's lifecycle row. The pipeline decides every field; the ledger
/// stores them (policy above storage).
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationRow {
    pub conversation_id: String,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    pub state: ConversationState,
    /// Looks taken so far in the current state (sets the growing interval).
    pub checks: u32,
    /// When it is looked at next (`None`: never, settled or parked).
    pub next_check_at: Option<DateTime<Utc>>,
    /// Why its last listing failed (a 403 for a missing permission, the platform
    /// down): shown by `status` and `list --state waiting` until a listing succeeds.
    pub reason: Option<String>,
}

impl ConversationRow {
    /// As the ledger keeps it (see [`NewRecording::sanitized`]).
    pub fn sanitized(self) -> Self {
        Self {
            conversation_id: untrusted::ledger_key(&self.conversation_id),
            reason: self.reason.as_deref().map(untrusted::reason),
            ..self
        }
    }
}

/// A recording found by discovery.
#[derive(Debug, Clone)]
pub struct NewRecording {
    pub recording_id: String,
    pub conversation_id: String,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    /// The metadata as discovered (JSON), for the sidecar.
    pub metadata: String,
    /// Parked at once, with this reason (deleted, archived in Genesys, not screen).
    pub parked: Option<String>,
    /// Not due before then: with `transcoding`, not ready in Genesys yet; without, a
    /// listed download URL is being handed to a worker meanwhile (the due time is the
    /// fallback should that not happen, e.g. after a restart).
    pub not_before: Option<DateTime<Utc>>,
    pub transcoding: bool,
    /// Why a row that is not parked waits (`UPLOADING in Genesys`), for `list`.
    pub waiting: Option<String>,
    /// After `archiveDate` the recording needs a restore in Genesys; after `deleteDate`
    /// it is gone. The nearer of the two orders the queue.
    pub archive_date: Option<DateTime<Utc>>,
    pub delete_date: Option<DateTime<Utc>>,
}

/// How long Genesys keeps a screen recording at most (`../shared/genesys-api.md`): the
/// deadline of one whose `archiveDate` and `deleteDate` are not known, counted from its
/// start, so it still takes its place in the deadline order by age.
pub const KEPT_AT_MOST: chrono::Duration = chrono::Duration::days(365);

impl NewRecording {
    /// As the ledger keeps it: ids under [`untrusted::ledger_key`], reasons through the
    /// one sanitizer (discovery does so already; this holds for every other caller).
    pub fn sanitized(self) -> Self {
        Self {
            recording_id: untrusted::ledger_key(&self.recording_id),
            conversation_id: untrusted::ledger_key(&self.conversation_id),
            parked: self.parked.as_deref().map(untrusted::reason),
            waiting: self.waiting.as_deref().map(untrusted::reason),
            ..self
        }
    }

    /// A recording due now that nothing more is known of: what the other fields say
    /// (parked, waiting, dates, metadata) is set on top of it.
    pub fn due(recording_id: &str, conversation_id: &str, start_time: Option<DateTime<Utc>>) -> Self {
        Self {
            recording_id: recording_id.to_owned(),
            conversation_id: conversation_id.to_owned(),
            start_time,
            end_time: None,
            metadata: "{}".into(),
            parked: None,
            not_before: None,
            transcoding: false,
            waiting: None,
            archive_date: None,
            delete_date: None,
        }
    }

    /// When the recording stops being downloadable as it is: the nearer of its
    /// `archiveDate` and `deleteDate`, else a year after its start (or `now`).
    pub fn deadline(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match (self.archive_date, self.delete_date) {
            (Some(a), Some(d)) => a.min(d),
            (a, d) => a.or(d).unwrap_or_else(|| self.start_time.unwrap_or(now) + KEPT_AT_MOST),
        }
    }
}

/// A recording a worker took.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub recording_id: String,
    pub conversation_id: String,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub metadata: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The id of a multipart upload an earlier attempt opened at `upload_key` and could
    /// not abort (the store was down): aborted before this attempt starts.
    pub open_upload: Option<String>,
    /// Where that upload was opened: one of the recording's part keys (`None` from rows
    /// written before parts existed: then it is `key`).
    pub upload_key: Option<String>,
    /// The object key fixed by the first attempt ([`Ledger::fix_key`]); later attempts
    /// use it as it is, so a retry in another hour cannot write a second object.
    pub key: Option<String>,
    /// When discovery found it (how long a not-ready recording has been waiting).
    pub discovered_at: DateTime<Utc>,
    /// This claim's token: every state change below checks it, so a worker whose claim
    /// was taken over (recovery by another owner) changes nothing.
    pub token: i64,
}

impl Claimed {
    /// What a state change needs to name this claim.
    pub fn claim(&self) -> Claim {
        Claim {
            recording_id: self.recording_id.clone(),
            token: self.token,
        }
    }
}

/// A held claim on one recording: its id and the token written when it was claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub recording_id: String,
    pub token: i64,
}

/// One row of `list`: what an operator needs to decide about a recording.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecordingRow {
    pub recording_id: String,
    pub conversation_id: String,
    pub state: String,
    /// Why it is parked or failed, or the last error of a retrying one.
    pub reason: Option<String>,
    pub attempts: u32,
    pub start_time: Option<DateTime<Utc>>,
    pub discovered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The nearer of its `archiveDate` and `deleteDate` (a year after its start when
    /// Genesys gave neither).
    pub deadline: Option<DateTime<Utc>>,
    /// What the retention hand-off did, once done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handoff: Option<Handoff>,
}

/// An archived recording whose retention hand-off to Genesys is not done yet.
#[derive(Debug, Clone, PartialEq)]
pub struct HandoffDue {
    pub recording_id: String,
    pub conversation_id: String,
    pub start_time: Option<DateTime<Utc>>,
    pub archived_at: DateTime<Utc>,
    /// The dates Genesys listed for it.
    pub archive_date: Option<DateTime<Utc>>,
    pub delete_date: Option<DateTime<Utc>>,
    /// Every archived file, with the checksum its store verified.
    pub files: Vec<PartFacts>,
}

/// What the retention hand-off did to a recording's `deleteDate` in Genesys.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Handoff {
    /// When it was done.
    pub at: DateTime<Utc>,
    /// The delete date before (`None`: none was known).
    pub old: Option<DateTime<Utc>>,
    /// The delete date set; `None`: left as it was (`note` says why).
    pub new: Option<DateTime<Utc>>,
    pub note: String,
}

impl Handoff {
    /// The row's hand-off columns (`handoff_at`, `_old`, `_new` in ms, `_note`), if done.
    pub(crate) fn from_columns(
        at: Option<i64>,
        old: Option<i64>,
        new: Option<i64>,
        note: Option<String>,
    ) -> Option<Self> {
        Some(Self {
            at: encoding::from_ms(at)?,
            old: encoding::from_ms(old),
            new: encoding::from_ms(new),
            note: note.unwrap_or_default(),
        })
    }
}

/// A recording as `reconcile` and the daily manifests read it: its state, and for an
/// archived one every file it was archived as.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerRecord {
    pub recording_id: String,
    pub conversation_id: String,
    pub state: String,
    pub reason: Option<String>,
    /// Its conversation's start (the day it belongs to).
    pub conversation_start: DateTime<Utc>,
    /// The key fixed at its first attempt (a pattern with `{part}` until archived).
    pub key: Option<String>,
    /// Archived: its one file, or each part; otherwise empty.
    pub files: Vec<PartFacts>,
    /// What the retention hand-off did, once done.
    pub handoff: Option<Handoff>,
}

/// The `files` of a row: the `parts` column when there are several, else the one file.
pub(crate) fn record_files(
    state: &str,
    key: Option<&str>,
    size: Option<i64>,
    sha256: Option<&str>,
    parts: Option<&str>,
) -> Vec<PartFacts> {
    if state != State::Archived.as_str() {
        return Vec::new();
    }
    if let Some(parts) = parts.and_then(|p| serde_json::from_str::<Vec<PartFacts>>(p).ok()) {
        return parts;
    }
    match key {
        Some(key) => vec![PartFacts {
            part: String::new(),
            key: key.to_owned(),
            size: size.unwrap_or(0).max(0) as u64,
            sha256: sha256.unwrap_or_default().to_owned(),
            checksum: String::new(),
        }],
        None => Vec::new(),
    }
}

/// Which recordings `list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFilter {
    Failed,
    Parked,
    /// Not finished: discovered, transcoding, retrying or uploading.
    Waiting,
    /// Archived, and its retention handed off to Genesys (changed or left as it was).
    HandedOff,
}

/// Which parked recordings `retry --parked` puts back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParkedSelection {
    All,
    /// Those whose reason contains this text (case-insensitive).
    ReasonContains(String),
    Id(String),
}

/// What a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub recordings: u64,
    pub conversations: u64,
}

/// A multipart upload that was open when the process stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenUpload {
    pub recording_id: String,
    pub key: String,
    pub upload_id: String,
}

/// One archived file of a recording (a recording is one file or several parts).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartFacts {
    /// The part's label in its key (empty for a recording of one file).
    pub part: String,
    pub key: String,
    pub size: u64,
    pub sha256: String,
    /// The additional checksum the store verified and keeps for it (`SHA256:base64`,
    /// a composite with `-N`, or `CRC64NVME:base64`); empty when it keeps none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub checksum: String,
}

/// The facts of a finished archive.
///
/// `key`, `size` and `sha256` describe the recording's one file; for a recording of
/// several parts, `parts` lists each of them, and `key` is the first part's, `size` the
/// sum and `sha256` empty (no single digest covers several objects).
#[derive(Debug, Clone)]
pub struct ArchiveFacts {
    pub key: String,
    pub size: u64,
    pub sha256: String,
    /// The store's checksum of the one file (see [`PartFacts::checksum`]).
    pub checksum: String,
    pub archived_at: DateTime<Utc>,
    /// Every part when there are several; empty for a recording of one file.
    pub parts: Vec<PartFacts>,
}

impl ArchiveFacts {
    /// The facts of a recording archived as `parts` (at least one).
    pub fn of_parts(mut parts: Vec<PartFacts>, archived_at: DateTime<Utc>) -> Self {
        if parts.len() == 1 {
            let one = parts.remove(0);
            return Self {
                key: one.key,
                size: one.size,
                sha256: one.sha256,
                checksum: one.checksum,
                archived_at,
                parts: Vec::new(),
            };
        }
        Self {
            key: parts.first().map(|p| p.key.clone()).unwrap_or_default(),
            size: parts.iter().map(|p| p.size).sum(),
            sha256: String::new(),
            checksum: String::new(),
            archived_at,
            parts,
        }
    }

    /// Every archived file: the one, or each part.
    pub fn files(&self) -> Vec<PartFacts> {
        if self.parts.is_empty() {
            vec![PartFacts {
                part: String::new(),
                key: self.key.clone(),
                size: self.size,
                sha256: self.sha256.clone(),
                checksum: self.checksum.clone(),
            }]
        } else {
            self.parts.clone()
        }
    }

    /// The `parts` column: the files as JSON, or none for a recording of one file
    /// whose store keeps no checksum (its key, size and SHA-256 have columns of their
    /// own; a checksum has none, so a file with one is listed here, which
    /// [`record_files`] reads first).
    pub fn parts_column(&self) -> Option<String> {
        (!self.parts.is_empty() || !self.checksum.is_empty())
            .then(|| serde_json::to_string(&self.files()).expect("parts serialize"))
    }

    /// The `sha256` column: none where no single digest applies.
    pub fn sha256_column(&self) -> Option<String> {
        (!self.sha256.is_empty()).then(|| self.sha256.clone())
    }
}

/// `status`: counts per state, the oldest recording not yet archived, the watermark.
#[derive(Debug, Clone, Default)]
pub struct StatusReport {
    pub counts: BTreeMap<String, u64>,
    pub oldest_unarchived: Option<(String, DateTime<Utc>)>,
    pub watermark: Option<DateTime<Utc>>,
    /// Conversations whose recording list could not be used, with the reason.
    pub parked_conversations: Vec<(String, String)>,
    /// Conversations per lifecycle state (`active`, `ended`, `checking`, `settled`, `parked`).
    pub conversations: BTreeMap<String, u64>,
    /// What the daemon last recorded of the org (none: never recorded).
    pub org_state: Option<OrgState>,
    /// The recording not yet archived (nor parked) whose source goes first: its id and
    /// its deadline (the nearer of `archiveDate` and `deleteDate`).
    pub soonest_deadline: Option<(String, DateTime<Utc>)>,
    /// The conversation that ended longest ago and has not settled: its id and end.
    pub oldest_unsettled: Option<(String, DateTime<Utc>)>,
    /// Conversations whose last listing failed, with the reason (at most 1,000).
    pub failing_conversations: Vec<(String, String)>,
}

impl StatusReport {
    /// A report with every recording and conversation state at zero: a state with no
    /// rows is shown, not left out.
    pub(crate) fn zeroed() -> Self {
        let mut report = Self::default();
        for state in State::ALL {
            report.counts.insert(state.as_str().to_owned(), 0);
        }
        for state in ConversationState::ALL {
            report.conversations.insert(state.as_str().to_owned(), 0);
        }
        report
    }

    /// `n` rows of `kind` (`recording` or `conversation`) in `state`, as a backend's
    /// counters hold them.
    pub(crate) fn count(&mut self, kind: &str, state: String, n: i64) {
        let counts = if kind == "recording" {
            &mut self.counts
        } else {
            &mut self.conversations
        };
        counts.insert(state, n.max(0) as u64);
    }

    /// Adds another org's report: counts add up, the oldest unarchived and the
    /// watermark are the oldest of both (the org furthest behind).
    pub fn merge(&mut self, other: StatusReport) {
        for (state, n) in other.counts {
            *self.counts.entry(state).or_default() += n;
        }
        for (state, n) in other.conversations {
            *self.conversations.entry(state).or_default() += n;
        }
        self.oldest_unarchived = earliest(self.oldest_unarchived.take(), other.oldest_unarchived);
        self.watermark = match (self.watermark, other.watermark) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.soonest_deadline = earliest(self.soonest_deadline.take(), other.soonest_deadline);
        self.oldest_unsettled = earliest(self.oldest_unsettled.take(), other.oldest_unsettled);
        self.parked_conversations.extend(other.parked_conversations);
        self.failing_conversations.extend(other.failing_conversations);
    }

    /// Recordings in `state`.
    pub fn recordings_in(&self, state: State) -> u64 {
        self.counts.get(state.as_str()).copied().unwrap_or(0)
    }

    /// Conversations in `state`.
    pub fn conversations_in(&self, state: ConversationState) -> u64 {
        self.conversations.get(state.as_str()).copied().unwrap_or(0)
    }

    /// Conversations that still need a look (active, ended but not settled).
    pub fn conversations_waiting(&self) -> u64 {
        [
            ConversationState::Active,
            ConversationState::Ended,
            ConversationState::Checking,
        ]
        .into_iter()
        .map(|s| self.conversations_in(s))
        .sum()
    }
}

/// The earlier of two `(id, time)` marks.
fn earliest(a: Option<(String, DateTime<Utc>)>, b: Option<(String, DateTime<Utc>)>) -> Option<(String, DateTime<Utc>)> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.1 < a.1 { b } else { a }),
        (a, b) => a.or(b),
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger: {0}")]
    Store(String),
    /// The ledger refused a value of one row (PostgreSQL's data exceptions, class 22,
    /// and program limits, class 54: a NUL byte, a key too large for an index page).
    /// Waiting does not change it and the rest of the ledger works: the row is parked
    /// (or its conversation), the org goes on.
    #[error("ledger refused a value: {0}")]
    Data(String),
    /// The recording is no longer held by this claim: another owner recovered it. Not
    /// a fault of the ledger; the worker drops the recording without touching it.
    #[error("ledger: the claim on recording {0} was taken over; this worker leaves it alone")]
    ClaimLost(String),
}

pub type LedgerResult<T> = Result<T, LedgerError>;

pub trait Ledger: Send + Sync {
    /// Adds recordings not seen before; returns how many were new (or moved on). Known
    /// ids are left untouched (this is where discovery's duplicates are dropped), but for
    /// one still waiting in Genesys (`transcoding`, e.g. listed `UPLOADING`): a newer
    /// listing moves it on (ready: due now; deleted: parked), keeps the earlier due
    /// time, and fills in dates it lacked.
    fn insert(&self, recordings: Vec<NewRecording>) -> BoxFuture<'_, LedgerResult<u64>>;

    /// The lifecycle rows of those of `conversation_ids` the ledger knows (a parked
    /// conversation without a row comes back as `parked`): discovery re-reads its
    /// overlap window and must not start a known conversation's life again.
    fn conversations(
        &self,
        conversation_ids: Vec<String>,
    ) -> BoxFuture<'_, LedgerResult<std::collections::HashMap<String, ConversationRow>>>;

    /// Inserts or replaces lifecycle rows, in one transaction.
    fn save_conversations(&self, rows: Vec<ConversationRow>) -> BoxFuture<'_, LedgerResult<()>>;

    /// Active conversations in the order of their next look, at most `limit`.
    fn active_by_next_check(&self, limit: u32) -> BoxFuture<'_, LedgerResult<Vec<ConversationRow>>>;

    /// Takes the most overdue `ended` conversation due at `now` and marks it `checking`.
    fn claim_conversation(&self, now: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<Option<ConversationRow>>>;

    /// When the next `ended` conversation is due for a look.
    fn next_conversation_due(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>>;

    /// Takes the most overdue recording that is due at `now` and marks it `uploading`.
    fn claim_due(&self, now: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<Option<Claimed>>>;

    /// Takes this recording if it is waiting (whatever its due time) and marks it
    /// `uploading`: a fresh download URL for it was just listed.
    fn claim_recording(&self, recording_id: String) -> BoxFuture<'_, LedgerResult<Option<Claimed>>>;

    /// When the next not-yet-due recording becomes due.
    fn next_due(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>>;

    /// Recordings not in a terminal state.
    fn unfinished(&self) -> BoxFuture<'_, LedgerResult<u64>>;

    /// Runs a state change of a claimed recording and checks that it changed the row
    /// (a claim taken over changes nothing: [`LedgerError::ClaimLost`]). The one
    /// backend method behind the six changes below, which build what it writes.
    fn claimed_change(&self, claim: Claim, change: ClaimedChange) -> BoxFuture<'_, LedgerResult<()>>;

    /// Back to the queue at `at`: `transcoding` (not ready yet) or `retrying` (after a
    /// failure, with the attempts count and the error).
    fn reschedule(
        &self,
        claim: Claim,
        state: State,
        at: DateTime<Utc>,
        attempts: u32,
        error: Option<String>,
    ) -> BoxFuture<'_, LedgerResult<()>> {
        self.claimed_change(claim, ClaimedChange::reschedule(state, at, attempts, error))
    }

    fn park(&self, claim: Claim, reason: String) -> BoxFuture<'_, LedgerResult<()>> {
        self.claimed_change(claim, ClaimedChange::park(&reason))
    }

    fn fail(&self, claim: Claim, attempts: u32, error: String) -> BoxFuture<'_, LedgerResult<()>> {
        self.claimed_change(claim, ClaimedChange::fail(attempts, &error))
    }

    fn archived(&self, claim: Claim, facts: ArchiveFacts) -> BoxFuture<'_, LedgerResult<()>> {
        self.claimed_change(claim, ClaimedChange::archived(&facts))
    }

    /// Stores `key` as the recording's object key unless one is stored already; returns
    /// the stored one. Called once per recording, at its first attempt.
    fn fix_key(&self, claim: Claim, key: String) -> BoxFuture<'_, LedgerResult<String>>;

    /// A multipart upload was opened at `key` (one of the recording's part keys) for the
    /// recording, journalled before any byte is sent.
    fn upload_opened(&self, claim: Claim, key: String, upload_id: String) -> BoxFuture<'_, LedgerResult<()>> {
        self.claimed_change(claim, ClaimedChange::upload_opened(key, upload_id))
    }

    /// The recording's multipart upload was completed or aborted.
    fn upload_closed(&self, claim: Claim) -> BoxFuture<'_, LedgerResult<()>> {
        self.claimed_change(claim, ClaimedChange::upload_closed())
    }

    /// An upload left open by a stopped process was aborted at start (no claim: the
    /// starting owner holds the whole ledger).
    fn forget_upload(&self, recording_id: String) -> BoxFuture<'_, LedgerResult<()>>;

    /// At start: what was `uploading` (and conversations `checking`, and recordings
    /// waiting for a listed URL that died with the process) is due again; returns the
    /// uploads left open.
    fn recover(&self) -> BoxFuture<'_, LedgerResult<Vec<OpenUpload>>>;

    fn watermark(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>>;

    fn set_watermark(&self, at: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<()>>;

    fn status(&self) -> BoxFuture<'_, LedgerResult<StatusReport>>;

    /// Records what became of the org (running, failing with why, stopped); a failure
    /// that repeats keeps the time it began.
    fn record_org_state(&self, condition: OrgCondition) -> BoxFuture<'_, LedgerResult<()>>;

    /// `failed` back to `discovered` with attempts reset; returns how many.
    fn retry_failed(&self) -> BoxFuture<'_, LedgerResult<u64>>;

    /// Parked recordings back to `discovered` (e.g. restored in Genesys after being
    /// archived there); returns how many.
    fn retry_parked(&self, which: ParkedSelection) -> BoxFuture<'_, LedgerResult<u64>>;

    /// Recordings in `filter`, oldest first, at most `limit`.
    fn list(&self, filter: ListFilter, limit: u32) -> BoxFuture<'_, LedgerResult<Vec<RecordingRow>>>;

    /// Archived recordings whose retention hand-off is not done, the earliest archived
    /// first, after `after` (the last one of the previous page: archive time and id),
    /// at most `limit` (a hand-off another process holds is left out).
    fn handoff_due(
        &self,
        after: Option<(DateTime<Utc>, String)>,
        limit: u32,
    ) -> BoxFuture<'_, LedgerResult<Vec<HandoffDue>>>;

    /// Takes a recording's hand-off for this process (for the lease, on a shared
    /// ledger): `false` when it is done or another process holds it.
    fn claim_handoff(&self, recording_id: String) -> BoxFuture<'_, LedgerResult<bool>>;

    /// Records what the hand-off did (once; a hand-off already recorded is kept).
    fn handed_off(&self, recording_id: String, handoff: Handoff) -> BoxFuture<'_, LedgerResult<()>>;

    /// Removes archived and parked recordings (and settled or parked conversations)
    /// that started before `cutoff`, so the ledger does not grow without end.
    fn prune(&self, cutoff: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<Pruned>>;

    /// Records a conversation whose recording list could not be used (malformed,
    /// oversized, refused for good), so it is visible and not asked for again in the
    /// overlap; its recordings are not lost silently.
    fn park_conversation(&self, conversation_id: String, reason: String) -> BoxFuture<'_, LedgerResult<()>>;

    /// Forgets parked conversations: those with a lifecycle row are listed again at
    /// once, the others when discovery reads their window (`backfill` over it, or the
    /// overlap); returns how many.
    fn retry_conversations(&self) -> BoxFuture<'_, LedgerResult<u64>>;

    /// The recordings of the conversations that started in `[from, to)`, oldest first
    /// (`reconcile`, the daily manifests). Read through the conversations, so a
    /// recording whose conversation row was pruned is not among them (pruning removes
    /// both by the same start).
    fn records(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<Vec<LedgerRecord>>>;

    /// What of the conversations that started in `[from, to)` is not final yet:
    /// conversations not settled (nor parked) and their recordings still waiting. Zero
    /// means the range is complete as far as the ledger knows.
    fn unsettled_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<u64>>;

    /// The start of the org's oldest conversation in the ledger.
    fn first_start(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>>;

    /// A small value the daemon keeps per org (the manifest chain's head), by name.
    fn note(&self, name: &'static str) -> BoxFuture<'_, LedgerResult<Option<String>>>;

    fn set_note(&self, name: &'static str, value: String) -> BoxFuture<'_, LedgerResult<()>>;

    /// How long a recording listed with a download URL that only this process holds (in
    /// memory) may be kept from the other claimers of the ledger. `None` with one owner
    /// (the SQLite file, locked): nobody else could take it, and [`Ledger::recover`]
    /// makes such rows due when the process starts again. With several replicas the
    /// URL dies with its replica, so the others must be able to take the row once the
    /// replica would be presumed dead: after the lease.
    fn listed_hold(&self) -> Option<std::time::Duration> {
        None
    }

    /// Whether this process discovers the org now (takes or renews its turn): with
    /// several replicas on one ledger, one at a time reads an org's windows and
    /// re-reads, so they are not read (and paid for) once per replica. A ledger with
    /// one owner (the SQLite file, locked) always holds it.
    fn hold_discovery(&self) -> BoxFuture<'_, LedgerResult<bool>> {
        Box::pin(async { Ok(true) })
    }
}
