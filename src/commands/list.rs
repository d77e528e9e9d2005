//! `list`: the recordings of one state, a line each.

use super::*;

/// `list --state failed|parked|waiting [--json] [--limit N]`: one line per recording
/// (id, conversation, state, attempts, age, time to its deadline, reason), oldest first.
pub async fn list(
    settings: &LedgerSettings,
    org: Option<&str>,
    filter: ListFilter,
    json: bool,
    limit: u32,
) -> ExitCode {
    let views = match org_views(settings, org, true).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let mut rows = Vec::new();
    for (org, view) in &views {
        match view.list(filter, limit).await {
            Ok(found) => rows.extend(found.into_iter().map(|r| (org.clone(), r))),
            Err(e) => return failure(e),
        }
        // A conversation whose listing keeps failing waits too, with its recordings
        // unknown: a row of its own, without a recording id.
        if filter == ListFilter::Waiting {
            match view.status().await {
                Ok(report) => rows.extend(report.failing_conversations.into_iter().map(|(id, reason)| {
                    let row = RecordingRow {
                        recording_id: "-".into(),
                        conversation_id: id,
                        state: "listing".into(),
                        reason: Some(reason),
                        attempts: 0,
                        start_time: None,
                        discovered_at: Utc::now(),
                        updated_at: Utc::now(),
                        deadline: None,
                        handoff: None,
                    };
                    (org.clone(), row)
                })),
                Err(e) => return failure(e),
            }
        }
    }
    // Oldest first across orgs, as within one.
    rows.sort_by_key(|(_, r)| (r.start_time.unwrap_or(r.discovered_at), r.recording_id.clone()));
    rows.truncate(limit as usize);
    if json {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|(org, row)| {
                let mut value = serde_json::to_value(row).expect("rows serialize");
                value["org"] = org.clone().into();
                value
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows).expect("rows serialize"));
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<16} {:<38} {:<38} {:<11} {:>8} {:>8} {:>9}  reason",
        "org", "recording", "conversation", "state", "attempts", "age", "deadline"
    );
    for (org, row) in &rows {
        let since = row.start_time.unwrap_or(row.discovered_at);
        let age = (Utc::now() - since).to_std().unwrap_or_default();
        // Time left before the source needs a restore or is deleted ("-" when unknown,
        // "passed" once it has).
        let deadline = row
            .deadline
            .map_or("-".to_owned(), |at| match (at - Utc::now()).to_std() {
                Ok(left) => short_age(left),
                Err(_) => "passed".to_owned(),
            });
        println!(
            "{:<16} {:<38} {:<38} {:<11} {:>8} {:>8} {:>9}  {}",
            org,
            row.recording_id.escape_debug(),
            row.conversation_id.escape_debug(),
            row.state,
            row.attempts,
            short_age(age),
            deadline,
            // A handed-off recording: what was done to its deleteDate in Genesys.
            row.handoff
                .as_ref()
                .map(describe_handoff)
                .or(row.reason.clone())
                .unwrap_or_default()
                .escape_debug()
        );
    }
    if rows.len() as u32 == limit {
        println!("(first {limit}; --limit shows more)");
    }
    ExitCode::SUCCESS
}

/// One line of what the retention hand-off did: the deleteDate before and after, or
/// why it was left as it was.
fn describe_handoff(h: &crate::ledger::Handoff) -> String {
    let date = |d: Option<chrono::DateTime<Utc>>| {
        d.map_or("none".to_owned(), |d| {
            d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
    };
    let at = h.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match h.new {
        Some(_) => format!("deleteDate {} -> {} (set {at})", date(h.old), date(h.new)),
        None => format!("deleteDate {} left as it was: {} ({at})", date(h.old), h.note),
    }
}
