//! `demo kms` on the embedded runtime: the KMS started in-process on free loopback ports from
//! the state directory, seeded with the shipped demo seed, checked, and exercised through its
//! Basic realm. Every unit of work is a step of the engine, so failures are precise and
//! dependants are skipped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::sync::{Mutex, watch};

use crate::engine::{Engine, EngineOptions, Observer, Phase, Plan, Retry, RunResult, Step, StepError};
use crate::report::{Artifacts, Report, RuntimeChoice, ServiceReport};
use crate::state::State;

/// The KMS demo seed, shipped inside the binary (the same file the compose stack mounts).
const KMS_SEED: &str = include_str!("../../../deployments/kms/config/demo-seed.yml");

/// What `demo kms` was asked for.
#[derive(Debug, Clone)]
pub struct KmsDemoOptions {
    /// The state directory.
    pub state_dir: PathBuf,
    /// Start from scratch.
    pub reset: bool,
    /// Engine settings.
    pub engine: EngineOptions,
    /// How long the KMS may take to become ready.
    pub health_timeout: Duration,
    /// Why the embedded runtime was chosen.
    pub runtime_reason: String,
}

#[derive(Default)]
struct Ctx {
    state_dir: PathBuf,
    reset: bool,
    state: OnceLock<State>,
    config: OnceLock<kms::config::KmsConfig>,
    kms: Mutex<Option<kms::service::RunningKms>>,
    api: OnceLock<SocketAddr>,
    admin: OnceLock<SocketAddr>,
    client: OnceLock<reqwest::Client>,
    jwe: OnceLock<serde_json::Value>,
}

impl Ctx {
    fn state(&self) -> Result<&State, StepError> {
        self.state.get().ok_or_else(|| StepError::new("the state directory is not ready"))
    }
    fn client(&self) -> Result<&reqwest::Client, StepError> {
        self.client.get().ok_or_else(|| StepError::new("no HTTPS client"))
    }
    fn url(&self, path: &str) -> Result<String, StepError> {
        let addr = self.api.get().ok_or_else(|| StepError::new("the KMS is not running"))?;
        Ok(format!("https://kms.demo.local:{}/api/v1{path}", addr.port()))
    }
}

/// Runs `demo kms` on the embedded runtime and returns the report.
pub async fn run(
    options: KmsDemoOptions,
    observer: Arc<dyn Observer>,
    interrupt: watch::Receiver<bool>,
) -> Report {
    let ctx = Arc::new(Ctx { state_dir: options.state_dir.clone(), reset: options.reset, ..Ctx::default() });
    let health_timeout = options.health_timeout;
    let plan = plan(health_timeout);
    let engine = Engine::new(options.engine, observer);
    let result: RunResult = engine.run(plan, ctx.clone(), interrupt).await;
    let state = ctx.state.get().cloned().unwrap_or_else(|| State::at(&options.state_dir));
    let services = match ctx.api.get() {
        Some(addr) => vec![ServiceReport {
            name: "kms".into(),
            url: format!("https://kms.demo.local:{}", addr.port()),
            health: if result
                .steps
                .iter()
                .any(|s| s.id == "health.kms" && s.status == crate::engine::Status::Passed)
            {
                "healthy"
            } else {
                "unhealthy"
            },
        }],
        None => Vec::new(),
    };
    Report::new(
        "kms",
        RuntimeChoice { name: "embedded", reason: options.runtime_reason },
        "demo",
        &result,
        services,
        Artifacts {
            ca_bundle: state.pki_dir().join("ca-bundle.pem"),
            state_dir: state.root().to_owned(),
            credentials_file: state.root().join("credentials.md"),
        },
    )
}

