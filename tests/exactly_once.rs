//! Exactly once, against the faults a line-by-line review found: a key that moves
//! between attempts, a body longer than declared, a second owner of the ledger.
//! Black box: the simulator, moto and the daemon binary; every assertion reads the
//! bucket, the ledger or the simulator's counts.

mod common;

use common::servers::Server;

use common::harness::{Harness, available, keys, one_big_recording, screen_only};
use genesys_sim::SimConfig;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;

/// The key an attempt stored is the key every later attempt writes to, even when
/// recomputing it now would give another (a recording without a start time falls back
/// to the clock; a retry an hour later would have written a second object).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_writes_to_the_key_its_first_attempt_fixed() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let h = Harness::start(screen_only(1, (200_000, 200_000)), "").await;
    h.sim.set_media_outage(true);
    let (status, logs) = h
        .run_once_with(&[("GENESYS_ARCHIVER__WORKERS__MAX_ATTEMPTS", "1")])
        .await;
    assert_eq!(
        status.code(),
        Some(3),
        "failed for good while the media host is down\n{logs}"
    );
    let entry = available(&h).remove(0);
    let (computed, pattern) = (keys(&entry).media, keys(&entry).pattern);
    let (state, _, stored, _) = h.ledger()[&entry.recording_id].clone();
    assert_eq!(state, "failed");
    // The key's pattern: `{part}` is filled in once the number of parts is known.
    assert_eq!(
        stored.as_deref(),
        Some(pattern.as_str()),
        "the first attempt fixed the key"
    );

    // As if that first attempt had run in another hour: the stored key differs from
    // what a new computation gives.
    let earlier_pattern = pattern.replace("/hour=", "/hour=x");
    let earlier = earlier_pattern.replace("{part}", "");
    let conn = rusqlite::Connection::open(h.dir.join("ledger.sqlite")).unwrap();
    conn.execute(
        "UPDATE recordings SET object_key = ?1 WHERE recording_id = ?2",
        (&earlier_pattern, &entry.recording_id),
    )
    .unwrap();
    drop(conn);

    h.sim.set_media_outage(false);
    let retried = h.daemon(&["retry"]).output().await.unwrap();
    assert!(retried.status.success(), "{}", String::from_utf8_lossy(&retried.stderr));
    let (status, logs) = h.run_once().await;
    assert!(status.success(), "{logs}");
    let objects = h.objects().await;
    assert!(objects.contains_key(&earlier), "written at the fixed key: {objects:?}");
    assert!(
        !objects.contains_key(&computed),
        "never at a recomputed one: {objects:?}"
    );
    assert_eq!(h.ledger()[&entry.recording_id].2.as_deref(), Some(earlier.as_str()));
}

/// Our own finished object, whose ledger update was lost, is adopted even when the size
/// the recording declares differs from the bytes the host announced and the upload
/// trusted: adoption compares with the size recorded in the object's metadata. Before,
/// it compared with the declared size and parked our own object as foreign.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_object_is_adopted_by_the_size_its_upload_recorded() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = SimConfig {
        declared_size_skew: 1000,
        ..screen_only(3, (200_000, 300_000))
    };
    let h = Harness::start(sim, "").await;
    let (status, logs) = h.run_once().await;
    assert!(status.success(), "{logs}");
    let expected = available(&h);
    let ledger = h.ledger();
    assert!(expected.iter().all(|e| ledger[&e.recording_id].0 == "archived"));
    // As if a crash had lost the ledger update after the uploads: due again.
    let conn = rusqlite::Connection::open(h.dir.join("ledger.sqlite")).unwrap();
    conn.execute(
        "UPDATE recordings SET state = 'discovered', next_attempt_at = 0, sha256 = NULL",
        [],
    )
    .unwrap();
    drop(conn);
    let downloads = h.sim.stats().count("media", "200");
    let (status, logs) = h.run_once().await;
    assert!(status.success(), "{logs}");
    let ledger = h.ledger();
    for entry in &expected {
        let (state, reason, _, sha) = &ledger[&entry.recording_id];
        assert_eq!(state, "archived", "{reason:?}");
        assert!(sha.is_some(), "read back for its digest");
    }
    assert_eq!(
        h.sim.stats().count("media", "200"),
        downloads,
        "adopted, not downloaded again"
    );
}

/// A download without Content-Length never goes out as one streamed PutObject (which
/// would have to declare a length it does not know): it is multipart and lands whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_without_content_length_goes_multipart() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = SimConfig {
        media_unannounced_share: 1.0,
        ..one_big_recording()
    };
    let h = Harness::start(sim, "").await;
    let (status, logs) = h.run_once().await;
    assert!(status.success(), "{logs}");
    let expected = available(&h);
    common::harness::assert_bucket_holds_exactly(&h, &expected).await;
    let etag = h.etag(&keys(&expected[0]).media).await;
    assert!(
        etag.contains('-'),
        "multipart, not a PutObject of a guessed length: {etag}"
    );
    assert_eq!(h.sim.stats().count("media", "unannounced"), 1);
}

