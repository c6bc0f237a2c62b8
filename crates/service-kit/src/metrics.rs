//! Metrics: every service's requests counted and timed by route template, and everything the
//! `metrics` facade records (the JWKS cache's fetches and hits, say) rendered as Prometheus text
//! on the admin listener's `GET /metrics` — what the telemetry stack's collector scrapes.
//!
//! One Prometheus recorder per process, installed on first use; if something else installed a
//! global recorder first, `/metrics` answers 503 saying so rather than an empty page.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Requests served, by `route` (the template, never the raw path), `method` and `status`.
pub const REQUESTS: &str = "http_server_requests_total";
/// Request durations in seconds, by `route` and `method`.
pub const DURATION: &str = "http_server_request_duration_seconds";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus recorder, installed on first call; `None` when another global
/// recorder was installed first.
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    HANDLE.get_or_init(|| PrometheusBuilder::new().install_recorder().ok()).as_ref()
}

/// Middleware: counts and times each request by its route template (bounded label values: an
/// unmatched path is `unmatched`, so scanning cannot grow the series).
pub async fn record(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    // Methods are bounded too: any token is a valid method to hyper.
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "_OTHER",
    };
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(REQUESTS, "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(DURATION, "route" => route, "method" => method).record(start.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn render() -> Response {
    match prometheus() {
        Some(handle) => {
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render())
                .into_response()
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, "another metrics recorder is installed in this process\n")
            .into_response(),
    }
}
