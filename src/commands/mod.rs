//! The bodies of the subcommands that work on a configuration.
//!
//! Each returns the process exit code. Configuration was validated before any of them
//! runs; an error here (ledger, sink, platform) is one `error:` line on stderr.

mod check;
mod list;
mod migrate;
mod reconcile;
mod retry;
mod run;
mod status;

pub use check::check_config;
pub use list::list;
pub use migrate::migrate_ledger;
pub use reconcile::{EXIT_NOT_COMPLETE, ReconcileArgs, reconcile};
pub use retry::{retry, retry_parked};
pub use run::{backfill, run, shutdown_on_signal};
pub use status::{render_status, status};

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

fn print_json(doc: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(doc).expect("JSON values serialize"));
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
