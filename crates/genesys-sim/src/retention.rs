//! The recording's retention update: `PUT /api/v2/conversations/{conversationId}/
//! recordings/{recordingId}` with a `Recording` body whose `deleteDate` (and
//! `archiveDate`) it sets. The recording is then gone at its new `deleteDate`, as the
//! platform deletes it ([`super::catalog::SimRecording::state_at`]). Fields absent from
//! the body are left as they are (the merge reading; see the client's comment).
//! Permissions are not modelled: the simulator's token may do everything.

use super::SimState;
use crate::endpoint::Endpoint;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RetentionBody {
    delete_date: Option<DateTime<Utc>>,
    archive_date: Option<DateTime<Utc>>,
}

pub(super) async fn update(
    State(sim): State<Arc<SimState>>,
    Path((conversation_id, recording_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ep = Endpoint::RecordingRetention;
    let usage = match sim.gate(ep, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if sim.faults.retention_outage.load(std::sync::atomic::Ordering::SeqCst) {
        let error = json!({"status": 503, "code": "service.unavailable", "message": "retention updates are down"});
        return sim.json(ep, StatusCode::SERVICE_UNAVAILABLE, usage, error);
    }
    let Ok(change) = serde_json::from_slice::<RetentionBody>(&body) else {
        let error = json!({"status": 400, "code": "bad.request", "message": "the body is not a Recording"});
        return sim.json(ep, StatusCode::BAD_REQUEST, usage, error);
    };
    let mut catalog = sim.catalog.lock().unwrap();
    let Some(rec) = catalog
        .recordings
        .get_mut(&recording_id)
        .filter(|r| r.conversation_id == conversation_id && r.state_at(Utc::now()) != "DELETED")
    else {
        drop(catalog);
        return sim.not_found(ep, usage, "recording not found");
    };
    if let Some(delete) = change.delete_date {
        rec.delete_date = delete;
        rec.retention_updates.push(delete);
    }
    if let Some(archive) = change.archive_date {
        rec.archive_date = archive;
    }
    let answer = json!({
        "id": rec.id,
        "conversationId": rec.conversation_id,
        "media": rec.media,
        "fileState": rec.state_at(Utc::now()),
        "archiveDate": rec.archive_date,
        "deleteDate": rec.delete_date,
    });
    drop(catalog);
    sim.json(ep, StatusCode::OK, usage, answer)
}
