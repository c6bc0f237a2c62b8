//! `identity.yml`. Secrets (unseal shares, client secrets) are only ever paths to files.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use service_kit::config::{Validate, Validator};
use service_kit::postgres::PostgresConfig;
use service_kit::server::HttpConfig;
use service_kit::telemetry::LogFormat;
use service_kit::throttle::ThrottleConfig;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Listeners, TLS, limits.
    pub server: HttpConfig,
    /// The issuer URL, the same everywhere (`https://identity.demo.local:8082`).
    pub issuer: String,
    /// Where clients, keys and revocations live.
    pub storage: Storage,
    /// The unseal shares.
    pub unseal: Unseal,
    /// Token lifetimes.
    #[serde(default)]
    pub tokens: Tokens,
    /// Throttling of password sign-ins and client authentication (per name and client
    /// address, with backoff, and a per-name ceiling).
    #[serde(default)]
    pub throttle: ThrottleConfig,
    /// Token exchange (RFC 8693) and transaction tokens: which client may exchange what.
    #[serde(default)]
    pub token_exchange: ExchangeConfig,
    /// API keys: how long deleted keys stay restorable, who may verify keys.
    #[serde(default)]
    pub api_keys: ApiKeysConfig,
    /// Demo seeding, applied with `--demo`.
    #[serde(default)]
    pub seed: Option<SeedConfig>,
    /// Log format.
    #[serde(default)]
    pub log_format: LogFormat,
}

/// `storage:` — exactly one engine: `sqlite: { path }` or `postgres: { host, port, database,
/// user, password_file, … }` (validation refuses both and neither).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// SQLite: one file, one instance (embedded runtime, `demo` profile).
    #[serde(default)]
    pub sqlite: Option<Sqlite>,
    /// PostgreSQL, which several replicas may share (`dev` profile). The password only from
    /// `password_file`.
    #[serde(default)]
    pub postgres: Option<PostgresConfig>,
}

/// The engine `storage:` names.
#[derive(Debug, Clone, Copy)]
pub enum Engine<'a> {
    /// `storage.sqlite`.
    Sqlite(&'a Sqlite),
    /// `storage.postgres`.
    Postgres(&'a PostgresConfig),
}

/// `storage:` names both engines or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EngineChoiceError {
    /// Both.
    #[error(
        "storage names both sqlite and postgres: keep one (postgres when several replicas share the database)"
    )]
    Both,
    /// Neither.
    #[error(
        "storage names no engine: add `sqlite: {{ path: FILE }}` or `postgres: {{ host, database, user, password_file }}`"
    )]
    Neither,
}

impl Storage {
    /// SQLite at `path`.
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        Self { sqlite: Some(Sqlite { path: path.into() }), postgres: None }
    }

    /// PostgreSQL with `config`.
    pub fn postgres(config: PostgresConfig) -> Self {
        Self { sqlite: None, postgres: Some(config) }
    }

    /// The one engine named.
    pub fn engine(&self) -> Result<Engine<'_>, EngineChoiceError> {
        match (&self.sqlite, &self.postgres) {
            (Some(s), None) => Ok(Engine::Sqlite(s)),
            (None, Some(p)) => Ok(Engine::Postgres(p)),
            (Some(_), Some(_)) => Err(EngineChoiceError::Both),
            (None, None) => Err(EngineChoiceError::Neither),
        }
    }
}

/// `storage.sqlite:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sqlite {
    /// The database file.
    pub path: PathBuf,
}

/// `unseal:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unseal {
    /// Share files (Docker secrets).
    pub share_files: Vec<PathBuf>,
}

/// `tokens:` — lifetimes, short by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tokens {
    /// Access and ID tokens (default 5 min).
    #[serde(with = "humantime_serde")]
    pub access_ttl: Duration,
    /// Authorization codes (default 60 s).
    #[serde(with = "humantime_serde")]
    pub code_ttl: Duration,
    /// Each refresh token (default 1 h; rotation issues a new one).
    #[serde(with = "humantime_serde")]
    pub refresh_ttl: Duration,
    /// A refresh token family as a whole, however often it rotates (default 24 h).
    #[serde(with = "humantime_serde")]
    pub refresh_family_ttl: Duration,
    /// Browser sessions (default 1 h).
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
}

