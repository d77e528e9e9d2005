//! Helpers shared by the black-box tests: a simulator on loopback and a client for it.
#![allow(dead_code)]

pub mod fleet;
pub mod harness;
pub mod proxy;
pub mod servers;

use genesys_archiver::config::{Settings, Sources};
use genesys_archiver::genesys::GenesysClient;
use genesys_archiver::metrics::OrgMetrics;
use genesys_archiver::ratelimit::LocalBudget;
use genesys_sim::{SimConfig, Simulator};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// An org of `screen` screen recordings, one per conversation, all AVAILABLE, on
/// compressed time (5 s windows) so that a thousand calls span several windows.
pub fn flat_org(screen: usize) -> SimConfig {
    SimConfig {
        media_size: (1024, 4096),
        window: Duration::from_secs(5),
        ..SimConfig::one_screen_recording_each(screen)
    }
}

pub async fn start(config: SimConfig) -> Simulator {
    Simulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts")
}

/// Settings pointing at `sim`, with its limits as the budget, then `extra` TOML on top.
pub fn settings(sim: &Simulator, extra: &str) -> Settings {
    settings_from_text(&format!("{}\n{extra}", sim.client_config()))
}

/// Settings from TOML text alone (the process environment is not read). Without a
/// `[sink]` section, a file sink in a scratch directory: client tests archive nothing,
/// but settings always name a sink.
pub fn settings_from_text(text: &str) -> Settings {
    let mut text = text.to_owned();
    if !text.contains("[sink]") {
        let scratch = std::env::temp_dir().join(format!("ga-test-sink-{}", std::process::id()));
        text.push_str(&format!(
            "\n[sink]\nkind = \"file\"\ndirectory = {:?}\n",
            scratch.display().to_string()
        ));
    }
    Sources {
        text: Some(&text),
        env: Some(HashMap::new()),
        ..Default::default()
    }
    .load()
    .expect("valid test config")
}

pub fn client(settings: &Settings) -> Arc<GenesysClient> {
    let metrics = OrgMetrics::unregistered("default");
    let budget = Arc::new(LocalBudget::new(
        &settings.first_org().limits,
        &settings.retry,
        metrics.clone(),
    ));
    Arc::new(
        GenesysClient::new(&settings.first_org().genesys, &settings.retry, budget, metrics).expect("client builds"),
    )
}

/// The random source of a chaos run: seeded from `CHAOS_SEED` to replay a run, else at
/// random; the seed is printed (`{what} seed N`) so a failure can be replayed.
pub fn chaos_rng(what: &str) -> fastrand::Rng {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("{what} seed {seed}");
    fastrand::Rng::with_seed(seed)
}
