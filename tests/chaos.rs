//! Crash-restart chaos: 300 recordings archived while the daemon is killed with SIGKILL
//! at random moments 20 times and restarted each time. At the end every recording is in
//! the bucket exactly once with the simulator's bytes, the ledger agrees with the
//! bucket, and no multipart upload is left open.
//!
//! Bounded: each life of the daemon lasts at most a few seconds before its kill, and
//! the final run at most two minutes. The seed is printed; `CHAOS_SEED` replays it.

mod common;

use common::servers::Server;

use common::harness::{Harness, assert_bucket_holds_exactly, available, keys, screen_only};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::{Instant, sleep};

const KILLS: usize = 20;
const RECORDINGS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_recordings_survive_twenty_sigkills() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let mut rng = common::chaos_rng("chaos");
    // Mostly small recordings, some above the 5 MiB part size (multipart, with parts in
    // flight when the kill comes); 8 workers so that many uploads are open at once.
    let h = Harness::start(
        screen_only(RECORDINGS, (16 * 1024, 6 * 1024 * 1024)),
        "single_put_max = \"0\"\n",
    )
    .await;
    let expected = available(&h);
    assert_eq!(expected.len(), RECORDINGS);
    let env = [("GENESYS_ARCHIVER__WORKERS__COUNT", "8")];

    let started = Instant::now();
    let mut kills = 0;
    let mut in_bucket_at_kill = Vec::new();
    while kills < KILLS {
        let log = std::fs::File::create(h.dir.join(format!("life-{kills}.log"))).unwrap();
        let mut daemon = h
            .daemon(&["run", "--once"])
            .envs(env)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        // A random moment: right at start-up (recovery, token), or mid-transfer. A life
        // also ends once it has archived a few objects, so that a fast machine cannot
        // finish all 300 before the 20th kill: 20 lives of at most ~12 objects leave work.
        let deadline = Instant::now() + Duration::from_millis(rng.u64(100..1000));
        let before = archived_objects(&h).await;
        let budget = rng.usize(1..=RECORDINGS / (KILLS * 2));
        let mut finished = false;
        loop {
            sleep(Duration::from_millis(40)).await;
            if daemon.try_wait().unwrap().is_some() {
                finished = true;
                break;
            }
            if Instant::now() >= deadline || archived_objects(&h).await >= before + budget {
                break;
            }
        }
        if finished {
            // It finished everything before this kill: the remaining kills have nothing to hit.
            break;
        }
        daemon.kill().await.unwrap();
        kills += 1;
        in_bucket_at_kill.push(archived_objects(&h).await);
    }
    let (status, logs) = h.run_once().await;
    assert!(status.success(), "{logs}");

    assert_bucket_holds_exactly(&h, &expected).await;
    let ledger = h.ledger();
    for entry in &expected {
        let (state, _, key, sha) = &ledger[&entry.recording_id];
        assert_eq!(state, "archived", "{}", entry.recording_id);
        assert_eq!(
            key.as_deref(),
            Some(keys(entry).media.as_str()),
            "the ledger names the object"
        );
        assert_eq!(
            sha.as_deref(),
            Some(genesys_sim::media::expected_sha256(&entry.recording_id, entry.size).as_str())
        );
    }
    let objects: BTreeSet<String> = h.objects().await.into_keys().collect();
    let media = objects.iter().filter(|k| k.ends_with(".webm")).count();
    println!(
        "chaos: {kills} SIGKILLs in {:.0} s (media objects in the bucket at each kill: {in_bucket_at_kill:?}); \
         then {RECORDINGS} recordings archived, {media} media objects, 0 duplicates, {} uploads open",
        started.elapsed().as_secs_f64(),
        h.open_uploads().await
    );
    assert!(
        kills >= KILLS,
        "the daemon was killed {KILLS} times (only {kills}: it finished too fast)"
    );
    assert_eq!(media, RECORDINGS, "no duplicate and no stray object");
}

async fn archived_objects(h: &Harness) -> usize {
    h.objects().await.keys().filter(|k| k.ends_with(".webm")).count()
}
