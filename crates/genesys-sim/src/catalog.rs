//! The simulated organization's conversations and recordings.

use super::config::SimConfig;
use super::hostile::{BadListing, BadRecording};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::Serialize;
use std::collections::HashMap;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct SimConversation {
    pub id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Ids of its recordings, screen and audio.
    pub recordings: Vec<String>,
    /// Analytics shows the conversation only from then on (the store lags).
    pub visible_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct SimRecording {
    pub id: String,
    pub conversation_id: String,
    pub media: &'static str,
    pub file_state: &'static str,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The whole recording's bytes (every part).
    pub size: u64,
    /// The size of each file it is served as: one entry, or one per part.
    pub parts: Vec<u64>,
    pub needs_transcode: bool,
    /// After it the recording needs a restore (ARCHIVED); after `delete_date` it is gone.
    pub archive_date: DateTime<Utc>,
    pub delete_date: DateTime<Utc>,
    /// Until then the recording is listed as UPLOADING (the desktop uploads it after
    /// the session); before the conversation's end it is not listed at all.
    pub available_at: DateTime<Utc>,
    /// When transcoding finishes; set by the first request for the recording.
    pub ready_at: Option<Instant>,
    /// What is wrong with it, for the hostile cases.
    pub hostile: Option<BadRecording>,
    /// The retention updates applied to it (`PUT` of the recording), in order: the
    /// `deleteDate` each set.
    pub retention_updates: Vec<DateTime<Utc>>,
}

/// One recording as tests and reports see it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CatalogEntry {
    pub conversation_id: String,
    pub recording_id: String,
    pub media: String,
    pub file_state: String,
    pub size: u64,
    /// The recording's files as `(media name, size)`: one, or one per part. The media
    /// name seeds the bytes ([`super::media::expected_sha256`]).
    pub parts: Vec<(String, u64)>,
    pub needs_transcode: bool,
    pub start_time: DateTime<Utc>,
    pub delete_date: DateTime<Utc>,
    /// From then on analytics shows its conversation (later than its start for a late one).
    pub analytics_from: DateTime<Utc>,
    /// Listed as UPLOADING for ever.
    pub stuck_uploading: bool,
    /// The `deleteDate` each retention update set, in order.
    pub retention_updates: Vec<DateTime<Utc>>,
}

/// The name that seeds the bytes of part `index` of `parts` of a recording: the
/// recording id for a recording of one file, as before parts existed.
pub fn media_name(recording_id: &str, index: usize, parts: usize) -> String {
    if parts <= 1 {
        recording_id.to_owned()
    } else {
        format!("{recording_id}#{index}")
    }
}

pub struct Catalog {
    /// Sorted by start.
    pub conversations: Vec<SimConversation>,
    pub by_conversation: HashMap<String, usize>,
    pub recordings: HashMap<String, SimRecording>,
    /// Upload time range of new recordings.
    upload: (std::time::Duration, std::time::Duration),
    /// A new recording's deadlines after its end (`archiveDate`, `deleteDate`).
    archive_after: std::time::Duration,
    retention: std::time::Duration,
    /// Conversations whose recordingmetadata answer is unusable.
    pub bad_listings: HashMap<String, BadListing>,
    /// Conversations whose analytics row is malformed (hostile orgs).
    pub bad_rows: std::collections::HashSet<String>,
    /// Conversations whose id is unsafe (NUL byte, escape sequence): hostile orgs.
    pub unsafe_conversations: std::collections::HashSet<String>,
    rng: fastrand::Rng,
}

/// One hostile case as tests see it: the conversation, and the recording if the case
/// is about one.
#[derive(Debug, Clone, PartialEq)]
pub struct HostileCase {
    pub case: String,
    pub conversation_id: String,
    pub recording_id: Option<String>,
}

fn chrono_of(d: std::time::Duration) -> ChronoDuration {
    ChronoDuration::from_std(d).unwrap_or(ChronoDuration::zero())
}

fn config_upload(d: std::time::Duration) -> i64 {
    d.as_millis() as i64
}

