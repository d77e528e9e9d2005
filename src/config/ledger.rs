//! `[ledger]`: SQLite or PostgreSQL, retention, validated.

use super::genesys::read_secret_file_for;
use super::raw::{RawLedger, RawSecret};
use super::settings::LedgerSettings;
use super::settings::{ConfigError, duration_or};
use crate::ledger::postgres::PgSettings;
use crate::ledger::store::LedgerBackend;
use std::path::PathBuf;
use std::time::Duration;

/// Default `ledger.retain`: over a year, so a re-read of last year's window (an audit, a
/// backfill) still finds its rows; adoption of existing objects covers older ones.
pub(super) const DEFAULT_RETAIN: Duration = Duration::from_secs(400 * 24 * 3600);

/// `discovery.lookback` (default one day): read by discovery, and bounding
/// `ledger.retain` from below for the ledger commands too.
pub(super) fn lookback(raw: Option<&str>) -> Result<Duration, ConfigError> {
    duration_or("discovery.lookback", raw, Duration::from_secs(24 * 3600))
}

/// `lookback` is the validated `discovery.lookback`: rows younger than what discovery
/// reads again must stay, or each pass would rediscover (and re-check) them.
pub(super) fn validate_ledger(raw: RawLedger, lookback: Duration) -> Result<LedgerSettings, ConfigError> {
    let retain = duration_or("ledger.retain", raw.retain.as_deref(), DEFAULT_RETAIN)?;
    if retain < lookback || retain < Duration::from_secs(24 * 3600) {
        return Err(ConfigError::new(
            "ledger.retain",
            "must be at least 1 day and at least discovery.lookback",
        ));
    }
    let url = match (raw.url, raw.url_file) {
        (Some(_), Some(_)) => return Err(ConfigError::new("ledger.url", "set either url or url_file, not both")),
        (Some(RawSecret(url)), None) => Some(url),
        (None, Some(path)) => Some(read_secret_file_for("ledger.url_file", &path)?),
        (None, None) => None,
    };
    let backend = match (url, raw.path) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "ledger.url",
                "set either ledger.path (SQLite, one replica) or ledger.url (PostgreSQL), not both",
            ));
        }
        (Some(url), None) => {
            LedgerBackend::Postgres(validate_postgres(&url, raw.pool_size, raw.lease, raw.outage_patience)?)
        }
        (None, path) => {
            for (key, set) in [
                ("ledger.pool_size", raw.pool_size.is_some()),
                ("ledger.lease", raw.lease.is_some()),
                ("ledger.outage_patience", raw.outage_patience.is_some()),
            ] {
                if set {
                    return Err(ConfigError::new(
                        key,
                        "applies to a PostgreSQL ledger (ledger.url) only",
                    ));
                }
            }
            LedgerBackend::Sqlite {
                path: sqlite_path(path)?,
            }
        }
    };
    Ok(LedgerSettings { backend, retain })
}

/// The PostgreSQL ledger's settings (`ledger.url` and what goes with it).
pub(super) fn validate_postgres(
    url: &str,
    pool_size: Option<usize>,
    lease: Option<String>,
    outage_patience: Option<String>,
) -> Result<PgSettings, ConfigError> {
    PgSettings::check_url(url.trim()).map_err(|m| ConfigError::new("ledger.url", m))?;
    let pool_size = pool_size.unwrap_or(8);
    if !(1..=256).contains(&pool_size) {
        return Err(ConfigError::new("ledger.pool_size", "must be from 1 to 256"));
    }
    let lease = duration_or("ledger.lease", lease.as_deref(), Duration::from_secs(60))?;
    if lease < Duration::from_secs(1) {
        return Err(ConfigError::new("ledger.lease", "must be at least 1s"));
    }
    Ok(PgSettings {
        url: url.trim().to_owned().into(),
        pool_size,
        lease,
        outage_patience: duration_or(
            "ledger.outage_patience",
            outage_patience.as_deref(),
            Duration::from_secs(600),
        )?,
    })
}

/// The SQLite ledger's file: `ledger.path`, else in systemd's `StateDirectory=` (it
/// exports STATE_DIRECTORY), else in the working directory.
pub(super) fn sqlite_path(path: Option<String>) -> Result<PathBuf, ConfigError> {
    Ok(match path {
        Some(p) if p.trim().is_empty() => return Err(ConfigError::new("ledger.path", "must not be empty")),
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("STATE_DIRECTORY")
            .map(|d| PathBuf::from(d).join("ledger.sqlite"))
            .unwrap_or_else(|| PathBuf::from("genesys-archiver-ledger.sqlite")),
    })
}
