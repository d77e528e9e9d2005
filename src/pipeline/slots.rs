//! The worker slots, shared by every org the process serves.
//!
//! `workers.count` slots bound the memory of the whole process, whatever the number of
//! orgs: a slot is taken before a job is claimed and travels with the job. Orgs take
//! slots from one pool in arrival order (tokio's semaphore is FIFO, and a released
//! permit goes to the oldest waiter before anyone else may take it), so an org with a
//! backlog of 100,000 recordings that asks again after each job queues behind an org
//! with ten new ones instead of keeping every slot it frees. `workers.per_org_max`
//! caps what one org holds at once, so a few orgs with large backlogs still leave
//! slots for the rest. Listings have a pool of their own (they hold no media, only a
//! request the platform may keep waiting), shared the same way.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Listings in flight, and listed URLs waiting for a worker, per worker slot: a listing
/// holds no media, only a request the platform may keep waiting (`list_max_wait`), so
/// there are more of them than workers; at ~10 archived a second, 4 per slot wait about
/// 3 s, against the 90 s a listed URL is used.
pub const LISTINGS_PER_WORKER: usize = 4;

/// The process's pools.
#[derive(Debug, Clone)]
pub struct SharedSlots {
    workers: Arc<Semaphore>,
    listings: Arc<Semaphore>,
    per_org_max: usize,
    /// [`LISTINGS_PER_WORKER`] per worker slot.
    listing_cap: usize,
}

impl SharedSlots {
    /// `workers` worker slots (and listing slots in proportion), at most `per_org_max`
    /// held by one org.
    pub fn new(workers: usize, per_org_max: usize) -> Self {
        let listing_cap = workers * LISTINGS_PER_WORKER;
        Self {
            workers: Arc::new(Semaphore::new(workers)),
            listings: Arc::new(Semaphore::new(listing_cap)),
            per_org_max: per_org_max.clamp(1, workers),
            listing_cap,
        }
    }

    /// One org's access to the pools.
    pub fn for_org(&self) -> OrgSlots {
        OrgSlots {
            shared: self.clone(),
            own: Arc::new(Semaphore::new(self.per_org_max)),
        }
    }
}

/// A slot held by one job: its org's share and the pool's.
#[derive(Debug)]
pub struct Slot {
    _own: Option<OwnedSemaphorePermit>,
    _pool: OwnedSemaphorePermit,
}

/// One org's side of the pools.
#[derive(Debug, Clone)]
pub struct OrgSlots {
    shared: SharedSlots,
    /// At most `per_org_max` of the pool's slots at once.
    own: Arc<Semaphore>,
}

impl OrgSlots {
    /// Waits for a worker slot: first one of the org's own share, then one of the pool,
    /// in arrival order among the orgs that wait.
    pub async fn worker(&self) -> Slot {
        let own = self.own.clone().acquire_owned().await.expect("never closed");
        let pool = self.shared.workers.clone().acquire_owned().await.expect("never closed");
        Slot {
            _own: Some(own),
            _pool: pool,
        }
    }

    /// A listing slot if one is free now.
    pub fn try_listing(&self) -> Option<Slot> {
        let pool = self.shared.listings.clone().try_acquire_owned().ok()?;
        Some(Slot {
            _own: None,
            _pool: pool,
        })
    }

    /// Most listed URLs that may wait for a worker before the org's listings pause: a
    /// listing far ahead of the workers would let its URLs age.
    pub fn listing_cap(&self) -> usize {
        self.shared.listing_cap
    }

    /// Worker slots the org holds now.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.shared.per_org_max - self.own.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use std::time::Duration;

    /// A worker slot if one is free now and no other org waits for it.
    fn try_worker(org: &OrgSlots) -> Option<Slot> {
        org.worker().now_or_never()
    }

    /// Two orgs that both always have work: A asks first and holds every slot, B queues;
    /// as A's jobs end, B gets its turn before A's next request.
    #[tokio::test(start_paused = true)]
    async fn an_org_with_a_backlog_takes_turns_with_one_that_has_a_little() {
        let pool = SharedSlots::new(4, 4);
        let (a, b) = (pool.for_org(), pool.for_org());
        let mut held_a: Vec<Slot> = (0..4).map(|_| try_worker(&a).unwrap()).collect();
        assert!(try_worker(&b).is_none());
        // B waits in line; A's jobs finish one by one, and A asks again after each.
        let b_waiting = tokio::spawn({
            let b = b.clone();
            async move {
                let mut got = Vec::new();
                for _ in 0..2 {
                    got.push(b.worker().await);
                }
                got
            }
        });
        tokio::task::yield_now().await;
        let mut order = Vec::new();
        for _ in 0..4 {
            drop(held_a.remove(0));
            tokio::task::yield_now().await;
            // A freed a slot: its own immediate try must not steal it from B.
            match try_worker(&a) {
                Some(slot) => {
                    order.push('a');
                    held_a.push(slot);
                }
                None => order.push('b'),
            }
        }
        let b_slots = tokio::time::timeout(Duration::from_secs(1), b_waiting)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b_slots.len(), 2);
        assert_eq!(order, ['b', 'b', 'a', 'a'], "B's two waiting requests come first");
        assert_eq!(a.held() + b.held(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn one_org_never_holds_more_than_its_cap() {
        let pool = SharedSlots::new(8, 3);
        let (a, b) = (pool.for_org(), pool.for_org());
        let held: Vec<Slot> = std::iter::from_fn(|| try_worker(&a)).collect();
        assert_eq!(held.len(), 3);
        let more = tokio::time::timeout(Duration::from_secs(1), a.worker()).await;
        assert!(more.is_err(), "a fourth slot waits for one of the three");
        let others: Vec<Slot> = std::iter::from_fn(|| try_worker(&b)).collect();
        assert_eq!(others.len(), 3, "the rest of the pool is there for the others");
        drop(held);
        assert_eq!(a.held(), 0);
    }
}
