//! Scale benchmark: a ledger that grows to N recordings (default 100,000).
//!
//! The simulator (in this process, its whole org generated before anything is measured)
//! holds N conversations with one screen recording each, spread over 24 hours, on limits
//! high enough that the API never paces. Discovery (`Poller::pass`, the daemon's own code:
//! analytics pages, the ledger's known-conversation check, recordingmetadata, insert) runs
//! over ten consecutive slices of the day, so each slice is measured against a ledger that
//! already holds the earlier ones. Then the whole day is read again (everything known),
//! every recording is offered to the ledger again (de-duplication on insert), and the
//! workers' claim-and-reschedule is timed at the full backlog.
//!
//! Printed per slice: recordings in the ledger, cost per discovered recording, and the
//! process's resident memory. Flat cost and flat memory as the backlog grows are the
//! targets: the daemon keeps no per-recording state outside its ledger. Last, claims
//! per second at the full backlog with one claimer and with three claiming at once:
//! three replicas (each its own pool and owner) on PostgreSQL; three tasks of the one
//! process that owns a SQLite file.
//!
//! The ledger is SQLite in a temporary directory, or with `--ledger-url postgres://…`
//! that (empty) PostgreSQL database.
//!
//!   cargo bench --bench scale -- [N] [--ledger-url URL] [--smoke]
//!   (or `bash scripts/bench/scale.sh [--smoke] [N]`: SQLite, then a throw-away PostgreSQL)

use chrono::{Duration as ChronoDuration, Utc};
use futures_util::StreamExt;
use genesys_archiver::config::Sources;
use genesys_archiver::genesys::GenesysClient;
use genesys_archiver::ledger::postgres::{PgLedger, PgSettings};
use genesys_archiver::ledger::sqlite::SqliteLedger;
use genesys_archiver::ledger::{Ledger, NewRecording, State};
use genesys_archiver::pipeline::check::Checker;
use genesys_archiver::pipeline::poller::{PassReport, Poller};
use genesys_archiver::ratelimit::{Budget, LocalBudget};
use genesys_sim::{SimConfig, Simulator};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SLICES: i32 = 10;

/// Removes the benchmark's directory at the end.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn per_item_us(elapsed: Duration, items: u64) -> f64 {
    elapsed.as_secs_f64() * 1e6 / items.max(1) as f64
}

/// What the claims take as now: a listed recording is held for the URLs' life (or
/// the lease) after its listing, and a small run would find nothing due yet.
fn due_by() -> chrono::DateTime<Utc> {
    Utc::now() + ChronoDuration::minutes(5)
}

/// One owner of the PostgreSQL ledger at `url` (a replica), as the default org sees it.
async fn replica(url: &str) -> Arc<dyn Ledger> {
    let settings = PgSettings {
        url: url.to_owned().into(),
        pool_size: 8,
        lease: Duration::from_secs(60),
        outage_patience: Duration::from_secs(60),
    };
    Arc::new(PgLedger::connect(&settings).await.expect("PostgreSQL ledger"))
}

/// The workers' loop, `times` over: claim the next due recording, reschedule it an hour
/// later (out of the way of the next claims).
async fn claim_and_reschedule(ledger: &dyn Ledger, times: u64) {
    let later = Utc::now() + ChronoDuration::hours(1);
    for _ in 0..times {
        let claimed = ledger
            .claim_due(due_by())
            .await
            .expect("claim")
            .expect("a due recording");
        ledger
            .reschedule(claimed.claim(), State::Discovered, later, 0, None)
            .await
            .expect("reschedule");
    }
}

