//! Identity's steps: configuration from the state directory, start in-process, readiness, the
//! seeded users and clients, and the OAuth 2.1 / OpenID Connect flows of DESIGN §8 that need
//! Identity alone (the KMS's Bearer flows join them in `demo all`).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use tokio::sync::Mutex;

use super::oidc::{self, Authorize, Expect};
use super::{Ctx, id};
use crate::engine::{Phase, Plan, Step, StepError};
use crate::state::State;

/// Identity's demo seed, shipped inside the binary (the same file the compose stack mounts).
const IDENTITY_SEED: &str = include_str!("../../../../deployments/identity/config/demo-seed.yml");
/// The issuer on `port`: the same URL inside the stack and on the host, since the service
/// listens on the port it is published on (see `crate::ports`).
pub(crate) fn issuer(port: u16) -> String {
    format!("https://identity.demo.local:{port}")
}
use super::bearer::KMS_AUDIENCE;
const SPA: &str = "demo-spa";
const SPA_REDIRECT: &str = "https://app.demo.local/callback";

/// What Identity's steps share.
#[derive(Default)]
pub(crate) struct IdentityCtx {
    config: OnceLock<identity::config::IdentityConfig>,
    pub(crate) running: Mutex<Option<identity::service::RunningIdentity>>,
    pub(crate) api: OnceLock<SocketAddr>,
    pub(crate) admin: OnceLock<SocketAddr>,
    pub(crate) client: OnceLock<reqwest::Client>,
    jwks: OnceLock<serde_json::Value>,
    /// The code flow's tokens (access, id, refresh).
    login: OnceLock<serde_json::Value>,
    /// The refresh token that replaced the code flow's, and the one it replaced.
    rotated: OnceLock<(String, String)>,
    /// Browser sessions by user (`__Host-session=…`), from their first sign-in.
    sessions: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl IdentityCtx {
    pub(crate) fn client(&self) -> Result<&reqwest::Client, StepError> {
        self.client.get().ok_or_else(|| StepError::new("no HTTPS client"))
    }
    /// The issuer, which is also the base of every endpoint.
    pub(crate) fn base(&self) -> Result<String, StepError> {
        let addr = self.api.get().ok_or_else(|| StepError::new("Identity is not running"))?;
        Ok(issuer(addr.port()))
    }
    pub(crate) fn jwks(&self) -> Result<&serde_json::Value, StepError> {
        self.jwks.get().ok_or_else(|| StepError::new("the JWKS was not fetched"))
    }
}

/// A secret the way the services read it (`service_kit::secret::read_secret_file`), so the
/// client sends exactly what the service hashed.
pub(crate) fn secret(path: &std::path::Path) -> Result<String, StepError> {
    use secrecy::ExposeSecret as _;
    service_kit::secret::read_secret_file(path)
        .map(|s| s.expose_secret().to_owned())
        .map_err(|e| StepError::from_error("cannot read a demo secret", &e))
}

/// POSTs a form with optional Basic client credentials; returns status and JSON body.
pub(crate) async fn post_form(
    c: &Ctx,
    path: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> Result<(u16, serde_json::Value), StepError> {
    let mut req = c.identity.client()?.post(format!("{}{path}", c.identity.base()?)).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().await.map_err(|e| StepError::from_error(format!("POST {path} failed"), &e))?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(serde_json::Value::Null)))
}

pub(crate) fn expect_status(
    what: &str,
    got: (u16, serde_json::Value),
    want: u16,
) -> Result<serde_json::Value, StepError> {
    if got.0 != want {
        let error = got.1["error"].as_str().unwrap_or("");
        let description = got.1["error_description"].as_str().unwrap_or("");
        return Err(StepError {
            causes: vec![format!("{}: {error} {description}", got.0)],
            ..StepError::new(format!("{what} answered {}, expected {want}", got.0))
        });
    }
    Ok(got.1)
}

