//! The configuration exactly as the operator writes it (TOML file, then environment).
//!
//! These structs only describe the shape: every field is optional or defaulted and
//! nothing is checked here beyond types. `deny_unknown_fields` makes a typo an error
//! instead of a silently ignored setting. [`super::settings`] turns this into checked
//! settings; nothing else in the daemon reads these structs.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub genesys: RawGenesys,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub retry: RawRetry,
    #[serde(default)]
    pub workers: RawWorkers,
    #[serde(default)]
    pub discovery: RawDiscovery,
    #[serde(default)]
    pub ledger: RawLedger,
    #[serde(default)]
    pub sink: RawSink,
    #[serde(default)]
    pub s3: RawS3,
    #[serde(default)]
    pub telemetry: RawTelemetry,
    #[serde(default)]
    pub retention: RawRetention,
    /// Several orgs: one entry each, over the shared sections above.
    #[serde(default)]
    pub orgs: Vec<RawOrg>,
    /// Directory of org files (`*.toml`, each shaped like one `[[orgs]]` entry).
    pub orgs_dir: Option<String>,
    /// How often `orgs_dir` is read again (SIGHUP reads it at once), e.g. `"60s"`.
    pub orgs_reload_interval: Option<String>,
}

/// One org of a multi-org configuration: its name and what it overrides of the shared
/// `[genesys]`, `[limits]`, `[discovery]` and `[s3]` sections.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrg {
    /// `[a-z0-9-]`, unique; used in keys (`{org}`), metric labels, logs and the ledger.
    /// In `orgs_dir`, defaults to the file's name without `.toml`.
    pub name: Option<String>,
    #[serde(default)]
    pub genesys: RawGenesys,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub discovery: RawDiscovery,
    #[serde(default)]
    pub s3: RawS3,
    #[serde(default)]
    pub retention: RawRetention,
}

/// `[retention]`: handing a recording's retention back to Genesys once its copy is proven.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// After archiving (and verifying), set the recording's `deleteDate` in Genesys to
    /// the archive time plus this, e.g. `"30d"`. Absent: never.
    pub genesys_delete_after: Option<String>,
    /// Log what would change, change nothing.
    pub dry_run: Option<bool>,
}

/// `[telemetry]`: logs, metrics and health endpoints.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// `json` or `text`; default: json unless stdout is a terminal.
    pub log_format: Option<String>,
    /// Default filter when `RUST_LOG` is unset, e.g. `info` or `genesys_archiver=debug`.
    pub log_level: Option<String>,
    /// Address of `/metrics`, `/healthz` and `/readyz`, e.g. `0.0.0.0:9464`; unset: none.
    pub metrics_listen: Option<String>,
}

/// `[genesys]`: where the platform is and how to authenticate.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGenesys {
    /// Region domain, e.g. `mypurecloud.com`; gives `https://api.{region}` and `https://login.{region}`.
    pub region: Option<String>,
    /// Overrides the API base URL derived from `region`.
    pub api_url: Option<String>,
    /// Overrides the login base URL derived from `region`.
    pub login_url: Option<String>,
    /// OAuth client-credentials client id.
    pub client_id: Option<String>,
    /// OAuth client secret. Prefer `client_secret_file` (systemd credentials, Kubernetes secrets).
    pub client_secret: Option<RawSecret>,
    /// File holding the client secret (trailing newline ignored).
    pub client_secret_file: Option<String>,
    /// Template of the recording call; `{conversationId}` and `{recordingId}` are substituted.
    pub recording_path: Option<String>,
    /// Template of the call that lists a conversation's recordings with their download
    /// URLs; `{conversationId}` is substituted.
    pub recordings_path: Option<String>,
    /// How long the listing call lets the platform wait for transcoding (`maxWaitMs`).
    pub list_max_wait: Option<String>,
    /// Media format asked for: WEBM, WAV, MP3, OGG_VORBIS, OGG_OPUS or NONE (original).
    pub format_id: Option<String>,
    /// Hosts that download URLs may point at; `*.example.com` matches any subdomain.
    pub media_hosts: Option<Vec<String>>,
    /// Allow plain `http` download URLs, for loopback test setups only.
    pub allow_http: Option<bool>,
    /// An HTTP(S) proxy for media downloads, e.g. `"http://proxy.internal:3128"`. Unset:
    /// downloads connect directly, whatever `HTTPS_PROXY` says.
    pub media_proxy: Option<String>,
    /// Timeout of one API request (not of a media download), e.g. `"30s"`.
    pub request_timeout: Option<String>,
    /// Largest API response body read, in bytes; a larger one is an error, not an allocation.
    pub max_response_bytes: Option<u64>,
}

