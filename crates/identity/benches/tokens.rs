//! `client_credentials` tokens per second over HTTPS, against a same-run baseline.
//!
//! Two workloads in alternating rounds, each a bounded number of requests by a fixed number of
//! concurrent HTTP/2 clients on loopback:
//!
//! * `echo`: a bare form-echo endpoint on the same `service-kit` stack (TLS 1.3, the same
//!   layers), no authentication — the baseline;
//! * `token`: `POST /token` with `grant_type=client_credentials` and `client_secret_basic`
//!   (verified-credential cache warm), each answer an ES256-signed RFC 9068 JWT.
//!
//! Run: `cargo bench -p identity --bench tokens` (env `IDENTITY_BENCH_REQUESTS`,
//! `IDENTITY_BENCH_CONCURRENCY`, `IDENTITY_BENCH_ROUNDS`).
// A benchmark panics on setup failure: there is nothing to report without a running server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use axum::routing::post;
use identity::config::SeedConfig;
use test_support::bench;

const SECRET: &str = "bench-client-secret";
const FORM: &str = "grant_type=client_credentials";

fn main() {
    bench::block_on(run(bench::Params::from_env("IDENTITY")));
}

async fn run(bench::Params { requests, concurrency, rounds }: bench::Params) {
    let dir = test_support::TestDir::with_demo_pki();
    dir.write("secret", SECRET);
    let seed = SeedConfig {
        file: dir.write(
            "seed.yml",
            "clients:\n  - {client_id: bench, type: confidential, secret_file: secret, grant_types: [client_credentials], \
             scopes: [kms:encrypt], audiences: [https://kms.demo.local:8081], tenant: acme, roles: [service]}\n",
        ),
        tenants_file: dir.tenants_file(&[("acme", "0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10")]),
        secrets_dir: dir.path().to_owned(),
    };
    let config = test_support::identity::config(&dir, Some(seed));
    let test_support::Running { service: identity, client } =
        test_support::identity::start(&dir, &config, identity::service::StartOptions { demo: true })
            .await
            .unwrap();
    let echo_router = Router::new().route("/echo", post(|body: axum::body::Bytes| async move { body }));
    let echo =
        service_kit::server::start(&config.server, echo_router, service_kit::Readiness::new()).await.unwrap();

    // (url, authenticated?)
    let workloads = [
        ("echo", (format!("https://identity.demo.local:{}/echo", echo.addr.port()), false)),
        ("token", (format!("https://identity.demo.local:{}/token", identity.server.addr.port()), true)),
    ];
    // The warm-up (connections, the verified-secret cache, the allocator) and the rounds.
    let results = bench::measure(&workloads, rounds, requests, async |(url, auth), n| {
        load(&client, url, *auth, n, concurrency).await
    })
    .await;
    bench::report(
        &format!(
            "Identity client_credentials: {requests} requests x {rounds} rounds, {concurrency} concurrent HTTP/2 clients"
        ),
        &results,
    );
    identity.shutdown().await.unwrap();
    echo.shutdown().await.unwrap();
}

/// Sends `total` requests with `concurrency` workers; returns requests per second. Every answer
/// must be 200 (and a token must look like a JWT), so an error cannot pass for speed.
async fn load(client: &reqwest::Client, url: &str, auth: bool, total: usize, concurrency: usize) -> f64 {
    let (client, url) = (client.clone(), Arc::<str>::from(url));
    bench::load(total, concurrency, move || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let mut req =
                client.post(&*url).header("content-type", "application/x-www-form-urlencoded").body(FORM);
            if auth {
                req = req.basic_auth("bench", Some(SECRET));
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200, "{url}");
            let body = resp.bytes().await.unwrap();
            if auth {
                assert!(body.starts_with(b"{\"access_token\":\"ey"), "not a token");
            }
        }
    })
    .await
}