pub(crate) async fn client_credentials(
    c: &Ctx,
    client: &str,
    scope: Option<&str>,
) -> Result<String, StepError> {
    let secret = secret(&c.state()?.client_secret(client))?;
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let body = expect_status(
        &format!("client_credentials for {client}"),
        post_form(c, "/token", Some((client, &secret)), &form).await?,
        200,
    )?;
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| StepError::new("the token answer has no access_token"))
}

async fn introspect(c: &Ctx, token: &str) -> Result<serde_json::Value, StepError> {
    let secret = secret(&c.state()?.client_secret("kms-service"))?;
    expect_status(
        "introspection",
        post_form(c, "/introspect", Some(("kms-service", &secret)), &[("token", token)]).await?,
        200,
    )
}

/// Signs `user` in as the public PKCE client and exchanges the code: through the form with the
/// password the first time, then with the browser session that sign-in started (a person signs
/// in once, not for every application; and each password check costs the service a PBKDF2).
pub(crate) async fn code_flow(c: &Ctx, user: &str) -> Result<(serde_json::Value, String), StepError> {
    let password = secret(&c.state()?.user_password(user))?;
    let session = c.identity.sessions.lock().ok().and_then(|s| s.get(user).cloned());
    let (verifier, challenge) = oidc::pkce()?;
    let (state, nonce) = (oidc::random()?, oidc::random()?);
    let base = c.identity.base()?;
    let request = Authorize {
        base: &base,
        issuer: &base,
        client_id: SPA,
        redirect_uri: SPA_REDIRECT,
        scope: "openid profile email kms:encrypt kms:decrypt",
        challenge: &challenge,
        state: &state,
        nonce: &nonce,
    };
    let how = match &session {
        Some(cookie) => oidc::SignIn::Session { user, cookie },
        None => oidc::SignIn::Password { user, password: &password },
    };
    let signed_in = oidc::sign_in(c.identity.client()?, &request, how).await?;
    if let (Some(cookie), Ok(mut sessions)) = (signed_in.session, c.identity.sessions.lock()) {
        sessions.insert(user.to_owned(), cookie);
    }
    let code = signed_in.code;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", SPA),
        ("code", code.as_str()),
        ("redirect_uri", SPA_REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    let tokens = expect_status("the code exchange", post_form(c, "/token", None, &form).await?, 200)?;
    Ok((tokens, nonce))
}

/// Embedded: adds Identity's start after `state.prepare`.
/// With `dev`, Identity's data is in the run's PostgreSQL: it starts once the cluster runs, and
/// its health follows the database's.
pub(crate) fn start(plan: Plan<Ctx>, health_timeout: Duration, dev: bool) -> Plan<Ctx> {
    let (up_after, health_after) = if dev {
        (vec![id::CONFIG_IDENTITY, id::STACK_UP_POSTGRES], vec![id::STACK_UP_IDENTITY, id::HEALTH_POSTGRES])
    } else {
        (vec![id::CONFIG_IDENTITY], vec![id::STACK_UP_IDENTITY])
    };
    plan.step(
        Step::new(id::CONFIG_IDENTITY, Phase::Setup, |c: Arc<Ctx>| async move {
            let config = write_config(c.state()?)
                .map_err(|e| StepError::from_error("cannot write Identity's configuration", &e))?;
            let _ = c.identity.config.set(config);
            Ok(())
        })
        .after(&[id::STATE_PREPARE])
        .critical(),
    )
    .step(
        Step::new(id::STACK_UP_IDENTITY, Phase::Start, |c: Arc<Ctx>| async move {
            let mut template =
                c.identity.config.get().ok_or_else(|| StepError::new("no configuration"))?.clone();
            if let Some(pg) = c.postgres.config(c.state()?, "identity") {
                template.storage = identity::config::Storage { sqlite: None, postgres: Some(pg) };
            }
            let template = &template;
            // The design's port when free, else a free one; the issuer names the port it
            // listens on. Another process may bind the port between the check and the
            // start: then once more on a free port.
            let running = crate::ports::start_on(crate::ports::IDENTITY_PORT, |port| {
                let mut config = template.clone();
                config.server.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                config.issuer = issuer(port);
                async move {
                    identity::service::start(&config, identity::service::StartOptions { demo: true }).await
                }
            })
            .await
            .map_err(|e| StepError::from_error("Identity did not start", &e).with_hint(super::START_HINT))?;
            super::apply_never_ready_hook("identity", &running.server);
            let _ = c.identity.api.set(running.server.addr);
            let _ = c.identity.admin.set(running.server.admin_addr);
            let client = super::service_client(c.state()?, "identity.demo.local", running.server.addr)?;
            let _ = c.identity.client.set(client);
            *c.identity.running.lock().await = Some(running);
            Ok(())
        })
        .after(&up_after)
        .critical(),
    )
    .step(
        Step::new(id::HEALTH_IDENTITY, Phase::Health, move |c: Arc<Ctx>| async move {
            let admin = c.identity.admin.get().ok_or_else(|| StepError::new("Identity is not running"))?;
            let ca = c.state()?.ca_bundle();
            super::wait_ready("Identity", *admin, &ca, health_timeout).await
        })
        .after(&health_after)
        .verifies("Identity's readyz answers 200 over TLS 1.3 (our CA)")
        // wait_ready bounds itself by health_timeout; this only guards against a hang.
        .timeout(health_timeout + Duration::from_secs(5))
        .critical(),
    )
}

/// Identity's checks and flows, whichever runtime started it (they need `health.identity` and
/// the context's address and client).
pub(crate) fn checks(plan: Plan<Ctx>) -> Plan<Ctx> {
    [
        verify_discovery(),
        verify_clients(),
        verify_users(),
        flow_client_credentials(),
        flow_introspection(),
        flow_revocation(),
        flow_code_pkce(),
        flow_userinfo(),
        flow_refresh_rotation(),
        flow_refresh_reuse(),
    ]
    .into_iter()
    .fold(plan, Plan::step)
}

fn verify_discovery() -> Step<Ctx> {
    Step::new(id::VERIFY_IDENTITY_DISCOVERY, Phase::Verify, |c: Arc<Ctx>| async move {
        let client = c.identity.client()?;
        let base = c.identity.base()?;
        let get = |path: &'static str| {
            let url = format!("{base}{path}");
            async move {
                let resp = client
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| StepError::from_error(format!("GET {path} failed"), &e))?;
                if resp.status() != 200 {
                    return Err(StepError::new(format!("GET {path} answered {}", resp.status())));
                }
                resp.json::<serde_json::Value>()
                    .await
                    .map_err(|e| StepError::from_error(format!("{path} is not JSON"), &e))
            }
        };
        let doc = get("/.well-known/openid-configuration").await?;
        if doc["issuer"] != base.as_str()
            || doc["code_challenge_methods_supported"] != serde_json::json!(["S256"])
        {
            return Err(StepError::new(format!(
                "discovery does not name the issuer it is served from ({base}) with PKCE S256 only"
            )));
        }
        follow_advertised(client, &base, &doc).await?;
        let jwks = get("/jwks").await?;
        if jwks["keys"].as_array().is_none_or(Vec::is_empty) {
            return Err(StepError::new("the JWKS has no keys"));
        }
        let _ = c.identity.jwks.set(jwks);
        Ok(())
    })
    .after(&[id::HEALTH_IDENTITY])
    .verifies("discovery names the issuer it is served from, PKCE S256 only; every advertised endpoint is on the issuer's origin and answers there; the JWKS has keys")
}

