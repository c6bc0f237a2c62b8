//! The fixture issuer (axum over rustls on 127.0.0.1 with a PKI from `pki::ensure`), signing
//! keys and tokens.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwks_cache::{ManualClock, Provider, ProviderConfig, RetryPolicy, SpkiPin, TrustRoots};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use service_kit::health::Readiness;
use service_kit::server::{self, RunningServer};
use test_support::TestDir;

/// The fixture's host name (a SAN of the `identity` leaf), resolved to 127.0.0.1.
pub const HOST: &str = "identity.demo.local";
/// The audience every test token carries.
pub const AUD: &str = "kms";

/// How the fixture answers `/jwks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// 200 with the current keys (or 304 when If-None-Match matches).
    Ok,
    /// This status, empty body.
    Status(u16),
    /// A 200 whose body is this many bytes; streamed without Content-Length when `chunked`.
    Oversized { bytes: usize, chunked: bool },
    /// A 200 whose body is not JSON.
    InvalidJson,
    /// A 302 to this URL.
    Redirect(String),
}

/// What the fixture serves and what it has seen.
#[derive(Debug)]
pub struct Issuer {
    pub requests: AtomicUsize,
    /// Delayed requests whose delay has run out (the answer is on its way). Tests compare
    /// against it instead of timing: "finished before the slow answer" is an ordering.
    pub slow_answered: AtomicUsize,
    pub not_modified: AtomicUsize,
    pub conditional: AtomicUsize,
    /// Answer 500 to this many requests before behaving.
    pub fail_next: AtomicUsize,
    pub mode: Mutex<Mode>,
    pub delay: Mutex<Duration>,
    pub keys: Mutex<Vec<Value>>,
    pub cache_control: Mutex<String>,
    /// Send `Last-Modified` (and honour If-Modified-Since) instead of an ETag.
    pub last_modified_only: std::sync::atomic::AtomicBool,
    /// The discovery document (`/.well-known/openid-configuration`; 404 when `None`), served
    /// with `cache_control` and an ETag of its own.
    pub discovery: Mutex<Option<Value>>,
    pub discovery_requests: AtomicUsize,
    pub discovery_not_modified: AtomicUsize,
}

impl Issuer {
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn slow_answered(&self) -> usize {
        self.slow_answered.load(Ordering::SeqCst)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    pub fn set_keys(&self, keys: &[&TestKey]) {
        *self.keys.lock().unwrap() = keys.iter().map(|k| k.jwk()).collect();
    }

    pub fn set_raw_keys(&self, keys: Vec<Value>) {
        *self.keys.lock().unwrap() = keys;
    }

    pub fn set_cache_control(&self, value: &str) {
        *self.cache_control.lock().unwrap() = value.to_owned();
    }

    fn body_and_etag(&self) -> (String, String) {
        let body = json!({ "keys": *self.keys.lock().unwrap() }).to_string();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body.as_bytes());
        (body, format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12])))
    }
}

async fn discovery(State(issuer): State<Arc<Issuer>>, headers: HeaderMap) -> Response {
    issuer.discovery_requests.fetch_add(1, Ordering::SeqCst);
    let Some(document) = issuer.discovery.lock().unwrap().clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let body = document.to_string();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body.as_bytes());
    let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12]));
    let cache_control = issuer.cache_control.lock().unwrap().clone();
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        issuer.discovery_not_modified.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag), (header::CACHE_CONTROL, cache_control)])
            .into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache_control),
        ],
        body,
    )
        .into_response()
}

