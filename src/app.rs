//! Wiring: settings in, running pipelines out.
//!
//! [`App::build`] takes the ledger (one file, one owner), then builds every org's parts
//! ([`org::OrgApp`]: client, budget, ledger view, sink) and recovers what a previous
//! process left: in-flight recordings become due again and multipart uploads still
//! journalled are aborted. [`App::run`] runs one pipeline per org, all taking worker
//! slots from one pool, until the mode is done or the shutdown token fires. An org that
//! cannot start (its credentials, its org id) is logged and tried again with backoff
//! while the others run; with a single-org configuration it stops the start as before.
//! `main`, `demo`, the load test and the tests share all of it.
//!
//! Over 500 lines: building the process (ledger and its lock, the operations listener,
//! every org) and running it (reloads, stops, shutdown) share the `App`'s fields; one
//! org's wiring and the planning of a reload are apart (`app/org.rs`, `app/reload.rs`).

pub mod org;
pub mod reload;
mod supervise;

use supervise::Supervisor;

use crate::config::Settings;
use crate::config::settings::{OrgSettings, SinkKind};
use crate::genesys::GenesysClient;
use crate::health::Health;
use crate::ledger::store::LedgerStore;
use crate::ledger::{OrgCondition, StatusReport};
use crate::metrics::{Metrics, OrgMetrics};
use crate::pipeline::slots::SharedSlots;
use crate::pipeline::stats::PipelineStats;
use crate::pipeline::{Mode, RunError, Shutdown};
use crate::ratelimit::Budget;
use crate::retry::backoff;
use crate::retry::settings::RetrySettings;
use crate::sink::Sink;
use crate::sink::counted::Counted;
use crate::sink::file::FileSink;
use crate::sink::s3::S3Sink;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use org::OrgApp;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// One org's run: it ends with the org's name, its generation and its result.
type OrgRun<'a> = BoxFuture<'a, (String, u64, Result<(), RunError>)>;

/// An org running (or starting) now.
struct Live {
    generation: u64,
    /// The settings it runs with (a failed run starts again with them).
    settings: OrgSettings,
    fingerprint: String,
    shutdown: Shutdown,
    /// Cancelled when the run has ended.
    done: CancellationToken,
}

/// Stops one org's run as a signal stops the daemon: its in-flight uploads may finish
/// within `grace`, then they are aborted (each is due again at the next start), so a
/// reload never waits on one stuck or endless upload.
fn stop_within_grace(org: &str, live: &Live, grace: std::time::Duration) {
    live.shutdown.drain.cancel();
    let (abort, done, org) = (live.shutdown.abort.clone(), live.done.clone(), org.to_owned());
    tokio::spawn(async move {
        tokio::select! {
            _ = abort.cancelled() => {}
            _ = done.cancelled() => {}
            _ = tokio::time::sleep(grace) => {
                tracing::warn!(message = "Org's in-flight uploads outlasted the grace period; aborting them.", org = %org);
                abort.cancel();
            }
        }
    });
}

/// The org runs of one [`App::run_reloading`].
#[derive(Default)]
struct Runs<'a> {
    futures: FuturesUnordered<OrgRun<'a>>,
    live: BTreeMap<String, Live>,
    generation: u64,
}

impl<'a> Runs<'a> {
    /// Adds a run of `org` under its own child of `shutdown` (so it can be stopped alone,
    /// and its failure aborts only its own uploads), in the org's span; `run` makes the
    /// run from that child.
    fn add(
        &mut self,
        org: &OrgSettings,
        shutdown: &Shutdown,
        run: impl FnOnce(Shutdown) -> BoxFuture<'a, Result<(), RunError>>,
    ) {
        self.generation += 1;
        let own = shutdown.child();
        let live = Live {
            generation: self.generation,
            settings: org.clone(),
            fingerprint: reload::fingerprint(org),
            shutdown: own.clone(),
            done: CancellationToken::new(),
        };
        let done = live.done.clone();
        self.live.insert(org.name.clone(), live);
        let (name, generation) = (org.name.clone(), self.generation);
        let run = run(own).instrument(tracing::info_span!("org", org = %name));
        self.futures.push(Box::pin(async move {
            let result = run.await;
            done.cancel();
            (name, generation, result)
        }));
    }