fn verify_clients() -> Step<Ctx> {
    Step::new(id::VERIFY_IDENTITY_CLIENTS, Phase::Verify, |c: Arc<Ctx>| async move {
        // Independent checks, at once: each costs the service one password hash.
        let checks = crate::state::CLIENTS.map(|client| {
            let scope = if client == "kms-service" { "kms:read" } else { "kms:encrypt" };
            client_credentials(&c, client, Some(scope))
        });
        futures_util::future::try_join_all(checks).await.map(drop)
    })
    .after(&[id::HEALTH_IDENTITY])
    .verifies("each seeded confidential client gets a client_credentials token with its secret (client_secret_basic)")
    .heavy()
}

fn verify_users() -> Step<Ctx> {
    Step::new(id::VERIFY_IDENTITY_USERS, Phase::Verify, |c: Arc<Ctx>| async move {
        let sign_ins = crate::state::USERS.map(|user| {
            let c = &c;
            async move {
                code_flow(c, user).await.map_err(|e| StepError {
                    causes: [vec![e.message], e.causes].concat(),
                    ..StepError::new(format!("seeded user {user} cannot sign in"))
                })
            }
        });
        futures_util::future::try_join_all(sign_ins).await.map(drop)
    })
    .after(&[id::HEALTH_IDENTITY])
    .verifies("each seeded user signs in with the password through the HTML form (CSRF, PKCE S256), the redirect carries state and iss, and the code is exchanged for tokens")
    .heavy()
}