impl Default for Tokens {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(300),
            code_ttl: Duration::from_secs(60),
            refresh_ttl: Duration::from_secs(3600),
            refresh_family_ttl: Duration::from_secs(86_400),
            session_ttl: Duration::from_secs(3600),
        }
    }
}

/// `token_exchange:` — RFC 8693 at `/token` and the transaction tokens it issues. A client may
/// exchange only when it has an entry in `actors` (and `token-exchange` among its grant types);
/// everything it may present and ask for is listed there, and a request outside it is refused
/// naming the rule.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ExchangeConfig {
    /// The audience of transaction tokens: the trust domain (default: the issuer).
    pub trust_domain: Option<String>,
    /// Transaction token lifetime (default 60 s; between 5 s and 10 min).
    #[serde(with = "humantime_serde::option")]
    pub txn_token_ttl: Option<Duration>,
    /// Who may exchange, and what.
    pub actors: Vec<ActorPolicy>,
    /// Other issuers whose tokens may be subjects (`trust.yml`, the trust store's format;
    /// reloaded on change and on SIGHUP). An actor names the ones it may present in
    /// `subject_issuers`.
    #[serde(default)]
    pub trust_file: Option<PathBuf>,
}

/// One actor's rules (`token_exchange.actors[]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorPolicy {
    /// The client this applies to (the authenticated caller of `/token`).
    pub client_id: String,
    /// Subject token types it may present, by short name: `access_token`, `id_token`,
    /// `txn_token` (a transaction token presented again for a downstream call), and
    /// `unsigned_context` (no token: claims the actor asserts, see `unsigned_context_claims`).
    pub subject_token_types: Vec<String>,
    /// Issuers whose subject tokens it may present: `self` is this issuer, any other an issuer
    /// of the trust store (`trust_file`), checked at start (default: `[self]`).
    #[serde(default = "self_issuer")]
    pub subject_issuers: Vec<String>,
    /// Token types it may ask for: `txn_token`, `access_token`.
    pub requested_token_types: Vec<String>,
    /// Audiences (resource servers) an access token it asks for may name; transaction tokens
    /// always name the trust domain.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// The longest lifetime of what it gets (never beyond the subject token's own expiry).
    #[serde(with = "humantime_serde")]
    pub max_lifetime: Duration,
    /// May it act *for* a subject with its own access token as `actor_token` (delegation;
    /// the result's `act` names it). Default true.
    #[serde(default = "yes")]
    pub delegation: bool,
    /// May it get a token *as* the subject without an actor token (impersonation; `act` still
    /// names it). Default false.
    #[serde(default)]
    pub impersonation: bool,
    /// With `unsigned_context`: the claims it may assert (`sub` is required; the tenant is
    /// always the actor's own).
    #[serde(default)]
    pub unsigned_context_claims: Vec<String>,
}

fn self_issuer() -> Vec<String> {
    vec!["self".to_owned()]
}

fn yes() -> bool {
    true
}

/// Subject token types an actor may be allowed, by short name (`jwt`: a JWT of another issuer).
pub const SUBJECT_TOKEN_TYPES: [&str; 5] =
    ["access_token", "id_token", "txn_token", "jwt", "unsigned_context"];
/// Token types an actor may be allowed to ask for.
pub const REQUESTED_TOKEN_TYPES: [&str; 2] = ["txn_token", "access_token"];
/// Claims an unsigned context may carry.
pub const UNSIGNED_CONTEXT_CLAIMS: [&str; 3] = ["sub", "scope", "tctx"];

