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

/// The process's pools.
#[derive(Debug, Clone)]
pub struct SharedSlots {
    workers: Arc<Semaphore>,
    listings: Arc<Semaphore>,
    per_org_max: usize,
}

impl SharedSlots {
    pub fn new(workers: usize, listings: usize, per_org_max: usize) -> Self {
        Self {
            workers: Arc::new(Semaphore::new(workers)),
            listings: Arc::new(Semaphore::new(listings)),
            per_org_max: per_org_max.clamp(1, workers),
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

    /// A worker slot if one is free now and no other org is waiting for it.
    pub fn try_worker(&self) -> Option<Slot> {
        let own = self.own.clone().try_acquire_owned().ok()?;
        let pool = self.shared.workers.clone().try_acquire_owned().ok()?;
        Some(Slot {
            _own: Some(own),
            _pool: pool,
        })
    }

    /// A listing slot if one is free now.
    pub fn try_listing(&self) -> Option<Slot> {
        let pool = self.shared.listings.clone().try_acquire_owned().ok()?;
        Some(Slot {
            _own: None,
            _pool: pool,
        })
    }

    /// Worker slots the org holds now.
    pub fn held(&self) -> usize {
        self.shared.per_org_max - self.own.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Two orgs that both always have work: A asks first and holds every slot, B queues;
    /// as A's jobs end, B gets its turn before A's next request.
    #[tokio::test(start_paused = true)]
    async fn an_org_with_a_backlog_takes_turns_with_one_that_has_a_little() {
        let pool = SharedSlots::new(4, 4, 4);
        let (a, b) = (pool.for_org(), pool.for_org());
        let mut held_a: Vec<Slot> = (0..4).map(|_| a.try_worker().unwrap()).collect();
        assert!(b.try_worker().is_none());
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
            match a.try_worker() {
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
        let pool = SharedSlots::new(8, 8, 3);
        let (a, b) = (pool.for_org(), pool.for_org());
        let held: Vec<Slot> = std::iter::from_fn(|| a.try_worker()).collect();
        assert_eq!(held.len(), 3);
        let more = tokio::time::timeout(Duration::from_secs(1), a.worker()).await;
        assert!(more.is_err(), "a fourth slot waits for one of the three");
        let others: Vec<Slot> = std::iter::from_fn(|| b.try_worker()).collect();
        assert_eq!(others.len(), 3, "the rest of the pool is there for the others");
        drop(held);
        assert_eq!(a.held(), 0);
    }
}
