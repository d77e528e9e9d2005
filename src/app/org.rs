//! One org's side of the wiring: its client, budget, ledger view and sink, and the
//! pipeline that archives it.
//!
//! Every org has its own token, budget (with its own `"auto"` limit), cooldowns and
//! learned limits, discovery schedule and watermark, so one org's bad credentials, 429
//! storm or outage slows no other: the only things orgs share are the ledger file and
//! the worker slots, which they take in turn.

use super::{BuildError, open_sink, read_token_limit, with_org_id};
use crate::config::settings::{OrgSettings, WorkerSettings};
use crate::genesys::{ApiError, GenesysClient};
use crate::health::Health;
use crate::ledger::Ledger;
use crate::ledger::store::LedgerStore;
use crate::metrics::{Metrics, OrgMetrics};
use crate::pipeline::Pipeline;
use crate::pipeline::poller::Poller;
use crate::pipeline::slots::SharedSlots;
use crate::pipeline::stats::PipelineStats;
use crate::pipeline::worker::Worker;
use crate::ratelimit::shared::SharedBudget;
use crate::ratelimit::{Budget, LocalBudget};
use crate::retry::settings::RetrySettings;
use crate::sink::Sink;
use std::sync::Arc;
use tokio::sync::Notify;

pub struct OrgApp {
    /// `{orgId}` filled in.
    pub settings: OrgSettings,
    pub client: Arc<GenesysClient>,
    pub budget: Arc<dyn Budget>,
    /// The org's rows of the shared ledger.
    pub ledger: Arc<dyn Ledger>,
    pub sink: Arc<dyn Sink>,
}

impl OrgApp {
    /// Builds the org's parts (its own budget unless one is given: the load test's
    /// naive baseline) and recovers what an earlier run left of its work.
    pub async fn build(
        settings: OrgSettings,
        retry: &RetrySettings,
        ledger: &LedgerStore,
        budget: Option<Arc<dyn Budget>>,
        metrics: &Arc<Metrics>,
    ) -> Result<Self, BuildError> {
        let metrics = metrics.org(&settings.name);
        let budget = match budget {
            Some(given) => given,
            None => own_budget(&settings, retry, metrics.clone()).await?,
        };
        let ledger = ledger.for_org(&settings.name);
        let client = Arc::new(GenesysClient::new(
            &settings.genesys,
            retry,
            budget.clone(),
            metrics.clone(),
        )?);
        // Refused credentials stop the org's start: it is reported as failing and tried
        // again with backoff. A platform that does not answer yet does not: the
        // pipeline's own retries wait for it, as they would a minute later.
        match client.authenticate().await {
            Ok(()) => {}
            Err(error @ ApiError::Auth(_)) => return Err(BuildError::Login(error)),
            Err(error) => {
                tracing::warn!(message = "No token yet; the org starts and its calls wait for the platform.", %error)
            }
        }
        let mut token_budget = settings.limits.token_budget;
        if settings.limits.auto_budget
            && let Some(limit) = read_token_limit(&client, budget.as_ref()).await
        {
            token_budget = limit;
        }
        client.metrics().budget_limit(token_budget, settings.limits.window);
        client.metrics().discovery_started();
        let settings = with_org_id(settings, &client).await?;
        let sink = open_sink(&settings, metrics).await?;
        // The bucket's owner and Object Lock, before anything is claimed: a bucket that
        // refuses what the configuration asks stops the start. One that does not answer
        // now is no reason not to start (readiness says so; uploads retry).
        match sink.check_bucket().await {
            Err(refused @ crate::sink::SinkError::Refused(_)) => return Err(refused.into()),
            Err(error) => tracing::warn!(
                message = "The bucket's owner and Object Lock could not be checked; starting anyway.",
                %error
            ),
            Ok(()) => {}
        }
        let org = Self {
            settings,
            client,
            budget,
            ledger,
            sink,
        };
        org.recover().await?;
        Ok(org)
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

    /// The org's pipeline, taking its worker and listing slots from the shared pools.
    pub fn pipeline(
        &self,
        workers: &WorkerSettings,
        slots: &SharedSlots,
        health: Arc<Health>,
        stats: Arc<PipelineStats>,
    ) -> Pipeline {
        let work = Arc::new(Notify::new());
        let poller = Poller {
            client: self.client.clone(),
            ledger: self.ledger.clone(),
            settings: self.settings.discovery.clone(),
            stats: stats.clone(),
            work: work.clone(),
        };
        let urls = Arc::new(crate::pipeline::urls::UrlCache::default());
        let checker = Arc::new(crate::pipeline::check::Checker {
            client: self.client.clone(),
            ledger: self.ledger.clone(),
            urls: urls.clone(),
            lifecycle: poller.lifecycle(),
            mode: self.settings.discovery.fetch_mode,
            upload_deadline: self.settings.discovery.upload_deadline,
            work: work.clone(),
        });
        let worker = Arc::new(Worker {
            client: self.client.clone(),
            ledger: self.ledger.clone(),
            sink: self.sink.clone(),
            layout: self.settings.sink.layout.clone(),
            format: self.settings.genesys.format_id,
            settings: workers.clone(),
            upload_deadline: self.settings.discovery.upload_deadline,
            stats,
        });
        let discovery = &self.settings.discovery;
        let manifests = Arc::new(crate::manifest::writer::Manifests {
            org: self.settings.name.clone(),
            ledger: self.ledger.clone(),
            sink: self.sink.clone(),
            key: self.settings.sink.manifest_key.clone(),
            // Nothing can add to a day once the sweep no longer reaches it (or, without
            // a sweep, the overlap), nor before discovery's settle delay.
            horizon: discovery.sweep_lookback.max(discovery.overlap) + discovery.settle_delay,
            metrics: self.client.metrics().clone(),
            blocked: Default::default(),
        });
        let handoffs = self.settings.retention.map(|settings| {
            Arc::new(crate::pipeline::handoff::Handoffs::new(
                self.client.clone(),
                self.ledger.clone(),
                self.sink.clone(),
                settings,
            ))
        });
        Pipeline {
            manifests,
            handoffs,
            discovery: health.poller(&self.settings.name),
            health,
            poller,
            worker,
            checker,
            urls,
            ledger: self.ledger.clone(),
            slots: slots.for_org(),
            poll_interval: self.settings.discovery.poll_interval,
            work,
        }
    }
}

/// The org's budget: in this process, or (`[limits] shared`) in Redis with every
/// replica, keyed by the org and its OAuth client as the platform counts. Each replica
/// logs in with its own token: the platform counts per token, so N tokens could allow
/// N budgets, but the shared count paces all of them as one, and it holds as well if
/// the platform counted per client; no replica depends on Redis to log in.
async fn own_budget(
    settings: &OrgSettings,
    retry: &RetrySettings,
    metrics: OrgMetrics,
) -> Result<Arc<dyn Budget>, BuildError> {
    Ok(match &settings.limits.shared {
        None => Arc::new(LocalBudget::new(&settings.limits, retry, metrics)),
        Some(_) => {
            let key = format!("{}:{}", settings.name, settings.genesys.client_id);
            Arc::new(
                SharedBudget::new(&settings.limits, retry, &key, metrics)
                    .await
                    .map_err(|e| BuildError::SharedBudget(e.to_string()))?,
            )
        }
    })
}
