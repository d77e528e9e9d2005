//! The command line, black-box: help, config validation and its errors.

use std::process::{Command, Output};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_genesys-archiver"));
    cmd.args(args).env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("binary runs")
}

fn example() -> String {
    format!("{}/config/example.toml", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn help_lists_the_subcommands() {
    let out = run(&["--help"], &[]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["run", "backfill", "status", "retry", "check-config", "demo", "sim"] {
        assert!(text.contains(sub), "{sub} missing from:\n{text}");
    }
}

#[test]
fn the_example_configuration_is_valid() {
    let out = run(&["check-config", "--config", &example()], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_bad_value_exits_non_zero_with_one_line_naming_the_key() {
    let out = run(
        &["check-config", "--config", &example()],
        &[("GENESYS_ARCHIVER__WORKERS__COUNT", "0")],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("workers.count"), "{stderr}");
}

#[test]
fn an_unknown_key_exits_non_zero_naming_it() {
    let dir = std::env::temp_dir().join(format!("ga-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("typo.toml");
    let text = std::fs::read_to_string(example())
        .unwrap()
        .replace("[workers]\n", "[workers]\ncuont = 4\n");
    std::fs::write(&path, text).unwrap();
    let out = run(&["check-config", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cuont") && stderr.lines().count() == 1, "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let out = run(&["check-config", "--config", "/nonexistent/archiver.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/archiver.toml"));
}

#[test]
fn demo_archives_the_simulated_org_and_verifies_every_byte() {
    let dir = std::env::temp_dir().join(format!("ga-demo-{}", std::process::id()));
    let out = run(&["demo", "--conversations", "8", "--dir", dir.to_str().unwrap()], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let archived = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("archived"))
        .expect("summary row");
    // "archived  N (N verified against the simulator's SHA-256)"
    let numbers: Vec<u64> = archived
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(numbers[0] > 0 && numbers[0] == numbers[1], "{archived}");
    assert!(stdout.contains("429 answers"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn status_and_retry_read_the_ledger() {
    let dir = std::env::temp_dir().join(format!("ga-status-{}", std::process::id()));
    let out = run(&["demo", "--conversations", "3", "--dir", dir.to_str().unwrap()], &[]);
    assert!(out.status.success());
    // Only the ledger part: no Genesys credentials, no bucket.
    let config = dir.join("status.toml");
    std::fs::write(
        &config,
        format!(
            "[ledger]\npath = {:?}\n",
            dir.join("ledger.sqlite").display().to_string()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let out = run(&["status", "--config", config, "--json"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["recordings"]["archived"].as_u64().unwrap() > 0);
    assert_eq!(report["recordings"]["uploading"], 0);
    assert!(report["watermark"].is_string());
    assert!(report["oldest_unarchived"].is_null() || report["oldest_unarchived"]["recording_id"].is_string());
    assert!(report["conversations"]["settled"].as_u64().unwrap() > 0);

    // What is parked, and why; then put back on request.
    let out = run(&["list", "--config", config, "--state", "parked", "--json"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let parked: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!parked.is_empty(), "the demo org has parked recordings");
    assert!(
        parked
            .iter()
            .all(|r| r["recording_id"].is_string() && r["reason"].is_string())
    );
    let some = parked[0]["recording_id"].as_str().unwrap().to_owned();
    let out = run(&["list", "--config", config, "--state", "parked"], &[]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("recording") && table.contains(&some), "{table}");
    let out = run(&["retry", "--config", config, "--parked", "--id", &some], &[]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1 parked recordings are queued again (the next `run` archives them)"
    );
    let out = run(&["list", "--config", config, "--state", "waiting", "--json"], &[]);
    let waiting: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0]["recording_id"], some.as_str());
    let out = run(&["retry", "--config", config, "--reason", "x"], &[]);
    assert_eq!(out.status.code(), Some(2), "--reason needs --parked");
    let out = run(&["retry", "--config", config], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 failed recordings are queued again"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn loadtest_smoke_completes_and_counts() {
    // Bounded: 6 s of load on a 2 s window, loopback only. Counts, never times.
    let out = run(
        &[
            "loadtest",
            "--duration",
            "6s",
            "--window",
            "2s",
            "--platform-rpm",
            "100",
            "--agents",
            "60",
            "--sessions-per-agent-hour",
            "600",
            "--backlog",
            "5",
            "--poll-interval",
            "1s",
            "--json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert!(report["recordings_archived"].as_u64().unwrap() > 0, "{report}");
    assert!(report["api_calls_total"].as_u64().unwrap() > 0);
    assert_eq!(report["strategy"], "ours");
    for key in [
        "rate_limited_share",
        "budget_utilization",
        "mb_per_s",
        "lag_p99_s",
        "peak_rss_mib",
    ] {
        assert!(report[key].is_number(), "{key}");
    }
}
