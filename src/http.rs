//! The operations listener: `/metrics` (Prometheus), `/healthz` (liveness) and
//! `/readyz` (readiness), on `[telemetry] metrics_listen`.

use crate::health::Health;
use crate::ledger::store::LedgerStore;
use crate::metrics::{LedgerGauges, Metrics};
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
    metrics: Arc<Metrics>,
    /// The whole ledger: the gauges are read for every org with rows, including orgs
    /// added by a reload since the start.
    ledger: Arc<LedgerStore>,
}

/// Binds `listen` and serves until the process ends.
pub async fn serve(
    listen: SocketAddr,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    ledger: Arc<LedgerStore>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Ops {
            health,
            metrics,
            ledger,
        });
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(message = "Metrics listener stopped.", %error);
        }
    });
    tracing::info!(message = "Serving /metrics, /healthz and /readyz.", listen = %bound);
    Ok(bound)
}

async fn scrape(State(ops): State<Ops>) -> Response {
    // A ledger that cannot be read leaves its gauges out of this scrape (the counters
    // are still served): an absent series, not a zero that looks like good news.
    let mut gauges = Vec::new();
    if let Ok(orgs) = ops.ledger.orgs().await {
        for org in orgs {
            if let Ok(report) = ops.ledger.for_org(&org).status().await {
                gauges.push((org, LedgerGauges::of(report, Utc::now())));
            }
        }
    }
    (
        [(
            "content-type",
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        ops.metrics.render(&gauges),
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