fn plan(health_timeout: Duration) -> Plan<Ctx> {
    Plan::new()
        .step(
            Step::new("state.prepare", Phase::Setup, |c: Arc<Ctx>| async move {
                if c.reset {
                    State::reset(&c.state_dir)
                        .map_err(|e| StepError::from_error("cannot reset the demo", &e))?;
                }
                let state = State::ensure(&c.state_dir, &pki::PkiSpec::demo()).map_err(|e| {
                    StepError::from_error("cannot prepare the state directory", &e).with_hint(
                        "choose another --state-dir, or run with --reset-demo to start from scratch",
                    )
                })?;
                let _ = c.state.set(state);
                Ok(())
            })
            .critical(),
        )
        .step(
            Step::new("config.kms", Phase::Setup, |c: Arc<Ctx>| async move {
                let state = c.state()?;
                let config = write_config(state)
                    .map_err(|e| StepError::from_error("cannot write the KMS configuration", &e))?;
                let _ = c.config.set(config);
                Ok(())
            })
            .after(&["state.prepare"])
            .critical(),
        )
        .step(
            Step::new("stack.up.kms", Phase::Start, |c: Arc<Ctx>| async move {
                let config = c.config.get().ok_or_else(|| StepError::new("no configuration"))?.clone();
                let running = kms::service::start_with(&config, kms::service::StartOptions { demo: true })
                    .await
                    .map_err(|e| StepError::from_error("the KMS did not start", &e))?;
                let _ = c.api.set(running.server.addr);
                let _ = c.admin.set(running.server.admin_addr);
                let tls = pki::client_config_for(&pki::PkiDir::new(c.state()?.pki_dir()), None)
                    .map_err(|e| StepError::from_error("cannot trust the demo CA", &e))?;
                let client = reqwest::Client::builder()
                    .tls_backend_preconfigured(tls)
                    .resolve("kms.demo.local", running.server.addr)
                    .timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| StepError::from_error("cannot build the HTTPS client", &e))?;
                let _ = c.client.set(client);
                *c.kms.lock().await = Some(running);
                Ok(())
            })
            .after(&["config.kms"])
            .critical(),
        )
        .step(
            Step::new("health.kms", Phase::Health, |c: Arc<Ctx>| async move {
                let admin = c.admin.get().ok_or_else(|| StepError::new("the KMS is not running"))?;
                let ca = c.state()?.pki_dir().join("ca-bundle.pem");
                let url = format!("https://localhost:{}/readyz", admin.port());
                crate::healthcheck::check(&url, &ca, Duration::from_secs(2)).await.map_err(|e| {
                    let mut err = StepError::from_error("the KMS is not ready", &e);
                    err.transient = true;
                    err.with_hint(
                        "see the KMS log lines above; readyz names the dependency that is not ready",
                    )
                })
            })
            .after(&["stack.up.kms"])
            .timeout(health_timeout)
            .retry(Retry {
                retries: 20,
                backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
            })
            .critical(),
        )
        .step(
            Step::new("verify.kms.pools", Phase::Verify, |c: Arc<Ctx>| async move {
                let pools = get(&c, "/pools", ("acme-admin", "acme-admin-demo")).await?;
                let names: Vec<&str> =
                    pools.as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
                for want in ["payments", "documents", "signing", "signing-ed", "signing-rsa", "key-wrapping"]
                {
                    if !names.contains(&want) {
                        return Err(StepError::new(format!(
                            "seeded pool {want} is missing (found {names:?})"
                        )));
                    }
                }
                let payments = get(&c, "/pools/payments", ("acme-admin", "acme-admin-demo")).await?;
                if payments["versions"].as_array().map(Vec::len) != Some(2) {
                    return Err(StepError::new("pool payments should have 2 versions"));
                }
                Ok(())
            })
            .after(&["health.kms"]),
        )
        .step(
            Step::new("flow.basic.kms.encrypt", Phase::Flows, |c: Arc<Ctx>| async move {
                let body = serde_json::json!({"plaintext": B64.encode("4111 1111 1111 1111")});
                let enc =
                    post(&c, "/pools/payments/encrypt", ("acme-app", "acme-app-demo"), body, 200).await?;
                let dec = post(
                    &c,
                    "/decrypt",
                    ("acme-app", "acme-app-demo"),
                    serde_json::json!({"jwe": enc["jwe"]}),
                    200,
                )
                .await?;
                if dec["plaintext"] != B64.encode("4111 1111 1111 1111") {
                    return Err(StepError::new("decrypt did not give the plaintext back"));
                }
                let _ = c.jwe.set(enc["jwe"].clone());
                Ok(())
            })
            .after(&["verify.kms.pools"]),
        )
        .step(
            Step::new("flow.basic.kms.sign", Phase::Flows, |c: Arc<Ctx>| async move {
                let signed = post(
                    &c,
                    "/pools/signing/sign",
                    ("acme-app", "acme-app-demo"),
                    serde_json::json!({"payload": B64.encode("order 42")}),
                    200,
                )
                .await?;
                let verified = post(
                    &c,
                    "/verify",
                    ("acme-app", "acme-app-demo"),
                    serde_json::json!({"jws": signed["jws"]}),
                    200,
                )
                .await?;
                if verified["valid"] != true {
                    return Err(StepError::new("a fresh signature did not verify"));
                }
                Ok(())
            })
            .after(&["verify.kms.pools"]),
        )
        .step(
            Step::new("flow.basic.kms.forbidden", Phase::Flows, |c: Arc<Ctx>| async move {
                post(
                    &c,
                    "/pools/payments/encrypt",
                    ("acme-auditor", "acme-auditor-demo"),
                    serde_json::json!({"plaintext": "eA=="}),
                    403,
                )
                .await
                .map(|_| ())
            })
            .after(&["verify.kms.pools"]),
        )
        .step(
            Step::new("flow.basic.kms.unauthenticated", Phase::Flows, |c: Arc<Ctx>| async move {
                let resp = c
                    .client()?
                    .get(c.url("/pools")?)
                    .send()
                    .await
                    .map_err(|e| StepError::from_error("request failed", &e))?;
                if resp.status() != 401 || !resp.headers().contains_key("www-authenticate") {
                    return Err(StepError::new(format!(
                        "no credentials gave {}, not 401 with WWW-Authenticate",
                        resp.status()
                    )));
                }
                Ok(())
            })
            .after(&["health.kms"]),
        )
        .step(
            Step::new("flow.basic.kms.tenant-isolation", Phase::Flows, |c: Arc<Ctx>| async move {
                let jwe =
                    c.jwe.get().ok_or_else(|| StepError::new("no ciphertext from the encrypt flow"))?.clone();
                post(
                    &c,
                    "/decrypt",
                    ("globex-user", "globex-user-demo"),
                    serde_json::json!({"jwe": jwe}),
                    404,
                )
                .await
                .map(|_| ())
            })
            .after(&["flow.basic.kms.encrypt"]),
        )
        .step(Step::new("stack.down", Phase::Teardown, |c: Arc<Ctx>| async move {
            if let Some(running) = c.kms.lock().await.take() {
                running
                    .shutdown()
                    .await
                    .map_err(|e| StepError::from_error("the KMS did not stop cleanly", &e))?;
            }
            Ok(())
        }))
}

