//! Through a PostgreSQL outage: which failures waiting may mend, and the loop every
//! ledger call runs in (backoff with jitter until `[ledger] outage_patience`).

use super::*;

/// What a failed operation was: a connection that can come back, or an answer.
pub(super) enum Failure {
    Pool(PoolError),
    Sql(tokio_postgres::Error),
}

impl Failure {
    /// Whether waiting may help: no connection, a connection lost, the server starting
    /// or shutting down, a serialization conflict. A SQL error that the server answered
    /// (a constraint, a syntax) will not change by waiting.
    pub(super) fn transient(&self) -> bool {
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
    pub(super) fn about_one_row(&self) -> bool {
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
    /// Runs `f` on a pooled connection, handing it this view (its org, this process's
    /// name and lease), so a call need not copy them for every try. Through an outage (no connection, a connection
    /// lost, the server restarting) it tries again with backoff, ticking liveness while
    /// it waits (restarting would not bring the database back), until the patience
    /// runs out; an answer from the server that is an error is returned at once.
    pub(super) fn run<'a, T, F>(&'a self, f: F) -> BoxFuture<'a, LedgerResult<T>>
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
}
