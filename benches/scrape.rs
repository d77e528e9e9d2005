//! What one `/metrics` scrape (or `status`, or a backfill progress tick) costs the
//! ledger at scale: the ledger's report is read on every scrape, on the same connection
//! the workers claim through, so its time is time the workers wait.
//!
//! `cargo bench --bench scrape [-- N] [--smoke]` (default 100,000 recordings: 95% finished, 5%
//! waiting, one conversation each). Prints the time per report, mean and worst of 50.

use chrono::{Duration as ChronoDuration, Utc};
use genesys_archiver::ledger::sqlite::SqliteLedger;
use genesys_archiver::ledger::{Ledger, NewRecording};
use std::time::Instant;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `--smoke` (scripts/smoke-benches.sh, from the test suite): 2,000 recordings, 5 reports.
    let smoke = args.iter().any(|a| a == "--smoke");
    let n: usize = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(if smoke { 2_000 } else { 100_000 });
    let dir = std::env::temp_dir().join(format!("genesys-archiver-scrape-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let ledger = SqliteLedger::open(&dir.join("ledger.sqlite")).expect("ledger");
    let start = Utc::now() - ChronoDuration::days(30);
    let t = Instant::now();
    let rows: Vec<NewRecording> = (0..n)
        .map(|i| NewRecording {
            end_time: Some(start + ChronoDuration::seconds(i as i64 + 300)),
            parked: (i % 20 != 0).then(|| "finished".to_owned()),
            ..NewRecording::due(
                &format!("rec-{i:08}"),
                &format!("conv-{i:08}"),
                Some(start + ChronoDuration::seconds(i as i64)),
            )
        })
        .collect();
    for page in rows.chunks(1000) {
        ledger.insert(page.to_vec()).await.expect("insert");
    }
    eprintln!("ledger of {n} recordings built in {:.1} s", t.elapsed().as_secs_f64());
    let rounds = if smoke { 5 } else { 50 };
    let mut worst = 0f64;
    let t = Instant::now();
    for _ in 0..rounds {
        let one = Instant::now();
        let report = ledger.status().await.expect("status");
        assert_eq!(report.counts.values().sum::<u64>(), n as u64);
        worst = worst.max(one.elapsed().as_secs_f64());
    }
    let mean = t.elapsed().as_secs_f64() / rounds as f64;
    println!(
        "ledger report at {n} recordings: {:.2} ms mean, {:.2} ms worst ({rounds} reports)",
        mean * 1e3,
        worst * 1e3
    );
    let _ = std::fs::remove_dir_all(&dir);
}
