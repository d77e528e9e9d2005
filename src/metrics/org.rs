//! One org's handle on the metrics: what its client, budget, workers and sink record,
//! each series labelled with the org's name.

use super::{AnswerLabels, EndpointLabels, Metrics, OperationLabels, OrgLabel, OutcomeLabels, ScopeLabels};
use crate::endpoint::Endpoint;
use std::sync::Arc;
use std::time::Duration;

/// Cheap to clone: the shared families and the org's name.
#[derive(Debug, Clone)]
pub struct OrgMetrics {
    metrics: Arc<Metrics>,
    org: String,
}

impl OrgMetrics {
    pub(super) fn new(metrics: Arc<Metrics>, org: &str) -> Self {
        Self {
            metrics,
            org: org.to_owned(),
        }
    }

    /// A handle on a registry of its own, for parts built outside a daemon (a
    /// `check-config --connect`, a test): what it records is rendered nowhere.
    pub fn unregistered(org: &str) -> Self {
        Metrics::new().org(org)
    }

    pub fn org(&self) -> &str {
        &self.org
    }

    fn label(&self) -> OrgLabel {
        OrgLabel { org: self.org.clone() }
    }

    fn endpoint(&self, endpoint: Endpoint) -> EndpointLabels {
        EndpointLabels {
            org: self.org.clone(),
            endpoint: endpoint.as_str(),
        }
    }

    /// An API answer (`status` is the HTTP status, or `transport_error`); a 429 also
    /// counts as rate limited.
    pub fn answered(&self, endpoint: Endpoint, status: &str) {
        let labels = AnswerLabels {
            org: self.org.clone(),
            endpoint: endpoint.as_str(),
            status: status.to_owned(),
        };
        self.metrics.api_requests.get_or_create(&labels).inc();
        if status == "429" {
            self.metrics.rate_limited.get_or_create(&self.endpoint(endpoint)).inc();
        }
    }

    pub fn retried(&self, endpoint: Endpoint) {
        self.metrics.retries.get_or_create(&self.endpoint(endpoint)).inc();
    }

    /// Time a caller waited for the org's budget.
    pub fn waited(&self, waited: Duration) {
        if !waited.is_zero() {
            self.metrics
                .budget_wait
                .get_or_create(&self.label())
                .inc_by(waited.as_secs_f64());
        }
    }

    pub fn cooldown(&self, scope: &str) {
        let labels = ScopeLabels {
            org: self.org.clone(),
            scope: scope.to_owned(),
        };
        self.metrics.cooldowns.get_or_create(&labels).inc();
    }

    /// A recording archived: its size, how long it took, and how long after its end.
    /// A recording archived: its bytes, the files it was archived as (several for a
    /// screen recording of several parts), how long it took and how long after its end.
    pub fn uploaded(&self, bytes: u64, files: u64, took: Duration, lag: Option<Duration>) {
        let org = self.label();
        self.metrics.uploaded_bytes.get_or_create(&org).inc_by(bytes);
        self.metrics.uploaded_objects.get_or_create(&org).inc();
        self.metrics.archived_files.get_or_create(&org).inc_by(files);
        self.metrics
            .upload_duration
            .get_or_create(&org)
            .observe(took.as_secs_f64());
        if let Some(lag) = lag {
            self.metrics.archive_lag.get_or_create(&org).observe(lag.as_secs_f64());
        }
    }

    pub fn token_refreshed(&self) {
        self.metrics.token_refreshes.get_or_create(&self.label()).inc();
    }

    pub fn url_refreshed(&self) {
        self.metrics.url_refreshes.get_or_create(&self.label()).inc();
    }

    pub fn sink_error(&self, operation: &'static str) {
        let labels = OperationLabels {
            org: self.org.clone(),
            operation,
        };
        self.metrics.sink_errors.get_or_create(&labels).inc();
    }

    pub fn recording_parked(&self) {
        self.metrics.recordings_parked.get_or_create(&self.label()).inc();
    }

    pub fn recording_failed(&self) {
        self.metrics.recordings_failed.get_or_create(&self.label()).inc();
    }

    /// Conversations a sweep found that the passes had missed.
    pub fn late_conversations(&self, n: u64) {
        self.metrics.late_conversations.get_or_create(&self.label()).inc_by(n);
    }

    /// An active conversation a re-read did not answer for.
    pub fn conversation_unanswered(&self) {
        self.metrics.conversations_unanswered.get_or_create(&self.label()).inc();
    }

    /// A conversation flagged as screen recorded settled with none listed.
    pub fn conversation_without_screen_recording(&self) {
        self.metrics
            .conversations_without_screen_recording
            .get_or_create(&self.label())
            .inc();
    }

    pub fn manifest_written(&self) {
        self.metrics.manifests_written.get_or_create(&self.label()).inc();
    }

    pub fn conversation_parked(&self) {
        self.metrics.conversations_parked.get_or_create(&self.label()).inc();
    }

    /// The org runs: `org_up` 1.
    pub fn started(&self) {
        self.metrics.org_up.get_or_create(&self.label()).set(1);
    }

    /// The org could not start and is tried again later: `org_up` 0, one more failure.
    pub fn cannot_start(&self) {
        self.metrics.org_up.get_or_create(&self.label()).set(0);
        self.metrics.org_start_failures.get_or_create(&self.label()).inc();
    }

    /// The budget shared in Redis answers again (or for the first time).
    pub fn shared_budget_up(&self) {
        self.metrics.budget_shared_up.get_or_create(&self.label()).set(1);
    }

    /// The budget shared in Redis cannot be reached: this replica paces on its share.
    pub fn shared_budget_down(&self) {
        self.metrics.budget_shared_up.get_or_create(&self.label()).set(0);
        self.metrics.budget_fallbacks.get_or_create(&self.label()).inc();
    }

    /// The org starts: both outcomes of its discovery passes exist at 0, so "no pass
    /// since the start" is an increase of 0 an alert can see, not a missing series.
    pub fn discovery_started(&self) {
        for outcome in ["ok", "failed"] {
            let labels = OutcomeLabels {
                org: self.org.clone(),
                outcome,
            };
            self.metrics.discovery_passes.get_or_create(&labels).inc_by(0);
        }
    }

    /// A discovery pass of the org's windows ended (`ok`: the watermark moved on).
    pub fn discovery_pass(&self, ok: bool) {
        let labels = OutcomeLabels {
            org: self.org.clone(),
            outcome: if ok { "ok" } else { "failed" },
        };
        self.metrics.discovery_passes.get_or_create(&labels).inc();
    }

    /// The org's token budget, `per_window` requests every `window`, as requests per
    /// minute (the dashboard's limit line, the saturation alert's denominator).
    pub fn budget_limit(&self, per_window: u32, window: Duration) {
        let per_minute = f64::from(per_window) * 60.0 / window.as_secs_f64().max(f64::MIN_POSITIVE);
        self.metrics.budget_limit.get_or_create(&self.label()).set(per_minute);
    }

    /// The org was removed from the configuration: its `org_up` series goes away (its
    /// counters stay, as counters do, until the process restarts).
    pub fn removed(&self) {
        self.metrics.org_up.remove(&self.label());
        self.metrics.budget_limit.remove(&self.label());
    }
}
