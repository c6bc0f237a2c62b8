//! `kms.yml`: the service's configuration. Secrets (unseal shares) are only ever paths to files.
//!
//! ```yaml
//! server:
//!   listen: 0.0.0.0:8081
//!   admin_listen: 0.0.0.0:9081
//!   tls: { cert_file: …/fullchain.pem, key_file: …/key.pem, ca_file: …/ca-bundle.pem }
//! storage:                  # exactly one engine
//!   sqlite: { path: /var/lib/kms/kms.db }
//!   # or: postgres: { host: db, database: kms, user: kms, password_file: /run/secrets/postgres_password }
//! unseal:
//!   share_files: [/run/secrets/unseal_share_1, /run/secrets/unseal_share_2, /run/secrets/unseal_share_3]
//! auth:
//!   realms:
//!     - { type: file, path: /etc/kms/realms.yml }
//! ```
//! Every key can be overridden from the environment: `KMS__SERVER__LISTEN=127.0.0.1:8081`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use service_kit::config::{Validate, Validator};
pub use service_kit::postgres::PostgresConfig;
use service_kit::server::HttpConfig;
use service_kit::telemetry::LogFormat;
use service_kit::throttle::ThrottleConfig;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsConfig {
    /// Listeners, TLS, limits.
    pub server: HttpConfig,
    /// Where keys live.
    pub storage: StorageConfig,
    /// The unseal shares.
    pub unseal: UnsealConfig,
    /// Authentication.
    pub auth: AuthConfig,
    /// Demo seeding, applied when the service starts with `--demo`.
    #[serde(default)]
    pub seed: Option<SeedConfig>,
    /// Log format.
    #[serde(default)]
    pub log_format: LogFormat,
}

/// `seed:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedConfig {
    /// `demo-seed.yml`: tenants and pools.
    pub file: PathBuf,
    /// Tenant name → id, generated per demo environment.
    pub tenants_file: PathBuf,
}

/// `storage:`: exactly one of `sqlite` and `postgres` (validation refuses both and neither).
///
/// Two optional sections rather than an enum so that `KMS__STORAGE__POSTGRES__…` overrides can
/// add the section to a file that has none, and so that the mistake gets a validation message
/// with the file's line rather than serde's "expected enum".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// SQLite: one file for the catalog, one file per tenant beside it.
    #[serde(default)]
    pub sqlite: Option<SqliteConfig>,
    /// PostgreSQL: the catalog in the database's `public` schema, one schema per tenant.
    #[serde(default)]
    pub postgres: Option<PostgresConfig>,
}

/// The engine a valid [`StorageConfig`] names.
#[derive(Debug, Clone, Copy)]
pub enum Engine<'a> {
    /// `storage.sqlite`.
    Sqlite(&'a SqliteConfig),
    /// `storage.postgres`.
    Postgres(&'a PostgresConfig),
}

impl StorageConfig {
    /// SQLite at `path`.
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        Self { sqlite: Some(SqliteConfig { path: path.into() }), postgres: None }
    }

    /// PostgreSQL with `config`.
    pub fn postgres(config: PostgresConfig) -> Self {
        Self { sqlite: None, postgres: Some(config) }
    }

    /// The one configured engine; `None` when both or neither are set (which validation
    /// refuses).
    pub fn engine(&self) -> Option<Engine<'_>> {
        match (&self.sqlite, &self.postgres) {
            (Some(s), None) => Some(Engine::Sqlite(s)),
            (None, Some(p)) => Some(Engine::Postgres(p)),
            _ => None,
        }
    }

    fn validate(&self, v: &mut Validator) {
        match (&self.sqlite, &self.postgres) {
            (Some(_), Some(_)) => v.error(
                "storage",
                "configure one engine, `sqlite` or `postgres`, not both (an environment override may have added one)",
            ),
            (None, None) => v.error(
                "storage",
                "configure an engine: `sqlite: { path: … }` or `postgres: { host, database, user, password_file }`",
            ),
            (Some(s), None) => {
                v.check(!s.path.as_os_str().is_empty(), "storage.sqlite.path", "must name a file")
            }
            (None, Some(p)) => p.validate("storage.postgres", v),
        }
    }
}