/// A body that runs past the recording's declared size is never archived: not
/// truncated to the declared length by a single PutObject, not adopted later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_longer_than_declared_is_never_stored_or_adopted() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = SimConfig {
        media_overrun_share: 1.0,
        ..one_big_recording()
    };
    let h = Harness::start(sim, "").await;
    let (status, logs) = h
        .run_once_with(&[("GENESYS_ARCHIVER__WORKERS__MAX_ATTEMPTS", "2")])
        .await;
    assert_eq!(status.code(), Some(3), "failed for good: exit 3\n{logs}");
    assert!(h.objects().await.is_empty(), "nothing stored, truncated or whole");
    assert_eq!(h.open_uploads().await, 0, "the multipart upload was aborted");
    let (state, reason, _, _) = h.ledger().into_values().next().unwrap();
    assert_eq!(state, "failed");
    assert!(reason.unwrap().contains("announced"), "the mismatch is the reason");
    assert_eq!(h.sim.stats().count("media", "overrun"), 2, "both attempts downloaded");
}

/// A second `run` on a ledger that a running daemon holds exits at once, naming the
/// ledger and the holder's pid, before it asks for a token; `status` still reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_owner_of_the_ledger_is_turned_away() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = SimConfig {
        media_chunk_delay: Duration::from_millis(50),
        ..screen_only(4, (4 * MIB, 4 * MIB))
    };
    let h = Harness::start(sim, "").await;
    let mut first = h.daemon(&["run"]).spawn().unwrap();
    // Wait until the first one holds the ledger and works.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while h.sim.stats().calls("token") == 0 || h.ledger().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the first daemon starts");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tokens = h.sim.stats().calls("token");
    let (from, to) = (chrono::Utc::now() - chrono::Duration::hours(1), chrono::Utc::now());
    let backfill = [
        "backfill".to_owned(),
        format!("--from={}", from.to_rfc3339()),
        format!("--to={}", to.to_rfc3339()),
    ];
    let once = ["run".to_owned(), "--once".to_owned()];
    for command in [&once[..], &backfill[..]] {
        let command: Vec<&str> = command.iter().map(String::as_str).collect();
        let second = tokio::time::timeout(Duration::from_secs(30), h.daemon(&command).output())
            .await
            .expect("the second one exits at once")
            .unwrap();
        let stderr = String::from_utf8_lossy(&second.stderr);
        assert_eq!(second.status.code(), Some(1), "{command:?}: {stderr}");
        let holder = format!("pid {}", first.id().unwrap());
        let refusals: Vec<&str> = stderr.lines().filter(|l| l.contains("in use by another")).collect();
        assert_eq!(refusals.len(), 1, "one line says it: {stderr}");
        assert!(
            refusals[0].contains("ledger.sqlite") && refusals[0].contains(&holder),
            "names the ledger and the holder: {stderr}"
        );
    }
    assert_eq!(
        h.sim.stats().calls("token"),
        tokens,
        "no token asked for by the turned-away ones"
    );
    let status = h.daemon(&["status"]).output().await.unwrap();
    assert!(status.status.success(), "status reads a held ledger");
    first.kill().await.unwrap();
}

/// A recording that stays "not ready" (202) past `workers.max_transcode_wait` fails
/// with that reason instead of being rescheduled for ever (which kept `run --once`
/// from ever finishing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_transcoding_past_the_limit_fails_with_that_reason() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = SimConfig {
        transcoding_share: 1.0,
        transcode_time: Duration::from_secs(3600),
        ..screen_only(1, (100_000, 100_000))
    };
    let h = Harness::start(sim, "").await;
    let (status, logs) = h
        .run_once_with(&[
            ("GENESYS_ARCHIVER__DISCOVERY__FETCH_MODE", "recording"),
            ("GENESYS_ARCHIVER__WORKERS__MAX_TRANSCODE_WAIT", "2s"),
        ])
        .await;
    assert_eq!(status.code(), Some(3), "failed for good: exit 3\n{logs}");
    let (state, reason, _, _) = h.ledger().into_values().next().unwrap();
    assert_eq!(state, "failed");
    assert!(reason.unwrap().contains("workers.max_transcode_wait"));
    assert!(
        h.sim.stats().count("recording", "202") >= 2,
        "looked at again before failing"
    );
    assert!(h.objects().await.is_empty());
}

/// Pruned rows do not make duplicates: a backfill over a window whose rows were pruned
/// finds every object at its key and adopts it, downloading and uploading nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pruned_window_read_again_adopts_instead_of_uploading() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    use genesys_archiver::ledger::Ledger;
    let h = Harness::start(screen_only(6, (100_000, 300_000)), "").await;
    let (status, logs) = h.run_once().await;
    assert!(status.success(), "{logs}");
    let before = h.objects().await;
    let downloads = h.sim.stats().count("media", "200");
    assert_eq!(before.len(), 12, "six recordings and their sidecars");

    {
        let ledger = genesys_archiver::ledger::sqlite::SqliteLedger::open(&h.dir.join("ledger.sqlite")).unwrap();
        let pruned = ledger
            .prune(chrono::Utc::now() + chrono::Duration::days(1))
            .await
            .unwrap();
        assert_eq!((pruned.recordings, pruned.conversations), (6, 6));
    }
    assert!(h.ledger().is_empty(), "the ledger forgot them");

    let (from, to) = (chrono::Utc::now() - chrono::Duration::hours(2), chrono::Utc::now());
    let out = h
        .daemon(&[
            "backfill",
            &format!("--from={}", from.to_rfc3339()),
            &format!("--to={}", to.to_rfc3339()),
        ])
        .output()
        .await
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    assert_eq!(h.objects().await, before, "the bucket is unchanged");
    assert_eq!(
        h.sim.stats().count("media", "200"),
        downloads,
        "nothing downloaded again"
    );
    assert_eq!(logs.matches("\"adopted\":true").count(), 6, "{logs}");
    assert!(h.ledger().values().all(|(state, ..)| state == "archived"));
}
