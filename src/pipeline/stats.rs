//! What the pipeline did, for the demo summary and the load test (operators read the
//! same events from [`crate::metrics`]).

use chrono::{DateTime, Utc};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct PipelineStats {
    pub archived: AtomicU64,
    pub bytes: AtomicU64,
    /// Times a recording was not ready in Genesys yet (transcoding) and was rescheduled.
    pub pending: AtomicU64,
    /// Archive lag (recording end to archived), in seconds.
    pub lags: Mutex<Samples>,
    /// Duration of the attempt that archived a recording (recording call, download,
    /// upload, checks), in seconds: the "transfer time" of the lag target.
    pub transfers: Mutex<Samples>,
}

/// A uniform sample of at most [`Samples::CAPACITY`] values (reservoir sampling), so
/// percentiles stay honest and a daemon that runs for months holds a fixed amount.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    values: Vec<f64>,
    seen: u64,
}

impl Samples {
    pub const CAPACITY: usize = 65_536;

    pub fn push(&mut self, value: f64) {
        self.seen += 1;
        if self.values.len() < Self::CAPACITY {
            self.values.push(value);
        } else {
            let slot = fastrand::u64(..self.seen);
            if let Some(v) = self.values.get_mut(slot as usize) {
                *v = value;
            }
        }
    }

    /// The kept values, ascending.
    pub fn sorted(&self) -> Vec<f64> {
        let mut values = self.values.clone();
        values.sort_by(f64::total_cmp);
        values
    }
}

impl PipelineStats {
    pub fn bump(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn archived(&self, size: u64, ended: Option<DateTime<Utc>>, attempt: Duration) {
        self.bump(&self.archived);
        self.bytes.fetch_add(size, Ordering::Relaxed);
        self.transfers.lock().unwrap().push(attempt.as_secs_f64());
        if let Some(end) = ended {
            let lag = (Utc::now() - end).num_milliseconds().max(0) as f64 / 1000.0;
            self.lags.lock().unwrap().push(lag);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_hold_a_fixed_amount_and_stay_uniform() {
        let mut samples = Samples::default();
        for i in 0..(Samples::CAPACITY as u64 * 4) {
            samples.push(i as f64);
        }
        let sorted = samples.sorted();
        assert_eq!(sorted.len(), Samples::CAPACITY);
        // A uniform sample of 0..4C has its median near 2C.
        let median = sorted[sorted.len() / 2] / (Samples::CAPACITY as f64 * 4.0);
        assert!((0.45..0.55).contains(&median), "median at {median}");
    }
}
