//! `loadtest`: the simulator and the archiver in one process, under a steady flow of
//! new sessions, for a fixed time; then a report.
//!
//! The platform side (`platform_rpm`, endpoint limits, Retry-After share, headers) and
//! the archiver's configured budget (`budget_rpm`) are set apart, so a misconfigured or
//! unknown limit can be simulated. `Strategy::Naive` runs the same workload with what
//! hand-written pipelines do ([`naive`]), for comparison. Figures are
//! measured, not asserted: utilization is successful API calls over what the platform
//! allowed while the load ran (until shutdown began), and lag is recording end to archived.
//! With several replicas (each its own token) utilization stays over one budget per org:
//! the one the replicas share, whether the platform counts per token or per client.
//!
//! Over 500 lines: the load test's run is in named steps (check, platform, archiver,
//! build, drive, report), with its report; the naive baseline is apart (`naive.rs`).

mod naive;

use crate::app::App;
use crate::config::{Settings, Sources};
use crate::genesys::Endpoint;
use crate::pipeline::stats::PipelineStats;
use crate::pipeline::{Mode, Shutdown};

use anyhow::Context;
use genesys_sim::{SimConfig, Simulator};
use naive::NaiveBudget;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The shared budget: one cooldown per scope, pace learned from the platform.
    Ours,
    /// Self-paced workers, private backoff, no shared cooldown.
    Naive,
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub duration: Duration,
    pub agents: u32,
    /// Sessions each agent finishes per hour (each one a conversation).
    pub sessions_per_agent_hour: f64,
    /// Shortest and longest session.
    pub session_length: (Duration, Duration),
    /// Longest upload of a recording after its session's end (also the archiver's
    /// `settle_after_end`: it knows how long this platform takes).
    pub upload_time: Duration,
    /// Mean screen recordings per recorded conversation (1.0 to 2.0).
    pub screens_per_conversation: f64,
    /// `conversation` or `recording`.
    pub fetch_mode: String,
    /// Longest interval between re-reads of an active conversation.
    pub recheck_max: Duration,
    /// How much of the previous window each pass reads again.
    pub overlap: Duration,
    /// Conversations already waiting (ended) when the test starts.
    pub backlog: usize,
    pub media_size: (u64, u64),
    pub window: Duration,
    pub platform_rpm: u32,
    pub platform_endpoint_limits: BTreeMap<genesys_sim::Endpoint, u32>,
    pub retry_after_share: f64,
    pub ratelimit_headers: bool,
    /// The platform counts `platform_rpm` per OAuth client, not per access token.
    pub platform_limit_per_client: bool,
    /// The archiver's configured per-token budget (may differ from the platform's).
    pub budget_rpm: u32,
    pub workers: usize,
    pub part_size: String,
    pub poll_interval: Duration,
    pub strategy: Strategy,
    /// A configuration whose `[sink]`/`[s3]` are used (e.g. S3); default: a file sink in a temporary directory.
    pub sink_config: Option<PathBuf>,
    pub seed: u64,
    /// Orgs served together by one process, each its own simulated org with this load
    /// and its own budget (`platform_rpm`).
    pub orgs: usize,
    /// Replicas of the archiver, each its own app (ledger connections, budget, token,
    /// workers) in this process, sharing what real replicas share: the PostgreSQL
    /// ledger at `ledger_url` and, with `shared_budget`, the Redis-held budget.
    pub replicas: usize,
    /// `postgres://…`: the ledger of every replica (default: a SQLite file, one replica).
    pub ledger_url: Option<String>,
    /// `redis://…`: the budget the replicas share (default: each its local budget).
    pub shared_budget: Option<String>,
    /// `[retention] genesys_delete_after`: hand retention back to Genesys.
    pub handoff: Option<Duration>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub strategy: Strategy,
    pub orgs: usize,
    pub replicas: usize,
    /// Whether the replicas shared their budget in Redis.
    pub shared_budget: bool,
    /// Archived recordings per minute over the whole run, every org together.
    pub recordings_per_minute: f64,
    pub elapsed_s: f64,
    pub api_calls: BTreeMap<String, u64>,
    pub api_calls_total: u64,
    /// Calls to the rate-limited API (every endpoint but the token), 429s included,
    /// per archived recording.
    pub calls_per_recording: f64,
    /// Retention updates (the hand-off), 429s included, per archived recording.
    pub handoff_calls_per_recording: f64,
    pub rate_limited: u64,
    pub rate_limited_share: f64,
    pub budget_utilization: f64,
    pub recordings_archived: u64,
    pub bytes_archived: u64,
    pub mb_per_s: f64,
    pub lag_p50_s: f64,
    pub lag_p95_s: f64,
    pub lag_p99_s: f64,
    pub lag_max_s: f64,
    /// p99 of the attempt that archived a recording (recording call, download, upload).
    pub transfer_p99_s: f64,
    /// The lag target: poll interval + upload time + transcoding time + transfer time (p99).
    pub lag_target_s: f64,
    pub peak_rss_mib: f64,
}

