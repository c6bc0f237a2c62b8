//! The trust store against fixture issuers over real HTTPS (the demo PKI): discovery, explicit
//! JWKS URLs, the tenants an issuer is authority for, the mix-up attack, validation of the file
//! and reloading it.
// Test code: a failed setup step is the test's failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};
use test_support::TestDir;
use test_support::jwt::{Signer, now};
use trust_store::{Refusal, TrustHandle, TrustStore};

const ACME: &str = "0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10";
const GLOBEX: &str = "7d1e2a90-4b3c-4f5e-8a6b-1c2d3e4f5a6b";
const AUDIENCE: &str = "https://kms.demo.local:8081";

/// What the fixture serves: its discovery document's `issuer` (the honest one, or another for
/// the mix-up) and its JWKS.
struct Served {
    discovery_issuer: Mutex<String>,
    jwks: Value,
    base: Mutex<String>,
}

async fn discovery(State(s): State<Arc<Served>>) -> axum::Json<Value> {
    let base = s.base.lock().unwrap().clone();
    axum::Json(json!({ "issuer": *s.discovery_issuer.lock().unwrap(), "jwks_uri": format!("{base}/jwks") }))
}

async fn jwks(State(s): State<Arc<Served>>) -> axum::Json<Value> {
    axum::Json(s.jwks.clone())
}

/// A fixture issuer at `https://identity.demo.local:PORT` (the demo PKI's identity leaf).
struct Fixture {
    dir: TestDir,
    signer: Signer,
    served: Arc<Served>,
    addr: SocketAddr,
    server: Option<service_kit::server::RunningServer>,
}

impl Fixture {
    async fn start() -> Self {
        let dir = TestDir::with_demo_pki();
        let signer = Signer::new("fixture-1");
        let served = Arc::new(Served {
            discovery_issuer: Mutex::new(String::new()),
            jwks: signer.jwks(),
            base: Mutex::new(String::new()),
        });
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state(served.clone());
        let server =
            service_kit::server::start(&dir.loopback("identity"), router, service_kit::Readiness::new())
                .await
                .unwrap();
        let addr = server.addr;
        let fixture = Self { dir, signer, served, addr, server: Some(server) };
        *fixture.served.base.lock().unwrap() = fixture.issuer();
        *fixture.served.discovery_issuer.lock().unwrap() = fixture.issuer();
        fixture
    }

    /// Stops serving: the issuer is down.
    async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.unwrap();
        }
    }

    fn issuer(&self) -> String {
        format!("https://identity.demo.local:{}", self.addr.port())
    }

    /// One issuer entry for the fixture, `extra` lines added.
    fn entry(&self, tenants: &[&str], extra: &str) -> String {
        format!(
            "  - issuer: {}\n    audiences: [{AUDIENCE}]\n    tenants: [{}]\n    ca_file: {}\n    resolve: {{ identity.demo.local: \"{}\" }}\n{extra}",
            self.issuer(),
            tenants.join(", "),
            self.dir.pki().ca_bundle().display(),
            self.addr
        )
    }

    fn write(&self, text: &str) -> PathBuf {
        self.dir.write("trust.yml", text)
    }

    fn token(&self, edit: impl FnOnce(&mut Value)) -> String {
        let now = now();
        let mut claims = json!({
            "iss": self.issuer(), "sub": "partner-svc", "aud": AUDIENCE, "exp": now + 300, "iat": now,
            "nbf": now, "scope": "kms:encrypt", "tenant_id": ACME, "roles": ["service"],
        });
        edit(&mut claims);
        self.signer.token("at+jwt", &claims)
    }
}

