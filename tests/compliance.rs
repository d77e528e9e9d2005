//! An archive a regulator accepts (issue 22), end to end on moto (with the checks AWS S3
//! makes: `tests/common/moto_aws.py`): every object written with a checksum the store
//! verifies and keeps, locked write-once in an Object Lock bucket, in a bucket of the
//! expected owner only.

mod common;

use common::servers::Server;

use aws_sdk_s3::types::{ChecksumMode, ObjectLockMode};
use common::harness::{Harness, screen_only};
use genesys_sim::media::expected_sha256;
use sha2::{Digest, Sha256};

const MIB: u64 = 1024 * 1024;

/// `[s3]` keys for a bucket whose objects are locked for 400 days.
const LOCKED: &str =
    "object_lock_mode = \"COMPLIANCE\"\nobject_lock_retain = \"400d\"\nexpected_bucket_owner = \"123456789012\"\n";

/// The object at `key` in `bucket`, whole.
async fn get(h: &Harness, bucket: &str, key: &str) -> bytes::Bytes {
    let object = h.s3.get_object().bucket(bucket).key(key).send().await.unwrap();
    object.body.collect().await.unwrap().into_bytes()
}

/// The retention hand-off: the source deleted 30 days after its archive.
const HANDOFF: &str = "[retention]\ngenesys_delete_after = \"30d\"\n";

