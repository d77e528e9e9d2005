//! Prometheus metrics: every name in one place, rendered in the text exposition format.
//!
//! The families are few and fixed, so this is a small registry of atomics and labelled
//! maps rather than a metrics framework (one less dependency to build). Components
//! record into the process-wide [`global`] registry; `/metrics` renders it, with the
//! ledger gauges (recordings by state, oldest unarchived age) read at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Bucket bounds (seconds) of the upload-duration and archive-lag histograms.
const DURATION_BUCKETS: &[f64] = &[
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

#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (non-cumulative) counts; the last slot is +Inf.
    counts: Mutex<(Vec<u64>, f64, u64)>,
}

impl Histogram {
    pub fn observe(&self, value: f64) {
        let mut guard = self.counts.lock().unwrap();
        let (counts, sum, total) = &mut *guard;
        if counts.is_empty() {
            counts.resize(DURATION_BUCKETS.len() + 1, 0);
        }
        let slot = DURATION_BUCKETS
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(DURATION_BUCKETS.len());
        counts[slot] += 1;
        *sum += value;
        *total += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let guard = self.counts.lock().unwrap();
        let (counts, sum, total) = &*guard;
        let mut cumulative = 0;
        for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
            cumulative += counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {total}\n{name}_sum {sum}\n{name}_count {total}"
        );
    }
}

