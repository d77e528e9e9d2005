//! Liveness and readiness, as `/healthz`, `/readyz` and the systemd watchdog see them.
//!
//! Live: the poller's work and the workers' work moved recently, as their beacons say
//! ([`crate::progress`]): every API answer, budget grant (or bounded wait for one),
//! downloaded chunk and uploaded part counts, not only the top of each loop, so a long
//! pass or upload is not mistaken for a stall. A wedged task ticks nothing, and a
//! restart is the cure. A platform outage does not make the daemon unlive: each
//! answer, even a 503, is progress, because restarting would not bring Genesys back.
//! Ready: a token was obtained, the ledger answers (a PostgreSQL server is asked every
//! 10 s), the sink answered its last check, and a budget shared in Redis answers (a
//! replica without it paces on its share and says so by being unready).

use crate::progress::Beacon;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug)]
pub struct Health {
    pub token: AtomicBool,
    pub ledger: AtomicBool,
    pub sink: AtomicBool,
    /// True unless a budget shared with other replicas cannot be reached.
    pub shared_budget: AtomicBool,
    /// Per running org, ticked by its discovery's work (passes, re-reads): one org's
    /// wedged poller is seen even while the others tick. An org that cannot start has
    /// none (it is reported as failing, and a restart would not give it credentials).
    pollers: Mutex<BTreeMap<String, Beacon>>,
    /// Ticked by the dispatcher and the recordings and listings it runs.
    pub workers: Beacon,
    /// One beacon per job running (a recording, a listing), by job number: the pool's
    /// beacon stays fresh while any job moves, so a job that is stuck alone (a call on a
    /// half-open connection) is seen only here.
    jobs: Mutex<BTreeMap<u64, (String, Beacon)>>,
    next_job: std::sync::atomic::AtomicU64,
    /// Longest time without progress that still counts as live.
    stall: Duration,
    /// Until the orgs are started: live (the start has its own bounded retries, and a
    /// restart would only start again), not ready.
    starting: AtomicBool,
}

impl Health {
    pub fn new(poll_interval: Duration) -> Self {
        Self {
            token: AtomicBool::new(false),
            ledger: AtomicBool::new(false),
            sink: AtomicBool::new(false),
            shared_budget: AtomicBool::new(true),
            pollers: Mutex::default(),
            workers: Beacon::default(),
            jobs: Mutex::default(),
            next_job: Default::default(),
            // A pass may legitimately take a while on a large window; three intervals, at least 2 minutes.
            stall: (poll_interval * 3).max(Duration::from_secs(120)),
            starting: AtomicBool::new(true),
        }
    }

    /// The orgs are started: the beacons count from now, readiness from the probes.
    pub fn started(&self) {
        self.workers.tick();
        for beacon in self.pollers.lock().unwrap().values() {
            beacon.tick();
        }
        self.starting.store(false, Ordering::Relaxed);
    }

    /// A fresh discovery beacon for `org`, watched until [`Health::forget`].
    pub fn poller(&self, org: &str) -> Beacon {
        let beacon = Beacon::default();
        self.pollers.lock().unwrap().insert(org.to_owned(), beacon.clone());
        beacon
    }

    /// The org's run ended: its poller is no longer watched.
    pub fn forget(&self, org: &str) {
        self.pollers.lock().unwrap().remove(org);
    }

    /// A beacon for one job (`what`: e.g. `recording R of org O`), watched until the
    /// returned guard is dropped.
    pub fn job(self: &std::sync::Arc<Self>, what: String) -> JobBeacon {
        let beacon = self.workers.child();
        let id = self.next_job.fetch_add(1, Ordering::Relaxed);
        self.jobs.lock().unwrap().insert(id, (what, beacon.clone()));
        JobBeacon {
            health: self.clone(),
            id,
            beacon,
        }
    }

