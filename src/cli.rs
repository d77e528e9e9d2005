//! The command line's shape (clap): the commands, their arguments and how values parse.

use clap::{Args, Parser, Subcommand};
use genesys_archiver::telemetry::LogFormat;
use genesys_sim::Endpoint as SimEndpoint;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "genesys-archiver",
    version,
    about = "Archives Genesys Cloud screen recordings into S3 within the platform's rate budget."
)]
pub(crate) struct Cli {
    /// Log format (logs go to stderr); JSON by default unless stderr is a terminal.
    #[arg(long, global = true, value_enum)]
    pub(crate) log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
pub(crate) enum ListState {
    Failed,
    Parked,
    Waiting,
    /// Archived and their retention handed off to Genesys (the date before and after).
    HandedOff,
}

#[derive(Args)]
pub(crate) struct LoadArgs {
    /// How long to run, e.g. "120s".
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub(crate) duration: Duration,
    /// Simulated agents taking sessions.
    #[arg(long, default_value_t = 500)]
    pub(crate) agents: u32,
    /// Sessions each agent starts per hour (each a conversation that goes on for a
    /// session length, then ends; its recordings are listed after its end).
    #[arg(long, default_value_t = 6.0)]
    pub(crate) sessions_per_agent_hour: f64,
    /// Shortest and longest session, e.g. `10s-150s` (default: 1 to 15 minutes, compressed
    /// like the window is: `window / 60s` of it).
    #[arg(long, value_parser = parse_duration_range)]
    pub(crate) session_length: Option<(Duration, Duration)>,
    /// Longest upload after a session's end (recordings are UPLOADING until then);
    /// default: 5 s compressed like the window. The archiver's settle_after_end is set to it.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) upload_time: Option<Duration>,
    /// Mean screen recordings per recorded conversation, from 1.0 to 2.0.
    #[arg(long, default_value_t = 1.3)]
    pub(crate) screens_per_conversation: f64,
    /// `conversation` (one listing call per conversation) or `recording`
    /// (recordingmetadata, then one call per recording: the flow before the listing call).
    #[arg(long, default_value = "conversation")]
    pub(crate) fetch_mode: String,
    /// Longest interval between re-reads of an active conversation (default: 6 poll
    /// intervals, as the daemon's default of 10 minutes is for its 1-minute poll).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) recheck_max: Option<Duration>,
    /// How much of the previous window each pass reads again. The simulated analytics
    /// store has no lag, so a little covers clock jitter; a real org needs more.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub(crate) overlap: Duration,
    /// Conversations already waiting at the start.
    #[arg(long, default_value_t = 0)]
    pub(crate) backlog: usize,
    /// Smallest and largest recording size in bytes, e.g. `1048576-8388608`.
    #[arg(long, default_value = "262144-2097152", value_parser = parse_range)]
    pub(crate) media_size: (u64, u64),
    /// Counting window of the platform (and of the archiver's budget).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) window: Duration,
    /// The platform's per-token limit per window.
    #[arg(long, default_value_t = 300)]
    pub(crate) platform_rpm: u32,
    /// A platform per-endpoint limit per window, e.g. `recording=240` (repeatable).
    #[arg(long = "platform-endpoint-limit", value_parser = parse_endpoint_limit)]
    pub(crate) platform_endpoint_limits: Vec<(SimEndpoint, u32)>,
    /// Share of 429s that carry Retry-After.
    #[arg(long, default_value_t = 0.8)]
    pub(crate) retry_after_share: f64,
    /// The platform sends no inin-ratelimit-* headers.
    #[arg(long)]
    pub(crate) no_ratelimit_headers: bool,
    /// The platform counts --platform-rpm per OAuth client (all tokens of the org
    /// together) instead of per access token as documented: the stricter reading, for
    /// replicas that each log in.
    #[arg(long)]
    pub(crate) platform_limit_per_client: bool,
    /// The archiver's configured per-token budget (default: the platform's).
    #[arg(long)]
    pub(crate) budget_rpm: Option<u32>,
    /// Workers.
    #[arg(long, default_value_t = 8)]
    pub(crate) workers: usize,
    /// Multipart part size (S3 sink).
    #[arg(long, default_value = "8MiB")]
    pub(crate) part_size: String,
    /// Discovery interval.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) poll_interval: Duration,
    /// `ours` (the shared budget) or `naive` (self-paced workers, private backoff).
    #[arg(long, value_enum, default_value = "ours")]
    pub(crate) strategy: genesys_archiver::loadtest::Strategy,
    /// A configuration file whose [sink] and [s3] sections to use (default: a file sink).
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Hand each archived recording's retention back to Genesys (`[retention]
    /// genesys_delete_after`, e.g. "30d"): its calls are counted per recording. Needs
    /// `--config` with an S3 sink (the copy is verified by the store first).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) handoff: Option<Duration>,
    /// The report as JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Seed of the simulated org.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Orgs served by the one process, each a simulated org with this load and its own
    /// budget (--platform-rpm each), archived under `{org}/`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=500))]
    pub(crate) orgs: u16,
    /// Replicas of the archiver in this process, each with its own ledger connections,
    /// budget, token and workers; above 1 they need --ledger-url (one PostgreSQL ledger).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub(crate) replicas: u16,
    /// The replicas' PostgreSQL ledger, `postgres://…` (default: a SQLite file).
    #[arg(long)]
    pub(crate) ledger_url: Option<String>,
    /// The budget shared by the replicas in Redis, `redis://…` (default: each replica
    /// its local budget, the naive case).
    #[arg(long)]
    pub(crate) shared: Option<String>,
}

#[derive(Args)]
pub(crate) struct ConfigArg {
    /// TOML configuration file; GENESYS_ARCHIVER__SECTION__KEY variables override it.
    #[arg(long, short)]
    pub(crate) config: PathBuf,
}

/// `--org NAME` of the ledger commands.
#[derive(Args)]
pub(crate) struct OrgArg {
    /// Only this org (as named in the configuration; `default` for a single-org one);
    /// every org in the ledger when left out.
    #[arg(long, value_parser = org_name)]
    pub(crate) org: Option<String>,
}

pub(crate) fn org_name(value: &str) -> Result<String, String> {
    genesys_archiver::config::orgs::check_name(value).map(|()| value.to_owned())
}

#[derive(Args)]
pub(crate) struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub(crate) listen: SocketAddr,
    /// Where the printed configuration archives to (files) and keeps its ledger.
    #[arg(long, default_value = "sim-archive")]
    pub(crate) archive_dir: String,
    /// Seed of ids, sizes and states.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Conversations present at start.
    #[arg(long, default_value_t = 40)]
    pub(crate) conversations: usize,
    /// Conversations added per minute while running.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) new_per_minute: f64,
    /// Counting window of every limit, e.g. "60s".
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) window: Duration,
    /// Requests per window per access token.
    #[arg(long, default_value_t = 300)]
    pub(crate) token_limit: u32,
    /// Per-endpoint limit per window, e.g. `recording=240` (repeatable).
    #[arg(long = "endpoint-limit", value_parser = parse_endpoint_limit)]
    pub(crate) endpoint_limits: Vec<(SimEndpoint, u32)>,
    /// Share of 429s that carry Retry-After.
    #[arg(long, default_value_t = 0.8)]
    pub(crate) retry_after_share: f64,
    /// Do not send inin-ratelimit-* headers.
    #[arg(long)]
    pub(crate) no_ratelimit_headers: bool,
    /// How long a recording answers 202 after it is first requested.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub(crate) transcode_time: Duration,
    /// Lifetime of signed download URLs.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub(crate) url_ttl: Duration,
    /// Smallest and largest media size in bytes, e.g. `262144-2097152`.
    #[arg(long, default_value = "262144-2097152", value_parser = parse_range)]
    pub(crate) media_size: (u64, u64),
    /// Share of download URLs issued already expired.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) stale_url_share: f64,
    /// Share of media downloads whose connection drops halfway.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) media_drop_share: f64,
    /// Share of media downloads that end cleanly halfway, without Content-Length.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) media_truncate_share: f64,
    /// Added latency of every API answer.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub(crate) latency: Duration,
    /// Share of API calls answered 502/503/504.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) error_share: f64,
    /// Share of API calls whose connection drops mid-body.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) drop_share: f64,
}