/// Claims per second when each of `claimers` runs [`claim_and_reschedule`] `each`
/// times, all at once.
async fn claims_per_second(claimers: &[Arc<dyn Ledger>], each: u64) -> f64 {
    let t = Instant::now();
    futures_util::future::join_all(
        claimers
            .iter()
            .map(|ledger| claim_and_reschedule(ledger.as_ref(), each)),
    )
    .await;
    (each * claimers.len() as u64) as f64 / t.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `--smoke` (scripts/smoke-benches.sh, from the test suite): the same steps on 300
    // conversations, a few seconds, so the bench cannot rot unseen.
    let smoke = args.iter().any(|a| a == "--smoke");
    let n: usize = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(if smoke { 300 } else { 100_000 });
    let ledger_url = args
        .iter()
        .position(|a| a == "--ledger-url")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let unlimited = 1_000_000_000;
    let config = SimConfig {
        history: Duration::from_secs(24 * 3600),
        token_limit: unlimited,
        endpoint_limits: genesys_sim::Endpoint::ALL
            .iter()
            .map(|e| (*e, unlimited))
            .collect::<BTreeMap<_, _>>(),
        ..SimConfig::one_screen_recording_each(n)
    };
    let started = Instant::now();
    let sim = Simulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts");
    eprintln!(
        "simulated org: {n} conversations generated in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let dir = std::env::temp_dir().join(format!("genesys-archiver-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let _cleanup = RemoveOnDrop(dir.clone());
    let text = format!(
        "{}\n[discovery]\nsettle_after_end = \"0s\"\n[ledger]\npath = \"{}\"\n[sink]\nkind = \"file\"\ndirectory = \"{}\"\n",
        sim.client_config(),
        dir.join("ledger.sqlite").display(),
        dir.join("archive").display()
    );
    let settings = Sources {
        file: None,
        text: Some(&text),
        env: Some(Default::default()),
    }
    .load()
    .expect("settings");
    let metrics = genesys_archiver::metrics::OrgMetrics::unregistered("default");
    let budget: Arc<dyn Budget> = Arc::new(LocalBudget::new(
        &settings.first_org().limits,
        &settings.retry,
        metrics.clone(),
    ));
    let ledger_path = dir.join("ledger.sqlite");
    let ledger: Arc<dyn Ledger> = match &ledger_url {
        Some(url) => replica(url).await,
        None => Arc::new(SqliteLedger::open(&ledger_path).expect("ledger")),
    };
    let client =
        Arc::new(GenesysClient::new(&settings.first_org().genesys, &settings.retry, budget, metrics).expect("client"));
    let poller = Poller {
        client: client.clone(),
        ledger: ledger.clone(),
        settings: settings.first_org().discovery.clone(),
        stats: Arc::default(),
        work: Arc::default(),
    };
    let checker = Arc::new(Checker {
        client,
        ledger: ledger.clone(),
        urls: Arc::default(),
        lifecycle: poller.lifecycle(),
        mode: settings.first_org().discovery.fetch_mode,
        upload_deadline: settings.first_org().discovery.upload_deadline,
        work: Arc::default(),
    });
    // Discovery as the daemon does it: the pass, then one listing per conversation,
    // `concurrency` in flight (workers do the listings in the daemon). Each
    // conversation is claimed when a slot frees, as a worker claims it: claimed all at
    // once, a slice slower than the lease (a busy machine, PostgreSQL) would see its
    // last listings refused as taken over and count them again in the next slice.
    let discover = |from, to| {
        let (poller, checker, ledger) = (&poller, checker.clone(), ledger.clone());
        let concurrency = settings.first_org().discovery.concurrency;
        async move {
            PassReport::get(&poller.pass(from, to).await.expect("discovery pass").new_conversations);
            let mut listed = 0u64;
            let mut checks = futures_util::stream::FuturesUnordered::new();
            let mut claimed_all = false;
            loop {
                while !claimed_all && checks.len() < concurrency {
                    match ledger.claim_conversation(Utc::now()).await.expect("claim") {
                        // A task of its own, as a worker is: it goes on (and gives back its
                        // ledger connection) while the next claim waits for one.
                        Some(row) => {
                            let checker = checker.clone();
                            checks.push(tokio::spawn(async move { checker.check(row).await.expect("listing") }));
                        }
                        None => claimed_all = true,
                    }
                }
                match checks.next().await {
                    Some(done) => done.expect("a listing task"),
                    None => return listed,
                }
                listed += 1;
            }
        }
    };
    let baseline = rss_mib();

    let kind = match ledger_url {
        Some(_) => "PostgreSQL",
        None => "SQLite",
    };
    println!("Scale: discovery into a {kind} ledger growing to {n} recordings (one per conversation), loopback API");
    println!(
        "{:>6} {:>12} {:>14} {:>16} {:>10}",
        "slice", "in ledger", "discovered", "us/recording", "RSS MiB"
    );
    let end = Utc::now();
    let begin = end - ChronoDuration::hours(24) - ChronoDuration::minutes(1);
    let slice = (end - begin) / SLICES;
    let mut total = 0;
    let mut discovery_us = Vec::new();
    for i in 0..SLICES {
        let (from, to) = (begin + slice * i, begin + slice * (i + 1));
        let t = Instant::now();
        let listed = discover(from, to).await;
        let elapsed = t.elapsed();
        total += listed;
        discovery_us.push(per_item_us(elapsed, listed));
        println!(
            "{:>6} {:>12} {:>14} {:>16.1} {:>10.1}",
            i + 1,
            total,
            listed,
            per_item_us(elapsed, listed),
            rss_mib()
        );
    }
    assert_eq!(total as usize, n, "every simulated recording discovered once");
    let after_discovery = rss_mib();

    // The same day again: every conversation is known, so only analytics pages and the
    // ledger's known-conversation check are paid.
    let t = Instant::now();
    let again = poller.pass(begin, end).await.expect("second pass");
    let reread = t.elapsed();
    assert_eq!(
        PassReport::get(&again.new_conversations),
        0,
        "nothing is discovered twice"
    );
    assert!(
        ledger.claim_conversation(Utc::now()).await.expect("claim").is_none(),
        "nothing is listed twice"
    );

    // Every recording offered to the ledger again, in pages of 100 as discovery does.
    let offered: Vec<NewRecording> = sim
        .catalog()
        .into_iter()
        .map(|e| NewRecording::due(&e.recording_id, &e.conversation_id, None))
        .collect();
    let t = Instant::now();
    let mut added = 0;
    for page in offered.chunks(100) {
        added += ledger.insert(page.to_vec()).await.expect("insert");
    }
    let dedupe = t.elapsed();
    assert_eq!(added, 0, "the ledger drops every duplicate");
    let offered_count = offered.len();
    drop(offered);

    // The workers' loop at the full backlog: claim the next due recording, reschedule it.
    // Each measurement claims a tenth of the backlog at most (2,000), rows not claimed
    // before: rescheduled ones are an hour away.
    let claims = (n as u64 / 10).clamp(1, 2_000);
    let t = Instant::now();
    claim_and_reschedule(ledger.as_ref(), claims).await;
    let claim = t.elapsed();
    // Claims per second, one claimer and three at once: three replicas on PostgreSQL,
    // three tasks of the one owner on SQLite.
    let one = claims_per_second(std::slice::from_ref(&ledger), claims).await;
    let three: Vec<Arc<dyn Ledger>> = match &ledger_url {
        Some(url) => vec![ledger.clone(), replica(url).await, replica(url).await],
        None => vec![ledger.clone(), ledger.clone(), ledger.clone()],
    };
    let three = claims_per_second(&three, claims).await;

    let first = discovery_us.first().copied().unwrap_or(0.0);
    let last = discovery_us.last().copied().unwrap_or(0.0);
    println!();
    println!(
        "discovery, first slice vs last slice   {first:.1} vs {last:.1} us/recording (ratio {:.2})",
        last / first.max(f64::EPSILON)
    );
    println!(
        "re-reading the whole day, all known    {:.1} us/recording ({} conversations skipped)",
        per_item_us(reread, PassReport::get(&again.known)),
        PassReport::get(&again.known)
    );
    println!(
        "ledger de-duplication on insert        {:.1} us/recording ({} offered, {added} added)",
        per_item_us(dedupe, offered_count as u64),
        offered_count
    );
    println!(
        "claim + reschedule at {total} backlog   {:.1} us/claim",
        per_item_us(claim, claims)
    );
    println!(
        "claims per second at the backlog       {one:.0} with one claimer, {three:.0} with three at once ({})",
        match ledger_url {
            Some(_) => "three replicas",
            None => "three tasks of the one owner",
        }
    );
    println!(
        "resident memory                        {:.1} MiB before discovery (simulator included), {:.1} MiB after \
         discovering {total} (+{:.1}), {:.1} MiB at the end",
        baseline,
        after_discovery,
        after_discovery - baseline,
        rss_mib()
    );
    if ledger_url.is_none() {
        println!(
            "ledger file                            {:.1} MiB",
            std::fs::metadata(&ledger_path).map(|m| m.len()).unwrap_or(0) as f64 / 1_048_576.0
        );
    }
}
