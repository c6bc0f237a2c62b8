//! The key service: unsealing, pools and versions, and every operation on keys. All of it is
//! scoped by a [`TenantId`] the caller got from the authenticated principal; another tenant's
//! pool answers exactly like a missing one.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use barrier::{BarrierError, RootKey, Share};
use kms_proto::{Jwe, Jwk, Jwks};
use zeroize::Zeroizing;

use crate::config::{Engine, StorageConfig};
use crate::crypto::{Algorithm, CryptoError, KeyMaterial};
use crate::jose::{self, JoseError, Kid, ParsedJwe, ParsedJws};
use crate::model::{Pool, PoolName, StoredUser, StoredVersion, Tenant, TenantId};
use crate::store::{OpenError, PostgresStore, SqliteStore, Store, StoreError, timestamp};

/// What can go wrong with a key operation. The HTTP layer maps each variant to a status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    /// No such tenant, pool or version — or one that belongs to another tenant.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// Already exists.
    #[error("{0} already exists")]
    Conflict(String),
    /// The version (or every version of the pool) is disabled.
    #[error("key {0} is disabled")]
    Disabled(String),
    /// The pool's algorithm does not do the operation.
    #[error("pool {pool} holds {algorithm} keys, which cannot {operation}")]
    WrongAlgorithm {
        /// The pool.
        pool: String,
        /// Its algorithm.
        algorithm: &'static str,
        /// What was asked.
        operation: &'static str,
    },
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// A JOSE object is malformed or does not decrypt/verify.
    #[error(transparent)]
    Jose(#[from] JoseError),
    /// Unsealing failed: the service must not start.
    #[error("cannot unseal the key store")]
    Unseal(#[source] BarrierError),
    /// Storage failed.
    #[error("the key store failed")]
    Store(#[source] StoreError),
    /// The database cannot be reached now: answered 503; retry shortly.
    #[error("the key store's database is unavailable; retry shortly")]
    Unavailable(#[source] StoreError),
    /// The database could not be opened: unreachable, refused the password, written by a newer
    /// release, or its migrations failed (the source says which and what to do).
    #[error("cannot open the key store's database")]
    Open(#[source] service_kit::db::SealedOpenError),
    /// `storage:` names no engine, or both.
    #[error("configure exactly one storage engine: storage.sqlite or storage.postgres")]
    NoEngine,
    /// The database holds tenants or keys but no seal: never re-seal it with whatever shares
    /// were given.
    #[error(
        "the database holds keys but no seal: it is damaged or was altered; restore it from a backup or reset the demo"
    )]
    SealMissing,
    /// A stored key could not be unwrapped or parsed: corruption, or a bug.
    #[error("a stored key is unusable")]
    Corrupt(String),
}

impl From<StoreError> for KmsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Self::Conflict(what),
            StoreError::NoTenant => Self::NotFound("tenant"),
            e @ StoreError::Unavailable(_) => Self::Unavailable(e),
            other => Self::Store(other),
        }
    }
}

/// Pools and versions as the API shows them: the wire types of `kms-proto`.
pub use kms_proto::{PoolInfo, VersionInfo};

/// The unsealed KMS.
#[derive(Debug, Clone)]
pub struct Kms {
    store: Arc<dyn Store>,
    root: Arc<RootKey>,
    cache: Arc<KeyCache>,
    /// PostgreSQL's pool, for the readiness watcher; `None` on SQLite.
    database: Option<sqlx::PgPool>,
}

impl From<OpenError> for KmsError {
    fn from(e: OpenError) -> Self {
        use service_kit::db::SealedOpenError;
        match e {
            OpenError::Sealed(SealedOpenError::Unseal(b)) => KmsError::Unseal(b),
            OpenError::Sealed(SealedOpenError::SealMissing) => KmsError::SealMissing,
            OpenError::Sealed(other) => KmsError::Open(other),
            OpenError::DatabaseName(e) => KmsError::Invalid(e.to_string()),
            OpenError::Store(e) => KmsError::Store(e),
        }
    }
}

