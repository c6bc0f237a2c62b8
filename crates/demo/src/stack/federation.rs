//! `demo all`'s federation flows (issue 16): a fixture issuer (`crate::fixture`, a partner's
//! identity provider, with its own CA and key) is in the KMS's trust store as the authority for
//! tenant globex; its token encrypts and decrypts there, is refused for acme (403 naming the
//! rule), and keeps working while a broken trust file is refused by the KMS's reload.
//!
//! Embedded, the fixture issuer runs in this process on loopback. On Docker it runs in its own
//! container (`demo serve partner`, `deployments/all/compose.yml`) from `STATE/partner`, which
//! the CLI prepares before the stack starts; the CLI signs the partner's tokens with the same
//! key, and the KMS finds the issuer by its network alias.

use std::sync::Arc;
use std::time::Duration;

use super::bearer::{KMS_AUDIENCE, round_trip};
use super::{Ctx, id};
use crate::engine::{Phase, Plan, Step, StepError};
use crate::fixture::{FixtureIssuer, FixtureSigner};

/// The fixture issuer's API port inside the Docker network (`deployments/all/compose.yml`).
pub(crate) const DOCKER_PORT: u16 = 8443;

/// The running fixture issuer, or (Docker) its signer.
#[derive(Debug, Default)]
pub(crate) struct PartnerCtx {
    running: tokio::sync::Mutex<Option<FixtureIssuer>>,
    /// Docker: the signer of the issuer the partner container serves.
    signer: std::sync::OnceLock<FixtureSigner>,
    /// The trust file the KMS reads, and what it holds.
    trust: std::sync::OnceLock<(std::path::PathBuf, String)>,
}

impl PartnerCtx {
    /// Stops the fixture issuer (teardown).
    pub(crate) async fn stop(&self) {
        if let Some(partner) = self.take().await {
            partner.shutdown().await;
        }
    }

    /// The fixture issuer, for a stack kept running.
    pub(crate) async fn take(&self) -> Option<FixtureIssuer> {
        self.running.lock().await.take()
    }
}

/// The trust file of the embedded KMS (`STATE/config/trust.yml`).
pub fn trust_file(state: &crate::state::State) -> std::path::PathBuf {
    state.config_dir().join("trust.yml")
}

/// Writes the trust file (and its directory) and remembers it for the reload flow.
fn write_trust(c: &Ctx, path: std::path::PathBuf, text: String) -> Result<(), StepError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| StepError::from_error("cannot make the trust file's directory", &e))?;
    }
    std::fs::write(&path, &text)
        .map_err(|e| StepError::from_error("cannot write the KMS's trust file", &e))?;
    let _ = c.partner.trust.set((path, text));
    Ok(())
}

/// Docker, before the stack starts: the partner's directory (its PKI and key, made once) for its
/// container, the KMS's trust file naming it by its network alias, and the signer of its tokens.
/// Without `partner` (the prod profile, whose stack runs no partner) the trust file lists no
/// issuer, and the KMS trusts Identity alone.
pub(crate) fn prepare_docker(c: &Ctx, partner: bool) -> Result<(), StepError> {
    let state = c.state()?;
    // `State::ensure` made the directory (the compose file names the partner's CA as a secret
    // in every profile); this checks it and loads the key.
    let signer = FixtureSigner::open(&state.partner_dir(), &crate::fixture::issuer_url(DOCKER_PORT))
        .map_err(|e| StepError::from_error("cannot prepare the fixture issuer", &e))?;
    if !partner {
        return write_trust(c, state.trust_file(), "issuers: []\n".to_owned());
    }
    let globex = tenant_id(state, "globex")?;
    // The partner's CA reaches the KMS as the secret `partner_ca`; its host name is the
    // partner container's alias on the KMS's network.
    let entry = crate::fixture::trust_entry(
        signer.issuer(),
        &[KMS_AUDIENCE],
        &[&globex],
        std::path::Path::new("/run/secrets/partner_ca"),
        None,
    );
    // The KMS container's data volume keeps the issuer's discovery document and keys.
    let text = format!("cache_dir: /var/lib/demo/trust-cache\nissuers:\n{entry}");
    write_trust(c, state.trust_file(), text)?;
    let _ = c.partner.signer.set(signer);
    Ok(())
}

/// The id of `tenant` in the state's tenants file (`name: uuid` lines).
fn tenant_id(state: &crate::state::State, tenant: &str) -> Result<String, StepError> {
    let text = std::fs::read_to_string(state.tenants_file())
        .map_err(|e| StepError::from_error("cannot read the tenants file", &e))?;
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim() == tenant)
        .map(|(_, id)| id.trim().to_owned())
        .ok_or_else(|| StepError::new(format!("the tenants file has no tenant {tenant}")))
}

/// A token of the partner for `tenant` (sub `partner-user`, the KMS's audience, encrypt and
/// decrypt, role user).
async fn partner_token(c: &Ctx, tenant: &str) -> Result<String, StepError> {
    let tenant_id = tenant_id(c.state()?, tenant)?;
    let claims = serde_json::json!({
        "sub": "partner-user", "aud": KMS_AUDIENCE, "tenant_id": tenant_id,
        "scope": "kms:encrypt kms:decrypt", "roles": ["user"],
    });
    let signed = match c.partner.signer.get() {
        Some(signer) => signer.token(claims),
        None => {
            let running = c.partner.running.lock().await;
            let partner =
                running.as_ref().ok_or_else(|| StepError::new("the fixture issuer is not running"))?;
            partner.token(claims)
        }
    };
    signed.map_err(|e| StepError::from_error("the fixture issuer cannot sign", &e))
}