async fn get(c: &Ctx, path: &str, user: (&str, &str)) -> Result<serde_json::Value, StepError> {
    let resp = c
        .client()?
        .get(c.url(path)?)
        .basic_auth(user.0, Some(user.1))
        .send()
        .await
        .map_err(|e| StepError::from_error(format!("GET {path} failed"), &e))?;
    expect(resp, path, 200).await
}

async fn post(
    c: &Ctx,
    path: &str,
    user: (&str, &str),
    body: serde_json::Value,
    status: u16,
) -> Result<serde_json::Value, StepError> {
    let resp = c
        .client()?
        .post(c.url(path)?)
        .basic_auth(user.0, Some(user.1))
        .json(&body)
        .send()
        .await
        .map_err(|e| StepError::from_error(format!("POST {path} failed"), &e))?;
    expect(resp, path, status).await
}

async fn expect(resp: reqwest::Response, path: &str, status: u16) -> Result<serde_json::Value, StepError> {
    let got = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    if got != status {
        let detail = body["detail"].as_str().unwrap_or("").to_owned();
        return Err(StepError {
            causes: vec![format!("{got}: {detail}")],
            ..StepError::new(format!("{path} answered {got}, expected {status}"))
        });
    }
    Ok(body)
}

/// Writes the seed, the tenants-backed config and returns the KMS configuration.
fn write_config(state: &State) -> std::io::Result<kms::config::KmsConfig> {
    use kms::config::{
        AuthConfig, KmsConfig, RealmConfig, SeedConfig, SqliteConfig, StorageConfig, UnsealConfig,
    };
    use service_kit::server::HttpConfig;
    let config_dir = state.root().join("config");
    std::fs::create_dir_all(&config_dir)?;
    let seed = config_dir.join("kms-demo-seed.yml");
    std::fs::write(&seed, KMS_SEED)?;
    std::fs::write(
        state.root().join("credentials.md"),
        format!(
            "# Demo credentials (predictable on purpose: a demo)\n\n\
             KMS demo accounts (HTTP Basic, database realm):\n\n\
             | account | password | tenant | role |\n|---|---|---|---|\n\
             | acme-admin | acme-admin-demo | acme | tenant-admin |\n\
             | acme-app | acme-app-demo | acme | service |\n\
             | acme-user | acme-user-demo | acme | user |\n\
             | acme-auditor | acme-auditor-demo | acme | auditor |\n\
             | globex-user | globex-user-demo | globex | user |\n\n\
             Trust only {}\n",
            state.pki_dir().join("ca-bundle.pem").display()
        ),
    )?;
    Ok(KmsConfig {
        // Free loopback ports: the running server reports what it bound.
        server: HttpConfig::loopback(&pki::PkiDir::new(state.pki_dir()), "kms"),
        storage: StorageConfig { sqlite: SqliteConfig { path: state.data_dir().join("kms.db") } },
        unseal: UnsealConfig { share_files: state.unseal_shares("kms").into_iter().take(3).collect() },
        auth: AuthConfig {
            realms: vec![RealmConfig::Database],
            cache_ttl: Duration::from_secs(60),
            cache_entries: 10_000,
            max_failures: 5,
            failure_window: Duration::from_secs(60),
        },
        seed: Some(SeedConfig { file: seed, tenants_file: state.tenants_file() }),
        log_format: Default::default(),
    })
}
