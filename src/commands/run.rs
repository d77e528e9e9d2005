//! `run` and `backfill`: the daemon and its one-off runs; signals, start-up, exit codes.

use super::*;

/// Turns SIGINT/SIGTERM into a [`Shutdown`]: the first signal drains (no new work, and
/// in-flight uploads get `grace` to finish, then are aborted); a second signal exits at
/// once. systemd is told STOPPING.
/// After the grace period and the aborts it starts, how long the last writes may take
/// before the process exits regardless (grace 20 s + 5 s stays within Kubernetes' 30 s
/// and systemd's TimeoutStopSec).
const AFTER_ABORT: Duration = Duration::from_secs(5);

pub fn shutdown_on_signal(grace: Duration) -> Shutdown {
    let shutdown = Shutdown::default();
    let handle = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(
            message = "Shutdown requested; finishing in-flight uploads.",
            grace_s = grace.as_secs_f64()
        );
        crate::systemd::notify("STOPPING=1");
        handle.drain.cancel();
        let abort = handle.abort.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if !abort.is_cancelled() {
                tracing::warn!(message = "Grace period over; aborting the uploads still in flight.");
                abort.cancel();
            }
            // The grace period bounds the whole stop: aborts and last writes get a few
            // seconds more; a ledger or store that does not answer (PostgreSQL gone
            // during the stop would be waited for `outage_patience` on each write) is
            // not waited for. What was not written is what a start recovers anyway
            // (claims run out or are re-queued, open uploads are journalled).
            tokio::time::sleep(AFTER_ABORT).await;
            tracing::error!(
                message = "The stop outlasted the grace period; exiting, leaving what could not be written for recovery at the next start."
            );
            crate::systemd::notify("STOPPING=1");
            std::process::exit(0);
        });
        wait_for_signal().await;
        eprintln!("second signal: exiting at once");
        std::process::exit(130);
    });
    shutdown
}

/// SIGHUP asks a daemon with several orgs to read its org set again (`systemctl reload`,
/// `kill -HUP`); `orgs_reload_interval` reads it too, which is what picks up a changed
/// Kubernetes Secret mounted as orgs.d.
fn reload_on_sighup() -> Arc<tokio::sync::Notify> {
    let reload = Arc::new(tokio::sync::Notify::new());
    #[cfg(unix)]
    {
        let notify = reload.clone();
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(mut hangup) => {
                tokio::spawn(async move {
                    while hangup.recv().await.is_some() {
                        tracing::info!(message = "SIGHUP: reading the configuration again.");
                        notify.notify_one();
                    }
                });
            }
            Err(error) => {
                tracing::warn!(message = "SIGHUP cannot be handled; orgs are read again only on the interval.", %error)
            }
        }
    }
    reload
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// An org's start failed: exit 2 when the bucket refuses what the configuration asks
/// (a configuration to mend: the key and the bucket named), 1 otherwise.
fn start_failed(error: crate::app::BuildError) -> ExitCode {
    match error {
        crate::app::BuildError::Sink(crate::sink::SinkError::Refused(why)) => {
            tracing::error!(message = "The bucket refuses what the configuration asks.", error = %why);
            eprintln!("error: {why}");
            ExitCode::from(2)
        }
        other => failure(other),
    }
}

/// Builds the app and starts its operations side (metrics, health, watchdog).
async fn start(settings: Settings) -> Result<App, ExitCode> {
    let app = App::build(settings).await.map_err(start_failed)?;
    app.start_operations()
        .await
        .map_err(|e| failure(format!("telemetry.metrics_listen: {e}")))?;
    Ok(app)
}

/// `run [--once]`. Live before ready: the operations listener answers and systemd
/// hears READY as soon as the ledger is open; `/readyz` says `starting` until every org
/// is started (each may take minutes of retries against a slow platform), so neither
/// a liveness probe nor systemd's start timeout kills a start that is only slow.
pub async fn run(settings: Settings, once: bool, reread: Option<crate::app::Reread>) -> ExitCode {
    let shutdown = shutdown_on_signal(settings.workers.shutdown_grace);
    let mut app = match App::open(settings).await {
        Ok(app) => app,
        Err(error) => return failure(error),
    };
    app.reread = reread;
    if let Err(error) = app.serve_operations().await {
        return failure(format!("telemetry.metrics_listen: {error}"));
    }
    crate::systemd::notify("READY=1");
    let started = tokio::select! {
        started = app.start_orgs(None) => started,
        // A stop asked for while the orgs start: nothing is claimed yet.
        _ = shutdown.drain.cancelled() => return ExitCode::SUCCESS,
    };
    if let Err(error) = started {
        return start_failed(error);
    }
    app.probe_readiness();
    let mode = if once { Mode::Once } else { Mode::Daemon };
    finish(app.run_reloading(mode, shutdown, reload_on_sighup()).await, once)
}