    pub fn live(&self) -> Result<(), String> {
        if self.starting.load(Ordering::Relaxed) {
            return Ok(());
        }
        for (what, beacon) in self.jobs.lock().unwrap().values() {
            let idle = beacon.idle();
            if idle > self.stall {
                return Err(format!("{what} made no progress for {} s", idle.as_secs()));
            }
        }
        let pollers = self.pollers.lock().unwrap().clone();
        let single = pollers.len() == 1;
        let named = pollers.iter().map(|(org, beacon)| {
            let what = if single {
                "poller".to_owned()
            } else {
                format!("poller of org {org}")
            };
            (what, beacon)
        });
        for (what, beacon) in named.chain([("workers".to_owned(), &self.workers)]) {
            let idle = beacon.idle();
            if idle > self.stall {
                return Err(format!("{what} made no progress for {} s", idle.as_secs()));
            }
        }
        Ok(())
    }

    pub fn ready(&self) -> Result<(), String> {
        if self.starting.load(Ordering::Relaxed) {
            return Err("starting: the orgs are being started (login, limits, recovery)".into());
        }
        let missing: Vec<&str> = [
            ("no token obtained yet", &self.token),
            ("ledger not open or not answering", &self.ledger),
            ("sink not answering", &self.sink),
            ("shared budget (Redis) not answering", &self.shared_budget),
        ]
        .iter()
        .filter(|(_, flag)| !flag.load(Ordering::Relaxed))
        .map(|(what, _)| *what)
        .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join(", "))
        }
    }
}

/// A running job's beacon; the job is no longer watched once this is dropped.
pub struct JobBeacon {
    health: std::sync::Arc<Health>,
    id: u64,
    pub beacon: Beacon,
}

impl Drop for JobBeacon {
    fn drop(&mut self) {
        self.health.jobs.lock().unwrap().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_every_part() {
        let h = Health::new(Duration::from_secs(60));
        h.started();
        assert!(h.ready().unwrap_err().contains("sink"));
        h.token.store(true, Ordering::Relaxed);
        h.ledger.store(true, Ordering::Relaxed);
        assert_eq!(h.ready(), Err("sink not answering".into()));
        h.sink.store(true, Ordering::Relaxed);
        assert!(h.ready().is_ok());
        assert!(h.live().is_ok());
        h.ledger.store(false, Ordering::Relaxed);
        h.shared_budget.store(false, Ordering::Relaxed);
        assert_eq!(
            h.ready(),
            Err("ledger not open or not answering, shared budget (Redis) not answering".into())
        );
    }

    use crate::genesys::Endpoint;
    use crate::ratelimit::settings::LimitSettings;
    use crate::ratelimit::{Budget, Feedback, LocalBudget, Outcome, RateHeaders};
    use crate::retry::settings::RetrySettings;
    use std::sync::Arc;

    fn budget(per_minute: u32) -> LocalBudget {
        let limits = LimitSettings {
            token_budget: per_minute,
            auto_budget: false,
            window: Duration::from_secs(60),
            target_utilization: 1.0,
            endpoint_budgets: Endpoint::ALL.map(|e| (e, None)),
            shared: None,
        };
        LocalBudget::new(
            &limits,
            &RetrySettings::default(),
            crate::metrics::OrgMetrics::unregistered("test"),
        )
    }

    /// Checks liveness every 10 s (paused time) until `work` ends; returns the first
    /// failure, if any.
    async fn watch<F: std::future::Future<Output = ()>>(health: &Health, work: F) -> Option<String> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                () = &mut work => return None,
                () = tokio::time::sleep(Duration::from_secs(10)) => {
                    if let Err(reason) = health.live() {
                        return Some(reason);
                    }
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_daemon_is_live_through_a_long_cooldown_and_a_paced_pass() {
        let health = Arc::new(Health::new(Duration::from_secs(60)));
        health.started();
        let budget = Arc::new(budget(2));
        // A 429 on a spent budget: a shared cooldown of ten minutes, far past the stall limit.
        budget.observe(
            Endpoint::Analytics,
            &Feedback {
                outcome: Outcome::Refused {
                    retry_after: Some(Duration::from_secs(600)),
                },
                headers: Some(RateHeaders {
                    count: 2,
                    allowed: 2,
                    reset: Duration::from_secs(600),
                }),
            },
        );
        let started = tokio::time::Instant::now();
        // Discovery: twelve calls at two a minute after the cooldown; the workers: an
        // upload whose parts land every 90 s for a quarter of an hour, with no loop top.
        let pass = health.poller("default").scope({
            let budget = budget.clone();
            async move {
                for _ in 0..12 {
                    budget.acquire(Endpoint::Analytics).await;
                }
            }
        });
        let upload = health.workers.scope(async {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(90)).await;
                crate::progress::tick();
            }
        });
        let work = async {
            tokio::join!(pass, upload);
        };
        assert_eq!(watch(&health, work).await, None, "live all along");
        assert!(
            started.elapsed() >= Duration::from_secs(15 * 60),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_daemon_is_not_live() {
        let health = Health::new(Duration::from_secs(60));
        health.started();
        // The poller goes on; one job never moves again (a hung connection with no
        // timeout, a lock never released).
        let poller = health.poller("default");
        let passes = async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                poller.tick();
            }
        };
        let stuck = health.workers.scope(std::future::pending::<()>());
        let work = async {
            tokio::join!(passes, stuck);
        };
        let reason = watch(&health, work).await.expect("declared not live");
        assert!(reason.contains("workers made no progress"), "{reason}");
    }

