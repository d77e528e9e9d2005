//! The command line, black-box: help, config validation and its errors.
//!
//! Over 500 lines: one suite of the binary's commands and exit codes, sharing one
//! harness.

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
fn the_example_configuration_checks_without_a_warning() {
    let out = run(&["check-config", "--config", &example()], &[]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "nothing on stderr");
}

/// Each kind of mistake: one line, exit 2, naming the key and where the value came
/// from (the file, or the environment variable) in plain words.
#[test]
fn config_mistakes_name_the_key_and_where_it_was_set() {
    let dir = std::env::temp_dir().join(format!("ga-cli-mistakes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let base = "[genesys]\nregion = \"mypurecloud.com\"\nclient_id = \"x\"\nclient_secret_file = \"config/example-client-secret\"\n";
    let negative = write("negative.toml", &format!("{base}[workers]\ncount = -3\n"));
    let syntax = write(
        "syntax.toml",
        "[genesys]\nregion = \"mypurecloud.com\"\nclient_id = \"x\n",
    );
    let unset = write(
        "unset.toml",
        "[genesys]\nregion = \"mypurecloud.com\"\nclient_id = \"x\"\n",
    );
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case; 5] = [
        (&negative, &[], &["workers.count", "negative.toml", "negative number"]),
        (&syntax, &[], &["syntax.toml", "not valid TOML", "line 3, column 15"]),
        (
            &unset,
            &[],
            &[
                "genesys.client_secret",
                "must be set",
                "GENESYS_ARCHIVER__GENESYS__CLIENT_SECRET",
            ],
        ),
        (
            &example(),
            &[("GENESYS_ARCHIVER__WORKERS__COUNT", "-2")],
            &[
                "workers.count",
                "environment variable GENESYS_ARCHIVER__WORKERS__COUNT",
                "negative number",
            ],
        ),
        (
            &example(),
            &[("GENESYS_ARCHIVER__WORKERS__RETRY_BASE", "soon")],
            &[
                "workers.retry_base",
                "environment variable GENESYS_ARCHIVER__WORKERS__RETRY_BASE",
                "duration",
            ],
        ),
    ];
    for (file, env, words) in cases {
        let out = run(&["check-config", "--config", file], env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        for word in words {
            assert!(stderr.contains(word), "`{word}` missing from: {stderr}");
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn demo_misconfiguration_exits_2_before_any_work() {
    for args in [["demo", "--workers", "0"], ["demo", "--conversations", "0"]] {
        let out = run(&args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(args[1]), "{stderr}");
    }
}

/// `sim > sim.toml` then `run --once --config sim.toml`, as the README shows it.
#[test]
fn the_simulator_prints_a_configuration_that_archives_it() {
    use std::io::BufRead;
    let dir = std::env::temp_dir().join(format!("ga-cli-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut sim = Command::new(env!("CARGO_BIN_EXE_genesys-archiver"))
        .args(["sim", "--listen", &format!("127.0.0.1:{port}"), "--conversations", "6"])
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(dir.join("sim.log")).unwrap())
        .spawn()
        .unwrap();
    let mut config = String::new();
    for line in std::io::BufReader::new(sim.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let last = line.starts_with("directory = ");
        config.push_str(&line);
        config.push('\n');
        if last {
            break;
        }
    }
    std::fs::write(dir.join("sim.toml"), &config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_genesys-archiver"))
        .args(["run", "--once", "--config", "sim.toml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    sim.kill().unwrap();
    let _ = sim.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let sim_log = std::fs::read_to_string(dir.join("sim.log")).unwrap_or_default();
    assert!(out.status.success(), "{config}\n{stderr}\nsimulator: {sim_log}");
    let archived = std::fs::read_dir(dir.join("sim-archive/archive"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(archived > 0, "files in sim-archive/archive: {stderr}");
    std::fs::remove_dir_all(dir).unwrap();
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
    assert!(table.starts_with("org") && table.contains(&some), "{table}");
    assert!(table.lines().nth(1).unwrap().starts_with("default "), "{table}");
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

    // A ledger of an older schema: the commands refuse it and never migrate it (that
    // takes the ledger's lock, the daemon's, at its start).
    let ledger = dir.join("ledger.sqlite");
    let version = |set: Option<i64>| {
        let conn = rusqlite::Connection::open(&ledger).unwrap();
        if let Some(v) = set {
            conn.pragma_update(None, "user_version", v).unwrap();
        }
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    let current = version(None);
    version(Some(current - 1));
    for args in [
        &["status", "--config", config][..],
        &["list", "--config", config, "--state", "parked"][..],
        &["retry", "--config", config][..],
    ] {
        let out = run(args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains("start the daemon"), "{args:?}: {stderr}");
    }
    assert_eq!(version(None), current - 1, "not migrated by a command");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn ledger_commands_take_an_org() {
    use genesys_archiver::ledger::sqlite::SqliteLedger;
    use genesys_archiver::ledger::{Ledger, NewRecording};
    let dir = std::env::temp_dir().join(format!("ga-org-ledger-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = run(&["demo", "--conversations", "3", "--dir", dir.to_str().unwrap()], &[]);
    assert!(out.status.success());
    // A second org in the same ledger: one recording that failed for good.
    let path = dir.join("ledger.sqlite");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let acme = SqliteLedger::open(&path).unwrap().for_org("acme");
        let new = NewRecording::due(
            "acme-r1",
            "acme-c1",
            Some(chrono::Utc::now() - chrono::Duration::hours(3)),
        );
        acme.insert(vec![new]).await.unwrap();
        let claimed = acme.claim_due(chrono::Utc::now()).await.unwrap().unwrap();
        acme.fail(claimed.claim(), 8, "boom".into()).await.unwrap();
    });
    let config = dir.join("status.toml");
    std::fs::write(&config, format!("[ledger]\npath = {:?}\n", path.display().to_string())).unwrap();
    let config = config.to_str().unwrap();

    // A line per org, with its oldest unarchived age.
    let out = run(&["status", "--config", config], &[]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("org") && lines[0].contains("oldest unarchived"),
        "{table}"
    );
    assert!(lines[1].starts_with("acme ") && lines[1].contains(" 3h0m"), "{table}");
    assert!(lines[2].starts_with("default "), "{table}");
    let out = run(&["status", "--config", config, "--json"], &[]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["orgs"]["acme"]["recordings"]["failed"], 1);
    assert!(doc["orgs"]["default"]["recordings"]["archived"].as_u64().unwrap() > 0);
    // One org in full, as a single-org ledger shows itself.
    let out = run(&["status", "--config", config, "--org", "acme", "--json"], &[]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["recordings"]["failed"], 1);
    assert_eq!(doc["recordings"]["archived"], 0);

    let out = run(&["list", "--config", config, "--state", "failed", "--json"], &[]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0]["org"].as_str(), rows[0]["recording_id"].as_str()),
        (Some("acme"), Some("acme-r1"))
    );
    let out = run(&["retry", "--config", config, "--org", "default"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("0 failed recordings"));
    let out = run(&["retry", "--config", config, "--org", "acme"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("1 failed recordings"));

    // An org the ledger does not know, and a name that cannot be one.
    let out = run(&["status", "--config", config, "--org", "globex"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no rows of org `globex` (orgs in it: acme, default)"),
        "{stderr}"
    );
    let out = run(
        &["list", "--config", config, "--state", "failed", "--org", "Not An Org"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(dir);
}

/// `loadtest` on a 2 s window with a small steady load (bounded: `duration` of load,
/// loopback only), `extra` arguments appended; its JSON report.
fn loadtest(duration: &str, agents: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "loadtest",
        "--duration",
        duration,
        "--window",
        "2s",
        "--platform-rpm",
        "100",
        "--agents",
        agents,
        "--sessions-per-agent-hour",
        "600",
        "--backlog",
        "5",
        "--poll-interval",
        "1s",
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = run(&args, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

#[test]
fn loadtest_smoke_completes_and_counts() {
    // Counts, never times.
    let report = loadtest("6s", "60", &[]);
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

#[test]
fn a_multi_org_file_is_checked_org_by_org() {
    // The README's example, verbatim (from the crate's directory, as its paths are).
    let out = Command::new(env!("CARGO_BIN_EXE_genesys-archiver"))
        .args(["check-config", "--config", "config/example-orgs.toml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.starts_with("configuration is valid: 3 orgs, 16 workers\norg acme:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("org initech: api https://api.mypurecloud.com/"),
        "{stdout}"
    );
    let dir = std::env::temp_dir().join(format!("ga-cli-orgs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let orgs_d = dir.join("orgs.d");
    std::fs::create_dir_all(&orgs_d).unwrap();
    std::fs::write(
        orgs_d.join("globex.toml"),
        "[genesys]\nregion = \"usw2.pure.cloud\"\nclient_id = \"g\"\n[s3]\nbucket = \"globex-own-bucket\"\n",
    )
    .unwrap();
    let main = dir.join("archiver.toml");
    std::fs::write(
        &main,
        format!(
            "orgs_dir = {:?}\n[genesys]\nclient_secret_file = \"config/example-client-secret\"\n\
             [s3]\nbucket = \"vendor-archive\"\nprefix = \"{{org}}/\"\n\
             [[orgs]]\nname = \"acme\"\n[orgs.genesys]\nregion = \"mypurecloud.ie\"\nclient_id = \"a\"\n",
            orgs_d.display().to_string()
        ),
    )
    .unwrap();
    let main = main.to_str().unwrap();
    let out = run(&["check-config", "--config", main], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("configuration is valid: 2 orgs"), "{stdout}");
    assert!(stdout.contains("org acme: api https://api.mypurecloud.ie/"), "{stdout}");
    assert!(
        stdout.contains("org globex: api https://api.usw2.pure.cloud/"),
        "{stdout}"
    );

    // A bad org file: the one line names the org, the key and the file; exit 2.
    std::fs::write(orgs_d.join("initech.toml"), "[genesys]\nregion = \"r.com\"\n").unwrap();
    let out = run(&["check-config", "--config", main], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("config key `orgs[initech].genesys.client_id` in ") && stderr.contains("initech.toml"),
        "{stderr}"
    );

    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn loadtest_serves_several_orgs_together() {
    // Three orgs, each with its own budget.
    let report = loadtest("6s", "30", &["--orgs", "3"]);
    assert_eq!(report["orgs"], 3);
    // Three logins: one token per org.
    assert_eq!(report["api_calls"]["token"], 3, "{report}");
    // Each org's budget is counted in what was allowed: three orgs' worth of calls
    // without a single refusal.
    assert!(report["recordings_archived"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["rate_limited"], 0, "{report}");
    assert!(report["recordings_per_minute"].as_f64().unwrap() > 0.0);
    let out = run(
        &["loadtest", "--orgs", "2", "--strategy", "naive", "--duration", "1s"],
        &[],
    );
    assert!(!out.status.success(), "the naive baseline is one org's");
}
