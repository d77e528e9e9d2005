//! What the daemon last said of an org: running, unable to start (and why), or
//! stopped. Kept in the ledger, not only in the process, so that `status` (another
//! process) shows a customer whose credentials were revoked, even when that org never
//! got a single row.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum OrgCondition {
    /// Its pipeline runs.
    Running,
    /// It could not start (credentials, org id, sink) or its run failed; tried again
    /// with backoff while the others run.
    Failing { reason: String },
    /// Its run ended: the daemon stopped, or the org left the configuration.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgState {
    #[serde(flatten)]
    pub condition: OrgCondition,
    /// When the condition began (a failure that repeats keeps its first time).
    pub since: DateTime<Utc>,
}

impl OrgState {
    pub fn now(condition: OrgCondition) -> Self {
        Self {
            condition,
            since: Utc::now(),
        }
    }

    /// The state to record after `self` when `next` happens: a repeated failure keeps
    /// the time it began (with the latest reason), so `status` says how long an org has
    /// been down, not when it was last tried.
    pub fn then(previous: Option<&OrgState>, next: OrgCondition) -> Self {
        let next = match next {
            OrgCondition::Failing { reason } => OrgCondition::Failing {
                reason: crate::untrusted::reason(&reason),
            },
            other => other,
        };
        match (previous, &next) {
            (
                Some(OrgState {
                    condition: OrgCondition::Failing { .. },
                    since,
                }),
                OrgCondition::Failing { .. },
            ) => Self {
                condition: next,
                since: *since,
            },
            _ => Self::now(next),
        }
    }

    pub fn label(&self) -> &'static str {
        match self.condition {
            OrgCondition::Running => "running",
            OrgCondition::Failing { .. } => "failing",
            OrgCondition::Stopped => "stopped",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match &self.condition {
            OrgCondition::Failing { reason } => Some(reason),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_failure_keeps_its_start_and_a_recovery_starts_anew() {
        let first = OrgState::now(OrgCondition::Failing { reason: "401".into() });
        let again = OrgState::then(Some(&first), OrgCondition::Failing { reason: "503".into() });
        assert_eq!(again.since, first.since);
        assert_eq!(again.reason(), Some("503"));
        let up = OrgState::then(Some(&again), OrgCondition::Running);
        assert_eq!(up.label(), "running");
        assert!(up.since >= first.since);
        let json = serde_json::to_value(&again).unwrap();
        assert_eq!(json["state"], "failing");
        assert_eq!(json["reason"], "503");
        assert_eq!(serde_json::from_value::<OrgState>(json).unwrap(), again);
    }
}
