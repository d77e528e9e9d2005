//! The leases a replica holds and renews: its recording claims, the conversations it
//! is listing, its discovery turns. What it holds is what it knows it was handed,
//! never "everything under my name"; renewals and takeovers are on the server's clock.

use super::*;

#[derive(Default)]
pub(super) struct Held {
    /// Claim tokens, with the org that holds them.
    pub(super) claims: std::collections::HashMap<i64, String>,
    /// (org, conversation id).
    pub(super) listings: std::collections::HashSet<(String, String)>,
    /// When the leases were last renewed; `None` before any claim. A claim after a gap
    /// longer than the lease (a PostgreSQL outage) renews first: this process's own
    /// claims would otherwise look run out to it and be handed to a second worker.
    pub(super) renewed: Option<tokio::time::Instant>,
}

/// Writes replayed after a lost reply that found their row already as intended, by
/// org: successes, not claims taken over (`ledger_writes_replayed_total`).
pub(super) static REPLAYED_WRITES: std::sync::Mutex<std::collections::BTreeMap<String, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// [`REPLAYED_WRITES`] as it stands, by org.
pub fn replayed_writes() -> std::collections::BTreeMap<String, u64> {
    REPLAYED_WRITES.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

pub(super) fn token() -> i64 {
    fastrand::i64(..)
}

/// Renews the leases `store` knows it holds, on the server's clock.
pub(super) async fn renew(c: &Object, store: &PgStore) -> PgResult<u64> {
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

impl PgLedger {
    /// Extends every lease this process holds (its claims and the conversations it is
    /// listing, by what it knows it holds; its discovery turns); called every third of
    /// a lease while the process lives.
    pub fn renew_leases(&self) -> BoxFuture<'_, LedgerResult<u64>> {
        self.run(move |c, l| Box::pin(async move { renew(c, &l.store).await }))
    }

    pub(super) fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.store.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The row this process claimed under `token`, if a try committed it (its reply
    /// lost). Walks the org's claimed rows only (`recordings_leased`).
    pub(super) async fn claimed_by(c: &Object, org: &str, token: i64) -> PgResult<Option<Claimed>> {
        let row = c
            .query_opt(
                concat!(
                    "SELECT ",
                    claimed_columns!(),
                    " FROM recordings WHERE org = $1 AND state = 'uploading' AND claim_token = $2"
                ),
                &[&org, &token],
            )
            .await?;
        if row.is_some() {
            tracing::info!(message = "A claim committed before its reply was lost is picked up, not made twice.");
        }
        row.as_ref().map(rows::claimed).transpose()
    }

    /// Once `write` (the listing's last) is done, the conversations in `listed` are no
    /// longer renewed, whether it succeeded or not: the listing is over either way, and
    /// a row the write could not release must run out for another lister, not be
    /// renewed by this process for ever.
    pub(super) fn release_listings<'a>(
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
    pub(super) fn hold<'a>(
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
    pub(super) async fn renew_if_stale(c: &Object, store: &PgStore) -> PgResult<()> {
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
}
