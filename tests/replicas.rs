//! Several replicas of the daemon on one PostgreSQL ledger and one Redis budget, serving
//! two orgs, with the real servers (throw-away instances on loopback):
//! - replicas are SIGKILLed at random and restarted;
//! - PostgreSQL is stopped for 30 s, then Redis is stopped for 30 s, mid-run (and a
//!   replica's readiness says so, and is back after each);
//!
//! and still every recording is archived exactly once, the ledger agrees with the
//! bucket, no multipart upload is left open, and the platform's budgets held across all
//! replicas.
//!
//! Bounded: 20 kills a few hundred milliseconds to two seconds apart, or two 30 s
//! outages, then at most three minutes for the replicas to finish. The chaos seed is
//! printed; `CHAOS_SEED` replays it.
//!
//! Over 500 lines: one suite of several replicas on PostgreSQL and Redis, sharing one
//! fleet harness.

mod common;

use common::servers::Server;

use common::fleet::Fleet;
use common::harness::{keys_under, screen_only};
use common::servers::{Postgres, Redis};
use deadpool_postgres::tokio_postgres::{self, NoTls};
use genesys_sim::SimConfig;
use genesys_sim::catalog::CatalogEntry;
use std::time::Duration;
use tokio::process::Child;
use tokio::time::{Instant, sleep};

const REPLICAS: usize = 3;

/// Two orgs of `each` screen recordings, 16 KiB to `largest` bytes, each with a real
/// budget (`per_2s` requests in a compressed 2 s window) that the replicas must share;
/// the configuration names it right.
fn two_orgs(each: usize, largest: u64, per_2s: u32) -> Vec<SimConfig> {
    ["acme", "globex"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            SimConfig {
                token_limit: per_2s,
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
            Some(genesys_sim::media::expected_sha256(&entry.recording_id, entry.size).as_str())
        );
        assert_eq!(format!("{}/", row.get::<_, String>(3)), *prefix);
    }
}

/// Waits (bounded: three probe rounds) until `/readyz` answers `status` with a body
/// that contains `saying`.
async fn until_ready(url: &str, status: u16, saying: &str) {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last = (0, String::new());
    while Instant::now() < deadline {
        if let Ok(answer) = reqwest::get(url).await {
            last = (answer.status().as_u16(), answer.text().await.unwrap_or_default());
            if last.0 == status && last.1.contains(saying) {
                return;
            }
        }
        sleep(Duration::from_millis(250)).await;
    }
    panic!("/readyz did not answer {status} saying {saying:?} within 40 s; last {last:?}");
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
    if common::servers::missing(&[Server::Moto, Server::Postgres, Server::Redis]) {
        return;
    }
    const KILLS: usize = 20;
    let mut rng = common::chaos_rng("replica chaos");
    let pg = Postgres::start("replicas");
    let redis = Redis::start();
    let (fleet, env) = fleet(two_orgs(150, 6 * 1024 * 1024, 60), &pg, &redis).await;
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

/// One replica's wall clock runs 90 s ahead (30 leases of 3 s): leases are set and read
/// on the database's clock, so it takes no live claim of the others, and with nothing
/// killed every recording is downloaded exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_clock_runs_90_s_ahead_takes_no_live_claim() {
    if common::servers::missing(&[Server::Moto, Server::Postgres, Server::Redis, Server::Faketime]) {
        return;
    }
    let pg = Postgres::start("skew");
    let redis = Redis::start();
    let (fleet, env) = fleet(two_orgs(60, 6 * 1024 * 1024, 60), &pg, &redis).await;
    let expected = fleet.expected();
    let mut replicas: Vec<Child> = (0..REPLICAS - 1).map(|r| spawn(&fleet, &env, r, 0)).collect();
    replicas.push(fleet.spawn_ahead("+90s", &env, "replica-ahead.log"));
    until_archived(
        &fleet,
        &pg.url,
        expected.len(),
        expected.len(),
        Duration::from_secs(180),
    )
    .await;
    for replica in &mut replicas {
        assert!(
            replica.try_wait().unwrap().is_none(),
            "a replica exited (logs in {})",
            fleet.dir.display()
        );
        replica.kill().await.unwrap();
    }
    assert_exactly_once(&fleet, &pg.url, &expected).await;
    // Downloaded once each: no claim was taken from a live replica mid-transfer.
    let downloads = fleet.sim.total_stats().count("media", "200");
    let mut taken_over = 0;
    for entry in std::fs::read_dir(&fleet.dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            taken_over += std::fs::read_to_string(&path).unwrap().matches("taken over").count();
        }
    }
    let ahead_log = std::fs::read_to_string(fleet.dir.join("replica-ahead.log")).unwrap();
    let by_ahead = ahead_log.matches("Recording archived.").count();
    // Its log lines carry its own (skewed) time: the clock did run ahead.
    let stamp = ahead_log
        .split("\"timestamp\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .expect("a timestamped log line");
    assert!(
        stamp.with_timezone(&chrono::Utc) > chrono::Utc::now() + chrono::Duration::seconds(60),
        "the replica's clock runs ahead: {stamp}"
    );
    assert!(by_ahead > 0, "the replica ahead archived nothing");
    println!(
        "clock skew: {} recordings archived by 3 replicas ({by_ahead} by the one 90 s ahead), {downloads} \
         downloads, {taken_over} claims taken over",
        expected.len()
    );
    assert_eq!(
        taken_over,
        0,
        "a live claim was taken over (logs in {})",
        fleet.dir.display()
    );
    assert_eq!(downloads as usize, expected.len(), "every recording downloaded once");
}

