//! Throughput of the KMS over HTTPS on SQLite and on PostgreSQL, against a same-run baseline.
//!
//! Five workloads on one machine, in alternating rounds, each a bounded number of requests by a
//! fixed number of concurrent HTTP/2 clients on loopback:
//!
//! * `echo`: a bare endpoint on the same `service-kit` stack (TLS 1.3, the same layers), no
//!   authentication — the baseline;
//! * `encrypt sqlite`, `encrypt postgres`: `POST /api/v1/pools/p/encrypt` with Basic auth
//!   (verification cache warm) on a KMS over SQLite, and on a second KMS with the same
//!   configuration over PostgreSQL (a fresh database on a throwaway local cluster);
//! * `decrypt sqlite`, `decrypt postgres`: `POST /api/v1/decrypt` of a ciphertext made by that
//!   KMS's encrypt.
//!
//! Request bodies are the same size (1 KiB of plaintext, base64 in JSON) for all of them.
//! Where PostgreSQL is not installed, the benchmark says so and runs the SQLite workloads only.
//! Run: `cargo bench -p kms --bench throughput` (env `KMS_BENCH_REQUESTS`,
//! `KMS_BENCH_CONCURRENCY`, `KMS_BENCH_ROUNDS`).
// A benchmark panics on setup failure: there is nothing to report without a running server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use base64::Engine as _;
use kms::TenantId;
use kms::config::{AuthConfig, KmsConfig, RealmConfig, StorageConfig};
use kms::service::RunningKms;
use kms_proto::{Algorithm, CreatePool, DecryptRequest, EncryptRequest, EncryptResponse};
use test_support::bench;

const TENANT: &str = "0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10";

fn main() {
    bench::block_on(run(bench::Params::from_env("KMS")));
}

/// One KMS under load: its API's base URL and the body of a decrypt it can answer.
struct Instance {
    running: RunningKms,
    base: String,
    decrypt_body: String,
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
    let plaintext = base64::engine::general_purpose::STANDARD.encode(vec![7u8; 1024]);
    let encrypt_body = serde_json::to_string(&EncryptRequest { plaintext, aad: None }).unwrap();

    let test_support::Running { service, client } =
        test_support::kms::start(&dir, &config, Default::default()).await;
    let sqlite = instance(&client, service, &encrypt_body).await;
    // The same configuration (shares, realm, limits, listener) with PostgreSQL as the store.
    let postgres = match test_support::postgres::server() {
        Some(server) => {
            let config =
                KmsConfig { storage: StorageConfig::postgres(server.fresh_database()), ..config.clone() };
            let service = test_support::kms::start(&dir, &config, Default::default()).await.service;
            Some(instance(&client, service, &encrypt_body).await)
        }
        None => {
            eprintln!(
                "\n*** PostgreSQL is not installed (no initdb/pg_ctl): measuring the SQLite workloads ONLY ***\n"
            );
            None
        }
    };
    let echo_router = Router::new().route("/echo", post(|body: axum::body::Bytes| async move { body }));
    let echo =
        service_kit::server::start(&config.server, echo_router, service_kit::Readiness::new()).await.unwrap();
    let echo_url = format!("https://kms.demo.local:{}/echo", echo.addr.port());

    // Workload names per engine, then (url, body, Basic auth?) per workload.
    let mut engines = vec![(["encrypt sqlite", "decrypt sqlite"], &sqlite)];
    if let Some(postgres) = &postgres {
        engines.push((["encrypt postgres", "decrypt postgres"], postgres));
    }
    let mut workloads = vec![("echo", (echo_url, encrypt_body.clone(), false))];
    for ([encrypt, _], kms) in &engines {
        workloads.push((*encrypt, (format!("{}/pools/p/encrypt", kms.base), encrypt_body.clone(), true)));
    }
    for ([_, decrypt], kms) in &engines {
        workloads.push((*decrypt, (format!("{}/decrypt", kms.base), kms.decrypt_body.clone(), true)));
    }
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
    bench::report_pairs(
        &results,
        &[
            ("echo", "encrypt sqlite"),
            ("echo", "encrypt postgres"),
            ("encrypt sqlite", "encrypt postgres"),
            ("echo", "decrypt sqlite"),
            ("echo", "decrypt postgres"),
            ("decrypt sqlite", "decrypt postgres"),
        ],
    );
    sqlite.running.shutdown().await.unwrap();
    if let Some(postgres) = postgres {
        postgres.running.shutdown().await.unwrap();
    }
    echo.shutdown().await.unwrap();
}

/// Prepares a started KMS for the load: its tenant, the pool `p` and a ciphertext to decrypt.
async fn instance(client: &reqwest::Client, running: RunningKms, encrypt_body: &str) -> Instance {
    running.kms.ensure_tenant("bench", TenantId(TENANT.parse().unwrap())).await.unwrap();
    let base = format!("https://kms.demo.local:{}/api/v1", running.server.addr.port());
    let resp = client
        .post(format!("{base}/pools"))
        .basic_auth("svc", Some("bench-pass"))
        .json(&CreatePool { name: "p".into(), algorithm: Algorithm::A256Gcm })
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let encrypted: EncryptResponse = client
        .post(format!("{base}/pools/p/encrypt"))
        .basic_auth("svc", Some("bench-pass"))
        .header("content-type", "application/json")
        .body(encrypt_body.to_owned())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let decrypt_body = serde_json::to_string(&DecryptRequest::from(encrypted.jwe)).unwrap();
    Instance { running, base, decrypt_body }
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