/// `list --state handed-off --json`: recording id to its `handoff` (new date, note).
async fn handed_off(h: &Harness) -> std::collections::BTreeMap<String, serde_json::Value> {
    let out = h
        .daemon(&["list", "--state", "handed-off", "--json", "--limit", "1000"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.into_iter()
        .map(|r| (r["recording_id"].as_str().unwrap().to_owned(), r["handoff"].clone()))
        .collect()
}

/// Recording id to the retention updates the simulator applied to it.
fn updates(h: &Harness) -> std::collections::BTreeMap<String, usize> {
    h.sim
        .catalog()
        .into_iter()
        .map(|e| (e.recording_id, e.retention_updates.len()))
        .collect()
}

/// A bucket with versioning and Object Lock on, which the daemon is pointed at.
async fn locked_bucket(h: &Harness) -> &'static str {
    let bucket = "archive-locked";
    h.s3.create_bucket()
        .bucket(bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    use_bucket(h, bucket);
    bucket
}

/// Points the daemon's configuration at `bucket` instead of the harness's.
fn use_bucket(h: &Harness, bucket: &str) {
    let text = std::fs::read_to_string(&h.config).unwrap();
    let text = text.replace(&format!("bucket = \"{}\"", h.bucket), &format!("bucket = \"{bucket}\""));
    std::fs::write(&h.config, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_object_is_locked_and_checksummed_and_a_locked_version_cannot_be_deleted() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    // Sizes from one part to three: single PutObjects and multipart uploads.
    let h = Harness::start(screen_only(6, (200_000, 12 * MIB)), &format!("{LOCKED}{HANDOFF}")).await;
    let bucket = locked_bucket(&h).await;
    let (status, logs) = h.run_once().await;
    assert!(status.success(), "{logs}");

    let catalog = h.sim.catalog();
    let listed = h.s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    let keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    assert_eq!(
        keys.len(),
        2 * catalog.len(),
        "a media object and a sidecar per recording: {keys:?}"
    );
    let mut multipart = 0;
    for key in &keys {
        let head =
            h.s3.head_object()
                .bucket(bucket)
                .key(key)
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
                .unwrap();
        assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance), "{key}");
        let until = head
            .object_lock_retain_until_date()
            .expect("a retain-until date")
            .secs();
        let checksum = head.checksum_sha256().expect("the store keeps the checksum");
        if key.ends_with(".webm") {
            let entry = catalog.iter().find(|e| key.contains(&e.recording_id)).unwrap();
            // Until the recording's start plus 400 days (to the second).
            let want = (entry.start_time + chrono::Duration::days(400)).timestamp();
            assert!((until - want).abs() <= 1, "{key}: retain until {until}, want {want}");
            let bytes = get(&h, bucket, key).await;
            assert_eq!(
                genesys_archiver::hex::hex(&Sha256::digest(&bytes)),
                expected_sha256(&entry.recording_id, entry.size)
            );
            if entry.size > 5 * MIB {
                multipart += 1;
            } else {
                // One PutObject: S3's checksum is the body's SHA-256.
                let ours = aws_smithy_types::base64::encode(Sha256::digest(&bytes));
                assert_eq!(checksum, ours, "{key}");
            }
        } else {
            // The sidecar names the store's checksum of every file it describes.
            let sidecar = get(&h, bucket, key).await;
            let doc: serde_json::Value = serde_json::from_slice(&sidecar).unwrap();
            assert!(
                doc["archive"]["parts"][0]["s3Checksum"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("SHA256:")),
                "{doc}"
            );
        }
    }
    println!(
        "object lock: {} objects COMPLIANCE-locked with a SHA-256 the store kept ({multipart} multipart)",
        keys.len()
    );

    // Each copy proven (checksums and locks read back): one retention update per
    // recording, to its archive time + 30 days, recorded in the ledger.
    let recorded = handed_off(&h).await;
    for entry in &catalog {
        assert_eq!(entry.retention_updates.len(), 1, "{}", entry.recording_id);
        let handoff = &recorded[&entry.recording_id];
        let new: chrono::DateTime<chrono::Utc> = handoff["new"].as_str().unwrap().parse().unwrap();
        assert_eq!(new, entry.retention_updates[0]);
        let from_now = new - chrono::Utc::now();
        assert!(
            from_now > chrono::Duration::days(30) - chrono::Duration::minutes(5)
                && from_now <= chrono::Duration::days(30),
            "{handoff}"
        );
    }
    let calls = h.sim.stats().calls("recording_retention");
    println!(
        "hand-off: {calls} retention updates for {} archived recordings",
        catalog.len()
    );

    // A locked version cannot be deleted, not even by its writer.
    let versions = h.s3.list_object_versions().bucket(bucket).send().await.unwrap();
    let version = versions.versions().first().expect("versions");
    let refused =
        h.s3.delete_object()
            .bucket(bucket)
            .key(version.key().unwrap())
            .version_id(version.version_id().unwrap())
            .send()
            .await;
    assert!(refused.is_err(), "a locked version was deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_without_object_lock_stops_the_start_naming_the_bucket() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let h = Harness::start(screen_only(3, (10_000, 20_000)), LOCKED).await;
    let (status, logs) = h.run_once().await;
    assert_eq!(status.code(), Some(2), "{logs}");
    assert!(
        logs.contains("s3.object_lock_mode: bucket `archive-e2e` does not have"),
        "{logs}"
    );
    assert!(h.objects().await.is_empty());
    assert_eq!(h.sim.stats().calls("media"), 0, "nothing downloaded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_of_another_owner_is_refused_before_any_recording_is_claimed() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let h = Harness::start(
        screen_only(3, (10_000, 20_000)),
        "expected_bucket_owner = \"111111111111\"\n",
    )
    .await;
    let (status, logs) = h.run_once().await;
    assert_eq!(status.code(), Some(2), "{logs}");
    assert!(
        logs.contains("s3.expected_bucket_owner: bucket `archive-e2e` is not owned by account 111111111111"),
        "{logs}"
    );
    assert!(h.objects().await.is_empty());
    assert_eq!(h.sim.stats().calls("media"), 0, "nothing downloaded");
    // Nothing claimed: the ledger holds no recording in any state.
    assert!(h.ledger().is_empty(), "{:?}", h.ledger());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_corrupted_on_its_way_is_refused_by_the_store_and_sent_again() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let h = Harness::start_proxied(screen_only(4, (200_000, 300_000)), "").await;
    let proxy = h.proxy.as_ref().unwrap();
    proxy.corrupt_puts(3);
    let (status, logs) = h.run_once().await;
    assert!(status.success(), "{logs}");
    let corrupted = proxy.corrupted.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(corrupted, 3, "three bodies had a byte flipped on their way");
    assert!(logs.matches("BadDigest").count() >= 3, "{logs}");
    // Stored only as sent: every media object has the recording's own bytes.
    for entry in h.sim.catalog() {
        let key = common::harness::keys(&entry).media;
        assert_eq!(
            h.sha256(&key).await,
            expected_sha256(&entry.recording_id, entry.size),
            "{key}"
        );
    }
    println!(
        "corruption: {corrupted} bodies corrupted on their way, each refused by the store (BadDigest) and sent again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hand_off_frees_only_proven_copies_once_even_across_a_crash_and_a_dry_run_changes_nothing() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = genesys_sim::SimConfig {
        deleted_share: 0.25,
        ..screen_only(12, (10_000, 50_000))
    };
    let h = Harness::start(sim, "").await;
    // Archived first without a hand-off; one copy then disappears from the bucket.
    let (status, logs) = h.run_once().await;
    assert!(status.success(), "{logs}");
    let ledger = h.ledger();
    let archived: Vec<String> = ledger
        .iter()
        .filter(|(_, row)| row.0 == "archived")
        .map(|(id, _)| id.clone())
        .collect();
    let parked = ledger.values().filter(|row| row.0 == "parked").count();
    assert!(
        archived.len() >= 3 && parked >= 1,
        "archived {archived:?}, parked {parked}"
    );
    let lost = &archived[0];
    let lost_key = ledger[lost].2.clone().unwrap();
    h.s3.delete_object()
        .bucket(&h.bucket)
        .key(&lost_key)
        .send()
        .await
        .unwrap();

    // Dry run: what would change is said, nothing changes, nothing is recorded.
    let config = std::fs::read_to_string(&h.config).unwrap();
    std::fs::write(&h.config, format!("{config}{HANDOFF}dry_run = true\n")).unwrap();
    let (status, logs) = h.run_once().await;
    assert!(status.success(), "{logs}");
    assert_eq!(logs.matches("would be set").count(), archived.len() - 1, "{logs}");
    assert!(updates(&h).values().all(|n| *n == 0), "a dry run changed nothing");
    assert!(handed_off(&h).await.values().all(|h| h["new"].is_null()), "nothing set");

    // The real thing, while the platform refuses retention updates: the daemon is
    // killed (SIGKILL) between verifying the copies and updating the sources.
    std::fs::write(&h.config, format!("{config}{HANDOFF}")).unwrap();
    h.sim.set_retention_outage(true);
    let mut child = h.daemon(&["run", "--once"]).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while h.sim.stats().count("recording_retention", "503") == 0 {
        assert!(std::time::Instant::now() < deadline, "no retention update tried");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    child.start_kill().unwrap();
    let _ = child.wait().await;
    assert!(
        updates(&h).values().all(|n| *n == 0),
        "nothing applied before the crash"
    );
    h.sim.set_retention_outage(false);

    // After the restart: exactly one update per proven copy, none for the lost one or
    // for recordings never archived; a further run changes nothing.
    for _ in 0..2 {
        let (status, logs) = h.run_once().await;
        assert!(status.success(), "{logs}");
    }
    let applied = updates(&h);
    for (id, n) in &applied {
        let want = usize::from(archived.contains(id) && id != lost);
        assert_eq!(*n, want, "{id}: {n} retention updates");
    }
    let recorded = handed_off(&h).await;
    assert!(
        recorded[lost]["note"].as_str().unwrap().contains("is not in the sink"),
        "{:?}",
        recorded[lost]
    );
    assert!(recorded[lost]["new"].is_null());
    let set = recorded.values().filter(|h| !h["new"].is_null()).count();
    assert_eq!(set, archived.len() - 1);
    // reconcile counts them (its JSON per org).
    let (from, to) = (
        (chrono::Utc::now() - chrono::Duration::hours(3)).to_rfc3339(),
        chrono::Utc::now().to_rfc3339(),
    );
    let out = h
        .daemon(&["reconcile", "--from", &from, "--to", &to, "--json", "--offline"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("\"handed_off\": {set}")) && text.contains("\"handoff_left\": 1"),
        "{text}"
    );
    println!(
        "hand-off: {set} sources freed once each ({} updates applied) after a SIGKILL during refused updates; \
         1 lost copy and {parked} parked recordings untouched; the dry run changed nothing",
        applied.values().sum::<usize>()
    );
}

/// Another's locked object at a recording's key is never overwritten nor deleted: the
/// recording is parked with the lock in its reason, the object keeps its bytes, and
/// its source is never handed off. `check-config --connect` reports what it checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_object_that_is_not_ours_is_parked_and_check_config_reports_the_bucket() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let h = Harness::start(screen_only(3, (10_000, 20_000)), &format!("{LOCKED}{HANDOFF}")).await;
    let bucket = locked_bucket(&h).await;
    let out = h.daemon(&["check-config", "--connect"]).output().await.unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        said.contains("checksum SHA256; owned by account 123456789012 (checked); objects locked COMPLIANCE"),
        "{said}"
    );

    let catalog = h.sim.catalog();
    let taken = &catalog[0];
    let key = common::harness::keys(taken).media;
    let foreign = b"someone else's export, locked".to_vec();
    h.s3.put_object()
        .bucket(bucket)
        .key(&key)
        .body(foreign.clone().into())
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
        .checksum_sha256(aws_smithy_types::base64::encode(Sha256::digest(&foreign)))
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(
            (chrono::Utc::now() + chrono::Duration::days(10)).timestamp(),
        ))
        .send()
        .await
        .unwrap();
    let (status, logs) = h.run_once().await;
    assert!(status.success(), "{logs}");
    let (state, reason, _, _) = h.ledger()[&taken.recording_id].clone();
    assert_eq!(state, "parked");
    let reason = reason.unwrap();
    assert!(
        reason.contains("locked in COMPLIANCE mode until") && reason.contains("never overwritten"),
        "{reason}"
    );
    assert_eq!(get(&h, bucket, &key).await.to_vec(), foreign, "its bytes kept");
    let updates = updates(&h);
    assert_eq!(updates[&taken.recording_id], 0, "a parked recording's source is kept");
    assert!(catalog[1..].iter().all(|e| updates[&e.recording_id] == 1));
}
