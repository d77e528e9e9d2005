//! Prometheus metrics: every family in one place, on the `prometheus-client` crate
//! (the Prometheus project's own Rust client), rendered in the text format.
//!
//! One [`Metrics`] is made per process by whoever wires the daemon and passed in, never
//! reached through a global: each org's parts get an [`OrgMetrics`] handle that puts
//! the org's name on every series it records, so a vendor sees which customer is
//! rate limited, failing or behind. The ledger's gauges (recordings by state, oldest
//! unarchived age) are read at scrape time ([`ledger`]).

mod described;
pub mod ledger;
pub mod org;

use described::Described;

pub use ledger::LedgerGauges;
pub use org::OrgMetrics;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// Every metric name starts with this.
pub const PREFIX: &str = "genesys_archiver";

/// Bucket bounds (seconds) of the upload-duration and archive-lag histograms: from a
/// small recording on loopback to a day's backlog.
const DURATION_BUCKETS: [f64; 11] = [
    0.1,
    0.5,
    1.0,
    5.0,
    15.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    4.0 * 3600.0,
    24.0 * 3600.0,
];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OrgLabel {
    pub org: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub org: String,
    pub endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnswerLabels {
    pub org: String,
    pub endpoint: &'static str,
    /// The HTTP status, or `transport_error` when no answer came.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabels {
    pub org: String,
    pub scope: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub org: String,
    /// `ok` or `failed`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub org: String,
    pub operation: &'static str,
}

type PerOrg = Family<OrgLabel, Counter>;
type DurationFamily = Family<OrgLabel, Histogram, fn() -> Histogram>;

/// The daemon's metric families and the registry they are rendered from.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub(crate) api_requests: Family<AnswerLabels, Counter>,
    pub(crate) rate_limited: Family<EndpointLabels, Counter>,
    pub(crate) retries: Family<EndpointLabels, Counter>,
    pub(crate) budget_wait: Family<OrgLabel, Counter<f64, AtomicU64>>,
    pub(crate) cooldowns: Family<ScopeLabels, Counter>,
    pub(crate) uploaded_bytes: PerOrg,
    pub(crate) uploaded_objects: PerOrg,
    pub(crate) archived_files: PerOrg,
    pub(crate) upload_duration: DurationFamily,
    pub(crate) archive_lag: DurationFamily,
    pub(crate) token_refreshes: PerOrg,
    pub(crate) url_refreshes: PerOrg,
    pub(crate) sink_errors: Family<OperationLabels, Counter>,
    pub(crate) recordings_parked: PerOrg,
    pub(crate) recordings_failed: PerOrg,
    pub(crate) conversations_parked: PerOrg,
    pub(crate) late_conversations: PerOrg,
    pub(crate) conversations_unanswered: PerOrg,
    pub(crate) conversations_without_screen_recording: PerOrg,
    pub(crate) manifests_written: PerOrg,
    pub(crate) org_up: Family<OrgLabel, Gauge>,
    pub(crate) org_start_failures: PerOrg,
    pub(crate) budget_shared_up: Family<OrgLabel, Gauge>,
    pub(crate) budget_fallbacks: PerOrg,
    pub(crate) discovery_passes: Family<OutcomeLabels, Counter>,
    pub(crate) budget_limit: Family<OrgLabel, Gauge<f64, AtomicU64>>,
    /// Every family's descriptor, shown even before its first series.
    families: Described,
}

