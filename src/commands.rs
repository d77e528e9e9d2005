//! The bodies of the subcommands that work on a configuration.
//!
//! Each returns the process exit code. Configuration was validated before any of them
//! runs; an error here (ledger, sink, platform) is one `error:` line on stderr.

use crate::app::App;
use crate::config::Settings;
use crate::config::settings::LedgerSettings;
use crate::ledger::store::{LedgerBackend, LedgerStore};
use crate::ledger::{ConversationState, Ledger, ListFilter, ParkedSelection, RecordingRow, State, StatusReport};
use crate::pipeline::{Mode, Shutdown};
use crate::ratelimit::LocalBudget;
use chrono::{DateTime, Utc};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Exit code when some recordings failed for good.
pub const EXIT_FAILED_RECORDINGS: u8 = 3;
/// Exit code of `run --once` and `backfill` when conversations were left for a later
/// run: still active, or ended but not settled (their recordings not all listed yet).
pub const EXIT_CONVERSATIONS_WAITING: u8 = 4;

/// One error, exit 1: a JSON log event when logs are JSON (a log shipper parses every
/// stderr line), an `error:` line otherwise.
fn failure(error: impl std::fmt::Display) -> ExitCode {
    if crate::telemetry::is_json() {
        tracing::error!(message = "Command failed.", error = %error);
    } else {
        eprintln!("error: {error}");
    }
    ExitCode::FAILURE
}

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

