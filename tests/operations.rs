//! Operating the daemon: metrics after real work, readiness, SIGTERM during an upload,
//! and secrets kept out of the logs. Black-box: the binary against the simulator and moto.

mod common;

use common::servers::Server;

use common::harness::{Harness, Moto, fast_org, free_port, s3_client, screen_only};
use genesys_sim::SimConfig;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;

async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().expect("running") as i32;
    // SIGTERM, as systemd or the kubelet send it.
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_run_hold_every_family_with_counts_where_work_happened() {
    let port = free_port();
    let sim = SimConfig {
        transcoding_share: 0.3,
        archived_share: 0.2,
        ..fast_org(12)
    };
    let h = Harness::start(sim, &format!("[telemetry]\nmetrics_listen = \"127.0.0.1:{port}\"\n")).await;
    // A platform that answers the listing at once (no maxWaitMs): transcoding shows
    // as 202 there, and the recording call follows each such recording.
    let mut daemon = h
        .daemon(&["run"])
        .env("GENESYS_ARCHIVER__GENESYS__LIST_MAX_WAIT", "0s")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let expected = h
        .sim
        .catalog()
        .iter()
        .filter(|e| e.media == "screen" && e.file_state == "AVAILABLE")
        .count();
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let mut text = String::new();
    for _ in 0..600 {
        text = get(&metrics_url).await.1;
        if text.contains(&format!(
            "genesys_archiver_uploaded_objects_total{{org=\"default\"}} {expected}\n"
        )) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        text.contains(&format!(
            "genesys_archiver_uploaded_objects_total{{org=\"default\"}} {expected}\n"
        )),
        "{text}"
    );
    // The ledger's gauges are read at most every 2 s: a scrape after that sees the end.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let text = get(&metrics_url).await.1;
    let value = |prefix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    for family in [
        "genesys_archiver_api_requests_total{org=\"default\",endpoint=\"conversation_recordings\",status=\"200\"}",
        // Transcoding is seen at the listing; the recording call follows after the estimate.
        "genesys_archiver_api_requests_total{org=\"default\",endpoint=\"conversation_recordings\",status=\"202\"}",
        "genesys_archiver_api_requests_total{org=\"default\",endpoint=\"recording\",status=\"200\"}",
        "genesys_archiver_conversations{org=\"default\",state=\"settled\"}",
        "genesys_archiver_api_requests_total{org=\"default\",endpoint=\"analytics\"",
        "genesys_archiver_uploaded_bytes_total",
        "genesys_archiver_upload_duration_seconds_count",
        "genesys_archiver_archive_lag_seconds_count",
        "genesys_archiver_token_refreshes_total",
        "genesys_archiver_budget_wait_seconds_total",
        "genesys_archiver_recordings{org=\"default\",state=\"archived\"}",
        "genesys_archiver_recordings{org=\"default\",state=\"parked\"}",
        "genesys_archiver_org_up{org=\"default\"}",
    ] {
        assert!(value(family) > 0.0, "{family} is zero or missing:\n{text}");
    }
    // Every series names its org (families with no series yet are not rendered).
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.contains("org=\"default\""), "{line} has no org label:\n{text}");
    }
    assert!(
        text.contains("# TYPE genesys_archiver_oldest_unarchived_age_seconds gauge"),
        "{text}"
    );
    assert_eq!(get(&format!("http://127.0.0.1:{port}/healthz")).await.0, 200);
    assert_eq!(get(&format!("http://127.0.0.1:{port}/readyz")).await.0, 200);
    sigterm(&daemon);
    let status = tokio::time::timeout(Duration::from_secs(60), daemon.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// A start while the platform does not answer for 60 s (token endpoint included): the
/// operations listener answers and systemd hears READY within 5 s, `/healthz` stays 200
/// and `/readyz` 503 `starting` until the org is started, then 200. Before, nothing
/// listened until every org was built, and a liveness probe (30 s x 3 in the shipped
/// manifests) or systemd's start timeout (90 s) killed a start that was only slow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_against_a_silent_platform_is_live_at_once_and_ready_once_started() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let port = free_port();
    let h = Harness::start(
        fast_org(4),
        &format!("[telemetry]\nmetrics_listen = \"127.0.0.1:{port}\"\n"),
    )
    .await;
    // systemd's side of Type=notify: a datagram socket the daemon notifies.
    let socket_path = h.dir.join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    notify.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    h.sim.set_silent(true);
    let started = tokio::time::Instant::now();
    let mut daemon = h
        .daemon(&["run"])
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (health, ready) = (
        format!("http://127.0.0.1:{port}/healthz"),
        format!("http://127.0.0.1:{port}/readyz"),
    );
    let mut buf = [0u8; 256];
    let n = tokio::task::spawn_blocking(move || notify.recv(&mut buf).map(|n| buf[..n].to_vec()))
        .await
        .unwrap()
        .expect("READY within 5 s");
    assert_eq!(String::from_utf8_lossy(&n), "READY=1");
    let mut first = (0, String::new());
    while first.0 == 0 && started.elapsed() < Duration::from_secs(5) {
        first = get(&health).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answered_after = started.elapsed();
    assert_eq!(first.0, 200, "/healthz within 5 s: {first:?}");
    // Throughout the silence: live, not ready, and saying why.
    let mut probes = 0;
    while started.elapsed() < Duration::from_secs(60) {
        assert_eq!(get(&health).await.0, 200, "live while starting");
        let answer = get(&ready).await;
        assert_eq!(answer.0, 503, "{answer:?}");
        assert!(answer.1.contains("starting"), "{answer:?}");
        probes += 1;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    h.sim.set_silent(false);
    let silent_for = started.elapsed();
    let mut answer = (0, String::new());
    while answer.0 != 200 && started.elapsed() < silent_for + Duration::from_secs(90) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        answer = get(&ready).await;
    }
    println!(
        "silent platform: /healthz 200 after {answered_after:?}, READY at once, {probes} probes 200/503 \
         through {silent_for:?} of silence, /readyz 200 after {:?}",
        started.elapsed()
    );
    assert_eq!(answer.0, 200, "ready once the org is started: {answer:?}");
    assert!(daemon.try_wait().unwrap().is_none(), "still the first process");
    sigterm(&daemon);
    let status = tokio::time::timeout(Duration::from_secs(60), daemon.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_until_the_sink_answers() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let s3_port = free_port();
    let metrics_port = free_port();
    let sim = common::start(fast_org(2)).await;
    let dir = std::env::temp_dir().join(format!("ga-ready-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[ledger]\npath = {:?}\n[s3]\nbucket = \"ready\"\nendpoint_url = \"http://127.0.0.1:{s3_port}\"\nforce_path_style = true\n\
             [telemetry]\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n[discovery]\nlookback = \"2h\"\nsettle_delay = \"0s\"\nsettle_after_end = \"0s\"\n",
            sim.client_config(),
            dir.join("l.sqlite").display().to_string()
        ),
    )
    .unwrap();
    let mut daemon = tokio::process::Command::new(env!("CARGO_BIN_EXE_genesys-archiver"))
        .args(["run", "--config", config.to_str().unwrap()])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ready_url = format!("http://127.0.0.1:{metrics_port}/readyz");
    // Wait for the listener, then give the first probe time to run.
    for _ in 0..100 {
        if get(&ready_url).await.0 != 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let answer = get(&ready_url).await;
    assert_eq!(answer.0, 503, "{answer:?}");
    assert!(answer.1.contains("sink"), "{answer:?}");

    let moto = Moto::start_on(s3_port);
    s3_client(&moto.url)
        .create_bucket()
        .bucket("ready")
        .send()
        .await
        .unwrap();
    let mut ready = false;
    for _ in 0..300 {
        if get(&ready_url).await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "ready once the sink answers");
    sigterm(&daemon);
    assert!(
        tokio::time::timeout(Duration::from_secs(60), daemon.wait())
            .await
            .unwrap()
            .unwrap()
            .success()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_uploads_exits_0_with_nothing_half_done() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    // Slow media: multipart uploads are in flight when the signal comes; no grace, so
    // they are aborted (single_put_max 0: recordings this size would otherwise stream
    // as one PutObject, which leaves no upload to see).
    let sim = SimConfig {
        media_chunk_delay: Duration::from_millis(8),
        ..screen_only(8, (12 * MIB, 20 * MIB))
    };
    let h = Harness::start(sim, "single_put_max = \"0\"\n").await;
    let mut cmd = h.daemon(&["run"]);
    cmd.env("GENESYS_ARCHIVER__WORKERS__SHUTDOWN_GRACE", "0s");
    let mut daemon = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut open = 0;
    for _ in 0..600 {
        open = h.open_uploads().await;
        if open > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(open > 0, "uploads in flight before the signal");
    sigterm(&daemon);
    let status = tokio::time::timeout(Duration::from_secs(60), daemon.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(status.success(), "exit 0 on SIGTERM: {status:?}");
    assert_eq!(h.open_uploads().await, 0, "in-flight multipart uploads were aborted");
    let objects = h.objects().await;
    let ledger = h.ledger();
    for (id, (state, _, key, _)) in &ledger {
        assert_ne!(state, "uploading", "{id} left claimed");
        if state == "archived" {
            assert!(
                objects.contains_key(key.as_ref().unwrap()),
                "{id} archived without its object"
            );
        }
    }
    assert!(
        ledger.values().any(|v| v.0 == "discovered"),
        "interrupted recordings stay due"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_tokens_and_signed_urls_never_reach_the_logs() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let secret = "sEcReT-value-4242";
    let sim = SimConfig {
        client_secret: secret.into(),
        stale_url_share: 0.5,
        transcoding_share: 0.3,
        ..fast_org(10)
    };
    let h = Harness::start(sim, "").await;
    let mut cmd = h.daemon(&["run", "--once"]);
    cmd.env("RUST_LOG", "debug");
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .unwrap()
        .unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{logs}");
    assert!(logs.lines().count() > 20, "debug logging produced output");
    assert!(!logs.contains(secret), "the client secret leaked");
    let tokens = h.sim.issued_tokens();
    assert!(!tokens.is_empty());
    for token in tokens {
        assert!(!logs.contains(&token), "an access token leaked");
    }
    for fragment in ["signature=", "expires=", "X-Amz-Signature"] {
        assert!(!logs.contains(fragment), "a signed URL's query leaked ({fragment})");
    }
    // Nor the ledger: its file (and write-ahead log) never holds a signed URL.
    for file in ["ledger.sqlite", "ledger.sqlite-wal"] {
        let bytes = std::fs::read(h.dir.join(file)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for fragment in ["signature=", "X-Amz-Signature", "/media/"] {
            assert!(!text.contains(fragment), "a signed URL reached {file} ({fragment})");
        }
    }
    assert!(
        h.sim.stats().count("media", "403") > 0,
        "expired URLs were met (and their errors logged)"
    );
}
