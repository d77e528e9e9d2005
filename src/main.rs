//! The `genesys-archiver` command line: parses arguments, sets up logging, loads and
//! validates configuration, and hands over to the library.

use clap::{Args, Parser, Subcommand};
use genesys_archiver::commands;
use genesys_archiver::config::{ConfigError, Settings, Sources};
use genesys_archiver::demo::{self, DemoOptions};
use genesys_archiver::genesys::Endpoint;
use genesys_archiver::ledger::{ListFilter, ParkedSelection};
use genesys_archiver::sim::{SimConfig, Simulator};
use genesys_archiver::telemetry::{self, LogFormat};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "genesys-archiver",
    version,
    about = "Archives Genesys Cloud screen recordings into S3 within the platform's rate budget."
)]
struct Cli {
    /// Log format (logs go to stderr); JSON by default unless stderr is a terminal.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the archiver: discover, fetch and archive, every poll interval.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// One discovery pass, archive everything found, then exit (0: nothing left but
        /// archived or parked recordings; 3: some failed for good).
        #[arg(long)]
        once: bool,
    },
    /// Archive the recordings of conversations that started in a past window.
    Backfill {
        #[command(flatten)]
        config: ConfigArg,
        /// Start of the window (RFC 3339), inclusive.
        #[arg(long)]
        from: chrono::DateTime<chrono::Utc>,
        /// End of the window (RFC 3339), exclusive.
        #[arg(long)]
        to: chrono::DateTime<chrono::Utc>,
    },
    /// Prove a range complete: what Genesys lists, what the ledger says and what the
    /// bucket holds, compared; one line per recording, object or manifest that is not
    /// archived and verified, then a summary. Exit 0: complete; 5: not; 1: could not
    /// compare.
    Reconcile {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        org: OrgArg,
        /// Start of the range of conversation starts (RFC 3339), inclusive.
        #[arg(long)]
        from: chrono::DateTime<chrono::Utc>,
        /// End of the range (RFC 3339), exclusive.
        #[arg(long)]
        to: chrono::DateTime<chrono::Utc>,
        /// JSON instead of lines.
        #[arg(long)]
        json: bool,
        /// Read every archived object back and check its SHA-256 (a GET per object).
        #[arg(long)]
        bytes: bool,
        /// Compare the ledger and the bucket only; no API call.
        #[arg(long)]
        offline: bool,
        /// Most API calls a minute it spends (its own token; a running daemon keeps the rest).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
        rpm: u32,
    },
    /// Counts per state, the oldest unarchived recording and its age, the watermark.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        org: OrgArg,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Recordings that failed, are parked or are waiting, with the reason (oldest first).
    /// Needs only the [ledger] part of the configuration.
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        org: OrgArg,
        /// Which recordings: failed, parked, or waiting (not finished yet).
        #[arg(long, value_enum)]
        state: ListState,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Most rows shown.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Put recordings that failed for good back in the queue (with --parked: parked
    /// ones, e.g. restored in Genesys). Needs only the [ledger] part of the configuration.
    Retry {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        org: OrgArg,
        /// Parked recordings instead of failed ones (all of them without --reason or --id).
        #[arg(long)]
        parked: bool,
        /// Only parked recordings whose reason contains this text (case-insensitive).
        #[arg(long, requires = "parked", conflicts_with = "id")]
        reason: Option<String>,
        /// Only this parked recording.
        #[arg(long, requires = "parked")]
        id: Option<String>,
    },
    /// Copy a SQLite ledger into the PostgreSQL ledger the configuration names
    /// ([ledger] url), before starting replicas on it. The daemon that used the file
    /// must be stopped. Running it again copies only what is missing.
    MigrateLedger {
        #[command(flatten)]
        config: ConfigArg,
        /// The SQLite ledger file (the single-process daemon's [ledger] path).
        #[arg(long)]
        from: PathBuf,
    },
    /// Validate a configuration file (and the environment overrides) and exit.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
        /// Also get a token from Genesys and check that the sink answers.
        #[arg(long)]
        connect: bool,
    },
    /// Archive a simulated organization into a local directory; no credentials needed.
    Demo {
        /// Directory for the archive and the ledger (default: a new temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Conversations in the simulated organization.
        #[arg(long, default_value_t = 40)]
        conversations: usize,
        /// Workers.
        #[arg(long, default_value_t = 8)]
        workers: usize,
    },
    /// Run the simulator and the archiver in one process under load, then report.
    Loadtest(LoadArgs),
    /// Run the Genesys Cloud simulator (for demos, load tests and local development).
    Sim(SimArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ListState {
    Failed,
    Parked,
    Waiting,
    /// Archived and their retention handed off to Genesys (the date before and after).
    HandedOff,
}

#[derive(Args)]
struct LoadArgs {
    /// How long to run, e.g. "120s".
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Simulated agents taking sessions.
    #[arg(long, default_value_t = 500)]
    agents: u32,
    /// Sessions each agent starts per hour (each a conversation that goes on for a
    /// session length, then ends; its recordings are listed after its end).
    #[arg(long, default_value_t = 6.0)]
    sessions_per_agent_hour: f64,
    /// Shortest and longest session, e.g. `10s-150s` (default: 1 to 15 minutes, compressed
    /// like the window is: `window / 60s` of it).
    #[arg(long, value_parser = parse_duration_range)]
    session_length: Option<(Duration, Duration)>,
    /// Longest upload after a session's end (recordings are UPLOADING until then);
    /// default: 5 s compressed like the window. The archiver's settle_after_end is set to it.
    #[arg(long, value_parser = humantime::parse_duration)]
    upload_time: Option<Duration>,
    /// Mean screen recordings per recorded conversation, from 1.0 to 2.0.
    #[arg(long, default_value_t = 1.3)]
    screens_per_conversation: f64,
    /// `conversation` (one listing call per conversation) or `recording`
    /// (recordingmetadata, then one call per recording: the flow before the listing call).
    #[arg(long, default_value = "conversation")]
    fetch_mode: String,
    /// Longest interval between re-reads of an active conversation (default: 6 poll
    /// intervals, as the daemon's default of 10 minutes is for its 1-minute poll).
    #[arg(long, value_parser = humantime::parse_duration)]
    recheck_max: Option<Duration>,
    /// How much of the previous window each pass reads again. The simulated analytics
    /// store has no lag, so a little covers clock jitter; a real org needs more.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    overlap: Duration,
    /// Conversations already waiting at the start.
    #[arg(long, default_value_t = 0)]
    backlog: usize,
    /// Smallest and largest recording size in bytes, e.g. `1048576-8388608`.
    #[arg(long, default_value = "262144-2097152", value_parser = parse_range)]
    media_size: (u64, u64),
    /// Counting window of the platform (and of the archiver's budget).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    window: Duration,
    /// The platform's per-token limit per window.
    #[arg(long, default_value_t = 300)]
    platform_rpm: u32,
    /// A platform per-endpoint limit per window, e.g. `recording=240` (repeatable).
    #[arg(long = "platform-endpoint-limit", value_parser = parse_endpoint_limit)]
    platform_endpoint_limits: Vec<(Endpoint, u32)>,
    /// Share of 429s that carry Retry-After.
    #[arg(long, default_value_t = 0.8)]
    retry_after_share: f64,
    /// The platform sends no inin-ratelimit-* headers.
    #[arg(long)]
    no_ratelimit_headers: bool,
    /// The platform counts --platform-rpm per OAuth client (all tokens of the org
    /// together) instead of per access token as documented: the stricter reading, for
    /// replicas that each log in.
    #[arg(long)]
    platform_limit_per_client: bool,
    /// The archiver's configured per-token budget (default: the platform's).
    #[arg(long)]
    budget_rpm: Option<u32>,
    /// Workers.
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// Multipart part size (S3 sink).
    #[arg(long, default_value = "8MiB")]
    part_size: String,
    /// Discovery interval.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    poll_interval: Duration,
    /// `ours` (the shared budget) or `naive` (self-paced workers, private backoff).
    #[arg(long, value_enum, default_value = "ours")]
    strategy: genesys_archiver::loadtest::Strategy,
    /// A configuration file whose [sink] and [s3] sections to use (default: a file sink).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Hand each archived recording's retention back to Genesys (`[retention]
    /// genesys_delete_after`, e.g. "30d"): its calls are counted per recording. Needs
    /// `--config` with an S3 sink (the copy is verified by the store first).
    #[arg(long, value_parser = humantime::parse_duration)]
    handoff: Option<Duration>,
    /// The report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Seed of the simulated org.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Orgs served by the one process, each a simulated org with this load and its own
    /// budget (--platform-rpm each), archived under `{org}/`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=500))]
    orgs: u16,
    /// Replicas of the archiver in this process, each with its own ledger connections,
    /// budget, token and workers; above 1 they need --ledger-url (one PostgreSQL ledger).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    replicas: u16,
    /// The replicas' PostgreSQL ledger, `postgres://…` (default: a SQLite file).
    #[arg(long)]
    ledger_url: Option<String>,
    /// The budget shared by the replicas in Redis, `redis://…` (default: each replica
    /// its local budget, the naive case).
    #[arg(long)]
    shared: Option<String>,
}

#[derive(Args)]
struct ConfigArg {
    /// TOML configuration file; GENESYS_ARCHIVER__SECTION__KEY variables override it.
    #[arg(long, short)]
    config: PathBuf,
}

/// `--org NAME` of the ledger commands.
#[derive(Args)]
struct OrgArg {
    /// Only this org (as named in the configuration; `default` for a single-org one);
    /// every org in the ledger when left out.
    #[arg(long, value_parser = org_name)]
    org: Option<String>,
}

fn org_name(value: &str) -> Result<String, String> {
    genesys_archiver::config::orgs::check_name(value).map(|()| value.to_owned())
}

#[derive(Args)]
struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// Where the printed configuration archives to (files) and keeps its ledger.
    #[arg(long, default_value = "sim-archive")]
    archive_dir: String,
    /// Seed of ids, sizes and states.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Conversations present at start.
    #[arg(long, default_value_t = 40)]
    conversations: usize,
    /// Conversations added per minute while running.
    #[arg(long, default_value_t = 0.0)]
    new_per_minute: f64,
    /// Counting window of every limit, e.g. "60s".
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    window: Duration,
    /// Requests per window per access token.
    #[arg(long, default_value_t = 300)]
    token_limit: u32,
    /// Per-endpoint limit per window, e.g. `recording=240` (repeatable).
    #[arg(long = "endpoint-limit", value_parser = parse_endpoint_limit)]
    endpoint_limits: Vec<(Endpoint, u32)>,
    /// Share of 429s that carry Retry-After.
    #[arg(long, default_value_t = 0.8)]
    retry_after_share: f64,
    /// Do not send inin-ratelimit-* headers.
    #[arg(long)]
    no_ratelimit_headers: bool,
    /// How long a recording answers 202 after it is first requested.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    transcode_time: Duration,
    /// Lifetime of signed download URLs.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    url_ttl: Duration,
    /// Smallest and largest media size in bytes, e.g. `262144-2097152`.
    #[arg(long, default_value = "262144-2097152", value_parser = parse_range)]
    media_size: (u64, u64),
    /// Share of download URLs issued already expired.
    #[arg(long, default_value_t = 0.0)]
    stale_url_share: f64,
    /// Share of media downloads whose connection drops halfway.
    #[arg(long, default_value_t = 0.0)]
    media_drop_share: f64,
    /// Share of media downloads that end cleanly halfway, without Content-Length.
    #[arg(long, default_value_t = 0.0)]
    media_truncate_share: f64,
    /// Added latency of every API answer.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    latency: Duration,
    /// Share of API calls answered 502/503/504.
    #[arg(long, default_value_t = 0.0)]
    error_share: f64,
    /// Share of API calls whose connection drops mid-body.
    #[arg(long, default_value_t = 0.0)]
    drop_share: f64,
}

