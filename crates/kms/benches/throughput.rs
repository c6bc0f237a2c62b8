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
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use base64::Engine as _;
use kms::TenantId;
use kms::config::{AuthConfig, RealmConfig};
use kms_proto::{Algorithm, CreatePool, DecryptRequest, EncryptRequest, EncryptResponse};
use test_support::bench;

const TENANT: &str = "0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10";

fn main() {
    bench::block_on(run(bench::Params::from_env("KMS")));
}

async fn run(bench::Params { requests, concurrency, rounds }: bench::Params) {
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

    // (url, body, Basic auth?)
    let workloads = [
        ("echo", (echo_url, encrypt_body.clone(), false)),
        ("encrypt", (format!("{kms_base}/pools/p/encrypt"), encrypt_body, true)),
        ("decrypt", (format!("{kms_base}/decrypt"), decrypt_body, true)),
    ];
    // The warm-up (connections, caches, allocator) and the rounds.
    let results = bench::measure(&workloads, rounds, requests, async |(url, body, auth), n| {
        load(&client, url, body, *auth, n, concurrency).await
    })
    .await;
    bench::report(
        &format!(
            "KMS throughput: {requests} requests x {rounds} rounds, {concurrency} concurrent HTTP/2 clients, 1 KiB plaintext"
        ),
        &results,
    );
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
    let (client, url, body) = (client.clone(), Arc::<str>::from(url), Arc::<str>::from(body));
    bench::load(total, concurrency, move || {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        async move {
            let mut req =
                client.post(&*url).header("content-type", "application/json").body(body.to_string());
            if auth {
                req = req.basic_auth("svc", Some("bench-pass"));
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200, "{url}");
            resp.bytes().await.unwrap();
        }
    })
    .await
}
