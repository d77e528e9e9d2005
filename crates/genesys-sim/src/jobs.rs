//! The analytics jobs API: submit, state, results by cursor, data availability.

use super::SimState;
use super::analytics::{analytics_row, matches_filters, parse_interval};
use super::routes::*;
use crate::endpoint::Endpoint;
use crate::wire::QueryFilter;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use tokio::time::Instant;

/// An analytics job: its rows are fixed when it is submitted.
pub struct SimJob {
    ready_at: Instant,
    rows: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct JobBody {
    interval: String,
    #[serde(default)]
    segment_filters: Vec<QueryFilter>,
    #[serde(default)]
    conversation_filters: Vec<QueryFilter>,
}

impl SimState {
    pub(super) fn data_availability(&self) -> DateTime<Utc> {
        Utc::now() - chrono::Duration::from_std(self.config.data_availability_lag).unwrap_or_default()
    }
}

pub(super) async fn submit_job(State(sim): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let ep = Endpoint::AnalyticsJobs;
    let usage = match sim.gate(ep, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let bad = |message: &str| {
        let body = error_body(StatusCode::BAD_REQUEST, "bad.request", message);
        sim.json(ep, StatusCode::BAD_REQUEST, usage, body)
    };
    let Ok(query) = serde_json::from_slice::<JobBody>(&body) else {
        return bad("The request body could not be parsed.");
    };
    let Some((start, end)) = parse_interval(&query.interval) else {
        return bad("interval must be start/end in ISO-8601");
    };
    let (now, available) = (Utc::now(), sim.data_availability());
    let rows: Vec<Value> = {
        let catalog = sim.catalog.lock().unwrap();
        // Conversations with activity in the interval, as far as the data lake has them.
        catalog
            .conversations
            .iter()
            .filter(|c| c.start < end && c.end >= start && c.start < available && c.visible_at <= now)
            .filter(|c| matches_filters(&catalog, c, &query.segment_filters, now))
            .filter(|c| matches_filters(&catalog, c, &query.conversation_filters, now))
            .map(|c| analytics_row(&catalog, c, now))
            .collect()
    };
    let id = format!("job-{:016x}", sim.rng.lock().unwrap().u64(..));
    sim.jobs.lock().unwrap().insert(
        id.clone(),
        SimJob {
            ready_at: Instant::now() + sim.config.job_time,
            rows,
        },
    );
    sim.json(ep, StatusCode::ACCEPTED, usage, json!({"jobId": id}))
}

pub(super) async fn job_status(State(sim): State<Shared>, Path(job_id): Path<String>, headers: HeaderMap) -> Response {
    let ep = Endpoint::AnalyticsJobs;
    let usage = match sim.gate(ep, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let state = match sim.jobs.lock().unwrap().get(&job_id) {
        None => None,
        Some(job) if Instant::now() < job.ready_at => Some("QUEUED"),
        Some(_) => Some("FULFILLED"),
    };
    match state {
        Some(state) => sim.json(ep, StatusCode::OK, usage, json!({"state": state})),
        None => sim.json(
            ep,
            StatusCode::NOT_FOUND,
            usage,
            error_body(StatusCode::NOT_FOUND, "not.found", "job not found"),
        ),
    }
}

pub(super) async fn job_results(
    State(sim): State<Shared>,
    Path(job_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let ep = Endpoint::AnalyticsJobs;
    let usage = match sim.gate(ep, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    const PAGE: usize = 100;
    let offset: usize = params.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let answer = {
        let jobs = sim.jobs.lock().unwrap();
        match jobs.get(&job_id) {
            Some(job) if Instant::now() >= job.ready_at => {
                let page: Vec<Value> = job.rows.iter().skip(offset).take(PAGE).cloned().collect();
                let mut answer = json!({"conversations": page, "dataAvailabilityDate": sim.data_availability()});
                if offset + PAGE < job.rows.len() {
                    answer["cursor"] = json!((offset + PAGE).to_string());
                }
                Some(answer)
            }
            _ => None,
        }
    };
    match answer {
        Some(answer) => sim.json(ep, StatusCode::OK, usage, answer),
        None => sim.json(
            ep,
            StatusCode::BAD_REQUEST,
            usage,
            error_body(StatusCode::BAD_REQUEST, "bad.request", "job is not fulfilled"),
        ),
    }
}

pub(super) async fn job_availability(State(sim): State<Shared>, headers: HeaderMap) -> Response {
    let ep = Endpoint::AnalyticsJobs;
    let usage = match sim.gate(ep, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let body = json!({"dataAvailabilityDate": sim.data_availability()});
    sim.json(ep, StatusCode::OK, usage, body)
}