/// `[limits]`: the request budgets the archiver spends.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Per-token budget shared by every endpoint and worker: a number, or `"auto"` (the
    /// default) to read the org's own limit from the platform at start.
    pub requests_per_minute: Option<RawRate>,
    /// Length of the platform's counting window. Genesys counts per minute; only a
    /// simulator with compressed time needs another value.
    pub window: Option<String>,
    /// Share of a budget actually used, leaving room for network jitter (0.5 to 1.0).
    pub target_utilization: Option<f64>,
    /// Per-endpoint budgets in requests per window: `token`, `analytics`,
    /// `recordingmetadata`, `recording`. An endpoint not listed has only the per-token budget.
    #[serde(default)]
    pub endpoints: BTreeMap<String, u32>,
    /// `redis://[:password@]host:6379/[db]`: the budget kept in Redis, shared by every
    /// replica (default: kept in this process). A secret when it has a password: give it
    /// by environment variable. Kept out of `Debug` (the raw sections are kept inside
    /// the settings, and may be printed).
    pub shared: Option<RawSecret>,
    /// How many replicas share the budget: a replica that cannot reach Redis paces at
    /// this share of it until Redis answers again (default 3).
    pub replicas: Option<u32>,
}

/// A secret as written: kept out of `Debug` output, since the raw sections are kept
/// (the shared defaults every org file is read over) inside the settings.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct RawSecret(pub String);

impl std::fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// A number, or a word such as `"auto"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum RawRate {
    Number(i64),
    Word(String),
}

/// Segment filters: the API's JSON shape, as TOML tables or as one JSON string (handy
/// in an environment variable).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawFilters {
    Tables(Vec<crate::genesys::model::SegmentFilter>),
    Json(String),
}

/// `[retry]`: timing of retries when the platform gives no Retry-After.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// First backoff ceiling, e.g. `"500ms"`; doubles each attempt.
    pub base: Option<String>,
    /// Largest single backoff ceiling.
    pub cap: Option<String>,
    /// Total time one call may spend retrying before it fails.
    pub max_elapsed: Option<String>,
    /// Most attempts of one call, the first included.
    pub max_attempts: Option<u32>,
}

/// `[workers]`: the bounded pool.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkers {
    /// Number of concurrent workers.
    pub count: Option<usize>,
    /// Most workers one org may hold at once when several orgs share the pool
    /// (default: all of them; orgs still take turns for free slots).
    pub per_org_max: Option<usize>,
    /// Attempts of one recording (transient failures) before it is marked failed for good.
    pub max_attempts: Option<u32>,
    /// First delay before a failed recording is tried again; doubles, with full jitter.
    pub retry_base: Option<String>,
    /// Longest delay between attempts of one recording.
    pub retry_cap: Option<String>,
    /// On SIGTERM, how long in-flight uploads may take to finish before they are aborted.
    pub shutdown_grace: Option<String>,
    /// Longest a recording may stay "not ready" (HTTP 202, transcoding) in Genesys
    /// before it is failed with that reason.
    pub max_transcode_wait: Option<String>,
    /// Slowest download accepted, per second, averaged over a minute (e.g. `"16KiB"`;
    /// `"0"` turns the check off); a slower one is aborted and retried.
    pub min_download_rate: Option<String>,
}

