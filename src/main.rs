//! The `genesys-archiver` command line: parses arguments, sets up logging, loads and
//! validates configuration, and hands over to the library.

use clap::Parser;
use genesys_archiver::commands;
use genesys_archiver::config::{ConfigError, Settings, Sources};
use genesys_archiver::demo::{self, DemoOptions};
use genesys_archiver::ledger::{ListFilter, ParkedSelection};
use genesys_archiver::telemetry::{self, LogFormat};
use genesys_sim::{SimConfig, Simulator};
use std::process::ExitCode;
use std::time::Duration;

mod cli;

use cli::*;

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