/// `ENDPOINT=LIMIT`: a limit of the simulated platform, by the simulator's own names.
pub(crate) fn parse_endpoint_limit(s: &str) -> Result<(SimEndpoint, u32), String> {
    let (name, limit) = s.split_once('=').ok_or("expected ENDPOINT=LIMIT")?;
    Ok((
        name.parse()?,
        limit.parse().map_err(|_| format!("`{limit}` is not a number"))?,
    ))
}

pub(crate) fn parse_duration_range(s: &str) -> Result<(Duration, Duration), String> {
    let (a, b) = s.split_once('-').ok_or("expected SHORTEST-LONGEST, e.g. 10s-150s")?;
    let a = humantime::parse_duration(a.trim()).map_err(|e| e.to_string())?;
    let b = humantime::parse_duration(b.trim()).map_err(|e| e.to_string())?;
    if b < a {
        return Err("the longest must not be shorter than the shortest".into());
    }
    Ok((a, b))
}

pub(crate) fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (lo, hi) = s.split_once('-').unwrap_or((s, s));
    let lo: u64 = lo.trim().parse().map_err(|_| format!("`{lo}` is not a number"))?;
    let hi: u64 = hi.trim().parse().map_err(|_| format!("`{hi}` is not a number"))?;
    if lo > hi {
        return Err("the smallest size is larger than the largest".into());
    }
    Ok((lo, hi))
}
