//! What the simulator answered, per endpoint and status: the ground truth tests assert on.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Answers counted by endpoint name, then by status (`"200"`, `"429"`, `"dropped"`).
#[derive(Debug, Default)]
pub struct Counters(Mutex<BTreeMap<String, BTreeMap<String, u64>>>);

impl Counters {
    pub fn record(&self, endpoint: &str, status: &str) {
        let mut map = self.0.lock().unwrap();
        *map.entry(endpoint.to_owned())
            .or_default()
            .entry(status.to_owned())
            .or_default() += 1;
    }

    pub fn snapshot(&self) -> SimStats {
        SimStats {
            endpoints: self.0.lock().unwrap().clone(),
        }
    }
}

/// The body of `GET /sim/stats`.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct SimStats {
    pub endpoints: BTreeMap<String, BTreeMap<String, u64>>,
}

impl SimStats {
    /// Adds another org's answers (a load test over several orgs counts them all).
    pub fn add(&mut self, other: &SimStats) {
        for (endpoint, statuses) in &other.endpoints {
            let mine = self.endpoints.entry(endpoint.clone()).or_default();
            for (status, n) in statuses {
                *mine.entry(status.clone()).or_default() += n;
            }
        }
    }

    /// Answers of `endpoint` with `status`.
    pub fn count(&self, endpoint: &str, status: &str) -> u64 {
        self.endpoints
            .get(endpoint)
            .and_then(|m| m.get(status))
            .copied()
            .unwrap_or(0)
    }

    /// Every answer of `endpoint`.
    pub fn calls(&self, endpoint: &str) -> u64 {
        self.endpoints.get(endpoint).map_or(0, |m| m.values().sum())
    }

    /// Every API answer (media downloads excluded: they do not spend the budget).
    pub fn api_calls(&self) -> u64 {
        self.endpoints
            .iter()
            .filter(|(e, _)| *e != "media")
            .map(|(_, m)| m.values().sum::<u64>())
            .sum()
    }

    /// Every 429.
    pub fn refusals(&self) -> u64 {
        self.endpoints.values().filter_map(|m| m.get("429")).sum()
    }
}
