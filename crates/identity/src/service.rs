//! Starting Identity: configuration → shares → storage (SQLite or PostgreSQL) and unseal →
//! signing keys → seed → HTTPS, with the `database` readiness watcher on PostgreSQL. Used by
//! `demo serve identity` and, in-process, by tests and the embedded runtime.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use service_kit::credcache::CredentialCache;
use service_kit::throttle::LoginThrottle;
use service_kit::{Readiness, RunningServer, ServerError};

use crate::api::{self, AppState};
use crate::config::{Engine, EngineChoiceError, IdentityConfig};
use crate::consent::ConsentText;
use crate::signing::{SigningError, SigningKeys};
use crate::store::{PgStore, SqliteStore, Store, StoreError};

/// Longest a sign-in or client authentication waits for a free PBKDF2 slot (then 503).
const VERIFY_WAIT: Duration = Duration::from_secs(10);

/// How often an instance on PostgreSQL reloads the signing keys: a rotation made at another
/// replica is published and used here within this bound.
pub const KEY_RELOAD_EVERY: Duration = Duration::from_secs(30);

/// How often the `database` readiness dependency probes PostgreSQL (`SELECT 1`): `readyz`
/// notices an outage, and the recovery, within about this long.
const DATABASE_PROBE_EVERY: Duration = Duration::from_secs(1);

