//! The archive pipeline: a poller that keeps the conversations' lifecycle in the
//! ledger, and a dispatcher that hands due work to a bounded pool of workers.
//!
//! The ledger is the queue, of two kinds of work: listing an ended conversation's
//! recordings ([`check`], one call) and archiving one recording ([`worker`]). The
//! dispatcher takes a worker slot (a semaphore permit) *before* it claims anything, and
//! the permit travels with the task, so at most `workers.count` jobs are in memory at
//! once, however large the backlog; everything else waits on disk. A worker takes a
//! recording whose download URL a listing just handed out (URLs can live as little as 2
//! minutes, so they are used first), else any due recording. Listings have slots of
//! their own (a listing holds no media, only a wait on the platform), and one is claimed
//! only while few listed URLs wait for a worker: a backlog piles up *before* the
//! listing, never after it. Work that is not
//! due yet (transcoding, retrying, settling) comes back when its time comes, without
//! holding a worker meanwhile.

pub mod check;
pub mod lifecycle;
pub mod poller;
pub mod settings;
pub mod stats;
pub mod urls;
pub mod worker;

use crate::ledger::{Claimed, ConversationRow, Ledger, LedgerError};
use check::Checker;
use chrono::Utc;
use poller::{PollError, Poller};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use worker::Worker;

