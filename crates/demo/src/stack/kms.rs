//! The KMS's steps: configuration from the state directory, start in-process, readiness, the
//! seeded pools, and the Basic-realm flows.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kms_proto::{
    DecryptRequest, DecryptResponse, EncryptRequest, EncryptResponse, Jwe, PoolInfo, ProblemDoc, SignRequest,
    SignResponse, VerifyRequest, VerifyResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use super::{Ctx, id};
use crate::engine::{Phase, Plan, Step, StepError, StepId};
use crate::state::State;

/// The KMS demo seed, shipped inside the binary (the same file the compose stack mounts).
const KMS_SEED: &str = include_str!("../../../../deployments/kms/config/demo-seed.yml");

/// What the KMS steps share.
#[derive(Default)]
pub(crate) struct KmsCtx {
    config: OnceLock<kms::config::KmsConfig>,
    pub(crate) running: Mutex<Option<kms::service::RunningKms>>,
    pub(crate) api: OnceLock<SocketAddr>,
    pub(crate) admin: OnceLock<SocketAddr>,
    pub(crate) client: OnceLock<reqwest::Client>,
    jwe: OnceLock<Jwe>,
}

impl KmsCtx {
    pub(crate) fn client(&self) -> Result<&reqwest::Client, StepError> {
        self.client.get().ok_or_else(|| StepError::new("no HTTPS client"))
    }
    pub(crate) fn url(&self, path: &str) -> Result<String, StepError> {
        let addr = self.api.get().ok_or_else(|| StepError::new("the KMS is not running"))?;
        Ok(format!("https://kms.demo.local:{}/api/v1{path}", addr.port()))
    }
}

/// Embedded: adds the KMS's start after `state.prepare`. With `bearer`, the KMS also accepts
/// Identity's tokens.
///
/// Phases run in order, so with Bearer the KMS's configuration (it needs Identity's address)
/// moves to the start phase, after Identity started; the KMS reports ready only once it has
/// fetched Identity's JWKS, and its health step follows Identity's: the chain Identity → KMS.
///
/// With `dev`, the KMS's data is in the run's PostgreSQL: it starts once the cluster runs, and
/// its health follows the database's (and Identity's, with Bearer).
pub(crate) fn start(plan: Plan<Ctx>, health_timeout: Duration, bearer: bool, dev: bool) -> Plan<Ctx> {
    let (config_phase, config_after, mut health_after): (Phase, &[StepId], Vec<StepId>) = if bearer {
        (
            Phase::Start,
            &[id::STATE_PREPARE, id::STACK_UP_IDENTITY, id::STACK_UP_PARTNER],
            vec![id::STACK_UP_KMS, id::HEALTH_IDENTITY],
        )
    } else {
        (Phase::Setup, &[id::STATE_PREPARE], vec![id::STACK_UP_KMS])
    };
    let mut up_after = vec![id::CONFIG_KMS];
    if dev {
        up_after.push(id::STACK_UP_POSTGRES);
        health_after.push(id::HEALTH_POSTGRES);
    }
    plan.step(
        Step::new(id::CONFIG_KMS, config_phase, move |c: Arc<Ctx>| async move {
            let state = c.state()?;
            let identity = if bearer {
                Some(*c.identity.api.get().ok_or_else(|| StepError::new("Identity is not running"))?)
            } else {
                None
            };
            let config = write_config(state, identity)
                .map_err(|e| StepError::from_error("cannot write the KMS configuration", &e))?;
            let _ = c.kms.config.set(config);
            Ok(())
        })
        .after(config_after)
        .critical(),
    )
    .step(
        Step::new(id::STACK_UP_KMS, Phase::Start, |c: Arc<Ctx>| async move {
            let mut template = c.kms.config.get().ok_or_else(|| StepError::new("no configuration"))?.clone();
            if let Some(pg) = c.postgres.config(c.state()?, "kms") {
                template.storage = kms::config::StorageConfig::postgres(pg);
            }
            let template = &template;
            // The design's port when free, else a free one (see Identity's start).
            let running =
                crate::ports::start_on(crate::ports::KMS_PORT, |port| {
                    let mut config = template.clone();
                    config.server.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                    async move {
                        kms::service::start_with(&config, kms::service::StartOptions { demo: true }).await
                    }
                })
                .await
                .map_err(|e| {
                    StepError::from_error("the KMS did not start", &e).with_hint(super::START_HINT)
                })?;
            super::apply_never_ready_hook("kms", &running.server);
            let _ = c.kms.api.set(running.server.addr);
            let _ = c.kms.admin.set(running.server.admin_addr);
            let client = super::service_client(c.state()?, "kms.demo.local", running.server.addr)?;
            let _ = c.kms.client.set(client);
            *c.kms.running.lock().await = Some(running);
            Ok(())
        })
        .after(&up_after)
        .critical(),
    )
    .step(
        Step::new(id::HEALTH_KMS, Phase::Health, move |c: Arc<Ctx>| async move {
            let admin = c.kms.admin.get().ok_or_else(|| StepError::new("the KMS is not running"))?;
            let ca = c.state()?.ca_bundle();
            super::wait_ready("the KMS", *admin, &ca, health_timeout).await
        })
        .after(&health_after)
        .verifies("the KMS's readyz answers 200 over TLS 1.3; with Bearer it has fetched Identity's JWKS")
        // wait_ready bounds itself by health_timeout; this only guards against a hang.
        .timeout(health_timeout + Duration::from_secs(5))
        .critical(),
    )
}