async fn jwks(State(issuer): State<Arc<Issuer>>, headers: HeaderMap) -> Response {
    issuer.requests.fetch_add(1, Ordering::SeqCst);
    let delay = *issuer.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
        issuer.slow_answered.fetch_add(1, Ordering::SeqCst);
    }
    if issuer.fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let mode = issuer.mode.lock().unwrap().clone();
    let cache_control = issuer.cache_control.lock().unwrap().clone();
    match mode {
        Mode::Ok if issuer.last_modified_only.load(Ordering::SeqCst) => {
            const MODIFIED: &str = "Wed, 21 Oct 2026 07:28:00 GMT";
            let (body, _) = issuer.body_and_etag();
            let ims = headers.get(header::IF_MODIFIED_SINCE).and_then(|v| v.to_str().ok());
            if ims.is_some() {
                issuer.conditional.fetch_add(1, Ordering::SeqCst);
            }
            if headers.contains_key(header::IF_NONE_MATCH) {
                return StatusCode::BAD_REQUEST.into_response(); // no ETag was ever sent
            }
            if ims == Some(MODIFIED) {
                issuer.not_modified.fetch_add(1, Ordering::SeqCst);
                return (StatusCode::NOT_MODIFIED, [(header::CACHE_CONTROL, cache_control)]).into_response();
            }
            ([(header::LAST_MODIFIED, MODIFIED.to_owned()), (header::CACHE_CONTROL, cache_control)], body)
                .into_response()
        }
        Mode::Ok => {
            let (body, etag) = issuer.body_and_etag();
            let inm = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(str::to_owned);
            if inm.is_some() {
                issuer.conditional.fetch_add(1, Ordering::SeqCst);
            }
            if inm.is_some_and(|v| v.split(',').any(|t| t.trim() == etag)) {
                issuer.not_modified.fetch_add(1, Ordering::SeqCst);
                return (
                    StatusCode::NOT_MODIFIED,
                    [(header::ETAG, etag), (header::CACHE_CONTROL, cache_control)],
                )
                    .into_response();
            }
            (
                [
                    (header::CONTENT_TYPE, "application/jwk-set+json".to_owned()),
                    (header::ETAG, etag),
                    (header::CACHE_CONTROL, cache_control),
                ],
                body,
            )
                .into_response()
        }
        Mode::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Mode::InvalidJson => ([(header::CONTENT_TYPE, "application/json")], "{\"keys\": [").into_response(),
        Mode::Oversized { bytes, chunked: false } => {
            ([(header::CONTENT_TYPE, "application/json")], " ".repeat(bytes)).into_response()
        }
        Mode::Oversized { bytes, chunked: true } => {
            let chunks = (0..bytes.div_ceil(1024)).map(|_| Ok::<_, Infallible>(vec![b' '; 1024]));
            Body::from_stream(futures_util::stream::iter(chunks)).into_response()
        }
        Mode::Redirect(to) => (StatusCode::FOUND, [(header::LOCATION, to)]).into_response(),
    }
}

/// A running fixture issuer with its PKI, and a manual clock for the caches under test.
pub struct Fixture {
    tmp: TestDir,
    pub server: RunningServer,
    pub issuer: Arc<Issuer>,
    pub clock: ManualClock,
    pub key: TestKey,
}

static ISSUER_SEQ: AtomicUsize = AtomicUsize::new(0);