#[tokio::test]
async fn a_token_of_a_trusted_issuer_is_accepted_for_its_tenants_only() {
    let f = Fixture::start().await;
    let store = TrustStore::load(&f.write(&format!("issuers:\n{}", f.entry(&[ACME], "")))).unwrap();
    assert_eq!(store.issuers().collect::<Vec<_>>(), [f.issuer().as_str()]);

    // The process's Prometheus recorder (the services' own), installed before the first count.
    let metrics = service_kit::metrics::prometheus().expect("a metrics recorder");
    let verified = store.verify(&f.token(|_| {})).await.unwrap();
    assert_eq!((verified.issuer.as_str(), verified.tenant.canonical().as_str()), (f.issuer().as_str(), ACME));
    assert_eq!(verified.claims["sub"], "partner-svc");

    let other_tenant = store.verify(&f.token(|c| c["tenant_id"] = GLOBEX.into())).await.unwrap_err();
    assert_eq!(other_tenant, Refusal::NotAuthority { issuer: f.issuer(), tenant: GLOBEX.to_owned() });
    assert!(other_tenant.to_string().contains("is not the authority for tenant"), "{other_tenant}");
    for (why, token, want) in [
        ("no tenant", f.token(|c| { c.as_object_mut().unwrap().remove("tenant_id"); }), Refusal::NoTenant),
        ("upper-case tenant", f.token(|c| c["tenant_id"] = ACME.to_uppercase().into()), Refusal::NoTenant),
        ("unknown issuer", f.token(|c| c["iss"] = "https://evil.example".into()), Refusal::UnknownIssuer),
        ("not a JWT", "not-a-token".to_owned(), Refusal::UnknownIssuer),
        ("expired", f.token(|c| { c["exp"] = (now() - 600).into(); c["iat"] = (now() - 900).into(); }), Refusal::Invalid("expired".into())),
        ("wrong audience", f.token(|c| c["aud"] = "https://other.example".into()), Refusal::Invalid("wrong_audience".into())),
        ("wrong type", f.signer.token("JWT", &json!({"iss": f.issuer(), "sub": "x", "aud": AUDIENCE, "exp": now() + 60, "tenant_id": ACME})), Refusal::Invalid("wrong_type".into())),
    ] {
        assert_eq!(store.verify(&token).await.unwrap_err(), want, "{why}");
    }
    let text = metrics.render();
    let series = |outcome: &str| {
        format!("trust_store_verifications_total{{issuer=\"{}\",outcome=\"{outcome}\"}}", f.issuer())
    };
    for outcome in ["ok", "not_authority", "no_tenant", "invalid"] {
        assert!(text.contains(&series(outcome)), "{outcome} is counted:\n{text}");
    }
    assert!(
        text.contains("trust_store_verifications_total{issuer=\"unknown\",outcome=\"unknown_issuer\"}"),
        "{text}"
    );
    assert!(text.contains("jwks_discovery_total"), "discovery is counted:\n{text}");
    // One fetch of the document, every later token a hit on the kept one.
    for outcome in ["miss", "hit"] {
        let series =
            format!("jwks_discovery_lookups_total{{provider=\"{}\",outcome=\"{outcome}\"}}", f.issuer());
        assert!(text.contains(&series), "{series}:\n{text}");
    }
    // Another key with the same kid: the signature does not verify.
    let forger = Signer::new("fixture-1");
    let forged = forger.token(
        "at+jwt",
        &json!({"iss": f.issuer(), "sub": "x", "aud": AUDIENCE, "exp": now() + 60, "tenant_id": ACME}),
    );
    assert!(matches!(store.verify(&forged).await.unwrap_err(), Refusal::Invalid(_)));
}

#[tokio::test]
async fn a_discovery_document_naming_another_issuer_is_refused() {
    let f = Fixture::start().await;
    *f.served.discovery_issuer.lock().unwrap() = "https://evil.demo.local".to_owned();
    let store = TrustStore::load(&f.write(&format!("issuers:\n{}", f.entry(&[ACME], "")))).unwrap();
    match store.verify(&f.token(|_| {})).await.unwrap_err() {
        Refusal::Unavailable(why) => {
            assert!(why.contains("mix-up") && why.contains("evil.demo.local"), "{why}")
        }
        other => panic!("the mix-up must be refused: {other:?}"),
    }
    // Discovery is tried again on a later token (a failure is shared for a second, so tokens
    // queued behind it do not each ask): once the document is honest, it works.
    *f.served.discovery_issuer.lock().unwrap() = f.issuer();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    store.verify(&f.token(|_| {})).await.unwrap();
}

#[tokio::test]
async fn an_explicit_jwks_uri_needs_no_discovery() {
    let f = Fixture::start().await;
    // The discovery document lies, but is never read.
    *f.served.discovery_issuer.lock().unwrap() = "https://evil.demo.local".to_owned();
    let extra = format!("    enable_discovery: false\n    jwks_uri: {}/jwks\n", f.issuer());
    let store =
        TrustStore::load(&f.write(&format!("issuers:\n{}", f.entry(&[ACME, GLOBEX], &extra)))).unwrap();
    store.verify(&f.token(|_| {})).await.unwrap();
    store.verify(&f.token(|c| c["tenant_id"] = GLOBEX.into())).await.unwrap();
}