impl SimRecording {
    /// The fileState at `now`: UPLOADING until the upload is done, ARCHIVED after its
    /// `archiveDate`, DELETED after its `deleteDate`.
    pub fn state_at(&self, now: DateTime<Utc>) -> &'static str {
        if self.file_state != "AVAILABLE" {
            self.file_state
        } else if now >= self.delete_date {
            "DELETED"
        } else if now >= self.archive_date {
            "ARCHIVED"
        } else if now < self.available_at {
            "UPLOADING"
        } else {
            "AVAILABLE"
        }
    }

    /// The media name and size of each of its files.
    pub fn media(&self) -> Vec<(String, u64)> {
        let n = self.parts.len();
        self.parts
            .iter()
            .enumerate()
            .map(|(i, size)| (media_name(&self.id, i, n), *size))
            .collect()
    }
}

impl Catalog {
    pub fn generate(config: &SimConfig, now: DateTime<Utc>) -> Self {
        let mut catalog = Self {
            conversations: Vec::new(),
            by_conversation: HashMap::new(),
            recordings: HashMap::new(),
            bad_listings: HashMap::new(),
            bad_rows: Default::default(),
            unsafe_conversations: Default::default(),
            upload: config.upload_time,
            archive_after: config.archive_after,
            retention: config.retention,
            rng: fastrand::Rng::with_seed(config.seed),
        };
        let n = config.conversations.max(1) as i64;
        let history = ChronoDuration::from_std(config.history).unwrap_or(ChronoDuration::hours(1));
        // Every initial conversation has ended and its recordings are uploaded.
        let latest_end = now - chrono_of(config.upload_time.1) - ChronoDuration::seconds(1);
        for i in 0..config.conversations as i64 {
            let start = now - history + ChronoDuration::milliseconds(history.num_milliseconds() * i / n);
            let length = catalog.session_length(config);
            let end = (start + length).min(latest_end);
            catalog.add_span(config, end - length, end);
        }
        let started = now - chrono_of(config.ongoing_started_ago);
        let within = config.ongoing_end_within.as_millis().max(1) as i64;
        for _ in 0..config.ongoing {
            let end = now + ChronoDuration::milliseconds(catalog.rng.i64(1..=within));
            catalog.add_span(config, started, end);
        }
        if config.hostile {
            let start = now - ChronoDuration::minutes(30);
            for case in BadListing::ALL {
                let id = catalog.uuid();
                catalog.add_hostile(&id, start, "screen", "AVAILABLE", None);
                catalog.bad_listings.insert(id, case);
            }
            let id = catalog.uuid();
            catalog.add_hostile(&id, start, "screen", "AVAILABLE", None);
            catalog.bad_rows.insert(id);
            let id = super::hostile::unsafe_conversation_id(&catalog.uuid());
            catalog.add_hostile(&id, start, "screen", "AVAILABLE", None);
            catalog.unsafe_conversations.insert(id);
            for case in BadRecording::ALL {
                let id = catalog.uuid();
                let state = if case == BadRecording::UnknownFileState {
                    "QUARANTINED\u{0}"
                } else {
                    "AVAILABLE"
                };
                catalog.add_hostile(&id, start, "screen", state, Some(case));
            }
        }
        catalog
    }

    /// A conversation with one recording, for a hostile case.
    fn add_hostile(
        &mut self,
        conversation_id: &str,
        start: DateTime<Utc>,
        media: &'static str,
        state: &'static str,
        case: Option<BadRecording>,
    ) {
        let end = start + ChronoDuration::minutes(5);
        let normal = self.add_recording(conversation_id, media, state, start, end, 64 * 1024, false);
        let mut recording = self.recordings.remove(&normal).expect("just added");
        recording.id = case.map_or(normal, |c| c.id(recording.id.clone()));
        recording.hostile = case;
        let id = recording.id.clone();
        self.recordings.insert(id.clone(), recording);
        self.insert_conversation(SimConversation {
            id: conversation_id.to_owned(),
            start,
            end,
            recordings: vec![id],
            visible_at: start,
        });
    }