/// `storage.sqlite:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// The database file (created on first start).
    pub path: PathBuf,
}

/// `unseal:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsealConfig {
    /// Files holding unseal shares (Docker secrets); at least the threshold of them.
    pub share_files: Vec<PathBuf>,
}

/// `auth:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Realms, tried in this order.
    pub realms: Vec<RealmConfig>,
    /// How long a successful password verification is reused.
    #[serde(default = "default_cache_ttl", with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// Most cached verifications.
    #[serde(default = "default_cache_entries")]
    pub cache_entries: usize,
    /// Free failed logins per user *and client address* before that address is slowed down
    /// for that user (exponential backoff); other addresses are not affected.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// How long a quiet (user, address) pair's failures are remembered; also the window of
    /// `failure_ceiling`.
    #[serde(default = "default_failure_window", with = "humantime_serde")]
    pub failure_window: Duration,
    /// The first lock of a (user, address) pair once its free failures are spent; doubled per
    /// further failure.
    #[serde(default = "default_backoff_initial", with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// The longest such lock.
    #[serde(default = "default_backoff_max", with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Failed logins per user per window from all addresses together before the user is
    /// refused (to everyone without cached credentials) for the rest of the window: bounds a
    /// botnet, far above what one address can reach.
    #[serde(default = "default_failure_ceiling")]
    pub failure_ceiling: u32,
    /// Bearer tokens from Identity (off when absent).
    #[serde(default)]
    pub bearer: Option<BearerConfig>,
}

/// `auth.bearer:` — Identity's access tokens, validated locally through the JWKS cache and,
/// if configured, confirmed by introspection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BearerConfig {
    /// The `iss` tokens must carry (`https://identity.demo.local:8082`).
    pub issuer: String,
    /// Where Identity publishes its keys (HTTPS).
    pub jwks_url: String,
    /// The `aud` tokens must carry: this KMS.
    pub audience: String,
    /// Accepted algorithms, pinned here and never taken from a token.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// The only CA trusted for the JWKS and introspection.
    pub ca_file: PathBuf,
    /// Fixed host → address mappings (the embedded runtime's loopback ports).
    #[serde(default)]
    pub resolve: std::collections::BTreeMap<String, std::net::SocketAddr>,
    /// Clock skew tolerated on `exp`, `nbf`, `iat`.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
    /// Asking Identity whether a token is still active.
    #[serde(default)]
    pub introspection: Option<IntrospectionConfig>,
    /// How much a 401 says: `minimal` for production, `detailed` (the reason) for the demo.
    #[serde(default)]
    pub error_detail: ErrorDetail,
    /// Transaction tokens of the same issuer (off when absent).
    #[serde(default)]
    pub transaction_tokens: Option<TxnTokenConfig>,
    /// Other issuers whose access tokens are accepted, each for the tenants it is authority for
    /// (`trust.yml`, the trust store's format; reloaded on change and on SIGHUP).
    #[serde(default)]
    pub trust_file: Option<PathBuf>,
    /// API keys of Identity (`Authorization: ApiKey dak_…`), verified there and cached.
    #[serde(default)]
    pub api_keys: Option<ApiKeysConfig>,
}

/// `auth.bearer.api_keys:` — Identity's API keys, a third realm: each key is verified at
/// Identity (`/api/v1/api-keys/verify`, as a client named in Identity's `api_keys.verifiers`)
/// and the answer reused for `cache_ttl`, which bounds how long a deleted or rotated-out key
/// keeps working here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeysConfig {
    /// Identity's verification endpoint.
    pub endpoint: String,
    /// The KMS's client at Identity.
    pub client_id: String,
    /// Its secret, from a file.
    pub client_secret_file: PathBuf,
    /// How long an answer is reused (default 30 s, at most 5 min).
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub cache_ttl: Duration,
}

