//! Counters of what the pipeline did, for the demo summary, the load test and metrics.

use chrono::{DateTime, Utc};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct PipelineStats {
    pub conversations: AtomicU64,
    pub discovered: AtomicU64,
    pub archived: AtomicU64,
    pub adopted: AtomicU64,
    pub bytes: AtomicU64,
    pub pending: AtomicU64,
    pub parked: AtomicU64,
    pub retried: AtomicU64,
    pub failed: AtomicU64,
    pub url_refreshes: AtomicU64,
    /// Archive lag (recording end to archived) of every archived recording, in seconds.
    pub lags: Mutex<Vec<f64>>,
}

impl PipelineStats {
    pub fn bump(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn archived(&self, size: u64, adopted: bool, ended: Option<DateTime<Utc>>) {
        self.bump(&self.archived);
        if adopted {
            self.bump(&self.adopted);
        }
        self.bytes.fetch_add(size, Ordering::Relaxed);
        if let Some(end) = ended {
            let lag = (Utc::now() - end).num_milliseconds().max(0) as f64 / 1000.0;
            self.lags.lock().unwrap().push(lag);
        }
    }
}