/// How long a run goes on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Poll every `poll_interval` until asked to stop.
    Daemon,
    /// One discovery pass (advancing the watermark), then archive until nothing is left.
    Once,
    /// Discover `[from, to)` without touching the watermark, then archive until nothing is left.
    Backfill {
        from: chrono::DateTime<Utc>,
        to: chrono::DateTime<Utc>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Poll(#[from] PollError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Listings in flight per worker slot (see `dispatch`).
const LISTINGS_PER_WORKER: usize = 4;

/// Longest the dispatcher sleeps without looking at the ledger again.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// How a run is asked to stop.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// Stop discovering and claiming; let in-flight recordings finish.
    pub drain: CancellationToken,
    /// Interrupt in-flight recordings now (multipart uploads are aborted; they stay due).
    pub abort: CancellationToken,
}

pub struct Pipeline {
    pub health: Arc<crate::health::Health>,
    pub poller: Poller,
    pub worker: Arc<Worker>,
    pub checker: Arc<Checker>,
    /// Download URLs listings just handed out, waiting for a worker.
    pub urls: Arc<urls::UrlCache>,
    pub ledger: Arc<dyn Ledger>,
    pub slots: usize,
    pub poll_interval: Duration,
    pub work: Arc<Notify>,
}

/// One unit of work for a worker slot.
enum Job {
    /// With the URL a listing just handed out for it, if any.
    Recording(Box<Claimed>, Option<worker::Listed>),
    Listing(ConversationRow),
}

impl Pipeline {
    /// What a free worker does next: a recording with a freshly listed URL, else a due
    /// recording.
    async fn next_recording(&self) -> Result<Option<Job>, LedgerError> {
        while let Some(listed) = self.urls.take_oldest() {
            // None: taken or finished already (a re-listing of a known recording).
            if let Some(claimed) = self.ledger.claim_recording(listed.0.metadata.id.clone()).await? {
                return Ok(Some(Job::Recording(Box::new(claimed), Some(listed))));
            }
        }
        Ok(self
            .ledger
            .claim_due(Utc::now())
            .await?
            .map(|c| Job::Recording(Box::new(c), None)))
    }

    /// Runs until `mode` is done or `shutdown.drain` fires, then waits for in-flight
    /// recordings, which `shutdown.abort` interrupts (their uploads aborted; they stay due).
    pub async fn run(&self, mode: Mode, shutdown: Shutdown) -> Result<(), RunError> {
        let discovery_done = AtomicBool::new(false);
        let fatal = CancellationToken::new();
        let fatal_error: std::sync::Mutex<Option<RunError>> = std::sync::Mutex::new(None);
        let stop = CancellationToken::new();

        let discover = async {
            let result = self.discover(mode, &stop).await;
            discovery_done.store(true, Ordering::SeqCst);
            self.work.notify_one();
            if let Err(error) = result {
                *fatal_error.lock().unwrap() = Some(error);
                fatal.cancel();
            }
        };
        let dispatch = async {
            if let Err(error) = self.dispatch(mode, &discovery_done, &stop, &shutdown.abort).await {
                fatal_error.lock().unwrap().get_or_insert(error);
                fatal.cancel();
            }
        };
        let watch = async {
            tokio::select! {
                _ = shutdown.drain.cancelled() => {}
                _ = fatal.cancelled() => shutdown.abort.cancel(),
                _ = stop.cancelled() => {}
            }
            stop.cancel();
        };
        tokio::join!(discover, dispatch, watch);
        match fatal_error.into_inner().unwrap() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    async fn discover(&self, mode: Mode, stop: &CancellationToken) -> Result<(), RunError> {
        match mode {
            Mode::Once => {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    result = self.health.poller.scope(self.poller.poll_once(true)) => { result?; }
                }
            }
            Mode::Backfill { from, to } => {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    result = self.health.poller.scope(self.poller.pass(from, to)) => { result?; }
                }
            }
            Mode::Daemon => {
                // Either failing (the ledger) stops the other: the run is over.
                let rereads = async {
                    let result = self
                        .health
                        .poller
                        .scope(self.poller.reread_loop(stop))
                        .await
                        .map_err(RunError::from);
                    if result.is_err() {
                        stop.cancel();
                    }
                    result
                };
                let passes = async {
                    let result = self.passes(stop).await;
                    if result.is_err() {
                        stop.cancel();
                    }
                    result
                };
                let (passes, rereads) = tokio::join!(passes, rereads);
                passes?;
                rereads?;
            }
        }
        Ok(())
    }

    /// The daemon's discovery passes, one every poll interval until `stop`.
    async fn passes(&self, stop: &CancellationToken) -> Result<(), RunError> {
        loop {
            // Passes start every poll_interval (not poll_interval after the last one
            // ended): a pass slowed by the budget does not push the next one back.
            let started = tokio::time::Instant::now();
            // The scope ticks as the pass starts; its answers tick while it runs.
            let result = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                result = self.health.poller.scope(self.poller.poll_once(false)) => result,
            };
            self.health.poller.tick();
            if let Err(error) = result {
                match error {
                    PollError::Ledger(e) => return Err(e.into()),
                    // The platform stays down after retries: keep the watermark and try at the next interval.
                    error => {
                        tracing::error!(message = "Discovery pass failed; the window is read again next time.", %error)
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep_until(started + self.poll_interval) => {}
            }
        }
    }

    async fn dispatch(
        &self,
        mode: Mode,
        discovery_done: &AtomicBool,
        stop: &CancellationToken,
        abort: &CancellationToken,
    ) -> Result<(), RunError> {
        let slots = Arc::new(Semaphore::new(self.slots));
        // A listing holds no media, only a request the platform may hold while it
        // finishes transcoding (`list_max_wait`), so listings have slots of their own,
        // more of them than workers, instead of keeping workers from downloads. The URL
        // gate below, not this number, keeps listings from running ahead of the workers.
        let listing_slots = Arc::new(Semaphore::new(self.slots * LISTINGS_PER_WORKER));
        let tracker = TaskTracker::new();
        let failure: Arc<std::sync::Mutex<Option<LedgerError>>> = Arc::default();
        let result = loop {
            // Idle is live; while jobs run, only their own progress counts (a job that
            // hangs must not be hidden by this loop going round).
            if tracker.is_empty() {
                self.health.workers.tick();
            }
            if let Some(error) = failure.lock().unwrap().take() {
                break Err(error.into());
            }
            if stop.is_cancelled() {
                break Ok(());
            }
            // A slot first, then a job: what is claimable now with the slots that are free.
            let mut jobs = Vec::new();
            if let Ok(permit) = slots.clone().try_acquire_owned() {
                match self.next_recording().await {
                    Ok(Some(job)) => jobs.push((permit, job)),
                    Ok(None) => drop(permit),
                    Err(error) => break Err(error.into()),
                }
            }
            // Only while few listed URLs wait for a worker (at ~10 archived a second, 32
            // of them wait about 3 s, against the 90 s a listed URL is used): a listing
            // far ahead of the workers would let its URLs age.
            if self.urls.len() < self.slots * LISTINGS_PER_WORKER
                && let Ok(permit) = listing_slots.clone().try_acquire_owned()
            {
                match self.ledger.claim_conversation(Utc::now()).await {
                    Ok(Some(row)) => jobs.push((permit, Job::Listing(row))),
                    Ok(None) => drop(permit),
                    Err(error) => break Err(error.into()),
                }
            }
            if !jobs.is_empty() {
                for (permit, job) in jobs {
                    let (worker, checker, stop, abort) =
                        (self.worker.clone(), self.checker.clone(), stop.clone(), abort.clone());
                    let (work, failure) = (self.work.clone(), failure.clone());
                    let beacon = self.health.workers.clone();
                    tracker.spawn(beacon.scope(async move {
                        let _slot = permit;
                        let result = match job {
                            Job::Recording(claimed, listed) => {
                                worker.process_listed(*claimed, listed, &abort).await.map(|_| ())
                            }
                            Job::Listing(row) => checker.check(row).await,
                        };
                        if let Err(error) = result {
                            tracing::error!(message = "Ledger write failed; stopping.", error = %error);
                            *failure.lock().unwrap() = Some(error);
                            stop.cancel();
                            abort.cancel();
                        }
                        work.notify_one();
                    }));
                }
                continue;
            }
            let finishing = mode != Mode::Daemon && discovery_done.load(Ordering::SeqCst);
            if finishing && tracker.is_empty() {
                // Done when no recording is unfinished and no listing is due now;
                // conversations that come due later are left for the next run.
                let listing_due = match self.ledger.next_conversation_due().await {
                    Ok(at) => at.is_some_and(|at| at <= Utc::now()),
                    Err(error) => break Err(error.into()),
                };
                match self.ledger.unfinished().await {
                    Ok(0) if !listing_due => {
                        stop.cancel();
                        break Ok(());
                    }
                    Ok(_) => {}
                    Err(error) => break Err(error.into()),
                }
            }
            let next = match (self.ledger.next_due().await, self.ledger.next_conversation_due().await) {
                (Ok(a), Ok(b)) => a.into_iter().chain(b).min(),
                (Err(error), _) | (_, Err(error)) => break Err(error.into()),
            };
            let wait = next.map_or(IDLE_CHECK, |at| {
                (at - Utc::now()).to_std().unwrap_or(Duration::ZERO).min(IDLE_CHECK)
            });
            tokio::select! {
                _ = stop.cancelled() => break Ok(()),
                _ = self.work.notified() => {}
                _ = tokio::time::sleep(wait.max(Duration::from_millis(10))) => {}
            }
        };
        tracker.close();
        if !tracker.is_empty() {
            tracing::info!(message = "Waiting for in-flight recordings.", in_flight = tracker.len());
        }
        tracker.wait().await;
        if let Some(error) = failure.lock().unwrap().take() {
            return Err(error.into());
        }
        result
    }
}
