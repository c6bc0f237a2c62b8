//! Throughput of the KMS over HTTPS, against a same-run baseline.
//!
//! Three workloads on one machine, in alternating rounds, each a bounded number of requests by a
//! fixed number of concurrent HTTP/2 clients on loopback:
//!
//! * `echo`: a bare endpoint on the same `service-kit` stack (TLS 1.3, the same layers), no
//!   authentication — the baseline;
//! * `encrypt`: `POST /api/v1/pools/p/encrypt` with Basic auth (verification cache warm);
//! * `decrypt`: `POST /api/v1/decrypt` of a ciphertext made by encrypt.
//!
//! Request bodies are the same size (1 KiB of plaintext, base64 in JSON) for all three.
//! Run: `cargo bench -p kms --bench throughput` (env `KMS_BENCH_REQUESTS`, `KMS_BENCH_CONCURRENCY`).
// A benchmark panics on setup failure: there is nothing to report without a running server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use base64::Engine as _;
use kms::TenantId;
use kms::config::{AuthConfig, RealmConfig};
use kms_proto::{Algorithm, CreatePool, DecryptRequest, EncryptRequest, EncryptResponse};

const TENANT: &str = "0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let requests = env_usize("KMS_BENCH_REQUESTS", 4000);
    let concurrency = env_usize("KMS_BENCH_CONCURRENCY", 32);
    let rounds = env_usize("KMS_BENCH_ROUNDS", 3);

    let dir = test_support::TestDir::with_demo_pki();
    let hash = service_kit::password::hash_password(&"bench-pass".to_owned().into()).unwrap();
    let realm_path = dir.write(
        "realms.yml",
        format!("users:\n  - {{username: svc, password_hash: \"{}\", tenant: {TENANT}, roles: [service, key-manager]}}\n", hash.as_str()),
    );
    let config = test_support::kms::config(
        &dir,
        AuthConfig {
            cache_ttl: Duration::from_secs(600),
            cache_entries: 1000,
            ..test_support::kms::auth(vec![RealmConfig::File { path: realm_path }])
        },
    );
    let test_support::Running { service: kms, client } =
        test_support::kms::start(&dir, &config, Default::default()).await;
    kms.kms.ensure_tenant("bench", TenantId(TENANT.parse().unwrap())).await.unwrap();
    let echo_router = Router::new().route("/echo", post(|body: axum::body::Bytes| async move { body }));
    let echo =
        service_kit::server::start(&config.server, echo_router, service_kit::Readiness::new()).await.unwrap();

    let kms_base = format!("https://kms.demo.local:{}/api/v1", kms.server.addr.port());
    let echo_url = format!("https://kms.demo.local:{}/echo", echo.addr.port());
    let resp = client
        .post(format!("{kms_base}/pools"))
        .basic_auth("svc", Some("bench-pass"))
        .json(&CreatePool { name: "p".into(), algorithm: Algorithm::A256Gcm })
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    let plaintext = base64::engine::general_purpose::STANDARD.encode(vec![7u8; 1024]);
    let encrypt_body = serde_json::to_string(&EncryptRequest { plaintext, aad: None }).unwrap();
    let encrypted: EncryptResponse = client
        .post(format!("{kms_base}/pools/p/encrypt"))
        .basic_auth("svc", Some("bench-pass"))
        .header("content-type", "application/json")
        .body(encrypt_body.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let decrypt_body = serde_json::to_string(&DecryptRequest::from(encrypted.jwe)).unwrap();

    let workloads: Vec<(&str, String, String, bool)> = vec![
        ("echo", echo_url, encrypt_body.clone(), false),
        ("encrypt", format!("{kms_base}/pools/p/encrypt"), encrypt_body, true),
        ("decrypt", format!("{kms_base}/decrypt"), decrypt_body, true),
    ];
    // Warm-up: connections, caches, allocator.
    for (_, url, body, auth) in &workloads {
        load(&client, url, body, *auth, 200, concurrency).await;
    }
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); workloads.len()];
    for _ in 0..rounds {
        for (i, (_, url, body, auth)) in workloads.iter().enumerate() {
            results[i].push(load(&client, url, body, *auth, requests, concurrency).await);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let medians: Vec<f64> = results.iter_mut().map(median).collect();
    println!(
        "KMS throughput: {requests} requests x {rounds} rounds, {concurrency} concurrent HTTP/2 clients, 1 KiB plaintext"
    );
    println!("{:<8} {:>12} {:>12} {:>12} {:>10}", "workload", "median req/s", "min", "max", "vs echo");
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
    kms.shutdown().await.unwrap();
    echo.shutdown().await.unwrap();
}

/// Sends `total` requests with `concurrency` workers; returns requests per second. Every
/// response must be 200, so an error cannot pass for speed.
async fn load(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    auth: bool,
    total: usize,
    concurrency: usize,
) -> f64 {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, body, next) = (client.clone(), url.to_owned(), body.to_owned(), next.clone());
        workers.spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                let mut req = client.post(&url).header("content-type", "application/json").body(body.clone());
                if auth {
                    req = req.basic_auth("svc", Some("bench-pass"));
                }
                let resp = req.send().await.unwrap();
                assert_eq!(resp.status(), 200, "{url}");
                resp.bytes().await.unwrap();
            }
        });
    }
    while let Some(worker) = workers.join_next().await {
        worker.expect("a load worker failed (its panic is printed above): the figures would be wrong");
    }
    total as f64 / started.elapsed().as_secs_f64()
}
