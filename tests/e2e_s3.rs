//! End-to-end, black-box: the simulator, a real S3 server (moto) and the daemon's
//! `run --once`. Every assertion reads the bucket or the ledger.

mod common;

use common::servers::Server;

use common::harness::{
    Harness, assert_bucket_holds_exactly, available, fast_org, keys, one_big_recording, screen_only,
};
use genesys_sim::SimConfig;
use genesys_sim::media::expected_sha256;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_screen_recording_lands_once_and_a_second_run_uploads_nothing() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = SimConfig {
        no_recording_share: 0.2,
        screen_per_conversation: (1, 2),
        audio_share: 0.6,
        archived_share: 0.1,
        deleted_share: 0.1,
        transcoding_share: 0.4,
        stale_url_share: 0.3,
        media_size: (100_000, 7 * MIB),
        ..fast_org(30)
    };
    let h = Harness::start(sim, "").await;
    let (status, logs) = h.run_once().await;
    assert!(status.success(), "{status:?}\n{logs}");

    let expected = available(&h);
    assert!(expected.len() >= 10, "a meaningful sample");
    assert_bucket_holds_exactly(&h, &expected).await;

    let ledger = h.ledger();
    for entry in h.sim.catalog() {
        let (state, reason, key, sha) = ledger
            .get(&entry.recording_id)
            .cloned()
            .expect("every recording is in the ledger");
        match (entry.media.as_str(), entry.file_state.as_str()) {
            ("screen", "AVAILABLE") => {
                assert_eq!(state, "archived");
                assert_eq!(key.unwrap(), keys(&entry).media);
                assert_eq!(sha.unwrap(), expected_sha256(&entry.recording_id, entry.size));
            }
            ("screen", "DELETED") => assert_eq!(
                (state.as_str(), reason.as_deref()),
                ("parked", Some("deleted in Genesys"))
            ),
            ("screen", "ARCHIVED") => {
                assert_eq!(state, "parked");
                assert!(reason.unwrap().starts_with("archived in Genesys"));
            }
            (_, _) => {
                assert_eq!(state, "parked");
                assert!(
                    reason.unwrap().starts_with("not a screen recording"),
                    "audio is never archived"
                );
            }
        }
    }
    let stats = h.sim.stats();
    // The listing let the platform finish transcoding (maxWaitMs): the transcoding
    // ones were archived with the URL it handed out, and the only recording calls were
    // for expired URLs (each a 403 first).
    assert!(
        h.sim
            .catalog()
            .iter()
            .any(|e| e.needs_transcode && e.file_state == "AVAILABLE")
    );
    assert_eq!(stats.count("conversation_recordings", "202"), 0, "{stats:?}");
    assert!(
        stats.calls("recording") <= stats.count("media", "403"),
        "recording calls only after expired URLs, none for transcoding: {stats:?}"
    );
    assert!(
        stats.count("media", "403") > 0,
        "some download URLs had expired and were refreshed: {stats:?}"
    );
    assert!(
        h.sim.catalog().iter().any(|e| e.file_state == "DELETED") && h.sim.catalog().iter().any(|e| e.media == "audio")
    );

    // Again: discovery re-reads its overlap, the ledger drops what it knows, nothing is uploaded.
    let downloads = stats.count("media", "200");
    let listing_calls = stats.calls("conversation_recordings");
    let before = h.objects().await;
    let (status, logs) = h.run_once().await;
    assert!(status.success(), "{logs}");
    assert_eq!(
        h.sim.stats().count("media", "200"),
        downloads,
        "no recording downloaded twice"
    );
    assert_eq!(
        h.sim.stats().calls("conversation_recordings"),
        listing_calls,
        "known conversations in the overlap are not listed again"
    );
    assert_eq!(h.objects().await, before);
}

