//! Every screen recording, end to end (simulator + moto + the daemon binary, run as a
//! daemon): recordings of several files, conversations analytics shows late, a platform
//! that matches interval bounds coarsely. Assertions read the bucket and the ledger;
//! waits are bounded and poll state, never assert on time.
//!
//! Over 500 lines: one suite of the completeness cases (late rows, parts, deadlines,
//! waiting states), sharing one harness.

mod common;

use common::servers::Server;

use common::harness::{Harness, assert_bucket_holds_exactly, available, fast_org};
use genesys_sim::SimConfig;
use std::time::{Duration, Instant};

/// The daemon (`run`) with its output in a file of the test's directory.
struct Daemon {
    child: tokio::process::Child,
    log: std::path::PathBuf,
}

impl Daemon {
    fn start(h: &Harness, name: &str) -> Self {
        let log = h.dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = h
            .daemon(&["run"])
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("daemon starts");
        Self { child, log }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and an exit 0 within 30 s.
    async fn stop(mut self) -> String {
        let pid = self.child.id().expect("running") as i32;
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the daemon stops within 30 s")
            .unwrap();
        let logs = self.logs();
        assert_eq!(status.code(), Some(0), "{status:?}\n{logs}");
        logs
    }
}

fn archived_count(h: &Harness) -> usize {
    h.ledger().values().filter(|row| row.0 == "archived").count()
}

/// Waits until `expected` recordings are archived, for at most `secs`.
async fn until_archived(h: &Harness, daemon: &Daemon, expected: usize, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while archived_count(h) < expected {
        assert!(
            Instant::now() < deadline,
            "{} of {expected} archived\n{}",
            archived_count(h),
            daemon.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// (a) A fifth of the screen recordings are served as 2–3 files: every part is archived
/// once, byte for byte, under its own key, and the sidecar lists them all; URLs that
/// expire halfway through a recording cost only the parts not yet written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_part_of_a_screen_recording_of_several_files_is_archived_once() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = SimConfig {
        multipart_share: 0.2,
        archived_share: 0.0,
        deleted_share: 0.0,
        stale_url_share: 0.2,
        media_size: (50_000, 400_000),
        ..fast_org(60)
    };
    let h = Harness::start(sim, "").await;
    let expected = available(&h);
    let several = expected.iter().filter(|e| e.parts.len() > 1).count();
    assert!(
        several >= 5 && several < expected.len(),
        "a meaningful share of several parts: {several} of {}",
        expected.len()
    );
    let daemon = Daemon::start(&h, "parts");
    until_archived(&h, &daemon, expected.len(), 90).await;
    daemon.stop().await;
    assert_bucket_holds_exactly(&h, &expected).await;

    // The ledger holds each part's key, size and digest for the recordings of several.
    let conn = rusqlite::Connection::open(h.dir.join("ledger.sqlite")).unwrap();
    for entry in expected.iter().filter(|e| e.parts.len() > 1) {
        let parts: String = conn
            .query_row(
                "SELECT parts FROM recordings WHERE recording_id = ?1",
                [&entry.recording_id],
                |r| r.get(0),
            )
            .unwrap();
        let parts: Vec<serde_json::Value> = serde_json::from_str(&parts).unwrap();
        let listed: Vec<(String, u64)> = parts
            .iter()
            .map(|p| (p["sha256"].as_str().unwrap().to_owned(), p["size"].as_u64().unwrap()))
            .collect();
        let want: Vec<(String, u64)> = entry
            .parts
            .iter()
            .map(|(name, size)| (genesys_sim::media::expected_sha256(name, *size), *size))
            .collect();
        assert_eq!(listed, want, "{}", entry.recording_id);
    }
    let stats = h.sim.stats();
    assert!(stats.count("media", "403") > 0, "some URLs expired: {stats:?}");
}

/// (b) Conversations that analytics shows only after the passes' overlap has passed
/// are found by the sweep, and their recordings archived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_analytics_shows_late_are_found_by_the_sweep() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = SimConfig {
        history: Duration::from_secs(150),
        session_length: (Duration::from_secs(5), Duration::from_secs(20)),
        late_share: 0.5,
        late_by: Duration::from_secs(40),
        archived_share: 0.0,
        deleted_share: 0.0,
        no_recording_share: 0.0,
        ..fast_org(40)
    };
    let h = Harness::start(sim, "").await;
    let config = std::fs::read_to_string(&h.config).unwrap().replace(
        "overlap = \"10m\"\n",
        "overlap = \"2s\"\nsweep_lookback = \"1h\"\nsweep_interval = \"3s\"\n",
    );
    std::fs::write(&h.config, config).unwrap();
    let now = chrono::Utc::now();
    let expected = available(&h);
    let late: Vec<_> = expected
        .iter()
        .filter(|e| e.analytics_from > now + chrono::Duration::seconds(5))
        .collect();
    assert!(late.len() >= 3, "a meaningful number shown late: {}", late.len());