fn flow_client_credentials() -> Step<Ctx> {
    Step::new(id::FLOW_IDENTITY_CLIENT_CREDENTIALS, Phase::Flows, |c: Arc<Ctx>| async move {
        let token = client_credentials(&c, "demo-confidential", None).await?;
        let claims = oidc::verify(
            &token,
            c.identity.jwks()?,
            &Expect { issuer: &c.identity.base()?, audience: KMS_AUDIENCE, typ: "at+jwt" },
        )?;
        if claims["client_id"] != "demo-confidential" || claims["tenant_id"].as_str().is_none() {
            return Err(StepError::new("the access token lacks client_id or tenant_id"));
        }
        Ok(())
    })
    .after(&[id::VERIFY_IDENTITY_DISCOVERY, id::VERIFY_IDENTITY_CLIENTS])
    .verifies("access token: ES256 signature via the JWKS kid, typ at+jwt, iss, aud, exp, iat, sub, client_id, tenant_id")
}

fn flow_introspection() -> Step<Ctx> {
    Step::new(id::FLOW_IDENTITY_INTROSPECTION, Phase::Flows, |c: Arc<Ctx>| async move {
        let token = client_credentials(&c, "demo-confidential", Some("kms:read")).await?;
        let answer = introspect(&c, &token).await?;
        if answer["active"] != true || answer["scope"] != "kms:read" {
            return Err(StepError::new(format!("introspection of a fresh token said {answer}")));
        }
        Ok(())
    })
    .after(&[id::VERIFY_IDENTITY_CLIENTS])
    .verifies("introspection (RFC 7662) of a fresh token: active, with the requested scope")
}

fn flow_revocation() -> Step<Ctx> {
    Step::new(id::FLOW_IDENTITY_REVOCATION, Phase::Flows, |c: Arc<Ctx>| async move {
        let token = client_credentials(&c, "demo-confidential", None).await?;
        let secret = secret(&c.state()?.client_secret("demo-confidential"))?;
        expect_status(
            "revocation",
            post_form(&c, "/revoke", Some(("demo-confidential", &secret)), &[("token", &token)]).await?,
            200,
        )?;
        let answer = introspect(&c, &token).await?;
        if answer["active"] != false {
            return Err(StepError::new("a revoked token is still active"));
        }
        Ok(())
    })
    .after(&[id::VERIFY_IDENTITY_CLIENTS])
    .verifies("revocation (RFC 7009) answers 200; introspection then says inactive")
}

