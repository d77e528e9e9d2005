//! The ledger in PostgreSQL, for several replicas of the daemon (`[ledger] url`).
//!
//! The same [`Ledger`] interface and the same rules as the SQLite ledger, with what
//! several owners need on top:
//! - a claim names its owner (this process) and a lease, set and compared on the
//!   server's clock (`clock_timestamp()`: a replica whose clock runs ahead cannot take
//!   live claims); the owner renews the claims it knows it holds while it works
//!   ([`PgLedger::renew_leases`]), and renews before claiming after a gap longer than
//!   the lease; a claim's token is made once, so a try whose reply was lost is picked
//!   up by the next try, not claimed twice; a claim whose lease ran out is taken
//!   over by the next claim of any replica, with the multipart upload it had open
//!   (aborted by the new owner before it starts, `Claimed::open_upload`). Every later
//!   change names the claim token, so a late owner's writes change nothing and say so;
//! - claims use `FOR UPDATE SKIP LOCKED`: replicas claiming at once take different rows;
//! - an org's discovery is done by one replica at a time ([`Ledger::hold_discovery`]);
//! - a PostgreSQL outage pauses the caller (a claim, a pass, a worker's last write)
//!   with backoff instead of failing the run, up to `[ledger] outage_patience`.

mod import;
mod schema;

pub use import::Copied;

use super::changes::{self, ClaimedChange};
use super::dialect::Dialect;
use super::encoding::{
    DEFAULT_ORG, format_watermark, from_ms, ms, note_key, now_ms, org_state_key, parse_org_state, parse_watermark,
    watermark_key,
};
use super::rows::{self, Columns};
use super::statements::{self, claimed_columns, conversation_columns};
use super::value::Value;
use super::{
    Claim, Claimed, ConversationRow, Handoff, HandoffDue, Ledger, LedgerError, LedgerRecord, LedgerResult, ListFilter,
    NewRecording, OpenUpload, OrgCondition, OrgState, ParkedSelection, Pruned, RecordingRow, StatusReport,
};
use crate::retry::backoff;
use crate::retry::settings::RetrySettings;
use crate::untrusted;
use chrono::{DateTime, Utc};
use deadpool_postgres::tokio_postgres::types::{ToSql, Type};
use deadpool_postgres::tokio_postgres::{self, NoTls, Row};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

type PgResult<T> = Result<T, tokio_postgres::Error>;

/// The shared statements ([`statements`]) are rendered in PostgreSQL's dialect.
const SQL: Dialect = Dialect::Postgres;

/// How one PostgreSQL ledger is reached and shared.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// `postgres://user:password@host:port/db` (a secret: never logged whole).
    pub url: secrecy::SecretString,
    /// Connections this process holds at most.
    pub pool_size: usize,
    /// How long a claim (or a discovery turn) stays this process's without renewal.
    pub lease: Duration,
    /// How long an operation waits through an outage before it fails.
    pub outage_patience: Duration,
}

impl PgSettings {
    /// Checks the URL's form (the `[ledger] url` key), without connecting.
    pub fn check_url(url: &str) -> Result<(), String> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err("must be a URL like postgres://user:password@host:5432/db".into());
        }
        url.parse::<tokio_postgres::Config>()
            .map(|_| ())
            .map_err(|e| format!("not a PostgreSQL URL: {e}"))
    }
}

/// The connection pool and this process's identity; shared by every org's view.
struct PgStore {
    pool: Pool,
    /// How to reach the server outside the pool: the readiness probe's own connection,
    /// not queued behind busy workers for a pooled one.
    probe: tokio_postgres::Config,
    /// This process, as claims and discovery leases name it.
    owner: String,
    lease: Duration,
    patience: Duration,
    /// What this process knows it holds, and so renews: the tokens of its recording
    /// claims and the conversations it is listing. Never "everything under my name": a
    /// claim whose reply was lost (committed, never handed to a worker) is not renewed,
    /// so its lease runs out and another claim takes it.
    held: std::sync::Mutex<Held>,
    /// Replies to drop after their commit ([`PgLedger::lose_replies`], tests only).
    lost_replies: std::sync::atomic::AtomicU32,
}

/// Now on the database server's clock, in milliseconds: every lease is set and read
/// on it, so a replica whose clock is ahead cannot take over live claims.
macro_rules! db_now {
    () => {
        "(extract(epoch from clock_timestamp()) * 1000)::int8"
    };
}

/// A hand-off no other process holds: never taken, its lease over (on the database's
/// clock), or this process's own (a claim whose reply was lost is picked up again).
macro_rules! handoff_free {
    ($owner:literal) => {
        concat!(
            "(handoff_lease IS NULL OR handoff_lease < ",
            db_now!(),
            " OR handoff_owner = ",
            $owner,
            ")"
        )
    };
}

