//! What an operator reads: log lines that name the right recording, stderr that is all
//! JSON when logs are JSON, progress on long passes, and why `run --once` left work.

mod common;

use common::servers::Server;

use common::harness::{Harness, available, fast_org, screen_only};
use genesys_sim::SimConfig;
use std::time::Duration;

/// Every stderr line of a run with JSON logs.
fn json_lines(logs: &str) -> Vec<serde_json::Value> {
    logs.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// Concurrent workers: every line logged for a recording carries that recording's own
/// ids (a span guard held across an await tagged other tasks' lines, or none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_worker_line_of_a_concurrent_run_names_its_own_recording() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = SimConfig {
        media_chunk_delay: Duration::from_millis(2),
        ..screen_only(24, (300_000, 2_000_000))
    };
    let h = Harness::start(sim, "").await;
    let (status, logs) = h.run_once_with(&[("GENESYS_ARCHIVER__WORKERS__COUNT", "6")]).await;
    assert!(status.success(), "{logs}");
    let catalog = h.sim.catalog();
    let conversation_of = |rid: &str| {
        catalog
            .iter()
            .find(|e| e.recording_id == rid)
            .map(|e| e.conversation_id.clone())
    };
    let mut archived = 0;
    for line in json_lines(&logs) {
        let target = line["target"].as_str().unwrap_or_default();
        if !target.starts_with("genesys_archiver::pipeline::worker") && !target.starts_with("genesys_archiver::sink") {
            continue;
        }
        let rid = line["span"]["recording_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no recording_id: {line}"));
        assert_eq!(
            line["span"]["conversation_id"].as_str(),
            conversation_of(rid).as_deref(),
            "the conversation of that recording: {line}"
        );
        if line["message"] == "Recording archived." {
            archived += 1;
            let key = line["key"].as_str().unwrap();
            assert!(key.contains(rid), "its own key: {line}");
        }
    }
    assert_eq!(archived, available(&h).len(), "one line per archived recording");
}

/// With JSON logs every stderr line is JSON, the closing summary included (one event,
/// not the state table); text logs carry no colour codes when stderr is not a terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stderr_is_all_json_with_json_logs_and_plain_text_otherwise() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let h = Harness::start(screen_only(3, (100_000, 100_000)), "").await;
    let out = h
        .daemon(&["--log-format", "json", "run", "--once"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines = json_lines(&stderr);
    let summary: Vec<_> = lines.iter().filter(|l| l["message"] == "Run finished.").collect();
    assert_eq!(summary.len(), 1, "{stderr}");
    assert_eq!(summary[0]["archived"], 3);
    assert_eq!(summary[0]["failed"], 0);

    let out = h
        .daemon(&["--log-format", "text", "run", "--once"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no escape codes into a pipe: {stderr:?}");
    assert!(stderr.contains("archived     3"), "the table for a person: {stderr}");

    // A failure is a JSON event too (the bucket does not exist: the command fails;
    // a second `run --once` here would have had nothing left to fail on).
    let out = h
        .daemon(&["--log-format", "json", "check-config", "--connect"])
        .env("GENESYS_ARCHIVER__S3__BUCKET", "no-such-bucket")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let failures = json_lines(&stderr)
        .into_iter()
        .filter(|l| l["message"] == "Command failed." && l["level"] == "ERROR")
        .count();
    assert_eq!(failures, 1, "{stderr}");
}

/// A long discovery pass says how far it got, at most every 10 s; `run --once` says
/// which conversations it left and exits 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_pass_reports_progress_and_run_once_says_what_it_left() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = SimConfig {
        latency: Duration::from_millis(1500),
        ongoing: 2,
        ongoing_end_within: Duration::from_secs(3600),
        ..fast_org(40)
    };
    let h = Harness::start(sim, "").await;
    let (status, logs) = h
        .run_once_with(&[("GENESYS_ARCHIVER__DISCOVERY__PAGE_SIZE", "5")])
        .await;
    assert_eq!(status.code(), Some(4), "conversations left: exit 4\n{logs}");
    let lines = json_lines(&logs);
    let progress: Vec<_> = lines
        .iter()
        .filter(|l| l["message"] == "Discovery pass progress.")
        .collect();
    assert!(
        !progress.is_empty(),
        "a pass of 9+ pages at 1.5 s each reports progress\n{logs}"
    );
    for p in &progress {
        for field in [
            "conversations",
            "new_conversations",
            "recordings_in_ledger",
            "analytics_calls",
            "elapsed_s",
        ] {
            assert!(p[field].is_u64(), "{field}: {p}");
        }
    }
    let left = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Conversations left for a later run"))
        })
        .unwrap_or_else(|| panic!("says what it left\n{logs}"));
    // The ongoing conversations that have a screen recording (the filter drops the others).
    assert!(left["still_active"].as_u64().unwrap() >= 1, "{left}");
    assert_eq!(left["still_active"], left["conversations"], "{left}");
}
