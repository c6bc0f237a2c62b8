//! The shared server: TLS, layers, problems, health, shutdown.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::routing::{get, post};
use serde_json::Value;
use service_kit::{Problem, Readiness, ServerError, server};

use crate::{client, fixture, url};

#[derive(serde::Deserialize)]
struct Echo {
    #[allow(dead_code)]
    text: String,
}

fn app() -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/echo", post(|Json(_): Json<Echo>| async { "ok" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "slow"
            }),
        )
        .route(
            "/stuck",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "never"
            }),
        )
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("db password is hunter2");
                }
                "unreachable"
            }),
        )
        .route(
            "/internal",
            get(|| async {
                tracing::error!("connection to 10.0.0.5 failed: secret detail");
                Problem::internal()
            }),
        )
}

async fn problem_of(resp: reqwest::Response) -> (u16, Value, reqwest::header::HeaderMap) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    assert_eq!(headers["content-type"], "application/problem+json", "status {status}");
    (status, resp.json().await.unwrap(), headers)
}

#[tokio::test]
async fn serves_tls13_with_request_ids() {
    let (_tmp, dir, config) = fixture();
    let running = server::start(&config, app(), Readiness::new()).await.unwrap();
    let c = client(&dir, None, running.addr);
    let resp = c.get(url(running.addr, "/hello")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2, "ALPN negotiates h2");
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
    assert_eq!(resp.text().await.unwrap(), "hello");

    let resp = c.get(url(running.addr, "/hello")).header("x-request-id", "trace-abc.1").send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-abc.1");
    let resp = c.get(url(running.addr, "/hello")).header("x-request-id", "<script>").send().await.unwrap();
    assert_ne!(resp.headers()["x-request-id"], "<script>");
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_error_is_problem_json() {
    let (_tmp, dir, config) = fixture();
    let running = server::start(&config, app(), Readiness::new()).await.unwrap();
    let c = client(&dir, None, running.addr);
    let addr = running.addr;

    let (status, body, headers) = problem_of(c.get(url(addr, "/nope")).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert_eq!(body["type"], "urn:demo:problem:not-found");
    assert_eq!(body["instance"], "/nope");
    assert_eq!(body["request_id"], headers["x-request-id"].to_str().unwrap());

    let (status, body, headers) = problem_of(c.post(url(addr, "/hello")).send().await.unwrap()).await;
    assert_eq!(status, 405);
    assert_eq!(body["type"], "urn:demo:problem:method-not-allowed");
    assert!(headers.contains_key("allow"), "Allow survives normalisation");

    let resp = c.post(url(addr, "/echo")).header("content-type", "application/json").body("{\"txt\":1}");
    let (status, body, _) = problem_of(resp.send().await.unwrap()).await;
    assert_eq!(status, 422);
    assert!(body["detail"].as_str().unwrap().contains("missing field `text`"), "{body}");

    let resp = c.post(url(addr, "/echo")).header("content-type", "application/json").body("{not json");
    let (status, body, _) = problem_of(resp.send().await.unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(body["type"], "urn:demo:problem:bad-request");

    let resp = c.post(url(addr, "/echo")).header("content-type", "text/plain").body("{\"text\":\"x\"}");
    let (status, body, _) = problem_of(resp.send().await.unwrap()).await;
    assert_eq!(status, 415);
    assert_eq!(body["type"], "urn:demo:problem:unsupported-media-type");

    let big = format!("{{\"text\":\"{}\"}}", "x".repeat(4096));
    let resp = c.post(url(addr, "/echo")).header("content-type", "application/json").body(big);
    let (status, body, _) = problem_of(resp.send().await.unwrap()).await;
    assert_eq!(status, 413);
    assert_eq!(body["type"], "urn:demo:problem:payload-too-large");

    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn server_errors_never_leak_internals() {
    let (_tmp, dir, config) = fixture();
    let running = server::start(&config, app(), Readiness::new()).await.unwrap();
    let c = client(&dir, None, running.addr);
    for path in ["/panic", "/internal"] {
        let resp = c.get(url(running.addr, path)).send().await.unwrap();
        let (status, body, _) = problem_of(resp).await;
        assert_eq!(status, 500, "{path}");
        assert_eq!(body["type"], "urn:demo:problem:internal");
        let text = body.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("10.0.0.5") && !text.contains("secret"),
            "{text}"
        );
    }
    // The server is still up after a panic.
    assert_eq!(c.get(url(running.addr, "/hello")).send().await.unwrap().status(), 200);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn slow_requests_time_out_as_503() {
    let (_tmp, dir, config) = fixture();
    let running = server::start(&config, app(), Readiness::new()).await.unwrap();
    let c = client(&dir, None, running.addr);
    let (status, body, _) = problem_of(c.get(url(running.addr, "/stuck")).send().await.unwrap()).await;
    assert_eq!(status, 503);
    assert_eq!(body["type"], "urn:demo:problem:unavailable");
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_on_the_admin_listener() {
    let (_tmp, dir, config) = fixture();
    let running = server::start(&config, app(), Readiness::new()).await.unwrap();
    let api = client(&dir, None, running.addr);
    for path in ["/hello", "/hello", "/no-such-path-d41d8cd9"] {
        api.get(url(running.addr, path)).send().await.unwrap();
    }
    let admin = client(&dir, None, running.admin_addr);
    let resp = admin.get(url(running.admin_addr, "/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = resp.text().await.unwrap();
    // Other tests in this process count their requests too: look for this one's series.
    let hello = text
        .lines()
        .find(|l| {
            l.starts_with("http_server_requests_total{")
                && ["route=\"/hello\"", "method=\"GET\"", "status=\"200\""].iter().all(|p| l.contains(p))
        })
        .unwrap_or_else(|| panic!("no counter for GET /hello 200 in:\n{text}"));
    let count: f64 = hello.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 2.0, "{hello}");
    assert!(text.contains("route=\"unmatched\""), "an unknown path is counted as unmatched");
    assert!(!text.contains("no-such-path"), "raw paths never become label values");
    assert!(text.contains("http_server_request_duration_seconds"), "{text}");
    // Only the admin listener serves metrics.
    assert_eq!(api.get(url(running.addr, "/metrics")).send().await.unwrap().status(), 404);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn readiness_follows_dependencies_on_the_admin_listener() {
    let (_tmp, dir, config) = fixture();
    let readiness = Readiness::new();
    let jwks = readiness.dependency("identity_jwks");
    let running = server::start(&config, app(), readiness.clone()).await.unwrap();
    let c = client(&dir, None, running.admin_addr);

    let live = c.get(url(running.admin_addr, "/livez")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let ready = c.get(url(running.admin_addr, "/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["identity_jwks"]["state"], "pending");

    jwks.ready();
    let ready = c.get(url(running.admin_addr, "/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    // The API listener does not serve health endpoints.
    let api = client(&dir, None, running.addr);
    assert_eq!(api.get(url(running.addr, "/readyz")).send().await.unwrap().status(), 404);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_refuses_new_ones() {
    let (_tmp, dir, config) = fixture();
    let running = server::start(&config, app(), Readiness::new()).await.unwrap();
    let addr = running.addr;
    let c = client(&dir, None, addr);
    // Warm the connection so the in-flight request is really in flight.
    assert_eq!(c.get(url(addr, "/hello")).send().await.unwrap().status(), 200);
    let in_flight = tokio::spawn({
        let c = c.clone();
        async move { c.get(url(addr, "/slow")).send().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    running.shutdown().await.unwrap();
    let resp = in_flight.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "slow");
    let fresh = client(&dir, None, addr);
    assert!(fresh.get(url(addr, "/hello")).send().await.is_err(), "listener must be closed");
}

#[tokio::test]
async fn mtls_on_the_api_but_not_on_admin() {
    let (_tmp, dir, mut config) = fixture();
    config.tls.client_auth = service_kit::server::ClientAuthMode::Required;
    let running = server::start(&config, app(), Readiness::new()).await.unwrap();
    let anonymous = client(&dir, None, running.addr);
    assert!(anonymous.get(url(running.addr, "/hello")).send().await.is_err());
    let with_cert = client(&dir, Some("demo-cli"), running.addr);
    assert_eq!(with_cert.get(url(running.addr, "/hello")).send().await.unwrap().status(), 200);
    let admin = client(&dir, None, running.admin_addr);
    assert_eq!(admin.get(url(running.admin_addr, "/livez")).send().await.unwrap().status(), 200);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_taken_port_names_the_address() {
    let (_tmp, _dir, mut config) = fixture();
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    config.listen = squatter.local_addr().unwrap();
    let err = server::start(&config, app(), Readiness::new()).await.unwrap_err();
    assert!(matches!(err, ServerError::Bind { what: "API", .. }), "{err}");
    assert!(err.to_string().contains(&config.listen.port().to_string()), "{err}");
}

#[tokio::test]
async fn unusable_certificates_fail_at_start() {
    let (_tmp, dir, mut config) = fixture();
    config.tls.key_file = dir.leaf("identity").key;
    let err = server::start(&config, app(), Readiness::new()).await.unwrap_err();
    assert!(matches!(err, ServerError::Tls { .. }), "{err}");
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(cause.contains("leaves/identity/key.pem") && cause.contains("does not belong"), "{cause}");
}

#[test]
fn server_config_validation_names_keys() {
    let text = "listen: 127.0.0.1:8081\nadmin_listen: 127.0.0.1:8081\ntls:\n  cert_file: c\n  key_file: k\n  ca_file: ca\nlimits:\n  request_timeout: 0s\n";
    let err =
        service_kit::config::load_str::<HttpConfig>(std::path::Path::new("s.yml"), text, "T", Vec::new())
            .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("server.admin_listen"), "{text}");
    assert!(text.contains("server.limits.request_timeout"), "{text}");
}

use service_kit::server::HttpConfig;