/// PostgreSQL goes away, then the replica is asked to stop: the grace period bounds the
/// whole stop. Before, each last write waited out `outage_patience` ("Ledger
/// unreachable; waiting for it", still running 11 minutes after SIGTERM).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stops_within_its_grace_period_while_postgresql_is_away() {
    let pg = Postgres::start("stop");
    let redis = Redis::start();
    let (fleet, mut env) = fleet(two_orgs(40, 6 * 1024 * 1024, 60), &pg, &redis).await;
    env.push(("GENESYS_ARCHIVER__WORKERS__SHUTDOWN_GRACE", "2s".to_owned()));
    env.push(("GENESYS_ARCHIVER__LEDGER__OUTAGE_PATIENCE", "10m".to_owned()));
    let port = common::harness::free_port();
    env.push((
        "GENESYS_ARCHIVER__TELEMETRY__METRICS_LISTEN",
        format!("127.0.0.1:{port}"),
    ));
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let mut replica = spawn(&fleet, &env, 0, 0);
    until_archived(&fleet, &pg.url, 5, 80, Duration::from_secs(120)).await;
    let before = reqwest::get(&metrics_url).await.unwrap().text().await.unwrap();
    assert!(before.contains("genesys_archiver_recordings{"), "{before}");
    pg.stop();
    // /metrics during the outage: answered at once, with the ledger gauges last read
    // (before, the scrape waited out outage_patience on the ledger).
    sleep(Duration::from_secs(3)).await;
    let scraped = Instant::now();
    let during = tokio::time::timeout(Duration::from_secs(10), async {
        reqwest::get(&metrics_url).await.unwrap().text().await.unwrap()
    })
    .await
    .expect("/metrics answers during the outage");
    assert!(during.contains("genesys_archiver_recordings{"), "{during}");
    println!(
        "/metrics during a PostgreSQL outage: answered in {:?} with the last gauges",
        scraped.elapsed()
    );
    let pid = replica.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let asked = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(30), replica.wait())
        .await
        .unwrap_or_else(|_| panic!("still running 30 s after SIGTERM (logs in {})", fleet.dir.display()))
        .unwrap();
    println!(
        "stop during a PostgreSQL outage: exited {status:?} {:?} after SIGTERM (grace 2 s)",
        asked.elapsed()
    );
    assert_eq!(status.code(), Some(0));
    pg.resume();
}