/// The demo accounts the flows use, `(user, password)`.
const ADMIN: (&str, &str) = ("acme-admin", "acme-admin-demo");
const APP: (&str, &str) = ("acme-app", "acme-app-demo");
const AUDITOR: (&str, &str) = ("acme-auditor", "acme-auditor-demo");
const OTHER_TENANT: (&str, &str) = ("globex-user", "globex-user-demo");

/// The KMS's checks and flows (and, with `bearer`, the cross-service flows), whichever runtime
/// started it.
pub(crate) fn checks(plan: Plan<Ctx>, bearer: bool) -> Plan<Ctx> {
    let plan = plan
        .step(
            Step::new(id::VERIFY_KMS_POOLS, Phase::Verify, |c: Arc<Ctx>| async move {
                let pools: Vec<PoolInfo> = get(&c, "/pools", ADMIN).await?;
                let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
                for want in ["payments", "documents", "signing", "signing-ed", "signing-rsa", "key-wrapping"]
                {
                    if !names.contains(&want) {
                        return Err(StepError::new(format!(
                            "seeded pool {want} is missing (found {names:?})"
                        )));
                    }
                }
                let payments: PoolInfo = get(&c, "/pools/payments", ADMIN).await?;
                if payments.versions.len() != 2 {
                    return Err(StepError::new("pool payments should have 2 versions"));
                }
                // A ciphertext of acme's for the tenant-isolation flow, made with the account
                // already verified here (so that flow need not wait for another's first login).
                let request = EncryptRequest { plaintext: B64.encode("acme only"), aad: None };
                let enc: EncryptResponse = post(&c, "/pools/payments/encrypt", ADMIN, &request).await?;
                let _ = c.kms.jwe.set(enc.jwe);
                Ok(())
            })
            .after(&[id::HEALTH_KMS])
        .verifies("every seeded pool exists for the tenant admin (payments, documents, signing, signing-ed, signing-rsa, key-wrapping); payments has its 2 versions and encrypts")
        .heavy(),
        )
        .step(
            Step::new(id::FLOW_BASIC_KMS_ENCRYPT, Phase::Flows, |c: Arc<Ctx>| async move {
                let plaintext = B64.encode("4111 1111 1111 1111");
                let request = EncryptRequest { plaintext: plaintext.clone(), aad: None };
                let enc: EncryptResponse = post(&c, "/pools/payments/encrypt", APP, &request).await?;
                let dec: DecryptResponse =
                    post(&c, "/decrypt", APP, &DecryptRequest::from(enc.jwe.clone())).await?;
                if dec.plaintext != plaintext {
                    return Err(StepError::new("decrypt did not give the plaintext back"));
                }
                Ok(())
            })
            .after(&[id::VERIFY_KMS_POOLS])
        .verifies("Basic: encrypt (JWE) with pool payments, decrypt gives the plaintext back")
        .heavy(),
        )
        .step(
            Step::new(id::FLOW_BASIC_KMS_SIGN, Phase::Flows, |c: Arc<Ctx>| async move {
                let request = SignRequest { payload: B64.encode("order 42") };
                let signed: SignResponse = post(&c, "/pools/signing/sign", APP, &request).await?;
                let verified: VerifyResponse =
                    post(&c, "/verify", APP, &VerifyRequest { jws: signed.jws }).await?;
                if !verified.valid {
                    return Err(StepError::new("a fresh signature did not verify"));
                }
                Ok(())
            })
            .after(&[id::VERIFY_KMS_POOLS])
        .verifies("Basic: sign (JWS) with pool signing, verify says valid")
        .heavy(),
        )
        .step(
            Step::new(id::FLOW_BASIC_KMS_FORBIDDEN, Phase::Flows, |c: Arc<Ctx>| async move {
                let request = EncryptRequest { plaintext: "eA==".to_owned(), aad: None };
                refused(&c, "/pools/payments/encrypt", AUDITOR, &request, 403).await
            })
            .after(&[id::VERIFY_KMS_POOLS])
        .verifies("an auditor's encrypt is refused with 403")
        .heavy(),
        )
        .step(
            Step::new(id::FLOW_BASIC_KMS_UNAUTHENTICATED, Phase::Flows, |c: Arc<Ctx>| async move {
                let resp = c
                    .kms
                    .client()?
                    .get(c.kms.url("/pools")?)
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
            .after(&[id::HEALTH_KMS])
        .verifies("no credentials: 401 with WWW-Authenticate"),
        )
        .step(
            Step::new(id::FLOW_BASIC_KMS_TENANT_ISOLATION, Phase::Flows, |c: Arc<Ctx>| async move {
                let jwe = c
                    .kms
                    .jwe
                    .get()
                    .ok_or_else(|| StepError::new("no ciphertext of acme's from verify.kms.pools"))?
                    .clone();
                refused(&c, "/decrypt", OTHER_TENANT, &DecryptRequest::from(jwe), 404).await
            })
            .after(&[id::VERIFY_KMS_POOLS])
        .verifies("another tenant's user cannot decrypt acme's ciphertext (404: not even its existence)")
        .heavy(),
        );
    if bearer { super::exchange::flows(super::bearer::flows(plan)) } else { plan }
}

/// `GET path` as `user`: 200 and a body of type `T`.
async fn get<T: DeserializeOwned>(c: &Ctx, path: &str, user: (&str, &str)) -> Result<T, StepError> {
    let resp = c
        .kms
        .client()?
        .get(c.kms.url(path)?)
        .basic_auth(user.0, Some(user.1))
        .send()
        .await
        .map_err(|e| StepError::from_error(format!("GET {path} failed"), &e))?;
    parse(path, &expect(resp, path, 200).await?)
}

/// `GET /whoami` with a Bearer token: the principal the KMS sees.
pub(crate) async fn whoami(c: &Ctx, token: &str) -> Result<kms_proto::Principal, StepError> {
    let resp = c
        .kms
        .client()?
        .get(c.kms.url("/whoami")?)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| StepError::from_error("GET /whoami failed", &e))?;
    parse("/whoami", &expect(resp, "/whoami", 200).await?)
}

/// `POST path` with `body` as `user`, answered with `status`; the body unread.
async fn send(
    c: &Ctx,
    path: &str,
    user: (&str, &str),
    body: &impl Serialize,
    status: u16,
) -> Result<Vec<u8>, StepError> {
    let resp = c
        .kms
        .client()?
        .post(c.kms.url(path)?)
        .basic_auth(user.0, Some(user.1))
        .json(body)
        .send()
        .await
        .map_err(|e| StepError::from_error(format!("POST {path} failed"), &e))?;
    expect(resp, path, status).await
}

/// `POST path` with `body` as `user`: 200 and a body of type `T`.
async fn post<T: DeserializeOwned>(
    c: &Ctx,
    path: &str,
    user: (&str, &str),
    body: &impl Serialize,
) -> Result<T, StepError> {
    parse(path, &send(c, path, user, body, 200).await?)
}

/// `POST path` with `body` as `user`: refused with `status`.
async fn refused(
    c: &Ctx,
    path: &str,
    user: (&str, &str),
    body: &impl Serialize,
    status: u16,
) -> Result<(), StepError> {
    send(c, path, user, body, status).await.map(drop)
}

/// The body of `resp` when its status is `status`; otherwise an error with the problem's detail.
pub(crate) async fn expect(resp: reqwest::Response, path: &str, status: u16) -> Result<Vec<u8>, StepError> {
    let got = resp.status().as_u16();
    let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    if got != status {
        return Err(StepError {
            causes: vec![format!("{got}: {}", problem_detail(&body))],
            ..StepError::new(format!("{path} answered {got}, expected {status}"))
        });
    }
    Ok(body)
}

/// The `detail` of a problem document (`kms_proto::ProblemDoc`), empty when the body is not one.
pub(crate) fn problem_detail(body: &[u8]) -> String {
    serde_json::from_slice::<ProblemDoc>(body).ok().and_then(|p| p.detail).unwrap_or_default()
}

/// A success body of the KMS read as the wire type `T`; a clear error when it is not one.
pub(crate) fn parse<T: DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, StepError> {
    serde_json::from_slice(body).map_err(|e| StepError {
        causes: vec![e.to_string()],
        ..StepError::new(format!(
            "the KMS's answer to {path} is not a {}",
            std::any::type_name::<T>().replace("alloc::vec::", "")
        ))
    })
}

/// Writes the seed, the tenants-backed config and returns the KMS configuration; with
/// `identity` (where Identity listens), Bearer tokens are accepted and sensitive operations
/// introspected.
fn write_config(state: &State, identity: Option<SocketAddr>) -> std::io::Result<kms::config::KmsConfig> {
    use kms::config::{
        AuthConfig, BearerConfig, ErrorDetail, IntrospectionConfig, IntrospectionMode, KmsConfig,
        RealmConfig, SeedConfig, StorageConfig, UnsealConfig,
    };
    use service_kit::server::HttpConfig;
    let config_dir = state.config_dir();
    std::fs::create_dir_all(&config_dir)?;
    let seed = config_dir.join("kms-demo-seed.yml");
    std::fs::write(&seed, KMS_SEED)?;
    Ok(KmsConfig {
        // The API port is chosen at start (`stack.up.kms`); the admin port is any free one.
        server: HttpConfig::loopback(&pki::PkiDir::new(state.pki_dir()), "kms"),
        storage: StorageConfig::sqlite(state.data_dir().join("kms.db")),
        unseal: UnsealConfig { share_files: state.unseal_shares("kms").into_iter().take(3).collect() },
        auth: AuthConfig {
            realms: vec![RealmConfig::Database],
            cache_ttl: Duration::from_secs(60),
            cache_entries: 10_000,
            max_failures: 5,
            failure_window: Duration::from_secs(60),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(900),
            failure_ceiling: 100,
            bearer: identity.map(|addr| {
                let base = super::identity::issuer(addr.port());
                BearerConfig {
                    issuer: base.clone(),
                    jwks_url: format!("{base}/jwks"),
                    audience: super::bearer::KMS_AUDIENCE.to_owned(),
                    algorithms: vec!["ES256".to_owned()],
                    ca_file: state.ca_bundle(),
                    resolve: [("identity.demo.local".to_owned(), addr)].into(),
                    leeway: Duration::from_secs(30),
                    introspection: Some(IntrospectionConfig {
                        endpoint: format!("{base}/introspect"),
                        client_id: "kms-service".to_owned(),
                        client_secret_file: state.client_secret("kms-service"),
                        mode: IntrospectionMode::Sensitive,
                        interval: Duration::from_secs(30),
                        cache_ttl: Duration::ZERO,
                    }),
                    error_detail: ErrorDetail::Detailed,
                    transaction_tokens: Some(kms::config::TxnTokenConfig {
                        trust_domain: super::exchange::TRUST_DOMAIN.to_owned(),
                        max_lifetime: Duration::from_secs(300),
                    }),
                    trust_file: Some(super::federation::trust_file(state)),
                    api_keys: Some(kms::config::ApiKeysConfig {
                        endpoint: format!("{base}/api/v1/api-keys/verify"),
                        client_id: "kms-service".to_owned(),
                        client_secret_file: state.client_secret("kms-service"),
                        cache_ttl: Duration::from_secs(30),
                    }),
                }
            }),
        },
        seed: Some(SeedConfig { file: seed, tenants_file: state.tenants_file() }),
        log_format: Default::default(),
    })
}