pub fn render_status(report: &StatusReport) -> String {
    let mut out = String::from("state        recordings\n");
    for state in State::ALL {
        out.push_str(&format!("{:<12} {}\n", state.as_str(), report.recordings_in(state)));
    }
    match &report.oldest_unarchived {
        Some((id, at)) => {
            let age = Utc::now() - *at;
            out.push_str(&format!(
                "oldest unarchived: {id} (ended {}, {}h{:02}m ago)\n",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                age.num_hours(),
                age.num_minutes() % 60
            ));
        }
        None => out.push_str("oldest unarchived: none\n"),
    }
    if let Some((id, at)) = &report.soonest_deadline {
        let left = *at - Utc::now();
        let when = if left < chrono::Duration::zero() {
            format!("passed {} ago", short_age((-left).to_std().unwrap_or_default()))
        } else {
            format!("in {}", short_age(left.to_std().unwrap_or_default()))
        };
        out.push_str(&format!(
            "soonest deadline: {id} ({}, {when})\n",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    if let Some((id, at)) = &report.oldest_unsettled {
        out.push_str(&format!(
            "oldest unsettled conversation: {id} (ended {} ago)\n",
            short_age((Utc::now() - *at).to_std().unwrap_or_default())
        ));
    }
    let conversations = |s| report.conversations_in(s);
    out.push_str(&format!(
        "conversations: {} active, {} ended not settled, {} settled, {} parked{}\n",
        conversations(ConversationState::Active),
        conversations(ConversationState::Ended) + conversations(ConversationState::Checking),
        conversations(ConversationState::Settled),
        conversations(ConversationState::Parked),
        if report.conversations_waiting() > 0 {
            " (the waiting ones are looked at again by the daemon or the next `run --once`)"
        } else {
            ""
        }
    ));
    out.push_str(&format!(
        "watermark: {}",
        report.watermark.map_or("none (no discovery pass yet)".into(), |w| w
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    ));
    if !report.parked_conversations.is_empty() {
        out.push_str(&format!(
            "\nparked conversations (recording list unusable): {}",
            report.parked_conversations.len()
        ));
        for (id, reason) in report.parked_conversations.iter().take(20) {
            out.push_str(&format!("\n  {}: {}", id.escape_debug(), reason.escape_debug()));
        }
    }
    if !report.failing_conversations.is_empty() {
        out.push_str(&format!(
            "\nconversations whose listing keeps failing (looked at again): {}",
            report.failing_conversations.len()
        ));
        for (id, reason) in report.failing_conversations.iter().take(20) {
            out.push_str(&format!("\n  {}: {}", id.escape_debug(), reason.escape_debug()));
        }
    }
    if let Some(failure) = org_failure(report) {
        out.push_str(&format!("\norg {failure}"));
    }
    out
}

/// `failing since … (age ago): reason` for an org the daemon last recorded as failing.
fn org_failure(report: &StatusReport) -> Option<String> {
    let state = report.org_state.as_ref()?;
    let reason = state.reason()?;
    Some(format!(
        "failing since {} ({} ago): {}",
        state.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        short_age((Utc::now() - state.since).to_std().unwrap_or_default()),
        reason.escape_debug()
    ))
}

/// The orgs a ledger command works on, each with its rows: `--org NAME`, else every org
/// with rows (the default org of a single-org ledger).
/// Every org's view of the existing ledger (never migrated here); `read_only` for the
/// commands that only read it.
async fn org_views(
    settings: &LedgerSettings,
    org: Option<&str>,
    read_only: bool,
) -> Result<Vec<(String, Arc<dyn Ledger>)>, ExitCode> {
    let store = LedgerStore::open_existing(&settings.backend, read_only)
        .await
        .map_err(failure)?;
    let known = store.orgs().await.map_err(failure)?;
    let view = |name: &str| (name.to_owned(), store.for_org(name));
    match org {
        Some(name) if known.iter().any(|k| k == name) => Ok(vec![view(name)]),
        Some(name) => Err(failure(format!(
            "the ledger has no rows of org `{name}` (orgs in it: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ))),
        None if known.is_empty() => Ok(vec![view(crate::ledger::encoding::DEFAULT_ORG)]),
        None => Ok(known.iter().map(|name| view(name)).collect()),
    }
}

/// One line of an org in `status` across orgs.
fn org_line(org: &str, report: &StatusReport) -> String {
    let waiting = [State::Discovered, State::Transcoding, State::Retrying, State::Uploading]
        .into_iter()
        .map(|s| report.recordings_in(s))
        .sum::<u64>();
    let oldest = report.oldest_unarchived.as_ref().map_or("-".to_owned(), |(_, at)| {
        short_age((Utc::now() - *at).to_std().unwrap_or_default())
    });
    format!(
        "{:<24} {:<8} {:>9} {:>8} {:>7} {:>7} {:>14} {:>17}",
        org,
        report.org_state.as_ref().map_or("-", |s| s.label()),
        report.recordings_in(State::Archived),
        waiting,
        report.recordings_in(State::Failed),
        report.recordings_in(State::Parked),
        report.conversations_waiting(),
        oldest
    )
}

/// `status --json`: every value under a name (no positional pairs), for scripts.
fn status_json(report: &StatusReport) -> serde_json::Value {
    let oldest = report.oldest_unarchived.as_ref().map(|(id, at)| {
        serde_json::json!({
            "recording_id": id,
            "since": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "age_seconds": (Utc::now() - *at).num_seconds().max(0),
        })
    });
    let parked: Vec<_> = report
        .parked_conversations
        .iter()
        .map(|(id, reason)| serde_json::json!({"conversation_id": id, "reason": reason}))
        .collect();
    let failing: Vec<_> = report
        .failing_conversations
        .iter()
        .map(|(id, reason)| serde_json::json!({"conversation_id": id, "reason": reason}))
        .collect();
    let mark = |mark: &Option<(String, chrono::DateTime<Utc>)>, id: &str| {
        mark.as_ref().map(|(key, at)| {
            serde_json::json!({
                id: key,
                "at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "seconds_from_now": (*at - Utc::now()).num_seconds(),
            })
        })
    };
    serde_json::json!({
        "recordings": report.counts,
        "conversations": report.conversations,
        "conversations_waiting": report.conversations_waiting(),
        "oldest_unarchived": oldest,
        "watermark": report.watermark.map(|w| w.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        "parked_conversations": parked,
        "failing_conversations": failing,
        "soonest_deadline": mark(&report.soonest_deadline, "recording_id"),
        "oldest_unsettled": mark(&report.oldest_unsettled, "conversation_id"),
        "org_state": report.org_state,
    })
}

fn print_json(doc: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(doc).expect("JSON values serialize"));
}

/// `status [--org NAME] [--json]`: one org in full; several orgs a line each (JSON:
/// `{"orgs": {NAME: …}}`).
pub async fn status(settings: &LedgerSettings, org: Option<&str>, json: bool) -> ExitCode {
    let views = match org_views(settings, org, true).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let mut reports = Vec::with_capacity(views.len());
    for (org, view) in &views {
        match view.status().await {
            Ok(report) => reports.push((org.clone(), report)),
            Err(e) => return failure(e),
        }
    }
    match reports.as_slice() {
        [(_, report)] if json => print_json(&status_json(report)),
        [(_, report)] => println!("{}", render_status(report)),
        _ if json => {
            let orgs: serde_json::Map<String, serde_json::Value> =
                reports.iter().map(|(org, r)| (org.clone(), status_json(r))).collect();
            print_json(&serde_json::json!({ "orgs": orgs }));
        }
        _ => {
            println!(
                "{:<24} {:<8} {:>9} {:>8} {:>7} {:>7} {:>14} {:>17}",
                "org", "state", "archived", "waiting", "failed", "parked", "conv. waiting", "oldest unarchived"
            );
            for (org, report) in &reports {
                println!("{}", org_line(org, report));
            }
            for (org, report) in &reports {
                if let Some(failure) = org_failure(report) {
                    println!("{org}: {failure}");
                }
            }
        }
    }
    ExitCode::SUCCESS
}

/// `list --state failed|parked|waiting [--json] [--limit N]`: one line per recording
/// (id, conversation, state, attempts, age, time to its deadline, reason), oldest first.
pub async fn list(
    settings: &LedgerSettings,
    org: Option<&str>,
    filter: ListFilter,
    json: bool,
    limit: u32,
) -> ExitCode {
    let views = match org_views(settings, org, true).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let mut rows = Vec::new();
    for (org, view) in &views {
        match view.list(filter, limit).await {
            Ok(found) => rows.extend(found.into_iter().map(|r| (org.clone(), r))),
            Err(e) => return failure(e),
        }
        // A conversation whose listing keeps failing waits too, with its recordings
        // unknown: a row of its own, without a recording id.
        if filter == ListFilter::Waiting {
            match view.status().await {
                Ok(report) => rows.extend(report.failing_conversations.into_iter().map(|(id, reason)| {
                    let row = RecordingRow {
                        recording_id: "-".into(),
                        conversation_id: id,
                        state: "listing".into(),
                        reason: Some(reason),
                        attempts: 0,
                        start_time: None,
                        discovered_at: Utc::now(),
                        updated_at: Utc::now(),
                        deadline: None,
                        handoff: None,
                    };
                    (org.clone(), row)
                })),
                Err(e) => return failure(e),
            }
        }
    }
    // Oldest first across orgs, as within one.
    rows.sort_by_key(|(_, r)| (r.start_time.unwrap_or(r.discovered_at), r.recording_id.clone()));
    rows.truncate(limit as usize);
    if json {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|(org, row)| {
                let mut value = serde_json::to_value(row).expect("rows serialize");
                value["org"] = org.clone().into();
                value
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows).expect("rows serialize"));
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<16} {:<38} {:<38} {:<11} {:>8} {:>8} {:>9}  reason",
        "org", "recording", "conversation", "state", "attempts", "age", "deadline"
    );
    for (org, row) in &rows {
        let since = row.start_time.unwrap_or(row.discovered_at);
        let age = (Utc::now() - since).to_std().unwrap_or_default();
        // Time left before the source needs a restore or is deleted ("-" when unknown,
        // "passed" once it has).
        let deadline = row
            .deadline
            .map_or("-".to_owned(), |at| match (at - Utc::now()).to_std() {
                Ok(left) => short_age(left),
                Err(_) => "passed".to_owned(),
            });
        println!(
            "{:<16} {:<38} {:<38} {:<11} {:>8} {:>8} {:>9}  {}",
            org,
            row.recording_id.escape_debug(),
            row.conversation_id.escape_debug(),
            row.state,
            row.attempts,
            short_age(age),
            deadline,
            // A handed-off recording: what was done to its deleteDate in Genesys.
            row.handoff
                .as_ref()
                .map(describe_handoff)
                .or(row.reason.clone())
                .unwrap_or_default()
                .escape_debug()
        );
    }
    if rows.len() as u32 == limit {
        println!("(first {limit}; --limit shows more)");
    }
    ExitCode::SUCCESS
}

/// One line of what the retention hand-off did: the deleteDate before and after, or
/// why it was left as it was.
fn describe_handoff(h: &crate::ledger::Handoff) -> String {
    let date = |d: Option<chrono::DateTime<Utc>>| {
        d.map_or("none".to_owned(), |d| {
            d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
    };
    let at = h.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match h.new {
        Some(_) => format!("deleteDate {} -> {} (set {at})", date(h.old), date(h.new)),
        None => format!("deleteDate {} left as it was: {} ({at})", date(h.old), h.note),
    }
}

/// `3d4h`, `5h12m`, `7m`: an age at a glance.
fn short_age(age: Duration) -> String {
    let minutes = age.as_secs() / 60;
    match (minutes / 1440, (minutes / 60) % 24, minutes % 60) {
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

/// `retry --parked [--reason TEXT | --id ID]`: parked recordings back in the queue,
/// e.g. after they were restored in Genesys.
pub async fn retry_parked(settings: &LedgerSettings, org: Option<&str>, which: ParkedSelection) -> ExitCode {
    let views = match org_views(settings, org, false).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let mut n = 0;
    for (_, view) in &views {
        match view.retry_parked(which.clone()).await {
            Ok(more) => n += more,
            Err(e) => return failure(e),
        }
    }
    println!("{n} parked recordings are queued again (the next `run` archives them)");
    ExitCode::SUCCESS
}

/// `retry`.
pub async fn retry(settings: &LedgerSettings, org: Option<&str>) -> ExitCode {
    let views = match org_views(settings, org, false).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let (mut n, mut conversations) = (0, 0);
    for (_, view) in &views {
        match view.retry_conversations().await {
            Ok(more) => conversations += more,
            Err(e) => return failure(e),
        }
        match view.retry_failed().await {
            Ok(more) => n += more,
            Err(e) => return failure(e),
        }
    }
    println!("{n} failed recordings are queued again");
    if conversations > 0 {
        println!(
            "{conversations} parked conversations will be read again when discovery reads their window \
             (the overlap, or `backfill` over it)"
        );
    }
    ExitCode::SUCCESS
}

/// `check-config [--connect]`: every org's settings, and with `--connect` a token from
/// each org and an answer from each org's sink.
pub async fn check_config(settings: Settings, connect: bool) -> ExitCode {
    let single = !settings.org_source.is_multi();
    if !single {
        let n = settings.orgs.len();
        println!(
            "configuration is valid: {n} org{}, {} workers",
            if n == 1 { "" } else { "s" },
            settings.workers.count
        );
    }
    let mut failed = false;
    for org in &settings.orgs {
        // A single-org file keeps its one-line form; several orgs get a line each.
        let name = if single {
            String::new()
        } else {
            format!("org {}: ", org.name)
        };
        let budget = if org.limits.auto_budget {
            "the org's own budget (read at start)".to_owned()
        } else {
            format!("a budget of {} requests", org.limits.token_budget)
        };
        if single {
            println!(
                "configuration is valid: api {} with {budget} per {:?}, {} workers",
                org.genesys.api_url, org.limits.window, settings.workers.count
            );
        } else {
            println!(
                "{name}api {} with {budget} per {:?}",
                org.genesys.api_url, org.limits.window
            );
        }
        if connect && let Err(e) = check_org(&settings, org, &name).await {
            failure(format!("{name}{e}"));
            failed = true;
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// What `reconcile` is asked.
pub struct ReconcileArgs {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub org: Option<String>,
    pub json: bool,
    pub bytes: bool,
    pub offline: bool,
    /// Most API calls a minute it may spend.
    pub rpm: u32,
}

/// `reconcile`'s exit when it found something that keeps the range from being complete.
pub const EXIT_NOT_COMPLETE: u8 = 5;

/// `reconcile`: Genesys, the ledger and the bucket compared for a range of conversation
/// starts, org by org; a line per finding, then a summary. Exit 0 only when every org's
/// range is complete ([`crate::reconcile::Report::complete`]), 5 when one is not, 1 when
/// it could not be compared.
pub async fn reconcile(settings: Settings, args: ReconcileArgs) -> ExitCode {
    if args.to <= args.from {
        eprintln!("error: --to must be after --from");
        return ExitCode::from(2);
    }
    let orgs: Vec<&crate::config::settings::OrgSettings> = settings
        .orgs
        .iter()
        .filter(|o| args.org.as_deref().is_none_or(|name| o.name == name))
        .collect();
    if orgs.is_empty() {
        eprintln!(
            "error: --org: no org named {:?} in the configuration",
            args.org.unwrap_or_default()
        );
        return ExitCode::from(2);
    }
    let store = match LedgerStore::open_existing(&settings.ledger.backend, true).await {
        Ok(store) => store,
        Err(e) => return failure(e),
    };
    let mut reports = Vec::new();
    for org in orgs {
        match reconcile_org(&settings, org, &store, &args).await {
            Ok(report) => reports.push((org.name.clone(), report)),
            Err(e) => return failure(format!("org {}: {e}", org.name)),
        }
    }
    let complete = reports.iter().all(|(_, r)| r.complete());
    if args.json {
        let orgs: serde_json::Map<String, serde_json::Value> = reports
            .iter()
            .map(|(org, r)| {
                let mut value = serde_json::to_value(r).expect("reports serialize");
                value["complete"] = r.complete().into();
                value["counts"] = serde_json::to_value(r.counts()).expect("counts serialize");
                (org.clone(), value)
            })
            .collect();
        print_json(&serde_json::json!({"complete": complete, "orgs": orgs}));
    } else {
        for (org, report) in &reports {
            for f in &report.findings {
                println!(
                    "{:<16} {:<16} {:<38} {:<38} {}  {}",
                    f.code.as_str(),
                    org,
                    f.recording_id.as_deref().unwrap_or("-").escape_debug(),
                    f.conversation_id.as_deref().unwrap_or("-").escape_debug(),
                    f.key.as_deref().unwrap_or("-"),
                    f.detail.escape_debug()
                );
            }
        }
        for (org, r) in &reports {
            let counts: Vec<String> = r.counts().iter().map(|(code, n)| format!("{code} {n}")).collect();
            println!(
                "org {org}: {} recordings in the ledger, {} files verified{}, {} manifests; {}: {}",
                r.recordings,
                r.files_verified,
                r.genesys_recordings
                    .map_or(", Genesys not asked (--offline)".to_owned(), |n| format!(
                        ", {n} screen recordings listed by Genesys"
                    )),
                r.manifests,
                if r.complete() { "complete" } else { "NOT complete" },
                if counts.is_empty() {
                    "nothing to report".to_owned()
                } else {
                    counts.join(", ")
                }
            );
            if r.handed_off + r.handoff_left > 0 {
                println!(
                    "org {org}: retention hand-off: {} sources' deleteDate set, {} left as they were \
                     (`list --state handed-off` says why)",
                    r.handed_off, r.handoff_left
                );
            }
            for note in &r.notes {
                println!("org {org}: note: {note}");
            }
        }
    }
    if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NOT_COMPLETE)
    }
}

async fn reconcile_org(
    settings: &Settings,
    org: &crate::config::settings::OrgSettings,
    store: &LedgerStore,
    args: &ReconcileArgs,
) -> Result<crate::reconcile::Report, String> {
    let metrics = crate::metrics::OrgMetrics::unregistered(&org.name);
    let mut org = org.clone();
    let needs_org_id = org.needs_org_id();
    let platform = if args.offline {
        if needs_org_id {
            return Err("the keys name {orgId}, which only Genesys can tell: run without --offline".into());
        }
        None
    } else {
        // Its own token and at most `--rpm` of the budget, so a running daemon keeps the rest.
        let mut limits = org.limits.clone();
        let per_window = |budget: u32| {
            let share = f64::from(args.rpm) * limits.window.as_secs_f64() / 60.0;
            budget.min(share.floor().max(1.0) as u32)
        };
        limits.token_budget = per_window(limits.token_budget);
        limits.auto_budget = false;
        limits.shared = None;
        for (_, budget) in limits.endpoint_budgets.iter_mut() {
            *budget = Some(per_window(budget.unwrap_or(u32::MAX)));
        }
        let budget = Arc::new(LocalBudget::new(&limits, &settings.retry, metrics.clone()));
        let client = Arc::new(
            crate::genesys::GenesysClient::new(&org.genesys, &settings.retry, budget, metrics.clone())
                .map_err(|e| e.to_string())?,
        );
        org = crate::app::with_org_id(org, &client).await.map_err(|e| e.to_string())?;
        let scratch = std::env::temp_dir().join(format!(
            "genesys-archiver-reconcile-{}-{}",
            std::process::id(),
            org.name
        ));
        let survey = crate::reconcile::platform::survey(client, &org.discovery, &scratch, args.from, args.to).await;
        let _ = std::fs::remove_dir_all(&scratch);
        Some(survey?)
    };
    let sink = crate::app::open_sink(&org, metrics)
        .await
        .map_err(|e| format!("sink: {e}"))?;
    let scope = crate::reconcile::Scope {
        ledger: store.for_org(&org.name),
        sink,
        layout: org.sink.layout.clone(),
        manifest_key: org.sink.manifest_key.clone(),
        from: args.from,
        to: args.to,
        bytes: args.bytes,
        platform,
        retained_since: Utc::now()
            - chrono::Duration::from_std(settings.ledger.retain).unwrap_or(chrono::Duration::MAX),
    };
    scope.run().await
}

/// A token from the org's platform and an answer from its sink.
async fn check_org(settings: &Settings, org: &crate::config::settings::OrgSettings, name: &str) -> Result<(), String> {
    // A one-off check: nothing serves these metrics.
    let metrics = crate::metrics::OrgMetrics::unregistered(&org.name);
    let budget = Arc::new(LocalBudget::new(&org.limits, &settings.retry, metrics.clone()));
    let client = crate::genesys::GenesysClient::new(&org.genesys, &settings.retry, budget, metrics.clone())
        .map_err(|e| e.to_string())?;
    client.authenticate().await.map_err(|e| format!("genesys: {e}"))?;
    println!("{name}genesys: a token was obtained from {}", org.genesys.login_url);
    let sink = crate::app::open_sink(org, metrics)
        .await
        .map_err(|e| format!("sink: {e}"))?;
    sink.check()
        .await
        .map_err(|e| format!("sink {}: {e}", sink.describe()))?;
    sink.check_bucket()
        .await
        .map_err(|e| format!("sink {}: {e}", sink.describe()))?;
    println!("{name}sink: {} answered", sink.describe());
    if let crate::config::settings::SinkKind::S3(s3) = &org.sink.kind {
        println!("{name}sink: {}", compliance_summary(s3));
    }
    Ok(())
}

/// What `check-config --connect` says of an S3 sink's compliance settings, each of them
/// just checked against the bucket.
fn compliance_summary(s3: &crate::sink::settings::S3Settings) -> String {
    let owner = match &s3.expected_bucket_owner {
        Some(owner) => format!("owned by account {owner} (checked)"),
        None => "owner not checked (s3.expected_bucket_owner unset)".into(),
    };
    let lock = match (&s3.lock, s3.legal_hold) {
        (Some(lock), hold) => format!(
            "objects locked {} for {} from the recording's start{} (bucket versioned with Object Lock: checked)",
            lock.mode.as_str(),
            humantime::format_duration(lock.retain),
            if hold { ", legal hold on" } else { "" }
        ),
        (None, true) => "objects under legal hold (bucket versioned with Object Lock: checked)".into(),
        (None, false) => "objects not locked".into(),
    };
    format!("checksum {}; {owner}; {lock}", s3.checksum.as_str())
}

/// `migrate-ledger --from FILE`: copies a SQLite ledger into the PostgreSQL ledger the
/// configuration names, for the move from one process to replicas. The file's daemon
/// must be stopped (its lock is taken); running it again copies only what is missing.
pub async fn migrate_ledger(settings: &LedgerSettings, from: &std::path::Path) -> ExitCode {
    let LedgerBackend::Postgres(target) = &settings.backend else {
        // A configuration error: one line naming the key, exit 2, nothing done.
        eprintln!(
            "error: ledger.url: migrate-ledger copies into the PostgreSQL ledger the configuration names, \
             and this configuration names a SQLite file ([ledger] path)"
        );
        return ExitCode::from(2);
    };
    // Before the database is asked anything: a wrong path is the likelier mistake.
    if !from.is_file() {
        return failure(format!("no SQLite ledger at {}", from.display()));
    }
    let ledger = match crate::ledger::postgres::PgLedger::connect(target).await {
        Ok(ledger) => ledger,
        Err(e) => return failure(e),
    };
    match ledger.import_sqlite(from).await {
        Ok(copied) => {
            println!("{:<22} {:>10} {:>10}", "table", "read", "new");
            for (table, read, new) in &copied.tables {
                println!("{table:<22} {read:>10} {new:>10}");
            }
            println!(
                "{} copied into PostgreSQL; start the replicas on it (and keep the file until they run)",
                from.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => failure(e),
    }
}
