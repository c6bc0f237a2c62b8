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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::Router;
use axum::routing::post;
use identity::config::SeedConfig;

const SECRET: &str = "bench-client-secret";
const FORM: &str = "grant_type=client_credentials";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let requests = env_usize("IDENTITY_BENCH_REQUESTS", 4000);
    let concurrency = env_usize("IDENTITY_BENCH_CONCURRENCY", 32);
    let rounds = env_usize("IDENTITY_BENCH_ROUNDS", 3);

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

    let workloads = [
        ("echo", format!("https://identity.demo.local:{}/echo", echo.addr.port()), false),
        ("token", format!("https://identity.demo.local:{}/token", identity.server.addr.port()), true),
    ];
    // Warm-up: connections, the verified-secret cache, the allocator.
    for (_, url, auth) in &workloads {
        load(&client, url, *auth, 200, concurrency).await;
    }
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); workloads.len()];
    for _ in 0..rounds {
        for (i, (_, url, auth)) in workloads.iter().enumerate() {
            results[i].push(load(&client, url, *auth, requests, concurrency).await);
        }
    }
    println!(
        "Identity client_credentials: {requests} requests x {rounds} rounds, {concurrency} concurrent HTTP/2 clients"
    );
    println!("{:<8} {:>12} {:>12} {:>12} {:>10}", "workload", "median req/s", "min", "max", "vs echo");
    let medians: Vec<f64> = results
        .iter()
        .map(|v| {
            let mut v = v.clone();
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        })
        .collect();
    for (i, (name, ..)) in workloads.iter().enumerate() {
        let (min, max) = results[i].iter().fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        println!(
            "{:<8} {:>12.0} {:>12.0} {:>12.0} {:>9.0}%",
            name,
            medians[i],
            min,
            max,
            100.0 * medians[i] / medians[0]
        );
    }
    identity.shutdown().await.unwrap();
    echo.shutdown().await.unwrap();
}

/// Sends `total` requests with `concurrency` workers; returns requests per second. Every answer
/// must be 200 (and a token must look like a JWT), so an error cannot pass for speed.
async fn load(client: &reqwest::Client, url: &str, auth: bool, total: usize, concurrency: usize) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, next) = (client.clone(), url.to_owned(), next.clone());
        workers.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let mut req =
                    client.post(&url).header("content-type", "application/x-www-form-urlencoded").body(FORM);
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
        });
    }
    while let Some(worker) = workers.join_next().await {
        worker.expect("a load worker failed (its panic is printed above): the figures would be wrong");
    }
    total as f64 / started.elapsed().as_secs_f64()
}
