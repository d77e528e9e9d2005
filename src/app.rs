//! Wiring: settings in, a running pipeline out.
//!
//! [`App::build`] opens the ledger, the sink and the client, then recovers from whatever
//! a previous process left: in-flight recordings become due again and multipart uploads
//! still journalled are aborted. [`App::run`] runs the pipeline until its mode is done
//! or the shutdown token fires. `main`, `demo`, the load test and the tests share both.

use crate::config::Settings;
use crate::config::settings::OrgSettings;
use crate::config::settings::SinkKind;
use crate::genesys::GenesysClient;
use crate::health::Health;
use crate::ledger::lock::LedgerLock;
use crate::ledger::sqlite::SqliteLedger;
use crate::ledger::{Ledger, StatusReport};
use crate::pipeline::poller::Poller;
use crate::pipeline::stats::PipelineStats;
use crate::pipeline::worker::Worker;
use crate::pipeline::{Mode, Pipeline, RunError, Shutdown};
use crate::ratelimit::{Budget, LocalBudget};
use crate::sink::Sink;
use crate::sink::file::FileSink;
use crate::sink::s3::S3Sink;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::Notify;

pub struct App {
    pub settings: Settings,
    /// The org served, its `{orgId}` filled in.
    pub org: OrgSettings,
    pub client: Arc<GenesysClient>,
    pub budget: Arc<dyn Budget>,
    pub ledger: Arc<dyn Ledger>,
    pub sink: Arc<dyn Sink>,
    pub stats: Arc<PipelineStats>,
    pub health: Arc<Health>,
    /// This process owns the ledger while the app lives.
    _lock: LedgerLock,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    #[error("sink: {0}")]
    Sink(#[from] crate::sink::SinkError),
    #[error(transparent)]
    Client(#[from] crate::genesys::client::BuildError),
    #[error("keys use {{orgId}}: {0}")]
    OrgId(String),
    #[error(
        "the configuration names {0} orgs; this version serves exactly one org per process (one configuration, ledger and metrics port each)"
    )]
    OrgCount(usize),
}

/// Opens the sink an org's settings name.
pub async fn open_sink(org: &OrgSettings) -> Result<Arc<dyn Sink>, crate::sink::SinkError> {
    Ok(match &org.sink.kind {
        SinkKind::S3(s3) => Arc::new(S3Sink::new(s3.clone()).await),
        SinkKind::File { directory } => Arc::new(FileSink::open(directory)?),
    })
}

impl App {
    pub async fn build(settings: Settings) -> Result<Self, BuildError> {
        let org = only_org(&settings)?;
        let budget: Arc<dyn Budget> = Arc::new(LocalBudget::new(&org.limits, &settings.retry));
        Self::build_with_budget(settings, budget).await
    }

    /// With another budget (the load test's naive baseline).
    pub async fn build_with_budget(settings: Settings, budget: Arc<dyn Budget>) -> Result<Self, BuildError> {
        // Before anything else, a token request included: a second owner goes away at once.
        let org = only_org(&settings)?.clone();
        let lock = LedgerLock::acquire(&settings.ledger.path)?;
        // The org's own rows of the one ledger file.
        let ledger: Arc<dyn Ledger> = Arc::new(SqliteLedger::open(&settings.ledger.path)?.for_org(&org.name));
        let client = Arc::new(GenesysClient::new(&org.genesys, &settings.retry, budget.clone())?);
        if org.limits.auto_budget {
            read_token_limit(&client, budget.as_ref()).await;
        }
        let org = with_org_id(org, &client).await?;
        let sink = open_sink(&org).await?;
        let health = Arc::new(Health::new(org.discovery.poll_interval));
        health.ledger.store(true, Ordering::Relaxed);
        let app = Self {
            settings,
            org,
            client,
            budget,
            ledger,
            sink,
            stats: Arc::default(),
            health,
            _lock: lock,
        };
        app.recover().await?;
        Ok(app)
    }

    /// Requeues in-flight work and aborts multipart uploads a crash left open.
    async fn recover(&self) -> Result<(), BuildError> {
        for open in self.ledger.recover().await? {
            match self.sink.abort_upload(&open.key, &open.upload_id).await {
                Ok(()) => {
                    self.ledger.forget_upload(open.recording_id.clone()).await?;
                    tracing::info!(message = "Aborted a multipart upload left open by an earlier run.", recording_id = %open.recording_id);
                }
                Err(error) => {
                    tracing::warn!(message = "Could not abort an open multipart upload; will try again at next start.", recording_id = %open.recording_id, %error);
                }
            }
        }
        Ok(())
    }

