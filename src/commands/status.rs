//! `status`: counts per state, the oldest recordings, the org's condition.

use super::*;

pub fn render_status(report: &StatusReport) -> String {
    let mut out = String::from("state        recordings\n");
    for state in State::ALL {
        out.push_str(&format!("{:<12} {}\n", state.as_str(), report.recordings_in(state)));
    }
    match &report.oldest_unarchived {
        Some((id, at)) => {
            let age = Utc::now() - *at;
            out.push_str(&format!(
                "oldest unarchived: {id} (ended {}, {}h{:02}m ago)\n",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                age.num_hours(),
                age.num_minutes() % 60
            ));
        }
        None => out.push_str("oldest unarchived: none\n"),
    }
    if let Some((id, at)) = &report.soonest_deadline {
        let left = *at - Utc::now();
        let when = if left < chrono::Duration::zero() {
            format!("passed {} ago", short_age((-left).to_std().unwrap_or_default()))
        } else {
            format!("in {}", short_age(left.to_std().unwrap_or_default()))
        };
        out.push_str(&format!(
            "soonest deadline: {id} ({}, {when})\n",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    if let Some((id, at)) = &report.oldest_unsettled {
        out.push_str(&format!(
            "oldest unsettled conversation: {id} (ended {} ago)\n",
            short_age((Utc::now() - *at).to_std().unwrap_or_default())
        ));
    }
    let conversations = |s| report.conversations_in(s);
    out.push_str(&format!(
        "conversations: {} active, {} ended not settled, {} settled, {} parked{}\n",
        conversations(ConversationState::Active),
        conversations(ConversationState::Ended) + conversations(ConversationState::Checking),
        conversations(ConversationState::Settled),
        conversations(ConversationState::Parked),
        if report.conversations_waiting() > 0 {
            " (the waiting ones are looked at again by the daemon or the next `run --once`)"
        } else {
            ""
        }
    ));
    out.push_str(&format!(
        "watermark: {}",
        report.watermark.map_or("none (no discovery pass yet)".into(), |w| w
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    ));
    if !report.parked_conversations.is_empty() {
        out.push_str(&format!(
            "\nparked conversations (recording list unusable): {}",
            report.parked_conversations.len()
        ));
        for (id, reason) in report.parked_conversations.iter().take(20) {
            out.push_str(&format!("\n  {}: {}", id.escape_debug(), reason.escape_debug()));
        }
    }
    if !report.failing_conversations.is_empty() {
        out.push_str(&format!(
            "\nconversations whose listing keeps failing (looked at again): {}",
            report.failing_conversations.len()
        ));
        for (id, reason) in report.failing_conversations.iter().take(20) {
            out.push_str(&format!("\n  {}: {}", id.escape_debug(), reason.escape_debug()));
        }
    }
    if let Some(failure) = org_failure(report) {
        out.push_str(&format!("\norg {failure}"));
    }
    out
}

/// `failing since … (age ago): reason` for an org the daemon last recorded as failing.
fn org_failure(report: &StatusReport) -> Option<String> {
    let state = report.org_state.as_ref()?;
    let reason = state.reason()?;
    Some(format!(
        "failing since {} ({} ago): {}",
        state.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        short_age((Utc::now() - state.since).to_std().unwrap_or_default()),
        reason.escape_debug()
    ))
}

/// One line of an org in `status` across orgs.
fn org_line(org: &str, report: &StatusReport) -> String {
    let waiting = [State::Discovered, State::Transcoding, State::Retrying, State::Uploading]
        .into_iter()
        .map(|s| report.recordings_in(s))
        .sum::<u64>();
    let oldest = report.oldest_unarchived.as_ref().map_or("-".to_owned(), |(_, at)| {
        short_age((Utc::now() - *at).to_std().unwrap_or_default())
    });
    format!(
        "{:<24} {:<8} {:>9} {:>8} {:>7} {:>7} {:>14} {:>17}",
        org,
        report.org_state.as_ref().map_or("-", |s| s.label()),
        report.recordings_in(State::Archived),
        waiting,
        report.recordings_in(State::Failed),
        report.recordings_in(State::Parked),
        report.conversations_waiting(),
        oldest
    )
}

/// `status --json`: every value under a name (no positional pairs), for scripts.
fn status_json(report: &StatusReport) -> serde_json::Value {
    let oldest = report.oldest_unarchived.as_ref().map(|(id, at)| {
        serde_json::json!({
            "recording_id": id,
            "since": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "age_seconds": (Utc::now() - *at).num_seconds().max(0),
        })
    });
    let parked: Vec<_> = report
        .parked_conversations
        .iter()
        .map(|(id, reason)| serde_json::json!({"conversation_id": id, "reason": reason}))
        .collect();
    let failing: Vec<_> = report
        .failing_conversations
        .iter()
        .map(|(id, reason)| serde_json::json!({"conversation_id": id, "reason": reason}))
        .collect();
    let mark = |mark: &Option<(String, chrono::DateTime<Utc>)>, id: &str| {
        mark.as_ref().map(|(key, at)| {
            serde_json::json!({
                id: key,
                "at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "seconds_from_now": (*at - Utc::now()).num_seconds(),
            })
        })
    };
    serde_json::json!({
        "recordings": report.counts,
        "conversations": report.conversations,
        "conversations_waiting": report.conversations_waiting(),
        "oldest_unarchived": oldest,
        "watermark": report.watermark.map(|w| w.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        "parked_conversations": parked,
        "failing_conversations": failing,
        "soonest_deadline": mark(&report.soonest_deadline, "recording_id"),
        "oldest_unsettled": mark(&report.oldest_unsettled, "conversation_id"),
        "org_state": report.org_state,
    })
}

/// `status [--org NAME] [--json]`: one org in full; several orgs a line each (JSON:
/// `{"orgs": {NAME: …}}`).
pub async fn status(settings: &LedgerSettings, org: Option<&str>, json: bool) -> ExitCode {
    let views = match org_views(settings, org, true).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let mut reports = Vec::with_capacity(views.len());
    for (org, view) in &views {
        match view.status().await {
            Ok(report) => reports.push((org.clone(), report)),
            Err(e) => return failure(e),
        }
    }
    match reports.as_slice() {
        [(_, report)] if json => print_json(&status_json(report)),
        [(_, report)] => println!("{}", render_status(report)),
        _ if json => {
            let orgs: serde_json::Map<String, serde_json::Value> =
                reports.iter().map(|(org, r)| (org.clone(), status_json(r))).collect();
            print_json(&serde_json::json!({ "orgs": orgs }));
        }
        _ => {
            println!(
                "{:<24} {:<8} {:>9} {:>8} {:>7} {:>7} {:>14} {:>17}",
                "org", "state", "archived", "waiting", "failed", "parked", "conv. waiting", "oldest unarchived"
            );
            for (org, report) in &reports {
                println!("{}", org_line(org, report));
            }
            for (org, report) in &reports {
                if let Some(failure) = org_failure(report) {
                    println!("{org}: {failure}");
                }
            }
        }
    }
    ExitCode::SUCCESS
}
