//! The recording calls: recordingmetadata, one recording, a conversation's recordings.

use super::SimState;
use super::catalog::SimRecording;
use super::hostile::{BadRecording, METADATA_URL};
use super::routes::*;
use super::window::Usage;
use crate::endpoint::Endpoint;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{Value, json};
use std::collections::HashMap;
use tokio::time::Instant;

pub(super) async fn metadata(
    State(sim): State<Shared>,
    Path(conversation_id): Path<String>,
    headers: HeaderMap,
) -> Response {
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
pub(super) enum Answer {
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

    pub(super) fn bad_listing(
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
    pub(super) fn listed_ids(
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
    pub(super) fn answer(&self, rec: &mut SimRecording, now: Instant) -> Answer {
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

pub(super) fn format_is_known(params: &HashMap<String, String>) -> bool {
    let format = params.get("formatId").map_or("WEBM", String::as_str);
    ["WEBM", "WAV", "MP3", "OGG_VORBIS", "OGG_OPUS", "NONE"].contains(&format)
}

pub(super) async fn recording(
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
pub(super) async fn conversation_recordings(
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
