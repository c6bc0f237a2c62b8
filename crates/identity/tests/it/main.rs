//! Integration tests of the `identity` crate over real HTTPS. One test binary.
// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod apikeys;
mod browser;
mod browser_signin;
mod exchange;
mod flows;
mod oauth;
mod oracle;
mod postgres_start;
mod replicas;
mod signin_page;
mod store;
mod throttle;

use std::sync::Arc;

use identity::config::{IdentityConfig, SeedConfig, Tokens};
use identity::service::{self, RunningIdentity, StartOptions};
use test_support::{Running, TestDir};

pub const ISSUER: &str = "https://identity.demo.local:8082";
pub const KMS_SECRET: &str = "kms-service-secret-for-tests";
pub const OTHER_SECRET: &str = "other-app-secret-for-tests";
pub const WEBAPP_SECRET: &str = "webapp-secret-for-tests";
pub const ALICE_PASSWORD: &str = "alice-password-for-tests";
pub const BOB_PASSWORD: &str = "bob-password-for-tests";
pub const SPA_REDIRECT: &str = "https://app.demo.local/callback";
pub const SPA_LOGOUT: &str = "https://app.demo.local/signed-out";
pub const WEBAPP_REDIRECT: &str = "https://webapp.demo.local/cb";
pub const KMS_AUDIENCE: &str = "https://kms.demo.local:8081";

#[derive(Debug)]
pub struct Env {
    /// Shared by replicas started over one directory (one PKI, one set of shares and secrets).
    pub dir: Arc<TestDir>,
    pub identity: RunningIdentity,
    pub client: reqwest::Client,
}

pub async fn start() -> Env {
    start_with(Tokens::default()).await
}

pub async fn start_with(tokens: Tokens) -> Env {
    start_seeded(TEST_SEED, TENANTS, tokens).await.unwrap()
}

/// Identity with the shipped demo seed (`deployments/identity/config/demo-seed.yml`): the
/// users `admin`, `user`, `service` (password [`DEMO_PASSWORD`]) and the clients `demo-spa`,
/// `demo-confidential`, `kms-service`.
pub async fn start_demo() -> Env {
    let seed = include_str!("../../../../deployments/identity/config/demo-seed.yml");
    start_seeded(seed, TENANTS, Tokens::default()).await.unwrap()
}

/// The password of every user of the shipped demo seed in the tests.
pub const DEMO_PASSWORD: &str = "demo-password-for-tests";

/// The tenants file of the tests.
pub const TENANTS: &str = "acme: 0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10\n";

/// Identity over `seed` and `tenants` (YAML texts); the seed's secrets are the constants above.
pub async fn start_seeded(seed: &str, tenants: &str, tokens: Tokens) -> Result<Env, service::StartError> {
    let dir = Arc::new(TestDir::with_demo_pki());
    let config = seeded_config(&dir, seed, tenants, tokens);
    start_config(dir, &config).await
}

/// Identity started with `config` (applying its seed) over `dir`, with a client for it.
pub async fn start_config(dir: Arc<TestDir>, config: &IdentityConfig) -> Result<Env, service::StartError> {
    let Running { service: identity, client } =
        test_support::identity::start(&dir, config, StartOptions { demo: true }).await?;
    Ok(Env { dir, identity, client })
}

/// Identity's test configuration over `dir` (SQLite storage): writes the seed, the tenants and
/// the seed's secrets (the constants above); fresh unseal shares.
pub fn seeded_config(dir: &TestDir, seed: &str, tenants: &str, tokens: Tokens) -> IdentityConfig {
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("kms_service"), KMS_SECRET).unwrap();
    std::fs::write(secrets.join("other_app"), OTHER_SECRET).unwrap();
    std::fs::write(secrets.join("webapp"), WEBAPP_SECRET).unwrap();
    std::fs::write(secrets.join("alice"), ALICE_PASSWORD).unwrap();
    std::fs::write(secrets.join("bob"), BOB_PASSWORD).unwrap();
    for user in ["admin", "user", "service"] {
        std::fs::write(secrets.join(format!("user_password_{user}")), DEMO_PASSWORD).unwrap();
    }
    for client in ["demo-confidential", "demo-gateway", "kms-service"] {
        std::fs::write(secrets.join(format!("client_secret_{client}")), format!("{client}-secret-for-tests"))
            .unwrap();
    }
    let seed = SeedConfig {
        file: dir.write("seed.yml", seed),
        tenants_file: dir.write("tenants.yml", tenants),
        secrets_dir: secrets,
    };
    IdentityConfig { tokens, ..test_support::identity::config(dir, Some(seed)) }
}

/// The tests' own seed: users alice and bob, clients kms-service, other-app, spa, webapp.
pub const TEST_SEED: &str = "users:
  - username: alice
    password_file: alice
    name: Alice Example
    email: alice@acme.example
    tenant: acme
    roles: [admin]
  - username: bob
    password_file: bob
    name: Bob Example
    email: bob@acme.example
    tenant: acme
    roles: [user]
clients:
  - client_id: kms-service
    type: confidential
    secret_file: kms_service
    grant_types: [client_credentials]
    scopes: [kms:encrypt, kms:decrypt, kms:read]
    audiences: [https://kms.demo.local:8081, https://other.demo.local]
    tenant: acme
    roles: [service]
  - client_id: other-app
    type: confidential
    secret_file: other_app
    grant_types: [client_credentials]
    scopes: [kms:read]
    audiences: [https://kms.demo.local:8081]
    tenant: acme
    roles: [auditor]
  - client_id: spa
    type: public
    grant_types: [authorization_code, refresh_token]
    scopes: [openid, profile, email, kms:encrypt]
    audiences: [https://kms.demo.local:8081]
    redirect_uris: [https://app.demo.local/callback]
    post_logout_redirect_uris: [https://app.demo.local/signed-out]
    tenant: acme
  - client_id: webapp
    type: confidential
    secret_file: webapp
    grant_types: [authorization_code, refresh_token]
    scopes: [openid, profile]
    redirect_uris: [https://webapp.demo.local/cb]
    tenant: acme
";

/// Runs a Python driver off the test's runtime (the server runs on it), asserts it succeeded,
/// and returns the one JSON document it printed. `what` names it in the failure.
pub async fn run_python(what: &'static str, mut command: std::process::Command) -> serde_json::Value {
    let out = tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

impl Env {
    /// A client whose connections come from `local` (a loopback address such as 127.0.0.2):
    /// another client address, as the throttle sees it.
    pub fn client_from(&self, local: std::net::IpAddr) -> reqwest::Client {
        self.dir
            .client(test_support::identity::HOST, self.identity.server.addr)
            .local_address(local)
            .build()
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://identity.demo.local:{}{path}", self.identity.server.addr.port())
    }

    /// POSTs a form with optional Basic client credentials; returns status and JSON body.
    pub async fn post(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let mut req = self.client.post(self.url(path)).form(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }

    pub async fn token(&self, scope: Option<&str>) -> String {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let (status, body) = self.post("/token", Some(("kms-service", KMS_SECRET)), &form).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }
}
