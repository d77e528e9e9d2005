//! The simulator's HTTP surface: the four API endpoints, the media host and `/sim/stats`.
//!
//! Every API call passes the same gate, in the order the platform applies it: latency,
//! bearer token (401 if unknown or expired), the per-token and per-endpoint sliding
//! windows (429, normalized or bare), then injected faults (5xx, dropped connection)
//! for calls that were admitted and counted.

use super::SimState;
use super::catalog::{Catalog, SimConversation, SimRecording};
use super::hostile::{BadRecording, METADATA_URL};
use super::media::{chunk, chunk_count, seed_of, signature};
use super::window::{SlidingWindow, Usage};
use crate::genesys::Endpoint;
use crate::genesys::model::SegmentFilter;
use crate::ratelimit::headers::{ALLOWED, COUNT, RESET};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use futures_util::stream;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::time::Instant;

type Shared = Arc<SimState>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/api/v2/analytics/conversations/details/query", post(analytics))
        .route(
            "/api/v2/conversations/{conversation_id}/recordingmetadata",
            get(metadata),
        )
        .route(
            "/api/v2/conversations/{conversation_id}/recordings/{recording_id}",
            get(recording).put(super::retention::update),
        )
        .route(
            "/api/v2/conversations/{conversation_id}/recordings",
            get(conversation_recordings),
        )
        .route("/api/v2/analytics/conversations/details/jobs", post(submit_job))
        .route(
            "/api/v2/analytics/conversations/details/jobs/availability",
            get(job_availability),
        )
        .route("/api/v2/analytics/conversations/details/jobs/{job_id}", get(job_status))
        .route(
            "/api/v2/analytics/conversations/details/jobs/{job_id}/results",
            get(job_results),
        )
        .route("/api/v2/organizations/limits/namespaces/platform.api", get(org_limits))
        .route("/api/v2/organizations/me", get(organization))
        .route("/media/{recording_id}", get(media))
        .route("/redirect/{recording_id}", get(redirect))
        .route("/sim/stats", get(stats))
        .with_state(state)
}

/// The rate limits and tokens, under one lock so admission is atomic.
pub struct Limits {
    /// Issued access tokens and when they expire.
    pub tokens: HashMap<String, Instant>,
    pub per_token: HashMap<String, SlidingWindow>,
    pub per_endpoint: HashMap<Endpoint, SlidingWindow>,
}

fn error_body(status: StatusCode, code: &str, message: &str) -> Value {
    json!({"message": message, "code": code, "status": status.as_u16(), "contextId": "sim", "details": [], "errors": []})
}

fn usage_headers(usage: Option<Usage>, enabled: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let (Some(u), true) = (usage, enabled) {
        headers.insert(COUNT, HeaderValue::from(u.count));
        headers.insert(ALLOWED, HeaderValue::from(u.allowed));
        headers.insert(RESET, HeaderValue::from(u.reset.as_secs_f64().ceil() as u64));
    }
    headers
}

impl SimState {
    fn finish(&self, endpoint: &str, response: Response) -> Response {
        self.stats.record(endpoint, response.status().as_str());
        response
    }

    pub(super) fn json(&self, endpoint: Endpoint, status: StatusCode, usage: Option<Usage>, body: Value) -> Response {
        let headers = usage_headers(usage, self.config.ratelimit_headers);
        self.finish(endpoint.as_str(), (status, headers, axum::Json(body)).into_response())
    }

    fn roll(&self) -> f64 {
        self.rng.lock().unwrap().f64()
    }