impl Metrics {
    /// A fresh registry with every family in it. Help texts end without a period: the
    /// encoder adds one.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix(PREFIX);
        let histograms = || DurationFamily::new_with_constructor(duration_histogram as fn() -> Histogram);
        let metrics = Self {
            api_requests: Family::default(),
            rate_limited: Family::default(),
            retries: Family::default(),
            budget_wait: Family::default(),
            cooldowns: Family::default(),
            uploaded_bytes: Family::default(),
            uploaded_objects: Family::default(),
            archived_files: Family::default(),
            upload_duration: histograms(),
            archive_lag: histograms(),
            token_refreshes: Family::default(),
            url_refreshes: Family::default(),
            sink_errors: Family::default(),
            recordings_parked: Family::default(),
            recordings_failed: Family::default(),
            conversations_parked: Family::default(),
            late_conversations: Family::default(),
            conversations_unanswered: Family::default(),
            conversations_without_screen_recording: Family::default(),
            manifests_written: Family::default(),
            org_up: Family::default(),
            org_start_failures: Family::default(),
            budget_shared_up: Family::default(),
            budget_fallbacks: Family::default(),
            discovery_passes: Family::default(),
            budget_limit: Family::default(),
            registry: Registry::default(),
            families: Described::default(),
        };
        let mut families = Described::default();
        // Counters are registered without `_total`: the encoder appends it.
        let r = &mut registry;
        families.register(
            r,
            "api_requests",
            "Genesys API answers by org, endpoint and HTTP status (transport_error: none came)",
            metrics.api_requests.clone(),
        );
        families.register(
            r,
            "rate_limited",
            "429 answers by org and endpoint",
            metrics.rate_limited.clone(),
        );
        families.register(
            r,
            "api_retries",
            "API call retries by org and endpoint",
            metrics.retries.clone(),
        );
        families.register(
            r,
            "budget_wait_seconds",
            "Time callers waited for their org's rate budget",
            metrics.budget_wait.clone(),
        );
        families.register(
            r,
            "budget_cooldowns",
            "Shared cooldowns started, by org and budget scope",
            metrics.cooldowns.clone(),
        );
        families.register(
            r,
            "uploaded_bytes",
            "Bytes of recordings archived",
            metrics.uploaded_bytes.clone(),
        );
        families.register(
            r,
            "uploaded_objects",
            "Recordings archived",
            metrics.uploaded_objects.clone(),
        );
        families.register(
            r,
            "upload_duration_seconds",
            "Time to archive one recording (fetch, download, upload, confirm)",
            metrics.upload_duration.clone(),
        );
        families.register(
            r,
            "archive_lag_seconds",
            "From the end of a recording to its archive",
            metrics.archive_lag.clone(),
        );
        families.register(
            r,
            "token_refreshes",
            "OAuth tokens obtained",
            metrics.token_refreshes.clone(),
        );
        families.register(
            r,
            "url_refreshes",
            "Download URLs that had expired and were fetched again",
            metrics.url_refreshes.clone(),
        );
        families.register(
            r,
            "sink_errors",
            "Sink (S3 or file) failures by org and operation",
            metrics.sink_errors.clone(),
        );
        families.register(
            r,
            "recordings_parked",
            "Recordings a worker parked (never archivable as they stand); discovery parks show in recordings{state=\"parked\"}",
            metrics.recordings_parked.clone(),
        );
        families.register(
            r,
            "conversations_parked",
            "Conversations whose recording list could not be used (malformed, oversized, unsafe id); see `status`",
            metrics.conversations_parked.clone(),
        );
        families.register(
            r,
            "archived_files",
            "Files archived: one per recording, one per part for a screen recording of several",
            metrics.archived_files.clone(),
        );
        families.register(
            r,
            "late_conversations",
            "Conversations found by the sweep: analytics showed them only after the passes' overlap had passed",
            metrics.late_conversations.clone(),
        );
        families.register(
            r,
            "conversations_unanswered",
            "Re-reads of an active conversation that the analytics query did not answer for (it lags, or matches coarsely)",
            metrics.conversations_unanswered.clone(),
        );
        families.register(
            r,
            "conversations_without_screen_recording",
            "Conversations analytics flagged as screen recorded that settled with no screen recording listed",
            metrics.conversations_without_screen_recording.clone(),
        );
        families.register(
            r,
            "manifests_written",
            "Daily manifests written (one per org and final UTC day)",
            metrics.manifests_written.clone(),
        );
        families.register(
            r,
            "recordings_failed",
            "Recordings that failed for good",
            metrics.recordings_failed.clone(),
        );
        families.register(
            r,
            "org_up",
            "1 while the org runs, 0 while it cannot start (credentials, org id, sink) and is tried again",
            metrics.org_up.clone(),
        );
        families.register(
            r,
            "org_start_failures",
            "Failed starts of an org (each followed by a backoff)",
            metrics.org_start_failures.clone(),
        );
        families.register(
            r,
            "budget_shared_up",
            "With a budget shared in Redis: 1 while it answers, 0 while this replica paces on its local share",
            metrics.budget_shared_up.clone(),
        );
        families.register(
            r,
            "budget_fallbacks",
            "Times the shared budget could not be reached and this replica fell back to its local share",
            metrics.budget_fallbacks.clone(),
        );
        families.register(
            r,
            "discovery_passes",
            "Discovery passes of the org's windows this process made, by outcome (ok, failed); a replica without the org's discovery turn makes none",
            metrics.discovery_passes.clone(),
        );
        families.register(
            r,
            "budget_limit_per_minute",
            "The org's token budget ([limits]), in requests per minute: what the API calls are paced to",
            metrics.budget_limit.clone(),
        );
        Arc::new(Self {
            registry,
            families,
            ..metrics
        })
    }

    /// The handle an org's parts record through: every series gets `org="NAME"`.
    pub fn org(self: &Arc<Self>, name: &str) -> OrgMetrics {
        OrgMetrics::new(self.clone(), name)
    }

    /// The text exposition of every family, then the ledger gauges of each org.
    pub fn render(&self, ledgers: &[(String, LedgerGauges)]) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        ledger::render(&mut out, ledgers);
        self.families.append_missing(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    #[test]
    fn every_series_names_its_org_and_keeps_the_old_names() {
        let metrics = Metrics::new();
        let (acme, globex) = (metrics.org("acme"), metrics.org("globex"));
        acme.answered(crate::genesys::Endpoint::Recording, "200");
        acme.answered(crate::genesys::Endpoint::Recording, "200");
        globex.answered(crate::genesys::Endpoint::Recording, "429");
        acme.uploaded(10, 3, Duration::from_millis(700), Some(Duration::from_secs(90)));
        globex.waited(Duration::from_millis(1500));
        globex.cannot_start();
        let text = metrics.render(&[(
            "acme".into(),
            LedgerGauges {
                by_state: BTreeMap::from([("archived".into(), 1)]),
                conversations: BTreeMap::from([("active".into(), 3)]),
                oldest_unarchived_age: None,
                oldest_unsettled_age: Some(Duration::from_secs(30)),
                soonest_deadline_in: Some(-5.0),
            },
        )]);
        for line in [
            "genesys_archiver_api_requests_total{org=\"acme\",endpoint=\"recording\",status=\"200\"} 2",
            "genesys_archiver_api_requests_total{org=\"globex\",endpoint=\"recording\",status=\"429\"} 1",
            "genesys_archiver_uploaded_objects_total{org=\"acme\"} 1",
            "genesys_archiver_archived_files_total{org=\"acme\"} 3",
            "genesys_archiver_upload_duration_seconds_bucket{org=\"acme\",le=\"1\"} 1",
            "genesys_archiver_archive_lag_seconds_bucket{org=\"acme\",le=\"60\"} 0",
            "genesys_archiver_archive_lag_seconds_bucket{org=\"acme\",le=\"300\"} 1",
            "genesys_archiver_budget_wait_seconds_total{org=\"globex\"} 1.5",
            "genesys_archiver_org_up{org=\"globex\"} 0",
            "genesys_archiver_org_start_failures_total{org=\"globex\"} 1",
            "genesys_archiver_recordings{org=\"acme\",state=\"archived\"} 1",
            "genesys_archiver_conversations{org=\"acme\",state=\"active\"} 3",
            "genesys_archiver_oldest_unarchived_age_seconds{org=\"acme\"} 0.0",
            "genesys_archiver_oldest_unsettled_conversation_age_seconds{org=\"acme\"} 30.0",
            "genesys_archiver_soonest_deadline_seconds{org=\"acme\"} -5.0",
            "# TYPE genesys_archiver_rate_limited_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        // Two registries never mix: what one process records, another does not see.
        assert!(!Metrics::new().render(&[]).contains("org=\"acme\""));
    }
}