/// `[discovery]`: how the poller finds new conversations.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDiscovery {
    /// Time between discovery passes.
    pub poll_interval: Option<String>,
    /// How far back the very first pass looks.
    pub lookback: Option<String>,
    /// How much of the previous window each pass reads again (analytics lags).
    pub overlap: Option<String>,
    /// How recent a conversation start must be left alone for now.
    pub settle_delay: Option<String>,
    /// Conversations per analytics page (at most 100).
    pub page_size: Option<u32>,
    /// Analytics calls in flight while active conversations are re-read in batches.
    pub concurrency: Option<usize>,
    /// Analytics segment filters (the API's shape); default: `screenRecording = true`.
    pub segment_filters: Option<RawFilters>,
    /// `conversation` (one call lists a conversation's recordings with their download
    /// URLs) or `recording` (recordingmetadata, then one call per recording).
    pub fetch_mode: Option<String>,
    /// How long after a conversation's end its screen recordings are listed and uploaded.
    pub settle_after_end: Option<String>,
    /// Longest interval between two looks at an active or unsettled conversation.
    pub recheck_max: Option<String>,
    /// Most conversations the synchronous query returns for one interval; a window
    /// with more is split.
    pub max_results: Option<u64>,
    /// How far back the sweep re-reads for conversations analytics showed late
    /// (`"0s"` turns the sweep off).
    pub sweep_lookback: Option<String>,
    /// Time between two sweeps.
    pub sweep_interval: Option<String>,
    /// A screen recording listed as UPLOADING or RESTORING this long fails with that
    /// reason instead of being waited for without end.
    pub upload_deadline: Option<String>,
}

/// `[ledger]`: where the state of every recording is kept.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLedger {
    /// SQLite database file (created if missing): the embedded ledger of one replica.
    pub path: Option<String>,
    /// `postgres://user:password@host:5432/db`: one ledger shared by several replicas
    /// (instead of `path`). A secret: give it by environment variable or `url_file`;
    /// kept out of `Debug`.
    pub url: Option<RawSecret>,
    /// A file holding the PostgreSQL URL (a mounted Secret), instead of `url`.
    pub url_file: Option<String>,
    /// PostgreSQL connections this process holds at most (default 8).
    pub pool_size: Option<usize>,
    /// How long a claim or a discovery turn stays a replica's without renewal (default
    /// `"60s"`): a replica that dies leaves its work to the others after this.
    pub lease: Option<String>,
    /// How long a ledger call waits through a PostgreSQL outage before it fails
    /// (default `"10m"`).
    pub outage_patience: Option<String>,
    /// How long archived and parked recordings are remembered (e.g. `"400d"`); older
    /// rows are pruned. Never less than `discovery.lookback`.
    pub retain: Option<String>,
}

/// `[sink]`: where recordings go.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    /// `s3` (default) or `file`.
    pub kind: Option<String>,
    /// Directory of the file sink.
    pub directory: Option<String>,
    /// Object key template.
    pub key_template: Option<String>,
    /// Key template of the daily manifests.
    pub manifest_key_template: Option<String>,
}

/// `[s3]`: the bucket.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawS3 {
    pub bucket: Option<String>,
    /// Key prefix, e.g. `"genesys/"`; substituted for `{prefix}` in the key template.
    pub prefix: Option<String>,
    /// Bucket region (default: the AWS default chain's region, else us-east-1).
    pub region: Option<String>,
    /// Custom endpoint (S3-compatible stores, tests).
    pub endpoint_url: Option<String>,
    /// Path-style addressing (most S3-compatible stores need it).
    pub force_path_style: Option<bool>,
    /// Server-side encryption: `AES256` or `aws:kms`.
    pub sse: Option<String>,
    /// KMS key id or ARN, with `sse = "aws:kms"`.
    pub kms_key_id: Option<String>,
    /// Storage class, e.g. `STANDARD_IA`.
    pub storage_class: Option<String>,
    /// Multipart part size, e.g. `"8MiB"` (at least 5 MiB).
    pub part_size: Option<String>,
    /// Parts uploaded concurrently per recording.
    pub parts_in_flight: Option<usize>,
    /// Largest announced length sent as one streamed PutObject, e.g. `"100MiB"`.
    pub single_put_max: Option<String>,
    /// Deadline of one S3 call without a body to stream, e.g. `"60s"`.
    pub operation_timeout: Option<String>,
    /// S3 additional checksum: `SHA256` (default), `CRC64NVME` or `none`.
    pub checksum_algorithm: Option<String>,
    /// Object Lock retention mode: `GOVERNANCE` or `COMPLIANCE`.
    pub object_lock_mode: Option<String>,
    /// How long objects are locked, counted from the recording's start, e.g. `"7y"`.
    pub object_lock_retain: Option<String>,
    /// A legal hold on every object.
    pub legal_hold: Option<bool>,
    /// The AWS account id that must own the bucket.
    pub expected_bucket_owner: Option<String>,
}
