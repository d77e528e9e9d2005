//! Several replicas of the daemon on one PostgreSQL ledger and one Redis budget, with
//! the real servers (throw-away instances on loopback): replicas are SIGKILLed at
//! random and restarted, and still every recording is archived exactly once, the ledger
//! agrees with the bucket, no multipart upload is left open, and the platform's budget
//! held across all of them.
//!
//! Bounded: 20 kills a few hundred milliseconds to two seconds apart, then at most three
//! minutes for the replicas to finish. The seed is printed; `CHAOS_SEED` replays it.

mod common;

use common::harness::{Harness, assert_bucket_holds_exactly, available, keys, screen_only};
use common::servers::{Postgres, Redis};
use deadpool_postgres::tokio_postgres::{self, NoTls};
use genesys_archiver::sim::SimConfig;
use std::time::Duration;
use tokio::process::Child;
use tokio::time::{Instant, sleep};

const REPLICAS: usize = 3;
const KILLS: usize = 20;
const RECORDINGS: usize = 300;

/// (archived, all) recordings in the PostgreSQL ledger.
async fn archived(url: &str) -> (i64, i64) {
    let Ok((client, connection)) = tokio_postgres::connect(url, NoTls).await else {
        return (0, 0);
    };
    tokio::spawn(connection);
    match client
        .query_one(
            "SELECT COUNT(*) FILTER (WHERE state = 'archived'), COUNT(*) FROM recordings",
            &[],
        )
        .await
    {
        Ok(row) => (row.get(0), row.get(1)),
        Err(_) => (0, 0),
    }
}

fn spawn(h: &Harness, env: &[(&str, String)], life: usize, replica: usize) -> Child {
    let log = std::fs::File::create(h.dir.join(format!("replica-{replica}-life-{life}.log"))).unwrap();
    h.daemon(&["run"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("replica starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_archive_every_recording_once_through_twenty_sigkills() {
    let mut rng = common::chaos_rng("replica chaos");
    let pg = Postgres::start("replicas");
    let redis = Redis::start();
    // A real budget (30 requests a second, in a compressed 2 s window) that the three
    // replicas must share; the configuration names it right.
    let org = SimConfig {
        token_limit: 60,
        window: Duration::from_secs(2),
        ..screen_only(RECORDINGS, (16 * 1024, 6 * 1024 * 1024))
    };
    let h = Harness::start_on_postgres(org, "single_put_max = \"0\"\n", &pg.url).await;
    let expected = available(&h);
    assert_eq!(expected.len(), RECORDINGS);
    let env = [
        ("GENESYS_ARCHIVER__WORKERS__COUNT", "4".to_owned()),
        ("GENESYS_ARCHIVER__LIMITS__SHARED", redis.url.clone()),
        ("GENESYS_ARCHIVER__LIMITS__REPLICAS", REPLICAS.to_string()),
        // A killed replica's claims and discovery turn pass to the others after 3 s.
        ("GENESYS_ARCHIVER__LEDGER__LEASE", "3s".to_owned()),
    ];

    let started = Instant::now();
    let mut lives = [0usize; REPLICAS];
    let mut replicas: Vec<Child> = (0..REPLICAS).map(|r| spawn(&h, &env, 0, r)).collect();
    let mut archived_at_kill = Vec::new();
    for _ in 0..KILLS {
        sleep(Duration::from_millis(rng.u64(300..2000))).await;
        let victim = rng.usize(..REPLICAS);
        replicas[victim].kill().await.unwrap();
        archived_at_kill.push(archived(&pg.url).await.0);
        lives[victim] += 1;
        replicas[victim] = spawn(&h, &env, lives[victim], victim);
    }
    // The survivors finish the work.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (done, all) = archived(&pg.url).await;
        if done == RECORDINGS as i64 && all == RECORDINGS as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replicas did not finish within 3 minutes: {done} of {all} archived (logs in {})",
            h.dir.display()
        );
        sleep(Duration::from_millis(500)).await;
    }
    for replica in &mut replicas {
        replica.kill().await.unwrap();
    }

    assert_bucket_holds_exactly(&h, &expected).await;
    let (client, connection) = tokio_postgres::connect(&pg.url, NoTls).await.unwrap();
    tokio::spawn(connection);
    for entry in &expected {
        let row = client
            .query_one(
                "SELECT state, object_key, sha256 FROM recordings WHERE recording_id = $1",
                &[&entry.recording_id],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "archived", "{}", entry.recording_id);
        assert_eq!(
            row.get::<_, Option<String>>(1).as_deref(),
            Some(keys(entry).media.as_str())
        );
        assert_eq!(
            row.get::<_, Option<String>>(2).as_deref(),
            Some(genesys_archiver::sim::media::expected_sha256(&entry.recording_id, entry.size).as_str())
        );
    }
    let stats = h.sim.stats();
    let (calls, refused) = (stats.api_calls(), stats.refusals());
    let share = refused as f64 / calls.max(1) as f64;
    println!(
        "replica chaos: {KILLS} SIGKILLs over {REPLICAS} replicas in {:.0} s (archived at each kill: \
         {archived_at_kill:?}); {RECORDINGS} recordings archived once, {} uploads open; platform saw \
         {calls} calls, {refused} 429s ({:.2}%)",
        started.elapsed().as_secs_f64(),
        h.open_uploads().await,
        share * 100.0
    );
    assert!(
        share <= 0.005,
        "429s were {:.2}% of calls (at most 0.5%)",
        share * 100.0
    );
    drop(redis);
}