/// An org whose run fails (its ledger answered an error that waiting does not mend) is
/// started again with the start-up backoff while the daemon runs, [[orgs]] entries as
/// orgs_dir files. Before, a failed run left its org down until a reload or a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_whose_run_fails_is_started_again_with_backoff() {
    if common::servers::missing(&[Server::Moto, Server::Postgres, Server::Redis]) {
        return;
    }
    let pg = Postgres::start("run-fails");
    let redis = Redis::start();
    let (fleet, env) = fleet(two_orgs(30, 2 * 1024 * 1024, 60), &pg, &redis).await;
    let all = fleet.expected().len();
    let mut replica = spawn(&fleet, &env, 0, 0);
    until_archived(&fleet, &pg.url, 3, all, Duration::from_secs(120)).await;
    let (client, connection) = tokio_postgres::connect(&pg.url, NoTls).await.unwrap();
    tokio::spawn(connection);
    // Every statement on conversations now fails (42P01): the org runs fail.
    client
        .batch_execute("ALTER TABLE conversations RENAME TO conversations_away")
        .await
        .unwrap();
    let log = fleet.dir.join("replica-0-life-0.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("started again with backoff")
    {
        assert!(Instant::now() < deadline, "no org run failed within 60 s");
        sleep(Duration::from_millis(200)).await;
    }
    client
        .batch_execute("ALTER TABLE conversations_away RENAME TO conversations")
        .await
        .unwrap();
    until_archived(&fleet, &pg.url, all, all, Duration::from_secs(150)).await;
    assert!(replica.try_wait().unwrap().is_none(), "the daemon kept running");
    replica.kill().await.unwrap();
    assert_exactly_once(&fleet, &pg.url, &fleet.expected()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_30_s_and_redis_down_30_s_lose_nothing_and_the_run_finishes() {
    if common::servers::missing(&[Server::Moto, Server::Postgres, Server::Redis]) {
        return;
    }
    const OUTAGE: Duration = Duration::from_secs(30);
    let pg = Postgres::start("outages");
    let mut redis = Redis::start();
    // 5 requests a second per org: enough work left for both outages to fall mid-run.
    let (fleet, env) = fleet(two_orgs(150, 2 * 1024 * 1024, 10), &pg, &redis).await;
    let expected = fleet.expected();
    let all = expected.len();
    let started = Instant::now();
    // Replica 0 answers /readyz: what it says through each outage is checked.
    let port = common::harness::free_port();
    let ready_url = format!("http://127.0.0.1:{port}/readyz");
    let watched = [
        &env[..],
        &[(
            "GENESYS_ARCHIVER__TELEMETRY__METRICS_LISTEN",
            format!("127.0.0.1:{port}"),
        )],
    ]
    .concat();
    let mut replicas: Vec<Child> = (0..REPLICAS)
        .map(|r| spawn(&fleet, if r == 0 { &watched } else { &env }, r, 0))
        .collect();
    until_ready(&ready_url, 200, "").await;

    // PostgreSQL goes down (connections cut) while the replicas are at work.
    let before_pg = until_archived(&fleet, &pg.url, all / 10, all, Duration::from_secs(120)).await;
    let pg_stopped = Instant::now();
    pg.stop();
    until_ready(&ready_url, 503, "ledger").await;
    sleep(OUTAGE.saturating_sub(pg_stopped.elapsed())).await;
    pg.resume();
    let (after_pg, _) = archived(&pg.url).await;
    until_ready(&ready_url, 200, "").await;
    // Work resumes: more is archived after the database is back.
    let resumed = until_archived(&fleet, &pg.url, after_pg as usize + 20, all, Duration::from_secs(120)).await;
    assert!(
        resumed < all,
        "the run ended before Redis could be stopped mid-run; give it more work"
    );

    // Then Redis goes down: the replicas pace on their local shares and go on.
    let redis_stopped = Instant::now();
    redis.stop();
    until_ready(&ready_url, 503, "shared budget").await;
    sleep(OUTAGE.saturating_sub(redis_stopped.elapsed())).await;
    let (during_redis, _) = archived(&pg.url).await;
    redis.resume();
    until_ready(&ready_url, 200, "").await;
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
    if common::servers::missing(&[Server::Moto, Server::Postgres, Server::Redis]) {
        return;
    }
    let pg = Postgres::start("listed");
    let redis = Redis::start();
    let (fleet, env) = fleet(two_orgs(20, 6 * 1024 * 1024, 60), &pg, &redis).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_ledger_migrated_into_postgres_lets_replicas_go_on_without_listing_or_uploading_again() {
    if common::servers::missing(&[Server::Moto, Server::Postgres]) {
        return;
    }
    use common::harness::{Harness, assert_bucket_holds_exactly, available, daemon_command};
    let pg = Postgres::start("migrate");
    // One process on its SQLite file archives everything there is.
    let h = Harness::start(screen_only(20, (1024, 64 * 1024)), "").await;
    let (status, logs) = h.run_once().await;
    assert!(status.success(), "{logs}");
    let expected = available(&h);
    assert_eq!(
        h.ledger().values().filter(|r| r.0 == "archived").count(),
        expected.len()
    );
    let etags: Vec<String> = {
        let mut all = Vec::new();
        for key in h.objects().await.keys() {
            all.push(h.etag(key).await);
        }
        all
    };
    let listed = |h: &Harness| {
        let stats = h.sim.stats();
        (stats.calls("conversation_recordings"), stats.calls("recording"))
    };
    let before = listed(&h);

    // The same configuration, on PostgreSQL.
    let file = h.dir.join("ledger.sqlite");
    let on_pg = h.dir.join("replicas.toml");
    let text = std::fs::read_to_string(&h.config).unwrap().replace(
        &format!("path = {:?}", file.display().to_string()),
        &format!("url = {:?}", pg.url),
    );
    assert!(text.contains(&pg.url));
    std::fs::write(&on_pg, text).unwrap();
    let migrate = |config: &std::path::Path| {
        let mut cmd = daemon_command(&["migrate-ledger", "--from", file.to_str().unwrap()], config);
        cmd.output()
    };
    let out = migrate(&on_pg).await.unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recordings_line = printed.lines().find(|l| l.starts_with("recordings")).unwrap();
    let figures: Vec<&str> = recordings_line.split_whitespace().collect();
    assert_eq!(
        figures[1..],
        [expected.len().to_string(), expected.len().to_string()],
        "{printed}"
    );

    // A replica on PostgreSQL knows what the file knew: it lists no conversation and
    // uploads no recording again.
    let out = daemon_command(&["run", "--once"], &on_pg).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(listed(&h), before, "no conversation listed or recording fetched again");
    assert_bucket_holds_exactly(&h, &expected).await;
    let mut after = Vec::new();
    for key in h.objects().await.keys() {
        after.push(h.etag(key).await);
    }
    assert_eq!(after, etags, "no object written again");
    let status = daemon_command(&["status", "--json"], &on_pg).output().await.unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(doc["recordings"]["archived"], expected.len() as u64, "{doc}");

    // A file that is not there: said before the database is asked anything.
    let mut missing = daemon_command(&["migrate-ledger", "--from", "/nonexistent/ledger.sqlite"], &on_pg);
    let out = missing.output().await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no SQLite ledger at /nonexistent/ledger.sqlite"));

    // Pointed at a configuration that names the SQLite file: one line, exit 2.
    let out = migrate(&h.config).await.unwrap();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.starts_with("error: ledger.url:"), "{said}");
}