/// An object that is not ours at a recording's sidecar key (Genesys's own export
/// writes `_metadata.json` files in the same layout) is never overwritten: the
/// recording is parked with why, and the object keeps its bytes. Before, the sidecar
/// went up with a plain PUT over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_object_at_a_sidecar_key_is_never_overwritten() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let h = Harness::start(screen_only(2, (64 * 1024, 128 * 1024)), "").await;
    let entries = available(&h);
    let (victim, other) = (&entries[0], &entries[1]);
    let sidecar = keys(victim).sidecar;
    h.s3.put_object()
        .bucket(&h.bucket)
        .key(&sidecar)
        .body(b"{\"exported\": \"by someone else\"}".to_vec().into())
        .send()
        .await
        .unwrap();
    let (status, logs) = h.run_once().await;
    assert!(status.success(), "{logs}");
    assert_eq!(h.get(&sidecar).await, b"{\"exported\": \"by someone else\"}".to_vec());
    let ledger = h.ledger();
    let (state, reason, ..) = &ledger[&victim.recording_id];
    assert_eq!(state, "parked");
    assert!(reason.as_deref().unwrap().contains("never overwritten"), "{reason:?}");
    assert_eq!(ledger[&other.recording_id].0, "archived");
    // Our own sidecar, written again (a retry), is replaced as ours.
    let mine = keys(other).sidecar;
    assert!(String::from_utf8_lossy(&h.get(&mine).await).contains(&other.recording_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_three_parts_long_streams_as_multipart() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = one_big_recording();
    let h = Harness::start(sim, MULTIPART_ONLY).await;
    let (status, logs) = h.run_once().await;
    assert!(status.success(), "{logs}");
    let expected = available(&h);
    assert_bucket_holds_exactly(&h, &expected).await;
    // (moto sometimes answers CompleteMultipartUpload with a body the SDK cannot read;
    // the sink confirms the object instead, which is not a second attempt.)
    assert!(!logs.contains("will retry"), "archived on the first attempt:\n{logs}");
    let etag = h.etag(&keys(&expected[0]).media).await;
    assert!(
        etag.trim_matches('"').ends_with("-3"),
        "a 3-part multipart object: {etag}"
    );
}

/// Recordings above one part go multipart (the streamed single PutObject is off).
const MULTIPART_ONLY: &str = "single_put_max = \"0\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_under_single_put_max_streams_as_one_put_object() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = one_big_recording();
    // The streamed PutObject is the path without additional checksums (a store that
    // keeps none); with them, the parts carry theirs in a multipart upload.
    let h = Harness::start(sim, "checksum_algorithm = \"none\"\n").await;
    let (status, logs) = h.run_once().await;
    assert!(status.success(), "{logs}");
    let expected = available(&h);
    assert_bucket_holds_exactly(&h, &expected).await;
    assert_eq!(h.open_uploads().await, 0);
    let etag = h.etag(&keys(&expected[0]).media).await;
    assert!(!etag.contains('-'), "one PutObject, not multipart: {etag}");
}

