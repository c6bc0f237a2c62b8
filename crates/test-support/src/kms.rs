//! The KMS in-process on loopback: the tests' configuration and its start.

use std::time::Duration;

use kms::config::{AuthConfig, KmsConfig, RealmConfig, StorageConfig, UnsealConfig};
use kms::service::{RunningKms, StartOptions};

use crate::{Running, TestDir};

/// The KMS's name in the demo PKI, and the host its client resolves.
pub const HOST: &str = "kms.demo.local";

/// The tests' authentication over `realms`: verified passwords cached for 60 s (100 entries);
/// 5 free failures per user and client address in 60 s, then a backoff from 1 s to 15 min; 100
/// failures per user from all addresses; no Bearer tokens. A test changes what it needs with
/// struct update syntax.
pub fn auth(realms: Vec<RealmConfig>) -> AuthConfig {
    AuthConfig {
        realms,
        cache_ttl: Duration::from_secs(60),
        cache_entries: 100,
        max_failures: 5,
        failure_window: Duration::from_secs(60),
        backoff_initial: Duration::from_secs(1),
        backoff_max: Duration::from_secs(900),
        failure_ceiling: 100,
        bearer: None,
    }
}

/// A KMS over `dir`: the demo PKI's `kms` leaf on 127.0.0.1 (any ports), `kms.db` in `dir`
/// (a test on PostgreSQL replaces `storage`), three of five fresh unseal shares, `auth`, no
/// seed.
pub fn config(dir: &TestDir, auth: AuthConfig) -> KmsConfig {
    KmsConfig {
        server: dir.loopback("kms"),
        storage: StorageConfig::sqlite(dir.path().join("kms.db")),
        unseal: UnsealConfig { share_files: dir.share_files() },
        auth,
        seed: None,
        log_format: Default::default(),
    }
}

/// Starts the KMS of `config` (seeding it first when `options.demo`), with a client for
/// [`HOST`].
pub async fn start(dir: &TestDir, config: &KmsConfig, options: StartOptions) -> Running<RunningKms> {
    let service = kms::service::start_with(config, options)
        .await
        .unwrap_or_else(|e| panic!("the KMS did not start: {e}"));
    let client = crate::build(dir.client(HOST, service.server.addr));
    Running { service, client }
}
