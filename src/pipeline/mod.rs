//! The archive pipeline: a poller that keeps the conversations' lifecycle in the
//! ledger, and a dispatcher that hands due work to a bounded pool of workers.
//!
//! The ledger is the queue, of two kinds of work: listing an ended conversation's
//! recordings ([`check`], one call) and archiving one recording ([`worker`]). The
//! dispatcher takes a worker slot (a semaphore permit) *before* it claims anything, and
//! the permit travels with the task, so at most `workers.count` jobs are in memory at
//! once, however large the backlog; everything else waits on disk. It claims, in order:
//! a recording whose download URL a listing just handed out (URLs can live as little as
//! 2 minutes, so they are used first and a backlog piles up *before* the listing, never
//! after it), then any due recording, then a due conversation listing. Work that is not
//! due yet (transcoding, retrying, settling) comes back when its time comes, without
//! holding a worker meanwhile.

pub mod check;
pub mod lifecycle;
pub mod poller;
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
    pub ledger: Arc<dyn Ledger>,
    pub slots: usize,
    pub poll_interval: Duration,
    pub work: Arc<Notify>,
}

/// One unit of work for a worker slot.
enum Job {
    Recording(Claimed),
    Listing(ConversationRow),
}

impl Pipeline {
    /// What a free slot does next: a recording with a freshly listed URL, else a due
    /// recording, else a due conversation listing.
    async fn next_job(&self) -> Result<Option<Job>, LedgerError> {
        while let Some(id) = self.worker.urls.next_fresh() {
            match self.ledger.claim_recording(id.clone()).await? {
                Some(claimed) => return Ok(Some(Job::Recording(claimed))),
                // Taken or finished already (a re-listing of a known recording).
                None => self.worker.urls.forget(&id),
            }
        }
        let now = Utc::now();
        if let Some(claimed) = self.ledger.claim_due(now).await? {
            return Ok(Some(Job::Recording(claimed)));
        }
        Ok(self.ledger.claim_conversation(now).await?.map(Job::Listing))
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
                    result = self.poller.poll_once(true) => { result?; }
                }
            }
            Mode::Backfill { from, to } => {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    result = self.poller.pass(from, to) => { result?; }
                }
            }
            Mode::Daemon => {
                // Either failing (the ledger) stops the other: the run is over.
                let rereads = async {
                    let result = self.poller.reread_loop(stop).await.map_err(RunError::from);
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
            self.health.poller_progress();
            let result = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                result = self.poller.poll_once(false) => result,
            };
            self.health.poller_progress();
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
        let tracker = TaskTracker::new();
        let failure: Arc<std::sync::Mutex<Option<LedgerError>>> = Arc::default();
        let result = loop {
            self.health.dispatcher_progress();
            if let Some(error) = failure.lock().unwrap().take() {
                break Err(error.into());
            }
            // A slot first, then a recording.
            let permit = tokio::select! {
                _ = stop.cancelled() => break Ok(()),
                permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            };
            let job = match self.next_job().await {
                Ok(job) => job,
                Err(error) => break Err(error.into()),
            };
            if let Some(job) = job {
                let (worker, checker, stop, abort) =
                    (self.worker.clone(), self.checker.clone(), stop.clone(), abort.clone());
                let (work, failure) = (self.work.clone(), failure.clone());
                tracker.spawn(async move {
                    let _slot = permit;
                    let result = match job {
                        Job::Recording(claimed) => worker.process(claimed, &abort).await.map(|_| ()),
                        Job::Listing(row) => checker.check(row).await,
                    };
                    if let Err(error) = result {
                        tracing::error!(message = "Ledger write failed; stopping.", error = %error);
                        *failure.lock().unwrap() = Some(error);
                        stop.cancel();
                        abort.cancel();
                    }
                    work.notify_one();
                });
                continue;
            }
            drop(permit);
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