/// How long pool metadata (versions, enabled flags) is trusted before it is read again. Writes
/// through this process invalidate at once; the TTL bounds how long a change made by another
/// instance sharing the database takes to be seen.
const META_TTL: Duration = Duration::from_secs(5);
/// Most unwrapped key versions kept in memory.
const MAX_CACHED_KEYS: usize = 10_000;

/// In-memory caches in front of the store, so a key operation costs no database round trip and
/// no unwrap when the key is hot. Unwrapped material lives only here and in the request using
/// it, and is zeroised when dropped; a version's material never changes, so it needs no TTL.
#[derive(Default)]
struct KeyCache {
    /// Bumped by every invalidation: a read that started before one must not fill the cache
    /// with what it read (it may predate a disable).
    generation: std::sync::atomic::AtomicU64,
    meta: Mutex<HashMap<(TenantId, PoolName), Arc<PoolMeta>>>,
    keys: Mutex<HashMap<(TenantId, PoolName, u32), Arc<KeyMaterial>>>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyCache")
    }
}

struct PoolMeta {
    pool: Pool,
    /// (version, enabled), oldest first.
    versions: Vec<(u32, bool)>,
    fetched: Instant,
}

impl PoolMeta {
    fn current(&self) -> Option<u32> {
        self.versions.iter().rev().find(|(_, enabled)| *enabled).map(|(v, _)| *v)
    }
}

impl Kms {
    /// Opens the KMS on the SQLite database at `db`, unsealed by `shares`. With too few,
    /// duplicated, damaged or foreign shares — or a database holding keys but no seal — it
    /// refuses and writes nothing (`service_kit::sqlite::open_sealed`).
    pub async fn open_sqlite(db: &Path, shares: &[Share]) -> Result<Self, KmsError> {
        let (store, root) = SqliteStore::open_sealed(db, shares).await?;
        Ok(Self { store: Arc::new(store), root: Arc::new(root), cache: Arc::default(), database: None })
    }

    /// Opens the KMS on PostgreSQL, unsealed by `shares`. A wrong password, an unreachable
    /// server, a schema written by a newer release, wrong shares: each refused by name, and
    /// nothing written (`service_kit::postgres::open_sealed`).
    pub async fn open_postgres(
        config: &service_kit::postgres::PostgresConfig,
        shares: &[Share],
    ) -> Result<Self, KmsError> {
        let (store, root) = PostgresStore::open_sealed(config, shares).await?;
        let database = Some(store.pool().clone());
        Ok(Self { store: Arc::new(store), root: Arc::new(root), cache: Arc::default(), database })
    }

    /// Opens the KMS on the engine `storage` names.
    pub async fn open(storage: &StorageConfig, shares: &[Share]) -> Result<Self, KmsError> {
        match storage.engine() {
            Some(Engine::Sqlite(sqlite)) => Self::open_sqlite(&sqlite.path, shares).await,
            Some(Engine::Postgres(postgres)) => Self::open_postgres(postgres, shares).await,
            None => Err(KmsError::NoEngine),
        }
    }

    /// The PostgreSQL pool, when the store is PostgreSQL (for `readyz`'s `database` check).
    pub fn postgres_pool(&self) -> Option<&sqlx::PgPool> {
        self.database.as_ref()
    }