    fn pipeline(&self) -> Pipeline {
        let work = Arc::new(Notify::new());
        let poller = Poller {
            client: self.client.clone(),
            ledger: self.ledger.clone(),
            settings: self.org.discovery.clone(),
            stats: self.stats.clone(),
            work: work.clone(),
        };
        let urls = Arc::new(crate::pipeline::urls::UrlCache::default());
        let checker = Arc::new(crate::pipeline::check::Checker {
            client: self.client.clone(),
            ledger: self.ledger.clone(),
            urls: urls.clone(),
            lifecycle: poller.lifecycle(),
            mode: self.org.discovery.fetch_mode,
            work: work.clone(),
        });
        let worker = Arc::new(Worker {
            client: self.client.clone(),
            ledger: self.ledger.clone(),
            sink: self.sink.clone(),
            layout: self.org.sink.layout.clone(),
            format: self.org.genesys.format_id,
            settings: self.settings.workers.clone(),
            stats: self.stats.clone(),
        });
        Pipeline {
            health: self.health.clone(),
            poller,
            worker,
            checker,
            urls,
            ledger: self.ledger.clone(),
            slots: self.settings.workers.count,
            poll_interval: self.org.discovery.poll_interval,
            work,
        }
    }

    /// Starts the operations listener (if configured), the readiness probes and the
    /// systemd watchdog; returns the bound metrics address.
    pub async fn start_operations(&self) -> std::io::Result<Option<std::net::SocketAddr>> {
        let bound = match self.settings.telemetry.metrics_listen {
            Some(listen) => Some(crate::http::serve(listen, self.health.clone(), self.ledger.clone()).await?),
            None => None,
        };
        tokio::spawn(probe_readiness(
            self.client.clone(),
            self.sink.clone(),
            self.health.clone(),
        ));
        tokio::spawn(crate::systemd::watchdog(self.health.clone()));
        Ok(bound)
    }

    /// Runs, then reports the ledger's state.
    pub async fn run(&self, mode: Mode, shutdown: Shutdown) -> Result<StatusReport, RunError> {
        tracing::info!(
            message = "Archiver starting.",
            sink = %self.sink.describe(),
            workers = self.settings.workers.count,
            budget_per_window = self.org.limits.token_budget,
        );
        let pruning = tokio::spawn(prune_every_hour(self.ledger.clone(), self.settings.ledger.retain));
        let result = self.pipeline().run(mode, shutdown).await;
        pruning.abort();
        result?;
        Ok(self.ledger.status().await?)
    }
}

/// The one org this process serves.
fn only_org(settings: &Settings) -> Result<&OrgSettings, BuildError> {
    match settings.orgs.as_slice() {
        [org] => Ok(org),
        orgs => Err(BuildError::OrgCount(orgs.len())),
    }
}

/// Fills in `{orgId}` (key template, S3 prefix) from `GET /api/v2/organizations/me`
/// when the layout uses it: keys are fixed at a recording's first attempt, so they must
/// never be made without it. Unreadable: the run does not start.
async fn with_org_id(mut settings: OrgSettings, client: &GenesysClient) -> Result<OrgSettings, BuildError> {
    let prefix_needs = matches!(&settings.sink.kind, SinkKind::S3(s3) if s3.prefix.contains("{orgId}"));
    if !settings.sink.layout.needs_org_id() && !prefix_needs {
        return Ok(settings);
    }
    let org = client
        .organization()
        .await
        .map_err(|e| BuildError::OrgId(format!("cannot read the org id: {e}")))?;
    settings.sink.layout = settings.sink.layout.with_org_id(&org.id).map_err(BuildError::OrgId)?;
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
async fn prune_every_hour(ledger: Arc<dyn Ledger>, retain: Duration) {
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
pub async fn read_token_limit(client: &GenesysClient, budget: &dyn Budget) {
    match client.org_token_limit().await {
        Ok(Some(limit)) => {
            budget.set_token_limit(limit);
            tracing::info!(
                message = "Per-token budget read from the org's limits.",
                requests_per_window = limit,
                key = "client.credentials.token.rate.per.minute",
            );
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
}

/// Keeps readiness current: a token (then the client's own refreshes keep it), and the
/// sink answering, checked every 10 s until it does, then every minute.
async fn probe_readiness(client: Arc<GenesysClient>, sink: Arc<dyn Sink>, health: Arc<Health>) {
    loop {
        if !health.token.load(Ordering::Relaxed) {
            match client.authenticate().await {
                Ok(()) => health.token.store(true, Ordering::Relaxed),
                Err(error) => tracing::warn!(message = "Not ready: no token yet.", %error),
            }
        }
        let sink_ok = match sink.check().await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(message = "Not ready: the sink does not answer.", sink = %sink.describe(), %error);
                crate::metrics::global().sink_errors.inc(&[("operation", "check")]);
                false
            }
        };
        health.sink.store(sink_ok, Ordering::Relaxed);
        let ready = sink_ok && health.token.load(Ordering::Relaxed);
        tokio::time::sleep(if ready {
            Duration::from_secs(60)
        } else {
            Duration::from_secs(10)
        })
        .await;
    }
}
