//! `--listen`: `GET /healthz` (200 while the scheduler is alive, 503 if it stalled) and
//! `GET /metrics` (OpenMetrics text, which Prometheus scrapes natively).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::health::Health;
use super::shutdown::Shutdown;
use crate::metrics::Metrics;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `address` now (so a taken port fails at start-up) and serves until shutdown.
pub async fn serve(
    address: SocketAddr,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    mut shutdown: Shutdown,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|error| format!("--listen {address}: cannot listen: {error}; choose another address or --listen off"))?;
    tracing::info!(%address, "serving /healthz and /metrics");
    Ok(tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.recv() => return,
            };
            let Ok((stream, _)) = accepted else { continue };
            let (health, metrics) = (health.clone(), metrics.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request| respond(request, health.clone(), metrics.clone()));
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    }))
}

async fn respond(request: Request<Incoming>, health: Arc<Health>, metrics: Arc<Metrics>) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = |status: StatusCode, content_type: &str, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .expect("static response parts")
    };
    Ok(match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => {
            let report = health.report();
            let status = if report.healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            response(status, "text/plain", report.body)
        }
        (&Method::GET, "/metrics") => response(StatusCode::OK, OPENMETRICS, metrics.encode()),
        _ => response(StatusCode::NOT_FOUND, "text/plain", "not found: try /healthz or /metrics\n".to_string()),
    })
}