fn flow_code_pkce() -> Step<Ctx> {
    Step::new(id::FLOW_IDENTITY_CODE_PKCE, Phase::Flows, |c: Arc<Ctx>| async move {
        let (tokens, nonce) = code_flow(&c, "user").await?;
        let jwks = c.identity.jwks()?;
        let id_token = tokens["id_token"].as_str().ok_or_else(|| StepError::new("no id_token"))?;
        let id = oidc::verify(
            id_token,
            jwks,
            &Expect { issuer: &c.identity.base()?, audience: SPA, typ: "JWT" },
        )?;
        if id["nonce"] != nonce.as_str() {
            return Err(StepError::new("the id_token's nonce is not ours"));
        }
        let access = tokens["access_token"].as_str().ok_or_else(|| StepError::new("no access_token"))?;
        let at = oidc::verify(
            access,
            jwks,
            &Expect { issuer: &c.identity.base()?, audience: KMS_AUDIENCE, typ: "at+jwt" },
        )?;
        // at_hash (OIDC Core §3.1.3.6): the left half of SHA-256 of the access token.
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access.as_bytes());
        let at_hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]);
        if id["at_hash"] != at_hash.as_str() {
            return Err(StepError::new("the ID token's at_hash does not match the access token"));
        }
        if at["sub"] != id["sub"] {
            return Err(StepError::new("the access token and id_token name different users"));
        }
        if tokens["refresh_token"].as_str().is_none() {
            return Err(StepError::new("no refresh_token for the public client"));
        }
        let _ = c.identity.login.set(tokens);
        Ok(())
    })
    .after(&[id::VERIFY_IDENTITY_DISCOVERY, id::VERIFY_IDENTITY_USERS])
    .verifies("authorization code + PKCE through the consent form of the session verify.identity.users started; ID token: ES256 signature via JWKS, typ, iss, aud, exp, nonce, at_hash; access token signature, iss, aud; same sub; a refresh token issued")
    .heavy()
}

fn flow_userinfo() -> Step<Ctx> {
    Step::new(id::FLOW_IDENTITY_USERINFO, Phase::Flows, |c: Arc<Ctx>| async move {
        let tokens = c.identity.login.get().ok_or_else(|| StepError::new("no tokens from the code flow"))?;
        let access = tokens["access_token"].as_str().unwrap_or_default();
        let resp = c
            .identity
            .client()?
            .get(format!("{}/userinfo", c.identity.base()?))
            .bearer_auth(access)
            .send()
            .await
            .map_err(|e| StepError::from_error("GET /userinfo failed", &e))?;
        let got = (resp.status().as_u16(), resp.json().await.unwrap_or(serde_json::Value::Null));
        let info = expect_status("userinfo", got, 200)?;
        if info["preferred_username"] != "user" || info["sub"].as_str().is_none() {
            return Err(StepError::new(format!("userinfo said {info}")));
        }
        Ok(())
    })
    .after(&[id::FLOW_IDENTITY_CODE_PKCE])
    .verifies("userinfo with the code flow's access token names the signed-in user (sub, preferred_username)")
}

fn flow_refresh_rotation() -> Step<Ctx> {
    Step::new(id::FLOW_IDENTITY_REFRESH_ROTATION, Phase::Flows, |c: Arc<Ctx>| async move {
        let tokens = c.identity.login.get().ok_or_else(|| StepError::new("no tokens from the code flow"))?;
        let old = tokens["refresh_token"].as_str().unwrap_or_default().to_owned();
        let form = [("grant_type", "refresh_token"), ("client_id", SPA), ("refresh_token", old.as_str())];
        let new = expect_status("the refresh", post_form(&c, "/token", None, &form).await?, 200)?;
        let new = new["refresh_token"].as_str().ok_or_else(|| StepError::new("no new refresh_token"))?;
        if new == old {
            return Err(StepError::new("the refresh token did not rotate"));
        }
        let _ = c.identity.rotated.set((old, new.to_owned()));
        Ok(())
    })
    .after(&[id::FLOW_IDENTITY_CODE_PKCE])
    .verifies("a refresh token grant returns a new refresh token (rotation)")
}