fn parse_endpoint_limit(s: &str) -> Result<(Endpoint, u32), String> {
    let (name, limit) = s.split_once('=').ok_or("expected ENDPOINT=LIMIT")?;
    let endpoint = Endpoint::ALL
        .into_iter()
        .find(|e| e.as_str() == name)
        .ok_or(format!("unknown endpoint `{name}`"))?;
    Ok((
        endpoint,
        limit.parse().map_err(|_| format!("`{limit}` is not a number"))?,
    ))
}

fn parse_duration_range(s: &str) -> Result<(Duration, Duration), String> {
    let (a, b) = s.split_once('-').ok_or("expected SHORTEST-LONGEST, e.g. 10s-150s")?;
    let a = humantime::parse_duration(a.trim()).map_err(|e| e.to_string())?;
    let b = humantime::parse_duration(b.trim()).map_err(|e| e.to_string())?;
    if b < a {
        return Err("the longest must not be shorter than the shortest".into());
    }
    Ok((a, b))
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (lo, hi) = s.split_once('-').unwrap_or((s, s));
    let lo: u64 = lo.trim().parse().map_err(|_| format!("`{lo}` is not a number"))?;
    let hi: u64 = hi.trim().parse().map_err(|_| format!("`{hi}` is not a number"))?;
    if lo > hi {
        return Err("the smallest size is larger than the largest".into());
    }
    Ok((lo, hi))
}

