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

use super::encoding::{
    DEFAULT_ORG, HANDED_OFF, HANDOFF_DUE, LIST, RECORDS, UNSETTLED_BETWEEN, from_ms, list_condition, ms, note_key,
    now_ms, numbered, org_state_key, watermark_key,
};
use super::{
    ArchiveFacts, Claim, Claimed, ConversationRow, ConversationState, Handoff, HandoffDue, Ledger, LedgerError,
    LedgerRecord, LedgerResult, ListFilter, NewRecording, OpenUpload, OrgCondition, OrgState, ParkedSelection, Pruned,
    RecordingRow, State, StatusReport, record_files,
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

#[derive(Default)]
struct Held {
    /// Claim tokens, with the org that holds them.
    claims: std::collections::HashMap<i64, String>,
    /// (org, conversation id).
    listings: std::collections::HashSet<(String, String)>,
    /// When the leases were last renewed; `None` before any claim. A claim after a gap
    /// longer than the lease (a PostgreSQL outage) renews first: this process's own
    /// claims would otherwise look run out to it and be handed to a second worker.
    renewed: Option<tokio::time::Instant>,
}

/// Now on the database server's clock, in milliseconds: every lease is set and read
/// on it, so a replica whose clock is ahead cannot take over live claims.
macro_rules! db_now {
    () => {
        "(extract(epoch from clock_timestamp()) * 1000)::int8"
    };
}

/// Writes replayed after a lost reply that found their row already as intended, by
/// org: successes, not claims taken over (`ledger_writes_replayed_total`).
static REPLAYED_WRITES: std::sync::Mutex<std::collections::BTreeMap<String, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// [`REPLAYED_WRITES`] as it stands, by org.
pub fn replayed_writes() -> std::collections::BTreeMap<String, u64> {
    REPLAYED_WRITES.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// One org's view of the PostgreSQL ledger.
#[derive(Clone)]
pub struct PgLedger {
    store: Arc<PgStore>,
    org: Arc<str>,
}

/// What a failed operation was: a connection that can come back, or an answer.
enum Failure {
    Pool(PoolError),
    Sql(tokio_postgres::Error),
}

impl Failure {
    /// Whether waiting may help: no connection, a connection lost, the server starting
    /// or shutting down, a serialization conflict. A SQL error that the server answered
    /// (a constraint, a syntax) will not change by waiting.
    fn transient(&self) -> bool {
        let sql = match self {
            Failure::Pool(PoolError::Backend(e)) | Failure::Sql(e) => e,
            Failure::Pool(PoolError::Timeout(_)) => return true,
            Failure::Pool(_) => return false,
        };
        match sql.as_db_error() {
            None => true,
            Some(db) => {
                let code = db.code().code();
                code.starts_with("08") || code.starts_with("57P") || code == "40001" || code == "40P01"
            }
        }
    }
}

impl Failure {
    /// Whether the server refused a value of the statement (data exception, class 22;
    /// program limit exceeded, class 54, e.g. an index row too large): about the row,
    /// not the ledger. Untrusted strings are sanitized before they get here; this
    /// keeps anything that slips through from being taken for an outage.
    fn about_one_row(&self) -> bool {
        let Failure::Sql(e) = self else { return false };
        e.as_db_error()
            .is_some_and(|db| matches!(&db.code().code()[..2], "22" | "54"))
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Pool(e) => write!(f, "no connection: {e}"),
            Failure::Sql(e) => match e.as_db_error() {
                Some(db) => write!(f, "{} ({})", db.message(), db.code().code()),
                None => write!(f, "{e}"),
            },
        }
    }
}

fn token() -> i64 {
    fastrand::i64(..)
}

/// Renews the leases `store` knows it holds, on the server's clock.
async fn renew(c: &Object, store: &PgStore) -> PgResult<u64> {
    let (claims, orgs, conversations): (Vec<i64>, Vec<String>, Vec<String>) = {
        let held = store.held.lock().unwrap_or_else(|p| p.into_inner());
        let (orgs, ids) = held.listings.iter().cloned().unzip();
        (held.claims.keys().copied().collect(), orgs, ids)
    };
    let lease = store.lease.as_millis() as i64;
    let mut n = c
        .execute(
            concat!(
                "UPDATE recordings SET lease_until = ",
                db_now!(),
                " + $1 WHERE claim_owner = $2 AND state = 'uploading' AND claim_token = ANY($3)"
            ),
            &[&lease, &store.owner, &claims],
        )
        .await?;
    n += c
        .execute(
            concat!(
                "UPDATE conversations SET lease_until = ",
                db_now!(),
                " + $1 WHERE claim_owner = $2 AND state = 'checking'
                 AND (org, conversation_id) IN (SELECT * FROM unnest($3::text[], $4::text[]))"
            ),
            &[&lease, &store.owner, &orgs, &conversations],
        )
        .await?;
    n += c
        .execute(
            concat!(
                "UPDATE discovery_leases SET lease_until = ",
                db_now!(),
                " + $1 WHERE owner = $2"
            ),
            &[&lease, &store.owner],
        )
        .await?;
    // Renewed only once every lease is: a renewal that failed part-way is made again
    // before the next claim.
    store.held.lock().unwrap_or_else(|p| p.into_inner()).renewed = Some(tokio::time::Instant::now());
    Ok(n)
}

/// Claim columns, in [`claimed`]'s order.
const CLAIMED_COLUMNS: &str = "recording_id, conversation_id, start_time, end_time, metadata, attempts, object_key, upload_id, claim_token, discovered_at, upload_key";

fn claimed(row: &Row) -> Claimed {
    Claimed {
        recording_id: row.get(0),
        conversation_id: row.get(1),
        start_time: from_ms(row.get(2)),
        end_time: from_ms(row.get(3)),
        metadata: row.get(4),
        attempts: row.get::<_, i32>(5).max(0) as u32,
        key: row.get(6),
        open_upload: row.get(7),
        token: row.get(8),
        discovered_at: from_ms(row.get(9)).unwrap_or_default(),
        upload_key: row.get(10),
    }
}

const CONVERSATION_COLUMNS: &str = "conversation_id, start_time, end_time, state, checks, next_check_at, reason";

fn conversation(row: &Row) -> ConversationRow {
    ConversationRow {
        conversation_id: row.get(0),
        start: from_ms(row.get(1)).unwrap_or_default(),
        end: from_ms(row.get(2)),
        state: ConversationState::parse(row.get(3)),
        checks: row.get::<_, i32>(4).max(0) as u32,
        next_check_at: from_ms(row.get(5)),
        reason: row.get(6),
    }
}

fn recording_row(row: &Row) -> RecordingRow {
    RecordingRow {
        recording_id: row.get(0),
        conversation_id: row.get(1),
        state: row.get(2),
        reason: row.get(3),
        attempts: row.get::<_, i32>(4).max(0) as u32,
        start_time: from_ms(row.get(5)),
        discovered_at: from_ms(row.get(6)).unwrap_or_default(),
        updated_at: from_ms(row.get(7)).unwrap_or_default(),
        deadline: from_ms(row.get(8)),
        handoff: Handoff::from_columns(row.get(9), row.get(10), row.get(11), row.get(12)),
    }
}

fn handoff_due_row(row: &Row) -> HandoffDue {
    let (key, size, sha256, parts): (Option<String>, Option<i64>, Option<String>, Option<String>) =
        (row.get(6), row.get(7), row.get(8), row.get(9));
    HandoffDue {
        recording_id: row.get(0),
        conversation_id: row.get(1),
        start_time: from_ms(row.get(2)),
        archived_at: from_ms(row.get(3)).unwrap_or_default(),
        archive_date: from_ms(row.get(4)),
        delete_date: from_ms(row.get(5)),
        files: record_files("archived", key.as_deref(), size, sha256.as_deref(), parts.as_deref()),
    }
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

async fn read_meta(c: &impl deadpool_postgres::GenericClient, key: &str) -> PgResult<Option<String>> {
    Ok(c.query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
        .await?
        .map(|r| r.get(0)))
}

async fn write_meta(c: &impl deadpool_postgres::GenericClient, key: &str, value: &str) -> PgResult<()> {
    c.execute(
        "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&key, &value],
    )
    .await
    .map(|_| ())
}

/// How many rows one prune transaction removes at most.
const PRUNE_BATCH: i64 = 5_000;

/// How long the readiness probe waits for the server.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Pauses between tries through an outage: full jitter from 100 ms up to 5 s, so the
/// replicas' every ledger call does not knock on the restarted server at the same
/// instant. `run` stops on `outage_patience`, not on these limits.
const OUTAGE_RETRY: RetrySettings = RetrySettings {
    base: Duration::from_millis(100),
    cap: Duration::from_secs(5),
    max_elapsed: Duration::MAX,
    max_attempts: u32::MAX,
};

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

    /// Extends every lease this process holds (its claims and the conversations it is
    /// listing, by what it knows it holds; its discovery turns); called every third of
    /// a lease while the process lives.
    pub fn renew_leases(&self) -> BoxFuture<'_, LedgerResult<u64>> {
        self.run(move |c, l| Box::pin(async move { renew(c, &l.store).await }))
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.store.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The row this process claimed under `token`, if a try committed it (its reply
    /// lost). Walks the org's claimed rows only (`recordings_leased`).
    async fn claimed_by(c: &Object, org: &str, token: i64) -> PgResult<Option<Claimed>> {
        let row = c
            .query_opt(
                &format!(
                    "SELECT {CLAIMED_COLUMNS} FROM recordings
                     WHERE org = $1 AND state = 'uploading' AND claim_token = $2"
                ),
                &[&org, &token],
            )
            .await?;
        if row.is_some() {
            tracing::info!(message = "A claim committed before its reply was lost is picked up, not made twice.");
        }
        Ok(row.as_ref().map(claimed))
    }

    /// Once `write` (the listing's last) is done, the conversations in `listed` are no
    /// longer renewed, whether it succeeded or not: the listing is over either way, and
    /// a row the write could not release must run out for another lister, not be
    /// renewed by this process for ever.
    fn release_listings<'a>(
        &'a self,
        write: BoxFuture<'a, LedgerResult<()>>,
        listed: Vec<(String, String)>,
    ) -> BoxFuture<'a, LedgerResult<()>> {
        Box::pin(async move {
            let written = write.await;
            let mut held = self.held();
            for key in &listed {
                held.listings.remove(key);
            }
            written
        })
    }

    /// Keeps the token of a claim handed out, so it is renewed until it settles.
    fn hold<'a>(
        &'a self,
        claimed: BoxFuture<'a, LedgerResult<Option<Claimed>>>,
    ) -> BoxFuture<'a, LedgerResult<Option<Claimed>>> {
        Box::pin(async move {
            let claimed = claimed.await?;
            if let Some(row) = &claimed {
                let mut held = self.held();
                held.claims.insert(row.token, self.org.to_string());
                held.renewed.get_or_insert_with(tokio::time::Instant::now);
            }
            Ok(claimed)
        })
    }

    /// Before a claim: renews first when the last renewal is older than the lease.
    async fn renew_if_stale(c: &Object, store: &PgStore) -> PgResult<()> {
        let stale = {
            let held = store.held.lock().unwrap_or_else(|p| p.into_inner());
            held.renewed.is_some_and(|at| at.elapsed() >= store.lease)
        };
        if stale {
            let n = renew(c, store).await?;
            tracing::info!(
                message = "Leases renewed before claiming again, after a gap longer than the lease.",
                renewed = n
            );
        }
        Ok(())
    }

    /// Lets go of this org's discovery turn (the org stops here), so another replica
    /// need not wait for the lease to run out.
    pub fn release_discovery(&self) -> BoxFuture<'_, LedgerResult<()>> {
        self.run(move |c, l| {
            Box::pin(async move {
                c.execute(
                    "DELETE FROM discovery_leases WHERE org = $1 AND owner = $2",
                    &[&l.org(), &l.store.owner],
                )
                .await
                .map(|_| ())
            })
        })
    }

    /// Forgets every claim and listing of this view's org that this process still
    /// holds: its run has ended (in error too), so nothing of it is being worked on;
    /// whatever was not released by a write runs out for the next claimer.
    pub fn release_held(&self) {
        let org = self.org.to_string();
        let mut held = self.held();
        held.claims.retain(|_, o| *o != org);
        held.listings.retain(|(o, _)| *o != org);
    }

    /// Fault injection for tests: the next `n` operations commit, then lose their
    /// reply (as a connection cut after the commit would) and are tried again.
    #[doc(hidden)]
    pub fn lose_replies(&self, n: u32) {
        self.store.lost_replies.store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Runs `f` on a pooled connection, handing it this view (its org, this process's
    /// name and lease), so a call need not copy them for every try. Through an outage (no connection, a connection
    /// lost, the server restarting) it tries again with backoff, ticking liveness while
    /// it waits (restarting would not bring the database back), until the patience
    /// runs out; an answer from the server that is an error is returned at once.
    fn run<'a, T, F>(&'a self, f: F) -> BoxFuture<'a, LedgerResult<T>>
    where
        T: Send + 'a,
        F: for<'c> Fn(&'c mut Object, &'c PgLedger) -> BoxFuture<'c, PgResult<T>> + Send + Sync + 'a,
    {
        Box::pin(async move {
            let started = tokio::time::Instant::now();
            let mut failures = 0u32;
            loop {
                let attempt = async {
                    let mut client = self.store.pool.get().await.map_err(Failure::Pool)?;
                    f(&mut client, self).await.map_err(Failure::Sql)
                }
                .await;
                let lose = || {
                    use std::sync::atomic::Ordering::Relaxed;
                    self.store
                        .lost_replies
                        .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
                        .is_ok()
                };
                let failure = match attempt {
                    Ok(_) if lose() => {
                        tracing::warn!(message = "Reply dropped after its commit (test fault); trying again.");
                        failures += 1;
                        continue;
                    }
                    Ok(value) => {
                        if failures > 0 {
                            tracing::info!(message = "Ledger reachable again.", tries = failures + 1);
                        }
                        return Ok(value);
                    }
                    Err(failure) => failure,
                };
                if failure.about_one_row() {
                    return Err(LedgerError::Data(failure.to_string()));
                }
                if !failure.transient() || started.elapsed() >= self.store.patience {
                    return Err(LedgerError::Store(failure.to_string()));
                }
                if failures == 0 {
                    tracing::warn!(message = "Ledger unreachable; waiting for it.", error = %failure);
                }
                failures += 1;
                let wait = backoff::full_jitter(&OUTAGE_RETRY, failures, &mut fastrand::Rng::new());
                crate::progress::waiting(tokio::time::sleep(wait)).await;
            }
        })
    }

    /// Runs a state change of a claimed recording (`sql`'s last four parameters are
    /// `updated_at`, the recording id, the claim token and the org) and checks that it changed
    /// the row: a claim taken over changes nothing and says so. `settles`: the state a
    /// change that ends the claim leaves (then the token is no longer renewed); a try
    /// replayed after a lost reply that finds the row already there, unclaimed, is a
    /// success, counted in [`replayed_writes`].
    fn claimed_change(
        &self,
        claim: Claim,
        sql: &'static str,
        values: Vec<Value>,
        settles: Option<&'static str>,
    ) -> BoxFuture<'_, LedgerResult<()>> {
        let (id, token) = (claim.recording_id.clone(), claim.token);
        let tries = std::sync::atomic::AtomicU32::new(0);
        let changed = self.run(move |c, l| {
            let retry = tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed) > 0;
            let mut all = values.clone();
            all.push(Value::Int(Some(now_ms())));
            all.push(Value::Text(Some(claim.recording_id.clone())));
            all.push(Value::Int(Some(claim.token)));
            all.push(Value::Text(Some(l.org().to_owned())));
            let id = claim.recording_id.clone();
            Box::pin(async move {
                let params: Vec<&(dyn ToSql + Sync)> = all.iter().map(Value::as_sql).collect();
                let n = c.execute(sql, &params).await?;
                let (Some(intended), true, 0) = (settles, retry, n) else {
                    return Ok(n);
                };
                let row = c
                    .query_opt(
                        "SELECT state FROM recordings WHERE org = $1 AND recording_id = $2 AND claim_token IS NULL",
                        &[&l.org(), &id],
                    )
                    .await?;
                if row.is_some_and(|r| r.get::<_, String>(0) == intended) {
                    *REPLAYED_WRITES
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(l.org().to_owned())
                        .or_default() += 1;
                    tracing::info!(
                        message = "A write replayed after a lost reply found its row as intended.",
                        state = intended
                    );
                    return Ok(1);
                }
                Ok(0)
            })
        });
        Box::pin(async move {
            let result = match changed.await {
                Ok(0) => Err(LedgerError::ClaimLost(id)),
                Ok(_) => Ok(()),
                Err(error) => Err(error),
            };
            // Settled, taken over, or not written (the ledger away past the patience):
            // either way this process is done with the claim; never renewed again.
            if settles.is_some() || result.is_err() {
                self.held().claims.remove(&token);
            }
            result
        })
    }
}

