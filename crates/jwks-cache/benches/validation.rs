//! Local costs of token validation with a warm cache (criterion):
//!
//! - `es256_verify`: one ES256 signature check through the verifier key (the baseline);
//! - `cache_hit_lookup`: `Provider::key` on a fresh cached set (no signature check);
//! - `validate_es256_token`: a whole `Validator::validate` of an ES256 `at+jwt` token.
//!
//! The cache is filled once from an in-process HTTPS issuer (axum on rustls, certificates from
//! `pki`) so the provider under test is the production one; nothing crosses the network while
//! measuring: the futures complete on their first poll.
// Benchmarks unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt as _;
use jwks_cache::{Algorithm, Provider, ProviderConfig, TrustRoots, Validator, ValidatorConfig};
use serde_json::json;

const HOST: &str = "identity.demo.local";
const ISSUER: &str = "https://issuer.bench";

struct Setup {
    _runtime: tokio::runtime::Runtime,
    _tmp: test_support::TestDir,
    provider: Provider,
    validator: Validator,
    token: String,
    kid: String,
    message: Vec<u8>,
    signature: Vec<u8>,
}

fn setup() -> Setup {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let tmp = test_support::TestDir::with_demo_pki();

    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    let kid = "bench-key".to_owned();
    // A realistic set: the signing key among a few others.
    let mut keys = vec![json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    })];
    for i in 0..4 {
        let other = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let other = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, other.as_ref()).unwrap();
        let p = other.public_key().as_ref();
        keys.push(json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "kid": format!("other-{i}"),
            "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..]),
        }));
    }
    let body = Arc::new(json!({ "keys": keys }).to_string());

    let (provider, validator) = runtime.block_on(async {
        let app = Router::new().route(
            "/jwks",
            get(move || {
                let body = body.clone();
                async move { ([("cache-control", "max-age=3600")], body.to_string()) }
            }),
        );
        let server =
            service_kit::server::start(&tmp.loopback("identity"), app, service_kit::health::Readiness::new())
                .await
                .unwrap();
        let mut c = ProviderConfig::new(ISSUER, format!("https://{HOST}:{}/jwks", server.addr.port()));
        c.trust = TrustRoots::from_pem_file(&tmp.pki().ca_bundle()).unwrap();
        c.resolve = vec![(HOST.to_owned(), server.addr)];
        let provider = Provider::new(c).unwrap();
        provider.refresh().await.unwrap();
        std::mem::forget(server); // serves until the process ends
        let validator = Validator::new(
            provider.clone(),
            ValidatorConfig::new(["kms"], &[Algorithm::ES256]).with_required_typ("at+jwt"),
        )
        .unwrap();
        (provider, validator)
    });

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid}).to_string();
    let claims = json!({
        "iss": ISSUER, "aud": "kms", "sub": "client-1", "client_id": "client-1", "scope": "kms.encrypt kms.decrypt",
        "tenant_id": "0190c3c4-8a6e-7000-8000-000000000001", "iat": now, "exp": now + 3600, "jti": "b3b1c0de",
    })
    .to_string();
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(&header), URL_SAFE_NO_PAD.encode(&claims));
    let signature = pair.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec();
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&signature));
    Setup {
        _runtime: runtime,
        _tmp: tmp,
        provider,
        validator,
        token,
        kid,
        message: input.into_bytes(),
        signature,
    }
}

fn benches(c: &mut Criterion) {
    let s = setup();
    let key = s.provider.cached_key(&s.kid).unwrap();
    assert!(key.verify(Algorithm::ES256, &s.message, &s.signature));
    assert!(s.validator.validate(&s.token).now_or_never().unwrap().is_ok());

    c.bench_function("es256_verify", |b| {
        b.iter(|| black_box(key.verify(Algorithm::ES256, black_box(&s.message), black_box(&s.signature))))
    });
    c.bench_function("cache_hit_lookup", |b| {
        b.iter(|| black_box(s.provider.key(black_box(&s.kid)).now_or_never().unwrap().unwrap()))
    });
    c.bench_function("validate_es256_token", |b| {
        b.iter(|| black_box(s.validator.validate(black_box(&s.token)).now_or_never().unwrap().unwrap()))
    });
}

criterion_group! {
    name = validation;
    config = Criterion::default().sample_size(50).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = benches
}
criterion_main!(validation);
