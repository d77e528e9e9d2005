//! The operations listener: `/metrics` (Prometheus), `/healthz` (liveness) and
//! `/readyz` (readiness), on `[telemetry] metrics_listen`.

use crate::health::Health;
use crate::ledger::Ledger;
use crate::metrics::{LedgerGauges, global};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Clone)]
struct Ops {
    health: Arc<Health>,
    /// Every org's ledger view; the gauges add them up.
    ledgers: Vec<Arc<dyn Ledger>>,
}

/// Binds `listen` and serves until the process ends.
pub async fn serve(
    listen: SocketAddr,
    health: Arc<Health>,
    ledgers: Vec<Arc<dyn Ledger>>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Ops { health, ledgers });
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(message = "Metrics listener stopped.", %error);
        }
    });
    tracing::info!(message = "Serving /metrics, /healthz and /readyz.", listen = %bound);
    Ok(bound)
}

async fn metrics(State(ops): State<Ops>) -> Response {
    let mut gauges = LedgerGauges::default();
    let mut all = crate::ledger::StatusReport::default();
    let mut read = true;
    for ledger in &ops.ledgers {
        match ledger.status().await {
            Ok(report) => all.merge(report),
            Err(_) => read = false,
        }
    }
    if let Some(report) = read.then_some(all) {
        gauges.by_state = report.counts;
        gauges.conversations = report.conversations;
        gauges.oldest_unarchived_age = report
            .oldest_unarchived
            .and_then(|(_, at)| (Utc::now() - at).to_std().ok());
    }
    (
        [("content-type", "text/plain; version=0.0.4")],
        global().render(&gauges),
    )
        .into_response()
}

fn verdict(result: Result<(), String>) -> Response {
    match result {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response(),
    }
}

async fn healthz(State(ops): State<Ops>) -> Response {
    verdict(ops.health.live())
}

async fn readyz(State(ops): State<Ops>) -> Response {
    verdict(ops.health.ready())
}