    /// Latency, authentication, rate limits and faults. `Ok` carries the per-token usage
    /// for the `inin-ratelimit-*` headers.
    pub(super) async fn gate(&self, endpoint: Endpoint, headers: &HeaderMap) -> Result<Option<Usage>, Response> {
        if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
        }
        while self.faults.silent.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        if self.faults.outage.load(Ordering::SeqCst) {
            let status = StatusCode::SERVICE_UNAVAILABLE;
            let body = error_body(status, "service.unavailable", "The service is temporarily unavailable.");
            return Err(self.json(endpoint, status, None, body));
        }
        if self.faults.storm.load(Ordering::SeqCst) {
            let status = StatusCode::TOO_MANY_REQUESTS;
            let body = error_body(status, "too.many.requests", "Rate limit exceeded the maximum");
            return Err(self.json(endpoint, status, None, body));
        }
        let now = Instant::now();
        let token = if endpoint == Endpoint::Token {
            None
        } else {
            let bearer = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_owned);
            let limits = self.limits.lock().unwrap();
            match bearer.filter(|t| limits.tokens.get(t).is_some_and(|exp| *exp > now)) {
                Some(t) => Some(t),
                None => {
                    drop(limits);
                    let body = error_body(
                        StatusCode::UNAUTHORIZED,
                        "bad.credentials",
                        "Invalid login credentials.",
                    );
                    return Err(self.json(endpoint, StatusCode::UNAUTHORIZED, None, body));
                }
            }
        };
        let (admitted, usage) = {
            let mut guard = self.limits.lock().unwrap();
            let limits = &mut *guard;
            let (window, token_limit) = (self.config.window, self.config.token_limit);
            // Per access token, as documented; or every token of the client together.
            let counted = |t: &String| match self.config.limit_per_client {
                true => self.config.client_id.clone(),
                false => t.clone(),
            };
            let mut token_window = token.as_ref().map(|t| {
                limits
                    .per_token
                    .entry(counted(t))
                    .or_insert_with(|| SlidingWindow::new(token_limit, window))
            });
            let endpoint_window = self.config.endpoint_limits.get(&endpoint).map(|limit| {
                limits
                    .per_endpoint
                    .entry(endpoint)
                    .or_insert_with(|| SlidingWindow::new(*limit, window))
            });
            let token_check = token_window.as_mut().map_or(Ok(()), |w| w.check(now));
            let mut endpoint_window = endpoint_window;
            let endpoint_check = endpoint_window.as_mut().map_or(Ok(()), |w| w.check(now));
            match (token_check, endpoint_check) {
                (Ok(()), Ok(())) => {
                    if let Some(w) = endpoint_window.as_mut() {
                        w.hit(now);
                    }
                    (Ok(()), token_window.map(|w| w.hit(now)))
                }
                (t, e) => {
                    let wait = t.err().into_iter().chain(e.err()).max().unwrap_or_default();
                    (Err(wait), token_window.map(|w| w.usage(now)))
                }
            }
        };
        if let Err(wait) = admitted {
            return Err(self.refuse(endpoint, usage, wait));
        }
        if self.roll() < self.config.error_share {
            let status = [
                StatusCode::BAD_GATEWAY,
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::GATEWAY_TIMEOUT,
            ][self.rng.lock().unwrap().usize(0..3)];
            let body = error_body(status, "service.unavailable", "The service is temporarily unavailable.");
            return Err(self.json(endpoint, status, usage, body));
        }
        if self.roll() < self.config.drop_share {
            return Err(self.dropped(endpoint));
        }
        Ok(usage)
    }

    /// A 429: normalized (Retry-After + a body naming the wait) on `retry_after_share`
    /// of refusals, bare (neither) on the rest.
    fn refuse(&self, endpoint: Endpoint, usage: Option<Usage>, wait: std::time::Duration) -> Response {
        let secs = (wait.as_secs_f64().ceil() as u64).max(1);
        let mut headers = usage_headers(usage, self.config.ratelimit_headers);
        let body = if self.roll() < self.config.retry_after_share {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            error_body(
                StatusCode::TOO_MANY_REQUESTS,
                "too.many.requests.retry.after",
                &format!("Rate limit exceeded the maximum. Retry the request in [{secs}] seconds"),
            )
        } else {
            error_body(
                StatusCode::TOO_MANY_REQUESTS,
                "too.many.requests",
                "Rate limit exceeded the maximum",
            )
        };
        self.finish(
            endpoint.as_str(),
            (StatusCode::TOO_MANY_REQUESTS, headers, axum::Json(body)).into_response(),
        )
    }

    /// Headers and a few bytes, then the connection breaks.
    fn dropped(&self, endpoint: Endpoint) -> Response {
        self.stats.record(endpoint.as_str(), "dropped");
        let parts: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"{\"partial\":")),
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "simulated drop",
            )),
        ];
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, "4096")
            .body(Body::from_stream(stream::iter(parts)))
            .expect("static response")
    }

    fn metadata_json(&self, r: &super::catalog::SimRecording) -> Value {
        let state = r.state_at(Utc::now());
        let mut v = json!({
            "id": r.id,
            "conversationId": r.conversation_id,
            "name": format!("{} recording", r.media),
            "path": format!("/recordings/{}", r.id),
            "startTime": r.start,
            "endTime": r.end,
            "media": r.media,
            "mediaSubtype": if r.media == "screen" { "Screen" } else { "Trunk" },
            "fileState": state,
            "selfUri": format!("/api/v2/conversations/{}/recordings/{}", r.conversation_id, r.id),
        });
        // Every recording carries both deadlines (2026-12 facts).
        v["archiveDate"] = json!(r.archive_date);
        v["deleteDate"] = json!(r.delete_date);
        v
    }

    /// A signed URL for one file of a recording: `part` (an index) when it has several.
    fn media_url(&self, recording_id: &str, part: Option<usize>) -> String {
        let ttl = chrono::Duration::from_std(self.config.url_ttl).unwrap_or(chrono::Duration::hours(1));
        let ttl = if self.roll() < self.config.stale_url_share {
            -chrono::Duration::seconds(1)
        } else {
            ttl
        };
        let expires = (Utc::now() + ttl).timestamp_millis();
        let (name, part_query) = match part {
            Some(i) => (format!("{recording_id}#{i}"), format!("&part={i}")),
            None => (recording_id.to_owned(), String::new()),
        };
        let sig = signature(&self.signing_secret, &name, expires);
        format!(
            "{}/media/{recording_id}?expires={expires}&signature={sig}{part_query}",
            self.base_url
        )
    }
}

