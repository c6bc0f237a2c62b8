//! Tokens per second over HTTPS on SQLite and on PostgreSQL, against a same-run baseline.
//!
//! Identity twice in one process, with the same configuration but for the store: over SQLite,
//! and over PostgreSQL (a fresh database on a throwaway local cluster). Two phases, each of
//! workloads in alternating rounds, each workload a bounded number of requests by a fixed
//! number of concurrent HTTP/2 clients on loopback, and each phase with its baseline:
//!
//! * `echo`: a bare form-echo endpoint on the same `service-kit` stack (TLS 1.3, the same
//!   layers), no authentication — the baseline;
//!
//! the cached hot path,
//!
//! * `client_credentials <engine>`: `POST /token` with `grant_type=client_credentials` and
//!   `client_secret_basic` (verified-secret cache warm), each answer an ES256-signed RFC 9068
//!   JWT — no database access. Identity keeps a verified secret 60 s; this phase lasts well
//!   under that at the default sizes (it warns when it did not: a re-verification, one PBKDF2
//!   that the client's concurrent requests wait for, would be in the figures);
//!
//! and the authorization code + refresh path, which writes to the database on every request
//! and is an order of magnitude slower, so it sends `IDENTITY_BENCH_WRITES` requests per
//! workload and round (default 1000). Its client is public (no secret: the grant's own work,
//! nothing of client authentication); scope `openid`, so each answer holds an access token, an
//! ID token and a refresh token:
//!
//! * `code <engine>`: `grant_type=authorization_code` with a fresh code and its PKCE verifier:
//!   the code is read and consumed, a refresh token family and its first token stored, two
//!   tokens signed. The codes are minted before each round, untimed, through `POST /authorize`
//!   with the session of one sign-in (consent only, as a browser already signed in);
//! * `refresh <engine>`: `grant_type=refresh_token`: the token is read and consumed, its
//!   successor stored, two tokens signed. Each request takes a chain's current token and puts
//!   the successor back, so the workers rotate `concurrency` chains, one request per chain at
//!   a time.
//!
//! * `exchange <engine>` (in the cached phase): `grant_type=urn:ietf:params:oauth:grant-type:
//!   token-exchange` by the same client, whose `client_credentials` token (minted before the
//!   phase) is the subject, for a transaction token: the client's cached authentication, one
//!   ES256 verification of the subject, its revocation looked up in the tenant's namespace, one
//!   ES256 signature (the actor impersonates, so there is no second token to verify);
//! * `introspect <engine>` (in the cached phase): `POST /introspect` of that same token by the
//!   client: its cached authentication, one ES256 verification, the revocation lookup in the
//!   tenant's namespace, the JSON answer.
//!
//! Where PostgreSQL is not installed, the benchmark says so and runs the SQLite workloads only.
//! Run: `cargo bench -p identity --bench tokens` (env `IDENTITY_BENCH_REQUESTS`,
//! `IDENTITY_BENCH_WRITES`, `IDENTITY_BENCH_CONCURRENCY`, `IDENTITY_BENCH_ROUNDS`).
// A benchmark panics on setup failure: there is nothing to report without a running server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use identity::config::{IdentityConfig, SeedConfig, Storage};
use identity::service::{RunningIdentity, StartOptions};
use test_support::bench;

const SECRET: &str = "bench-client-secret";
const PASSWORD: &str = "bench-user-password";
const REDIRECT: &str = "https://webapp.demo.local/cb";
/// The PKCE verifier of every code (the challenge is its SHA-256).
const VERIFIER: &str = "bench-pkce-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
const SEED: &str = "users:
  - {username: bench-user, password_file: password, name: Bench User, email: bench@acme.example, tenant: acme, roles: [user]}
