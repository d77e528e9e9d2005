//! What changes when the org set is read again (SIGHUP, `orgs_reload_interval`).
//!
//! A new org starts; a removed org stops after its in-flight uploads (its ledger rows
//! stay); an org whose settings changed (a rotated secret, a new bucket, another
//! budget) stops the same way and starts again with the new ones. Unchanged orgs are
//! not touched: their token, budget state and schedule go on.

use crate::config::settings::OrgSettings;
use secrecy::ExposeSecret;
use std::collections::BTreeMap;

/// What tells two versions of an org's settings apart, every secret included (which
/// `Debug` leaves out): the client secret and the shared budget's Redis URL, whose
/// password may be rotated alone. Kept in memory only; never logged.
pub fn fingerprint(org: &OrgSettings) -> String {
    let redis = org.limits.shared.as_ref().map(|s| s.url.expose_secret().to_owned());
    format!(
        "{org:?}\u{0}{}\u{0}{}",
        org.genesys.client_secret.expose_secret(),
        redis.unwrap_or_default()
    )
}

/// The process-wide settings a reload cannot apply to a running process (the ledger
/// and its URL with its password, the worker pool, telemetry, API retry timing), by
/// key: those that differ between `now` and `read` take effect at the next restart,
/// and the reload says so.
pub fn needs_restart(now: &crate::config::Settings, read: &crate::config::Settings) -> Vec<&'static str> {
    use crate::ledger::store::LedgerBackend;
    let ledger = |s: &crate::config::Settings| match &s.ledger.backend {
        LedgerBackend::Postgres(pg) => format!("{:?}\u{0}{}", s.ledger, pg.url.expose_secret()),
        LedgerBackend::Sqlite { .. } => format!("{:?}", s.ledger),
    };
    let mut changed = Vec::new();
    if ledger(now) != ledger(read) {
        changed.push("ledger");
    }
    if format!("{:?}", now.workers) != format!("{:?}", read.workers) {
        changed.push("workers");
    }
    if format!("{:?}", now.telemetry) != format!("{:?}", read.telemetry) {
        changed.push("telemetry");
    }
    if format!("{:?}", now.retry) != format!("{:?}", read.retry) {
        changed.push("retry");
    }
    changed
}

/// The changes that take the running orgs to the wanted ones.
#[derive(Debug, Default)]
pub struct Plan {
    pub start: Vec<OrgSettings>,
    pub stop: Vec<String>,
    /// Stopped, then started again with these settings.
    pub restart: Vec<OrgSettings>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.start.is_empty() && self.stop.is_empty() && self.restart.is_empty()
    }
}

/// `running`: name to fingerprint of every org running (or starting) now.
pub fn plan(running: &BTreeMap<String, String>, wanted: Vec<OrgSettings>) -> Plan {
    let mut plan = Plan::default();
    let names: Vec<String> = wanted.iter().map(|o| o.name.clone()).collect();
    for org in wanted {
        match running.get(&org.name) {
            None => plan.start.push(org),
            Some(old) if *old != fingerprint(&org) => plan.restart.push(org),
            Some(_) => {}
        }
    }
    plan.stop = running.keys().filter(|name| !names.contains(name)).cloned().collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Sources;

    fn orgs(entries: &str) -> Vec<OrgSettings> {
        Sources {
            text: Some(&format!(
                "[genesys]\nclient_secret = \"s\"\n[s3]\nbucket = \"b-1\"\nprefix = \"{{org}}/\"\n{entries}"
            )),
            env: Some(Default::default()),
            ..Default::default()
        }
        .load()
        .unwrap()
        .orgs
    }

    fn entry(name: &str, extra: &str) -> String {
        format!("[[orgs]]\nname = \"{name}\"\n[orgs.genesys]\nregion = \"r.com\"\nclient_id = \"{name}\"\n{extra}\n")
    }

    #[test]
    fn new_orgs_start_removed_ones_stop_changed_ones_restart() {
        let before = orgs(&format!(
            "{}{}{}",
            entry("acme", ""),
            entry("globex", ""),
            entry("initech", "")
        ));
        let running: BTreeMap<String, String> = before.iter().map(|o| (o.name.clone(), fingerprint(o))).collect();
        // globex rotated its secret, initech is gone, hooli is new.
        let after = orgs(&format!(
            "{}{}{}",
            entry("acme", ""),
            entry("globex", "client_secret = \"rotated\""),
            entry("hooli", "")
        ));
        let plan = plan(&running, after);
        let names = |v: &[OrgSettings]| v.iter().map(|o| o.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&plan.start), ["hooli"]);
        assert_eq!(names(&plan.restart), ["globex"], "a new secret is a change");
        assert_eq!(plan.stop, ["initech"]);
        // The same set again changes nothing.
        assert!(super::plan(&running, before).is_empty());
    }

    #[test]
    fn a_rotated_redis_password_is_a_change_and_process_settings_are_named() {
        let with = |password: &str, workers: u32| {
            Sources {
                text: Some(&format!(
                    "[genesys]\nregion = \"r.com\"\nclient_id = \"c\"\nclient_secret = \"s\"\n\
                     [s3]\nbucket = \"b-1\"\n[limits]\nshared = \"redis://:{password}@127.0.0.1:6379/0\"\n\
                     [workers]\ncount = {workers}\n"
                )),
                env: Some(Default::default()),
                ..Default::default()
            }
            .load()
            .unwrap()
        };
        let (before, after) = (with("old-password", 4), with("new-password", 8));
        assert_ne!(fingerprint(&before.orgs[0]), fingerprint(&after.orgs[0]));
        assert_eq!(
            fingerprint(&before.orgs[0]),
            fingerprint(&with("old-password", 8).orgs[0])
        );
        assert_eq!(needs_restart(&before, &after), ["workers"]);
        assert!(needs_restart(&before, &with("old-password", 4)).is_empty());
    }
}