    let daemon = Daemon::start(&h, "late");
    until_archived(&h, &daemon, expected.len(), 120).await;
    let logs = daemon.stop().await;
    assert_bucket_holds_exactly(&h, &expected).await;
    let found_late: u64 = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == "Sweep done.")
        .filter_map(|l| l["late_conversations"].as_u64())
        .sum();
    let late_conversations: std::collections::BTreeSet<_> = late.iter().map(|e| &e.conversation_id).collect();
    assert!(
        found_late >= late_conversations.len() as u64,
        "the sweep found the {} late conversations: {found_late}\n{logs}",
        late_conversations.len()
    );
}

/// (c) A platform that matches interval bounds to the whole second: re-reads of the
/// conversations still going on (started long before the overlap) still see every end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rereads_see_every_end_when_the_platform_matches_intervals_to_the_second() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = SimConfig {
        ongoing: 30,
        ongoing_started_ago: Duration::from_secs(90 * 60),
        ongoing_end_within: Duration::from_secs(8),
        upload_time: (Duration::from_millis(200), Duration::from_millis(500)),
        interval_granularity: Duration::from_secs(1),
        archived_share: 0.0,
        deleted_share: 0.0,
        no_recording_share: 0.0,
        ..fast_org(4)
    };
    let h = Harness::start(sim, "").await;
    let expected = available(&h);
    let daemon = Daemon::start(&h, "coarse");
    until_archived(&h, &daemon, expected.len(), 90).await;
    daemon.stop().await;
    assert_bucket_holds_exactly(&h, &expected).await;
}

/// (d) A screen recording that stays `UPLOADING` is in the ledger, and counted by the
/// oldest-unarchived gauge, from its first listing; after `discovery.upload_deadline`
/// it fails with that reason, and its conversation settles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_stuck_uploading_shows_meanwhile_and_fails_after_the_deadline() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let port = common::harness::free_port();
    let sim = SimConfig {
        stuck_uploading_share: 0.3,
        archived_share: 0.0,
        deleted_share: 0.0,
        no_recording_share: 0.0,
        ..fast_org(16)
    };
    let h = Harness::start(sim, &format!("[telemetry]\nmetrics_listen = \"127.0.0.1:{port}\"\n")).await;
    let config = std::fs::read_to_string(&h.config).unwrap().replace(
        "recheck_max = \"2s\"\n",
        "recheck_max = \"2s\"\nupload_deadline = \"30s\"\n",
    );
    std::fs::write(&h.config, config).unwrap();
    let stuck: Vec<String> = h
        .sim
        .catalog()
        .iter()
        .filter(|e| e.media == "screen" && e.stuck_uploading)
        .map(|e| e.recording_id.clone())
        .collect();
    let expected: Vec<_> = available(&h)
        .into_iter()
        .filter(|e| !stuck.contains(&e.recording_id))
        .collect();
    assert!(!stuck.is_empty() && !expected.is_empty(), "{} stuck", stuck.len());

    let daemon = Daemon::start(&h, "stuck");
    // Well inside the 30 s deadline: the others take a few seconds.
    until_archived(&h, &daemon, expected.len(), 25).await;
    // Meanwhile: in the ledger, waiting with the reason, and seen by the gauge.
    let ledger = h.ledger();
    for id in &stuck {
        let (state, reason, ..) = &ledger[id];
        assert_eq!(state, "transcoding", "{id}");
        assert!(
            reason.as_deref().unwrap_or("").starts_with("UPLOADING in Genesys"),
            "{reason:?}"
        );
    }
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("genesys_archiver_{name}{{org=\"default\"}}")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    // Before, a recording UPLOADING stayed out of the recordings table and this said 0.
    assert!(gauge("oldest_unarchived_age_seconds") > 0.0, "{metrics}");

    // After the deadline: failed with the reason, every conversation settled.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ledger = h.ledger();
        if stuck.iter().all(|id| ledger[id].0 == "failed") {
            for id in &stuck {
                let reason = ledger[id].1.clone().unwrap_or_default();
                assert!(
                    reason.contains("still UPLOADING in Genesys after discovery.upload_deadline"),
                    "{reason}"
                );
            }
            break;
        }
        assert!(Instant::now() < deadline, "{ledger:?}\n{}", daemon.logs());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let out = h.daemon(&["status", "--json"]).output().await.unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // A daemon stopped by SIGTERM exits 0 even with failed recordings in the ledger
    // (exit 3 is for `run --once` and `backfill`).
    daemon.stop().await;
    assert_eq!(status["recordings"]["failed"], stuck.len(), "{status}");
    assert_eq!(
        status["conversations_waiting"], 0,
        "every conversation settled: {status}"
    );
    assert_bucket_holds_exactly(&h, &expected).await;
}

