//! What the workers and the poller are told, as `config` validates it into the
//! pipeline's own types.

use crate::genesys::model::SegmentFilter;
use crate::retry::settings::RetrySettings;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub count: usize,
    /// Most of the `count` slots one org holds at once (several orgs share the pool).
    pub per_org_max: usize,
    /// Attempts of one recording before it is failed for good (`retry` puts it back).
    pub max_attempts: u32,
    /// Recording-level backoff between attempts (full jitter, doubling, capped).
    pub backoff: RetrySettings,
    /// Time in-flight uploads get to finish after SIGTERM (below Kubernetes' 30 s).
    pub shutdown_grace: Duration,
    /// A recording not ready in Genesys (202) this long after it was discovered fails
    /// with that reason instead of being rescheduled for ever.
    pub max_transcode_wait: Duration,
    /// Bytes per second a download must average over each minute, or it is aborted and
    /// retried (a host that trickles bytes would hold a worker for ever); 0: no check.
    pub min_download_rate: u64,
}

/// How the poller discovers conversations.
#[derive(Debug, Clone)]
pub struct DiscoverySettings {
    pub poll_interval: Duration,
    pub lookback: Duration,
    pub overlap: Duration,
    pub settle_delay: Duration,
    pub page_size: u32,
    /// Analytics calls kept in flight while active conversations are re-read. Every call
    /// still waits for the shared budget.
    pub concurrency: usize,
    /// Narrow the analytics query before any per-conversation call is spent.
    pub segment_filters: Vec<SegmentFilter>,
    pub fetch_mode: FetchMode,
    /// After a conversation's end, when its recordings are first listed and when it may
    /// settle (see `config/example.toml` for the default's reasoning).
    pub settle_after_end: Duration,
    /// Longest interval between two looks at an active or unsettled conversation; the
    /// intervals start at `poll_interval` and double.
    pub recheck_max: Duration,
    /// Most conversations one synchronous query interval may hold; more is split.
    pub max_results: u64,
    /// The sweep re-reads `[now - sweep_lookback, now - overlap)` every `sweep_interval`,
    /// for conversations that analytics showed only after the overlap had passed (the
    /// store lags; the platform reprocesses the last 48 hours nightly). Zero: no sweep.
    pub sweep_lookback: Duration,
    pub sweep_interval: Duration,
    /// A screen recording listed as `UPLOADING` or `RESTORING` this long after it was
    /// first listed becomes `failed` with that reason (it is in the ledger, and visible,
    /// from the first listing on).
    pub upload_deadline: Duration,
}

/// How a conversation's recordings and their download URLs are fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchMode {
    /// One call lists every recording of the conversation with the URLs of the ready
    /// ones; the per-recording call only for transcoding ones and expired URLs.
    Conversation,
    /// recordingmetadata, then one recording call per screen recording (for orgs where
    /// the list call is not permitted).
    Recording,
}
