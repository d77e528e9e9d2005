//! The simulator's HTTP surface: the four API endpoints, the media host and `/sim/stats`.
//!
//! Every API call passes the same gate, in the order the platform applies it: latency,
//! bearer token (401 if unknown or expired), the per-token and per-endpoint sliding
//! windows (429, normalized or bare), then injected faults (5xx, dropped connection)
//! for calls that were admitted and counted.

use super::SimState;
use super::media::signature;
use super::window::{SlidingWindow, Usage};
use crate::endpoint::Endpoint;
use crate::wire::{RATELIMIT_ALLOWED as ALLOWED, RATELIMIT_COUNT as COUNT, RATELIMIT_RESET as RESET};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use futures_util::stream;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::time::Instant;

pub(super) type Shared = Arc<SimState>;

use super::analytics::analytics;
use super::downloads::{media, redirect};
use super::jobs::{job_availability, job_results, job_status, submit_job};
use super::recordings::{conversation_recordings, metadata, recording};

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

pub(super) fn error_body(status: StatusCode, code: &str, message: &str) -> Value {
    json!({"message": message, "code": code, "status": status.as_u16(), "contextId": "sim", "details": [], "errors": []})
}

pub(super) fn usage_headers(usage: Option<Usage>, enabled: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let (Some(u), true) = (usage, enabled) {
        headers.insert(COUNT, HeaderValue::from(u.count));
        headers.insert(ALLOWED, HeaderValue::from(u.allowed));
        headers.insert(RESET, HeaderValue::from(u.reset.as_secs_f64().ceil() as u64));
    }
    headers
}

impl SimState {
    pub(super) fn finish(&self, endpoint: &str, response: Response) -> Response {
        self.stats.record(endpoint, response.status().as_str());
        response
    }

    pub(super) fn json(&self, endpoint: Endpoint, status: StatusCode, usage: Option<Usage>, body: Value) -> Response {
        let headers = usage_headers(usage, self.config.ratelimit_headers);
        self.finish(endpoint.as_str(), (status, headers, axum::Json(body)).into_response())
    }

    pub(super) fn roll(&self) -> f64 {
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
    pub(super) fn refuse(&self, endpoint: Endpoint, usage: Option<Usage>, wait: std::time::Duration) -> Response {
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
    pub(super) fn dropped(&self, endpoint: Endpoint) -> Response {
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

    pub(super) fn metadata_json(&self, r: &super::catalog::SimRecording) -> Value {
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
    pub(super) fn media_url(&self, recording_id: &str, part: Option<usize>) -> String {
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

async fn stats(State(sim): State<Shared>) -> Response {
    axum::Json(sim.stats.snapshot()).into_response()
}

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
    pub(super) fn base64_reads_basic_credentials() {
        assert_eq!(
            super::base64_decode("c2ltLWNsaWVudDpzaW0tc2VjcmV0").unwrap(),
            b"sim-client:sim-secret"
        );
        assert_eq!(super::base64_decode("YQ==").unwrap(), b"a");
        assert!(super::base64_decode("a!==").is_none());
    }
}