/// (e) A backlog larger than the budget can list before the oldest recordings' delete
/// dates (the simulator deletes them then): listed oldest first and claimed nearest
/// deadline first, none of them is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_near_its_delete_dates_loses_nothing() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    // 60 conversations 10 s apart, the oldest ending 10 min ago; each is deleted 615 s
    // after its end: the oldest ~20 s after the simulator starts, the next 10 s later,
    // and so on. Listing all 60 at the budget (3 calls per 2 s) takes 40 s or more.
    let sim = SimConfig {
        history: Duration::from_secs(600),
        session_length: (Duration::from_secs(5), Duration::from_secs(5)),
        upload_time: (Duration::ZERO, Duration::ZERO),
        retention: Duration::from_secs(615),
        token_limit: 3,
        window: Duration::from_secs(2),
        ..common::harness::screen_only(60, (10_000, 20_000))
    };
    // The simulator's configuration for the daemon paces it at that budget.
    let h = Harness::start(sim, "").await;
    let expected = available(&h);
    let now = chrono::Utc::now();
    let soon = expected
        .iter()
        .filter(|e| e.delete_date < now + chrono::Duration::seconds(45))
        .count();
    assert!(
        soon >= 2,
        "some are deleted before the whole backlog could be listed: {soon}"
    );

    let daemon = Daemon::start(&h, "deadlines");
    let deadline = Instant::now() + Duration::from_secs(120);
    while archived_count(&h) < expected.len() {
        let ledger = h.ledger();
        let lost: Vec<_> = ledger.iter().filter(|(_, row)| row.0 == "parked").collect();
        assert!(
            lost.is_empty(),
            "lost to their delete date: {lost:?}\n{}",
            daemon.logs()
        );
        assert!(
            Instant::now() < deadline,
            "{} of {} archived",
            archived_count(&h),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    daemon.stop().await;
    assert_bucket_holds_exactly(&h, &expected).await;
    let conn = rusqlite::Connection::open(h.dir.join("ledger.sqlite")).unwrap();
    let with_deadline: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM recordings WHERE delete_date IS NOT NULL AND deadline < 9223372036854775807",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        with_deadline as usize,
        expected.len(),
        "the ledger keeps every deadline"
    );
}

/// `reconcile` with its output as JSON: the exit code and the report.
async fn reconcile(
    h: &Harness,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
    extra: &[&str],
) -> (Option<i32>, serde_json::Value) {
    let (from, to) = (from.to_rfc3339(), to.to_rfc3339());
    let mut args = vec!["reconcile", "--from", &from, "--to", &to, "--json"];
    args.extend_from_slice(extra);
    let out = h.daemon(&args).output().await.expect("reconcile runs");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

/// The findings of a report as `(code, key or recording)`.
fn findings(report: &serde_json::Value) -> Vec<(String, String)> {
    report["orgs"]["default"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let what = f["key"].as_str().or(f["recording_id"].as_str()).unwrap_or("-");
            (f["code"].as_str().unwrap().to_owned(), what.to_owned())
        })
        .collect()
}

/// (f) `reconcile` proves an intact archive complete (exit 0); after one object is
/// deleted behind the daemon's back and a stray one put in, it reports exactly those
/// two and exits non-zero; `--offline` and `--bytes` agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_reports_exactly_a_deleted_object_and_a_stray_one() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = SimConfig {
        multipart_share: 0.2,
        audio_share: 0.0,
        archived_share: 0.0,
        deleted_share: 0.0,
        ..fast_org(20)
    };
    let h = Harness::start(sim, "").await;
    let expected = available(&h);
    let daemon = Daemon::start(&h, "reconcile");
    until_archived(&h, &daemon, expected.len(), 90).await;
    daemon.stop().await;
    let (from, to) = (chrono::Utc::now() - chrono::Duration::hours(3), chrono::Utc::now());

    let (code, report) = reconcile(&h, from, to, &[]).await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["complete"], true);
    assert_eq!(report["orgs"]["default"]["genesys_recordings"], expected.len());
    assert!(findings(&report).is_empty(), "{report}");

    // One recording's object deleted, a stray object put under the same day's keys.
    let gone = common::harness::part_keys("org/", &expected[0])[0].0.clone();
    h.s3.delete_object().bucket(&h.bucket).key(&gone).send().await.unwrap();
    let stray = format!("{}/stray.webm", gone.rsplit_once('/').unwrap().0);
    h.s3.put_object()
        .bucket(&h.bucket)
        .key(&stray)
        .body(b"not ours".to_vec().into())
        .send()
        .await
        .unwrap();
    for extra in [&[][..], &["--offline"], &["--bytes"]] {
        let (code, report) = reconcile(&h, from, to, extra).await;
        assert_eq!(code, Some(5), "{extra:?}: {report}");
        assert_eq!(report["complete"], false);
        let mut found = findings(&report);
        found.sort();
        assert_eq!(
            found,
            vec![
                ("missing".to_owned(), gone.clone()),
                ("unknown".to_owned(), stray.clone())
            ],
            "{extra:?}: exactly those two"
        );
    }
}

