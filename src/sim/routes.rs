//! The simulator's HTTP surface: the four API endpoints, the media host and `/sim/stats`.
//!
//! Every API call passes the same gate, in the order the platform applies it: latency,
//! bearer token (401 if unknown or expired), the per-token and per-endpoint sliding
//! windows (429, normalized or bare), then injected faults (5xx, dropped connection)
//! for calls that were admitted and counted.

use super::SimState;
use super::hostile::{BadRecording, METADATA_URL};
use super::media::{chunk, chunk_count, seed_of, signature};
use super::window::{SlidingWindow, Usage};
use crate::genesys::Endpoint;
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
            get(recording),
        )
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

    fn json(&self, endpoint: Endpoint, status: StatusCode, usage: Option<Usage>, body: Value) -> Response {
        let headers = usage_headers(usage, self.config.ratelimit_headers);
        self.finish(endpoint.as_str(), (status, headers, axum::Json(body)).into_response())
    }

    fn roll(&self) -> f64 {
        self.rng.lock().unwrap().f64()
    }

    /// Latency, authentication, rate limits and faults. `Ok` carries the per-token usage
    /// for the `inin-ratelimit-*` headers.
    async fn gate(&self, endpoint: Endpoint, headers: &HeaderMap) -> Result<Option<Usage>, Response> {
        if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
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
            let mut token_window = token.as_ref().map(|t| {
                limits
                    .per_token
                    .entry(t.clone())
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
        let mut v = json!({
            "id": r.id,
            "conversationId": r.conversation_id,
            "name": format!("{} recording", r.media),
            "path": format!("/recordings/{}", r.id),
            "startTime": r.start,
            "endTime": r.end,
            "media": r.media,
            "fileState": r.file_state,
            "selfUri": format!("/api/v2/conversations/{}/recordings/{}", r.conversation_id, r.id),
        });
        if r.file_state == "ARCHIVED" {
            v["archiveDate"] = json!(r.end + chrono::Duration::days(30));
        }
        if r.file_state == "DELETED" {
            v["deleteDate"] = json!(r.end + chrono::Duration::days(1));
        }
        v
    }

    fn media_url(&self, recording_id: &str) -> String {
        let ttl = chrono::Duration::from_std(self.config.url_ttl).unwrap_or(chrono::Duration::hours(1));
        let ttl = if self.roll() < self.config.stale_url_share {
            -chrono::Duration::seconds(1)
        } else {
            ttl
        };
        let expires = (Utc::now() + ttl).timestamp_millis();
        let sig = signature(&self.signing_secret, recording_id, expires);
        format!(
            "{}/media/{recording_id}?expires={expires}&signature={sig}",
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
    segment_filters: Vec<crate::genesys::model::SegmentFilter>,
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
    let Some((start, end)) = query.interval.split_once('/').and_then(|(a, b)| {
        Some((
            DateTime::parse_from_rfc3339(a).ok()?.with_timezone(&Utc),
            DateTime::parse_from_rfc3339(b).ok()?.with_timezone(&Utc),
        ))
    }) else {
        return bad("interval must be start/end in ISO-8601");
    };
    let paging = query.paging.unwrap_or(crate::genesys::model::Paging {
        page_size: 25,
        page_number: 1,
    });
    if paging.page_size == 0 || paging.page_size > 100 || paging.page_number == 0 {
        return bad("pageSize must be 1 to 100 and pageNumber at least 1");
    }
    let recorded_only = query
        .segment_filters
        .iter()
        .flat_map(|f| &f.predicates)
        .any(|p| p.dimension == "recording" && p.value == "true");
    let catalog = sim.catalog.lock().unwrap();
    let matching: Vec<_> = catalog
        .conversations
        .iter()
        .filter(|c| c.start >= start && c.start < end)
        .filter(|c| !recorded_only || !c.recordings.is_empty())
        .collect();
    let skip = ((paging.page_number - 1) * paging.page_size) as usize;
    let page: Vec<Value> = matching
        .iter()
        .skip(skip)
        .take(paging.page_size as usize)
        .map(|c| {
            json!({
                "conversationId": c.id,
                "conversationStart": c.start,
                "conversationEnd": c.end,
                "originatingDirection": "inbound",
                "participants": [],
            })
        })
        .collect();
    let mut answer = json!({"totalHits": matching.len()});
    if !page.is_empty() {
        answer["conversations"] = Value::Array(page);
    }
    drop(catalog);
    sim.json(ep, StatusCode::OK, usage, answer)
}

async fn metadata(State(sim): State<Shared>, Path(conversation_id): Path<String>, headers: HeaderMap) -> Response {
    let ep = Endpoint::RecordingMetadata;
    let usage = match sim.gate(ep, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let catalog = sim.catalog.lock().unwrap();
    if let Some(bad) = catalog.bad_listings.get(&conversation_id).copied() {
        drop(catalog);
        let headers = usage_headers(usage, sim.config.ratelimit_headers);
        let response = (
            StatusCode::OK,
            headers,
            [(header::CONTENT_TYPE, "application/json")],
            bad.body(&conversation_id),
        );
        return sim.finish(ep.as_str(), response.into_response());
    }
    let Some(conversation) = catalog.conversation(&conversation_id) else {
        drop(catalog);
        return sim.json(
            ep,
            StatusCode::NOT_FOUND,
            usage,
            error_body(StatusCode::NOT_FOUND, "not.found", "conversation not found"),
        );
    };
    let list: Vec<Value> = conversation
        .recordings
        .iter()
        .map(|id| sim.metadata_json(&catalog.recordings[id]))
        .collect();
    drop(catalog);
    sim.json(ep, StatusCode::OK, usage, Value::Array(list))
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
    let format = params.get("formatId").map_or("WEBM", String::as_str);
    if !["WEBM", "WAV", "MP3", "OGG_VORBIS", "OGG_OPUS", "NONE"].contains(&format) {
        return sim.json(
            ep,
            StatusCode::BAD_REQUEST,
            usage,
            error_body(StatusCode::BAD_REQUEST, "bad.request", "unknown formatId"),
        );
    }
    let now = Instant::now();
    let mut catalog = sim.catalog.lock().unwrap();
    let Some(rec) = catalog
        .recordings
        .get_mut(&recording_id)
        .filter(|r| r.conversation_id == conversation_id)
    else {
        drop(catalog);
        return sim.json(
            ep,
            StatusCode::NOT_FOUND,
            usage,
            error_body(StatusCode::NOT_FOUND, "not.found", "recording not found"),
        );
    };
    if rec.needs_transcode && rec.file_state == "AVAILABLE" {
        let ready_at = *rec.ready_at.get_or_insert(now + sim.config.transcode_time);
        if now < ready_at {
            let remaining = (ready_at - now).as_millis() as u64;
            let body = json!({
                "id": rec.id, "conversationId": rec.conversation_id, "media": rec.media,
                "estimatedTranscodeTimeMs": remaining,
            });
            drop(catalog);
            return sim.json(ep, StatusCode::ACCEPTED, usage, body);
        }
    }
    let rec = rec.clone();
    drop(catalog);
    let mut body = sim.metadata_json(&rec);
    if rec.file_state == "AVAILABLE" {
        let uri = match rec.hostile {
            Some(BadRecording::ForeignHost) => METADATA_URL.to_owned(),
            Some(BadRecording::RedirectElsewhere) => format!("{}/redirect/{}", sim.base_url, rec.id),
            Some(BadRecording::PlainHttp) => "http://media.example.net/recordings/x.webm".to_owned(),
            _ => sim.media_url(&rec.id),
        };
        body["mediaUris"] = if rec.hostile == Some(BadRecording::EmptyMediaUris) {
            json!({})
        } else {
            json!({"S": {"mediaUri": uri}})
        };
        body["outputSizeInBytes"] = json!(rec.size);
        body["estimatedTranscodeTimeMs"] = json!(0);
        body["actualTranscodeTimeMs"] = json!(if rec.needs_transcode {
            sim.config.transcode_time.as_millis() as u64
        } else {
            0
        });
    }
    sim.json(ep, StatusCode::OK, usage, body)
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
    if params.get("signature").map(String::as_str)
        != Some(signature(&sim.signing_secret, &recording_id, expires).as_str())
    {
        return forbidden("The request signature we calculated does not match the signature you provided.");
    }
    if Utc::now().timestamp_millis() > expires {
        return forbidden("Request has expired");
    }
    let size = match sim.catalog.lock().unwrap().recordings.get(&recording_id) {
        Some(r) if r.file_state == "AVAILABLE" => r.size,
        _ => return sim.finish("media", StatusCode::NOT_FOUND.into_response()),
    };
    let seed = seed_of(&recording_id);
    let half = chunk_count(size) / 2;
    let (drop, truncate) = (
        sim.roll() < sim.config.media_drop_share,
        sim.roll() < sim.config.media_truncate_share,
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
    let (builder, body) = if drop {
        // Announce the full length, send half, then break the connection.
        let broken = chunks.chain(stream::once(async {
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "simulated drop",
            ))
        }));
        (builder.header(header::CONTENT_LENGTH, size), Body::from_stream(broken))
    } else if truncate {
        // No Content-Length: a clean end after half, which only outputSizeInBytes reveals.
        (builder, Body::from_stream(chunks))
    } else {
        (builder.header(header::CONTENT_LENGTH, size), Body::from_stream(chunks))
    };
    let status = if drop {
        "dropped"
    } else if truncate {
        "truncated"
    } else {
        "200"
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