impl LoadReport {
    pub fn table(&self) -> String {
        let calls = self
            .api_calls
            .iter()
            .map(|(e, n)| format!("{e} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = [
            ("strategy", format!("{:?}", self.strategy).to_lowercase()),
            ("elapsed", format!("{:.1} s", self.elapsed_s)),
            ("API calls", format!("{} ({calls})", self.api_calls_total)),
            (
                "calls per recording",
                format!(
                    "{:.2} rate-limited calls per archived recording ({:.2} of them retention hand-offs)",
                    self.calls_per_recording, self.handoff_calls_per_recording
                ),
            ),
            (
                "429s",
                format!(
                    "{} ({:.2}% of calls)",
                    self.rate_limited,
                    self.rate_limited_share * 100.0
                ),
            ),
            (
                "budget utilization",
                format!("{:.1}% of what the platform allowed", self.budget_utilization * 100.0),
            ),
            ("orgs", self.orgs.to_string()),
            (
                "replicas",
                format!(
                    "{} ({})",
                    self.replicas,
                    match self.shared_budget {
                        true => "one budget shared in Redis",
                        false => "each its local budget",
                    }
                ),
            ),
            (
                "recordings archived",
                format!(
                    "{} ({:.0} a minute)",
                    self.recordings_archived, self.recordings_per_minute
                ),
            ),
            (
                "bytes archived",
                format!("{} ({:.2} MB/s)", self.bytes_archived, self.mb_per_s),
            ),
            (
                "archive lag",
                format!(
                    "p50 {:.1} s, p95 {:.1} s, p99 {:.1} s, max {:.1} s",
                    self.lag_p50_s, self.lag_p95_s, self.lag_p99_s, self.lag_max_s
                ),
            ),
            (
                "lag target",
                format!(
                    "p99 <= {:.1} s (poll + upload + transcoding + transfer p99 {:.1} s): ratio {:.2}",
                    self.lag_target_s,
                    self.transfer_p99_s,
                    self.lag_p99_s / self.lag_target_s.max(f64::EPSILON)
                ),
            ),
            ("peak RSS", format!("{:.1} MiB", self.peak_rss_mib)),
        ];
        rows.iter().map(|(k, v)| format!("  {k:<20} {v}\n")).collect()
    }
}

/// Peak resident set size of this process (Linux `VmHWM`), in MiB.
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub async fn run(options: LoadOptions) -> anyhow::Result<LoadReport> {
    let (orgs, replicas) = check(&options)?;
    let sim_config = platform(&options);
    // Each org its own: seed, name and credentials; the same load and limits.
    let configs: Vec<SimConfig> = (0..orgs)
        .map(|i| sim_config.clone().named(&format!("org-{i}"), options.seed + i as u64))
        .collect();
    let sim = Simulator::start_orgs(configs, "127.0.0.1:0".parse().expect("literal"))
        .await
        .context("simulator")?;
    let dir = std::env::temp_dir().join(format!(
        "genesys-archiver-loadtest-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    let settings = archiver(&options, &sim, &dir, replicas)?;
    let apps = build(&options, settings, replicas).await?;
    let (elapsed, at_drain) = drive(&options, &apps, &sim).await?;
    let report = report(&options, &apps, &sim, elapsed, at_drain);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}

/// `--orgs` and `--replicas` against the strategy: what one run can measure.
fn check(options: &LoadOptions) -> anyhow::Result<(usize, usize)> {
    let orgs = options.orgs.max(1);
    if orgs > 1 && options.strategy == Strategy::Naive {
        anyhow::bail!("--orgs with more than one org measures our budget only (--strategy ours)");
    }
    let replicas = options.replicas.max(1);
    if replicas > 1 && options.strategy == Strategy::Naive {
        anyhow::bail!(
            "--replicas measures our budget (--strategy ours); the naive case of several replicas is \
             --replicas N without --shared: each replica on its local budget"
        );
    }
    if replicas > 1 && options.ledger_url.is_none() {
        anyhow::bail!("--replicas above 1 needs --ledger-url postgres://…: replicas share one PostgreSQL ledger");
    }
    Ok((orgs, replicas))
}

/// The simulated platform: a backlog, conversations going on, new ones at the agents'
/// pace, the platform's limits.
fn platform(options: &LoadOptions) -> SimConfig {
    let per_minute = f64::from(options.agents) * options.sessions_per_agent_hour / 60.0;
    // Conversations going on at the start, as many as a steady flow keeps going (their
    // ends spread over one session length), so conversations end from the first second.
    let (short, long) = options.session_length;
    let mean_minutes = (short + long).as_secs_f64() / 2.0 / 60.0;
    SimConfig {
        seed: options.seed,
        conversations: options.backlog,
        history: Duration::from_secs(600),
        ongoing: (per_minute * mean_minutes).round() as usize,
        ongoing_started_ago: long,
        ongoing_end_within: long,
        session_length: options.session_length,
        upload_time: (Duration::ZERO, options.upload_time),
        screen_per_conversation: (1, 2),
        extra_screen_share: options.screens_per_conversation - 1.0,
        // Every screen recording is archivable: the figure is calls per archived one.
        archived_share: 0.0,
        deleted_share: 0.0,
        new_conversations_per_minute: per_minute,
        window: options.window,
        token_limit: options.platform_rpm,
        endpoint_limits: options.platform_endpoint_limits.clone(),
        retry_after_share: options.retry_after_share,
        ratelimit_headers: options.ratelimit_headers,
        limit_per_client: options.platform_limit_per_client,
        media_size: options.media_size,
        ..SimConfig::default()
    }
}

/// The archiver's configuration for the simulated orgs: their platform, the budget,
/// workers and discovery asked for, the ledger and the sink; validated.
fn archiver(
    options: &LoadOptions,
    sim: &Simulator,
    dir: &std::path::Path,
    replicas: usize,
) -> anyhow::Result<Settings> {
    // The platform's limits as the sim prints them, then the archiver's own budget on top.
    let genesys_of = |org: &genesys_sim::SimOrg| {
        org.client_config()
            .split("\n[limits]")
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    // One org: its [genesys] at the top. Several: one [[orgs]] entry each, last in the
    // file (TOML: tables after them would be theirs).
    let (single, entries) = match sim.orgs() {
        [one] => (genesys_of(one), String::new()),
        many => (
            String::new(),
            many.iter()
                .map(|o| {
                    format!(
                        "[[orgs]]\nname = \"{}\"\n{}\n",
                        o.config().org_name,
                        genesys_of(o).replace("[genesys]", "[orgs.genesys]")
                    )
                })
                .collect(),
        ),
    };
    let mut text = format!(
        "{single}\n[limits]\nrequests_per_minute = {}\nwindow = \"{}ms\"\n\
         [workers]\ncount = {}\nretry_base = \"1s\"\nretry_cap = \"10s\"\nshutdown_grace = \"5s\"\n\
         [discovery]\npoll_interval = \"{}ms\"\nlookback = \"1h\"\noverlap = \"{}ms\"\nsettle_delay = \"0s\"\n\
         settle_after_end = \"{}ms\"\nrecheck_max = \"{}ms\"\nfetch_mode = \"{}\"\n\
         [ledger]\n{}\n",
        options.budget_rpm,
        options.window.as_millis(),
        options.workers,
        options.poll_interval.as_millis(),
        options.overlap.as_millis(),
        options.upload_time.as_millis(),
        options.recheck_max.max(options.poll_interval).as_millis(),
        options.fetch_mode,
        match &options.ledger_url {
            Some(url) => format!("url = {url:?}"),
            None => format!("path = {:?}", dir.join("ledger.sqlite").display().to_string()),
        },
    );
    if let Some(path) = &options.sink_config {
        let sink = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        text.push_str(&sink);
    } else {
        text.push_str(&format!(
            "[sink]\nkind = \"file\"\ndirectory = {:?}\n",
            dir.join("archive").display().to_string()
        ));
    }
    if let Some(after) = options.handoff {
        if options.sink_config.is_none() {
            anyhow::bail!("--handoff needs --config with an S3 sink: the store verifies each copy first");
        }
        text.push_str(&format!(
            "[retention]\ngenesys_delete_after = \"{}s\"\n",
            after.as_secs().max(1)
        ));
    }
    text.push_str(&entries);
    // As an override, so a sink configuration with its own [s3] section still takes it.
    let mut env: std::collections::HashMap<String, String> =
        [("GENESYS_ARCHIVER__S3__PART_SIZE".to_owned(), options.part_size.clone())].into();
    if let Some(url) = &options.shared_budget {
        env.insert("GENESYS_ARCHIVER__LIMITS__SHARED".to_owned(), url.clone());
        env.insert("GENESYS_ARCHIVER__LIMITS__REPLICAS".to_owned(), replicas.to_string());
    }
    if sim.orgs().len() > 1 {
        // Each org's recordings under its own name, whatever the sink.
        env.insert(
            "GENESYS_ARCHIVER__SINK__KEY_TEMPLATE".to_owned(),
            format!("{{org}}/{}", crate::sink::layout::KeyLayout::DEFAULT),
        );
    }
    let settings = Sources {
        text: Some(&text),
        env: Some(env),
        ..Default::default()
    }
    .load()?;
    Ok(settings)
}

/// The archivers: ours as the daemon builds them (a budget per org, one per replica),
/// or one on the naive baseline's budget.
async fn build(options: &LoadOptions, settings: Settings, replicas: usize) -> anyhow::Result<Vec<App>> {
    Ok(match options.strategy {
        Strategy::Ours => {
            let mut apps = Vec::with_capacity(replicas);
            for _ in 0..replicas {
                apps.push(App::build(settings.clone()).await?);
            }
            apps
        }
        Strategy::Naive => {
            let org = settings.first_org();
            let naive = NaiveBudget::new(
                org.limits.token_budget,
                org.limits.window,
                options.workers as u32,
                Duration::from_secs(2),
            );
            vec![App::build_with_budget(settings, Arc::new(naive)).await?]
        }
    })
}

/// Recordings archived so far, every replica together.
fn archived(apps: &[App]) -> u64 {
    apps.iter().map(|a| PipelineStats::get(&a.stats.archived)).sum()
}

/// The platform's counts when the load ended, and when that was.
type AtDrain = Option<(genesys_sim::stats::SimStats, Duration)>;

/// Runs the archivers for the load's duration, then drains them (in-flight work
/// finishes, none starts); how long it all took.
async fn drive(options: &LoadOptions, apps: &[App], sim: &Simulator) -> anyhow::Result<(Duration, AtDrain)> {
    let stats: Vec<Arc<PipelineStats>> = apps.iter().map(|a| a.stats.clone()).collect();
    let archived_now = move || -> u64 { stats.iter().map(|s| PipelineStats::get(&s.archived)).sum() };
    let shutdown = Shutdown::default();
    let started = Instant::now();
    let progress = {
        let (archived_now, sim_stats) = (archived_now.clone(), sim.total_stats_handle());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
            loop {
                tick.tick().await;
                let s = sim_stats();
                eprintln!(
                    "loadtest: {:>5.0} s, {} archived, {} API calls, {} 429s",
                    started.elapsed().as_secs_f64(),
                    archived_now(),
                    s.api_calls(),
                    s.refusals()
                );
            }
        })
    };
    // The platform's counts when the load ends and shutdown begins: utilization is the
    // budget used under load, not diluted by the drain (in-flight work finishing, none
    // started), whose length depends on what happens to be in flight.
    let at_drain = Arc::new(std::sync::Mutex::new(None));
    let stop = {
        let shutdown = shutdown.clone();
        let duration = options.duration;
        let (at_drain, sim_stats) = (at_drain.clone(), sim.total_stats_handle());
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            *at_drain.lock().unwrap() = Some((sim_stats(), started.elapsed()));
            shutdown.drain.cancel();
            tokio::time::sleep(Duration::from_secs(5)).await;
            shutdown.abort.cancel();
        })
    };
    futures_util::future::try_join_all(apps.iter().map(|app| app.run(Mode::Daemon, shutdown.clone()))).await?;
    let elapsed = started.elapsed();
    progress.abort();
    stop.abort();
    let at_drain = at_drain.lock().unwrap().take();
    Ok((elapsed, at_drain))
}