impl Fixture {
    /// Starts the issuer serving one fresh ES256 key, `Cache-Control: max-age=300`.
    pub async fn start() -> Self {
        metrics_snapshotter();
        let tmp = TestDir::with_demo_pki();
        let key = TestKey::new("key-1");
        let issuer = Arc::new(Issuer {
            requests: AtomicUsize::new(0),
            slow_answered: AtomicUsize::new(0),
            not_modified: AtomicUsize::new(0),
            conditional: AtomicUsize::new(0),
            fail_next: AtomicUsize::new(0),
            mode: Mutex::new(Mode::Ok),
            delay: Mutex::new(Duration::ZERO),
            keys: Mutex::new(vec![key.jwk()]),
            cache_control: Mutex::new("max-age=300".to_owned()),
            last_modified_only: Default::default(),
            discovery: Mutex::new(None),
            discovery_requests: AtomicUsize::new(0),
            discovery_not_modified: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/jwks", get(jwks))
            .route("/.well-known/openid-configuration", get(discovery))
            .with_state(issuer.clone());
        let server = server::start(&tmp.loopback("identity"), app, Readiness::new()).await.unwrap();
        Self { tmp, server, issuer, clock: ManualClock::starting_now(), key }
    }

    /// The fixture's demo PKI.
    pub fn pki(&self) -> &pki::PkiDir {
        self.tmp.pki()
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    pub fn url(&self) -> String {
        format!("https://{HOST}:{}/jwks", self.addr().port())
    }

    /// The discovery document's URL.
    pub fn discovery_url(&self) -> String {
        format!("https://{HOST}:{}/.well-known/openid-configuration", self.addr().port())
    }

    /// A unique issuer name (metrics are labelled by issuer, and tests share one recorder).
    pub fn unique_issuer(&self) -> String {
        format!("https://issuer-{}.test", ISSUER_SEQ.fetch_add(1, Ordering::SeqCst))
    }

    /// A provider config for this fixture: our CA only, the fixture's host allowed and
    /// resolved to loopback, the manual clock, fast retries.
    pub fn config(&self) -> ProviderConfig {
        let mut c = ProviderConfig::new(self.unique_issuer(), self.url());
        c.trust = TrustRoots::from_pem_file(&self.pki().ca_bundle()).unwrap();
        c.resolve = vec![(HOST.to_owned(), self.addr())];
        c.clock = Arc::new(self.clock.clone());
        c.retry = RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
        };
        c.request_timeout = Duration::from_secs(3);
        c.min_ttl = Duration::from_secs(60);
        c.max_ttl = Duration::from_secs(3600);
        c.stale_window = Duration::from_secs(600);
        c.refresh_ahead = Duration::from_secs(30);
        c.unknown_kid_interval = Duration::from_secs(30);
        c.failure_cooldown = Duration::from_secs(10);
        c
    }

    pub fn provider(&self) -> Provider {
        Provider::new(self.config()).unwrap()
    }

    /// The SPKI pin of the fixture's server certificate.
    pub fn server_pin(&self) -> SpkiPin {
        let cert = CertificateDer::from_pem_file(self.pki().leaf("identity").cert).unwrap();
        SpkiPin::of_certificate(&cert).unwrap()
    }

    /// Claims for `issuer`, valid for 5 minutes from the manual clock's now.
    pub fn claims(&self, issuer: &str) -> Value {
        let now = self.now();
        json!({"iss": issuer, "aud": AUD, "sub": "alice", "iat": now, "exp": now + 300, "scope": "kms.encrypt"})
    }

    pub fn now(&self) -> u64 {
        use jwks_cache::Clock as _;
        self.clock.now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    }
}

/// An ES256 signing key with its kid.
#[derive(Debug)]
pub struct TestKey {
    pub kid: String,
    pub pair: EcdsaKeyPair,
}

impl TestKey {
    pub fn new(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        Self { kid: kid.to_owned(), pair }
    }

    /// The uncompressed public point (0x04 || x || y).
    pub fn public_point(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    pub fn jwk(&self) -> Value {
        let p = self.public_point();
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..]),
        })
    }

    /// Signs raw header and payload texts (no re-serialisation, so duplicates survive).
    pub fn sign_raw(&self, header: &str, payload: &str) -> String {
        let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
        let sig = self.pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    /// An `at+jwt` ES256 token over `claims`.
    pub fn token(&self, claims: &Value) -> String {
        self.token_with_kid(&self.kid, claims)
    }

    /// Like [`token`](Self::token), naming another `kid` in the header.
    pub fn token_with_kid(&self, kid: &str, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid});
        self.sign_raw(&header.to_string(), &claims.to_string())
    }
}

/// The process-wide metrics recorder of this test binary (installed once, before any
/// provider registers its handles).
pub fn metrics_snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().unwrap();
        jwks_cache::metrics::describe();
        snapshotter
    })
}

/// Every metric labelled `provider=<provider>`, by name: counters as their value, gauges as
/// theirs. Taking a snapshot resets the recorder's counters, so only one test reads metrics.
pub fn metrics_of(provider: &str) -> std::collections::HashMap<String, f64> {
    metrics_snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let key = key.key();
            if !key.labels().any(|l| l.key() == "provider" && l.value() == provider) {
                return None;
            }
            let value = match value {
                DebugValue::Counter(n) => n as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(_) => return None,
            };
            Some((key.name().to_owned(), value))
        })
        .collect()
}

/// Polls `check` every 10 ms for up to 2 s.
pub async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}