fn flow_refresh_reuse() -> Step<Ctx> {
    Step::new(id::FLOW_IDENTITY_REFRESH_REUSE, Phase::Flows, |c: Arc<Ctx>| async move {
        let (old, new) =
            c.identity.rotated.get().ok_or_else(|| StepError::new("no rotated refresh token"))?;
        for (which, token) in [("the used refresh token", old), ("its successor (family revoked)", new)] {
            let form =
                [("grant_type", "refresh_token"), ("client_id", SPA), ("refresh_token", token.as_str())];
            let body = expect_status(which, post_form(&c, "/token", None, &form).await?, 400)?;
            if body["error"] != "invalid_grant" {
                return Err(StepError::new(format!("{which} gave {}, not invalid_grant", body["error"])));
            }
        }
        Ok(())
    })
    // Reuse revokes the family, the login's access token with it: userinfo uses that token
    // first.
    .after(&[id::FLOW_IDENTITY_REFRESH_ROTATION, id::FLOW_IDENTITY_USERINFO])
    .verifies("the replaced refresh token is refused (invalid_grant) and its successor too: reuse revoked the family")
}

/// Follows every URL discovery advertises, as a relying party would: each must be on the
/// issuer's origin and answer there (any status but 404 or a server error: a GET of the token
/// endpoint answers 405, which proves it is there).
async fn follow_advertised(
    client: &reqwest::Client,
    issuer: &str,
    doc: &serde_json::Value,
) -> Result<(), StepError> {
    let urls: Vec<(&str, &str)> = doc
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.ends_with("_endpoint") || k.ends_with("_uri"))
        .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
        .collect();
    if urls.is_empty() {
        return Err(StepError::new("discovery advertises no endpoints"));
    }
    for (key, url) in urls {
        if !url.strip_prefix(issuer).is_some_and(|rest| rest.starts_with('/')) {
            return Err(StepError::new(format!(
                "discovery's {key} ({url}) is not on the issuer's origin ({issuer})"
            )));
        }
        let resp =
            client.get(url).send().await.map_err(|e| {
                StepError::from_error(format!("discovery's {key} ({url}) does not answer"), &e)
            })?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND || status.is_server_error() {
            return Err(StepError::new(format!("discovery's {key} ({url}) answered {status}")));
        }
    }
    Ok(())
}

/// Writes the seed and returns Identity's configuration over the state directory.
fn write_config(state: &State) -> std::io::Result<identity::config::IdentityConfig> {
    use identity::config::{IdentityConfig, SeedConfig, Storage, Tokens, Unseal};
    let config_dir = state.config_dir();
    std::fs::create_dir_all(&config_dir)?;
    let seed = config_dir.join("identity-demo-seed.yml");
    std::fs::write(&seed, IDENTITY_SEED)?;
    Ok(IdentityConfig {
        // The API port and the issuer are chosen at start (`stack.up.identity`); the admin port
        // is any free one.
        server: service_kit::server::HttpConfig::loopback(&pki::PkiDir::new(state.pki_dir()), "identity"),
        issuer: issuer(crate::ports::IDENTITY_PORT),
        storage: Storage::sqlite(state.data_dir().join("identity.db")),
        unseal: Unseal { share_files: state.unseal_shares("identity").into_iter().take(3).collect() },
        tokens: Tokens::default(),
        throttle: Default::default(),
        token_exchange: super::exchange::policy(),
        api_keys: identity::config::ApiKeysConfig {
            verifiers: vec!["kms-service".to_owned()],
            audience: Some(super::apikeys::IDENTITY_AUDIENCE.to_owned()),
            token_audiences: vec![super::bearer::KMS_AUDIENCE.to_owned()],
            ..Default::default()
        },
        seed: Some(SeedConfig {
            file: seed,
            tenants_file: state.tenants_file(),
            secrets_dir: state.secrets_dir(),
        }),
        log_format: Default::default(),
    })
}
