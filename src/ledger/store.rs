//! The whole ledger as a process opens it: one SQLite file (one owner, locked) or one
//! PostgreSQL database (several replicas). The pipeline never sees this type: it gets
//! one org's [`Ledger`] from [`LedgerStore::for_org`]. What spans every org (the org
//! list, pruning, lease renewals) is here.

use super::lock::LedgerLock;
use super::postgres::{PgLedger, PgSettings};
use super::sqlite::SqliteLedger;
use super::{Ledger, LedgerError, LedgerResult, Pruned};
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::sync::Arc;

/// Where the ledger lives (`[ledger] path` or `[ledger] url`).
#[derive(Debug, Clone)]
pub enum LedgerBackend {
    /// A SQLite file: the embedded default, one replica.
    Sqlite { path: PathBuf },
    /// A PostgreSQL database shared by every replica.
    Postgres(PgSettings),
}

/// An open ledger.
pub enum LedgerStore {
    Sqlite {
        ledger: SqliteLedger,
        /// Held while the daemon runs: a second process on the file goes away at once.
        /// `None` for the commands that read or edit rows beside a running daemon.
        _lock: Option<LedgerLock>,
    },
    Postgres(PgLedger),
}

impl LedgerStore {
    /// Opens the ledger a daemon (or `run --once`, `backfill`) works on: the SQLite file
    /// locked first (before any token request, so a second owner goes away at once),
    /// created if missing; PostgreSQL connected and migrated.
    pub async fn open_owned(backend: &LedgerBackend) -> LedgerResult<Self> {
        match backend {
            LedgerBackend::Sqlite { path } => {
                let lock = LedgerLock::acquire(path)?;
                Ok(LedgerStore::Sqlite {
                    ledger: SqliteLedger::open(path)?,
                    _lock: Some(lock),
                })
            }
            LedgerBackend::Postgres(settings) => Ok(LedgerStore::Postgres(PgLedger::connect(settings).await?)),
        }
    }

    /// Opens an existing ledger for `status`, `list`, `retry` and exports, beside a
    /// running daemon, never migrating it (that takes the ledger's lock: the daemon's,
    /// at start); `read_only` for the commands that only read. A SQLite file that is not
    /// there is an error (nothing has run yet), as is a schema of another build.
    pub async fn open_existing(backend: &LedgerBackend, read_only: bool) -> LedgerResult<Self> {
        match backend {
            LedgerBackend::Sqlite { path } if !path.exists() => Err(LedgerError::Store(format!(
                "no ledger at {} (nothing has run yet)",
                path.display()
            ))),
            LedgerBackend::Sqlite { path } => Ok(LedgerStore::Sqlite {
                ledger: SqliteLedger::open_unmigrated(path, read_only)?,
                _lock: None,
            }),
            LedgerBackend::Postgres(settings) => {
                Ok(LedgerStore::Postgres(PgLedger::connect_unmigrated(settings).await?))
            }
        }
    }

    /// `org`'s rows, as the pipeline and the commands see them.
    pub fn for_org(&self, org: &str) -> Arc<dyn Ledger> {
        match self {
            LedgerStore::Sqlite { ledger, .. } => Arc::new(ledger.for_org(org)),
            LedgerStore::Postgres(ledger) => Arc::new(ledger.for_org(org)),
        }
    }

    /// Every org with rows or a recorded state, by name.
    pub async fn orgs(&self) -> LedgerResult<Vec<String>> {
        match self {
            LedgerStore::Sqlite { ledger, .. } => ledger.orgs().await,
            LedgerStore::Postgres(ledger) => ledger.orgs().await,
        }
    }

    /// Drops finished rows of every org that started before `cutoff`.
    pub async fn prune(&self, cutoff: DateTime<Utc>) -> LedgerResult<Pruned> {
        match self {
            LedgerStore::Sqlite { ledger, .. } => ledger.prune(cutoff).await,
            LedgerStore::Postgres(ledger) => ledger.prune(cutoff).await,
        }
    }

    /// Renews this process's leases (claims, listings, discovery turns) every third of a
    /// lease, for as long as the future runs; a failed renewal is logged and tried at
    /// the next tick (the lease outlives two missed renewals). Returns at once for a
    /// ledger with one owner.
    pub async fn keep_leases(&self) {
        let LedgerStore::Postgres(ledger) = self else {
            return;
        };
        let mut tick = tokio::time::interval(ledger.lease() / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(error) = ledger.renew_leases().await {
                tracing::warn!(message = "Could not renew this replica's leases; trying again.", %error);
            }
        }
    }

    /// Whether the ledger can be reached now, for readiness: a SQLite file is open and
    /// locked for as long as the process runs; a PostgreSQL server is asked.
    pub async fn reachable(&self) -> Result<(), String> {
        match self {
            LedgerStore::Sqlite { .. } => Ok(()),
            LedgerStore::Postgres(ledger) => ledger.reachable().await,
        }
    }

    /// Forgets the claims and listings `org`'s ended run still held (PostgreSQL): they
    /// are not renewed any more, and run out for the next claimer.
    pub fn release_held(&self, org: &str) {
        if let LedgerStore::Postgres(ledger) = self {
            ledger.for_org(org).release_held();
        }
    }

    /// Lets go of `org`'s discovery turn (the org stops in this process), so another
    /// replica takes it at once instead of after the lease.
    pub async fn release_discovery(&self, org: &str) {
        if let LedgerStore::Postgres(ledger) = self
            && let Err(error) = ledger.for_org(org).release_discovery().await
        {
            tracing::warn!(message = "Could not hand over the org's discovery; another replica takes it after the lease.", org = %org, %error);
        }
    }
}
