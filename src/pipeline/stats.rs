//! What the pipeline did, for the demo summary and the load test (operators read the
//! same events from [`crate::metrics`]).

use chrono::{DateTime, Utc};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct PipelineStats {
    pub archived: AtomicU64,
    pub bytes: AtomicU64,
    /// Times a recording was not ready in Genesys yet (transcoding) and was rescheduled.
    pub pending: AtomicU64,
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

    pub fn archived(&self, size: u64, ended: Option<DateTime<Utc>>) {
        self.bump(&self.archived);
        self.bytes.fetch_add(size, Ordering::Relaxed);
        if let Some(end) = ended {
            let lag = (Utc::now() - end).num_milliseconds().max(0) as f64 / 1000.0;
            self.lags.lock().unwrap().push(lag);
        }
    }
}