    /// The store (for seeding and tests).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Closes the store; call on shutdown.
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// Creates the tenant `name` with `id` unless a tenant of that name exists; returns it.
    pub async fn ensure_tenant(&self, name: &str, id: TenantId) -> Result<Tenant, KmsError> {
        if let Some(existing) = self.store.tenant_by_name(name).await? {
            return Ok(existing);
        }
        let tenant = Tenant { id, name: name.to_owned(), created_at: timestamp() };
        match self.store.create_tenant(&tenant).await {
            Ok(()) => Ok(tenant),
            // Another replica created it at the same moment.
            Err(StoreError::Conflict(what)) => {
                self.store.tenant_by_name(name).await?.ok_or(KmsError::Conflict(what))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Drops a tenant with every key it has (its file or schema and role), its database-realm
    /// users and its catalog row. Keys of that tenant cached here are forgotten at once. Other
    /// replicas stop serving them within 5 s, when their cached pool metadata expires and is
    /// found gone (their unwrapped copies stay in memory, unused, until evicted or restarted).
    pub async fn drop_tenant(&self, tenant: TenantId) -> Result<bool, KmsError> {
        let dropped = self.store.drop_tenant(tenant).await?;
        self.cache.meta.lock().unwrap_or_else(|e| e.into_inner()).retain(|(t, _), _| *t != tenant);
        self.cache.keys.lock().unwrap_or_else(|e| e.into_inner()).retain(|(t, _, _), _| *t != tenant);
        self.cache.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(dropped)
    }

    /// Creates a user of the database realm in `tenant`: the password stored only as a
    /// PBKDF2-SHA256 hash (600,000 rounds, computed off the async threads). `NotFound` without
    /// the tenant, `Conflict` when the name is taken in the database realm.
    pub async fn create_user(
        &self,
        tenant: TenantId,
        username: &str,
        password: secrecy::SecretString,
        roles: &[crate::authz::Role],
    ) -> Result<StoredUser, KmsError> {
        if self.store.tenant(tenant).await?.is_none() {
            return Err(KmsError::NotFound("tenant"));
        }
        let hash = tokio::task::spawn_blocking(move || service_kit::password::hash_password(&password))
            .await
            .map_err(|e| KmsError::Corrupt(e.to_string()))?
            .map_err(|e| KmsError::Corrupt(e.to_string()))?;
        let roles = roles
            .iter()
            .map(|r| {
                serde_json::to_value(r).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
            })
            .collect();
        let user = StoredUser {
            username: username.to_owned(),
            password_hash: hash.as_str().to_owned(),
            tenant,
            roles,
        };
        self.store.create_user(&user).await?;
        Ok(user)
    }

    /// Creates a pool with a first key version.
    pub async fn create_pool(
        &self,
        tenant: TenantId,
        name: &PoolName,
        algorithm: Algorithm,
    ) -> Result<PoolInfo, KmsError> {
        if self.store.tenant(tenant).await?.is_none() {
            return Err(KmsError::NotFound("tenant"));
        }
        let pool = Pool { tenant, name: name.clone(), algorithm, created_at: timestamp() };
        let first = self.seal_version(&pool, &generate(pool.algorithm)?, 1).map_err(KmsError::Corrupt)?;
        self.store.create_pool(&pool, &first).await?;
        self.invalidate(tenant, name);
        self.pool_info(tenant, name).await
    }

    /// A pool and its versions.
    pub async fn pool_info(&self, tenant: TenantId, name: &PoolName) -> Result<PoolInfo, KmsError> {
        let pool = self.pool(tenant, name).await?;
        let versions = self.store.versions(tenant, name).await?;
        Ok(info(&pool, &versions))
    }

    /// Every pool of the tenant.
    pub async fn list_pools(&self, tenant: TenantId) -> Result<Vec<PoolInfo>, KmsError> {
        let mut out = Vec::new();
        for pool in self.store.pools(tenant).await? {
            let versions = self.store.versions(tenant, &pool.name).await?;
            out.push(info(&pool, &versions));
        }
        Ok(out)
    }

    /// Adds a new version, which becomes current; old versions still decrypt and verify.
    ///
    /// The store picks the number under a lock on the pool, so concurrent rotations — on this
    /// instance or on others sharing the database — each add exactly one version, numbered
    /// without gaps. The answer shows the pool as this rotation left it: its new version is
    /// the current one.
    pub async fn rotate(&self, tenant: TenantId, name: &PoolName) -> Result<PoolInfo, KmsError> {
        let pool = self.pool(tenant, name).await?;
        // Made before the store's transaction (an RSA key takes a while); only the wrapping,
        // which binds the number, happens under the lock.
        let material = generate(pool.algorithm)?;
        let make = |version: u32| self.seal_version(&pool, &material, version).map_err(StoreError::Corrupt);
        let versions = self.store.add_next_version(tenant, name, &make).await?;
        self.invalidate(tenant, name);
        let versions = versions.ok_or(KmsError::NotFound("pool"))?;
        Ok(info(&pool, &versions))
    }

    /// Enables or disables one version.
    pub async fn set_enabled(
        &self,
        tenant: TenantId,
        name: &PoolName,
        version: u32,
        enabled: bool,
    ) -> Result<PoolInfo, KmsError> {
        self.pool(tenant, name).await?;
        let changed = self.store.set_enabled(tenant, name, version, enabled).await?;
        self.invalidate(tenant, name);
        if !changed {
            return Err(KmsError::NotFound("key version"));
        }
        self.pool_info(tenant, name).await
    }

    /// Encrypts with the pool's current version: a compact JWE, or a flattened JSON JWE when
    /// `aad` is given.
    pub async fn encrypt(
        &self,
        tenant: TenantId,
        name: &PoolName,
        plaintext: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<(Kid, Jwe), KmsError> {
        let (kid, key) = self.current(tenant, name, Algorithm::A256Gcm, "encrypt").await?;
        let jwe = match aad {
            None => Jwe::Compact(jose::encrypt_compact(&key, &kid, plaintext)?),
            Some(aad) => Jwe::Flattened(jose::encrypt_json(&key, &kid, plaintext, aad)?),
        };
        Ok((kid, jwe))
    }

    /// Decrypts a JWE made by any version of a pool of this tenant.
    pub async fn decrypt(&self, tenant: TenantId, jwe: &str) -> Result<(Kid, Zeroizing<Vec<u8>>), KmsError> {
        let parsed = ParsedJwe::parse(jwe)?;
        let kid = parsed.kid().clone();
        let key = self.version_key(tenant, &kid, Algorithm::A256Gcm, "decrypt").await?;
        Ok((kid, parsed.decrypt(&key)?))
    }

    /// Signs with the pool's current version: a compact JWS.
    pub async fn sign(
        &self,
        tenant: TenantId,
        name: &PoolName,
        payload: &[u8],
    ) -> Result<(Kid, String), KmsError> {
        let algorithm = self.meta(tenant, name).await?.pool.algorithm;
        if !algorithm.signs() {
            return Err(wrong(&self.meta(tenant, name).await?.pool, "sign"));
        }
        let (kid, key) = self.current(tenant, name, algorithm, "sign").await?;
        Ok((kid.clone(), jose::sign_compact(&key, &kid, payload)?))
    }

    /// Verifies a JWS against the version its `kid` names. `Ok(false)` for a signature that does
    /// not verify; errors for malformed input or an unknown key.
    pub async fn verify(&self, tenant: TenantId, jws: &str) -> Result<(Kid, bool), KmsError> {
        let parsed = ParsedJws::parse(jws)?;
        let kid = parsed.kid().clone();
        let meta = self.meta(tenant, &pool_name(&kid)?).await?;
        if !meta.pool.algorithm.signs() {
            return Err(wrong(&meta.pool, "verify"));
        }
        let key = self.version_key(tenant, &kid, meta.pool.algorithm, "verify").await?;
        let public = key.public_key().map_err(|e| KmsError::Corrupt(e.to_string()))?;
        match parsed.verify(&public) {
            Ok(()) => Ok((kid, true)),
            Err(JoseError::Crypto(CryptoError::BadSignature) | JoseError::Algorithm { .. }) => {
                Ok((kid, false))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Wraps caller key material (RFC 3394) with the pool's current version.
    pub async fn wrap(
        &self,
        tenant: TenantId,
        name: &PoolName,
        material: &[u8],
    ) -> Result<(Kid, Vec<u8>), KmsError> {
        let (kid, key) = self.current(tenant, name, Algorithm::A256Kw, "wrap").await?;
        let wrapped = key.wrap(material).map_err(|e| KmsError::Invalid(e.to_string()))?;
        Ok((kid, wrapped))
    }

    /// Unwraps with the version `kid` names.
    pub async fn unwrap(
        &self,
        tenant: TenantId,
        kid: &Kid,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let key = self.version_key(tenant, kid, Algorithm::A256Kw, "unwrap").await?;
        key.unwrap(wrapped).map_err(|e| KmsError::Jose(JoseError::Crypto(e)))
    }

    /// A fresh 256-bit data key: the plaintext (for immediate use) and the same key encrypted
    /// under the pool as a compact JWE (to store beside the data).
    pub async fn data_key(
        &self,
        tenant: TenantId,
        name: &PoolName,
    ) -> Result<(Zeroizing<Vec<u8>>, Kid, String), KmsError> {
        let (kid, key) = self.current(tenant, name, Algorithm::A256Gcm, "make data keys").await?;
        let mut plaintext = Zeroizing::new(vec![0u8; 32]);
        aws_lc_rs::rand::fill(&mut plaintext)
            .map_err(|_| KmsError::Corrupt("random generator failed".into()))?;
        let jwe = jose::encrypt_compact(&key, &kid, &plaintext)?;
        Ok((plaintext, kid, jwe))
    }

    /// The tenant's JWKS: the public key of every enabled version of every signing pool.
    pub async fn jwks(&self, tenant: TenantId) -> Result<Jwks, KmsError> {
        let mut keys = Vec::new();
        for pool in self.store.pools(tenant).await?.into_iter().filter(|p| p.algorithm.signs()) {
            for version in self.store.versions(tenant, &pool.name).await?.into_iter().filter(|v| v.enabled) {
                let kid = Kid::new(pool.name.as_str(), version.version);
                let key = self.key(&pool, version.version).await?;
                let public = key.public_key().map_err(|e| KmsError::Corrupt(e.to_string()))?;
                keys.push(jose::public_jwk(&public, &kid));
            }
        }
        Ok(Jwks { keys })
    }

    /// The public JWK of one version of a signing pool.
    pub async fn public_jwk(&self, tenant: TenantId, kid: &Kid) -> Result<Jwk, KmsError> {
        let meta = self.meta(tenant, &pool_name(kid)?).await?;
        if !meta.pool.algorithm.signs() {
            return Err(wrong(&meta.pool, "have a public key"));
        }
        let key = self.version_key(tenant, kid, meta.pool.algorithm, "have a public key").await?;
        Ok(jose::public_jwk(&key.public_key().map_err(|e| KmsError::Corrupt(e.to_string()))?, kid))
    }

    async fn pool(&self, tenant: TenantId, name: &PoolName) -> Result<Pool, KmsError> {
        self.store.pool(tenant, name).await?.ok_or(KmsError::NotFound("pool"))
    }

    /// The newest enabled version of a pool whose algorithm must be `algorithm`.
    async fn current(
        &self,
        tenant: TenantId,
        name: &PoolName,
        algorithm: Algorithm,
        operation: &'static str,
    ) -> Result<(Kid, Arc<KeyMaterial>), KmsError> {
        let meta = self.meta(tenant, name).await?;
        if meta.pool.algorithm != algorithm {
            return Err(wrong(&meta.pool, operation));
        }
        let version = meta.current().ok_or_else(|| KmsError::Disabled(format!("pool {name}")))?;
        let key = self.key(&meta.pool, version).await?;
        Ok((Kid::new(name.as_str(), version), key))
    }

    /// The version a kid names, which must be enabled and of `algorithm`.
    async fn version_key(
        &self,
        tenant: TenantId,
        kid: &Kid,
        algorithm: Algorithm,
        operation: &'static str,
    ) -> Result<Arc<KeyMaterial>, KmsError> {
        let name = pool_name(kid)?;
        let mut meta = self.meta(tenant, &name).await?;
        if meta.pool.algorithm != algorithm {
            return Err(wrong(&meta.pool, operation));
        }
        if meta.versions.last().is_some_and(|(newest, _)| kid.version > *newest) {
            // Newer than what this process has seen: made by another replica since the
            // metadata was cached. Read it again rather than wait out the TTL.
            self.invalidate(tenant, &name);
            meta = self.meta(tenant, &name).await?;
        }
        match meta.versions.iter().find(|(v, _)| *v == kid.version) {
            None => Err(KmsError::NotFound("key version")),
            Some((_, false)) => Err(KmsError::Disabled(kid.to_string())),
            Some((v, true)) => self.key(&meta.pool, *v).await,
        }
    }

    /// Pool metadata, from the cache while fresh.
    async fn meta(&self, tenant: TenantId, name: &PoolName) -> Result<Arc<PoolMeta>, KmsError> {
        let cache_key = (tenant, name.clone());
        if let Some(meta) = self.cache.meta.lock().unwrap_or_else(|e| e.into_inner()).get(&cache_key)
            && meta.fetched.elapsed() < META_TTL
        {
            return Ok(meta.clone());
        }
        let pool = self.pool(tenant, name).await?;
        let versions =
            self.store.versions(tenant, name).await?.iter().map(|v| (v.version, v.enabled)).collect();
        let meta = Arc::new(PoolMeta { pool, versions, fetched: Instant::now() });
        self.cache.meta.lock().unwrap_or_else(|e| e.into_inner()).insert(cache_key, meta.clone());
        Ok(meta)
    }

    /// One version's unwrapped material, from the cache when present.
    async fn key(&self, pool: &Pool, version: u32) -> Result<Arc<KeyMaterial>, KmsError> {
        let cache_key = (pool.tenant, pool.name.clone(), version);
        if let Some(key) = self.cache.keys.lock().unwrap_or_else(|e| e.into_inner()).get(&cache_key) {
            return Ok(key.clone());
        }
        let stored = self
            .store
            .version(pool.tenant, &pool.name, version)
            .await?
            .ok_or(KmsError::NotFound("key version"))?;
        let key = Arc::new(self.material(pool.tenant, pool, &stored)?);
        let mut keys = self.cache.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= MAX_CACHED_KEYS {
            // Rare: start over rather than track recency; a miss costs one query and one unwrap.
            keys.clear();
        }
        keys.insert(cache_key, key.clone());
        Ok(key)
    }

    fn invalidate(&self, tenant: TenantId, name: &PoolName) {
        let mut cache = self.cache.meta.lock().unwrap_or_else(|e| e.into_inner());
        self.cache.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        cache.remove(&(tenant, name.clone()));
    }

    /// Version `version` of `pool` holding `material`, wrapped by the root key and bound to
    /// tenant, pool, version and algorithm.
    fn seal_version(
        &self,
        pool: &Pool,
        material: &KeyMaterial,
        version: u32,
    ) -> Result<StoredVersion, String> {
        let wrapped =
            self.root.wrap(&context(pool, version), material.secret_bytes()).map_err(|e| e.to_string())?;
        Ok(StoredVersion { version, enabled: true, wrapped, created_at: timestamp() })
    }

    fn material(
        &self,
        tenant: TenantId,
        pool: &Pool,
        version: &StoredVersion,
    ) -> Result<KeyMaterial, KmsError> {
        debug_assert_eq!(pool.tenant, tenant);
        let bytes = self.root.unwrap(&context(pool, version.version), &version.wrapped).map_err(|e| {
            tracing::error!(tenant = %tenant, pool = %pool.name, version = version.version, error = %e, "stored key does not unwrap");
            KmsError::Corrupt(format!("{}/{}", pool.name, version.version))
        })?;
        KeyMaterial::from_bytes(pool.algorithm, bytes).map_err(|e| KmsError::Corrupt(e.to_string()))
    }
}

/// What a wrapped key is bound to: moving the blob to another tenant, pool, version or
/// algorithm makes it fail to unwrap.
fn context(pool: &Pool, version: u32) -> String {
    format!("kms:key:v1:{}:{}:{}:{}", pool.tenant, pool.name, version, pool.algorithm.jose_name())
}

fn generate(algorithm: Algorithm) -> Result<KeyMaterial, KmsError> {
    KeyMaterial::generate(algorithm).map_err(|e| KmsError::Corrupt(e.to_string()))
}

fn pool_name(kid: &Kid) -> Result<PoolName, KmsError> {
    PoolName::new(&kid.pool).map_err(KmsError::Invalid)
}

fn wrong(pool: &Pool, operation: &'static str) -> KmsError {
    KmsError::WrongAlgorithm { pool: pool.name.to_string(), algorithm: pool.algorithm.jose_name(), operation }
}

fn info(pool: &Pool, versions: &[StoredVersion]) -> PoolInfo {
    PoolInfo {
        name: pool.name.to_string(),
        algorithm: pool.algorithm,
        current_version: versions.iter().rev().find(|v| v.enabled).map(|v| v.version),
        versions: versions
            .iter()
            .map(|v| VersionInfo {
                version: v.version,
                kid: Kid::new(pool.name.as_str(), v.version).to_string(),
                enabled: v.enabled,
                created_at: v.created_at.clone(),
            })
            .collect(),
        created_at: pool.created_at.clone(),
    }
}