    #[tokio::test(start_paused = true)]
    async fn one_orgs_wedged_poller_is_seen_while_the_others_tick_and_a_stopped_org_is_not_watched() {
        let health = Health::new(Duration::from_secs(60));
        health.started();
        let (acme, globex) = (health.poller("acme"), health.poller("globex"));
        let gone = health.poller("initech");
        health.forget("initech");
        let workers = health.workers.clone();
        let ticking = async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                acme.tick();
                workers.tick();
            }
        };
        // globex's discovery never moves again; initech stopped and ticks nothing either.
        let wedged = globex.scope(std::future::pending::<()>());
        let work = async {
            tokio::join!(ticking, wedged);
        };
        let reason = watch(&health, work).await.expect("declared not live");
        assert!(reason.starts_with("poller of org globex made no progress"), "{reason}");
        drop(gone);
    }

    #[tokio::test(start_paused = true)]
    async fn one_stuck_job_is_seen_while_the_other_jobs_keep_the_pool_fresh() {
        let health = std::sync::Arc::new(Health::new(Duration::from_secs(60)));
        health.started();
        let poller = health.poller("default");
        // One job moves every 30 s (and so the pool's beacon); another never moves again
        // (an S3 call on a half-open connection); a third ended and is not watched.
        let (moving, stuck) = (health.job("recording r1".into()), health.job("recording r2".into()));
        drop(health.job("recording r3".into()));
        let ticking = moving.beacon.scope(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                crate::progress::tick();
                poller.tick();
            }
        });
        let wedged = stuck.beacon.scope(std::future::pending::<()>());
        let work = async {
            tokio::join!(ticking, wedged);
        };
        let reason = watch(&health, work).await.expect("declared not live");
        assert!(reason.starts_with("recording r2 made no progress"), "{reason}");
        assert!(
            health.workers.idle() <= Duration::from_secs(30),
            "the pool's beacon stayed fresh"
        );
    }

    #[test]
    fn starting_is_live_and_not_ready() {
        let h = Health::new(Duration::from_secs(60));
        assert!(h.live().is_ok());
        assert!(h.ready().unwrap_err().starts_with("starting"));
        h.started();
        assert!(h.ready().unwrap_err().contains("sink"), "then the probes decide");
    }
}
