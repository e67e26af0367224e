//! `--listen`: `GET /healthz` (200 while the scheduler is alive, 503 if it stalled),
//! `GET /metrics` (OpenMetrics text, which Prometheus scrapes natively), and unless
//! `--status-page off`, `GET /status.json` and the status page at `GET /` (SPEC 16). Those two
//! are served from one snapshot shared by every reader for up to a second
//! ([`crate::status::shared`]): its bytes are rendered once, on the blocking pool.
//!
//! The listener may face a hostile network (the image listens on 0.0.0.0), so what a client can
//! hold is bounded: a connection must send a request's headers within [`HEADER_READ_TIMEOUT`]
//! (also between keep-alive requests), lives at most [`CONNECTION_LIFETIME`], and at most
//! [`MAX_CONNECTIONS`] are open at once. Busy keep-alive clients can legitimately hold all of
//! those (256 scrapers each asking every few seconds), so [`RESERVED_CONNECTIONS`] more are kept
//! for whoever comes when the rest are taken: such a connection serves one request and closes,
//! and must send it within [`RESERVED_HEADER_TIMEOUT`], so a liveness probe always finds a slot
//! that turns over within a second or two (issue 22). Beyond both, a new connection is closed at
//! once. When accepting fails (out of descriptors), the loop backs off instead of spinning.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::health::Health;
use super::shutdown::Shutdown;
use crate::metrics::Metrics;
use crate::monitor::SharedMonitors;
use crate::status::shared::{SharedSnapshot, Snapshot};
use crate::status::{HealthInput, Status, StatusBoard};

/// The status page loads nothing and runs nothing; its styles are inline.
const PAGE_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Connections open at once, at most: far more than scrapers and probes need, far fewer than the
/// descriptors that flake runs need.
pub const MAX_CONNECTIONS: usize = 256;
/// Time to send a request's headers, and to start the next request on a kept-alive connection.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest life of one connection; a scraper simply opens the next.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Connections kept for when [`MAX_CONNECTIONS`] are taken: one request each, then closed.
pub const RESERVED_CONNECTIONS: usize = 16;
/// Time a connection on a reserved slot has to send its one request's headers.
pub const RESERVED_HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest life of a connection on a reserved slot: one request and its answer.
const RESERVED_LIFETIME: Duration = Duration::from_secs(5);
/// Back-off after a failed accept (no descriptors left, say): from the first to the last.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// What `/status.json` and the page are assembled from, and the last snapshot of it that
/// readers share (at most [`crate::status::shared::MAX_AGE`] old).
pub struct StatusSources {
    pub board: Arc<StatusBoard>,
    pub monitors: Option<SharedMonitors>,
    shared: Arc<SharedSnapshot>,
}

impl StatusSources {
    pub fn new(board: Arc<StatusBoard>, monitors: Option<SharedMonitors>) -> StatusSources {
        StatusSources { board, monitors, shared: Arc::default() }
    }

    /// The status now.
    pub fn status(&self, health: &Health, metrics: &Metrics) -> Status {
        let report = health.report();
        let findings = report.body.lines().filter(|line| *line != "ok").map(str::to_string).collect();
        // A spool that cannot be written still answers 200 on /healthz, but it is not well.
        let healthy = report.healthy && !health.spool_degraded();
        crate::status::snapshot(&self.board, metrics, self.monitors.as_ref(), HealthInput { healthy, findings }, chrono::Utc::now())
    }

    /// The snapshot readers share: a new one is taken on the blocking pool when it is too old.
    async fn shared(self: &Arc<Self>, health: &Arc<Health>, metrics: &Arc<Metrics>) -> Arc<Snapshot> {
        let (sources, health, metrics) = (self.clone(), health.clone(), metrics.clone());
        self.shared.get(move || sources.status(&health, &metrics)).await
    }
}

