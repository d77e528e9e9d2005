//! Download URLs that a conversation listing just handed out, kept in memory until a
//! worker takes their recording.
//!
//! The platform's URL lifetime can be as short as 2 minutes, so a URL is only worth
//! anything right after the listing: the dispatcher gives these recordings priority,
//! and a URL older than [`MAX_AGE`] is never used (the worker fetches a fresh one with
//! the per-recording call instead). Kept out of the ledger on purpose: a signed URL is a
//! credential, and after a restart it is stale anyway.

use crate::genesys::model::{MediaPart, Recording};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Below the platform's shortest configurable URL lifetime (2 minutes), with room for
/// the download to start.
pub const MAX_AGE: Duration = Duration::from_secs(90);
/// Most URLs held; a listing larger than this leaves the rest to the per-recording call.
const CAPACITY: usize = 4096;

struct Entry {
    recording_id: String,
    listed_at: Instant,
    recording: Box<Recording>,
    parts: Vec<MediaPart>,
}

#[derive(Default)]
pub struct UrlCache {
    entries: Mutex<VecDeque<Entry>>,
}

impl UrlCache {
    fn forget_stale(entries: &mut VecDeque<Entry>) {
        while entries.front().is_some_and(|e| e.listed_at.elapsed() >= MAX_AGE) {
            entries.pop_front();
        }
    }

    pub fn put(&self, recording: Box<Recording>, parts: Vec<MediaPart>) {
        let mut entries = self.entries.lock().unwrap();
        let recording_id = recording.metadata.id.clone();
        entries.retain(|e| e.recording_id != recording_id);
        if entries.len() >= CAPACITY {
            entries.pop_front();
        }
        entries.push_back(Entry {
            recording_id,
            listed_at: Instant::now(),
            recording,
            parts,
        });
    }

    /// Takes the oldest fresh URL, with its recording: the dispatcher claims that
    /// recording and hands the URL to the worker with it.
    pub fn take_oldest(&self) -> Option<(Box<Recording>, Vec<MediaPart>)> {
        let mut entries = self.entries.lock().unwrap();
        Self::forget_stale(&mut entries);
        entries.pop_front().map(|e| (e.recording, e.parts))
    }

    /// Fresh URLs waiting for a worker.
    pub fn len(&self) -> usize {
        let mut entries = self.entries.lock().unwrap();
        Self::forget_stale(&mut entries);
        entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording(id: &str) -> Box<Recording> {
        Box::new(serde_json::from_value(serde_json::json!({"id": id, "media": "screen"})).unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn urls_are_handed_out_oldest_first_and_never_past_their_age() {
        let cache = UrlCache::default();
        let url = vec![MediaPart {
            name: "S".into(),
            url: reqwest::Url::parse("https://media.example.com/x").unwrap(),
        }];
        cache.put(recording("a"), url.clone());
        tokio::time::advance(Duration::from_secs(30)).await;
        cache.put(recording("b"), url.clone());
        assert_eq!(cache.len(), 2);
        tokio::time::advance(MAX_AGE - Duration::from_secs(29)).await;
        assert_eq!(cache.len(), 1, "a is stale now");
        assert_eq!(cache.take_oldest().unwrap().0.metadata.id, "b");
        assert!(cache.take_oldest().is_none());
        assert!(cache.is_empty());
    }
}
