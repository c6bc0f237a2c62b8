//! Starting the KMS: configuration → shares → unseal (SQLite or PostgreSQL) → realms → HTTPS,
//! with `readyz` watching the database on PostgreSQL. Used by
//! `demo serve kms` and by tests and the embedded runtime, which start it in-process.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use service_kit::{Readiness, RunningServer, ServerError};

use crate::api::{self, AppState};
use crate::config::{KmsConfig, RealmConfig};
use crate::keys::{Kms, KmsError};
use crate::realm::{AuthSettings, Authenticator, FileRealm, Realm, RealmError};

/// Why the KMS could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration file is unusable.
    #[error("invalid configuration")]
    Config(#[from] service_kit::ConfigError),
    /// The Bearer realm's settings are unusable.
    #[error("cannot set up Bearer tokens")]
    Bearer(#[from] crate::bearer::BearerSetupError),
    /// An unseal share file is unusable.
    #[error(transparent)]
    ShareFile(#[from] service_kit::secret::ShareFileError),
    /// Unsealing or opening the store failed.
    #[error("cannot open the key store")]
    Kms(#[from] KmsError),
    /// A realm is unusable.
    #[error("cannot load a realm")]
    Realm(#[from] RealmError),
    /// The HTTPS server failed.
    #[error("the HTTPS server failed")]
    Server(#[from] ServerError),
    /// The crypto library could not make the cache key.
    #[error("the crypto library failed to initialise")]
    Crypto,
    /// `--demo` without a `seed:` section.
    #[error("--demo needs a `seed:` section (file, tenants_file) in the configuration")]
    NoSeedConfig,
    /// Seeding failed.
    #[error("cannot apply the demo seed")]
    Seed(#[from] crate::seed::SeedError),
}

/// How to start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StartOptions {
    /// Apply the demo seed (tenants, pools, versions) before serving.
    pub demo: bool,
}

/// A running KMS.
#[derive(Debug)]
pub struct RunningKms {
    /// The HTTPS server (bound addresses, shutdown).
    pub server: RunningServer,
    /// The key service, for seeding and inspection.
    pub kms: Kms,
    auth: Arc<Authenticator>,
    config: KmsConfig,
    /// The JWKS fetch and refresh task (aborted on shutdown).
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningKms {
    /// Graceful shutdown, then closes the store.
    pub async fn shutdown(self) -> Result<(), StartError> {
        for task in &self.background {
            task.abort();
        }
        let result = self.server.shutdown().await;
        self.kms.close().await;
        Ok(result?)
    }
}

/// Loads `path` with `KMS__…` environment overrides.
pub fn load_config(path: &Path) -> Result<KmsConfig, StartError> {
    Ok(service_kit::config::load(path, "KMS")?)
}

/// Starts the KMS described by `config`.
pub async fn start(config: &KmsConfig) -> Result<RunningKms, StartError> {
    start_with(config, StartOptions::default()).await
}

/// Starts the KMS described by `config`, seeding it first when `options.demo`.
pub async fn start_with(config: &KmsConfig, options: StartOptions) -> Result<RunningKms, StartError> {
    // The metrics recorder first: handles taken before it exists (the JWKS cache's) record nothing.
    let _ = service_kit::metrics::prometheus();
    // Load the seed before anything else, so a bad seed file fails before the store opens.
    let seed = match (options.demo, &config.seed) {
        (false, _) => None,
        (true, None) => return Err(StartError::NoSeedConfig),
        (true, Some(seed)) => Some(crate::seed::Seed::load(&seed.file, &seed.tenants_file)?),
    };
    let shares = service_kit::secret::read_share_files(&config.unseal.share_files)?;
    // Realm files are checked before the database is touched, so a bad realms.yml leaves no
    // initialised database behind.
    for realm in &config.auth.realms {
        if let RealmConfig::File { path } = realm {
            FileRealm::load(path)?;
        }
    }
    let kms = Kms::open(&config.storage, &shares).await?;
    if let Some(seed) = seed {
        let report = seed.apply(&kms).await?;
        tracing::info!(?report, "demo seed applied");
    }

    let realms = load_realms(config, &kms)?;
    let settings = AuthSettings {
        cache_ttl: config.auth.cache_ttl,
        cache_entries: config.auth.cache_entries,
        throttle: config.auth.throttle(),
    };
    let auth = Arc::new(Authenticator::new(realms, settings).map_err(|_| StartError::Crypto)?);
    let readiness = Readiness::new();
    readiness.dependency("key_store").ready();
    let mut background = Vec::new();
    if let (Some(pool), Some(postgres)) = (kms.postgres_pool(), &config.storage.postgres) {
        // `database` on readyz: a probe every second, so an outage shows within ~2 s and
        // recovery as soon as the server answers again (the pool reconnects by itself).
        let dependency = readiness.dependency("database");
        dependency.ready();
        background.push(service_kit::postgres::watch(
            pool.clone(),
            postgres.target(),
            dependency,
            Duration::from_secs(1),
        ));
    }
    let bearer = match &config.auth.bearer {
        None => None,
        Some(b) => Some(Arc::new(crate::bearer::BearerRealm::new(b)?)),
    };
    if let Some(trust) = bearer.as_ref().and_then(|realm| realm.trust()) {
        // Reloaded on change and on SIGHUP; a broken file leaves the store in force.
        background.push(trust.spawn_watch(Duration::from_secs(1)));
    }
    if let Some(realm) = &bearer {
        // Not ready until Identity's keys have been fetched once; then refreshed ahead of expiry.
        let jwks = readiness.dependency("identity_jwks");
        let provider = realm.provider().clone();
        background.push(tokio::spawn(async move {
            let mut wait = Duration::from_millis(200);
            loop {
                match provider.refresh().await {
                    Ok(_) => {
                        jwks.ready();
                        break;
                    }
                    Err(e) => {
                        jwks.failing(format!("Identity's JWKS is not reachable yet: {e}"));
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                }
            }
            let _refresher = provider.spawn_background_refresh();
            // Ready while the keys can be served (fresh, or stale during an outage); past the
            // stale window every Bearer request would fail, and readyz says so.
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                match provider.status().state {
                    jwks_cache::CacheState::Fresh | jwks_cache::CacheState::Stale => jwks.ready(),
                    other => jwks.failing(format!("Identity's keys are unusable ({other:?}); see the log")),
                }
            }
        }));
    }
    let router = api::router(AppState { kms: kms.clone(), auth: auth.clone(), bearer });
    let server = service_kit::server::start(&config.server, router, readiness).await?;
    Ok(RunningKms { server, kms, auth, config: config.clone(), background })
}

/// The configured realms, in order.
fn load_realms(config: &KmsConfig, kms: &Kms) -> Result<Vec<Realm>, RealmError> {
    config
        .auth
        .realms
        .iter()
        .map(|realm| match realm {
            RealmConfig::File { path } => FileRealm::load(path).map(Realm::File),
            RealmConfig::Database => Ok(Realm::Database(kms.store().clone())),
        })
        .collect()
}

/// Reloads the realms of a running KMS (what SIGHUP does).
#[derive(Debug, Clone)]
pub struct RealmReloader {
    auth: Arc<Authenticator>,
    config: KmsConfig,
    kms: Kms,
}

impl RealmReloader {
    /// Reloads the realm files and forgets every cached login. On error the old realms stay.
    pub fn reload(&self) -> Result<(), RealmError> {
        let realms = load_realms(&self.config, &self.kms)?;
        self.auth.reload(realms);
        tracing::info!("realms reloaded; cached logins forgotten");
        Ok(())
    }
}

impl RunningKms {
    /// A handle that reloads the realms.
    pub fn reloader(&self) -> RealmReloader {
        RealmReloader { auth: self.auth.clone(), config: self.config.clone(), kms: self.kms.clone() }
    }
}

/// `demo serve kms --config FILE [--demo]`: start, serve until SIGINT/SIGTERM, drain, close.
pub async fn run(config_path: &Path, options: StartOptions) -> Result<(), StartError> {
    let config = load_config(config_path)?;
    service_kit::telemetry::init_tracing(config.log_format);
    let running = start_with(&config, options).await?;
    // Listening for SIGTERM/SIGINT before saying ready: a signal right after is a drain.
    let shutdown = service_kit::server::shutdown_signal();
    tracing::info!(addr = %running.server.addr, admin = %running.server.admin_addr, "KMS ready");
    // SIGHUP reloads the realm files (and so invalidates cached logins).
    let reloader = running.reloader();
    let on_hup = tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            if let Err(e) = reloader.reload() {
                tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "realm reload failed; keeping the old realms");
            }
        }
    });
    shutdown.await;
    tracing::info!("shutdown signal received; draining");
    on_hup.abort();
    running.shutdown().await
}
