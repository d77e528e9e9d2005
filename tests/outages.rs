//! Outages, end to end: the S3 server unreachable for 30 s, the API answering 5xx for
//! 30 s, a 429 storm without Retry-After, and downloads that drop, come up short or
//! use expired URLs. The daemon runs as in production (`run`, not `--once`) except
//! where a single pass is the point; every end state is read from the bucket and the
//! ledger: each recording archived exactly once with the simulator's bytes, no
//! multipart upload left open, and the daemon still running until asked to stop.

mod common;

use common::servers::Server;

use common::harness::{Harness, assert_bucket_holds_exactly, available, fast_org, screen_only};
use genesys_sim::SimConfig;
use std::time::Duration;
use tokio::process::Child;
use tokio::time::{Instant, sleep};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Patient enough to outlast a 30 s outage: 40 attempts, at most 2 s apart.
const PATIENT: &[(&str, &str)] = &[
    ("GENESYS_ARCHIVER__WORKERS__MAX_ATTEMPTS", "40"),
    ("GENESYS_ARCHIVER__WORKERS__RETRY_CAP", "2s"),
];

/// Production-like retry timing of API calls (the harness's own is fast, for speed).
const PRODUCTION_RETRY: &[(&str, &str)] = &[
    ("GENESYS_ARCHIVER__RETRY__BASE", "1s"),
    ("GENESYS_ARCHIVER__RETRY__CAP", "8s"),
];

/// `run` (the daemon), logging to a file in the test directory.
fn start_daemon(h: &Harness, env: &[(&str, &str)]) -> Child {
    let log = std::fs::File::create(h.dir.join("daemon.log")).unwrap();
    h.daemon(&["run"])
        .envs(env.iter().copied())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("daemon starts")
}

fn logs(h: &Harness) -> String {
    std::fs::read_to_string(h.dir.join("daemon.log")).unwrap_or_default()
}

fn archived(h: &Harness) -> usize {
    h.ledger().values().filter(|v| v.0 == "archived").count()
}

/// Waits until `done` holds, failing the test after `limit`.
async fn wait_for(h: &Harness, what: &str, limit: Duration, done: impl Fn(&Harness) -> bool) {
    let deadline = Instant::now() + limit;
    while !done(h) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}\n{}", logs(h));
        sleep(Duration::from_millis(200)).await;
    }
}

/// The daemon is still running; SIGTERM drains it and it exits 0.
async fn still_running_then_stop(h: &Harness, mut daemon: Child) {
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "the daemon kept running through the outage\n{}",
        logs(h)
    );
    let pid = daemon.id().unwrap() as i32;
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(60), daemon.wait())
        .await
        .expect("drains within a minute")
        .unwrap();
    assert_eq!(status.code(), Some(0), "{}", logs(h));
}

