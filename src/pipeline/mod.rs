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
//!
//! Over 500 lines: the dispatcher's two loops (recordings, listings) and the hand-off
//! loop share the pipeline's state and its stop; each step is a named function.

pub mod check;
pub mod handoff;
pub mod lifecycle;
pub mod poller;
pub mod settings;
pub mod slots;
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
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
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
    /// An org that could not start (its credentials, its org id).
    #[error("could not start: {0}")]
    Start(String),
    /// What went wrong in one org of several.
    #[error("org {org}: {source}")]
    Org {
        org: String,
        #[source]
        source: Box<RunError>,
    },
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

impl Shutdown {
    /// A shutdown that follows this one but can also fire alone: one org's pipeline
    /// ending in error aborts its own uploads, never another org's.
    pub fn child(&self) -> Shutdown {
        Shutdown {
            drain: self.drain.child_token(),
            abort: self.abort.child_token(),
        }
    }
}

pub struct Pipeline {
    pub health: Arc<crate::health::Health>,
    /// This org's discovery beacon (the workers' one is the pool's, in `health`).
    pub discovery: crate::progress::Beacon,
    pub poller: Poller,
    pub worker: Arc<Worker>,
    pub checker: Arc<Checker>,
    /// Download URLs listings just handed out, waiting for a worker.
    pub urls: Arc<urls::UrlCache>,
    pub ledger: Arc<dyn Ledger>,
    /// This org's access to the process's worker and listing slots.
    pub slots: slots::OrgSlots,
    pub poll_interval: Duration,
    pub work: Arc<Notify>,
    /// The org's daily manifests, written once their days are final.
    pub manifests: Arc<crate::manifest::writer::Manifests>,
    /// The retention hand-off to Genesys, when configured.
    pub handoffs: Option<Arc<handoff::Handoffs>>,
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
        if let Some(error) = fatal_error.into_inner().unwrap() {
            return Err(error);
        }
        // A run that finished its work (not one a shutdown cut short) writes the
        // manifests of the days it completed; the daemon writes them after its passes.
        if !shutdown.drain.is_cancelled() {
            match mode {
                Mode::Backfill { from, to } => {
                    self.manifests_written(self.manifests.write_range(from, to, Utc::now()).await)
                }
                Mode::Once => self.manifests_written(self.manifests.write_due(Utc::now()).await),
                Mode::Daemon => {}
            }
            if mode != Mode::Daemon {
                // A stop asked for meanwhile ends the round: the rest stay due.
                tokio::select! {
                    _ = shutdown.drain.cancelled() => {}
                    _ = self.hand_off() => {}
                }
            }
        }
        Ok(())
    }

    /// The due retention hand-offs, if configured. A failure (the store, the platform,
    /// the ledger) leaves the rest due for the next round.
    async fn hand_off(&self) {
        let Some(handoffs) = &self.handoffs else {
            return;
        };
        if let Err(error) = handoffs.run_due().await {
            tracing::warn!(message = "Retention hand-offs stopped; the rest are tried in the next round.", %error);
        }
    }

    /// The daemon's hand-off rounds: one every poll interval, beside the passes (a long
    /// round, paced by the budget, never holds a pass back).
    async fn hand_off_rounds(&self, stop: &CancellationToken) {
        if self.handoffs.is_none() {
            return;
        }
        loop {
            let started = tokio::time::Instant::now();
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.hand_off() => {}
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(started + self.poll_interval) => {}
            }
        }
    }

    /// Logs a manifest walk's failure: the archive is intact, the manifests are written
    /// at the next walk.
    fn manifests_written(&self, result: Result<u32, crate::manifest::writer::ManifestError>) {
        if let Err(error) = result {
            tracing::error!(message = "Writing the daily manifests failed; tried again after the next pass.", %error);
        }
    }

    async fn discover(&self, mode: Mode, stop: &CancellationToken) -> Result<(), RunError> {
        match mode {
            Mode::Once => {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    result = self.discovery.scope(self.poller.poll_once(true)) => { result?; }
                }
            }
            Mode::Backfill { from, to } => {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    result = self.discovery.scope(self.poller.pass(from, to)) => { result?; }
                }
            }
            Mode::Daemon => {
                // Either failing (the ledger) stops the other: the run is over.
                let rereads = async {
                    let result = self
                        .discovery
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
                let (passes, rereads, ()) = tokio::join!(passes, rereads, self.hand_off_rounds(stop));
                passes?;
                rereads?;
            }
        }
        Ok(())
    }

    /// The daemon's discovery passes, one every poll interval until `stop`, and a sweep
    /// after the pass every `sweep_interval` (the first right after the first pass: a
    /// process that starts does not know when the last one swept).
    async fn passes(&self, stop: &CancellationToken) -> Result<(), RunError> {
        let mut next_sweep = tokio::time::Instant::now();
        loop {
            // Passes start every poll_interval (not poll_interval after the last one
            // ended): a pass slowed by the budget does not push the next one back.
            let started = tokio::time::Instant::now();
            // With several replicas on one ledger, one of them reads the org's windows
            // (each would pay for the same query); the others look again next interval
            // and take over when the holder's lease runs out.
            let turn = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                turn = self.poller.ledger.hold_discovery() => turn?,
            };
            // The scope ticks as the pass starts; its answers tick while it runs.
            let result = match turn {
                true => tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    result = self.discovery.scope(self.poller.poll_once(false)) => result,
                },
                false => Ok(Default::default()),
            };
            let result = match result {
                Ok(_) if turn && tokio::time::Instant::now() >= next_sweep => {
                    next_sweep = tokio::time::Instant::now() + self.poller.settings.sweep_interval;
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(()),
                        result = self.discovery.scope(self.poller.sweep()) => result.map(|_| Default::default()),
                    }
                }
                other => other,
            };
            if turn {
                self.poller.client.metrics().discovery_pass(result.is_ok());
            }
            if turn && result.is_ok() {
                self.manifests_written(self.manifests.write_due(Utc::now()).await);
            }
            self.discovery.tick();
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
        let tracker = TaskTracker::new();
        let failure: Failure = Arc::default();
        // Recordings and listings are claimed by two loops, so that waiting in line for
        // a worker slot (shared with the other orgs) never holds listings back. Each has
        // its own wake-up; the pipeline's one `work` signal is handed to both.
        let (recordings_wake, listings_wake) = (Notify::new(), Notify::new());
        let fan_out = async {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = self.work.notified() => {
                        recordings_wake.notify_one();
                        listings_wake.notify_one();
                    }
                }
            }
        };
        let jobs = Jobs {
            tracker: &tracker,
            failure: &failure,
            stop,
            abort,
            claiming: tokio::sync::Mutex::new(()),
        };
        let (_, listed, result) = tokio::join!(
            fan_out,
            self.listings_loop(&jobs, &listings_wake),
            self.recordings_loop(mode, discovery_done, &jobs, &recordings_wake),
        );
        let result = result.and(listed);
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

    /// Claims recordings while there are due ones, a worker slot first (in line with
    /// the other orgs when the pool is busy). In `Once` and `Backfill` modes it also
    /// decides when the run is over.
    async fn recordings_loop(
        &self,
        mode: Mode,
        discovery_done: &AtomicBool,
        jobs: &Jobs<'_>,
        wake: &Notify,
    ) -> Result<(), RunError> {
        let stop = jobs.stop;
        loop {
            // Idle is live; while jobs run, only their own progress counts (a job that
            // hangs must not be hidden by this loop going round).
            if jobs.tracker.is_empty() {
                self.health.workers.tick();
            }
            if let Some(error) = jobs.failure.lock().unwrap().take() {
                return Err(error.into());
            }
            if stop.is_cancelled() {
                return Ok(());
            }
            // One read of the queue's head per round: whether to claim now, else how long
            // to wait.
            let next = self.ledger.next_due().await?;
            let due_now = !self.urls.is_empty() || next.is_some_and(|at| at <= Utc::now());
            if due_now {
                // In line with the other orgs when the pool is busy.
                let slot = tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    slot = self.slots.worker() => slot,
                };
                match self.next_recording().await? {
                    Some(job) => {
                        self.spawn(jobs, slot, job);
                        continue;
                    }
                    None => drop(slot),
                }
            }
            let finishing = mode != Mode::Daemon && discovery_done.load(Ordering::SeqCst);
            if finishing && self.nothing_left(jobs).await? {
                stop.cancel();
                return Ok(());
            }
            if !idle(next, stop, wake).await {
                return Ok(());
            }
        }
    }

    /// Whether a finishing run is done: no job in flight, no recording unfinished and no
    /// listing due now (conversations that come due later are left for the next run).
    /// Not decided while the listings loop is between a claim and its job.
    async fn nothing_left(&self, jobs: &Jobs<'_>) -> Result<bool, RunError> {
        let _claims = jobs.claiming.lock().await;
        if !jobs.tracker.is_empty() {
            return Ok(false);
        }
        let listing_due = self
            .ledger
            .next_conversation_due()
            .await?
            .is_some_and(|at| at <= Utc::now());
        Ok(!listing_due && self.ledger.unfinished().await? == 0)
    }

    /// Claims due listings while a listing slot is free and few listed URLs wait for a
    /// worker ([`slots::OrgSlots::listing_cap`]).
    async fn listings_loop(&self, jobs: &Jobs<'_>, wake: &Notify) -> Result<(), RunError> {
        let stop = jobs.stop;
        let result = async {
            loop {
                if stop.is_cancelled() {
                    return Ok(());
                }
                if self.urls.len() < self.slots.listing_cap()
                    && let Some(slot) = self.slots.try_listing()
                {
                    // A claimed conversation is neither due nor a job until it is spawned:
                    // the recordings loop must not see that moment as "nothing left".
                    let _claims = jobs.claiming.lock().await;
                    match self.ledger.claim_conversation(Utc::now()).await? {
                        Some(row) => {
                            self.spawn(jobs, slot, Job::Listing(row));
                            continue;
                        }
                        None => drop(slot),
                    }
                }
                if !idle(self.ledger.next_conversation_due().await?, stop, wake).await {
                    return Ok(());
                }
            }
        }
        .await;
        // A ledger failure here ends the run as one in the recordings loop does.
        if result.is_err() {
            stop.cancel();
        }
        result
    }

    /// Runs one job in its slot; the slot is given back before the loops are woken.
    fn spawn(&self, jobs: &Jobs<'_>, slot: slots::Slot, job: Job) {
        let (worker, checker) = (self.worker.clone(), self.checker.clone());
        let (stop, abort) = (jobs.stop.clone(), jobs.abort.clone());
        let (work, failure) = (self.work.clone(), jobs.failure.clone());
        // A beacon per job: one job stuck alone is seen by liveness even while the
        // others keep the pool's beacon fresh.
        let what = match &job {
            Job::Recording(claimed, _) => format!("recording {}", claimed.recording_id),
            Job::Listing(row) => format!("listing of conversation {}", row.conversation_id),
        };
        let watched = self.health.job(what);
        let beacon = watched.beacon.clone();
        jobs.tracker.spawn(
            beacon.scope(
                async move {
                    let _watched = watched;
                    let result = match job {
                        Job::Recording(claimed, listed) => {
                            worker.process_listed(*claimed, listed, &abort).await.map(|_| ())
                        }
                        Job::Listing(row) => checker.check_or_hand_back(row, &abort).await,
                    };
                    drop(slot);
                    if let Err(error) = result {
                        tracing::error!(message = "Ledger write failed; stopping.", error = %error);
                        *failure.lock().unwrap() = Some(error);
                        stop.cancel();
                        abort.cancel();
                    }
                    work.notify_one();
                }
                // The org's span (and any other around the pipeline) goes with the job.
                .in_current_span(),
            ),
        );
    }
}

/// A dispatch loop with nothing to claim now waits until `next` (at most
/// [`IDLE_CHECK`]) or until it is woken; false when the run stops meanwhile.
async fn idle(next: Option<chrono::DateTime<Utc>>, stop: &CancellationToken, wake: &Notify) -> bool {
    let wait = next.map_or(IDLE_CHECK, |at| {
        (at - Utc::now()).to_std().unwrap_or(Duration::ZERO).min(IDLE_CHECK)
    });
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = wake.notified() => true,
        _ = tokio::time::sleep(wait.max(Duration::from_millis(10))) => true,
    }
}

/// A ledger error from a job, for the loops to stop on.
type Failure = Arc<std::sync::Mutex<Option<LedgerError>>>;

/// What the dispatch loops share.
struct Jobs<'a> {
    tracker: &'a TaskTracker,
    failure: &'a Failure,
    stop: &'a CancellationToken,
    abort: &'a CancellationToken,
    /// Held by the listings loop from a claim to its job, and by the recordings loop
    /// while it decides that a run is over.
    claiming: tokio::sync::Mutex<()>,
}