/// `auth.bearer.transaction_tokens:` — Identity's transaction tokens (`typ: txntoken+jwt`),
/// validated like access tokens but for the trust domain's audience, and required to carry a
/// `txn` and a short lifetime.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxnTokenConfig {
    /// The `aud` they carry: the trust domain (Identity's `token_exchange.trust_domain`).
    pub trust_domain: String,
    /// The longest `exp - iat` accepted (default 5 min): a longer-lived "transaction" token is
    /// refused.
    #[serde(default = "default_txn_lifetime", with = "humantime_serde")]
    pub max_lifetime: Duration,
}

fn default_txn_lifetime() -> Duration {
    Duration::from_secs(300)
}

fn default_algorithms() -> Vec<String> {
    vec!["ES256".to_owned()]
}
fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

/// `auth.bearer.introspection:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionConfig {
    /// Identity's RFC 7662 endpoint.
    pub endpoint: String,
    /// The KMS's own client.
    pub client_id: String,
    /// Its secret, from a file (Docker secret).
    pub client_secret_file: PathBuf,
    /// When to ask.
    #[serde(default)]
    pub mode: IntrospectionMode,
    /// With `mode: interval`, how long an "active" answer is trusted: a revoked token is
    /// refused at most this long after its revocation.
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// In the other modes, how long an "active" answer is reused for the same token (default 0:
    /// every request — or every sensitive one — asks; concurrent requests still share a call).
    /// Raising it trades revocation latency for fewer calls.
    #[serde(default, with = "humantime_serde")]
    pub cache_ttl: Duration,
}

fn default_interval() -> Duration {
    Duration::from_secs(30)
}

/// When the KMS introspects a Bearer token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntrospectionMode {
    /// Every request.
    #[default]
    EveryRequest,
    /// Only operations that release or create secrets (decrypt, unwrap, sign, data keys,
    /// pool management).
    Sensitive,
    /// Every request, but an "active" answer is reused for `interval`.
    Interval,
}

/// How much a 401 or 403 body explains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorDetail {
    /// "The access token is not valid" and nothing more.
    #[default]
    Minimal,
    /// The reason (expired, wrong audience, unknown key…), for development and the demo.
    Detailed,
}

fn default_cache_ttl() -> Duration {
    Duration::from_secs(60)
}
fn default_cache_entries() -> usize {
    10_000
}
fn default_max_failures() -> u32 {
    5
}
fn default_failure_window() -> Duration {
    Duration::from_secs(60)
}
fn default_backoff_initial() -> Duration {
    ThrottleConfig::default().backoff_initial
}
fn default_backoff_max() -> Duration {
    ThrottleConfig::default().backoff_max
}
fn default_failure_ceiling() -> u32 {
    ThrottleConfig::default().failure_ceiling
}

impl AuthConfig {
    /// The login throttle's settings.
    pub fn throttle(&self) -> ThrottleConfig {
        ThrottleConfig {
            max_failures: self.max_failures,
            failure_window: self.failure_window,
            backoff_initial: self.backoff_initial,
            backoff_max: self.backoff_max,
            failure_ceiling: self.failure_ceiling,
        }
    }
}

/// One realm.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum RealmConfig {
    /// A `realms.yml` file (reloaded on SIGHUP).
    File {
        /// Its path.
        path: PathBuf,
    },
    /// The `users` table of the key store (seeded by `--demo`).
    Database,
}