    /// A run ended: the org is no longer live, unless a newer run of it took its place.
    fn ended(&mut self, name: &str, generation: u64) {
        if self.live.get(name).is_some_and(|l| l.generation == generation) {
            self.live.remove(name);
        }
    }
}

pub struct App {
    pub settings: Settings,
    /// The orgs that started, in configuration order.
    pub orgs: Vec<OrgApp>,
    /// Orgs that could not start yet, with why; `run` tries them again.
    pending: Vec<(OrgSettings, String)>,
    /// The whole ledger (pruning and lease renewals span every org). A SQLite file is
    /// locked while the app lives: this process owns it.
    ledger: Arc<LedgerStore>,
    pub stats: Arc<PipelineStats>,
    pub health: Arc<Health>,
    /// The process's metrics registry; every org records into it under its name.
    pub metrics: Arc<Metrics>,
    /// What readiness asks, per running org: registered when an org's run starts and
    /// removed when it ends, so readiness follows the orgs added, restarted and removed.
    probes: Arc<std::sync::Mutex<BTreeMap<String, ReadinessProbe>>>,
    /// Reads the whole configuration again (SIGHUP, `orgs_reload_interval`); `None`:
    /// only the org set is read again (settings given in code, not from a file).
    pub reread: Option<Reread>,
}

