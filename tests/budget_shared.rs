//! The budget shared in Redis, against a real Redis server (a throw-away instance on a
//! loopback port): replicas spend one count, one replica's 429 pauses every replica,
//! and a replica that loses Redis paces on its local share and comes back.

mod common;

use common::servers::Server;

use common::servers::Redis;
use genesys_archiver::endpoint::Endpoint;
use genesys_archiver::metrics::Metrics;
use genesys_archiver::ratelimit::headers::RateHeaders;
use genesys_archiver::ratelimit::settings::{LimitSettings, SharedBudgetSettings};
use genesys_archiver::ratelimit::shared::SharedBudget;
use genesys_archiver::ratelimit::{Budget, Feedback, Outcome};
use genesys_archiver::retry::settings::RetrySettings;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// `per_window` requests per `window` for the token, shared through `redis`.
fn limits(redis: &Redis, per_window: u32, window: Duration) -> LimitSettings {
    LimitSettings {
        token_budget: per_window,
        auto_budget: false,
        window,
        target_utilization: 1.0,
        endpoint_budgets: Endpoint::ALL.map(|e| (e, None)),
        shared: Some(SharedBudgetSettings {
            url: redis.url.clone().into(),
            replicas: 3,
        }),
    }
}

async fn replica(limits: &LimitSettings, metrics: &Arc<Metrics>) -> Arc<SharedBudget> {
    Arc::new(
        SharedBudget::new(limits, &RetrySettings::default(), "acme:client-1", metrics.org("acme"))
            .await
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_together_never_spend_more_than_the_one_budget() {
    if common::servers::missing(&[Server::Redis]) {
        return;
    }
    let redis = Redis::start();
    // 20 a second, as three replicas each with 8 callers in a hurry.
    let limits = limits(&redis, 20, Duration::from_secs(1));
    let metrics = Metrics::new();
    let replicas = [
        replica(&limits, &metrics).await,
        replica(&limits, &metrics).await,
        replica(&limits, &metrics).await,
    ];
    let granted: [Arc<AtomicU64>; 3] = Default::default();
    let started = Instant::now();
    let run_for = Duration::from_secs(3);
    let mut tasks = Vec::new();
    for (budget, count) in replicas.iter().zip(&granted) {
        for _ in 0..8 {
            let (budget, count) = (budget.clone(), count.clone());
            tasks.push(tokio::spawn(async move {
                while started.elapsed() < run_for {
                    budget.acquire(Endpoint::Recording).await;
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let each: Vec<u64> = granted.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let total: u64 = each.iter().sum();
    println!("shared budget: {each:?} granted in {elapsed:.2} s ({total} in all; budget 20/s)");
    // GCRA with a burst of one: at most one grant per 50 ms between the first and the
    // last, all of which happened inside `elapsed`.
    let most = (elapsed * 20.0).floor() as u64 + 1;
    assert!(total <= most, "{total} grants where the budget allows {most}");
    assert!(each.iter().all(|n| *n > 0), "every replica was served: {each:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_seen_by_one_replica_pauses_the_others() {
    if common::servers::missing(&[Server::Redis]) {
        return;
    }
    let redis = Redis::start();
    let limits = limits(&redis, 600, Duration::from_secs(60));
    let metrics = Metrics::new();
    let (a, b) = (replica(&limits, &metrics).await, replica(&limits, &metrics).await);
    a.acquire(Endpoint::Analytics).await;
    a.observe(
        Endpoint::Analytics,
        &Feedback {
            outcome: Outcome::Refused {
                retry_after: Some(Duration::from_secs(2)),
            },
            headers: None,
        },
    );
    // The cooldown is written behind `observe`; b learns of it from Redis alone.
    let mut redis_client = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // One hash tag per budget (Redis Cluster keeps a script's keys in one slot).
    let key = "genesys-archiver:budget:{acme:client-1}:token:cooldown";
    let mut pttl: i64 = -2;
    for _ in 0..100 {
        pttl = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut redis_client)
            .await
            .unwrap();
        if pttl > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(pttl > 1000, "the shared cooldown is set (PTTL {pttl} ms)");
    let waited = b.acquire(Endpoint::Recording).await;
    assert!(
        waited >= Duration::from_millis(pttl as u64 - 200),
        "b waited {waited:?} of the {pttl} ms cooldown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_without_redis_paces_on_its_share_and_returns_when_redis_does() {
    if common::servers::missing(&[Server::Redis]) {
        return;
    }
    let mut redis = Redis::start();
    let limits = limits(&redis, 600, Duration::from_secs(60));
    let metrics = Metrics::new();
    let budget = replica(&limits, &metrics).await;
    budget.acquire(Endpoint::Recording).await;
    assert!(metrics.render(&[]).contains("budget_shared_up{org=\"acme\"} 1"));
    redis.stop();
    // Calls go on (on a third of the budget) instead of stopping.
    for _ in 0..3 {
        budget.acquire(Endpoint::Recording).await;
    }
    let text = metrics.render(&[]);
    assert!(text.contains("budget_shared_up{org=\"acme\"} 0"), "{text}");
    assert!(text.contains("budget_fallbacks_total{org=\"acme\"} 1"), "{text}");
    redis.resume();
    // Redis is asked again after a few seconds on the local share.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !metrics.render(&[]).contains("budget_shared_up{org=\"acme\"} 1") {
        assert!(Instant::now() < deadline, "the replica returned to the shared budget");
        budget.acquire(Endpoint::Recording).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn connection(redis: &Redis) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The value of `key` once `observe`'s write behind it has landed (bounded: 1 s).
async fn eventually(c: &mut redis::aio::MultiplexedConnection, key: &str, want: Option<u32>) -> Option<u32> {
    let mut got = None;
    for _ in 0..100 {
        got = redis::cmd("GET").arg(key).query_async(c).await.unwrap();
        if got == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    got
}

fn accepted(allowed: u32) -> Feedback {
    Feedback {
        outcome: Outcome::Accepted,
        headers: Some(RateHeaders {
            count: 1,
            allowed,
            reset: Duration::from_secs(30),
        }),
    }
}

fn refused() -> Feedback {
    Feedback {
        outcome: Outcome::Refused {
            retry_after: Some(Duration::from_millis(10)),
        },
        headers: None,
    }
}

const HEADER_CAP: &str = "genesys-archiver:budget:{acme:client-1}:token:cap:header";
const TAUGHT_CAP: &str = "genesys-archiver:budget:{acme:client-1}:token:cap:taught";

/// The cap the headers report and the cap a refusal proved are two keys: neither
/// overwrites the other, and the pace takes the smaller. A refusal after too few grants
/// to be credible (someone else spent the window) teaches nothing, as locally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_and_taught_caps_are_kept_apart_and_a_refusal_must_be_credible() {
    if common::servers::missing(&[Server::Redis]) {
        return;
    }
    let redis = Redis::start();
    let mut c = connection(&redis).await;
    let limits = limits(&redis, 1000, Duration::from_secs(2));
    let metrics = Metrics::new();
    let a = replica(&limits, &metrics).await;

    // 10 grants, then a 429: below a tenth of the 1000 configured, so no cap.
    for _ in 0..10 {
        a.acquire(Endpoint::Recording).await;
    }
    a.observe(Endpoint::Recording, &refused());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let taught: Option<u32> = redis::cmd("GET").arg(TAUGHT_CAP).query_async(&mut c).await.unwrap();
    assert_eq!(taught, None, "one 429 after 10 grants does not cut the pace");

    // The window fills to 120 (a credible count), then a 429 teaches 120.
    let b = replica(&limits, &metrics).await;
    for _ in 0..110 {
        b.acquire(Endpoint::Recording).await;
    }
    b.observe(Endpoint::Recording, &refused());
    let taught = eventually(&mut c, TAUGHT_CAP, Some(120)).await;
    assert_eq!(taught, Some(120));
    // Then the headers report 300 allowed: kept beside it, not over it.
    b.observe(Endpoint::Recording, &accepted(300));
    assert_eq!(eventually(&mut c, HEADER_CAP, Some(300)).await, Some(300));
    let taught: Option<u32> = redis::cmd("GET").arg(TAUGHT_CAP).query_async(&mut c).await.unwrap();
    assert_eq!(taught, Some(120), "the header cap does not overwrite the taught one");
    // The pace takes the smaller: 120 per 2 s is one grant per 16,667 µs, which the
    // next grant's theoretical arrival time says (300 would be 6,667 µs).
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.acquire(Endpoint::Recording).await;
    let tat: u64 = redis::cmd("GET")
        .arg("genesys-archiver:budget:{acme:client-1}:token:tat")
        .query_async(&mut c)
        .await
        .unwrap();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut c).await.unwrap();
    let ahead = tat.saturating_sub(secs * 1_000_000 + micros);
    println!("caps: taught 120, header 300; next grant {ahead} µs ahead");
    assert!((8_000..=16_667).contains(&ahead), "paced by the taught cap: {ahead} µs");
}

/// The header cap is written again before it expires while answers carry it, not only
/// when its value changes: once lapsed, nothing would pace by it any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_cap_is_republished_before_it_expires() {
    if common::servers::missing(&[Server::Redis]) {
        return;
    }
    let redis = Redis::start();
    let mut c = connection(&redis).await;
    // A 100 ms window: the header cap lives 60 windows (6 s) unless written again.
    let limits = limits(&redis, 1000, Duration::from_millis(100));
    let a = replica(&limits, &Metrics::new()).await;
    a.observe(Endpoint::Recording, &accepted(300));
    assert_eq!(eventually(&mut c, HEADER_CAP, Some(300)).await, Some(300));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    a.observe(Endpoint::Recording, &accepted(300));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pttl: i64 = redis::cmd("PTTL").arg(HEADER_CAP).query_async(&mut c).await.unwrap();
    assert!(pttl > 5_000, "written again with the same value: PTTL {pttl} ms");
}