impl Validate for KmsConfig {
    fn validate(&self, v: &mut Validator) {
        self.server.validate(v);
        self.storage.validate(v);
        v.check(!self.unseal.share_files.is_empty(), "unseal.share_files", "list the unseal share files");
        v.check(!self.auth.realms.is_empty(), "auth.realms", "configure at least one realm");
        v.check(self.auth.cache_ttl <= Duration::from_secs(3600), "auth.cache_ttl", "at most 1h");
        v.check(self.auth.cache_entries >= 1, "auth.cache_entries", "at least 1");
        self.auth.throttle().validate("auth.", v);
        if let Some(b) = &self.auth.bearer {
            v.check(b.jwks_url.starts_with("https://"), "auth.bearer.jwks_url", "must be an https URL");
            v.check(!b.issuer.is_empty(), "auth.bearer.issuer", "must not be empty");
            v.check(!b.audience.is_empty(), "auth.bearer.audience", "must not be empty");
            v.check(
                !b.algorithms.is_empty()
                    && b.algorithms.iter().all(|a| crate::bearer::parse_algorithm(a).is_some()),
                "auth.bearer.algorithms",
                "list asymmetric algorithms: ES256, ES384, EdDSA, PS256, RS256…",
            );
            v.check(b.leeway <= Duration::from_secs(300), "auth.bearer.leeway", "at most 5m");
            if let Some(t) = &b.transaction_tokens {
                v.check(
                    !t.trust_domain.is_empty() && t.trust_domain != b.audience,
                    "auth.bearer.transaction_tokens.trust_domain",
                    "must be set, and differ from auth.bearer.audience (a transaction token is not an access token)",
                );
                v.check(
                    t.max_lifetime >= Duration::from_secs(1) && t.max_lifetime <= Duration::from_secs(3600),
                    "auth.bearer.transaction_tokens.max_lifetime",
                    "must be between 1s and 1h",
                );
            }
            if let Some(i) = &b.introspection {
                v.check(
                    i.endpoint.starts_with("https://"),
                    "auth.bearer.introspection.endpoint",
                    "must be an https URL",
                );
                v.check(
                    i.interval <= Duration::from_secs(300),
                    "auth.bearer.introspection.interval",
                    "at most 5m: a revoked token is accepted at most this long",
                );
                v.check(
                    i.cache_ttl <= Duration::from_secs(30),
                    "auth.bearer.introspection.cache_ttl",
                    "at most 30s",
                );
            }
            if let Some(k) = &b.api_keys {
                v.check(
                    k.endpoint.starts_with("https://"),
                    "auth.bearer.api_keys.endpoint",
                    "must be an https URL",
                );
                v.check(
                    k.cache_ttl >= Duration::from_secs(1) && k.cache_ttl <= Duration::from_secs(300),
                    "auth.bearer.api_keys.cache_ttl",
                    "between 1s and 5m: a deleted key is accepted at most this long",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "server:
  listen: 127.0.0.1:8081
  admin_listen: 127.0.0.1:9081
  tls: { cert_file: c.pem, key_file: k.pem, ca_file: ca.pem }
storage:
  sqlite: { path: kms.db }
unseal:
  share_files: [s1]
";

    fn load(auth: &str) -> Result<KmsConfig, service_kit::ConfigError> {
        service_kit::config::load_str(
            std::path::Path::new("kms.yml"),
            &format!("{BASE}{auth}"),
            "",
            Vec::new(),
        )
    }

    #[test]
    fn the_throttle_defaults_apply_and_the_ceiling_must_stay_far_above_one_address() {
        let config = load("auth:\n  realms: [{ type: database }]\n").unwrap();
        assert_eq!(config.auth.throttle(), ThrottleConfig::default());
        let config = load(
            "auth:\n  realms: [{ type: database }]\n  max_failures: 3\n  backoff_initial: 2s\n  backoff_max: 1h\n  failure_ceiling: 50\n",
        )
        .unwrap();
        assert_eq!(config.auth.throttle().backoff(2), Duration::from_secs(8));
        let err = load("auth:\n  realms: [{ type: database }]\n  failure_ceiling: 12\n").unwrap_err();
        let text = format!("{err}: {:?}", err);
        assert!(text.contains("auth.failure_ceiling") && text.contains("at least 20"), "{text}");
    }

    fn load_storage(
        storage: &str,
        env: Vec<(String, String)>,
    ) -> Result<KmsConfig, service_kit::ConfigError> {
        let text = format!(
            "server:\n  listen: 127.0.0.1:8081\n  admin_listen: 127.0.0.1:9081\n  tls: {{ cert_file: c.pem, key_file: k.pem, ca_file: ca.pem }}\n{storage}unseal:\n  share_files: [s1]\nauth:\n  realms: [{{ type: database }}]\n"
        );
        service_kit::config::load_str(std::path::Path::new("kms.yml"), &text, "KMS", env)
    }

    #[test]
    fn storage_is_exactly_one_engine() {
        let sqlite = load_storage("storage:\n  sqlite: { path: kms.db }\n", Vec::new()).unwrap();
        assert!(
            matches!(sqlite.storage.engine(), Some(Engine::Sqlite(s)) if s.path == std::path::Path::new("kms.db"))
        );
        let postgres = load_storage(
            "storage:\n  postgres: { host: db, database: kms, user: kms, password_file: /run/secrets/pw }\n",
            Vec::new(),
        )
        .unwrap();
        assert!(
            matches!(postgres.storage.engine(), Some(Engine::Postgres(p)) if p.target() == "kms@db:5432/kms")
        );

        for (storage, expect) in [
            (
                "storage:\n  sqlite: { path: kms.db }\n  postgres: { host: db, database: kms, user: kms, password_file: pw }\n",
                "not both",
            ),
            ("storage: {}\n", "configure an engine"),
            (
                "storage:\n  postgres: { host: db, database: Kms-DB, user: kms, password_file: pw }\n",
                "storage.postgres.database",
            ),
        ] {
            let err = load_storage(storage, Vec::new()).unwrap_err();
            assert!(format!("{err}").contains(expect), "{storage}: {err}");
        }
        // The password is never read from the environment, or from the file's text.
        let err = load_storage(
            "storage:\n  postgres: { host: db, database: kms, user: kms, password: hunter2, password_file: pw }\n",
            Vec::new(),
        )
        .unwrap_err();
        assert!(format!("{err}").contains("password"), "{err}");
        let env =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let err = load_storage(
            "storage:\n  postgres: { host: db, database: kms, user: kms, password_file: pw }\n",
            env(&[("KMS__STORAGE__POSTGRES__PASSWORD", "hunter2")]),
        )
        .unwrap_err();
        assert!(format!("{err}").contains("never taken from the environment"), "{err}");
    }

    #[test]
    fn environment_overrides_reach_the_postgres_settings() {
        let env =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let config = load_storage(
            "storage:\n  postgres: { host: db, database: kms, user: kms, password_file: pw }\n",
            env(&[("KMS__STORAGE__POSTGRES__HOST", "10.0.0.5"), ("KMS__STORAGE__POSTGRES__PORT", "6432")]),
        )
        .unwrap();
        assert_eq!(
            config.storage.postgres.as_ref().map(|p| p.target()).as_deref(),
            Some("kms@10.0.0.5:6432/kms")
        );
        // An override can add the section to a file without one…
        let config = load_storage(
            "storage: {}\n",
            env(&[
                ("KMS__STORAGE__POSTGRES__HOST", "db"),
                ("KMS__STORAGE__POSTGRES__DATABASE", "kms"),
                ("KMS__STORAGE__POSTGRES__USER", "kms"),
                ("KMS__STORAGE__POSTGRES__PASSWORD_FILE", "/run/secrets/pw"),
            ]),
        )
        .unwrap();
        assert!(matches!(config.storage.engine(), Some(Engine::Postgres(_))));
        // …but not make a second engine beside the file's.
        let err = load_storage(
            "storage:\n  sqlite: { path: kms.db }\n",
            env(&[
                ("KMS__STORAGE__POSTGRES__HOST", "db"),
                ("KMS__STORAGE__POSTGRES__DATABASE", "kms"),
                ("KMS__STORAGE__POSTGRES__USER", "kms"),
                ("KMS__STORAGE__POSTGRES__PASSWORD_FILE", "/run/secrets/pw"),
            ]),
        )
        .unwrap_err();
        assert!(format!("{err}").contains("not both"), "{err}");
    }
}
