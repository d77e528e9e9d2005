//! Secrets never reach a log line, and the configuration refuses what would send them
//! in the clear.

mod common;

use common::servers::Server;

use common::harness::{Harness, available, fast_org};
use genesys_sim::SimConfig;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_line_even_at_trace_level() {
    if common::servers::missing(&[Server::Moto]) {
        return;
    }
    let sim = SimConfig {
        stale_url_share: 0.3,
        ..fast_org(12)
    };
    let h = Harness::start(sim, "").await;
    let (status, logs) = h.run_once_with(&[("RUST_LOG", "trace")]).await;
    assert!(status.success(), "{logs}");
    assert!(!available(&h).is_empty());
    let tokens = h.sim.issued_tokens();
    assert!(!tokens.is_empty());
    // Something was logged about every step that handles a secret.
    assert!(logs.contains("Recording archived."));
    assert!(logs.contains("Download URL expired"));
    assert!(!logs.contains("sim-secret"), "the client secret was logged");
    for token in &tokens {
        assert!(!logs.contains(token.as_str()), "an access token was logged");
    }
    assert!(!logs.contains("signature="), "a signed download URL was logged");
    assert!(!logs.contains("expires="), "a signed download URL was logged");
    // The harness writes its configuration (inline secret) with the default mode 0644.
    assert!(
        logs.contains("readable by every user"),
        "a world-readable configuration with a secret draws a warning"
    );
}

fn check_config(text: &str) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("ga-security-{}-{:x}", std::process::id(), fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_genesys-archiver"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

const BASE: &str = "[genesys]\nclient_id = \"id\"\nclient_secret_file = \"/dev/null\"\n\
                    [sink]\nkind = \"file\"\ndirectory = \"/tmp/ga-security-archive\"\n";

#[test]
fn plain_http_to_the_api_is_refused_unless_loopback_for_tests() {
    let remote = BASE.replace(
        "[genesys]\n",
        "[genesys]\napi_url = \"http://api.example.com\"\nlogin_url = \"https://login.example.com\"\n\
         allow_http = true\nmedia_hosts = [\"media.example.com\"]\n",
    );
    let (ok, err) = check_config(&remote);
    assert!(!ok);
    assert!(
        err.contains("genesys.api_url") && err.contains("must be https"),
        "{err}"
    );
}

#[test]
fn certificate_verification_has_no_off_switch() {
    let text = BASE.replace(
        "[genesys]\n",
        "[genesys]\nregion = \"mypurecloud.com\"\ndanger_accept_invalid_certs = true\n",
    );
    let (ok, err) = check_config(&text);
    assert!(!ok);
    assert!(
        err.contains("danger_accept_invalid_certs") && err.contains("unknown key"),
        "{err}"
    );
}