impl ExchangeConfig {
    fn validate(&self, v: &mut Validator) {
        if let Some(ttl) = self.txn_token_ttl {
            v.check(
                ttl >= Duration::from_secs(5) && ttl <= Duration::from_secs(600),
                "token_exchange.txn_token_ttl",
                "must be between 5s and 10m",
            );
        }
        if let Some(domain) = &self.trust_domain {
            v.check(
                !domain.is_empty() && domain.len() <= 256 && !domain.chars().any(char::is_whitespace),
                "token_exchange.trust_domain",
                "must be a URI without spaces (the audience of transaction tokens)",
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (i, a) in self.actors.iter().enumerate() {
            let key = |field: &str| format!("token_exchange.actors[{i}].{field}");
            v.check(seen.insert(a.client_id.as_str()), key("client_id"), "names a client listed before");
            for t in &a.subject_token_types {
                v.check(
                    SUBJECT_TOKEN_TYPES.contains(&t.as_str()),
                    key("subject_token_types"),
                    format!("{t:?} is not one of {}", SUBJECT_TOKEN_TYPES.join(", ")),
                );
            }
            v.check(!a.subject_token_types.is_empty(), key("subject_token_types"), "list at least one");
            for t in &a.requested_token_types {
                v.check(
                    REQUESTED_TOKEN_TYPES.contains(&t.as_str()),
                    key("requested_token_types"),
                    format!("{t:?} is not one of {}", REQUESTED_TOKEN_TYPES.join(", ")),
                );
            }
            v.check(!a.requested_token_types.is_empty(), key("requested_token_types"), "list at least one");
            for issuer in &a.subject_issuers {
                v.check(
                    issuer == "self" || issuer.starts_with("https://"),
                    key("subject_issuers"),
                    format!("{issuer:?} is neither `self` nor an issuer URL"),
                );
                v.check(
                    issuer == "self" || self.trust_file.is_some(),
                    key("subject_issuers"),
                    format!("{issuer:?} is another issuer, but token_exchange.trust_file is not set"),
                );
            }
            v.check(
                a.max_lifetime >= Duration::from_secs(1) && a.max_lifetime <= Duration::from_secs(3600),
                key("max_lifetime"),
                "must be between 1s and 1h",
            );
            v.check(
                !(a.requested_token_types.iter().any(|t| t == "access_token") && a.audiences.is_empty()),
                key("audiences"),
                "an actor that may ask for access tokens needs the audiences they may name",
            );
            v.check(
                a.delegation || a.impersonation,
                key("delegation"),
                "an actor that may neither delegate nor impersonate can exchange nothing",
            );
            let unsigned = a.subject_token_types.iter().any(|t| t == "unsigned_context");
            for c in &a.unsigned_context_claims {
                v.check(
                    UNSIGNED_CONTEXT_CLAIMS.contains(&c.as_str()),
                    key("unsigned_context_claims"),
                    format!("{c:?} is not one of {}", UNSIGNED_CONTEXT_CLAIMS.join(", ")),
                );
            }
            v.check(
                !unsigned || a.unsigned_context_claims.iter().any(|c| c == "sub"),
                key("unsigned_context_claims"),
                "an actor allowed unsigned_context must be allowed to assert `sub`",
            );
            v.check(
                unsigned || a.unsigned_context_claims.is_empty(),
                key("unsigned_context_claims"),
                "set only for an actor whose subject_token_types include unsigned_context",
            );
        }
    }
}

/// `seed:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedConfig {
    /// `demo-seed.yml` (users and clients).
    pub file: PathBuf,
    /// Tenant name → id, generated per demo environment.
    pub tenants_file: PathBuf,
    /// Directory that client `secret_file`s and user `password_file`s are relative to.
    pub secrets_dir: PathBuf,
}

/// `api_keys:` (docs/identity.md, "API keys").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeysConfig {
    /// How long a deleted key stays listable and restorable before it is purged (default 30d).
    #[serde(default = "thirty_days", with = "humantime_serde")]
    pub retention: Duration,
    /// The longest rotation overlap a caller may ask for (default 7d).
    #[serde(default = "seven_days", with = "humantime_serde")]
    pub max_overlap: Duration,
    /// The confidential clients that may verify keys (`POST /api/v1/api-keys/verify`): the
    /// resource servers that accept them, such as the KMS's `kms-service`. None by default.
    #[serde(default)]
    pub verifiers: Vec<String>,
    /// The audience a token must carry to manage keys (default: the issuer). A fixed name
    /// where the issuer's port varies, as the demo's `https://identity.demo.local:8082`.
    #[serde(default)]
    pub audience: Option<String>,
    /// The audiences an access token exchanged for an API key may carry (the first is the
    /// default). None by default: the exchange of API keys is off.
    #[serde(default)]
    pub token_audiences: Vec<String>,
}

fn thirty_days() -> Duration {
    Duration::from_secs(30 * 86_400)
}

fn seven_days() -> Duration {
    Duration::from_secs(7 * 86_400)
}

impl Default for ApiKeysConfig {
    fn default() -> Self {
        Self {
            retention: thirty_days(),
            max_overlap: seven_days(),
            verifiers: Vec::new(),
            audience: None,
            token_audiences: Vec::new(),
        }
    }
}

