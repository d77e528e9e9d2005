//! Progress beacons: what liveness is made of.
//!
//! A loop that only reports at its top looks stalled while one iteration legitimately
//! takes long (a first discovery pass of thousands of calls at 300 a minute, eight
//! multi-GiB uploads, a long shared cooldown), and Kubernetes or systemd would kill a
//! healthy daemon. So the work itself reports: every API answer, every budget grant
//! (and every few seconds of a bounded wait for one), every chunk downloaded and every
//! part uploaded ticks the beacon of the task it runs for. The beacon is task-local, so
//! the leaf code that ticks needs no handle: the poller and the dispatcher run their
//! work inside [`Beacon::scope`]. A task that truly hangs (a lock never released, a
//! future never woken) ticks nothing, and its beacon goes stale.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

tokio::task_local! {
    static BEACON: Beacon;
}

/// When the work of one loop last moved; cheap to tick from hot paths (one store).
#[derive(Debug, Clone)]
pub struct Beacon {
    base: Instant,
    /// Milliseconds after `base` of the last tick.
    at: Arc<AtomicU64>,
    /// Ticked with this one: a job's beacon ticks the pool's too.
    parent: Option<Arc<Beacon>>,
}

impl Default for Beacon {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            at: Arc::default(),
            parent: None,
        }
    }
}

impl Beacon {
    pub fn tick(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.at.fetch_max(ms, Ordering::Relaxed);
        if let Some(parent) = &self.parent {
            parent.tick();
        }
    }

    /// A beacon of its own for one piece of this beacon's work (a job of the worker
    /// pool), whose ticks tick this one too: one stuck job is seen while the others
    /// keep the pool's beacon fresh.
    pub fn child(&self) -> Beacon {
        Beacon {
            parent: Some(Arc::new(self.clone())),
            ..Beacon::default()
        }
    }

    /// Time since the last tick (or since the beacon was made).
    pub fn idle(&self) -> Duration {
        let now = self.base.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.at.load(Ordering::Relaxed)))
    }

    /// Runs `work` with this beacon as the one [`tick`] reaches.
    pub fn scope<F: Future>(&self, work: F) -> impl Future<Output = F::Output> + use<F> {
        self.tick();
        BEACON.scope(self.clone(), work)
    }
}

/// Ticks the beacon of the current task, if it runs inside a [`Beacon::scope`].
pub fn tick() {
    let _ = BEACON.try_with(Beacon::tick);
}

/// How often a bounded wait counts as progress.
const WAIT_TICK: Duration = Duration::from_secs(10);

/// Awaits `wait`, ticking every few seconds: for waits whose end is known to come (the
/// shared budget's pacing and cooldowns), which are the daemon working as designed.
pub async fn waiting<F: Future>(wait: F) -> F::Output {
    tokio::pin!(wait);
    let mut beat = tokio::time::interval_at(Instant::now() + WAIT_TICK, WAIT_TICK);
    loop {
        tokio::select! {
            out = &mut wait => {
                tick();
                return out;
            }
            _ = beat.tick() => tick(),
        }
    }
}