/// An owned query parameter (the values of a state change, kept for a retry; a row
/// copied from a SQLite ledger), typed as the column is: `BIGINT`, `INTEGER`, `TEXT`.
#[derive(Debug, Clone)]
enum Value {
    Int(Option<i64>),
    Int4(Option<i32>),
    Text(Option<String>),
}

impl Value {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Value::Int(v) => v,
            Value::Int4(v) => v,
            Value::Text(v) => v,
        }
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

impl Ledger for PgLedger {
    fn insert(&self, recordings: Vec<NewRecording>) -> BoxFuture<'_, LedgerResult<u64>> {
        let recordings: Vec<NewRecording> = recordings.into_iter().map(NewRecording::sanitized).collect();
        self.run(move |c, l| {
            let recordings = recordings.clone();
            Box::pin(async move {
                let tx = c.transaction().await?;
                let stmt = tx
                    .prepare_cached(
                        "INSERT INTO recordings (recording_id, conversation_id, state, reason, next_attempt_at,
                            start_time, end_time, metadata, discovered_at, updated_at, org,
                            archive_date, delete_date, deadline)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13)
                         ON CONFLICT (org, recording_id) DO UPDATE SET state = excluded.state, reason = excluded.reason,
                            next_attempt_at = CASE WHEN excluded.state = 'parked' THEN NULL
                                ELSE LEAST(recordings.next_attempt_at, excluded.next_attempt_at) END,
                            archive_date = COALESCE(excluded.archive_date, recordings.archive_date),
                            delete_date = COALESCE(excluded.delete_date, recordings.delete_date),
                            deadline = LEAST(recordings.deadline, excluded.deadline),
                            metadata = excluded.metadata, updated_at = excluded.updated_at
                         WHERE recordings.state = 'transcoding'",
                    )
                    .await?;
                let now = now_ms();
                let mut added = 0;
                for r in &recordings {
                    let (state, due) = match (&r.parked, r.not_before, r.transcoding) {
                        (Some(_), _, _) => (State::Parked, None),
                        (None, Some(at), true) => (State::Transcoding, Some(ms(at))),
                        (None, Some(at), false) => (State::Discovered, Some(ms(at))),
                        (None, None, _) => (State::Discovered, Some(now)),
                    };
                    added += tx
                        .execute(
                            &stmt,
                            &[
                                &r.recording_id,
                                &r.conversation_id,
                                &state.as_str(),
                                &r.parked.as_ref().or(r.waiting.as_ref()),
                                &due,
                                &r.start_time.map(ms),
                                &r.end_time.map(ms),
                                &r.metadata,
                                &now,
                                &l.org(),
                                &r.archive_date.map(ms),
                                &r.delete_date.map(ms),
                                &ms(r.deadline(Utc::now())),
                            ],
                        )
                        .await?;
                }
                tx.commit().await?;
                Ok(added)
            })
        })
    }

    fn conversations(
        &self,
        conversation_ids: Vec<String>,
    ) -> BoxFuture<'_, LedgerResult<std::collections::HashMap<String, ConversationRow>>> {
        self.run(move |c, l| {
            let ids = conversation_ids.clone();
            Box::pin(async move {
                let mut known = std::collections::HashMap::new();
                for row in c
                    .query(
                        &format!(
                            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE org = $2 AND conversation_id = ANY($1)"
                        ),
                        &[&ids, &l.org()],
                    )
                    .await?
                {
                    let row = conversation(&row);
                    known.insert(row.conversation_id.clone(), row);
                }
                for row in c
                    .query(
                        "SELECT conversation_id FROM parked_conversations WHERE org = $2 AND conversation_id = ANY($1)",
                        &[&ids, &l.org()],
                    )
                    .await?
                {
                    let id: String = row.get(0);
                    known.entry(id.clone()).or_insert(ConversationRow {
                        conversation_id: id,
                        start: DateTime::default(),
                        end: None,
                        state: ConversationState::Parked,
                        checks: 0,
                        next_check_at: None,
                        reason: None,
                    });
                }
                Ok(known)
            })
        })
    }

    fn save_conversations(&self, rows: Vec<ConversationRow>) -> BoxFuture<'_, LedgerResult<()>> {
        let rows: Vec<ConversationRow> = rows.into_iter().map(ConversationRow::sanitized).collect();
        let listed: Vec<(String, String)> = rows
            .iter()
            .map(|r| (self.org.to_string(), r.conversation_id.clone()))
            .collect();
        let saved = self.run(move |c, l| {
            let rows = rows.clone();
            Box::pin(async move {
                let tx = c.transaction().await?;
                let stmt = tx
                    .prepare_cached(
                        "INSERT INTO conversations (conversation_id, start_time, end_time, state, checks, next_check_at, updated_at, org,
                            reason)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                         ON CONFLICT (org, conversation_id) DO UPDATE SET start_time = excluded.start_time,
                            end_time = excluded.end_time, state = excluded.state, checks = excluded.checks,
                            next_check_at = excluded.next_check_at, updated_at = excluded.updated_at,
                            reason = excluded.reason, claim_owner = NULL, lease_until = NULL",
                    )
                    .await?;
                let now = now_ms();
                for r in &rows {
                    tx.execute(
                        &stmt,
                        &[
                            &r.conversation_id,
                            &ms(r.start),
                            &r.end.map(ms),
                            &r.state.as_str(),
                            &(r.checks.min(i32::MAX as u32) as i32),
                            &r.next_check_at.map(ms),
                            &now,
                            &l.org(),
                            &r.reason,
                        ],
                    )
                    .await?;
                }
                tx.commit().await
            })
        });
        // Saved, the conversation's listing (if this process held it) is over.
        self.release_listings(saved, listed)
    }

    fn active_by_next_check(&self, limit: u32) -> BoxFuture<'_, LedgerResult<Vec<ConversationRow>>> {
        self.run(move |c, l| {
            Box::pin(async move {
                let rows = c
                    .query(
                        &format!(
                            "SELECT {CONVERSATION_COLUMNS} FROM conversations
                             WHERE org = $1 AND state = 'active' ORDER BY next_check_at LIMIT $2"
                        ),
                        &[&l.org(), &i64::from(limit)],
                    )
                    .await?;
                Ok(rows.iter().map(conversation).collect())
            })
        })
    }

    fn claim_conversation(&self, now: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<Option<ConversationRow>>> {
        let claimed = self.run(move |c, l| {
            Box::pin(async move {
                Self::renew_if_stale(c, &l.store).await?;
                let at = now_ms();
                // A `checking` one whose lister stopped renewing it first, then the due
                // `ended` ones by their time: two picks, each an ordered walk of its own
                // index (one statement with OR would fetch and sort every due row on
                // every claim). Both take the same parameters, typed here. Leases are
                // set and compared on the server's clock.
                let types = [Type::INT8, Type::INT8, Type::TEXT, Type::TEXT, Type::INT8];
                for pick in [
                    concat!(
                        "SELECT conversation_id FROM conversations
                         WHERE org = $3 AND state = 'checking' AND lease_until < ",
                        db_now!(),
                        " ORDER BY lease_until LIMIT 1 FOR UPDATE SKIP LOCKED"
                    ),
                    "SELECT conversation_id FROM conversations
                     WHERE org = $3 AND state = 'ended' AND next_check_at <= $1
                     ORDER BY next_check_at LIMIT 1 FOR UPDATE SKIP LOCKED",
                ] {
                    let statement = c
                        .prepare_typed_cached(
                            &format!(
                                "UPDATE conversations SET state = 'checking', updated_at = $2, claim_owner = $4,
                                    lease_until = {} + $5
                                 WHERE org = $3 AND conversation_id = ({pick})
                                 RETURNING {CONVERSATION_COLUMNS}",
                                db_now!()
                            ),
                            &types,
                        )
                        .await?;
                    let row = c
                        .query_opt(&statement, &[&ms(now), &at, &l.org(), &l.store.owner, &l.lease_ms()])
                        .await?;
                    if let Some(row) = row {
                        return Ok(Some(conversation(&row)));
                    }
                }
                Ok(None)
            })
        });
        Box::pin(async move {
            let claimed = claimed.await?;
            if let Some(row) = &claimed {
                self.held()
                    .listings
                    .insert((self.org.to_string(), row.conversation_id.clone()));
            }
            Ok(claimed)
        })
    }

    fn next_conversation_due(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>> {
        self.run(move |c, l| {
            Box::pin(async move {
                let row = c
                    .query_one(
                        "SELECT MIN(next_check_at) FROM conversations WHERE org = $1 AND state = 'ended'",
                        &[&l.org()],
                    )
                    .await?;
                Ok(from_ms(row.get(0)))
            })
        })
    }

    fn claim_due(&self, now: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<Option<Claimed>>> {
        // One token for every try: a try whose commit succeeded but whose reply was
        // lost left a row claimed under it, which the next try picks up instead of
        // claiming another.
        let token = token();
        let tries = std::sync::atomic::AtomicU32::new(0);
        let claimed = self.run(move |c, l| {
            let retry = tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed) > 0;
            Box::pin(async move {
                if retry && let Some(row) = Self::claimed_by(c, l.org(), token).await? {
                    return Ok(Some(row));
                }
                Self::renew_if_stale(c, &l.store).await?;
                let at = now_ms();
                // A claim whose owner stopped renewing it first (it has waited longest),
                // then the queue in its order. Both statements take the same parameters,
                // typed here: the first has no use for $1 (the server could not infer it).
                // Leases are set and compared on the server's clock.
                let types = [Type::INT8, Type::INT8, Type::TEXT, Type::INT8, Type::TEXT, Type::INT8];
                for pick in [
                    concat!(
                        "SELECT recording_id FROM recordings
                         WHERE org = $3 AND state = 'uploading' AND lease_until < ",
                        db_now!(),
                        " ORDER BY lease_until LIMIT 1 FOR UPDATE SKIP LOCKED"
                    ),
                    "SELECT recording_id FROM recordings
                     WHERE org = $3 AND state IN ('discovered', 'transcoding', 'retrying') AND next_attempt_at <= $1
                     ORDER BY deadline, next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED",
                ] {
                    let statement = c
                        .prepare_typed_cached(
                            &format!(
                                "UPDATE recordings SET state = 'uploading', updated_at = $2, claim_token = $4,
                                    claim_owner = $5, lease_until = {} + $6
                                 WHERE org = $3 AND recording_id = ({pick})
                                 RETURNING {CLAIMED_COLUMNS}",
                                db_now!()
                            ),
                            &types,
                        )
                        .await?;
                    let row = c
                        .query_opt(
                            &statement,
                            &[&ms(now), &at, &l.org(), &token, &l.store.owner, &l.lease_ms()],
                        )
                        .await?;
                    if let Some(row) = row {
                        return Ok(Some(claimed(&row)));
                    }
                }
                Ok(None)
            })
        });
        self.hold(claimed)
    }

    fn claim_recording(&self, recording_id: String) -> BoxFuture<'_, LedgerResult<Option<Claimed>>> {
        let token = token();
        let tries = std::sync::atomic::AtomicU32::new(0);
        let claimed = self.run(move |c, l| {
            let id = recording_id.clone();
            let retry = tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed) > 0;
            Box::pin(async move {
                if retry && let Some(row) = Self::claimed_by(c, l.org(), token).await? {
                    return Ok(Some(row));
                }
                Self::renew_if_stale(c, &l.store).await?;
                let row = c
                    .query_opt(
                        &format!(
                            "UPDATE recordings SET state = 'uploading', updated_at = $2, claim_token = $3,
                                claim_owner = $4, lease_until = {} + $5
                             WHERE org = $6 AND recording_id = $1 AND state IN ('discovered', 'transcoding', 'retrying')
                             RETURNING {CLAIMED_COLUMNS}",
                            db_now!()
                        ),
                        &[&id, &now_ms(), &token, &l.store.owner, &l.lease_ms(), &l.org()],
                    )
                    .await?;
                Ok(row.as_ref().map(claimed))
            })
        });
        self.hold(claimed)
    }

    fn next_due(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>> {
        self.run(move |c, l| {
            Box::pin(async move {
                // A lease running out makes a recording due too (taken over then); it
                // runs out on the server's clock, told here on this process's clock.
                let row = c
                    .query_one(
                        concat!(
                            "SELECT LEAST(
                            (SELECT MIN(next_attempt_at) FROM recordings
                             WHERE org = $1 AND state IN ('discovered', 'transcoding', 'retrying')),
                            (SELECT MIN(lease_until) FROM recordings WHERE org = $1 AND state = 'uploading')
                                - ",
                            db_now!(),
                            " + $2)"
                        ),
                        &[&l.org(), &now_ms()],
                    )
                    .await?;
                Ok(from_ms(row.get(0)))
            })
        })
    }

    fn unfinished(&self) -> BoxFuture<'_, LedgerResult<u64>> {
        self.run(move |c, l| {
            Box::pin(async move {
                let row = c
                    .query_one(
                        "SELECT COALESCE(SUM(n), 0)::int8 FROM recording_counts
                         WHERE org = $1 AND state NOT IN ('archived', 'parked', 'failed')",
                        &[&l.org()],
                    )
                    .await?;
                Ok(row.get::<_, i64>(0).max(0) as u64)
            })
        })
    }

    fn reschedule(
        &self,
        claim: Claim,
        state: State,
        at: DateTime<Utc>,
        attempts: u32,
        error: Option<String>,
    ) -> BoxFuture<'_, LedgerResult<()>> {
        let error = error.as_deref().map(untrusted::reason);
        debug_assert!(matches!(
            state,
            State::Transcoding | State::Retrying | State::Discovered
        ));
        self.claimed_change(
            claim,
            "UPDATE recordings SET state = $1, next_attempt_at = $2, attempts = $3, reason = $4, claim_token = NULL,
                claim_owner = NULL, lease_until = NULL, updated_at = $5
             WHERE recording_id = $6 AND claim_token = $7 AND org = $8 AND state = 'uploading'",
            vec![
                Value::Text(Some(state.as_str().to_owned())),
                Value::Int(Some(ms(at))),
                Value::Int4(Some(attempts.min(i32::MAX as u32) as i32)),
                Value::Text(error),
            ],
            Some(state.as_str()),
        )
    }

    fn park(&self, claim: Claim, reason: String) -> BoxFuture<'_, LedgerResult<()>> {
        let reason = untrusted::reason(&reason);
        self.claimed_change(
            claim,
            "UPDATE recordings SET state = 'parked', reason = $1, next_attempt_at = NULL, claim_token = NULL,
                claim_owner = NULL, lease_until = NULL, updated_at = $2
             WHERE recording_id = $3 AND claim_token = $4 AND org = $5 AND state = 'uploading'",
            vec![Value::Text(Some(reason))],
            Some("parked"),
        )
    }

    fn fail(&self, claim: Claim, attempts: u32, error: String) -> BoxFuture<'_, LedgerResult<()>> {
        let error = untrusted::reason(&error);
        self.claimed_change(
            claim,
            "UPDATE recordings SET state = 'failed', attempts = $1, reason = $2, next_attempt_at = NULL,
                claim_token = NULL, claim_owner = NULL, lease_until = NULL, updated_at = $3
             WHERE recording_id = $4 AND claim_token = $5 AND org = $6 AND state = 'uploading'",
            vec![
                Value::Int4(Some(attempts.min(i32::MAX as u32) as i32)),
                Value::Text(Some(error)),
            ],
            Some("failed"),
        )
    }

    fn archived(&self, claim: Claim, facts: ArchiveFacts) -> BoxFuture<'_, LedgerResult<()>> {
        self.claimed_change(
            claim,
            "UPDATE recordings SET state = 'archived', object_key = $1, size = $2, sha256 = $3, archived_at = $4,
                parts = $5, reason = NULL, next_attempt_at = NULL, upload_id = NULL, upload_key = NULL,
                claim_token = NULL, claim_owner = NULL, lease_until = NULL, updated_at = $6
             WHERE recording_id = $7 AND claim_token = $8 AND org = $9 AND state = 'uploading'",
            vec![
                Value::Text(Some(facts.key.clone())),
                Value::Int(Some(facts.size as i64)),
                Value::Text(facts.sha256_column()),
                Value::Int(Some(ms(facts.archived_at))),
                Value::Text(facts.parts_column()),
            ],
            Some("archived"),
        )
    }

    fn fix_key(&self, claim: Claim, key: String) -> BoxFuture<'_, LedgerResult<String>> {
        let id = claim.recording_id.clone();
        let stored = self.run(move |c, l| {
            let (claim, key) = (claim.clone(), key.clone());
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "UPDATE recordings SET object_key = COALESCE(object_key, $1), updated_at = $2
                         WHERE recording_id = $3 AND claim_token = $4 AND org = $5 AND state = 'uploading'
                         RETURNING object_key",
                        &[&key, &now_ms(), &claim.recording_id, &claim.token, &l.org()],
                    )
                    .await?;
                Ok(row.map(|r| r.get::<_, String>(0)))
            })
        });
        Box::pin(async move { stored.await?.ok_or(LedgerError::ClaimLost(id)) })
    }

    fn upload_opened(&self, claim: Claim, key: String, upload_id: String) -> BoxFuture<'_, LedgerResult<()>> {
        self.claimed_change(
            claim,
            "UPDATE recordings SET upload_id = $1, upload_key = $2, updated_at = $3
             WHERE recording_id = $4 AND claim_token = $5 AND org = $6 AND state = 'uploading' AND object_key IS NOT NULL",
            vec![Value::Text(Some(upload_id)), Value::Text(Some(key))],
            None,
        )
    }

    fn upload_closed(&self, claim: Claim) -> BoxFuture<'_, LedgerResult<()>> {
        self.claimed_change(
            claim,
            "UPDATE recordings SET upload_id = NULL, upload_key = NULL, updated_at = $1
             WHERE recording_id = $2 AND claim_token = $3 AND org = $4 AND state = 'uploading'",
            vec![],
            None,
        )
    }

    fn forget_upload(&self, recording_id: String) -> BoxFuture<'_, LedgerResult<()>> {
        self.run(move |c, l| {
            let id = recording_id.clone();
            Box::pin(async move {
                c.execute(
                    "UPDATE recordings SET upload_id = NULL, upload_key = NULL, updated_at = $1
                     WHERE org = $3 AND recording_id = $2",
                    &[&now_ms(), &id, &l.org()],
                )
                .await
                .map(|_| ())
            })
        })
    }

    /// Other replicas may be working: nothing of theirs is touched. Claims and listings
    /// of a process that stopped are taken over when their lease runs out, with the
    /// upload they had open; so there is nothing to requeue or abort at start.
    fn recover(&self) -> BoxFuture<'_, LedgerResult<Vec<OpenUpload>>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn watermark(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>> {
        self.run(move |c, l| {
            Box::pin(async move {
                Ok(read_meta(&*c, &watermark_key(l.org()))
                    .await?
                    .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
                    .map(|t| t.with_timezone(&Utc)))
            })
        })
    }

    fn set_watermark(&self, at: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<()>> {
        self.run(move |c, l| {
            Box::pin(async move {
                let at = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                write_meta(&*c, &watermark_key(l.org()), &at).await
            })
        })
    }

    fn status(&self) -> BoxFuture<'_, LedgerResult<StatusReport>> {
        self.run(move |c, l| {
            Box::pin(async move {
                let mut report = StatusReport::default();
                for state in State::ALL {
                    report.counts.insert(state.as_str().to_owned(), 0);
                }
                for state in ConversationState::ALL {
                    report.conversations.insert(state.as_str().to_owned(), 0);
                }
                for row in c
                    .query(
                        "SELECT state, SUM(n)::int8 FROM recording_counts WHERE org = $1 GROUP BY state",
                        &[&l.org()],
                    )
                    .await?
                {
                    report.counts.insert(row.get(0), row.get::<_, i64>(1).max(0) as u64);
                }
                for row in c
                    .query(
                        "SELECT state, SUM(n)::int8 FROM conversation_counts WHERE org = $1 GROUP BY state",
                        &[&l.org()],
                    )
                    .await?
                {
                    report
                        .conversations
                        .insert(row.get(0), row.get::<_, i64>(1).max(0) as u64);
                }
                report.oldest_unarchived = c
                    .query_opt(
                        "SELECT recording_id, COALESCE(end_time, start_time, discovered_at) FROM recordings
                         WHERE org = $1 AND state NOT IN ('archived', 'parked')
                         ORDER BY COALESCE(end_time, start_time, discovered_at) LIMIT 1",
                        &[&l.org()],
                    )
                    .await?
                    .and_then(|r| Some((r.get(0), DateTime::from_timestamp_millis(r.get(1))?)));
                report.soonest_deadline = c
                    .query_opt(
                        "SELECT recording_id, deadline FROM recordings
                         WHERE org = $1 AND state NOT IN ('archived', 'parked') ORDER BY deadline LIMIT 1",
                        &[&l.org()],
                    )
                    .await?
                    .and_then(|r| Some((r.get(0), DateTime::from_timestamp_millis(r.get(1))?)));
                report.oldest_unsettled = c
                    .query_opt(
                        "SELECT conversation_id, end_time FROM conversations
                         WHERE org = $1 AND state IN ('ended', 'checking') AND end_time IS NOT NULL
                         ORDER BY end_time LIMIT 1",
                        &[&l.org()],
                    )
                    .await?
                    .and_then(|r| Some((r.get(0), DateTime::from_timestamp_millis(r.get(1))?)));
                for row in c
                    .query(
                        "SELECT conversation_id, reason FROM conversations
                         WHERE org = $1 AND reason IS NOT NULL AND state IN ('active', 'ended', 'checking') LIMIT 1000",
                        &[&l.org()],
                    )
                    .await?
                {
                    report.failing_conversations.push((row.get(0), row.get(1)));
                }
                report.watermark = read_meta(&*c, &watermark_key(l.org()))
                    .await?
                    .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
                    .map(|t| t.with_timezone(&Utc));
                report.org_state = read_meta(&*c, &org_state_key(l.org()))
                    .await?
                    .and_then(|v| serde_json::from_str(&v).ok());
                for row in c
                    .query(
                        "SELECT conversation_id, reason FROM parked_conversations WHERE org = $1
                         ORDER BY parked_at LIMIT 1000",
                        &[&l.org()],
                    )
                    .await?
                {
                    report.parked_conversations.push((row.get(0), row.get(1)));
                }
                Ok(report)
            })
        })
    }

    fn record_org_state(&self, condition: OrgCondition) -> BoxFuture<'_, LedgerResult<()>> {
        self.run(move |c, l| {
            let condition = condition.clone();
            Box::pin(async move {
                let key = org_state_key(l.org());
                let tx = c.transaction().await?;
                // One writer of the key at a time (two replicas starting one org).
                tx.execute("SELECT pg_advisory_xact_lock(hashtext($1)::bigint)", &[&key])
                    .await?;
                let previous: Option<OrgState> =
                    read_meta(&tx, &key).await?.and_then(|v| serde_json::from_str(&v).ok());
                let state = OrgState::then(previous.as_ref(), condition);
                write_meta(&tx, &key, &serde_json::to_string(&state).expect("org states serialize")).await?;
                tx.commit().await
            })
        })
    }

    fn retry_failed(&self) -> BoxFuture<'_, LedgerResult<u64>> {
        self.run(move |c, l| {
            Box::pin(async move {
                c.execute(
                    "UPDATE recordings SET state = 'discovered', attempts = 0, next_attempt_at = $1, updated_at = $1
                     WHERE org = $2 AND state = 'failed'",
                    &[&now_ms(), &l.org()],
                )
                .await
            })
        })
    }

    fn retry_parked(&self, which: ParkedSelection) -> BoxFuture<'_, LedgerResult<u64>> {
        self.run(move |c, l| {
            let which = which.clone();
            Box::pin(async move {
                let (condition, value) = match which {
                    ParkedSelection::All => ("$3::text IS NULL", None),
                    ParkedSelection::ReasonContains(text) => {
                        ("strpos(lower(COALESCE(reason, '')), lower($3)) > 0", Some(text))
                    }
                    ParkedSelection::Id(id) => ("recording_id = $3", Some(id)),
                };
                c.execute(
                    &format!(
                        "UPDATE recordings SET state = 'discovered', attempts = 0, reason = NULL, next_attempt_at = $1,
                            updated_at = $1
                         WHERE org = $2 AND state = 'parked' AND {condition}"
                    ),
                    &[&now_ms(), &l.org(), &value],
                )
                .await
            })
        })
    }

    fn list(&self, filter: ListFilter, limit: u32) -> BoxFuture<'_, LedgerResult<Vec<RecordingRow>>> {
        self.run(move |c, l| {
            Box::pin(async move {
                let sql = numbered(&LIST.replace("{condition}", list_condition(filter)));
                let rows = c.query(&sql, &[&l.org(), &i64::from(limit)]).await?;
                Ok(rows.iter().map(recording_row).collect())
            })
        })
    }

    fn handoff_due(
        &self,
        after: Option<(DateTime<Utc>, String)>,
        limit: u32,
    ) -> BoxFuture<'_, LedgerResult<Vec<HandoffDue>>> {
        let (at, id) = after.map_or((-1, String::new()), |(at, id)| (ms(at), id));
        self.run(move |c, l| {
            let id = id.clone();
            Box::pin(async move {
                let sql = numbered(&HANDOFF_DUE.replace("{free}", handoff_free!("?5")));
                let rows = c
                    .query(&sql, &[&l.org(), &i64::from(limit), &at, &id, &l.store.owner])
                    .await?;
                Ok(rows.iter().map(handoff_due_row).collect())
            })
        })
    }

    fn claim_handoff(&self, recording_id: String) -> BoxFuture<'_, LedgerResult<bool>> {
        self.run(move |c, l| {
            let id = recording_id.clone();
            Box::pin(async move {
                let n = c
                    .execute(
                        concat!(
                            "UPDATE recordings SET handoff_owner = $3,
                                handoff_lease = ",
                            db_now!(),
                            " + $4
                             WHERE org = $1 AND recording_id = $2 AND state = 'archived' AND handoff_at IS NULL AND ",
                            handoff_free!("$3")
                        ),
                        &[&l.org(), &id, &l.store.owner, &l.lease_ms()],
                    )
                    .await?;
                Ok(n == 1)
            })
        })
    }

    fn handed_off(&self, recording_id: String, handoff: Handoff) -> BoxFuture<'_, LedgerResult<()>> {
        let note = untrusted::reason(&handoff.note);
        self.run(move |c, l| {
            let (id, note) = (recording_id.clone(), note.clone());
            Box::pin(async move {
                let sql = numbered(&HANDED_OFF.replace("{release}", ", handoff_lease = NULL, handoff_owner = NULL"));
                c.execute(
                    &sql,
                    &[
                        &l.org(),
                        &id,
                        &ms(handoff.at),
                        &handoff.old.map(ms),
                        &handoff.new.map(ms),
                        &note,
                    ],
                )
                .await?;
                Ok(())
            })
        })
    }

    fn prune(&self, cutoff: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<Pruned>> {
        Box::pin(async move {
            let mut total = Pruned::default();
            loop {
                let slice = self
                    .run(move |c, _| {
                        Box::pin(async move {
                            let cutoff = ms(cutoff);
                            let tx = c.transaction().await?;
                            let recordings = tx
                                .execute(
                                    "DELETE FROM recordings WHERE (org, recording_id) IN (
                                         SELECT org, recording_id FROM recordings
                                         WHERE state IN ('archived', 'parked') AND COALESCE(start_time, discovered_at) < $1
                                         LIMIT $2)",
                                    &[&cutoff, &PRUNE_BATCH],
                                )
                                .await?;
                            let conversations = tx
                                .execute(
                                    "DELETE FROM conversations WHERE (org, conversation_id) IN (
                                         SELECT org, conversation_id FROM conversations
                                         WHERE start_time < $1 AND state IN ('settled', 'parked') LIMIT $2)",
                                    &[&cutoff, &PRUNE_BATCH],
                                )
                                .await?;
                            tx.execute("DELETE FROM parked_conversations WHERE parked_at < $1", &[&cutoff])
                                .await?;
                            tx.commit().await?;
                            Ok(Pruned {
                                recordings,
                                conversations,
                            })
                        })
                    })
                    .await?;
                total.recordings += slice.recordings;
                total.conversations += slice.conversations;
                if slice.recordings < PRUNE_BATCH as u64 && slice.conversations < PRUNE_BATCH as u64 {
                    return Ok(total);
                }
            }
        })
    }

    fn park_conversation(&self, conversation_id: String, reason: String) -> BoxFuture<'_, LedgerResult<()>> {
        let (conversation_id, reason) = (untrusted::ledger_key(&conversation_id), untrusted::reason(&reason));
        let listed = vec![(self.org.to_string(), conversation_id.clone())];
        let parked = self.run(move |c, l| {
            let (id, reason) = (conversation_id.clone(), reason.clone());
            Box::pin(async move {
                let tx = c.transaction().await?;
                let now = now_ms();
                tx.execute(
                    "INSERT INTO parked_conversations (conversation_id, reason, parked_at, org) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (org, conversation_id) DO UPDATE SET reason = excluded.reason, parked_at = excluded.parked_at",
                    &[&id, &reason, &now, &l.org()],
                )
                .await?;
                tx.execute(
                    "UPDATE conversations SET state = 'parked', next_check_at = NULL, claim_owner = NULL,
                        lease_until = NULL, updated_at = $2
                     WHERE org = $3 AND conversation_id = $1",
                    &[&id, &now, &l.org()],
                )
                .await?;
                tx.commit().await
            })
        });
        self.release_listings(parked, listed)
    }

    fn records(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<Vec<LedgerRecord>>> {
        self.run(move |c, l| {
            Box::pin(async move {
                let rows = c.query(&numbered(RECORDS), &[&l.org(), &ms(from), &ms(to)]).await?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        let state: String = r.get(2);
                        let key: Option<String> = r.get(5);
                        let sha256: Option<String> = r.get(7);
                        let parts: Option<String> = r.get(8);
                        let files = record_files(&state, key.as_deref(), r.get(6), sha256.as_deref(), parts.as_deref());
                        LedgerRecord {
                            recording_id: r.get(0),
                            conversation_id: r.get(1),
                            state,
                            reason: r.get(3),
                            conversation_start: from_ms(r.get(4)).unwrap_or_default(),
                            key,
                            files,
                            handoff: Handoff::from_columns(r.get(9), r.get(10), r.get(11), r.get(12)),
                        }
                    })
                    .collect())
            })
        })
    }

    fn unsettled_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> BoxFuture<'_, LedgerResult<u64>> {
        self.run(move |c, l| {
            Box::pin(async move {
                let row = c
                    .query_one(&numbered(UNSETTLED_BETWEEN), &[&l.org(), &ms(from), &ms(to)])
                    .await?;
                Ok(row.get::<_, i64>(0).max(0) as u64)
            })
        })
    }

    fn first_start(&self) -> BoxFuture<'_, LedgerResult<Option<DateTime<Utc>>>> {
        self.run(move |c, l| {
            Box::pin(async move {
                let row = c
                    .query_one("SELECT MIN(start_time) FROM conversations WHERE org = $1", &[&l.org()])
                    .await?;
                Ok(from_ms(row.get(0)))
            })
        })
    }

    fn note(&self, name: &'static str) -> BoxFuture<'_, LedgerResult<Option<String>>> {
        self.run(move |c, l| Box::pin(async move { read_meta(&*c, &note_key(name, l.org())).await }))
    }

    fn set_note(&self, name: &'static str, value: String) -> BoxFuture<'_, LedgerResult<()>> {
        self.run(move |c, l| {
            let value = value.clone();
            Box::pin(async move { write_meta(&*c, &note_key(name, l.org()), &value).await })
        })
    }

    fn retry_conversations(&self) -> BoxFuture<'_, LedgerResult<u64>> {
        self.run(move |c, l| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let now = now_ms();
                tx.execute(
                    "UPDATE conversations SET state = 'ended', checks = 0, next_check_at = $1, updated_at = $1
                     WHERE org = $2 AND state = 'parked'",
                    &[&now, &l.org()],
                )
                .await?;
                let n = tx
                    .execute("DELETE FROM parked_conversations WHERE org = $1", &[&l.org()])
                    .await?;
                tx.commit().await?;
                Ok(n)
            })
        })
    }

    fn listed_hold(&self) -> Option<std::time::Duration> {
        Some(self.store.lease)
    }

    fn hold_discovery(&self) -> BoxFuture<'_, LedgerResult<bool>> {
        self.run(move |c, l| {
            Box::pin(async move {
                // Taken when free or run out, kept (renewed) when ours; never taken
                // from a live holder. On the server's clock.
                let held = c
                    .query_opt(
                        concat!(
                            "INSERT INTO discovery_leases (org, owner, lease_until) VALUES ($1, $2, ",
                            db_now!(),
                            " + $3)
                         ON CONFLICT (org) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
                         WHERE discovery_leases.owner = excluded.owner OR discovery_leases.lease_until < ",
                            db_now!(),
                            " RETURNING owner"
                        ),
                        &[&l.org(), &l.store.owner, &l.lease_ms()],
                    )
                    .await?;
                Ok(held.is_some())
            })
        })
    }
}
