//! Discovery end to end (simulator + moto + the daemon binary): every screen recording
//! is found, whatever the conversation's audio, length or age. Assertions read the
//! bucket and the ledger; waits are bounded and poll state, never assert on time.

mod common;

use common::servers::Server;

use common::harness::{Harness, assert_bucket_holds_exactly, available, fast_org};
use genesys_sim::SimConfig;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Conversation id -> lifecycle state, read from the ledger.
fn conversation_states(h: &Harness) -> BTreeMap<String, String> {
    let path = h.dir.join("ledger.sqlite");
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let Ok(conn) = rusqlite::Connection::open_with_flags(&path, flags) else {
        return BTreeMap::new();
    };
    let Ok(mut stmt) = conn.prepare("SELECT conversation_id, state FROM conversations") else {
        return BTreeMap::new();
    };
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn archived_count(h: &Harness) -> usize {
    h.ledger().values().filter(|row| row.0 == "archived").count()
}

/// (a) A quarter of the recorded conversations have no audio recording: their screen
/// recordings are found too (the old `recording` filter, the audio flag, missed them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screen_recordings_of_conversations_without_audio_are_archived_once() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = SimConfig {
        no_recording_share: 0.0,
        audio_share: 0.75,
        archived_share: 0.0,
        deleted_share: 0.0,
        ..fast_org(40)
    };
    let h = Harness::start(sim, "").await;
    let catalog = h.sim.catalog();
    let with_audio: std::collections::BTreeSet<_> = catalog
        .iter()
        .filter(|e| e.media == "audio")
        .map(|e| e.conversation_id.clone())
        .collect();
    let screen_only = available(&h)
        .iter()
        .filter(|e| !with_audio.contains(&e.conversation_id))
        .count();
    assert!(screen_only >= 5, "a meaningful share without audio: {screen_only}");

    let (status, logs) = h.run_once().await;
    assert!(status.success(), "{status:?}\n{logs}");
    assert_bucket_holds_exactly(&h, &available(&h)).await;

    // The old filter, on the same org: the platform answers only the audio-recorded ones.
    let old = r#"[[discovery.segment_filters]]
type = "or"
predicates = [{ dimension = "recording", value = "true" }]
"#;
    let h2 = Harness::start(
        SimConfig {
            no_recording_share: 0.0,
            audio_share: 0.75,
            archived_share: 0.0,
            deleted_share: 0.0,
            ..fast_org(40)
        },
        old,
    )
    .await;
    let (status, logs) = h2.run_once().await;
    assert!(status.success(), "{logs}");
    assert_eq!(
        archived_count(&h2),
        available(&h2).len() - screen_only,
        "filtering on `recording` (audio) misses exactly the screen-only conversations"
    );
}

/// (b) The daemon, left running: conversations that started long before the overlap
/// (90 minutes back; the overlap is 10 minutes, the other conversations' history 1 hour)
/// and are still going on at the first pass end later; their screen recordings are
/// listed only after the end, first as UPLOADING. All archived once, no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_archives_conversations_that_were_active_at_the_first_pass() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = SimConfig {
        ongoing: 6,
        ongoing_started_ago: Duration::from_secs(90 * 60),
        ongoing_end_within: Duration::from_secs(6),
        upload_time: (Duration::from_secs(2), Duration::from_secs(3)),
        archived_share: 0.0,
        deleted_share: 0.0,
        no_recording_share: 0.0,
        ..fast_org(8)
    };
    // Listing 1 s after the end finds the uploads still going on.
    let h = Harness::start(sim, "").await;
    let config = std::fs::read_to_string(&h.config)
        .unwrap()
        .replace("settle_after_end = \"0s\"", "settle_after_end = \"1s\"");
    std::fs::write(&h.config, config).unwrap();
    let ongoing: Vec<String> = {
        let now = chrono::Utc::now();
        h.sim
            .catalog()
            .iter()
            .filter(|e| e.start_time < now - chrono::Duration::minutes(75))
            .map(|e| e.conversation_id.clone())
            .collect()
    };
    let expected = available(&h);
    assert!(!ongoing.is_empty() && expected.len() > ongoing.len());

    let mut daemon = h.daemon(&["run"]).spawn().expect("daemon starts");
    // The first pass records the ongoing conversations as active.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let states = conversation_states(&h);
        if ongoing.iter().all(|c| states.contains_key(c)) {
            let active = ongoing.iter().filter(|c| states[*c] == "active").count();
            assert!(active > 0, "some are still active at the first pass: {states:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the first pass never recorded them");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    while archived_count(&h) < expected.len() {
        assert!(
            Instant::now() < deadline,
            "{} of {} archived; conversations {:?}",
            archived_count(&h),
            expected.len(),
            conversation_states(&h)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pid = daemon.id().expect("running") as i32;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(30), daemon.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");

    assert_bucket_holds_exactly(&h, &expected).await;
    let states = conversation_states(&h);
    assert!(
        ongoing.iter().all(|c| states[c] == "settled"),
        "every conversation settled: {states:?}"
    );
    let stats = h.sim.stats();
    assert!(
        stats.calls("conversation_recordings") > expected.len() as u64 / 2,
        "conversations listed while UPLOADING were listed again: {stats:?}"
    );
}

/// (c) `run --once` while conversations go on records them and says so (exit 4); the
/// next `run --once`, after their end, archives them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_twice_around_the_end_archives_them_in_the_second_run() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = SimConfig {
        ongoing: 4,
        ongoing_started_ago: Duration::from_secs(90 * 60),
        ongoing_end_within: Duration::from_secs(4),
        upload_time: (Duration::from_millis(500), Duration::from_millis(500)),
        archived_share: 0.0,
        deleted_share: 0.0,
        no_recording_share: 0.0,
        ..fast_org(6)
    };
    let h = Harness::start(sim, "").await;
    let started = Instant::now();
    let (status, logs) = h.run_once().await;
    let expected = available(&h);
    let states = conversation_states(&h);
    let waiting: std::collections::BTreeSet<&String> =
        states.iter().filter(|(_, s)| *s != "settled").map(|(c, _)| c).collect();
    if status.code() == Some(4) {
        // The usual case: the first run ended before some of the conversations did.
        assert!(!waiting.is_empty(), "{states:?}");
        assert_eq!(
            archived_count(&h),
            expected
                .iter()
                .filter(|e| !waiting.contains(&e.conversation_id))
                .count(),
            "everything of the settled conversations is archived, nothing of the waiting ones"
        );
        let out = h.daemon(&["status"]).output().await.expect("status runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("conversations: ") && text.contains("looked at again"),
            "{text}"
        );
    } else {
        // Only if every ongoing conversation ended during the first run.
        assert!(
            status.success() && started.elapsed() > Duration::from_secs(3),
            "{status:?}\n{logs}"
        );
    }
    // After their end and upload.
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(started.elapsed())).await;
    let (status, logs) = h.run_once().await;
    assert!(status.success(), "{status:?}\n{logs}");
    assert_bucket_holds_exactly(&h, &expected).await;
    assert!(conversation_states(&h).values().all(|s| s == "settled"));
}

