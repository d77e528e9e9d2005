//! What the simulated organization looks like and how strict its platform is.

use crate::endpoint::Endpoint;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of every random choice: the same seed gives the same ids, sizes and states.
    pub seed: u64,
    /// The org's name: `GET /api/v2/organizations/me` answers it, and a multi-org
    /// simulator serves the org under `/orgs/{org_name}`.
    pub org_name: String,
    pub client_id: String,
    pub client_secret: String,
    /// Lifetime of issued access tokens (`expires_in`).
    pub token_lifetime: Duration,

    /// Counting window of every limit (one minute on the real platform; tests compress it).
    pub window: Duration,
    /// Requests per window per access token, shared by every endpoint.
    pub token_limit: u32,
    /// Count `token_limit` per OAuth client (every token of the org's client together)
    /// instead of per access token. The documented platform counts per token
    /// (`../shared/genesys-api.md`); this stricter reading is here so that a budget
    /// shared by replicas, each with its own token, is measured under both.
    pub limit_per_client: bool,
    /// Requests per window per endpoint (for the whole org), on top of the per-token limit.
    pub endpoint_limits: BTreeMap<Endpoint, u32>,
    /// Share of 429 answers that carry `Retry-After` (and the normalized body that names
    /// the wait); the rest carry neither, like answers that passed through a proxy.
    pub retry_after_share: f64,
    /// Send `inin-ratelimit-count/allowed/reset` on API answers.
    pub ratelimit_headers: bool,

    /// Conversations that exist when the simulator starts, all ended (their recordings
    /// uploaded) by then.
    pub conversations: usize,
    /// Conversations still going on when the simulator starts: they began
    /// `ongoing_started_ago` before it (long before any overlap window) and end within
    /// `ongoing_end_within` after it. Their recordings are listed only after their end.
    pub ongoing: usize,
    pub ongoing_started_ago: Duration,
    pub ongoing_end_within: Duration,
    /// Length of a conversation (session), inclusive range.
    pub session_length: (Duration, Duration),
    /// After a conversation's end, how long its screen recordings are listed as
    /// `UPLOADING` (the agent's desktop uploading them), inclusive range.
    pub upload_time: (Duration, Duration),
    /// How far back the initial conversations' starts are spread.
    pub history: Duration,
    /// Conversations added per minute while running (agents finishing sessions).
    pub new_conversations_per_minute: f64,
    /// Share of conversations without any recording.
    pub no_recording_share: f64,
    /// Screen recordings per recorded conversation, inclusive range: the low end, plus
    /// one more with probability `extra_screen_share` for each step up to the high end.
    pub screen_per_conversation: (u32, u32),
    pub extra_screen_share: f64,
    /// Share of recorded conversations that also have an audio recording.
    pub audio_share: f64,
    /// Share of screen recordings whose fileState is ARCHIVED / DELETED.
    pub archived_share: f64,
    pub deleted_share: f64,
    /// Share of screen recordings that must be transcoded first (202 for `transcode_time`
    /// after the first request for them).
    pub transcoding_share: f64,
    pub transcode_time: Duration,
    /// Media sizes in bytes, inclusive range, uniformly drawn.
    pub media_size: (u64, u64),
    /// Lifetime of signed download URLs; an expired one answers 403.
    pub url_ttl: Duration,
    /// Share of download URLs issued already expired (a worker that held one too long).
    pub stale_url_share: f64,
    /// Share of media downloads whose connection drops halfway through.
    pub media_drop_share: f64,
    /// Share of media downloads that end cleanly halfway, without a Content-Length
    /// (only the recording's `outputSizeInBytes` reveals the truncation).
    pub media_truncate_share: f64,
    /// Share of media downloads sent whole but without a Content-Length (chunked), as
    /// a CDN may.
    pub media_unannounced_share: f64,
    /// Share of media downloads without a Content-Length that run past the recording's
    /// `outputSizeInBytes` (a body longer than declared).
    pub media_overrun_share: f64,

    /// Pause between 64 KiB media chunks (a slow media host; keeps uploads in flight).
    pub media_chunk_delay: Duration,
    /// Added to every recording's declared `outputSizeInBytes` (the media host still
    /// serves, and announces, the true size): a platform whose declared size and
    /// delivered file disagree.
    pub declared_size_skew: u64,
    /// Added to every API answer.
    pub latency: Duration,
    /// Share of admitted API calls answered 502/503/504 instead.
    pub error_share: f64,
    /// Share of admitted API calls whose connection drops in the middle of the body.
    pub drop_share: f64,
    /// Adds one conversation per hostile case of [`super::hostile`] (bad listings,
    /// unsafe ids, unknown states, download URLs pointing elsewhere).
    pub hostile: bool,
    /// Most conversations one analytics query interval pages through (the platform's
    /// 10,000); a page beyond it answers 400.
    pub max_results: usize,
    /// How long an analytics job stays QUEUED before it is FULFILLED.
    pub job_time: Duration,
    /// The analytics data lake is complete up to this long ago (`dataAvailabilityDate`).
    pub data_availability_lag: Duration,

    /// Share of screen recordings served as several files (2 or 3 `mediaUris` entries,
    /// one per monitor or segment; `../shared/genesys-api.md`, 2026-12).
    pub multipart_share: f64,
    /// How coarsely the analytics query matches its interval's bounds: both are
    /// truncated to a multiple of this before matching (zero: to the millisecond). The
    /// platform documents matching "conversations that started on a day touched by the
    /// interval"; a coarser match than the client asked for is the case to survive.
    pub interval_granularity: Duration,
    /// Share of conversations that analytics shows only `late_by` after they started
    /// (the analytics store lags, and reprocesses the last 48 hours nightly).
    pub late_share: f64,
    pub late_by: Duration,
    /// Every recording's `deleteDate` is its end plus this (Genesys keeps screen
    /// recordings a year at most); `archiveDate` its end plus `archive_after`. At
    /// either date the recording's fileState becomes DELETED or ARCHIVED.
    pub retention: Duration,
    pub archive_after: Duration,
    /// Share of screen recordings whose `deleteDate` is only `short_deadline` after
    /// their end (a retention policy of days, or a backlog near the year's end).
    pub short_deadline_share: f64,
    pub short_deadline: Duration,
    /// Share of screen recordings that stay `UPLOADING` for ever (stuck on the platform).
    pub stuck_uploading_share: f64,
}

