//! Several replicas of the daemon on one PostgreSQL ledger and one Redis budget, serving
//! two orgs, with the real servers (throw-away instances on loopback):
//! - replicas are SIGKILLed at random and restarted;
//! - PostgreSQL is stopped for 30 s, then Redis is stopped for 30 s, mid-run;
//!
//! and still every recording is archived exactly once, the ledger agrees with the
//! bucket, no multipart upload is left open, and the platform's budgets held across all
//! replicas.
//!
//! Bounded: 20 kills a few hundred milliseconds to two seconds apart, or two 30 s
//! outages, then at most three minutes for the replicas to finish. The chaos seed is
//! printed; `CHAOS_SEED` replays it.

mod common;

use common::fleet::Fleet;
use common::harness::{keys_under, screen_only};
use common::servers::{Postgres, Redis};
use deadpool_postgres::tokio_postgres::{self, NoTls};
use genesys_archiver::sim::SimConfig;
use genesys_archiver::sim::catalog::CatalogEntry;
use std::time::Duration;
use tokio::process::Child;
use tokio::time::{Instant, sleep};

const REPLICAS: usize = 3;

/// Two orgs of `each` screen recordings, 16 KiB to `largest` bytes, each with a real
/// budget (30 requests a second, in a compressed 2 s window) that the replicas must
/// share; the configuration names it right.
fn two_orgs(each: usize, largest: u64) -> Vec<SimConfig> {
    ["acme", "globex"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            SimConfig {
                token_limit: 60,
                window: Duration::from_secs(2),
                ..screen_only(each, (16 * 1024, largest))
            }
            .named(name, 70 + i as u64)
        })
        .collect()
}

/// The fleet on the PostgreSQL ledger at `pg`, with the environment every replica gets.
async fn fleet(orgs: Vec<SimConfig>, pg: &Postgres, redis: &Redis) -> (Fleet, Vec<(&'static str, String)>) {
    let fleet = Fleet::start(orgs, &format!("url = {:?}", pg.url), "single_put_max = \"0\"\n").await;
    let env = vec![
        ("GENESYS_ARCHIVER__WORKERS__COUNT", "4".to_owned()),
        ("GENESYS_ARCHIVER__LIMITS__SHARED", redis.url.clone()),
        ("GENESYS_ARCHIVER__LIMITS__REPLICAS", REPLICAS.to_string()),
        // A killed replica's claims and discovery turn pass to the others after 3 s.
        ("GENESYS_ARCHIVER__LEDGER__LEASE", "3s".to_owned()),
    ];
    (fleet, env)
}

fn spawn(fleet: &Fleet, env: &[(&str, String)], replica: usize, life: usize) -> Child {
    fleet.spawn(&["run"], env, &format!("replica-{replica}-life-{life}.log"))
}

/// (archived, all) recordings in the PostgreSQL ledger; (0, 0) while it cannot be read.
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

/// Waits (bounded) until the ledger holds at least `at_least` archived recordings (and,
/// for the end of the run, all `all` rows); returns how many it holds.
async fn until_archived(fleet: &Fleet, url: &str, at_least: usize, all: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let (done, rows) = archived(url).await;
        if done as usize >= at_least && (at_least < all || rows as usize == all) {
            return done as usize;
        }
        assert!(
            Instant::now() < deadline,
            "the replicas did not get to {at_least} archived within {within:?}: {done} of {rows} \
             (logs in {})",
            fleet.dir.display()
        );
        sleep(Duration::from_millis(250)).await;
    }
}

/// The bucket holds every recording once with the right bytes, the ledger agrees row by
/// row (archived, same key, same digest), and no multipart upload is open.
async fn assert_exactly_once(fleet: &Fleet, url: &str, expected: &[(String, CatalogEntry)]) {
    fleet.assert_bucket_holds_exactly(expected).await;
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    for (prefix, entry) in expected {
        let row = client
            .query_one(
                "SELECT state, object_key, sha256, org FROM recordings WHERE recording_id = $1",
                &[&entry.recording_id],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "archived", "{}", entry.recording_id);
        assert_eq!(
            row.get::<_, Option<String>>(1).as_deref(),
            Some(keys_under(prefix, entry).media.as_str())
        );
        assert_eq!(
            row.get::<_, Option<String>>(2).as_deref(),
            Some(genesys_archiver::sim::media::expected_sha256(&entry.recording_id, entry.size).as_str())
        );
        assert_eq!(format!("{}/", row.get::<_, String>(3)), *prefix);
    }
}