/// (d) A window holding more conversations than one query returns is split and read whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_over_max_results_is_split_and_read_whole() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = SimConfig {
        max_results: 40,
        no_recording_share: 0.0,
        archived_share: 0.0,
        deleted_share: 0.0,
        transcoding_share: 0.0,
        media_size: (1024, 2048),
        ..fast_org(130)
    };
    let h = Harness::start(sim, "").await;
    let config = std::fs::read_to_string(&h.config).unwrap().replace(
        "poll_interval = \"1s\"",
        "poll_interval = \"1s\"\nmax_results = 40\npage_size = 20",
    );
    std::fs::write(&h.config, config).unwrap();
    let (status, logs) = h.run_once().await;
    assert!(status.success(), "{status:?}\n{logs}");
    assert!(logs.contains("split"), "the window was split:\n{logs}");
    assert_eq!(
        h.sim.stats().count("analytics", "400"),
        0,
        "never paged past the platform's cap"
    );
    assert_bucket_holds_exactly(&h, &available(&h)).await;
}

/// (e) A backfill that starts more than 35 days back goes through the jobs API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_older_than_35_days_goes_through_the_jobs_api() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = SimConfig {
        history: Duration::from_secs(40 * 86_400),
        archived_share: 0.0,
        deleted_share: 0.0,
        no_recording_share: 0.0,
        job_time: Duration::from_millis(1500),
        ..fast_org(40)
    };
    let h = Harness::start(sim, "").await;
    let now = chrono::Utc::now();
    // Conversations are one a day, the first 40 days back: the window holds days 2 to 4.
    let (from, to) = (
        now - chrono::Duration::days(40) + chrono::Duration::hours(1),
        now - chrono::Duration::days(36),
    );
    let expected: Vec<_> = available(&h)
        .into_iter()
        .filter(|e| e.start_time >= from && e.start_time < to)
        .collect();
    assert!(!expected.is_empty());
    let out = h
        .daemon(&["backfill", "--from", &from.to_rfc3339(), "--to", &to.to_rfc3339()])
        .output()
        .await
        .expect("backfill runs");
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{logs}", out.status);
    assert_bucket_holds_exactly(&h, &expected).await;
    let manifests = h
        .objects()
        .await
        .into_keys()
        .filter(|k| k.starts_with("org/manifests/"))
        .count();
    // The window's whole UTC days: three, or two when the test starts in the hour
    // before midnight (then `from` falls after midnight and its day is not whole).
    let first_whole = match from.time() == chrono::NaiveTime::MIN {
        true => from.date_naive(),
        false => from.date_naive().succ_opt().expect("a next day"),
    };
    let whole_days = (to.date_naive() - first_whole).num_days();
    assert!((2..=3).contains(&whole_days), "{whole_days} whole days");
    assert_eq!(
        manifests as i64, whole_days,
        "one manifest per whole day of the window [{from}, {to})"
    );
    let stats = h.sim.stats();
    assert!(
        stats.calls("analytics_jobs") >= 4,
        "availability, submit, state, results: {stats:?}"
    );
    assert_eq!(
        stats.calls("analytics"),
        0,
        "the synchronous query cannot reach that far back"
    );
    assert!(logs.contains("Analytics job"), "{logs}");
}