/// (g) `backfill` of past days writes one manifest per day listing every archived part
/// of the day's conversations, chained; `reconcile` verifies them; a manifest edited
/// by hand makes it fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_writes_a_chained_manifest_per_day_and_an_edited_one_fails_reconcile() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = SimConfig {
        history: Duration::from_secs(5 * 86_400),
        multipart_share: 0.3,
        audio_share: 0.0,
        archived_share: 0.0,
        deleted_share: 0.0,
        no_recording_share: 0.0,
        ..fast_org(40)
    };
    let h = Harness::start(sim, "").await;
    let today = chrono::Utc::now().date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let (from, to) = (today - chrono::Duration::days(5), today - chrono::Duration::days(2));
    let (from_s, to_s) = (from.to_rfc3339(), to.to_rfc3339());
    let out = h
        .daemon(&["backfill", "--from", &from_s, "--to", &to_s])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let objects = h.objects().await;
    let manifests: Vec<&String> = objects.keys().filter(|k| k.starts_with("org/manifests/")).collect();
    assert_eq!(manifests.len(), 3, "one per whole day: {manifests:?}");
    let mut previous: Option<(String, String)> = None;
    for (i, key) in manifests.iter().enumerate() {
        let day = (from + chrono::Duration::days(i as i64)).date_naive();
        assert_eq!(**key, format!("org/manifests/{}.jsonl", day.format("%Y/%m/%d")));
        let bytes = h.get(key).await;
        let manifest = genesys_archiver::manifest::Manifest::parse(&bytes).unwrap();
        let (start, end) = (
            from + chrono::Duration::days(i as i64),
            from + chrono::Duration::days(i as i64 + 1),
        );
        let mut want: Vec<(String, u64, String)> = available(&h)
            .iter()
            .filter(|e| e.start_time >= start && e.start_time < end)
            .flat_map(|e| common::harness::part_keys("org/", e))
            .map(|(key, name, size)| (key, size, genesys_sim::media::expected_sha256(&name, size)))
            .collect();
        let mut listed: Vec<(String, u64, String)> = manifest
            .lines
            .iter()
            .map(|l| (l.key.clone(), l.size, l.sha256.clone()))
            .collect();
        want.sort();
        listed.sort();
        assert!(!want.is_empty(), "day {day} has recordings");
        assert_eq!(listed, want, "day {day}: every archived part");
        assert_eq!(
            manifest.trailer.previous.map(|l| (l.key, l.sha256)),
            previous.clone(),
            "chained to the day before"
        );
        previous = Some(((*key).clone(), genesys_archiver::manifest::digest(&bytes)));
    }

    let (code, report) = reconcile(&h, from, to, &["--bytes"]).await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["orgs"]["default"]["manifests"], 3);

    // The middle day's manifest edited by hand: a line's size changed.
    let edited_key = manifests[1].clone();
    let text = String::from_utf8(h.get(&edited_key).await).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let edited = text.replacen(
        &format!("\"size\":{}", first["size"]),
        &format!("\"size\":{}", first["size"].as_u64().unwrap() + 1),
        1,
    );
    assert_ne!(edited, text);
    h.s3.put_object()
        .bucket(&h.bucket)
        .key(&edited_key)
        .body(edited.into_bytes().into())
        .send()
        .await
        .unwrap();
    let (code, report) = reconcile(&h, from, to, &["--offline"]).await;
    assert_eq!(code, Some(5), "{report}");
    let found = findings(&report);
    assert!(
        found.contains(&("manifest_chain".to_owned(), edited_key.clone())),
        "{found:?}"
    );
    assert!(
        found.contains(&("manifest_wrong".to_owned(), edited_key.clone())),
        "{found:?}"
    );
    assert_eq!(found.len(), 2, "nothing else: {found:?}");
}