/// Everything the simulator offers is archived once, and the ledger agrees.
async fn assert_all_archived_once(h: &Harness) {
    let expected = available(h);
    assert_bucket_holds_exactly(h, &expected).await;
    let ledger = h.ledger();
    for entry in &expected {
        assert_eq!(ledger[&entry.recording_id].0, "archived", "{}", entry.recording_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_unreachable_for_30_seconds_mid_run() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let h = Harness::start_proxied(screen_only(30, (64 * KIB, 7 * MIB)), "").await;
    let total = available(&h).len();
    let daemon = start_daemon(&h, PATIENT);
    wait_for(&h, "a first few archives", Duration::from_secs(90), |h| {
        archived(h) >= 5
    })
    .await;
    let before = archived(&h);
    let proxy = h.proxy.as_ref().unwrap();
    proxy.down();
    sleep(Duration::from_secs(30)).await;
    let during = archived(&h) - before;
    proxy.up();
    wait_for(&h, "every recording", Duration::from_secs(120), |h| {
        archived(h) == total
    })
    .await;
    let retried = logs(&h).matches("will retry").count();
    println!(
        "S3 down 30 s: {before} of {total} archived before, {during} during, all {total} after; {retried} attempts retried"
    );
    assert!(retried > 0, "the outage was felt");
    still_running_then_stop(&h, daemon).await;
    assert_all_archived_once(&h).await;
}

/// S3 stops answering without closing anything (a half-open connection, a broken
/// middlebox): every call in flight and every new one hangs. Calls have deadlines, so
/// the workers give up on those connections, retry on new ones once S3 answers again,
/// and nothing waits for ever. Before, a HEAD or a CreateMultipartUpload on such a
/// connection held its worker slot and its claim for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_calls_hung_on_half_open_connections_time_out_and_are_retried() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let h = Harness::start_proxied(
        screen_only(20, (64 * KIB, 7 * MIB)),
        "operation_timeout = \"2s\"\nsingle_put_max = \"0\"\n",
    )
    .await;
    let total = available(&h).len();
    let daemon = start_daemon(&h, PATIENT);
    wait_for(&h, "a first few archives", Duration::from_secs(90), |h| {
        archived(h) >= 3
    })
    .await;
    let before = archived(&h);
    let proxy = h.proxy.as_ref().unwrap();
    // Every connection open now stays silent for good; new ones too for 8 s.
    proxy.stall();
    sleep(Duration::from_secs(8)).await;
    proxy.unstall();
    wait_for(&h, "every recording", Duration::from_secs(120), |h| {
        archived(h) == total
    })
    .await;
    let timed_out = logs(&h).matches("timeout").count();
    println!(
        "S3 silent 8 s: {before} of {total} archived before, all {total} after; {timed_out} log lines of timeouts"
    );
    assert!(timed_out > 0, "calls timed out: {}", logs(&h));
    still_running_then_stop(&h, daemon).await;
    assert_all_archived_once(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_answers_5xx_for_30_seconds() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let h = Harness::start(fast_org(30), "").await;
    let daemon = start_daemon(&h, &[PATIENT, PRODUCTION_RETRY].concat());
    wait_for(&h, "a first few archives", Duration::from_secs(90), |h| {
        archived(h) >= 3
    })
    .await;
    h.sim.set_outage(true);
    let calls_before = h.sim.stats().api_calls();
    sleep(Duration::from_secs(30)).await;
    h.sim.set_outage(false);
    let refused = h.sim.stats().api_calls() - calls_before;
    let total = available(&h).len();
    wait_for(&h, "every recording", Duration::from_secs(120), |h| {
        archived(h) == total
    })
    .await;
    println!("API down 30 s: {refused} calls answered 503 (5 callers); all {total} archived after");
    // Each caller backs off with full jitter from 1 s to 8 s: tens of calls, not thousands.
    assert!(refused > 0 && refused <= 150, "{refused} calls during the outage");
    still_running_then_stop(&h, daemon).await;
    assert_all_archived_once(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_without_retry_after() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let h = Harness::start(fast_org(30), "").await;
    // Production-like timing: the storm is met with a shared, growing cooldown.
    let env = [PATIENT, PRODUCTION_RETRY].concat();
    let daemon = start_daemon(&h, &env);
    wait_for(&h, "a first few archives", Duration::from_secs(90), |h| {
        archived(h) >= 3
    })
    .await;
    h.sim.set_storm(true);
    let before = h.sim.stats();
    sleep(Duration::from_secs(20)).await;
    h.sim.set_storm(false);
    let after = h.sim.stats();
    let calls = after.api_calls() - before.api_calls();
    let total = available(&h).len();
    wait_for(&h, "every recording", Duration::from_secs(120), |h| {
        archived(h) == total
    })
    .await;
    println!("20 s of bare 429s: {calls} calls made into it (5 callers at most at once)");
    // Five callers (4 workers, the poller) hammering with fixed 50 ms retries would make
    // about 2,000 calls; a shared cooldown growing from 1 s to 8 s makes a few dozen.
    assert!(calls > 0 && calls <= 80, "{calls} calls during the storm");
    still_running_then_stop(&h, daemon).await;
    assert_all_archived_once(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_that_drop_come_up_short_or_use_expired_urls() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = SimConfig {
        media_drop_share: 0.25,
        media_truncate_share: 0.2,
        stale_url_share: 0.3,
        url_ttl: Duration::from_secs(2),
        ..screen_only(30, (64 * KIB, 7 * MIB))
    };
    let h = Harness::start(sim, "").await;
    let (status, logs) = h.run_once_with(PATIENT).await;
    assert!(status.success(), "{logs}");
    let stats = h.sim.stats();
    let (dropped, truncated, expired) = (
        stats.count("media", "dropped"),
        stats.count("media", "truncated"),
        stats.count("media", "403"),
    );
    println!("downloads: {dropped} dropped, {truncated} truncated, {expired} on expired URLs; all archived once");
    assert!(dropped > 0 && truncated > 0 && expired > 0);
    assert_all_archived_once(&h).await;
}