/// The platform saw at most 0.5% 429s; returns the line that says so.
fn assert_budget_held(fleet: &Fleet) -> String {
    let (calls, refused) = fleet.calls_and_refusals();
    let share = refused as f64 / calls.max(1) as f64;
    assert!(
        share <= 0.005,
        "429s were {:.2}% of calls (at most 0.5%)",
        share * 100.0
    );
    format!("platform saw {calls} calls, {refused} 429s ({:.2}%)", share * 100.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_archive_two_orgs_once_through_twenty_sigkills() {
    const KILLS: usize = 20;
    let mut rng = common::chaos_rng("replica chaos");
    let pg = Postgres::start("replicas");
    let redis = Redis::start();
    let (fleet, env) = fleet(two_orgs(150, 6 * 1024 * 1024), &pg, &redis).await;
    let expected = fleet.expected();
    assert_eq!(expected.len(), 300);

    let started = Instant::now();
    let mut lives = [0usize; REPLICAS];
    let mut replicas: Vec<Child> = (0..REPLICAS).map(|r| spawn(&fleet, &env, r, 0)).collect();
    let mut archived_at_kill = Vec::new();
    for _ in 0..KILLS {
        sleep(Duration::from_millis(rng.u64(300..2000))).await;
        let victim = rng.usize(..REPLICAS);
        replicas[victim].kill().await.unwrap();
        let (done, discovered) = archived(&pg.url).await;
        archived_at_kill.push(format!("{done}/{discovered}"));
        lives[victim] += 1;
        replicas[victim] = spawn(&fleet, &env, victim, lives[victim]);
    }
    // The survivors finish the work.
    until_archived(
        &fleet,
        &pg.url,
        expected.len(),
        expected.len(),
        Duration::from_secs(180),
    )
    .await;
    for replica in &mut replicas {
        replica.kill().await.unwrap();
    }

    assert_exactly_once(&fleet, &pg.url, &expected).await;
    println!(
        "replica chaos: {KILLS} SIGKILLs over {REPLICAS} replicas in {:.0} s (archived/discovered at each kill: \
         {}); {} recordings of 2 orgs archived once, no upload open; {}",
        started.elapsed().as_secs_f64(),
        archived_at_kill.join(" "),
        expected.len(),
        assert_budget_held(&fleet)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_30_s_and_redis_down_30_s_lose_nothing_and_the_run_finishes() {
    const OUTAGE: Duration = Duration::from_secs(30);
    let pg = Postgres::start("outages");
    let mut redis = Redis::start();
    let (fleet, env) = fleet(two_orgs(150, 2 * 1024 * 1024), &pg, &redis).await;
    let expected = fleet.expected();
    let all = expected.len();
    let started = Instant::now();
    let mut replicas: Vec<Child> = (0..REPLICAS).map(|r| spawn(&fleet, &env, r, 0)).collect();

    // PostgreSQL goes down (connections cut) while the replicas are at work.
    let before_pg = until_archived(&fleet, &pg.url, all / 10, all, Duration::from_secs(120)).await;
    pg.stop();
    sleep(OUTAGE).await;
    pg.resume();
    let (after_pg, _) = archived(&pg.url).await;
    // Work resumes: more is archived after the database is back.
    let resumed = until_archived(&fleet, &pg.url, after_pg as usize + 20, all, Duration::from_secs(120)).await;
    assert!(
        resumed < all,
        "the run ended before Redis could be stopped mid-run; give it more work"
    );

    // Then Redis goes down: the replicas pace on their local shares and go on.
    redis.stop();
    sleep(OUTAGE).await;
    let (during_redis, _) = archived(&pg.url).await;
    redis.resume();
    until_archived(&fleet, &pg.url, all, all, Duration::from_secs(180)).await;
    for replica in &mut replicas {
        assert!(
            replica.try_wait().unwrap().is_none(),
            "a replica exited during the outages (logs in {})",
            fleet.dir.display()
        );
        replica.kill().await.unwrap();
    }

    assert_exactly_once(&fleet, &pg.url, &expected).await;
    println!(
        "outages: archived {before_pg} when PostgreSQL stopped, {after_pg} when it was back 30 s \
         later; {resumed} when Redis stopped, {during_redis} when it was back 30 s later; {all} \
         archived once in {:.0} s, no upload open; {}",
        started.elapsed().as_secs_f64(),
        assert_budget_held(&fleet)
    );
    assert!(
        during_redis as usize > resumed,
        "nothing was archived while Redis was down (the local shares should carry on)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_listed_by_a_replica_that_dies_go_to_another_after_the_lease() {
    let pg = Postgres::start("listed");
    let redis = Redis::start();
    let (fleet, env) = fleet(two_orgs(20, 6 * 1024 * 1024), &pg, &redis).await;
    let all = fleet.expected().len();
    let lister = spawn(
        &fleet,
        &[&env[..], &[("GENESYS_ARCHIVER__WORKERS__COUNT", "1".to_owned())]].concat(),
        0,
        0,
    );
    // Killed as soon as it has listed a few recordings (their URLs in its memory
    // only), more than its one worker has taken.
    let deadline = Instant::now() + Duration::from_secs(60);
    while archived(&pg.url).await.1 < 6 {
        assert!(Instant::now() < deadline, "nothing listed within 60 s");
        sleep(Duration::from_millis(20)).await;
    }
    let mut lister = lister;
    lister.kill().await.unwrap();
    // Those it listed are held from the others for the lease (3 s), not the URLs' 90 s.
    let (client, connection) = tokio_postgres::connect(&pg.url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT COUNT(*), MAX(next_attempt_at - discovered_at) FROM recordings WHERE state = 'discovered'",
            &[],
        )
        .await
        .unwrap();
    let (waiting, held_ms): (i64, Option<i64>) = (row.get(0), row.get(1));
    assert!(waiting > 0, "the lister archived everything before it was killed");
    assert!(held_ms.unwrap() <= 3_000, "held for {held_ms:?} ms");
    let mut other = spawn(&fleet, &env, 1, 0);
    until_archived(&fleet, &pg.url, all, all, Duration::from_secs(120)).await;
    other.kill().await.unwrap();
    assert_exactly_once(&fleet, &pg.url, &fleet.expected()).await;
}