mod driver;
mod leases;
mod ledger;
mod outage;

use driver::{all, bind, read_meta, write_meta};
pub use leases::replayed_writes;
use leases::{Held, REPLAYED_WRITES, token};
use outage::Failure;

/// One org's view of the PostgreSQL ledger.
#[derive(Clone)]
pub struct PgLedger {
    store: Arc<PgStore>,
    org: Arc<str>,
}

/// How many rows one prune transaction removes at most.
pub(super) const PRUNE_BATCH: i64 = 5_000;

/// How long the readiness probe waits for the server.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

impl PgLedger {
    /// Connects, brings the schema up to date (under an advisory lock) and names this
    /// process as an owner. Fails naming the server (never the password).
    pub async fn connect(settings: &PgSettings) -> LedgerResult<Self> {
        Self::connect_with(settings, true).await
    }

    /// Connects without migrating: the schema must be this build's already
    /// ([`schema::check`]). For the commands beside running daemons.
    pub async fn connect_unmigrated(settings: &PgSettings) -> LedgerResult<Self> {
        Self::connect_with(settings, false).await
    }

    async fn connect_with(settings: &PgSettings, migrate: bool) -> LedgerResult<Self> {
        use secrecy::ExposeSecret;
        let config: tokio_postgres::Config = settings
            .url
            .expose_secret()
            .parse()
            .map_err(|e| LedgerError::Store(format!("ledger.url: {e}")))?;
        let server = describe(&config);
        let mut config = config;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| LedgerError::Store(format!("ledger at {server}: {e}")))?;
        let mut client = pool
            .get()
            .await
            .map_err(|e| LedgerError::Store(format!("ledger at {server}: {}", Failure::Pool(e))))?;
        if migrate {
            schema::migrate(&mut client).await
        } else {
            schema::check(&client).await
        }
        .map_err(|e| LedgerError::Store(format!("ledger at {server}: {e}")))?;
        drop(client);
        let owner = format!("{}/{}/{:08x}", hostname(), std::process::id(), fastrand::u32(..));
        tracing::info!(message = "PostgreSQL ledger open.", server = %server, owner = %owner, pool_size = settings.pool_size);
        Ok(Self {
            store: Arc::new(PgStore {
                pool,
                probe: config,
                owner,
                lease: settings.lease,
                patience: settings.outage_patience,
                held: Default::default(),
                lost_replies: Default::default(),
            }),
            org: DEFAULT_ORG.into(),
        })
    }

    /// Whether the server answers now: one query on a connection of its own, within
    /// [`PROBE_TIMEOUT`]. For readiness; the ledger's own calls wait through outages.
    pub async fn reachable(&self) -> Result<(), String> {
        let probe = async {
            let (client, connection) = self.store.probe.connect(NoTls).await?;
            let connection = tokio::spawn(connection);
            let answer = client.simple_query("SELECT 1").await.map(drop);
            drop(client);
            let _ = connection.await;
            answer
        };
        match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("ledger at {}: {error}", describe(&self.store.probe))),
            Err(_) => Err(format!(
                "ledger at {}: no answer within {} s",
                describe(&self.store.probe),
                PROBE_TIMEOUT.as_secs()
            )),
        }
    }

    /// The same database, seen as `org`'s ledger.
    pub fn for_org(&self, org: &str) -> Self {
        Self {
            store: self.store.clone(),
            org: org.into(),
        }
    }

    fn org(&self) -> &str {
        &self.org
    }

    /// How long a claim or a discovery turn stays this process's without renewal.
    pub fn lease(&self) -> Duration {
        self.store.lease
    }

    /// The lease in milliseconds, as the rows keep it.
    fn lease_ms(&self) -> i64 {
        self.store.lease.as_millis() as i64
    }

    /// Every org with rows or a recorded state, by name.
    pub fn orgs(&self) -> BoxFuture<'_, LedgerResult<Vec<String>>> {
        self.run(|c, _| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT org FROM recording_counts GROUP BY org HAVING SUM(n) > 0
                         UNION SELECT org FROM conversation_counts GROUP BY org HAVING SUM(n) > 0
                         UNION SELECT substr(key, 11) FROM meta WHERE key LIKE 'org_state:%'
                         ORDER BY 1",
                        &[],
                    )
                    .await?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
        })
    }

    /// Fault injection for tests: the next `n` operations commit, then lose their
    /// reply (as a connection cut after the commit would) and are tried again.
    #[doc(hidden)]
    pub fn lose_replies(&self, n: u32) {
        self.store.lost_replies.store(n, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `host:port/db` of a configuration, for logs and errors: never the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or("postgres"))
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "host".into())
}
