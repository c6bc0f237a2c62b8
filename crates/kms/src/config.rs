//! `kms.yml`: the service's configuration. Secrets (unseal shares) are only ever paths to files.
//!
//! ```yaml
//! server:
//!   listen: 0.0.0.0:8081
//!   admin_listen: 0.0.0.0:9081
//!   tls: { cert_file: …/fullchain.pem, key_file: …/key.pem, ca_file: …/ca-bundle.pem }
//! storage:
//!   sqlite: { path: /var/lib/kms/kms.db }
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
use service_kit::server::HttpConfig;
use service_kit::telemetry::LogFormat;

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

/// `storage:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// SQLite.
    pub sqlite: SqliteConfig,
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
    /// Failed logins per user per window before the user is refused for the window.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// The failure window.
    #[serde(default = "default_failure_window", with = "humantime_serde")]
    pub failure_window: Duration,
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
        v.check(!self.unseal.share_files.is_empty(), "unseal.share_files", "list the unseal share files");
        v.check(!self.auth.realms.is_empty(), "auth.realms", "configure at least one realm");
        v.check(self.auth.cache_ttl <= Duration::from_secs(3600), "auth.cache_ttl", "at most 1h");
        v.check(self.auth.cache_entries >= 1, "auth.cache_entries", "at least 1");
        v.check(self.auth.max_failures >= 1, "auth.max_failures", "at least 1");
    }
}