    /// The hostile cases, with their ids.
    pub fn hostile_cases(&self) -> Vec<HostileCase> {
        let mut cases: Vec<HostileCase> = self
            .bad_listings
            .iter()
            .map(|(conversation, case)| HostileCase {
                case: format!("{case:?}"),
                conversation_id: conversation.clone(),
                recording_id: None,
            })
            .chain(self.bad_rows.iter().map(|conversation| HostileCase {
                case: "MalformedAnalyticsRow".into(),
                conversation_id: conversation.clone(),
                recording_id: None,
            }))
            .chain(self.unsafe_conversations.iter().map(|conversation| HostileCase {
                case: "UnsafeConversationId".into(),
                conversation_id: conversation.clone(),
                recording_id: None,
            }))
            .chain(self.recordings.values().filter_map(|r| {
                r.hostile.map(|case| HostileCase {
                    case: format!("{case:?}"),
                    conversation_id: r.conversation_id.clone(),
                    recording_id: Some(r.id.clone()),
                })
            }))
            .collect();
        cases.sort_by(|a, b| a.case.cmp(&b.case));
        cases
    }

    fn uuid(&mut self) -> String {
        let (a, b) = (self.rng.u64(..), self.rng.u64(..));
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }

    fn session_length(&mut self, config: &SimConfig) -> ChronoDuration {
        let (lo, hi) = (
            config.session_length.0.as_millis() as i64,
            config.session_length.1.as_millis() as i64,
        );
        ChronoDuration::milliseconds(self.rng.i64(lo..=hi.max(lo)))
    }

    /// Adds one conversation that starts at `start` (an agent taking a session now), with
    /// its recordings; it goes on for one session length.
    pub fn add_conversation(&mut self, config: &SimConfig, start: DateTime<Utc>) -> String {
        let length = self.session_length(config);
        self.add_span(config, start, start + length)
    }

    pub fn add_span(&mut self, config: &SimConfig, start: DateTime<Utc>, end: DateTime<Utc>) -> String {
        // The platform reports milliseconds.
        let start = DateTime::from_timestamp_millis(start.timestamp_millis()).unwrap_or(start);
        let id = self.uuid();
        let mut recordings = Vec::new();
        if self.rng.f64() >= config.no_recording_share {
            let (lo, hi) = config.screen_per_conversation;
            let extra = (lo..hi).filter(|_| self.rng.f64() < config.extra_screen_share).count() as u32;
            for _ in 0..lo + extra {
                let roll = self.rng.f64();
                let file_state = if roll < config.deleted_share {
                    "DELETED"
                } else if roll < config.deleted_share + config.archived_share {
                    "ARCHIVED"
                } else {
                    "AVAILABLE"
                };
                let needs_transcode = file_state == "AVAILABLE" && self.rng.f64() < config.transcoding_share;
                let size = self
                    .rng
                    .u64(config.media_size.0..=config.media_size.1.max(config.media_size.0));
                let rid = self.add_recording(&id, "screen", file_state, start, end, size, needs_transcode);
                self.shape_screen_recording(config, &rid);
                recordings.push(rid);
            }
            if self.rng.f64() < config.audio_share {
                let size = self.rng.u64(1024..=64 * 1024);
                recordings.push(self.add_recording(&id, "audio", "AVAILABLE", start, end, size, false));
            }
        }
        let late = self.chance(config.late_share);
        self.insert_conversation(SimConversation {
            id: id.clone(),
            start,
            end,
            recordings,
            visible_at: if late { start + chrono_of(config.late_by) } else { start },
        });
        id
    }

    /// A roll that comes true with probability `share`; none is drawn for a share of
    /// zero, so an org without the 2026-12 cases draws the same ids and sizes as before.
    fn chance(&mut self, share: f64) -> bool {
        share > 0.0 && self.rng.f64() < share
    }