impl Validate for IdentityConfig {
    fn validate(&self, v: &mut Validator) {
        self.server.validate(v);
        v.check(
            self.issuer.starts_with("https://")
                && !self.issuer.ends_with('/')
                && !self.issuer.contains(['?', '#']),
            "issuer",
            "must be an https URL without a trailing slash, query or fragment",
        );
        match self.storage.engine() {
            Ok(Engine::Postgres(pg)) => pg.validate("storage.postgres", v),
            Ok(Engine::Sqlite(_)) => {}
            Err(e) => v.check(false, "storage", e.to_string()),
        }
        v.check(!self.unseal.share_files.is_empty(), "unseal.share_files", "list the unseal share files");
        self.throttle.validate("throttle.", v);
        self.token_exchange.validate(v);
        let k = &self.api_keys;
        let day = Duration::from_secs(86_400);
        v.check(
            k.retention >= day && k.retention <= 365 * day,
            "api_keys.retention",
            "must be between 1d and 365d",
        );
        v.check(k.max_overlap <= 30 * day, "api_keys.max_overlap", "must be at most 30d");
        let t = &self.tokens;
        let secs = Duration::from_secs;
        for (key, ttl, min, max, range) in [
            ("tokens.access_ttl", t.access_ttl, secs(10), secs(3600), "10s and 1h"),
            ("tokens.code_ttl", t.code_ttl, secs(5), secs(600), "5s and 10m"),
            ("tokens.refresh_ttl", t.refresh_ttl, secs(60), secs(30 * 86_400), "1m and 30d"),
            ("tokens.refresh_family_ttl", t.refresh_family_ttl, secs(60), secs(90 * 86_400), "1m and 90d"),
            ("tokens.session_ttl", t.session_ttl, secs(60), secs(86_400), "1m and 24h"),
        ] {
            v.check(ttl >= min && ttl <= max, key, format!("must be between {range}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "server:
  listen: 127.0.0.1:8082
  admin_listen: 127.0.0.1:9082
  tls: { cert_file: c.pem, key_file: k.pem, ca_file: ca.pem }
issuer: https://identity.demo.local:8082
storage:
  sqlite: { path: identity.db }
unseal:
  share_files: [s1]
";

    fn load(extra: &str) -> Result<IdentityConfig, service_kit::ConfigError> {
        let text = format!("{BASE}{extra}");
        service_kit::config::load_str(std::path::Path::new("identity.yml"), &text, "", Vec::new())
    }

    fn load_storage(storage: &str) -> Result<IdentityConfig, service_kit::ConfigError> {
        let text = BASE.replace("storage:\n  sqlite: { path: identity.db }\n", storage);
        assert_ne!(text, BASE, "the base names SQLite storage");
        service_kit::config::load_str(std::path::Path::new("identity.yml"), &text, "", Vec::new())
    }

    fn error_text(err: &service_kit::ConfigError) -> String {
        let mut text = format!("{err}");
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        format!("{text} {err:?}")
    }

    #[test]
    fn storage_is_exactly_one_engine() {
        let sqlite = load("").unwrap();
        assert!(matches!(sqlite.storage.engine(), Ok(Engine::Sqlite(s)) if s.path.ends_with("identity.db")));
        let pg = load_storage(
            "storage:\n  postgres: { host: db, database: identity, user: demo, password_file: /run/secrets/pg }\n",
        )
        .unwrap();
        let Ok(Engine::Postgres(p)) = pg.storage.engine() else { panic!("postgres expected") };
        assert_eq!((p.target().as_str(), p.max_connections), ("demo@db:5432/identity", 8));

        let both = load_storage(
            "storage:\n  sqlite: { path: x.db }\n  postgres: { host: db, database: identity, user: demo, password_file: pw }\n",
        )
        .unwrap_err();
        let text = error_text(&both);
        assert!(text.contains("storage") && text.contains("both sqlite and postgres"), "{text}");
        let neither = load_storage("storage: {}\n").unwrap_err();
        let text = error_text(&neither);
        assert!(text.contains("names no engine"), "{text}");
        let bad = load_storage(
            "storage:\n  postgres: { host: db, database: Identity-DB, user: demo, password_file: pw }\n",
        )
        .unwrap_err();
        let text = error_text(&bad);
        assert!(text.contains("storage.postgres.database"), "{text}");
        let secret = load_storage(
            "storage:\n  postgres: { host: db, database: identity, user: demo, password: hunter2, password_file: pw }\n",
        )
        .unwrap_err();
        assert!(error_text(&secret).contains("password"), "a password in the file is refused");
    }

    #[test]
    fn token_exchange_policies_are_checked_at_load() {
        assert!(load("").unwrap().token_exchange.actors.is_empty(), "off unless configured");
        let ok = load(
            "token_exchange:\n  trust_domain: https://demo.local\n  txn_token_ttl: 30s\n  actors:\n    - client_id: gw\n      subject_token_types: [access_token, txn_token]\n      requested_token_types: [txn_token, access_token]\n      audiences: [https://kms]\n      max_lifetime: 5m\n",
        )
        .unwrap();
        let a = &ok.token_exchange.actors[0];
        assert_eq!(
            (a.subject_issuers.as_slice(), a.delegation, a.impersonation),
            (["self".to_owned()].as_slice(), true, false)
        );
        let actor = |body: &str| {
            load(&format!("token_exchange:\n  actors:\n    - client_id: gw\n      max_lifetime: 5m\n{body}"))
        };
        for (body, words) in [
            (
                "      subject_token_types: [saml]\n      requested_token_types: [txn_token]\n",
                "subject_token_types",
            ),
            (
                "      subject_token_types: [access_token]\n      requested_token_types: [refresh_token]\n",
                "requested_token_types",
            ),
            (
                "      subject_token_types: [access_token]\n      requested_token_types: [access_token]\n",
                "audiences",
            ),
            (
                "      subject_token_types: [access_token]\n      requested_token_types: [txn_token]\n      subject_issuers: [evil]\n",
                "subject_issuers",
            ),
            (
                "      subject_token_types: [access_token]\n      requested_token_types: [txn_token]\n      delegation: false\n",
                "delegation",
            ),
            (
                "      subject_token_types: [unsigned_context]\n      requested_token_types: [txn_token]\n",
                "unsigned_context_claims",
            ),
            (
                "      subject_token_types: [access_token]\n      requested_token_types: [txn_token]\n      unsigned_context_claims: [sub]\n",
                "unsigned_context_claims",
            ),
            (
                "      subject_token_types: [unsigned_context]\n      requested_token_types: [txn_token]\n      unsigned_context_claims: [sub, tenant_id]\n",
                "unsigned_context_claims",
            ),
            (
                "      subject_token_types: []\n      requested_token_types: [txn_token]\n",
                "subject_token_types",
            ),
        ] {
            let err = actor(body).unwrap_err();
            let text = error_text(&err);
            assert!(text.contains(&format!("token_exchange.actors[0].{words}")), "{body}: {text}");
        }
        let twice = load(
            "token_exchange:\n  actors:\n    - { client_id: gw, subject_token_types: [access_token], requested_token_types: [txn_token], max_lifetime: 1m }\n    - { client_id: gw, subject_token_types: [access_token], requested_token_types: [txn_token], max_lifetime: 1m }\n",
        )
        .unwrap_err();
        assert!(error_text(&twice).contains("token_exchange.actors[1].client_id"), "{}", error_text(&twice));
        let ttl = load("token_exchange:\n  txn_token_ttl: 1h\n").unwrap_err();
        assert!(error_text(&ttl).contains("token_exchange.txn_token_ttl"));
        assert!(load("token_exchange:\n  actors: []\n  lifetime: 5m\n").is_err(), "unknown keys are refused");
    }

    #[test]
    fn the_throttle_section_is_optional_and_checked() {
        assert_eq!(load("").unwrap().throttle, ThrottleConfig::default());
        let config = load("throttle:\n  max_failures: 3\n  backoff_max: 1h\n").unwrap();
        assert_eq!(
            (config.throttle.max_failures, config.throttle.backoff_max),
            (3, Duration::from_secs(3600))
        );
        let err = load("throttle:\n  failure_ceiling: 5\n").unwrap_err();
        let text = format!("{err}: {err:?}");
        assert!(text.contains("throttle.failure_ceiling"), "{text}");
        assert!(load("throttle:\n  lockout: 5m\n").is_err(), "unknown keys are refused");
    }
}