/// Reads the whole configuration again, as at start (file and environment).
pub type Reread = Arc<dyn Fn() -> Result<Settings, crate::config::ConfigError> + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    #[error("sink: {0}")]
    Sink(#[from] crate::sink::SinkError),
    #[error(transparent)]
    Client(#[from] crate::genesys::client::BuildError),
    #[error("login: {0}")]
    Login(crate::genesys::ApiError),
    #[error("keys use {{orgId}}: {0}")]
    OrgId(String),
    #[error("shared budget: {0}")]
    SharedBudget(String),
    #[error("a budget of its own is given for one org, and the configuration names {0}")]
    OrgCount(usize),
}

/// Opens the sink an org's settings name; its failures are counted under the org.
pub async fn open_sink(org: &OrgSettings, metrics: OrgMetrics) -> Result<Arc<dyn Sink>, crate::sink::SinkError> {
    let sink: Arc<dyn Sink> = match &org.sink.kind {
        SinkKind::S3(s3) => Arc::new(S3Sink::new((**s3).clone()).await),
        SinkKind::File { directory } => Arc::new(FileSink::open(directory)?),
    };
    Ok(Arc::new(Counted::new(sink, metrics)))
}

/// When an org that could not start is tried again: full jitter under a ceiling of
/// 30 s that doubles up to 10 minutes (the retry module's backoff; attempts and elapsed
/// time are not limited, an org is never given up). Not every minute for ever: a
/// customer's revoked credentials would otherwise cost a failed login a minute, per
/// org, for as long as nobody looks.
const START_RETRY: RetrySettings = RetrySettings {
    base: Duration::from_secs(30),
    cap: Duration::from_secs(600),
    max_elapsed: Duration::MAX,
    max_attempts: u32::MAX,
};

/// The wait before the next start of an org that failed `failures` times (at least once).
fn start_wait(failures: u32, rng: &mut fastrand::Rng) -> Duration {
    backoff::full_jitter(&START_RETRY, failures.saturating_sub(1), rng)
}

impl App {
    pub async fn build(settings: Settings) -> Result<Self, BuildError> {
        Self::build_orgs(settings, None).await
    }

    /// With another budget for the one org (the load test's naive baseline).
    pub async fn build_with_budget(settings: Settings, budget: Arc<dyn Budget>) -> Result<Self, BuildError> {
        if settings.orgs.len() != 1 {
            return Err(BuildError::OrgCount(settings.orgs.len()));
        }
        Self::build_orgs(settings, Some(budget)).await
    }

    async fn build_orgs(settings: Settings, budget: Option<Arc<dyn Budget>>) -> Result<Self, BuildError> {
        let mut app = Self::open(settings).await?;
        app.start_orgs(budget).await?;
        Ok(app)
    }

    /// The ledger (first, before any token request: a second owner of a SQLite file
    /// goes away at once; replicas sharing PostgreSQL each connect), the metrics and the
    /// health, with no org started yet: what the operations listener needs, so it can
    /// answer while the orgs start ([`App::start_orgs`]).
    pub async fn open(settings: Settings) -> Result<Self, BuildError> {
        let ledger = Arc::new(LedgerStore::open_owned(&settings.ledger.backend).await?);
        let poll_interval = settings
            .orgs
            .iter()
            .map(|o| o.discovery.poll_interval)
            .min()
            .unwrap_or(Duration::from_secs(60));
        let health = Arc::new(Health::new(poll_interval));
        health.ledger.store(true, Ordering::Relaxed);
        Ok(Self {
            settings,
            orgs: Vec::new(),
            pending: Vec::new(),
            ledger,
            stats: Arc::default(),
            health,
            metrics: Metrics::new(),
            probes: Arc::default(),
            reread: None,
        })
    }

    /// Starts every org (login, limits, org id, recovery), all at once: one slow
    /// platform does not hold the others up. With several orgs one that cannot start
    /// is left pending (tried again while the others run); with one, its failure is
    /// the start's. Readiness says `starting` until this returns.
    pub async fn start_orgs(&mut self, budget: Option<Arc<dyn Budget>>) -> Result<(), BuildError> {
        let (ledger, metrics, settings) = (&self.ledger, &self.metrics, &self.settings);
        let built = futures_util::future::join_all(settings.orgs.iter().map(|org| {
            let span = tracing::info_span!("org", org = %org.name);
            OrgApp::build(org.clone(), &settings.retry, ledger, budget.clone(), metrics).instrument(span)
        }))
        .await;
        for (org, built) in settings.orgs.iter().zip(built) {
            match built {
                Ok(built) => self.orgs.push(built),
                Err(error) if settings.org_source.is_multi() => {
                    tracing::error!(
                        message = "Org could not start; it is tried again while the others run.",
                        org = %org.name,
                        %error,
                    );
                    report_org(ledger, metrics, &org.name, failing(&error)).await;
                    self.pending.push((org.clone(), error.to_string()));
                }
                Err(error) => return Err(error),
            }
        }
        self.health.started();
        Ok(())
    }

    /// The org of a single-org configuration (the first one otherwise).
    pub fn first(&self) -> &OrgApp {
        &self.orgs[0]
    }

    /// Starts the operations listener (if configured), the readiness probes and the
    /// systemd watchdog; returns the bound metrics address.
    pub async fn start_operations(&self) -> std::io::Result<Option<std::net::SocketAddr>> {
        let bound = self.serve_operations().await?;
        self.probe_readiness();
        Ok(bound)
    }

    /// The operations listener (`/healthz`, `/readyz`, `/metrics`) and the systemd
    /// watchdog, before any org is started: live at once, ready once the orgs are.
    pub async fn serve_operations(&self) -> std::io::Result<Option<std::net::SocketAddr>> {
        let bound = match self.settings.telemetry.metrics_listen {
            Some(listen) => {
                Some(crate::http::serve(listen, self.health.clone(), self.metrics.clone(), self.ledger.clone()).await?)
            }
            None => None,
        };
        tokio::spawn(crate::systemd::watchdog(self.health.clone()));
        Ok(bound)
    }

    /// The readiness probes (token, sink, shared budget) of the orgs running at each
    /// round, as they come and go.
    pub fn probe_readiness(&self) {
        // With several orgs, one customer's revoked credentials must not take the
        // vendor's process out of service: only the sinks count for readiness.
        let tokens_count = !self.settings.org_source.is_multi();
        tokio::spawn(probe_readiness(
            self.probes.clone(),
            self.ledger.clone(),
            tokens_count,
            self.health.clone(),
        ));
    }

    /// Runs every org's pipeline (and starts the orgs that could not start yet), then
    /// reports the ledger's state over all orgs. One org's failure is logged with its
    /// name and does not stop the others; the run's result names the first one.
    pub async fn run(&self, mode: Mode, shutdown: Shutdown) -> Result<StatusReport, RunError> {
        self.run_reloading(mode, shutdown, Arc::new(Notify::new())).await
    }

    /// [`App::run`], where a daemon with several orgs also reads its org set again when
    /// `reload` is notified (SIGHUP) and every `orgs_reload_interval`: new orgs start,
    /// removed ones stop after their in-flight uploads, changed ones restart. A set that
    /// does not validate is refused with a log line and the running orgs go on.
    pub async fn run_reloading(
        &self,
        mode: Mode,
        shutdown: Shutdown,
        reload: Arc<Notify>,
    ) -> Result<StatusReport, RunError> {
        let workers = &self.settings.workers;
        tracing::info!(
            message = "Archiver starting.",
            orgs = self.orgs.len() + self.pending.len(),
            sinks = %self.orgs.iter().map(|o| o.sink.describe()).collect::<Vec<_>>().join(", "),
            workers = workers.count,
            budget_per_window = self.orgs.first().map_or(0, |o| o.settings.limits.token_budget),
        );
        let slots = SharedSlots::new(workers.count, workers.per_org_max);
        let pruning = tokio::spawn(prune_every_hour(self.ledger.clone(), self.settings.ledger.retain));
        let leases = tokio::spawn({
            let ledger = self.ledger.clone();
            async move { ledger.keep_leases().await }
        });
        // A daemon reads its configuration again on SIGHUP (and its orgs_dir on the
        // interval), one org or several; `--once` and `backfill` run what they started.
        let reloading = mode == Mode::Daemon;
        let mut runs = Supervisor::new(self, mode, &slots, &shutdown);
        runs.start_configured();

        let mut interval = tokio::time::interval(self.settings.org_source.reload_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        loop {
            if runs.done() {
                break;
            }
            let read_again = tokio::select! {
                ended = runs.next_ended(), if runs.any_running() => {
                    if let Some((name, generation, result)) = ended {
                        runs.ended(name, generation, result).await;
                    }
                    false
                }
                _ = reload.notified(), if reloading => true,
                _ = interval.tick(), if reloading && self.settings.org_source.dir.is_some() => true,
                _ = shutdown.drain.cancelled(), if reloading && !runs.any_running() => break,
                else => break,
            };
            if read_again && !shutdown.drain.is_cancelled() {
                runs.read_again();
            }
        }
        let first_error = runs.first_error();
        pruning.abort();
        leases.abort();
        if let Some(error) = first_error {
            return Err(error);
        }
        // The configured orgs' rows (an org dropped from the configuration long ago
        // keeps its rows, but is not this run's).
        let mut report = StatusReport::default();
        for org in &self.settings.orgs {
            report.merge(self.ledger.for_org(&org.name).status().await?);
        }
        Ok(report)
    }

    /// Runs a built org's pipeline, its slots taken from the shared pools.
    async fn run_org(&self, org: &OrgApp, slots: &SharedSlots, mode: Mode, shutdown: Shutdown) -> Result<(), RunError> {
        report_org(&self.ledger, &self.metrics, &org.settings.name, OrgCondition::Running).await;
        self.probes.lock().unwrap().insert(
            org.settings.name.clone(),
            ReadinessProbe {
                client: org.client.clone(),
                sink: org.sink.clone(),
                budget: org.budget.clone(),
            },
        );
        let result = org
            .pipeline(&self.settings.workers, slots, self.health.clone(), self.stats.clone())
            .run(mode, shutdown)
            .await;
        self.probes.lock().unwrap().remove(&org.settings.name);
        self.ledger.release_held(&org.settings.name);
        self.health.forget(&org.settings.name);
        self.ledger.release_discovery(&org.settings.name).await;
        result
    }

    /// The org set of the configuration as it reads now: the whole file and
    /// environment again when the app was told how ([`App::reread`]); what of the
    /// process-wide settings changed is said, and takes effect at the next restart.
    fn read_again(&self) -> Result<Vec<OrgSettings>, crate::config::ConfigError> {
        let Some(reread) = &self.reread else {
            return self.settings.org_source.read();
        };
        let read = reread()?;
        let later = reload::needs_restart(&self.settings, &read);
        if !later.is_empty() {
            tracing::warn!(
                message = "Configuration read again; these sections changed and take effect at the next restart.",
                sections = %later.join(", "),
            );
        }
        Ok(read.orgs)
    }

    /// Builds and runs an org after the process started: at once, or (when it `failed` at
    /// the build) after a first backoff; a daemon tries again with backoff while the
    /// others run, `run --once` reports it as failed.
    async fn start_late(
        &self,
        org: OrgSettings,
        failed: Option<String>,
        mode: Mode,
        slots: &SharedSlots,
        shutdown: Shutdown,
    ) -> Result<(), RunError> {
        if let Some(why) = &failed
            && mode != Mode::Daemon
        {
            return Err(RunError::Start(why.clone()));
        }
        let mut rng = fastrand::Rng::new();
        // A first try at once, unless it just failed at the build; the n-th failure
        // waits under the n-th ceiling (30 s, 60 s, … 10 min).
        let mut failures = u32::from(failed.is_some());
        loop {
            if failures > 0 {
                let wait = start_wait(failures, &mut rng);
                tokio::select! {
                    _ = shutdown.drain.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            match OrgApp::build(org.clone(), &self.settings.retry, &self.ledger, None, &self.metrics).await {
                Ok(built) => {
                    tracing::info!(message = "Org started.", org = %org.name);
                    return self.run_org(&built, slots, mode, shutdown).await;
                }
                Err(error) => {
                    tracing::error!(
                        message = "Org still cannot start; tried again later.",
                        org = %org.name,
                        %error,
                        retry_within_s = backoff::ceiling(&START_RETRY, failures).as_secs(),
                    );
                    report_org(&self.ledger, &self.metrics, &org.name, failing(&error)).await;
                    failures += 1;
                }
            }
        }
    }
}

/// The condition of an org that failed, with the error as its reason.
fn failing(error: &dyn std::fmt::Display) -> OrgCondition {
    OrgCondition::Failing {
        reason: error.to_string(),
    }
}

/// Makes what became of an org visible: `org_up` and `org_start_failures_total` in the
/// metrics, and the org's state in the ledger, which `status` shows. A ledger that
/// cannot take it is logged; the org's work does not depend on it.
async fn report_org(ledger: &LedgerStore, metrics: &Arc<Metrics>, name: &str, condition: OrgCondition) {
    let handle = metrics.org(name);
    match &condition {
        OrgCondition::Running => handle.started(),
        OrgCondition::Failing { .. } => handle.cannot_start(),
        OrgCondition::Stopped => handle.removed(),
    }
    if let Err(error) = ledger.for_org(name).record_org_state(condition).await {
        tracing::warn!(message = "Could not record the org's state in the ledger.", org = %name, %error);
    }
}

/// Fills in `{orgId}` (key template, S3 prefix) from `GET /api/v2/organizations/me`
/// when the layout uses it: keys are fixed at a recording's first attempt, so they must
/// never be made without it. Unreadable: the run does not start.
pub(crate) async fn with_org_id(mut settings: OrgSettings, client: &GenesysClient) -> Result<OrgSettings, BuildError> {
    if !settings.needs_org_id() {
        return Ok(settings);
    }
    let org = client
        .organization()
        .await
        .map_err(|e| BuildError::OrgId(format!("cannot read the org id: {e}")))?;
    settings.sink.layout = settings.sink.layout.with_org_id(&org.id).map_err(BuildError::OrgId)?;
    settings.sink.manifest_key = settings.sink.manifest_key.with_org_id(&org.id);
    if let SinkKind::S3(s3) = &mut settings.sink.kind {
        s3.prefix = s3.prefix.replace("{orgId}", &org.id);
    }
    tracing::info!(message = "Org id read for the object keys.", org_id = %org.id, org_name = org.name.as_deref().unwrap_or(""));
    Ok(settings)
}

/// Drops finished rows older than `retain`, at start and then hourly. A failed prune is
/// logged and tried again; it never stops archiving. Rediscovering a pruned recording
/// (a backfill over an old window) archives nothing twice: its object is found at its
/// key and adopted.
async fn prune_every_hour(ledger: Arc<LedgerStore>, retain: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let Some(cutoff) = chrono::Duration::from_std(retain)
            .ok()
            .and_then(|retain| chrono::Utc::now().checked_sub_signed(retain))
        else {
            return;
        };
        match ledger.prune(cutoff).await {
            Ok(pruned) if pruned.recordings + pruned.conversations > 0 => tracing::info!(
                message = "Ledger pruned.",
                recordings = pruned.recordings,
                conversations = pruned.conversations,
                older_than = %cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(message = "Ledger prune failed; tried again in an hour.", %error),
        }
    }
}

/// `requests_per_minute = "auto"`: the org's per-token limit, as the platform reports
/// it. If it cannot be read, the documented default stays, and the budget still learns
/// the real limit from the `inin-ratelimit-allowed` headers of the first answers.
/// Returns the limit read, if one was.
pub async fn read_token_limit(client: &GenesysClient, budget: &dyn Budget) -> Option<u32> {
    match client.org_token_limit().await {
        Ok(Some(limit)) => {
            budget.set_token_limit(limit);
            tracing::info!(
                message = "Per-token budget read from the org's limits.",
                requests_per_window = limit,
                key = "client.credentials.token.rate.per.minute",
            );
            return Some(limit);
        }
        Ok(None) => tracing::warn!(
            message = "The org's limits do not name the per-token budget; using the documented default.",
            requests_per_window = crate::config::settings::DOCUMENTED_TOKEN_BUDGET,
        ),
        Err(error) => tracing::warn!(
            message = "Cannot read the org's limits; using the documented default per-token budget.",
            requests_per_window = crate::config::settings::DOCUMENTED_TOKEN_BUDGET,
            %error,
        ),
    }
    None
}

/// How often readiness asks the ledger and a shared budget (cheap: one query, one
/// PING), and the sinks until they answer.
const PROBE_INTERVAL: Duration = Duration::from_secs(10);
/// How often sinks that answered are asked again (each check is a request to S3).
const SINK_RECHECK: Duration = Duration::from_secs(60);

/// Keeps readiness current: a token from every org (when tokens count), then the
/// clients' own refreshes keep them; the ledger and every shared budget answering,
/// asked every 10 s, so a replica whose PostgreSQL or Redis went away shows it within
/// one round; every org's sink answering, checked every 10 s until they do, then every
/// minute.
async fn probe_readiness(
    registry: Arc<std::sync::Mutex<BTreeMap<String, ReadinessProbe>>>,
    ledger: Arc<LedgerStore>,
    tokens_count: bool,
    health: Arc<Health>,
) {
    // When tokens do not count, none is asked for here: the org's own runs log in, and
    // a revoked customer is not tried every minute on top of its start-up backoff.
    let mut have_token: BTreeMap<String, bool> = BTreeMap::new();
    let mut sinks_checked: Option<(tokio::time::Instant, Vec<String>)> = None;
    loop {
        let orgs: Vec<(String, ReadinessProbe)> = registry
            .lock()
            .unwrap()
            .iter()
            .map(|(n, p)| (n.clone(), p.clone()))
            .collect();
        if orgs.is_empty() {
            // No org runs yet (or none any more): nothing has been probed, so nothing is
            // said to be ready; looked at again soon, as an org's run registers.
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        have_token.retain(|name, _| orgs.iter().any(|(n, _)| n == name));
        for (name, probe) in &orgs {
            let have = have_token.entry(name.clone()).or_insert(!tokens_count);
            if !*have {
                match probe.client.authenticate().await {
                    Ok(()) => *have = true,
                    Err(error) => tracing::warn!(message = "Not ready: no token yet.", org = %name, %error),
                }
            }
        }
        health.token.store(have_token.values().all(|t| *t), Ordering::Relaxed);
        // Said when it changes, not every round.
        match ledger.reachable().await {
            Ok(()) => health.ledger.store(true, Ordering::Relaxed),
            Err(error) => {
                if health.ledger.swap(false, Ordering::Relaxed) {
                    tracing::warn!(message = "Not ready: the ledger does not answer.", %error);
                }
            }
        }
        // A shared budget that does not answer logs so itself, once per outage.
        let mut shared_ok = true;
        for (_, probe) in &orgs {
            if let Some(Err(_)) = probe.budget.shared_reachable().await {
                shared_ok = false;
            }
        }
        health.shared_budget.store(shared_ok, Ordering::Relaxed);
        // Checked again on schedule, while not answering, and when the set of orgs
        // changed (an org added or restarted brings a sink not checked yet).
        let names: Vec<String> = orgs.iter().map(|(n, _)| n.clone()).collect();
        let sinks_due = !health.sink.load(Ordering::Relaxed)
            || sinks_checked
                .as_ref()
                .is_none_or(|(at, checked)| at.elapsed() >= SINK_RECHECK || *checked != names);
        if sinks_due {
            let mut sinks_ok = true;
            for (name, probe) in &orgs {
                if let Err(error) = probe.sink.check().await {
                    tracing::warn!(message = "Not ready: the sink does not answer.", org = %name, sink = %probe.sink.describe(), %error);
                    sinks_ok = false;
                }
            }
            health.sink.store(sinks_ok, Ordering::Relaxed);
            sinks_checked = Some((tokio::time::Instant::now(), names));
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// What readiness asks of one org.
#[derive(Clone)]
struct ReadinessProbe {
    client: Arc<GenesysClient>,
    sink: Arc<dyn Sink>,
    budget: Arc<dyn Budget>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_org_that_cannot_start_waits_under_ceilings_that_double_from_30_s_to_10_minutes() {
        let ceilings: Vec<u64> = (1..=8)
            .map(|n| backoff::ceiling(&START_RETRY, n - 1).as_secs())
            .collect();
        assert_eq!(ceilings, [30, 60, 120, 240, 480, 600, 600, 600]);
        let mut rng = fastrand::Rng::with_seed(7);
        for failures in 1..=8u32 {
            let ceiling = Duration::from_secs(ceilings[failures as usize - 1]);
            let waits: Vec<Duration> = (0..500).map(|_| start_wait(failures, &mut rng)).collect();
            assert!(
                waits.iter().all(|w| *w <= ceiling),
                "failure {failures}: over {ceiling:?}"
            );
            // Jittered (orgs revoked together do not retry together), not all at the top.
            let mean = waits.iter().sum::<Duration>() / waits.len() as u32;
            assert!(
                mean > ceiling / 3 && mean < ceiling * 2 / 3,
                "failure {failures}: mean {mean:?}"
            );
        }
        // A thousandth failure still waits at most 10 minutes: an org is never given up.
        assert!(start_wait(1000, &mut rng) <= Duration::from_secs(600));
    }
}