#[tokio::test]
async fn an_invalid_file_is_refused_naming_the_key() {
    let f = Fixture::start().await;
    let good = f.entry(&[ACME], "");
    for (text, key) in [
        (format!("issuers:\n{}", f.entry(&["acme"], "")), "issuers[0].tenants"),
        (format!("issuers:\n{}", f.entry(&[&ACME.to_uppercase()], "")), "issuers[0].tenants"),
        (format!("issuers:\n{}", f.entry(&[ACME], "    jwks_uri: https://x/jwks\n")), "issuers[0].jwks_uri"),
        (format!("issuers:\n{}", f.entry(&[ACME], "    enable_discovery: false\n")), "issuers[0].jwks_uri"),
        (format!("issuers:\n{}", f.entry(&[ACME], "    algorithms: [HS256]\n")), "issuers[0].algorithms"),
        (format!("issuers:\n{good}{good}"), "issuers[1].issuer"),
        (format!("issuers:\n{}", good.replace("https://identity", "http://identity")), "issuers[0].issuer"),
        (
            format!("issuers:\n{}", good.replace(&format!("audiences: [{AUDIENCE}]"), "audiences: []")),
            "issuers[0].audiences",
        ),
        (format!("issuers:\n{}", good.replace("ca_file: ", "ca_file: /nonexistent")), "issuers[0].ca_file"),
        (format!("issuers:\n{good}    trust_everyone: true\n"), "trust_everyone"),
    ] {
        let err = TrustStore::load(&f.write(&text)).unwrap_err();
        let mut chain = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            chain.push_str(&format!(": {s}"));
            source = s.source();
        }
        assert!(chain.contains(key), "{key}: {chain}\n{text}");
    }
}

#[tokio::test]
async fn a_reload_keeps_unchanged_issuers_and_refuses_a_broken_file() {
    let f = Fixture::start().await;
    let second = "  - issuer: https://partner.example\n    audiences: [https://kms.demo.local:8081]\n    tenants: [7d1e2a90-4b3c-4f5e-8a6b-1c2d3e4f5a6b]\n";
    let path = f.write(&format!("issuers:\n{}", f.entry(&[ACME], "")));
    let handle = Arc::new(TrustHandle::open(&path).unwrap());
    handle.current().verify(&f.token(|_| {})).await.unwrap();

    // A second issuer added: the first keeps its discovered keys (the same entry object).
    std::fs::write(&path, format!("issuers:\n{}{second}", f.entry(&[ACME], ""))).unwrap();
    let outcome = handle.reload().unwrap();
    assert_eq!(
        (outcome.kept, outcome.loaded),
        (vec![f.issuer()], vec!["https://partner.example".to_owned()])
    );
    handle.current().verify(&f.token(|_| {})).await.unwrap();

    // A broken file: refused with the reason, the store in force stays.
    std::fs::write(&path, format!("issuers:\n{}", f.entry(&["not-a-uuid"], ""))).unwrap();
    let err = handle.reload().unwrap_err();
    assert!(format!("{err:?}").contains("tenants"), "{err:?}");
    assert!(handle.current().knows("https://partner.example"));
    handle.current().verify(&f.token(|_| {})).await.unwrap();

    // The watcher picks a change up by itself; the fixture's tenant list shrinks to globex.
    let _watch = handle.spawn_watch(Duration::from_millis(100));
    std::fs::write(&path, format!("issuers:\n{}", f.entry(&[GLOBEX], ""))).unwrap();
    let started = std::time::Instant::now();
    loop {
        let refused = handle.current().verify(&f.token(|_| {})).await;
        if matches!(refused, Err(Refusal::NotAuthority { .. })) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the watcher never reloaded: {refused:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!handle.current().knows("https://partner.example"), "removed with the reload");
}

#[tokio::test]
async fn with_a_cache_dir_a_restart_verifies_while_the_issuer_is_down() {
    use std::os::unix::fs::PermissionsExt as _;
    let mut f = Fixture::start().await;
    let cache = f.dir.path().join("trust-cache");
    let entry = f.entry(&[ACME], "");
    let cached = f.dir.write("cached.yml", format!("cache_dir: {}\nissuers:\n{entry}", cache.display()));
    let uncached = f.dir.write("uncached.yml", format!("issuers:\n{entry}"));
    TrustStore::load(&cached).unwrap().verify(&f.token(|_| {})).await.unwrap();
    assert_eq!(std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777, 0o700);
    // The document and the key set are written off the request path.
    let started = std::time::Instant::now();
    let files = || std::fs::read_dir(&cache).map(|d| d.count()).unwrap_or(0);
    while files() < 2 {
        assert!(started.elapsed() < Duration::from_secs(5), "the snapshots were not written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    f.stop().await;
    let token = f.token(|_| {});
    TrustStore::load(&cached).unwrap().verify(&token).await.unwrap();
    // The same restart without a cache has nothing to verify with.
    assert!(matches!(
        TrustStore::load(&uncached).unwrap().verify(&token).await,
        Err(Refusal::Unavailable(_))
    ));
}