impl SimConfig {
    /// `conversations` conversations with one AVAILABLE screen recording each: no
    /// audio, no deleted or archived ones, no transcoding. The shape of data-path tests
    /// and benchmarks, where only the count matters.
    pub fn one_screen_recording_each(conversations: usize) -> Self {
        Self {
            conversations,
            no_recording_share: 0.0,
            screen_per_conversation: (1, 1),
            audio_share: 0.0,
            archived_share: 0.0,
            deleted_share: 0.0,
            transcoding_share: 0.0,
            ..Self::default()
        }
    }

    /// This org as one of several on a listener: its own name (its path under
    /// `/orgs/NAME`), credentials (`NAME-client` / `NAME-secret`) and seed.
    pub fn named(self, name: &str, seed: u64) -> Self {
        Self {
            seed,
            org_name: name.into(),
            client_id: format!("{name}-client"),
            client_secret: format!("{name}-secret"),
            ..self
        }
    }
}

impl Default for SimConfig {
    /// A small org on the real platform's limits.
    fn default() -> Self {
        Self {
            seed: 1,
            org_name: "sim-org".into(),
            client_id: "sim-client".into(),
            client_secret: "sim-secret".into(),
            token_lifetime: Duration::from_secs(86_400),
            window: Duration::from_secs(60),
            token_limit: 300,
            endpoint_limits: BTreeMap::from([
                (Endpoint::Token, 30),
                (Endpoint::Analytics, 60),
                (Endpoint::RecordingMetadata, 240),
                (Endpoint::Recording, 240),
            ]),
            retry_after_share: 0.8,
            ratelimit_headers: true,
            limit_per_client: false,
            conversations: 40,
            ongoing: 0,
            ongoing_started_ago: Duration::from_secs(3600),
            ongoing_end_within: Duration::from_secs(60),
            session_length: (Duration::from_secs(60), Duration::from_secs(900)),
            upload_time: (Duration::ZERO, Duration::from_secs(5)),
            history: Duration::from_secs(3600),
            new_conversations_per_minute: 0.0,
            no_recording_share: 0.2,
            screen_per_conversation: (1, 2),
            extra_screen_share: 0.5,
            audio_share: 0.5,
            archived_share: 0.05,
            deleted_share: 0.05,
            transcoding_share: 0.2,
            transcode_time: Duration::from_secs(3),
            media_size: (256 * 1024, 2 * 1024 * 1024),
            url_ttl: Duration::from_secs(3600),
            stale_url_share: 0.0,
            media_drop_share: 0.0,
            media_truncate_share: 0.0,
            media_unannounced_share: 0.0,
            media_overrun_share: 0.0,
            media_chunk_delay: Duration::ZERO,
            declared_size_skew: 0,
            latency: Duration::ZERO,
            error_share: 0.0,
            drop_share: 0.0,
            hostile: false,
            max_results: 10_000,
            job_time: Duration::from_secs(1),
            data_availability_lag: Duration::from_secs(86_400),
            multipart_share: 0.0,
            interval_granularity: Duration::ZERO,
            late_share: 0.0,
            late_by: Duration::ZERO,
            retention: Duration::from_secs(365 * 86_400),
            archive_after: Duration::from_secs(90 * 86_400),
            short_deadline_share: 0.0,
            short_deadline: Duration::from_secs(86_400),
            stuck_uploading_share: 0.0,
        }
    }
}
