//! The `genesys-archiver` command line: parses arguments, sets up logging, loads and
//! validates configuration, and hands over to the library.

use clap::{Args, Parser, Subcommand};
use genesys_archiver::config::{ConfigError, Settings, Sources};
use genesys_archiver::genesys::Endpoint;
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
    /// Log format; JSON by default unless stdout is a terminal.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a configuration file (and the environment overrides) and exit.
    CheckConfig(ConfigArg),
    /// Run the Genesys Cloud simulator (for demos, load tests and local development).
    Sim(SimArgs),
}

#[derive(Args)]
struct ConfigArg {
    /// TOML configuration file; GENESYS_ARCHIVER__SECTION__KEY variables override it.
    #[arg(long, short)]
    config: PathBuf,
}

#[derive(Args)]
struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format.unwrap_or_else(LogFormat::detect), "info");
    match cli.command {
        Command::CheckConfig(args) => match load(&args.config) {
            Ok(settings) => {
                println!(
                    "configuration is valid: api {} with a budget of {} requests per {:?}, {} workers",
                    settings.genesys.api_url,
                    settings.limits.token_budget,
                    settings.limits.window,
                    settings.workers.count
                );
                ExitCode::SUCCESS
            }
            Err(error) => config_failure(error),
        },
        Command::Sim(args) => run_sim(args).await,
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
    eprintln!(
        "Genesys Cloud simulator on {url} ({n} recordings; statistics at {url}/sim/stats).\n\
         An archiver configuration that points at it:\n\n{config}",
        url = sim.url(),
        n = sim.catalog().len(),
        config = sim.client_config(),
    );
    tokio::select! {
        _ = sim.run_forever() => ExitCode::FAILURE,
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
    }
}
