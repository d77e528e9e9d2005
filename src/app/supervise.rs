//! The orgs a process runs, while it runs: each started under its own stop, its end
//! reported (stopped, or failing with why), a failed one started again with backoff in
//! a daemon of several orgs, and a reload applied (new orgs start, removed ones stop
//! after their in-flight uploads, changed ones restart). [`super::App::run_reloading`]
//! is the loop that drives it.

use super::{App, Runs, failing, reload, report_org, stop_within_grace};
use crate::config::settings::OrgSettings;
use crate::ledger::OrgCondition;
use crate::pipeline::slots::SharedSlots;
use crate::pipeline::{Mode, RunError, Shutdown};
use futures_util::StreamExt;
use std::collections::BTreeMap;

pub(super) struct Supervisor<'a> {
    app: &'a App,
    mode: Mode,
    slots: &'a SharedSlots,
    shutdown: &'a Shutdown,
    runs: Runs<'a>,
    /// Orgs stopping for a restart: started again with these settings when they end.
    restart: BTreeMap<String, OrgSettings>,
    first_error: Option<RunError>,
    /// Several orgs (`[[orgs]]` or `orgs_dir`): one failing does not end the process.
    multi: bool,
    /// A daemon (not `--once` nor `backfill`): reads its configuration again, and
    /// starts a failed org of several again.
    reloading: bool,
}

impl<'a> Supervisor<'a> {
    pub(super) fn new(app: &'a App, mode: Mode, slots: &'a SharedSlots, shutdown: &'a Shutdown) -> Self {
        Self {
            app,
            mode,
            slots,
            shutdown,
            runs: Runs::default(),
            restart: BTreeMap::new(),
            first_error: None,
            multi: app.settings.org_source.is_multi(),
            reloading: mode == Mode::Daemon,
        }
    }

    /// Starts the orgs built at start, and tries again those that could not start yet.
    pub(super) fn start_configured(&mut self) {
        let (app, slots, mode) = (self.app, self.slots, self.mode);
        for org in &app.orgs {
            self.runs.add(&org.settings, self.shutdown, |own| {
                Box::pin(app.run_org(org, slots, mode, own))
            });
        }
        for (org, why) in &app.pending {
            self.start(org.clone(), Some(why.clone()));
        }
    }

    /// Builds and runs `org` (with the start-up backoff when `why` says it failed).
    fn start(&mut self, org: OrgSettings, why: Option<String>) {
        let (app, slots, mode) = (self.app, self.slots, self.mode);
        self.runs.add(&org.clone(), self.shutdown, |own| {
            Box::pin(app.start_late(org, why, mode, slots, own))
        });
    }

    /// The one org of a single-org daemon failed: the process exits with its error
    /// (systemd or Kubernetes restarts it), it does not wait for a reload.
    pub(super) fn done(&self) -> bool {
        !self.multi && self.first_error.is_some() && self.runs.futures.is_empty() && self.restart.is_empty()
    }

    pub(super) fn any_running(&self) -> bool {
        !self.runs.futures.is_empty()
    }

    /// The next org run to end: its name, its generation and how it ended.
    pub(super) async fn next_ended(&mut self) -> Option<(String, u64, Result<(), RunError>)> {
        self.runs.futures.next().await
    }

    /// An org's run ended: reports it, starts it again where that is the rule, keeps
    /// the first error of a process that will exit with it.
    pub(super) async fn ended(&mut self, name: String, generation: u64, result: Result<(), RunError>) {
        let (app, shutdown) = (self.app, self.shutdown);
        // Its settings, unless it was being stopped (removed or restarting by a reload):
        // a removed org whose run fails is not started again.
        let settings = self
            .runs
            .live
            .get(&name)
            .filter(|l| l.generation == generation && !l.shutdown.drain.is_cancelled())
            .map(|l| l.settings.clone());
        self.runs.ended(&name, generation);
        let restarting = self.restart.contains_key(&name) && !shutdown.drain.is_cancelled();
        match result {
            Ok(()) if restarting => {}
            Ok(()) => {
                if self.reloading && !shutdown.drain.is_cancelled() {
                    tracing::info!(message = "Org stopped.", org = %name);
                }
                report_org(&app.ledger, &app.metrics, &name, OrgCondition::Stopped).await;
            }
            // A daemon with several orgs starts a failed one again with the start-up
            // backoff, [[orgs]] entries as orgs_dir files: the others go on, and it is
            // not left down until someone looks.
            Err(error) if self.reloading && self.multi && !shutdown.drain.is_cancelled() && settings.is_some() => {
                tracing::error!(message = "Org run failed; it is started again with backoff.", org = %name, %error);
                report_org(&app.ledger, &app.metrics, &name, failing(&error)).await;
                if !self.restart.contains_key(&name) {
                    let org = settings.expect("checked above");
                    self.start(org, Some(error.to_string()));
                }
            }
            Err(error) => {
                tracing::error!(message = "Org run failed.", org = %name, %error);
                report_org(&app.ledger, &app.metrics, &name, failing(&error)).await;
                let error = match self.multi {
                    true => RunError::Org {
                        org: name.clone(),
                        source: Box::new(error),
                    },
                    false => error,
                };
                self.first_error.get_or_insert(error);
            }
        }
        if let Some(org) = self.restart.remove(&name)
            && !shutdown.drain.is_cancelled()
        {
            self.start(org, None);
        }
    }

    /// Reads the configuration again and applies what changed; a set that does not
    /// validate is refused with a log line, and the running orgs go on unchanged.
    pub(super) fn read_again(&mut self) {
        let wanted = match self.app.read_again() {
            Ok(wanted) => wanted,
            Err(error) => {
                tracing::error!(
                    message = "The configuration was read again and refused; the running orgs go on unchanged.",
                    error = %error,
                );
                return;
            }
        };
        let running = self
            .runs
            .live
            .iter()
            .map(|(name, l)| (name.clone(), l.fingerprint.clone()))
            .collect();
        let plan = reload::plan(&running, wanted);
        let grace = self.app.settings.workers.shutdown_grace;
        for name in &plan.stop {
            tracing::info!(message = "Org removed; it stops after its in-flight uploads.", org = %name);
            if let Some(l) = self.runs.live.get(name) {
                stop_within_grace(name, l, grace);
            }
            self.restart.remove(name);
        }
        for org in plan.restart {
            tracing::info!(message = "Org changed; it restarts after its in-flight uploads.", org = %org.name);
            if let Some(l) = self.runs.live.get_mut(&org.name) {
                stop_within_grace(&org.name, l, grace);
                l.fingerprint = reload::fingerprint(&org);
            }
            self.restart.insert(org.name.clone(), org);
        }
        for org in plan.start {
            tracing::info!(message = "Org added; starting it.", org = %org.name);
            self.start(org, None);
        }
    }

    /// The error the process ends with, if an org's failure ends it.
    pub(super) fn first_error(self) -> Option<RunError> {
        self.first_error
    }
}
