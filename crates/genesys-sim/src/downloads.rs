//! Media on signed URLs: the bytes, expiry, faults (drops, truncation, slowness).

use super::hostile::METADATA_URL;
use super::media::{chunk, chunk_count, seed_of, signature};
use super::routes::*;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures_util::StreamExt as _;
use futures_util::stream;
use std::collections::HashMap;

/// A download URL on the media host that sends the client to instance metadata.
pub(super) async fn redirect(State(sim): State<Shared>) -> Response {
    sim.stats.record("media", "302");
    (StatusCode::FOUND, [(header::LOCATION, METADATA_URL)]).into_response()
}

pub(super) async fn media(
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