/// A counter family with labels, e.g. requests by endpoint and status.
#[derive(Debug, Default)]
pub struct Labelled(Mutex<BTreeMap<Vec<(&'static str, String)>, u64>>);

impl Labelled {
    pub fn inc(&self, labels: &[(&'static str, &str)]) {
        let key = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        *self.0.lock().unwrap().entry(key).or_default() += 1;
    }

    pub fn total(&self) -> u64 {
        self.0.lock().unwrap().values().sum()
    }

    fn render(&self, out: &mut String, name: &str, help: &str, kind: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in self.0.lock().unwrap().iter() {
            let text: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            let _ = writeln!(out, "{name}{{{}}} {value}", text.join(","));
        }
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Every metric of the daemon.
#[derive(Debug, Default)]
pub struct Metrics {
    pub api_requests: Labelled,
    pub rate_limited: Labelled,
    pub retries: Labelled,
    pub budget_wait_micros: AtomicU64,
    pub cooldowns: Labelled,
    pub uploaded_bytes: AtomicU64,
    pub uploaded_objects: AtomicU64,
    pub upload_duration: Histogram,
    pub archive_lag: Histogram,
    pub token_refreshes: AtomicU64,
    pub url_refreshes: AtomicU64,
    pub sink_errors: Labelled,
    pub recordings_parked: AtomicU64,
    pub recordings_failed: AtomicU64,
    pub conversations_parked: AtomicU64,
}

pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

/// Ledger figures read at scrape time.
#[derive(Debug, Default)]
pub struct LedgerGauges {
    pub by_state: BTreeMap<String, u64>,
    /// Conversations by lifecycle state (active, ended, checking, settled, parked).
    pub conversations: BTreeMap<String, u64>,
    pub oldest_unarchived_age: Option<Duration>,
}

impl Metrics {
    pub fn add_wait(&self, waited: Duration) {
        self.budget_wait_micros
            .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn uploaded(&self, bytes: u64, took: Duration, lag: Option<Duration>) {
        self.uploaded_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.uploaded_objects.fetch_add(1, Ordering::Relaxed);
        self.upload_duration.observe(took.as_secs_f64());
        if let Some(lag) = lag {
            self.archive_lag.observe(lag.as_secs_f64());
        }
    }

    pub fn render(&self, ledger: &LedgerGauges) -> String {
        let mut out = String::new();
        let p = "genesys_archiver";
        self.api_requests.render(
            &mut out,
            &format!("{p}_api_requests_total"),
            "Genesys API answers by endpoint and HTTP status.",
            "counter",
        );
        self.rate_limited.render(
            &mut out,
            &format!("{p}_rate_limited_total"),
            "429 answers by endpoint.",
            "counter",
        );
        self.retries.render(
            &mut out,
            &format!("{p}_api_retries_total"),
            "API call retries by endpoint.",
            "counter",
        );
        let counter = |out: &mut String, name: &str, help: &str, value: f64| {
            let _ = writeln!(
                out,
                "# HELP {p}_{name} {help}\n# TYPE {p}_{name} counter\n{p}_{name} {value}"
            );
        };
        counter(
            &mut out,
            "budget_wait_seconds_total",
            "Time callers waited for the shared rate budget.",
            self.budget_wait_micros.load(Ordering::Relaxed) as f64 / 1e6,
        );
        self.cooldowns.render(
            &mut out,
            &format!("{p}_budget_cooldowns_total"),
            "Shared cooldowns started, by budget scope.",
            "counter",
        );
        counter(
            &mut out,
            "uploaded_bytes_total",
            "Bytes of recordings archived.",
            self.uploaded_bytes.load(Ordering::Relaxed) as f64,
        );
        counter(
            &mut out,
            "uploaded_objects_total",
            "Recordings archived.",
            self.uploaded_objects.load(Ordering::Relaxed) as f64,
        );
        self.upload_duration.render(
            &mut out,
            &format!("{p}_upload_duration_seconds"),
            "Time to archive one recording (fetch, download, upload, confirm).",
        );
        self.archive_lag.render(
            &mut out,
            &format!("{p}_archive_lag_seconds"),
            "From the end of a recording to its archive.",
        );
        counter(
            &mut out,
            "token_refreshes_total",
            "OAuth tokens obtained.",
            self.token_refreshes.load(Ordering::Relaxed) as f64,
        );
        counter(
            &mut out,
            "url_refreshes_total",
            "Download URLs that had expired and were fetched again.",
            self.url_refreshes.load(Ordering::Relaxed) as f64,
        );
        self.sink_errors.render(
            &mut out,
            &format!("{p}_sink_errors_total"),
            "Sink (S3 or file) failures by operation.",
            "counter",
        );
        counter(
            &mut out,
            "recordings_parked_total",
            "Recordings a worker parked (never archivable as they stand); discovery parks show in recordings{state=\"parked\"}.",
            self.recordings_parked.load(Ordering::Relaxed) as f64,
        );
        counter(
            &mut out,
            "conversations_parked_total",
            "Conversations whose recording list could not be used (malformed, oversized, unsafe id); see `status`.",
            self.conversations_parked.load(Ordering::Relaxed) as f64,
        );
        counter(
            &mut out,
            "recordings_failed_total",
            "Recordings that failed for good.",
            self.recordings_failed.load(Ordering::Relaxed) as f64,
        );
        let _ = writeln!(
            out,
            "# HELP {p}_recordings Recordings in the ledger by state.\n# TYPE {p}_recordings gauge"
        );
        for (state, n) in &ledger.by_state {
            let _ = writeln!(out, "{p}_recordings{{state=\"{state}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP {p}_conversations Discovered conversations by lifecycle state.\n# TYPE {p}_conversations gauge"
        );
        for (state, n) in &ledger.conversations {
            let _ = writeln!(out, "{p}_conversations{{state=\"{state}\"}} {n}");
        }
        let age = ledger.oldest_unarchived_age.map_or(0.0, |a| a.as_secs_f64());
        let _ = writeln!(
            out,
            "# HELP {p}_oldest_unarchived_age_seconds Age of the oldest recording not yet archived (0 if none).\n# TYPE {p}_oldest_unarchived_age_seconds gauge\n{p}_oldest_unarchived_age_seconds {age}"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let m = Metrics::default();
        m.api_requests.inc(&[("endpoint", "recording"), ("status", "200")]);
        m.api_requests.inc(&[("endpoint", "recording"), ("status", "200")]);
        m.uploaded(10, Duration::from_millis(700), Some(Duration::from_secs(90)));
        let text = m.render(&LedgerGauges {
            by_state: BTreeMap::from([("archived".into(), 1)]),
            conversations: BTreeMap::from([("active".into(), 3)]),
            oldest_unarchived_age: None,
        });
        assert!(text.contains("genesys_archiver_api_requests_total{endpoint=\"recording\",status=\"200\"} 2"));
        assert!(text.contains("genesys_archiver_upload_duration_seconds_bucket{le=\"1\"} 1"));
        assert!(text.contains("genesys_archiver_archive_lag_seconds_bucket{le=\"60\"} 0"));
        assert!(text.contains("genesys_archiver_archive_lag_seconds_bucket{le=\"300\"} 1"));
        assert!(text.contains("genesys_archiver_recordings{state=\"archived\"} 1"));
        assert!(text.contains("genesys_archiver_conversations{state=\"active\"} 3"));
    }
}
