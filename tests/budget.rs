//! The shared budget against the simulator: 16 concurrent callers fetch 1,000
//! recordings. Counts come from the simulator's own statistics, never from clocks.

mod common;

use genesys_archiver::genesys::model::RecordingFetch;
use genesys_sim::SimConfig;
use genesys_sim::stats::SimStats;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

const RECORDINGS: usize = 1000;
const CALLERS: usize = 16;

/// Platform: 300 requests per 5 s window per token, 250 per window on the recording
/// endpoint (the one that binds).
fn platform(retry_after_share: f64, headers: bool) -> SimConfig {
    SimConfig {
        token_limit: 300,
        endpoint_limits: BTreeMap::from([
            (genesys_sim::Endpoint::Token, 30),
            (genesys_sim::Endpoint::Recording, 250),
        ]),
        retry_after_share,
        ratelimit_headers: headers,
        ..common::flat_org(RECORDINGS)
    }
}

/// Fetches every recording with `CALLERS` concurrent callers; returns the simulator's counts.
async fn fetch_all(sim_config: SimConfig, budget_factor: u32) -> SimStats {
    let sim = common::start(sim_config).await;
    let c = sim.config();
    let limits = format!(
        "[retry]\nbase = \"200ms\"\ncap = \"5s\"\nmax_attempts = 20\n[workers]\ncount = {CALLERS}\n\
         [limits]\nrequests_per_minute = {}\nwindow = \"5s\"\n[limits.endpoints]\ntoken = {}\nrecording = {}\n",
        c.token_limit * budget_factor,
        c.endpoint_limits[&genesys_sim::Endpoint::Token] * budget_factor,
        c.endpoint_limits[&genesys_sim::Endpoint::Recording] * budget_factor,
    );
    // The sim's own [limits] come first in the text; ours must replace them, so build
    // the settings from the genesys section alone.
    let genesys_only = sim.client_config().split("\n[limits]").next().unwrap().to_owned();
    let settings = common::settings_from_text(&format!("{genesys_only}\n{limits}"));
    let client = common::client(&settings);
    let queue: Arc<Mutex<VecDeque<_>>> = Arc::new(Mutex::new(sim.catalog().into_iter().collect()));
    assert_eq!(queue.lock().unwrap().len(), RECORDINGS);
    let ready = Arc::new(Mutex::new(0usize));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (client, queue, ready) = (client.clone(), queue.clone(), ready.clone());
            tokio::spawn(async move {
                loop {
                    let Some(entry) = queue.lock().unwrap().pop_front() else {
                        return;
                    };
                    match client.recording(&entry.conversation_id, &entry.recording_id).await {
                        Ok(RecordingFetch::Ready { .. }) => *ready.lock().unwrap() += 1,
                        other => panic!("recording {} failed: {other:?}", entry.recording_id),
                    }
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    assert_eq!(*ready.lock().unwrap(), RECORDINGS, "every call succeeded");
    sim.stats()
}

fn report(name: &str, stats: &SimStats) -> f64 {
    let share = stats.refusals() as f64 / stats.api_calls() as f64;
    println!(
        "{name}: {} API calls, {} recording 200s, {} 429s = {:.2}% of calls",
        stats.api_calls(),
        stats.count("recording", "200"),
        stats.refusals(),
        share * 100.0
    );
    share
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_equal_to_the_platform_draws_no_429() {
    let stats = fetch_all(platform(0.5, true), 1).await;
    report("budget = platform", &stats);
    assert_eq!(stats.count("recording", "200"), RECORDINGS as u64);
    assert_eq!(stats.refusals(), 0, "{stats:?}");
}

/// With the budget configured twice the platform's: every call succeeds, 429s < 5%.
async fn twice_the_platform(name: &str, retry_after_share: f64, headers: bool) {
    let stats = fetch_all(platform(retry_after_share, headers), 2).await;
    let share = report(name, &stats);
    assert_eq!(stats.count("recording", "200"), RECORDINGS as u64);
    assert!(share < 0.05, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_twice_the_platform_with_retry_after_stays_under_5_percent() {
    twice_the_platform("budget = 2x platform, Retry-After on every 429", 1.0, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_twice_the_platform_without_retry_after_stays_under_5_percent() {
    twice_the_platform("budget = 2x platform, no Retry-After", 0.0, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_twice_the_platform_without_any_hint_stays_under_5_percent() {
    // Neither Retry-After nor inin-ratelimit-* headers: only jittered backoff and
    // learning from refusals are left.
    twice_the_platform("budget = 2x platform, no Retry-After, no rate headers", 0.0, false).await;
}