/// The download fails mid-transfer: the upload is aborted, nothing is left in the
/// bucket, and the recording ends `failed` (never `archived`). `extra` picks the path:
/// multipart, or the download streamed as one PutObject.
async fn mid_transfer_failure(sim: SimConfig, extra: &str, reason_fragment: &str) {
    let h = Harness::start(sim, extra).await;
    let (status, logs) = h
        .run_once_with(&[("GENESYS_ARCHIVER__WORKERS__MAX_ATTEMPTS", "2")])
        .await;
    assert_eq!(status.code(), Some(3), "failed for good: exit 3\n{logs}");
    assert_eq!(h.open_uploads().await, 0, "the multipart upload was aborted");
    assert!(h.objects().await.is_empty(), "no object, complete or partial");
    let ledger = h.ledger();
    let (state, reason, _, _) = ledger.values().next().unwrap();
    assert_eq!(state, "failed");
    assert!(reason.as_deref().unwrap().contains(reason_fragment), "{reason:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_download_mid_multipart_aborts_the_upload() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    mid_transfer_failure(
        SimConfig {
            media_drop_share: 1.0,
            ..one_big_recording()
        },
        MULTIPART_ONLY,
        "download",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_download_mid_multipart_aborts_the_upload() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    mid_transfer_failure(
        SimConfig {
            media_truncate_share: 1.0,
            ..one_big_recording()
        },
        MULTIPART_ONLY,
        "announced",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_download_mid_streamed_put_stores_nothing() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    mid_transfer_failure(
        SimConfig {
            media_drop_share: 1.0,
            ..one_big_recording()
        },
        "",
        "download",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_download_without_length_stores_nothing_even_without_multipart_only() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    mid_transfer_failure(
        SimConfig {
            media_truncate_share: 1.0,
            ..one_big_recording()
        },
        "",
        "announced",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_mid_run_finishes_on_restart_with_each_recording_once() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = screen_only(24, (3 * MIB, 12 * MIB));
    let h = Harness::start(sim, "").await;
    // Its logs go to a file: a pipe nobody reads would block the daemon once full.
    let log = std::fs::File::create(h.dir.join("first-run.log")).unwrap();
    let mut first = h
        .daemon(&["run", "--once"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    // Kill (SIGKILL, not a request) once a few recordings are in: others are mid-upload.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while h.objects().await.keys().filter(|k| k.ends_with(".webm")).count() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "the first run made no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().await.unwrap();
    let objects_at_kill = h.objects().await.keys().filter(|k| k.ends_with(".webm")).count();
    let after_kill = h.ledger().values().filter(|v| v.0 == "archived").count();
    assert!(after_kill < 24, "killed before the end ({after_kill} archived)");

    let (status, logs) = h.run_once().await;
    assert!(status.success(), "{logs}");
    println!(
        "killed with {objects_at_kill} media objects in the bucket and {after_kill} archived in the ledger; restart aborted {} open multipart uploads, adopted {} finished ones",
        logs.matches("Aborted a multipart upload").count(),
        logs.matches("\"adopted\":true").count()
    );
    let expected = available(&h);
    assert_eq!(expected.len(), 24);
    assert_bucket_holds_exactly(&h, &expected).await;
    assert!(h.ledger().values().all(|v| v.0 == "archived"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_archives_exactly_the_window_and_leaves_the_watermark_alone() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let h = Harness::start(screen_only(20, (50_000, 200_000)), "").await;
    let catalog = h.sim.catalog();
    // The middle of the org's history: conversations 5 to 14 by start time.
    let (from, to) = (catalog[5].start_time, catalog[15].start_time);
    let inside: Vec<_> = catalog
        .iter()
        .filter(|e| e.start_time >= from && e.start_time < to)
        .cloned()
        .collect();
    assert_eq!(inside.len(), 10);
    let mut cmd = h.daemon(&["backfill", "--from", &from.to_rfc3339(), "--to", &to.to_rfc3339()]);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .unwrap()
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    assert_bucket_holds_exactly(&h, &inside).await;
    let conn = rusqlite::Connection::open(h.dir.join("ledger.sqlite")).unwrap();
    let watermark: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'watermark'", [], |r| r.get(0))
        .ok();
    assert_eq!(watermark, None, "a backfill does not move the daemon's watermark");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_connect_reaches_genesys_and_the_bucket() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let h = Harness::start(fast_org(1), "").await;
    let out = h.daemon(&["check-config", "--connect"]).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("a token was obtained") && stdout.contains("answered"),
        "{stdout}"
    );
    // [telemetry] decides the log lines (on stderr): JSON at info, or nothing at warn.
    let mut cmd = h.daemon(&["check-config", "--connect"]);
    cmd.env("GENESYS_ARCHIVER__TELEMETRY__LOG_FORMAT", "json");
    let logs = String::from_utf8_lossy(&cmd.output().await.unwrap().stderr).into_owned();
    let line = logs
        .lines()
        .find(|l| l.contains("Access token obtained"))
        .expect("an info line");
    let json: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(json["level"], "INFO");
    let mut cmd = h.daemon(&["check-config", "--connect"]);
    cmd.env("GENESYS_ARCHIVER__TELEMETRY__LOG_LEVEL", "warn")
        .env_remove("RUST_LOG");
    let out = cmd.output().await.unwrap();
    let logs = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(logs.contains("readable by every user"), "warnings still show: {logs}");
    assert!(
        !logs.contains("Access token obtained"),
        "log_level = warn hides info lines: {logs}"
    );
    // A bucket that does not exist: a clear one-line failure.
    let mut cmd = h.daemon(&["check-config", "--connect"]);
    cmd.env("GENESYS_ARCHIVER__S3__BUCKET", "no-such-bucket");
    let out = cmd.output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("\"message\":\"Command failed.\"")
                && l.contains("\"error\":\"sink s3://no-such-bucket/")),
        "{stderr}"
    );
    // The S3 answer as code and status, not the SDK's dump of the raw response.
    assert!(stderr.contains("HeadBucket: NotFound (HTTP 404)"), "{stderr}");
    assert!(!stderr.contains("raw: Response"), "{stderr}");
}

/// `{orgId}` in the prefix or the key template is the org's id, read once from
/// `GET /api/v2/organizations/me` before any key is made (Genesys's own export layout
/// starts with it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_can_start_with_the_genesys_org_id() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let h = Harness::start(screen_only(3, (100_000, 100_000)), "").await;
    let org_id = h.sim.org_id().to_owned();
    let (status, logs) = h.run_once_with(&[("GENESYS_ARCHIVER__S3__PREFIX", "{orgId}/")]).await;
    assert!(status.success(), "{logs}");
    let objects = h.objects().await;
    assert_eq!(objects.len(), 6, "{objects:?}");
    assert!(
        objects.keys().all(|k| k.starts_with(&format!("{org_id}/year="))),
        "{objects:?}"
    );
    assert_eq!(h.sim.stats().calls("organization"), 1, "read once");
    let flat = h
        .run_once_with(&[(
            "GENESYS_ARCHIVER__SINK__KEY_TEMPLATE",
            "{prefix}{orgId}/flat/{recordingId}.{ext}",
        )])
        .await;
    assert!(flat.0.success(), "{}", flat.1);
    // Already archived under the first layout: nothing new is written.
    assert_eq!(h.objects().await.len(), 6);
}
