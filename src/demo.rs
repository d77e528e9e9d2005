//! `demo`: the whole job on an embedded default, with no credentials and no bucket.
//!
//! Starts the simulator in-process (on the real platform's limits: 300 requests a minute
//! per token), archives its screen recordings into a local directory with the file
//! sink, checks every archived file against the simulator's own checksums, and prints a
//! summary.

use crate::app::App;
use crate::config::Sources;
use crate::ledger::State;
use crate::pipeline::Mode;
use crate::pipeline::Shutdown;
use crate::pipeline::stats::PipelineStats;
use crate::ratelimit::BudgetStats;
use anyhow::Context;
use genesys_sim::media::expected_sha256;
use genesys_sim::{SimConfig, Simulator};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the archive and ledger go; a new temporary directory if `None`.
    pub directory: Option<PathBuf>,
    pub conversations: usize,
    pub workers: usize,
}

impl DemoOptions {
    /// Checks the options before anything starts (a bad one exits 2, like bad config).
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        use crate::config::ConfigError;
        if !(1..=256).contains(&self.workers) {
            return Err(ConfigError::new("--workers", "must be between 1 and 256"));
        }
        if !(1..=100_000).contains(&self.conversations) {
            return Err(ConfigError::new("--conversations", "must be between 1 and 100000"));
        }
        if let Some(dir) = &self.directory
            && dir.exists()
            && !dir.is_dir()
        {
            return Err(ConfigError::new(
                "--dir",
                format!("{} exists and is not a directory", dir.display()),
            ));
        }
        Ok(())
    }
}

/// What the demo did, as printed.
#[derive(Debug, Clone)]
pub struct DemoSummary {
    pub rows: Vec<(String, String)>,
    pub verified: usize,
    pub expected: usize,
}

impl DemoSummary {
    pub fn table(&self) -> String {
        let width = self.rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in &self.rows {
            out.push_str(&format!("  {k:<width$}  {v}\n"));
        }
        out
    }
}

pub async fn run(options: DemoOptions, shutdown: Shutdown) -> anyhow::Result<DemoSummary> {
    let sim_config = SimConfig {
        conversations: options.conversations,
        transcode_time: Duration::from_secs(2),
        // A screen recording can be several files (one per monitor or segment).
        multipart_share: 0.2,
        ..SimConfig::default()
    };
    let sim = Simulator::start(sim_config, "127.0.0.1:0".parse().expect("literal address"))
        .await
        .context("cannot start the simulator on loopback")?;
    let directory = options.directory.unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "genesys-archiver-demo-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S")
        ))
    });
    let archive = directory.join("archive");
    let text = format!(
        "{}\n[workers]\ncount = {}\nretry_base = \"1s\"\nretry_cap = \"5s\"\n\
         [discovery]\nlookback = \"2h\"\noverlap = \"0s\"\nsettle_delay = \"0s\"\nsettle_after_end = \"0s\"\n\
         [ledger]\npath = {:?}\n[sink]\nkind = \"file\"\ndirectory = {:?}\n",
        sim.client_config(),
        options.workers,
        directory.join("ledger.sqlite").display().to_string(),
        archive.display().to_string(),
    );
    let settings = Sources {
        text: Some(&text),
        env: Some(Default::default()),
        ..Default::default()
    }
    .load()?;
    let org = settings.first_org();
    let layout = org.sink.layout.clone();
    let format = org.genesys.format_id;
    let window = org.limits.window;
    let budget_per_window = org.limits.token_budget;

    let started = Instant::now();
    let app = App::build(settings).await?;
    let report = app.run(Mode::Once, shutdown).await?;
    let elapsed = started.elapsed();

    // Every available screen recording must be on disk with the simulator's bytes.
    let catalog = sim.catalog();
    let expected: Vec<_> = catalog
        .iter()
        .filter(|e| e.media == "screen" && e.file_state == "AVAILABLE")
        .collect();
    let mut verified = 0;
    for entry in &expected {
        let keys = layout
            .keys(
                "",
                &entry.conversation_id,
                &entry.recording_id,
                entry.start_time,
                format.extension(),
            )
            .map_err(anyhow::Error::msg)?;
        // Every file of the recording (the simulator names the parts of several 0, 1, 2).
        let n = entry.parts.len();
        let whole = entry.parts.iter().enumerate().all(|(i, (name, size))| {
            let bytes = std::fs::read(archive.join(keys.part(&i.to_string(), n))).unwrap_or_default();
            crate::hex::hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes)) == expected_sha256(name, *size)
        });
        if whole && archive.join(&keys.sidecar).is_file() {
            verified += 1;
        }
    }
    let several = expected.iter().filter(|e| e.parts.len() > 1).count();

    let stats = sim.stats();
    let budget = app.first().budget.stats();
    let count = |s| report.recordings_in(s);
    let token_calls = stats.api_calls() - stats.calls("token");
    let allowed = f64::from(budget_per_window) * elapsed.as_secs_f64() / window.as_secs_f64();
    let endpoint_calls = crate::genesys::Endpoint::ALL
        .iter()
        .filter(|e| stats.calls(e.as_str()) > 0)
        .map(|e| format!("{e} {}", stats.calls(e.as_str())))
        .collect::<Vec<_>>()
        .join(", ");
    let screen = catalog.iter().filter(|e| e.media == "screen").count();
    let rows = vec![
        (
            "recordings in the org".into(),
            format!("{} ({screen} screen, {} other)", catalog.len(), catalog.len() - screen),
        ),
        (
            "archived".into(),
            format!(
                "{} ({} verified against the simulator's SHA-256, {several} of them as several files)",
                count(State::Archived),
                verified
            ),
        ),
        (
            "parked".into(),
            format!(
                "{} (deleted or archived in Genesys, or not screen)",
                count(State::Parked)
            ),
        ),
        ("failed".into(), count(State::Failed).to_string()),
        (
            "bytes archived".into(),
            format!(
                "{} ({:.1} MiB)",
                PipelineStats::get(&app.stats.bytes),
                PipelineStats::get(&app.stats.bytes) as f64 / 1048576.0
            ),
        ),
        (
            "transcoding waits".into(),
            PipelineStats::get(&app.stats.pending).to_string(),
        ),
        ("API calls".into(), format!("{} ({endpoint_calls})", stats.api_calls())),
        ("429 answers".into(), stats.refusals().to_string()),
        (
            "budget used".into(),
            format!(
                "{token_calls} calls of {allowed:.0} allowed in the elapsed time ({:.0}%), {} cooldowns",
                100.0 * token_calls as f64 / allowed.max(1.0),
                BudgetStats::get(&budget.cooldowns)
            ),
        ),
        ("elapsed".into(), format!("{:.1} s", elapsed.as_secs_f64())),
        ("archive".into(), archive.display().to_string()),
    ];
    Ok(DemoSummary {
        rows,
        verified,
        expected: expected.len(),
    })
}