/// `backfill --from --to`.
pub async fn backfill(settings: Settings, from: DateTime<Utc>, to: DateTime<Utc>) -> ExitCode {
    if to <= from {
        return failure("--to must be after --from");
    }
    let shutdown = shutdown_on_signal(settings.workers.shutdown_grace);
    let app = match start(settings).await {
        Ok(app) => app,
        Err(code) => return code,
    };
    let progress = tokio::spawn(show_progress(app.orgs.iter().map(|o| o.ledger.clone()).collect()));
    let result = app.run(Mode::Backfill { from, to }, shutdown).await;
    progress.abort();
    finish(result, true)
}

/// The exit code of a run that ended without an error. For a run that was meant to
/// finish (`--once`, `backfill`): failed recordings first (3), then conversations left
/// for a later run (4). The daemon stopped by a signal exits 0 whatever the ledger
/// holds: failed recordings are an operator's matter (`status`, the metrics), not a
/// failed stop that systemd or Kubernetes should report.
fn finish(result: Result<StatusReport, crate::pipeline::RunError>, once: bool) -> ExitCode {
    match result {
        Ok(report) => {
            let failed = report.recordings_in(State::Failed);
            let waiting = report.conversations_waiting();
            report_summary(&report);
            if once && failed > 0 {
                ExitCode::from(EXIT_FAILED_RECORDINGS)
            } else if once && waiting > 0 {
                let count = |s| report.conversations_in(s);
                tracing::info!(
                    message = "Conversations left for a later run (exit 4): still active, or ended but within \
                               discovery.settle_after_end; the next run or the daemon looks at them again.",
                    conversations = waiting,
                    still_active = count(ConversationState::Active),
                    not_settled = count(ConversationState::Ended) + count(ConversationState::Checking),
                );
                ExitCode::from(EXIT_CONVERSATIONS_WAITING)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => failure(e),
    }
}

/// The run's closing summary: one log event with the counts when logs are JSON, the
/// state table (as `status` prints it) for a person reading text.
fn report_summary(report: &StatusReport) {
    if !crate::telemetry::is_json() {
        eprintln!("{}", render_status(report));
        return;
    }
    let count = |s| report.recordings_in(s);
    let conversations = |s| report.conversations_in(s);
    tracing::info!(
        message = "Run finished.",
        archived = count(State::Archived),
        parked = count(State::Parked),
        failed = count(State::Failed),
        discovered = count(State::Discovered),
        transcoding = count(State::Transcoding),
        retrying = count(State::Retrying),
        uploading = count(State::Uploading),
        conversations_active = conversations(ConversationState::Active),
        conversations_waiting = report.conversations_waiting(),
        conversations_settled = conversations(ConversationState::Settled),
        conversations_parked = conversations(ConversationState::Parked),
        oldest_unarchived = report.oldest_unarchived.as_ref().map(|(id, _)| id.as_str()),
        watermark = report
            .watermark
            .map(|w| w.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
}

/// A progress bar on a terminal, a log line every 10 seconds otherwise.
/// Progress over every org's ledger view.
async fn show_progress(ledgers: Vec<Arc<dyn Ledger>>) {
    let terminal = std::io::stderr().is_terminal();
    let bar = terminal.then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} recordings done ({msg}) {elapsed}")
                .expect("static template"),
        );
        bar
    });
    let mut tick = tokio::time::interval(if terminal {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(10)
    });
    loop {
        tick.tick().await;
        let mut report = crate::ledger::StatusReport::default();
        for ledger in &ledgers {
            if let Ok(one) = ledger.status().await {
                report.merge(one);
            }
        }
        let get = |s| report.recordings_in(s);
        let done = get(State::Archived) + get(State::Parked) + get(State::Failed);
        let total: u64 = report.counts.values().sum();
        match &bar {
            Some(bar) => {
                bar.set_length(total);
                bar.set_position(done);
                bar.set_message(format!(
                    "{} archived, {} parked, {} failed",
                    get(State::Archived),
                    get(State::Parked),
                    get(State::Failed)
                ));
            }
            None => tracing::info!(
                message = "Backfill progress.",
                done,
                total,
                archived = get(State::Archived),
                parked = get(State::Parked),
                failed = get(State::Failed),
            ),
        }
    }
}