/// Binds `address` now (so a taken port fails at start-up) and serves until shutdown. Without
/// `status`, `/status.json` and `/` answer 404.
pub async fn serve(
    address: SocketAddr,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    status: Option<Arc<StatusSources>>,
    mut shutdown: Shutdown,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|error| format!("--listen {address}: cannot listen: {error}; choose another address or --listen off"))?;
    if status.is_some() {
        tracing::info!(%address, "serving /healthz, /metrics, /status.json and the status page at /");
    } else {
        tracing::info!(%address, "serving /healthz and /metrics");
    }
    Ok(tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let reserved = Arc::new(Semaphore::new(RESERVED_CONNECTIONS));
        let mut backoff = None;
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.recv() => return,
            };
            let stream = match accepted {
                Ok((stream, _)) => {
                    backoff = None;
                    stream
                }
                Err(error) => {
                    // The failed connection stays queued: retrying at once would spin the CPU.
                    let delay = next_backoff(backoff);
                    if backoff.is_none() {
                        tracing::warn!(
                            "--listen: cannot accept connections ({error}); retrying with back-off up to {:?}",
                            ACCEPT_BACKOFF.1
                        );
                    }
                    backoff = Some(delay);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => continue,
                        _ = shutdown.recv() => return,
                    }
                }
            };
            // A full house of keep-alive clients must not lock out a probe: past the ordinary
            // slots, a connection gets one quick request on a reserved one.
            let (slot, one_request) = match slots.clone().try_acquire_owned() {
                Ok(slot) => (slot, false),
                Err(_) => match reserved.clone().try_acquire_owned() {
                    Ok(slot) => (slot, true),
                    Err(_) => {
                        metrics.http_connections_refused.inc();
                        drop(stream);
                        continue;
                    }
                },
            };
            let (health, metrics, status) = (health.clone(), metrics.clone(), status.clone());
            tokio::spawn(async move {
                let _slot = slot;
                let service = service_fn(move |request| respond(request, health.clone(), metrics.clone(), status.clone()));
                let (header_timeout, lifetime) =
                    if one_request { (RESERVED_HEADER_TIMEOUT, RESERVED_LIFETIME) } else { (HEADER_READ_TIMEOUT, CONNECTION_LIFETIME) };
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .keep_alive(!one_request)
                    .serve_connection(TokioIo::new(stream), service);
                let _ = tokio::time::timeout(lifetime, connection).await;
            });
        }
    }))
}

/// Doubles the delay after each failed accept, within [`ACCEPT_BACKOFF`].
fn next_backoff(previous: Option<Duration>) -> Duration {
    previous.map_or(ACCEPT_BACKOFF.0, |previous| (previous * 2).min(ACCEPT_BACKOFF.1))
}

async fn respond(
    request: Request<Incoming>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    status: Option<Arc<StatusSources>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = |status: StatusCode, content_type: &str, body: Bytes| {
        Response::builder().status(status).header("content-type", content_type).body(Full::new(body)).expect("static response parts")
    };
    Ok(match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => {
            let report = health.report();
            let status = if report.healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            response(status, "text/plain", report.body.into())
        }
        (&Method::GET, "/metrics") => response(StatusCode::OK, OPENMETRICS, metrics.encode().into()),
        (&Method::GET, "/status.json") if let Some(status) = &status => {
            response(StatusCode::OK, "application/json", status.shared(&health, &metrics).await.json())
        }
        (&Method::GET, "/") if let Some(status) = &status => {
            let snapshot = status.shared(&health, &metrics).await;
            let body = match snapshot.rendered_page() {
                Some(body) => body,
                // Rendering is CPU (milliseconds at 10,000 flakes): not on a runtime thread.
                None => tokio::task::spawn_blocking(move || snapshot.page())
                    .await
                    .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic())),
            };
            let mut page = response(StatusCode::OK, "text/html; charset=utf-8", body);
            // Says what the page is: no script, nothing fetched from anywhere, styles inline.
            page.headers_mut().insert("content-security-policy", PAGE_POLICY.parse().expect("a valid header value"));
            page
        }
        _ if status.is_some() => {
            response(StatusCode::NOT_FOUND, "text/plain", "not found: try /, /status.json, /healthz or /metrics\n".into())
        }
        _ => response(StatusCode::NOT_FOUND, "text/plain", "not found: try /healthz or /metrics\n".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_doubles_up_to_its_cap() {
        let mut delay = None;
        let mut seen = Vec::new();
        for _ in 0..10 {
            let next = next_backoff(delay);
            seen.push(next);
            delay = Some(next);
        }
        assert_eq!(seen[0], ACCEPT_BACKOFF.0);
        assert_eq!(seen[1], ACCEPT_BACKOFF.0 * 2);
        assert_eq!(*seen.last().unwrap(), ACCEPT_BACKOFF.1);
    }
}