/// Why Identity could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration file is unusable.
    #[error("invalid configuration")]
    Config(#[from] service_kit::ConfigError),
    /// An unseal share file is unusable.
    #[error(transparent)]
    ShareFile(#[from] service_kit::secret::ShareFileError),
    /// `storage:` names both engines or neither.
    #[error(transparent)]
    Storage(#[from] EngineChoiceError),
    /// Connecting, a newer schema, unsealing, or a database that holds keys but no seal.
    #[error("cannot open the sealed database")]
    Sealed(#[from] service_kit::db::SealedOpenError),
    /// Storage failed.
    #[error("cannot open the store")]
    Store(#[from] StoreError),
    /// The database name cannot name tenant roles, or the tenants' namespaces could not be
    /// prepared.
    #[error("cannot open the store")]
    Open(#[source] crate::store::OpenError),
    /// Signing keys are unusable.
    #[error("cannot load the signing keys")]
    Signing(#[from] SigningError),
    /// The database holds keys or clients but no seal.
    #[error(
        "the database holds keys or clients but no seal: it is damaged or was altered; restore it from a backup or reset the demo"
    )]
    SealMissing,
    /// `--demo` without `seed:`.
    #[error("--demo needs a `seed:` section (file, tenants_file, secrets_dir) in the configuration")]
    NoSeedConfig,
    /// Seeding failed.
    #[error("cannot apply the demo seed")]
    Seed(#[from] crate::seed::SeedError),
    /// The HTTPS server failed.
    #[error("the HTTPS server failed")]
    Server(#[from] ServerError),
    /// The crypto library could not initialise.
    #[error("the crypto library failed to initialise")]
    Crypto,
    /// The API keys' sealed MAC key could not be made or opened.
    #[error("cannot set up API keys")]
    ApiKeys(#[source] crate::apikeys::ApiKeyError),
    /// `token_exchange.trust_file` is unreadable or invalid.
    #[error("cannot load the trust store")]
    Trust(#[source] trust_store::TrustError),
    /// An actor's `subject_issuers` names an issuer the trust store does not list.
    #[error(
        "token_exchange: actor {actor} names subject issuer {issuer}, which {file} does not list; add it there or remove it from the actor"
    )]
    UnknownIssuer {
        /// The actor.
        actor: String,
        /// The issuer.
        issuer: String,
        /// The trust file.
        file: std::path::PathBuf,
    },
}

impl From<crate::store::OpenError> for StartError {
    fn from(e: crate::store::OpenError) -> Self {
        match e {
            crate::store::OpenError::Sealed(e) => Self::Sealed(e),
            other => Self::Open(other),
        }
    }
}

/// How to start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StartOptions {
    /// Apply the demo seed before serving.
    pub demo: bool,
}

/// A running Identity service.
#[derive(Debug)]
pub struct RunningIdentity {
    /// The HTTPS server.
    pub server: RunningServer,
    /// The signing keys (tests rotate them).
    pub keys: Arc<SigningKeys>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Background work that ends with the service (the keys' periodic reload).
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningIdentity {
    /// Graceful shutdown, then closes the store.
    pub async fn shutdown(self) -> Result<(), StartError> {
        let result = self.server.shutdown().await;
        for task in &self.tasks {
            task.abort();
        }
        self.store.close().await;
        Ok(result?)
    }
}

/// Loads `path` with `IDENTITY__…` overrides.
pub fn load_config(path: &Path) -> Result<IdentityConfig, StartError> {
    Ok(service_kit::config::load(path, "IDENTITY")?)
}

/// Starts Identity.
pub async fn start(config: &IdentityConfig, options: StartOptions) -> Result<RunningIdentity, StartError> {
    // The metrics recorder first: handles taken before it exists (the JWKS cache's) record nothing.
    let _ = service_kit::metrics::prometheus();
    if options.demo && config.seed.is_none() {
        return Err(StartError::NoSeedConfig);
    }
    let shares = service_kit::secret::read_share_files(&config.unseal.share_files)?;
    let readiness = Readiness::new();
    let engine = config.storage.engine()?;
    let (store, root): (Arc<dyn Store>, _) = match engine {
        Engine::Sqlite(sqlite) => {
            let (store, root) = SqliteStore::open_sealed(&sqlite.path, &shares).await?;
            (Arc::new(store), root)
        }
        Engine::Postgres(pg) => {
            let (store, root) = PgStore::open_sealed(pg, &shares).await?;
            // Ends by itself once the store closes its pool.
            service_kit::postgres::watch(
                store.pool().clone(),
                pg.target(),
                readiness.dependency("database"),
                DATABASE_PROBE_EVERY,
            );
            (Arc::new(store), root)
        }
    };
    let served = serve(config, options, store.clone(), root, readiness).await;
    let (keys, server) = match served {
        Ok(served) => served,
        Err(e) => {
            // Closing the pool also ends the `database` watcher.
            store.close().await;
            return Err(e);
        }
    };
    // Only a shared database has other writers; SQLite's one instance rotates in place.
    let tasks = match engine {
        Engine::Postgres(_) => vec![SigningKeys::spawn_reload(keys.clone(), KEY_RELOAD_EVERY)],
        Engine::Sqlite(_) => Vec::new(),
    };
    Ok(RunningIdentity { server, keys, store, tasks })
}

/// After the store is open: signing keys, the seed, the HTTPS server.
async fn serve(
    config: &IdentityConfig,
    options: StartOptions,
    store: Arc<dyn Store>,
    root: barrier::RootKey,
    readiness: Readiness,
) -> Result<(Arc<SigningKeys>, RunningServer), StartError> {
    let root = Arc::new(root);
    let api_keys = Arc::new(
        crate::apikeys::ApiKeys::load_or_init(store.as_ref(), &root, config.api_keys.clone())
            .await
            .map_err(StartError::ApiKeys)?,
    );
    let keys = Arc::new(SigningKeys::load_or_init(store.clone(), root).await?);
    let mut consent = ConsentText::default();
    if let (true, Some(seed)) = (options.demo, &config.seed) {
        let seeded =
            crate::seed::apply(store.as_ref(), &seed.file, &seed.tenants_file, &seed.secrets_dir).await?;
        let added = seeded.added;
        tracing::info!(users_added = added.users, clients_added = added.clients, "demo seed applied");
        consent = seeded.consent;
    }
    let clients =
        Arc::new(CredentialCache::new(Duration::from_secs(60), 10_000).map_err(|_| StartError::Crypto)?);
    let trust = match &config.token_exchange.trust_file {
        None => None,
        Some(path) => {
            let handle = Arc::new(trust_store::TrustHandle::open(path).map_err(StartError::Trust)?);
            // Every issuer an actor names must be in the store (`self` aside).
            let store = handle.current();
            for actor in &config.token_exchange.actors {
                if let Some(missing) = actor.subject_issuers.iter().find(|i| *i != "self" && !store.knows(i))
                {
                    return Err(StartError::UnknownIssuer {
                        actor: actor.client_id.clone(),
                        issuer: missing.clone(),
                        file: path.clone(),
                    });
                }
            }
            // Reloaded on change and on SIGHUP; the watcher ends once the handle is dropped
            // with the server's state.
            drop(handle.spawn_watch(Duration::from_secs(1)));
            Some(handle)
        }
    };
    let state = AppState {
        issuer: config.issuer.clone(),
        store: store.clone(),
        keys: keys.clone(),
        clients,
        throttle: Arc::new(LoginThrottle::new(config.throttle, VERIFY_WAIT)),
        logins: Arc::new(LoginThrottle::new(config.throttle, VERIFY_WAIT)),
        ttl: (&config.tokens).into(),
        consent: Arc::new(consent),
        exchange: Arc::new(crate::exchange::ExchangePolicy::new(&config.token_exchange, &config.issuer)),
        trust: trust.clone(),
        verified: Arc::new(
            CredentialCache::new(Duration::from_secs(60), 10_000).map_err(|_| StartError::Crypto)?,
        ),
        api_keys: api_keys.clone(),
    };
    spawn_purge(Arc::downgrade(&store), config.api_keys.clone());
    readiness.dependency("signing_keys").ready();
    let server = service_kit::server::start(&config.server, api::router(state), readiness).await?;
    Ok((keys, server))
}

/// Purges the API keys deleted longer ago than the retention: a minute after start (not during
/// it: a purge visits every tenant's namespace), then hourly, until the store is dropped (the
/// server stopped).
fn spawn_purge(store: std::sync::Weak<dyn Store>, config: crate::config::ApiKeysConfig) {
    tokio::spawn(async move {
        let hour = Duration::from_secs(3600);
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(60), hour);
        loop {
            every.tick().await;
            let Some(store) = store.upgrade() else { return };
            match crate::apikeys::purge(&store, &config).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "deleted API keys past their retention purged"),
                Err(e) => tracing::warn!(error = %e, "cannot purge deleted API keys"),
            }
        }
    });
}

/// `demo serve identity --config FILE [--demo]`.
pub async fn run(config_path: &Path, options: StartOptions) -> Result<(), StartError> {
    let config = load_config(config_path)?;
    service_kit::telemetry::init_tracing(config.log_format);
    let running = start(&config, options).await?;
    // Listening for SIGTERM/SIGINT before saying ready: a signal right after is a drain.
    let shutdown = service_kit::server::shutdown_signal();
    tracing::info!(addr = %running.server.addr, admin = %running.server.admin_addr, issuer = %config.issuer, "Identity ready");
    shutdown.await;
    tracing::info!("shutdown signal received; draining");
    running.shutdown().await
}