fn load(path: &std::path::Path) -> Result<Settings, ConfigError> {
    Sources {
        file: Some(path),
        ..Default::default()
    }
    .load()
}

/// Bad configuration: one line naming the key, exit code 2, nothing started.
fn config_failure(error: ConfigError) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    // Before the runtime starts its threads.
    genesys_archiver::allocator::return_large_blocks_to_the_os();
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(run_cli()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_cli() -> ExitCode {
    let cli = Cli::parse();
    let log_format = cli.log_format;
    let uses_config = matches!(
        cli.command,
        Command::Run { .. }
            | Command::Backfill { .. }
            | Command::Reconcile { .. }
            | Command::Status { .. }
            | Command::List { .. }
            | Command::Retry { .. }
            | Command::MigrateLedger { .. }
            | Command::CheckConfig { .. }
    );
    if !uses_config {
        // The demo's and load test's product is their table; their per-recording lines only at `warn`+.
        let level = if matches!(cli.command, Command::Demo { .. } | Command::Loadtest(_)) {
            "warn"
        } else {
            "info"
        };
        telemetry::init(log_format.unwrap_or_else(LogFormat::detect), level);
    }
    // Commands with a configuration log as its [telemetry] says, --log-format winning.
    let settings = |arg: &ConfigArg| {
        let settings = load(&arg.config)?;
        telemetry::init(
            log_format.unwrap_or(settings.telemetry.log_format),
            &settings.telemetry.log_level,
        );
        if let Some(warning) = genesys_archiver::config::exposure::secret_exposure(&arg.config) {
            tracing::warn!(message = "The configuration exposes secrets to every user of this machine.", detail = %warning);
        }
        Ok::<_, ConfigError>(settings)
    };
    // The ledger commands check only [ledger] and [telemetry]: no credentials needed.
    let ledger_part = |arg: &ConfigArg| {
        let part = Sources {
            file: Some(&arg.config),
            ..Default::default()
        }
        .load_ledger_part()?;
        telemetry::init(
            log_format.unwrap_or(part.telemetry.log_format),
            &part.telemetry.log_level,
        );
        Ok::<_, ConfigError>(part)
    };
    match cli.command {
        Command::Run { config, once } => match settings(&config) {
            Ok(s) => {
                // SIGHUP reads the whole configuration again, as at start.
                let path = config.config.clone();
                commands::run(s, once, Some(std::sync::Arc::new(move || load(&path)))).await
            }
            Err(e) => config_failure(e),
        },
        Command::Backfill { config, from, to } => match settings(&config) {
            Ok(s) => commands::backfill(s, from, to).await,
            Err(e) => config_failure(e),
        },
        Command::Reconcile {
            config,
            org,
            from,
            to,
            json,
            bytes,
            offline,
            rpm,
        } => match settings(&config) {
            Ok(s) => {
                let args = commands::ReconcileArgs {
                    from,
                    to,
                    org: org.org,
                    json,
                    bytes,
                    offline,
                    rpm,
                };
                commands::reconcile(s, args).await
            }
            Err(e) => config_failure(e),
        },
        Command::Status { config, org, json } => match ledger_part(&config) {
            Ok(s) => commands::status(&s.ledger, org.org.as_deref(), json).await,
            Err(e) => config_failure(e),
        },
        Command::List {
            config,
            org,
            state,
            json,
            limit,
        } => match ledger_part(&config) {
            Ok(s) => {
                let filter = match state {
                    ListState::Failed => ListFilter::Failed,
                    ListState::Parked => ListFilter::Parked,
                    ListState::Waiting => ListFilter::Waiting,
                    ListState::HandedOff => ListFilter::HandedOff,
                };
                commands::list(&s.ledger, org.org.as_deref(), filter, json, limit).await
            }
            Err(e) => config_failure(e),
        },
        Command::Retry {
            config,
            org,
            parked,
            reason,
            id,
        } => match ledger_part(&config) {
            Ok(s) if parked => {
                let which = match (reason, id) {
                    (Some(text), _) => ParkedSelection::ReasonContains(text),
                    (None, Some(id)) => ParkedSelection::Id(id),
                    (None, None) => ParkedSelection::All,
                };
                commands::retry_parked(&s.ledger, org.org.as_deref(), which).await
            }
            Ok(s) => commands::retry(&s.ledger, org.org.as_deref()).await,
            Err(e) => config_failure(e),
        },
        Command::MigrateLedger { config, from } => match ledger_part(&config) {
            Ok(s) => commands::migrate_ledger(&s.ledger, &from).await,
            Err(e) => config_failure(e),
        },
        Command::CheckConfig { config, connect } => match settings(&config) {
            Ok(s) => commands::check_config(s, connect).await,
            Err(e) => config_failure(e),
        },
        Command::Demo {
            dir,
            conversations,
            workers,
        } => {
            let options = DemoOptions {
                directory: dir,
                conversations,
                workers,
            };
            match options.validate() {
                Ok(()) => run_demo(options).await,
                Err(e) => config_failure(e),
            }
        }
        Command::Loadtest(args) => run_loadtest(args).await,
        Command::Sim(args) => run_sim(args).await,
    }
}

async fn run_loadtest(args: LoadArgs) -> ExitCode {
    let options = genesys_archiver::loadtest::LoadOptions {
        duration: args.duration,
        agents: args.agents,
        sessions_per_agent_hour: args.sessions_per_agent_hour,
        session_length: args.session_length.unwrap_or_else(|| {
            let scale = args.window.as_secs_f64() / 60.0;
            (
                Duration::from_secs(60).mul_f64(scale),
                Duration::from_secs(900).mul_f64(scale),
            )
        }),
        upload_time: args
            .upload_time
            .unwrap_or_else(|| Duration::from_secs(5).mul_f64(args.window.as_secs_f64() / 60.0)),
        screens_per_conversation: args.screens_per_conversation.clamp(1.0, 2.0),
        fetch_mode: args.fetch_mode,
        recheck_max: args.recheck_max.unwrap_or(args.poll_interval * 6),
        overlap: args.overlap,
        backlog: args.backlog,
        media_size: args.media_size,
        window: args.window,
        platform_rpm: args.platform_rpm,
        platform_endpoint_limits: args.platform_endpoint_limits.into_iter().collect(),
        retry_after_share: args.retry_after_share,
        ratelimit_headers: !args.no_ratelimit_headers,
        platform_limit_per_client: args.platform_limit_per_client,
        budget_rpm: args.budget_rpm.unwrap_or(args.platform_rpm),
        workers: args.workers,
        part_size: args.part_size,
        poll_interval: args.poll_interval,
        strategy: args.strategy,
        sink_config: args.config,
        handoff: args.handoff,
        seed: args.seed,
        orgs: usize::from(args.orgs),
        replicas: usize::from(args.replicas),
        ledger_url: args.ledger_url,
        shared_budget: args.shared,
    };
    match genesys_archiver::loadtest::run(options).await {
        Ok(report) if args.json => {
            println!("{}", serde_json::to_string_pretty(&report).expect("report serializes"));
            ExitCode::SUCCESS
        }
        Ok(report) => {
            println!("\ngenesys-archiver loadtest\n\n{}", report.table());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_demo(options: DemoOptions) -> ExitCode {
    let shutdown = commands::shutdown_on_signal(Duration::from_secs(5));
    match demo::run(options, shutdown).await {
        Ok(summary) => {
            println!(
                "\ngenesys-archiver demo: the built-in simulator archived into a local directory\n\n{}",
                summary.table()
            );
            if summary.verified == summary.expected {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_sim(args: SimArgs) -> ExitCode {
    let mut config = SimConfig {
        seed: args.seed,
        conversations: args.conversations,
        new_conversations_per_minute: args.new_per_minute,
        window: args.window,
        token_limit: args.token_limit,
        retry_after_share: args.retry_after_share,
        ratelimit_headers: !args.no_ratelimit_headers,
        transcode_time: args.transcode_time,
        url_ttl: args.url_ttl,
        stale_url_share: args.stale_url_share,
        media_drop_share: args.media_drop_share,
        media_truncate_share: args.media_truncate_share,
        media_size: args.media_size,
        latency: args.latency,
        error_share: args.error_share,
        drop_share: args.drop_share,
        ..SimConfig::default()
    };
    config.endpoint_limits.extend(args.endpoint_limits);
    let sim = match Simulator::start(config, args.listen).await {
        Ok(sim) => sim,
        Err(error) => {
            eprintln!("error: cannot listen on {}: {error}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    // The configuration on stdout (`sim > sim.toml`), the words on stderr.
    // A reader that closes the pipe once it has the configuration does not stop the
    // simulator (println! would panic on the broken pipe).
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(sim.archiver_config(&args.archive_dir).as_bytes());
        let _ = out.flush();
    }
    eprintln!(
        "Genesys Cloud simulator on {url} ({n} recordings; statistics at {url}/sim/stats). \
         The archiver configuration for it is on stdout.",
        url = sim.url(),
        n = sim.catalog().len(),
    );
    tokio::select! {
        _ = sim.run_forever() => ExitCode::FAILURE,
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
    }
}