/// The run's figures.
fn report(options: &LoadOptions, apps: &[App], sim: &Simulator, elapsed: Duration, at_drain: AtDrain) -> LoadReport {
    let (orgs, replicas) = (sim.orgs().len(), apps.len());
    let transcode_time = sim.orgs()[0].config().transcode_time;
    let stats = sim.total_stats();
    let api_calls: BTreeMap<String, u64> = Endpoint::ALL
        .iter()
        .map(|e| (e.as_str().to_owned(), stats.calls(e.as_str())))
        .collect();
    let total = stats.api_calls();
    let refused = stats.refusals();
    let archived = archived(apps);
    let (loaded, load_time) = at_drain.unwrap_or((stats.clone(), elapsed));
    let accepted_token_calls =
        loaded.api_calls() - loaded.refusals() - loaded.calls("token") + loaded.count("token", "429");
    let allowed =
        f64::from(options.platform_rpm) * orgs as f64 * load_time.as_secs_f64() / options.window.as_secs_f64();
    // Every replica's samples together.
    let merged = |of: fn(&PipelineStats) -> Vec<f64>| {
        let mut all: Vec<f64> = apps.iter().flat_map(|a| of(&a.stats)).collect();
        all.sort_by(f64::total_cmp);
        all
    };
    let lags = merged(|s| s.lags.lock().unwrap().sorted());
    let transfers = merged(|s| s.transfers.lock().unwrap().sorted());
    let transfer_p99 = percentile(&transfers, 99.0);
    let bytes: u64 = apps.iter().map(|a| PipelineStats::get(&a.stats.bytes)).sum();
    LoadReport {
        strategy: options.strategy,
        orgs,
        replicas,
        shared_budget: options.shared_budget.is_some(),
        recordings_per_minute: archived as f64 * 60.0 / elapsed.as_secs_f64(),
        elapsed_s: elapsed.as_secs_f64(),
        api_calls,
        api_calls_total: total,
        calls_per_recording: (total - stats.calls("token")) as f64 / archived.max(1) as f64,
        handoff_calls_per_recording: stats.calls(Endpoint::RecordingRetention.as_str()) as f64 / archived.max(1) as f64,
        rate_limited: refused,
        rate_limited_share: if total == 0 { 0.0 } else { refused as f64 / total as f64 },
        budget_utilization: accepted_token_calls as f64 / allowed.max(1.0),
        recordings_archived: archived,
        bytes_archived: bytes,
        mb_per_s: bytes as f64 / 1e6 / elapsed.as_secs_f64(),
        lag_p50_s: percentile(&lags, 50.0),
        lag_p95_s: percentile(&lags, 95.0),
        lag_p99_s: percentile(&lags, 99.0),
        lag_max_s: lags.last().copied().unwrap_or(0.0),
        transfer_p99_s: transfer_p99,
        lag_target_s: (options.poll_interval + options.upload_time + transcode_time).as_secs_f64() + transfer_p99,
        peak_rss_mib: peak_rss_mib(),
    }
}
