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
use kms::config::{AuthConfig, KmsConfig, RealmConfig, SqliteConfig, StorageConfig, UnsealConfig};
use secrecy::ExposeSecret;
use service_kit::server::HttpConfig;

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

    let dir = tempfile::tempdir().unwrap();
    let pki = pki::ensure(&dir.path().join("pki"), &pki::PkiSpec::demo(), &Default::default()).unwrap();
    let shares = barrier::new_shares(3, 5).unwrap();
    let mut share_files = Vec::new();
    for (i, share) in shares.iter().take(3).enumerate() {
        let path = dir.path().join(format!("share_{i}"));
        std::fs::write(&path, share.encode().expose_secret()).unwrap();
        share_files.push(path);
    }
    let hash = service_kit::password::hash_password(&"bench-pass".to_owned().into()).unwrap();
    let realm_path = dir.path().join("realms.yml");
    std::fs::write(
        &realm_path,
        format!("users:\n  - {{username: svc, password_hash: \"{}\", tenant: {TENANT}, roles: [service, key-manager]}}\n", hash.as_str()),
    )
    .unwrap();
    let server = HttpConfig::loopback(&pki.dir, "kms");
    let config = KmsConfig {
        server: server.clone(),
        storage: StorageConfig { sqlite: SqliteConfig { path: dir.path().join("kms.db") } },
        unseal: UnsealConfig { share_files },
        auth: AuthConfig {
            realms: vec![RealmConfig::File { path: realm_path }],
            cache_ttl: Duration::from_secs(600),
            cache_entries: 1000,
            max_failures: 5,
            failure_window: Duration::from_secs(60),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(900),
            failure_ceiling: 100,
            bearer: None,
        },
        seed: None,
        log_format: Default::default(),
    };
    let kms = kms::service::start(&config).await.unwrap();
    kms.kms.ensure_tenant("bench", TenantId(TENANT.parse().unwrap())).await.unwrap();
    let echo_router = Router::new().route("/echo", post(|body: axum::body::Bytes| async move { body }));
    let echo = service_kit::server::start(&server, echo_router, service_kit::Readiness::new()).await.unwrap();

    let tls = pki::client_config_for(&pki.dir, None).unwrap();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .resolve("kms.demo.local", kms.server.addr)
        .build()
        .unwrap();
    let kms_base = format!("https://kms.demo.local:{}/api/v1", kms.server.addr.port());
    let echo_url = format!("https://kms.demo.local:{}/echo", echo.addr.port());
    let resp = client
        .post(format!("{kms_base}/pools"))
        .basic_auth("svc", Some("bench-pass"))
        .json(&serde_json::json!({"name": "p", "algorithm": "A256GCM"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    let plaintext = base64::engine::general_purpose::STANDARD.encode(vec![7u8; 1024]);
    let encrypt_body = serde_json::json!({ "plaintext": plaintext }).to_string();
    let jwe: serde_json::Value = client
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
    let decrypt_body = serde_json::json!({ "jwe": jwe["jwe"] }).to_string();

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
