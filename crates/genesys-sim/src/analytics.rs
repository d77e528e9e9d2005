//! The analytics details query: intervals, filters, paging, as the platform answers it.

use super::catalog::{Catalog, SimConversation};
use super::routes::*;
use crate::endpoint::Endpoint;
use crate::wire::QueryFilter;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct QueryBody {
    interval: String,
    #[serde(default)]
    paging: Option<crate::wire::PagingSpec>,
    #[serde(default)]
    segment_filters: Vec<QueryFilter>,
    #[serde(default)]
    conversation_filters: Vec<QueryFilter>,
}

pub(super) fn parse_interval(interval: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    interval.split_once('/').and_then(|(a, b)| {
        Some((
            DateTime::parse_from_rfc3339(a).ok()?.with_timezone(&Utc),
            DateTime::parse_from_rfc3339(b).ok()?.with_timezone(&Utc),
        ))
    })
}

/// `at` truncated to a multiple of `granularity` since the epoch (zero: as it is).
pub(super) fn coarse(at: DateTime<Utc>, granularity: std::time::Duration) -> DateTime<Utc> {
    let step = granularity.as_millis() as i64;
    if step <= 0 {
        return at;
    }
    let ms = at.timestamp_millis();
    DateTime::from_timestamp_millis(ms - ms.rem_euclid(step)).unwrap_or(at)
}

/// The values a conversation has for an analytics dimension at `now` (none: absent).
/// `recording` is the *audio* flag and `screenRecording` the screen one, as on the
/// platform; both are set from the start of the conversation (a recording was started).
pub(super) fn dimension(catalog: &Catalog, c: &SimConversation, name: &str, now: DateTime<Utc>) -> Vec<String> {
    let has = |media: &str| c.recordings.iter().any(|id| catalog.recordings[id].media == media);
    let flag = |on: bool| if on { vec!["true".to_owned()] } else { Vec::new() };
    match name {
        "conversationId" => vec![c.id.clone()],
        "recording" => flag(has("audio")),
        "screenRecording" => flag(has("screen")),
        "conversationEnd" if c.end <= now => vec![c.end.to_rfc3339()],
        "originatingDirection" => vec!["inbound".into()],
        "divisionId" => vec!["00000000-0000-0000-0000-0000000d1v15".into()],
        _ => Vec::new(),
    }
}

pub(super) fn matches_filters(
    catalog: &Catalog,
    c: &SimConversation,
    filters: &[QueryFilter],
    now: DateTime<Utc>,
) -> bool {
    filters
        .iter()
        .all(|f| f.holds(&|d: &str| dimension(catalog, c, d, now)))
}

/// A conversation as the analytics answer shows it: no `conversationEnd` while it goes on.
pub(super) fn analytics_row(catalog: &Catalog, c: &SimConversation, now: DateTime<Utc>) -> Value {
    if catalog.bad_rows.contains(&c.id) {
        return json!({"conversationId": c.id, "conversationStart": "yesterday", "participants": []});
    }
    let mut row = json!({
        "conversationId": c.id,
        "conversationStart": c.start,
        "originatingDirection": "inbound",
        "participants": [],
    });
    if c.end <= now {
        row["conversationEnd"] = json!(c.end);
    }
    row
}

pub(super) async fn analytics(State(sim): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let ep = Endpoint::Analytics;
    let usage = match sim.gate(ep, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let bad = |message: &str| {
        sim.json(
            ep,
            StatusCode::BAD_REQUEST,
            usage,
            error_body(StatusCode::BAD_REQUEST, "bad.request", message),
        )
    };
    let Ok(query) = serde_json::from_slice::<QueryBody>(&body) else {
        return bad("The request body could not be parsed.");
    };
    let Some((start, end)) = parse_interval(&query.interval) else {
        return bad("interval must be start/end in ISO-8601");
    };
    let now = Utc::now();
    if end - start > chrono::Duration::days(7) {
        return bad("The interval may not exceed 7 days.");
    }
    if start < now - chrono::Duration::days(35) {
        return bad("The interval may not start more than 35 days ago; use the analytics jobs API.");
    }
    let paging = query.paging.unwrap_or_default();
    if paging.page_size == 0 || paging.page_size > 100 || paging.page_number == 0 {
        return bad("pageSize must be 1 to 100 and pageNumber at least 1");
    }
    let skip = ((paging.page_number - 1) * paging.page_size) as usize;
    if skip >= sim.config.max_results {
        return bad(&format!("Pagination may not exceed {} results", sim.config.max_results));
    }
    // A platform that matches the bounds more coarsely than asked (`interval_granularity`).
    let (start, end) = (
        coarse(start, sim.config.interval_granularity),
        coarse(end, sim.config.interval_granularity),
    );
    let catalog = sim.catalog.lock().unwrap();
    let matching: Vec<_> = catalog
        .conversations
        .iter()
        .filter(|c| c.start >= start && c.start < end && c.start <= now && c.visible_at <= now)
        .filter(|c| matches_filters(&catalog, c, &query.segment_filters, now))
        .filter(|c| matches_filters(&catalog, c, &query.conversation_filters, now))
        .collect();
    let take = (paging.page_size as usize).min(sim.config.max_results - skip);
    let page: Vec<Value> = matching
        .iter()
        .skip(skip)
        .take(take)
        .map(|c| analytics_row(&catalog, c, now))
        .collect();
    let mut answer = json!({"totalHits": matching.len()});
    if !page.is_empty() {
        answer["conversations"] = Value::Array(page);
    }
    drop(catalog);
    sim.json(ep, StatusCode::OK, usage, answer)
}
