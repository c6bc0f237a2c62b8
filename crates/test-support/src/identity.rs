//! Identity in-process on loopback: the tests' configuration and its start.

use identity::config::{IdentityConfig, SeedConfig, Storage, Unseal};
use identity::service::{RunningIdentity, StartError, StartOptions};

use crate::{Running, TestDir};

/// Identity's name in the demo PKI, and the host its client resolves.
pub const HOST: &str = "identity.demo.local";

/// The demo's issuer URL (what tokens carry as `iss`, whatever port the test listens on).
pub const ISSUER: &str = "https://identity.demo.local:8082";

/// Identity over `dir`: the demo PKI's `identity` leaf on 127.0.0.1 (any ports), [`ISSUER`],
/// `identity.db` in `dir`, three of five fresh unseal shares, default token lifetimes and
/// throttle, and `seed` (applied when started with `demo`).
pub fn config(dir: &TestDir, seed: Option<SeedConfig>) -> IdentityConfig {
    IdentityConfig {
        server: dir.loopback("identity"),
        issuer: ISSUER.to_owned(),
        storage: Storage::sqlite(dir.path().join("identity.db")),
        unseal: Unseal { share_files: dir.share_files() },
        tokens: Default::default(),
        throttle: Default::default(),
        token_exchange: Default::default(),
        api_keys: Default::default(),
        seed,
        log_format: Default::default(),
    }
}

/// Starts Identity with `config`, with a client for [`HOST`]; a start that fails is the
/// caller's to judge (tests of bad seeds expect it).
pub async fn start(
    dir: &TestDir,
    config: &IdentityConfig,
    options: StartOptions,
) -> Result<Running<RunningIdentity>, StartError> {
    let service = identity::service::start(config, options).await?;
    let client = crate::build(dir.client(HOST, service.server.addr));
    Ok(Running { service, client })
}
