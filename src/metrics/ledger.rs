//! The ledger's gauges, read at scrape time: they are the ledger's own state (kept by
//! triggers, a dozen rows per org), so they are never stale and never double counted
//! across restarts the way a process-side gauge would be.

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use super::{OrgLabel, PREFIX};
use prometheus_client::encoding::EncodeLabelSet;

/// One org's ledger figures at scrape time.
#[derive(Debug, Default, Clone)]
pub struct LedgerGauges {
    pub by_state: BTreeMap<String, u64>,
    /// Conversations by lifecycle state (active, ended, checking, settled, parked).
    pub conversations: BTreeMap<String, u64>,
    pub oldest_unarchived_age: Option<Duration>,
    /// How long ago the oldest ended-but-unsettled conversation ended.
    pub oldest_unsettled_age: Option<Duration>,
    /// Seconds until the soonest deadline (`archiveDate` or `deleteDate`) of a
    /// recording not yet archived; negative once it has passed. `None`: no deadline.
    pub soonest_deadline_in: Option<f64>,
}

impl LedgerGauges {
    /// The gauges of `report`, at `now`.
    pub fn of(report: crate::ledger::StatusReport, now: chrono::DateTime<chrono::Utc>) -> Self {
        let age =
            |mark: Option<(String, chrono::DateTime<chrono::Utc>)>| mark.and_then(|(_, at)| (now - at).to_std().ok());
        Self {
            soonest_deadline_in: report
                .soonest_deadline
                .as_ref()
                .map(|(_, at)| (*at - now).num_milliseconds() as f64 / 1000.0),
            oldest_unarchived_age: age(report.oldest_unarchived),
            oldest_unsettled_age: age(report.oldest_unsettled),
            by_state: report.counts,
            conversations: report.conversations,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    org: String,
    state: String,
}

/// Appends the gauges of every org to `out`, from a registry made for this scrape (an
/// org removed since, or a state emptied, leaves no stale series behind).
pub(super) fn render(out: &mut String, ledgers: &[(String, LedgerGauges)]) {
    let recordings = Family::<StateLabels, Gauge>::default();
    let conversations = Family::<StateLabels, Gauge>::default();
    let oldest = Family::<OrgLabel, Gauge<f64, AtomicU64>>::default();
    let unsettled = Family::<OrgLabel, Gauge<f64, AtomicU64>>::default();
    let deadline = Family::<OrgLabel, Gauge<f64, AtomicU64>>::default();
    for (org, gauges) in ledgers {
        let labels = |state: &String| StateLabels {
            org: org.clone(),
            state: state.clone(),
        };
        for (state, n) in &gauges.by_state {
            recordings.get_or_create(&labels(state)).set(*n as i64);
        }
        for (state, n) in &gauges.conversations {
            conversations.get_or_create(&labels(state)).set(*n as i64);
        }
        oldest
            .get_or_create(&OrgLabel { org: org.clone() })
            .set(gauges.oldest_unarchived_age.map_or(0.0, |a| a.as_secs_f64()));
        unsettled
            .get_or_create(&OrgLabel { org: org.clone() })
            .set(gauges.oldest_unsettled_age.map_or(0.0, |a| a.as_secs_f64()));
        // No series without a deadline: a zero would read as "due now".
        if let Some(seconds) = gauges.soonest_deadline_in {
            deadline.get_or_create(&OrgLabel { org: org.clone() }).set(seconds);
        }
    }
    let replayed = Family::<OrgLabel, prometheus_client::metrics::counter::Counter>::default();
    for (org, n) in crate::ledger::postgres::replayed_writes() {
        replayed.get_or_create(&OrgLabel { org }).inc_by(n);
    }
    let mut registry = Registry::with_prefix(PREFIX);
    let mut described = super::Described::default();
    described.register(
        &mut registry,
        "ledger_writes_replayed",
        "Ledger writes tried again after a lost reply that found their row already as intended (PostgreSQL)",
        replayed,
    );
    described.register(
        &mut registry,
        "recordings",
        "Recordings in the ledger by org and state",
        recordings,
    );
    described.register(
        &mut registry,
        "conversations",
        "Discovered conversations by org and lifecycle state",
        conversations,
    );
    described.register(
        &mut registry,
        "oldest_unarchived_age_seconds",
        "Age of the oldest recording not yet archived, by org (0 if none)",
        oldest,
    );
    described.register(
        &mut registry,
        "oldest_unsettled_conversation_age_seconds",
        "Time since the end of the oldest conversation whose recordings are not all listed yet, by org (0 if none)",
        unsettled,
    );
    described.register(
        &mut registry,
        "soonest_deadline_seconds",
        "Time until the soonest archiveDate or deleteDate of a recording not yet archived, by org (negative once passed; no series without one)",
        deadline,
    );
    prometheus_client::encoding::prometheus_text::encode(out, &registry).expect("writing to a String does not fail");
    described.append_missing(out);
}