async fn token(State(sim): State<Shared>, headers: HeaderMap, body: String) -> Response {
    if let Err(refused) = sim.gate(Endpoint::Token, &headers).await {
        return refused;
    }
    let expected = format!("{}:{}", sim.config.client_id, sim.config.client_secret);
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| base64_decode(b64.trim()));
    let grant = body.split('&').any(|kv| kv == "grant_type=client_credentials");
    if presented.as_deref() != Some(expected.as_bytes()) || !grant {
        let body = json!({"error": "invalid_client", "description": "client credentials are invalid"});
        return sim.finish("token", (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response());
    }
    let token = {
        let mut rng = sim.rng.lock().unwrap();
        (0..4).map(|_| format!("{:016x}", rng.u64(..))).collect::<String>()
    };
    sim.limits
        .lock()
        .unwrap()
        .tokens
        .insert(token.clone(), Instant::now() + sim.config.token_lifetime);
    let body =
        json!({"access_token": token, "token_type": "bearer", "expires_in": sim.config.token_lifetime.as_secs()});
    sim.finish("token", (StatusCode::OK, axum::Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryBody {
    interval: String,
    #[serde(default)]
    paging: Option<crate::genesys::model::Paging>,
    #[serde(default)]
    segment_filters: Vec<SegmentFilter>,
    #[serde(default)]
    conversation_filters: Vec<SegmentFilter>,
}

fn parse_interval(interval: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    interval.split_once('/').and_then(|(a, b)| {
        Some((
            DateTime::parse_from_rfc3339(a).ok()?.with_timezone(&Utc),
            DateTime::parse_from_rfc3339(b).ok()?.with_timezone(&Utc),
        ))
    })
}

/// `at` truncated to a multiple of `granularity` since the epoch (zero: as it is).
fn coarse(at: DateTime<Utc>, granularity: std::time::Duration) -> DateTime<Utc> {
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
fn dimension(catalog: &Catalog, c: &SimConversation, name: &str, now: DateTime<Utc>) -> Vec<String> {
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

fn matches_filters(catalog: &Catalog, c: &SimConversation, filters: &[SegmentFilter], now: DateTime<Utc>) -> bool {
    filters
        .iter()
        .all(|f| f.holds(&|d: &str| dimension(catalog, c, d, now)))
}

/// A conversation as the analytics answer shows it: no `conversationEnd` while it goes on.
fn analytics_row(catalog: &Catalog, c: &SimConversation, now: DateTime<Utc>) -> Value {
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

async fn analytics(State(sim): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
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
    let paging = query.paging.unwrap_or(crate::genesys::model::Paging {
        page_size: 25,
        page_number: 1,
    });
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

/// An analytics job: its rows are fixed when it is submitted.
pub struct SimJob {
    ready_at: Instant,
    rows: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobBody {
    interval: String,
    #[serde(default)]
    segment_filters: Vec<SegmentFilter>,
    #[serde(default)]
    conversation_filters: Vec<SegmentFilter>,
}

impl SimState {
    fn data_availability(&self) -> DateTime<Utc> {
        Utc::now() - chrono::Duration::from_std(self.config.data_availability_lag).unwrap_or_default()
    }
}

async fn submit_job(State(sim): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
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

async fn job_status(State(sim): State<Shared>, Path(job_id): Path<String>, headers: HeaderMap) -> Response {
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

async fn job_results(
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

async fn job_availability(State(sim): State<Shared>, headers: HeaderMap) -> Response {
    let ep = Endpoint::AnalyticsJobs;
    let usage = match sim.gate(ep, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let body = json!({"dataAvailabilityDate": sim.data_availability()});
    sim.json(ep, StatusCode::OK, usage, body)
}

async fn org_limits(State(sim): State<Shared>, headers: HeaderMap) -> Response {
    let ep = Endpoint::Limits;
    let usage = match sim.gate(ep, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let body = json!({"entities": [
        {"key": "client.credentials.token.rate.per.minute", "namespace": "platform.api", "value": sim.config.token_limit},
        {"key": "token.creation.rate.per.minute", "namespace": "platform.api", "value": 1200},
    ]});
    sim.json(ep, StatusCode::OK, usage, body)
}

/// Who the org is; any valid token may ask (no permission needed).
async fn organization(State(sim): State<Shared>, headers: HeaderMap) -> Response {
    let ep = Endpoint::Organization;
    let usage = match sim.gate(ep, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let body = json!({"id": sim.org_id, "name": sim.config.org_name, "state": "active"});
    sim.json(ep, StatusCode::OK, usage, body)
}

async fn metadata(State(sim): State<Shared>, Path(conversation_id): Path<String>, headers: HeaderMap) -> Response {
    let ep = Endpoint::RecordingMetadata;
    let usage = match sim.gate(ep, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let ids = match sim.listed_ids(ep, usage, &conversation_id) {
        Ok(ids) => ids,
        Err(answer) => return *answer,
    };
    let catalog = sim.catalog.lock().unwrap();
    let list: Vec<Value> = ids
        .iter()
        .map(|id| sim.metadata_json(&catalog.recordings[id]))
        .collect();
    drop(catalog);
    sim.json(ep, StatusCode::OK, usage, Value::Array(list))
}

/// One recording as the recording calls answer it.
enum Answer {
    /// Transcoding: no `mediaUris`, the estimate of the time left.
    Transcoding(Value),
    /// Everything else: with `mediaUris` when it is downloadable.
    Described(Value),
}

impl SimState {
    pub(super) fn not_found(&self, ep: Endpoint, usage: Option<Usage>, message: &str) -> Response {
        self.json(
            ep,
            StatusCode::NOT_FOUND,
            usage,
            error_body(StatusCode::NOT_FOUND, "not.found", message),
        )
    }

    fn bad_listing(
        &self,
        ep: Endpoint,
        usage: Option<Usage>,
        bad: super::hostile::BadListing,
        conversation_id: &str,
    ) -> Response {
        let headers = usage_headers(usage, self.config.ratelimit_headers);
        let response = (
            StatusCode::OK,
            headers,
            [(header::CONTENT_TYPE, "application/json")],
            bad.body(conversation_id),
        );
        self.finish(ep.as_str(), response.into_response())
    }

    /// The ids of the recordings a conversation lists now, or the answer to give
    /// instead (a hostile listing, an unknown conversation).
    fn listed_ids(
        &self,
        ep: Endpoint,
        usage: Option<Usage>,
        conversation_id: &str,
    ) -> Result<Vec<String>, Box<Response>> {
        let catalog = self.catalog.lock().unwrap();
        if let Some(bad) = catalog.bad_listings.get(conversation_id).copied() {
            drop(catalog);
            return Err(Box::new(self.bad_listing(ep, usage, bad, conversation_id)));
        }
        let Some(conversation) = catalog.conversation(conversation_id) else {
            drop(catalog);
            return Err(Box::new(self.not_found(ep, usage, "conversation not found")));
        };
        Ok(catalog
            .listed(conversation, Utc::now())
            .iter()
            .map(|r| r.id.clone())
            .collect())
    }

    /// Describes a listed recording; the first request for one that needs transcoding
    /// starts its transcoding.
    fn answer(&self, rec: &mut SimRecording, now: Instant) -> Answer {
        let state = rec.state_at(Utc::now());
        if rec.needs_transcode && state == "AVAILABLE" {
            let ready_at = *rec.ready_at.get_or_insert(now + self.config.transcode_time);
            if now < ready_at {
                let mut body = self.metadata_json(rec);
                body["estimatedTranscodeTimeMs"] = json!((ready_at - now).as_millis() as u64);
                return Answer::Transcoding(body);
            }
        }
        let mut body = self.metadata_json(rec);
        if state == "AVAILABLE" {
            let uri = match rec.hostile {
                Some(BadRecording::ForeignHost) => METADATA_URL.to_owned(),
                Some(BadRecording::RedirectElsewhere) => format!("{}/redirect/{}", self.base_url, rec.id),
                Some(BadRecording::PlainHttp) => "http://media.example.net/recordings/x.webm".to_owned(),
                _ => self.media_url(&rec.id, None),
            };
            body["mediaUris"] = if rec.hostile == Some(BadRecording::EmptyMediaUris) {
                json!({})
            } else if rec.parts.len() > 1 {
                // One entry per monitor or segment; the key names are the platform's
                // (undocumented): the client must not rely on them.
                (0..rec.parts.len())
                    .map(|i| (i.to_string(), json!({"mediaUri": self.media_url(&rec.id, Some(i))})))
                    .collect::<serde_json::Map<String, Value>>()
                    .into()
            } else {
                json!({"S": {"mediaUri": uri}})
            };
            body["outputSizeInBytes"] = json!(rec.size + self.config.declared_size_skew);
            body["estimatedTranscodeTimeMs"] = json!(0);
            body["actualTranscodeTimeMs"] = json!(if rec.needs_transcode {
                self.config.transcode_time.as_millis() as u64
            } else {
                0
            });
        }
        Answer::Described(body)
    }
}

fn format_is_known(params: &HashMap<String, String>) -> bool {
    let format = params.get("formatId").map_or("WEBM", String::as_str);
    ["WEBM", "WAV", "MP3", "OGG_VORBIS", "OGG_OPUS", "NONE"].contains(&format)
}

async fn recording(
    State(sim): State<Shared>,
    Path((conversation_id, recording_id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let ep = Endpoint::Recording;
    let usage = match sim.gate(ep, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if !format_is_known(&params) {
        return sim.json(
            ep,
            StatusCode::BAD_REQUEST,
            usage,
            error_body(StatusCode::BAD_REQUEST, "bad.request", "unknown formatId"),
        );
    }
    let mut catalog = sim.catalog.lock().unwrap();
    let listed = catalog
        .conversation(&conversation_id)
        .is_some_and(|c| c.end <= Utc::now());
    let Some(rec) = catalog
        .recordings
        .get_mut(&recording_id)
        .filter(|r| r.conversation_id == conversation_id && listed)
    else {
        drop(catalog);
        return sim.not_found(ep, usage, "recording not found");
    };
    let answer = sim.answer(rec, Instant::now());
    drop(catalog);
    match answer {
        Answer::Transcoding(body) => {
            let short = json!({
                "id": body["id"], "conversationId": body["conversationId"], "media": body["media"],
                "estimatedTranscodeTimeMs": body["estimatedTranscodeTimeMs"],
            });
            sim.json(ep, StatusCode::ACCEPTED, usage, short)
        }
        Answer::Described(body) => sim.json(ep, StatusCode::OK, usage, body),
    }
}

/// Every recording of a conversation, in one call. Like the platform, it waits up to
/// `maxWaitMs` (default 5000) for the recordings it starts transcoding: 200 when all are
/// ready by then, else 202 with the ready ones carrying their `mediaUris`.
async fn conversation_recordings(
    State(sim): State<Shared>,
    Path(conversation_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let ep = Endpoint::ConversationRecordings;
    let usage = match sim.gate(ep, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if !format_is_known(&params) {
        let body = error_body(StatusCode::BAD_REQUEST, "bad.request", "unknown formatId");
        return sim.json(ep, StatusCode::BAD_REQUEST, usage, body);
    }
    let ids = match sim.listed_ids(ep, usage, &conversation_id) {
        Ok(ids) => ids,
        Err(answer) => return *answer,
    };
    let max_wait = params
        .get("maxWaitMs")
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(std::time::Duration::from_secs(5), std::time::Duration::from_millis);
    // Start transcoding what needs it, then wait (without the lock) for the last one,
    // as long as maxWaitMs allows.
    let last_ready = {
        let mut catalog = sim.catalog.lock().unwrap();
        let now = Instant::now();
        ids.iter()
            .filter_map(|id| {
                let rec = catalog.recordings.get_mut(id)?;
                (rec.needs_transcode && rec.state_at(Utc::now()) == "AVAILABLE")
                    .then(|| *rec.ready_at.get_or_insert(now + sim.config.transcode_time))
            })
            .max()
    };
    if let Some(ready) = last_ready {
        tokio::time::sleep_until(ready.min(Instant::now() + max_wait)).await;
    }
    let mut catalog = sim.catalog.lock().unwrap();
    let now = Instant::now();
    let (mut list, mut transcoding) = (Vec::new(), false);
    for id in ids {
        let rec = catalog.recordings.get_mut(&id).expect("listed recordings exist");
        match sim.answer(rec, now) {
            Answer::Transcoding(body) => {
                transcoding = true;
                list.push(body);
            }
            Answer::Described(body) => list.push(body),
        }
    }
    drop(catalog);
    let status = if transcoding {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    sim.json(ep, status, usage, Value::Array(list))
}

/// A download URL on the media host that sends the client to instance metadata.
async fn redirect(State(sim): State<Shared>) -> Response {
    sim.stats.record("media", "302");
    (StatusCode::FOUND, [(header::LOCATION, METADATA_URL)]).into_response()
}

async fn media(
    State(sim): State<Shared>,
    Path(recording_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let forbidden = |message: &str| {
        let xml =
            format!("<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>{message}</Message></Error>");
        sim.finish(
            "media",
            (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "application/xml")], xml).into_response(),
        )
    };
    let expires: Option<i64> = params.get("expires").and_then(|e| e.parse().ok());
    let Some(expires) = expires else {
        return forbidden("Query-string authentication requires the expires parameter");
    };
    let part: Option<usize> = match params.get("part") {
        None => None,
        Some(p) => match p.parse() {
            Ok(i) => Some(i),
            Err(_) => {
                return forbidden("The request signature we calculated does not match the signature you provided.");
            }
        },
    };
    let name = part.map_or_else(|| recording_id.clone(), |i| format!("{recording_id}#{i}"));
    if params.get("signature").map(String::as_str) != Some(signature(&sim.signing_secret, &name, expires).as_str()) {
        return forbidden("The request signature we calculated does not match the signature you provided.");
    }
    if Utc::now().timestamp_millis() > expires {
        return forbidden("Request has expired");
    }
    if sim.faults.media_outage.load(std::sync::atomic::Ordering::SeqCst) {
        return sim.finish("media", StatusCode::SERVICE_UNAVAILABLE.into_response());
    }
    let size = match sim.catalog.lock().unwrap().recordings.get(&recording_id) {
        Some(r) if r.state_at(Utc::now()) == "AVAILABLE" => match part {
            None if r.parts.len() <= 1 => r.size,
            Some(i) if r.parts.len() > 1 && i < r.parts.len() => r.parts[i],
            _ => return sim.finish("media", StatusCode::NOT_FOUND.into_response()),
        },
        _ => return sim.finish("media", StatusCode::NOT_FOUND.into_response()),
    };
    let seed = seed_of(&name);
    let half = chunk_count(size) / 2;
    let (drop, truncate, unannounced, overrun) = (
        sim.roll() < sim.config.media_drop_share,
        sim.roll() < sim.config.media_truncate_share,
        sim.roll() < sim.config.media_unannounced_share,
        sim.roll() < sim.config.media_overrun_share,
    );
    let served = if drop || truncate { half } else { chunk_count(size) };
    let delay = sim.config.media_chunk_delay;
    let chunks = stream::iter(0..served).then(move |i| async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok::<_, std::io::Error>(chunk(seed, size, i))
    });
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "video/webm");
    let (builder, body, status) = if drop {
        // Announce the full length, send half, then break the connection.
        let broken = chunks.chain(stream::once(async {
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "simulated drop",
            ))
        }));
        (
            builder.header(header::CONTENT_LENGTH, size),
            Body::from_stream(broken),
            "dropped",
        )
    } else if truncate {
        // No Content-Length: a clean end after half, which only outputSizeInBytes reveals.
        (builder, Body::from_stream(chunks), "truncated")
    } else if overrun {
        // No Content-Length, the whole recording and then 4 KiB more.
        let longer = chunks.chain(stream::once(async { Ok(bytes::Bytes::from(vec![0u8; 4096])) }));
        (builder, Body::from_stream(longer), "overrun")
    } else if unannounced {
        (builder, Body::from_stream(chunks), "unannounced")
    } else {
        (
            builder.header(header::CONTENT_LENGTH, size),
            Body::from_stream(chunks),
            "200",
        )
    };
    sim.stats.record("media", status);
    builder.body(body).expect("static response")
}

async fn stats(State(sim): State<Shared>) -> Response {
    axum::Json(sim.stats.snapshot()).into_response()
}

use futures_util::StreamExt as _;

/// Standard base64 (with padding), enough to read an HTTP Basic header.
fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = input.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for group in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in group.iter().enumerate() {
            acc |= value(*c)? << (18 - 6 * i);
        }
        let n = group.len();
        if n == 1 {
            return None;
        }
        out.extend_from_slice(&acc.to_be_bytes()[1..n]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_reads_basic_credentials() {
        assert_eq!(
            super::base64_decode("c2ltLWNsaWVudDpzaW0tc2VjcmV0").unwrap(),
            b"sim-client:sim-secret"
        );
        assert_eq!(super::base64_decode("YQ==").unwrap(), b"a");
        assert!(super::base64_decode("a!==").is_none());
    }
}