clients:
  - {client_id: bench, type: confidential, secret_file: secret,
     grant_types: [client_credentials, urn:ietf:params:oauth:grant-type:token-exchange],
     scopes: [kms:encrypt], audiences: [https://kms.demo.local:8081], tenant: acme, roles: [service]}
  - {client_id: webbench, type: public,
     grant_types: [authorization_code, refresh_token], scopes: [openid, profile],
     redirect_uris: [https://webapp.demo.local/cb], tenant: acme}
";

fn main() {
    let writes = std::env::var("IDENTITY_BENCH_WRITES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    bench::block_on(run(bench::Params::from_env("IDENTITY"), writes));
}

/// One Identity under load, with a signed-in browser session to mint codes and the chains of
/// refresh tokens the `refresh` workload rotates.
struct Instance {
    running: RunningIdentity,
    base: String,
    /// `Cookie:` of the signed-in browser (CSRF and session).
    cookies: String,
    csrf: String,
    chains: Arc<Mutex<Vec<String>>>,
    /// The subject of the `exchange` workload: a `client_credentials` token of `bench`.
    subject: String,
}

enum Workload<'a> {
    Echo(String),
    ClientCredentials(&'a Instance),
    Exchange(&'a Instance),
    Introspect(&'a Instance),
    Code(&'a Instance),
    Refresh(&'a Instance),
}

async fn run(bench::Params { requests, concurrency, rounds }: bench::Params, writes: usize) {
    let dir = test_support::TestDir::with_demo_pki();
    dir.write("secret", SECRET);
    dir.write("password", PASSWORD);
    let seed = SeedConfig {
        file: dir.write("seed.yml", SEED),
        tenants_file: dir.tenants_file(&[("acme", "0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10")]),
        secrets_dir: dir.path().to_owned(),
    };
    let mut config = test_support::identity::config(&dir, Some(seed));
    // Codes are minted just before their round; the longest lifetime allowed keeps a slow
    // round's last codes valid (it changes no work: the expiry is one comparison).
    config.tokens.code_ttl = Duration::from_secs(600);
    // The client may exchange its own tokens for transaction tokens, as itself (no actor token).
    config.token_exchange = identity::config::ExchangeConfig {
        trust_domain: None,
        txn_token_ttl: None,
        trust_file: None,
        actors: vec![identity::config::ActorPolicy {
            client_id: "bench".into(),
            subject_token_types: vec!["access_token".into()],
            subject_issuers: vec!["self".into()],
            requested_token_types: vec!["txn_token".into()],
            audiences: Vec::new(),
            max_lifetime: Duration::from_secs(300),
            delegation: false,
            impersonation: true,
            unsigned_context_claims: Vec::new(),
        }],
    };
    let test_support::Running { service, client } =
        test_support::identity::start(&dir, &config, StartOptions { demo: true }).await.unwrap();
    let sqlite = instance(&client, service, concurrency).await;
    // The same configuration (shares, seed, lifetimes, throttle, listener) over PostgreSQL.
    let postgres = match test_support::postgres::server() {
        Some(server) => {
            let config =
                IdentityConfig { storage: Storage::postgres(server.fresh_database()), ..config.clone() };
            let service = test_support::identity::start(&dir, &config, StartOptions { demo: true })
                .await
                .unwrap()
                .service;
            Some(instance(&client, service, concurrency).await)
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

    let baseline =
        || ("echo", Workload::Echo(format!("https://identity.demo.local:{}/echo", echo.addr.port())));
    let mut engines = vec![(
        [
            "client_credentials sqlite",
            "code sqlite",
            "refresh sqlite",
            "exchange sqlite",
            "introspect sqlite",
        ],
        &sqlite,
    )];
    if let Some(postgres) = &postgres {
        engines.push((
            [
                "client_credentials postgres",
                "code postgres",
                "refresh postgres",
                "exchange postgres",
                "introspect postgres",
            ],
            postgres,
        ));
    }
    let load = async |workload: &Workload<'_>, n| match workload {
        Workload::Echo(url) => {
            let body = CLIENT_CREDENTIALS.to_owned();
            form_load(&client, url.clone(), None, body, None, n, concurrency).await
        }
        Workload::ClientCredentials(identity) => {
            let (url, body) = (format!("{}/token", identity.base), CLIENT_CREDENTIALS.to_owned());
            form_load(&client, url, Some(("bench", SECRET)), body, Some(TOKEN), n, concurrency).await
        }
        Workload::Exchange(identity) => {
            let url = format!("{}/token", identity.base);
            form_load(
                &client,
                url,
                Some(("bench", SECRET)),
                exchange_form(identity),
                Some(TOKEN),
                n,
                concurrency,
            )
            .await
        }
        Workload::Introspect(identity) => {
            let url = format!("{}/introspect", identity.base);
            let body = serde_urlencoded::to_string([("token", identity.subject.as_str())]).unwrap();
            form_load(&client, url, Some(("bench", SECRET)), body, Some(b"{\"active\":true"), n, concurrency)
                .await
        }
        Workload::Code(identity) => {
            let codes = mint_codes(&client, identity, n, concurrency).await;
            code_load(&client, identity, codes, concurrency).await
        }
        Workload::Refresh(identity) => refresh_load(&client, identity, n, concurrency).await,
    };

    // Each phase: the warm-up (connections, the verified-secret cache, the allocator), then the
    // rounds.
    let mut cached = vec![baseline()];
    cached.extend(
        engines.iter().map(|([name, _, _, _, _], identity)| (*name, Workload::ClientCredentials(identity))),
    );
    cached.extend(engines.iter().map(|([_, _, _, name, _], identity)| (*name, Workload::Exchange(identity))));
    cached
        .extend(engines.iter().map(|([_, _, _, _, name], identity)| (*name, Workload::Introspect(identity))));
    let started = Instant::now();
    let results = bench::measure(&cached, rounds, requests, &load).await;
    if started.elapsed() > Duration::from_secs(55) {
        eprintln!(
            "\n*** the cached phase took {:?}: a verified secret is kept 60 s, so the figures may include a re-verification ***\n",
            started.elapsed()
        );
    }
    bench::report(
        &format!(
            "Identity client_credentials: {requests} requests x {rounds} rounds, {concurrency} concurrent HTTP/2 clients"
        ),
        &results,
    );
    bench::report_pairs(
        &results,
        &[
            ("echo", "client_credentials sqlite"),
            ("echo", "client_credentials postgres"),
            ("client_credentials sqlite", "client_credentials postgres"),
            ("client_credentials sqlite", "exchange sqlite"),
            ("client_credentials postgres", "exchange postgres"),
            ("echo", "introspect sqlite"),
            ("echo", "introspect postgres"),
            ("client_credentials sqlite", "introspect sqlite"),
            ("introspect sqlite", "introspect postgres"),
        ],
    );
    println!();

    let mut writing = vec![baseline()];
    writing.extend(engines.iter().map(|([_, name, _, _, _], identity)| (*name, Workload::Code(identity))));
    writing.extend(engines.iter().map(|([_, _, name, _, _], identity)| (*name, Workload::Refresh(identity))));
    let results = bench::measure(&writing, rounds, writes, &load).await;
    bench::report(
        &format!(
            "Identity authorization code + refresh (public client, PKCE, scope openid): {writes} requests x {rounds} rounds, {concurrency} concurrent HTTP/2 clients"
        ),
        &results,
    );
    bench::report_pairs(
        &results,
        &[
            ("echo", "code sqlite"),
            ("echo", "code postgres"),
            ("code sqlite", "code postgres"),
            ("echo", "refresh sqlite"),
            ("echo", "refresh postgres"),
            ("refresh sqlite", "refresh postgres"),
        ],
    );
    sqlite.running.shutdown().await.unwrap();
    if let Some(postgres) = postgres {
        postgres.running.shutdown().await.unwrap();
    }
    echo.shutdown().await.unwrap();
}

/// The authorization request of every code: `webbench`, scope `openid`, PKCE S256 of
/// [`VERIFIER`].
fn authorization_request() -> Vec<(&'static str, String)> {
    let challenge = B64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, VERIFIER.as_bytes()));
    vec![
        ("response_type", "code".into()),
        ("client_id", "webbench".into()),
        ("redirect_uri", REDIRECT.into()),
        ("scope", "openid".into()),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256".into()),
    ]
}

/// The value of the cookie `name` among a response's `Set-Cookie` headers.
fn set_cookie(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next()?.strip_prefix(name)?.strip_prefix('='))
        .map(str::to_owned)
        .next()
        .unwrap_or_else(|| panic!("no {name} cookie"))
}

/// The `code` of an authorization response (a 303 to the redirect URI); panics on anything else.
fn code_of(resp: &reqwest::Response) -> String {
    assert_eq!(resp.status(), 303, "the authorization answered with no redirect");
    let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let query = location.strip_prefix(REDIRECT).and_then(|l| l.strip_prefix('?')).unwrap_or_default();
    // Codes are base64url: nothing in them is escaped.
    let code = query.split('&').find_map(|pair| pair.strip_prefix("code="));
    code.unwrap_or_else(|| panic!("no code in {location}")).to_owned()
}

/// Prepares a started Identity: one sign-in through the form (the only PBKDF2 of the run for
/// this instance), then one refresh token chain per worker, each from a code exchange.
async fn instance(client: &reqwest::Client, running: RunningIdentity, concurrency: usize) -> Instance {
    let base = format!("https://identity.demo.local:{}", running.server.addr.port());
    let request = authorization_request();
    let query = serde_urlencoded::to_string(&request).unwrap();
    let page = client.get(format!("{base}/authorize?{query}")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csrf = set_cookie(&page, "__Host-csrf");
    let mut form = request.clone();
    form.extend([
        ("csrf", csrf.clone()),
        ("action", "allow".into()),
        ("username", "bench-user".into()),
        ("password", PASSWORD.into()),
    ]);
    let signed_in = client
        .post(format!("{base}/authorize"))
        .header("cookie", format!("__Host-csrf={csrf}"))
        .form(&form)
        .send()
        .await
        .unwrap();
    code_of(&signed_in);
    let session = set_cookie(&signed_in, "__Host-session");
    let mut identity = Instance {
        running,
        base,
        cookies: format!("__Host-csrf={csrf}; __Host-session={session}"),
        csrf,
        chains: Arc::default(),
        subject: String::new(),
    };
    let minted = client
        .post(format!("{}/token", identity.base))
        .basic_auth("bench", Some(SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(minted.status(), 200);
    identity.subject =
        minted.json::<serde_json::Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    let mut chains = Vec::new();
    for code in mint_codes(client, &identity, concurrency, concurrency).await {
        chains.push(refresh_token_of(&exchange(client, &identity.base, &code).await));
    }
    identity.chains = Arc::new(Mutex::new(chains));
    identity
}

/// Mints `n` codes with `concurrency` workers through `POST /authorize` with the instance's
/// session (untimed: the figure is not reported).
async fn mint_codes(
    client: &reqwest::Client,
    identity: &Instance,
    n: usize,
    concurrency: usize,
) -> Vec<String> {
    let codes = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let mut form = authorization_request();
    form.extend([("csrf", identity.csrf.clone()), ("action", "allow".into())]);
    let form = Arc::new(serde_urlencoded::to_string(&form).unwrap());
    let (client, url, cookies) = (
        client.clone(),
        Arc::new(format!("{}/authorize", identity.base)),
        Arc::new(identity.cookies.clone()),
    );
    let sink = codes.clone();
    bench::load(n, concurrency, move || {
        let (client, url, cookies, form, sink) =
            (client.clone(), url.clone(), cookies.clone(), form.clone(), sink.clone());
        async move {
            let resp = client
                .post(&*url)
                .header("cookie", &*cookies)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.to_string())
                .send()
                .await
                .unwrap();
            let code = code_of(&resp);
            sink.lock().unwrap().push(code);
        }
    })
    .await;
    let codes = std::mem::take(&mut *codes.lock().unwrap());
    assert_eq!(codes.len(), n);
    codes
}

/// `POST /token` as the public client `webbench` with `form`; the answer must be 200 with an
/// access token, an ID token and a refresh token.
async fn token(client: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> serde_json::Value {
    let resp = client.post(url).form(form).send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{url}: {text}");
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    for field in ["access_token", "id_token", "refresh_token"] {
        assert!(body[field].is_string(), "no {field} in {body}");
    }
    body
}

async fn exchange(client: &reqwest::Client, base: &str, code: &str) -> serde_json::Value {
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "webbench"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    token(client, &format!("{base}/token"), &form).await
}

fn refresh_token_of(body: &serde_json::Value) -> String {
    body["refresh_token"].as_str().unwrap().to_owned()
}

/// Exchanges every one of `codes` with `concurrency` workers; returns exchanges per second.
async fn code_load(
    client: &reqwest::Client,
    identity: &Instance,
    codes: Vec<String>,
    concurrency: usize,
) -> f64 {
    let total = codes.len();
    let (client, base, codes) =
        (client.clone(), Arc::<str>::from(&*identity.base), Arc::new(Mutex::new(codes)));
    bench::load(total, concurrency, move || {
        let (client, base, codes) = (client.clone(), base.clone(), codes.clone());
        async move {
            let code = codes.lock().unwrap().pop().expect("one code per request was minted");
            exchange(&client, &base, &code).await;
        }
    })
    .await
}

/// Sends `total` refresh grants with `concurrency` workers, each taking a chain's current token
/// and putting back its successor; returns rotations per second.
async fn refresh_load(
    client: &reqwest::Client,
    identity: &Instance,
    total: usize,
    concurrency: usize,
) -> f64 {
    let (client, url, chains) =
        (client.clone(), Arc::<str>::from(format!("{}/token", identity.base)), identity.chains.clone());
    bench::load(total, concurrency, move || {
        let (client, url, chains) = (client.clone(), url.clone(), chains.clone());
        async move {
            let current = chains.lock().unwrap().pop().expect("one chain per worker");
            let form = [
                ("grant_type", "refresh_token"),
                ("client_id", "webbench"),
                ("refresh_token", current.as_str()),
            ];
            let next = refresh_token_of(&token(&client, &url, &form).await);
            chains.lock().unwrap().push(next);
        }
    })
    .await
}

/// Sends `total` POSTs of the form `body` to `url` (with Basic `auth` when given) with
/// `concurrency` workers; returns requests per second. Every answer must be 200 and start with
/// `expect` when given (a token, an active introspection), so an error cannot pass for speed.
async fn form_load(
    client: &reqwest::Client,
    url: String,
    auth: Option<(&'static str, &'static str)>,
    body: String,
    expect: Option<&'static [u8]>,
    total: usize,
    concurrency: usize,
) -> f64 {
    let (client, url, body) = (client.clone(), Arc::<str>::from(url), Arc::<str>::from(body));
    bench::load(total, concurrency, move || {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        async move {
            let mut req = client
                .post(&*url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.to_string());
            if let Some((id, secret)) = auth {
                req = req.basic_auth(id, Some(secret));
            }
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let text = resp.bytes().await.unwrap();
            assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&text));
            if let Some(prefix) = expect {
                assert!(text.starts_with(prefix), "unexpected answer: {}", String::from_utf8_lossy(&text));
            }
        }
    })
    .await
}

/// The `client_credentials` form (sent to the echo too).
const CLIENT_CREDENTIALS: &str = "grant_type=client_credentials";
/// A token answer starts so.
const TOKEN: &[u8] = b"{\"access_token\":\"ey";

/// The form of the `exchange` workload: the instance's subject for a transaction token.
fn exchange_form(identity: &Instance) -> String {
    serde_urlencoded::to_string([
        ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
        ("subject_token", identity.subject.as_str()),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
        ("requested_token_type", "urn:ietf:params:oauth:token-type:txn_token"),
    ])
    .unwrap()
}