    /// What the 2026-12 facts add to a screen recording: several files for a share of
    /// them, deadlines (a share of them near), a share stuck in UPLOADING.
    fn shape_screen_recording(&mut self, config: &SimConfig, id: &str) {
        let (multipart, short, stuck) = (
            self.chance(config.multipart_share),
            self.chance(config.short_deadline_share),
            self.chance(config.stuck_uploading_share),
        );
        let parts = if multipart { self.rng.usize(2..=3) } else { 1 };
        let r = self.recordings.get_mut(id).expect("just added");
        if parts > 1 {
            // Split the size unevenly (each part smaller than the one before), every part
            // at least one byte, the remainder on the last.
            let total = r.size.max(parts as u64);
            let base = total / parts as u64;
            let mut sizes: Vec<u64> = (0..parts as u64).map(|i| base - i * base / 5).collect();
            let sum: u64 = sizes.iter().sum();
            *sizes.last_mut().expect("two parts at least") += total - sum;
            r.size = total;
            r.parts = sizes;
        }
        if short && r.file_state == "AVAILABLE" {
            r.delete_date = r.end + chrono_of(config.short_deadline);
            r.archive_date = r.archive_date.max(r.delete_date);
        }
        if stuck {
            r.available_at = DateTime::<Utc>::MAX_UTC;
        }
    }

    /// Inserts in start order and keeps the index by id.
    fn insert_conversation(&mut self, conversation: SimConversation) {
        let at = self.conversations.partition_point(|c| c.start <= conversation.start);
        let id = conversation.id.clone();
        self.conversations.insert(at, conversation);
        if at + 1 == self.conversations.len() {
            // The usual case (generation in order, new sessions now): an append.
            self.by_conversation.insert(id, at);
        } else {
            self.by_conversation = self
                .conversations
                .iter()
                .enumerate()
                .map(|(i, c)| (c.id.clone(), i))
                .collect();
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_recording(
        &mut self,
        conversation_id: &str,
        media: &'static str,
        file_state: &'static str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        size: u64,
        needs_transcode: bool,
    ) -> String {
        let id = self.uuid();
        let (lo, hi) = (config_upload(self.upload.0), config_upload(self.upload.1));
        let upload = ChronoDuration::milliseconds(self.rng.i64(lo..=hi.max(lo)));
        let (archive_date, delete_date) = match file_state {
            "ARCHIVED" => (end + ChronoDuration::days(30), end + chrono_of(self.retention)),
            "DELETED" => (end, end + ChronoDuration::days(1)),
            _ => (end + chrono_of(self.archive_after), end + chrono_of(self.retention)),
        };
        self.recordings.insert(
            id.clone(),
            SimRecording {
                archive_date,
                delete_date,
                parts: vec![size],
                available_at: end + upload,
                id: id.clone(),
                conversation_id: conversation_id.to_owned(),
                media,
                file_state,
                start,
                end,
                size,
                needs_transcode,
                ready_at: None,
                hostile: None,
                retention_updates: Vec::new(),
            },
        );
        id
    }

    /// The recordings of a conversation listed at `now`: none before its end.
    pub fn listed(&self, conversation: &SimConversation, now: DateTime<Utc>) -> Vec<&SimRecording> {
        if conversation.end > now {
            return Vec::new();
        }
        conversation.recordings.iter().map(|id| &self.recordings[id]).collect()
    }

    pub fn conversation(&self, id: &str) -> Option<&SimConversation> {
        self.by_conversation.get(id).map(|i| &self.conversations[*i])
    }

    /// Every recording, ordered by conversation start; the hostile cases (bad listings,
    /// bad analytics rows, bad recordings) are not in it.
    pub fn entries(&self) -> Vec<CatalogEntry> {
        self.conversations
            .iter()
            .filter(|c| {
                !self.bad_listings.contains_key(&c.id)
                    && !self.bad_rows.contains(&c.id)
                    && !self.unsafe_conversations.contains(&c.id)
            })
            .flat_map(|c| c.recordings.iter().map(move |id| (c, &self.recordings[id])))
            .filter(|(_, r)| r.hostile.is_none())
            .map(|(c, r)| CatalogEntry {
                analytics_from: c.visible_at,
                stuck_uploading: r.available_at == DateTime::<Utc>::MAX_UTC,
                conversation_id: r.conversation_id.clone(),
                recording_id: r.id.clone(),
                media: r.media.into(),
                file_state: r.file_state.into(),
                size: r.size,
                parts: r.media(),
                needs_transcode: r.needs_transcode,
                start_time: r.start,
                delete_date: r.delete_date,
                retention_updates: r.retention_updates.clone(),
            })
            .collect()
    }
}
