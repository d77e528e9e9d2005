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
    /// The ledger gauges last read, and when: served again for [`GAUGES_FRESH`] (a
    /// scrape every few seconds from several Prometheus servers does not count the
    /// ledger each time), and while the ledger does not answer within
    /// [`GAUGES_TIMEOUT`] (a scrape never waits out a PostgreSQL outage).
    gauges: Arc<tokio::sync::Mutex<Option<(tokio::time::Instant, OrgGauges)>>>,
}

/// Every org's ledger gauges, by org name.
type OrgGauges = Vec<(String, LedgerGauges)>;

/// How long ledger gauges are served without reading the ledger again.
const GAUGES_FRESH: std::time::Duration = std::time::Duration::from_secs(2);
/// How long the last gauges read are served while the ledger does not answer.
const GAUGES_STALE: std::time::Duration = std::time::Duration::from_secs(300);
/// Longest wait for the ledger's figures in a scrape; past it, the last ones.
const GAUGES_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

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
            gauges: Arc::default(),
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
    let gauges = ledger_gauges(&ops).await;
    (
        [(
            "content-type",
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        ops.metrics.render(&gauges),
    )
        .into_response()
}

/// The ledger's gauges for a scrape: recent ones from memory; else read (bounded by
/// [`GAUGES_TIMEOUT`]); a ledger that does not answer leaves the last ones read (or,
/// with none yet, no gauges at all: an absent series, not a zero that looks like good
/// news). One read at a time: concurrent scrapes wait for it.
async fn ledger_gauges(ops: &Ops) -> Vec<(String, LedgerGauges)> {
    let mut cached = ops.gauges.lock().await;
    if let Some((at, gauges)) = cached.as_ref()
        && at.elapsed() < GAUGES_FRESH
    {
        return gauges.clone();
    }
    let read = async {
        let mut gauges = Vec::new();
        for org in ops.ledger.orgs().await.map_err(|e| e.to_string())? {
            let report = ops.ledger.for_org(&org).status().await.map_err(|e| e.to_string())?;
            gauges.push((org, LedgerGauges::of(report, Utc::now())));
        }
        Ok::<_, String>(gauges)
    };
    match tokio::time::timeout(GAUGES_TIMEOUT, read).await {
        Ok(Ok(gauges)) => {
            *cached = Some((tokio::time::Instant::now(), gauges.clone()));
            gauges
        }
        failed => {
            let why = match failed {
                Ok(Err(error)) => error,
                _ => format!("no answer within {} s", GAUGES_TIMEOUT.as_secs()),
            };
            tracing::warn!(message = "Ledger gauges not read; the last ones are served.", error = %why);
            // Not for ever: past GAUGES_STALE the series are left out (an absent series
            // alerts; frozen ages and deadlines would not).
            cached
                .as_ref()
                .filter(|(at, _)| at.elapsed() < GAUGES_STALE)
                .map(|(_, g)| g.clone())
                .unwrap_or_default()
        }
    }
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