/// The KMS's count of refused trust-file reloads, from its admin `/metrics`. Embedded, the
/// services share the process's one metrics recorder, so this is the process's count: only the
/// KMS reads a trust file in the demo (Identity's `token_exchange` has none), so it is the KMS's.
async fn refused_reloads(c: &Ctx) -> Result<u64, StepError> {
    let admin = *c.kms.admin.get().ok_or_else(|| StepError::new("the KMS is not running"))?;
    let client = super::service_client(c.state()?, "kms.demo.local", admin)?;
    let text = client
        .get(format!("https://kms.demo.local:{}/metrics", admin.port()))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| StepError::from_error("cannot read the KMS's /metrics", &e))?
        .text()
        .await
        .map_err(|e| StepError::from_error("cannot read the KMS's /metrics", &e))?;
    let series = format!("{}{{outcome=\"refused\"}}", trust_store::RELOADS);
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64))
}

/// Adds the fixture issuer's start (before the KMS's configuration, which names its trust
/// file) and the federation flows.
pub(crate) fn embedded(plan: Plan<Ctx>) -> Plan<Ctx> {
    flows(
        plan.step(
            Step::new(id::STACK_UP_PARTNER, Phase::Start, |c: Arc<Ctx>| async move {
                let state = c.state()?;
                let partner = FixtureIssuer::start(&state.partner_dir())
                    .await
                    .map_err(|e| StepError::from_error("the fixture issuer did not start", &e))?;
                let globex = tenant_id(state, "globex")?;
                // The issuer's discovery document and keys kept beside the KMS's data across restarts.
                let cache = state.data_dir().join("kms-trust-cache");
                let entry = partner.trust_entry(&[KMS_AUDIENCE], &[&globex]);
                let text = format!("cache_dir: {}\nissuers:\n{entry}", cache.display());
                write_trust(&c, trust_file(state), text)?;
                *c.partner.running.lock().await = Some(partner);
                Ok(())
            })
            .after(&[id::STATE_PREPARE])
            .critical(),
        ),
    )
}

/// Docker: the partner container healthy (it was prepared by [`prepare_docker`] and started
/// with the stack), then the federation flows.
pub(crate) fn docker(plan: Plan<Ctx>, health_timeout: Duration) -> Plan<Ctx> {
    flows(
        plan.step(
            Step::new(id::STACK_UP_PARTNER, Phase::Start, move |c: Arc<Ctx>| async move {
                super::docker::wait_healthy(&c, "partner", health_timeout).await
            })
            .after(&[id::STACK_UP])
            .timeout(health_timeout + Duration::from_secs(5))
            .critical(),
        ),
    )
}

/// The federation flows, on either runtime.
fn flows(plan: Plan<Ctx>) -> Plan<Ctx> {
    plan    .step(
        Step::new(id::FLOW_FEDERATION_PARTNER_TOKEN, Phase::Flows, |c: Arc<Ctx>| async move {
            round_trip(&c, &partner_token(&c, "globex").await?).await
        })
        .after(&[id::HEALTH_KMS, id::STACK_UP_PARTNER])
        .verifies("a token of the fixture issuer (another issuer, its own CA and key, in the KMS's trust store for tenant globex) encrypts and decrypts at the KMS in globex"),
    )
    .step(
        Step::new(id::FLOW_FEDERATION_NOT_AUTHORITY, Phase::Flows, |c: Arc<Ctx>| async move {
            let token = partner_token(&c, "acme").await?;
            let (status, detail) = super::bearer::encrypt_status(&c, &token).await?;
            if status != 403 || !detail.contains("is not the authority for tenant") {
                return Err(StepError::new(format!(
                    "a fixture issuer token for acme answered {status} ({detail}), expected 403 naming the rule"
                )));
            }
            Ok(())
        })
        .after(&[id::HEALTH_KMS, id::STACK_UP_PARTNER])
        .verifies("a token of the fixture issuer naming acme, a tenant it is not the authority for, is refused with 403 saying so"),
    )
    .step(
        Step::new(id::FLOW_FEDERATION_TRUST_RELOAD, Phase::Flows, |c: Arc<Ctx>| async move {
            let (path, good) = c.partner.trust.get().cloned().ok_or_else(|| StepError::new("no trust file"))?;
            let refused_before = refused_reloads(&c).await?;
            let broken = good.replace("https://", "http://");
            std::fs::write(&path, broken).map_err(|e| StepError::from_error("cannot write the trust file", &e))?;
            // The KMS checks the file every second and reloads a change once it stopped
            // changing; its /metrics counts the refusal.
            let started = std::time::Instant::now();
            let refused = loop {
                if refused_reloads(&c).await? > refused_before {
                    break true;
                }
                if started.elapsed() > Duration::from_secs(8) {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let still = round_trip(&c, &partner_token(&c, "globex").await?).await;
            std::fs::write(&path, &good).map_err(|e| StepError::from_error("cannot restore the trust file", &e))?;
            if !refused {
                return Err(StepError::new("the KMS did not refuse the broken trust file within 8 s"));
            }
            still.map_err(|e| StepError {
                causes: [vec![e.message], e.causes].concat(),
                ..StepError::new("after a broken trust file, the fixture issuer's token no longer works")
            })
        })
        .after(&[id::FLOW_FEDERATION_PARTNER_TOKEN, id::FLOW_FEDERATION_NOT_AUTHORITY])
        .verifies("a broken trust file (an http issuer) is refused by the KMS's reload (its /metrics counts the refusal) and the trust store in force keeps working: the fixture issuer's token still encrypts and decrypts")
        .heavy(),
    )
}
