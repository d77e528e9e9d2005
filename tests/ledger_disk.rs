//! The disk holding the ledger fails: read-only at start, full in the middle of a run.
//! The daemon cannot go on without its ledger, so it stops with one clear line, before
//! any work (read-only) or without losing anything (full: the next run finishes, each
//! recording once). The ledger lives on a tmpfs in a private mount namespace
//! (`unshare -m`), so nothing outside the test sees the mounts.

mod common;

use common::servers::Server;

use common::harness::{Harness, assert_bucket_holds_exactly, available, screen_only};
use std::path::Path;
use std::process::{Command, Output};

/// Runs `script` with `sh` in a new mount namespace, with the daemon's environment.
fn in_namespace(h: &Harness, script: &str) -> Output {
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .env("BIN", env!("CARGO_BIN_EXE_genesys-archiver"))
        .env("CONFIG", &h.config)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "info")
        .output()
        .expect("unshare runs (util-linux; the tests run as root)")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn mount_point(h: &Harness) -> String {
    let dir = h.dir.join("mnt");
    std::fs::create_dir_all(&dir).unwrap();
    dir.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_ledger_disk_stops_the_daemon_before_any_work() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let h = Harness::start(screen_only(5, (16 * 1024, 64 * 1024)), "").await;
    let mnt = mount_point(&h);
    let out = in_namespace(
        &h,
        &format!(
            "mount -t tmpfs -o ro,size=1m tmpfs {mnt} && \
             GENESYS_ARCHIVER__LEDGER__PATH={mnt}/ledger.sqlite \"$BIN\" run --once --config \"$CONFIG\""
        ),
    );
    let logs = text(&out);
    println!("{logs}");
    assert!(!out.status.success());
    let last = last_error(&logs);
    assert!(
        last.starts_with("ledger")
            && last.contains(&format!("{mnt}/ledger.sqlite"))
            && last.to_lowercase().contains("read-only"),
        "one clear line naming the ledger and why: {last}"
    );
    assert_eq!(h.sim.stats().api_calls(), 0, "no work before the ledger is open");
    assert!(h.objects().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_ledger_disk_stops_the_daemon_and_the_next_run_loses_nothing() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let h = Harness::start(screen_only(60, (16 * 1024, 256 * 1024)), "").await;
    let mnt = mount_point(&h);
    let out_dir = h.dir.display().to_string();
    // A tmpfs that fills up part-way through the run; the ledger is copied out after.
    let first = in_namespace(
        &h,
        &format!(
            "mount -t tmpfs -o size=400k tmpfs {mnt} || exit 99; \
             GENESYS_ARCHIVER__LEDGER__PATH={mnt}/ledger.sqlite \"$BIN\" run --once --config \"$CONFIG\"; rc=$?; \
             rm -f {out_dir}/ledger.sqlite*; cp -a {mnt}/. {out_dir}/; exit $rc"
        ),
    );
    let logs = text(&first);
    assert_ne!(first.status.code(), Some(99), "tmpfs mounted: {logs}");
    assert!(
        !first.status.success(),
        "the run stops when the ledger cannot be written:\n{logs}"
    );
    let last = last_error(&logs);
    assert!(
        last.starts_with("ledger") && last.contains("full"),
        "one clear line: {last}"
    );
    let archived_before = h.ledger().values().filter(|v| v.0 == "archived").count();
    let total = available(&h).len();
    assert!(
        archived_before < total,
        "it stopped part-way ({archived_before} of {total})"
    );

    // Room again: the ledger is put back on a larger disk and the next run finishes.
    let second = in_namespace(
        &h,
        &format!(
            "mount -t tmpfs -o size=64m tmpfs {mnt} && cp -a {out_dir}/ledger.sqlite* {mnt}/ && \
             GENESYS_ARCHIVER__LEDGER__PATH={mnt}/ledger.sqlite \"$BIN\" run --once --config \"$CONFIG\"; rc=$?; \
             rm -f {out_dir}/ledger.sqlite*; cp -a {mnt}/. {out_dir}/; exit $rc"
        ),
    );
    assert!(second.status.success(), "{}", text(&second));
    println!(
        "ledger disk full: stopped with {archived_before} of {total} archived; the next run archived the rest once"
    );
    assert_bucket_holds_exactly(&h, &available(&h)).await;
    assert!(h.ledger().values().all(|v| v.0 == "archived"));
    assert!(Path::new(&format!("{out_dir}/ledger.sqlite")).exists());
}

/// The error of the run's last line: with JSON logs (stderr is not a terminal) it is
/// the `error` field of a "Command failed." event; every line is JSON.
fn last_error(logs: &str) -> String {
    let last = logs.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    let event: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|_| panic!("not JSON: {last}"));
    assert_eq!(event["message"], "Command failed.", "{last}");
    event["error"].as_str().unwrap_or_default().to_owned()
}
