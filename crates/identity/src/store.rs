//! Identity's storage behind one trait; SQLite today (sqlx, embedded migrations, WAL with
//! `synchronous=FULL`), PostgreSQL later with the same portable SQL.

use std::path::Path;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqlitePool;

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened, migrated or peeked at.
    #[error(transparent)]
    Sqlite(#[from] service_kit::sqlite::SqliteError),
    /// A query failed.
    #[error("database query failed")]
    Query(#[source] sqlx::Error),
    /// The row exists.
    #[error("{0} already exists")]
    Conflict(String),
}

fn q(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict("the record".into()),
        _ => StoreError::Query(e),
    }
}

/// A signing key's life stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published in the JWKS, not yet signing.
    Next,
    /// Signing.
    Current,
    /// Published until `retire_after`, no longer signing.
    Retired,
}

impl KeyState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Current => "current",
            Self::Retired => "retired",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        [Self::Next, Self::Current, Self::Retired].into_iter().find(|k| k.as_str() == s)
    }
}

/// A stored signing key; the private key is wrapped by the barrier.
#[derive(Clone)]
pub struct StoredKey {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// Stage.
    pub state: KeyState,
    /// PKCS#8, wrapped by the root key.
    pub wrapped_private: Vec<u8>,
    /// The public JWK (JSON).
    pub public_jwk: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds after which a retired key leaves the JWKS.
    pub retire_after: Option<i64>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// A registered client.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredClient {
    /// `client_id`.
    pub client_id: String,
    /// `confidential` or `public`.
    pub confidential: bool,
    /// PBKDF2 PHC hash of the secret (confidential clients).
    pub secret_hash: Option<String>,
    /// Scopes it may be granted.
    pub scopes: Vec<String>,
    /// Audiences (resource servers) it may ask for; the first is the default.
    pub audiences: Vec<String>,
    /// Grant types it may use.
    pub grant_types: Vec<String>,
    /// Registered redirect URIs (exact match).
    pub redirect_uris: Vec<String>,
    /// The tenant its tokens carry.
    pub tenant_id: String,
    /// Roles its tokens carry.
    pub roles: Vec<String>,
}

impl std::fmt::Debug for StoredClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredClient").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

/// Identity's persistent state.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Every signing key.
    async fn keys(&self) -> Result<Vec<StoredKey>, StoreError>;
    /// Adds a key.
    async fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError>;
    /// Moves a key to another stage.
    async fn set_key_state(
        &self,
        kid: &str,
        state: KeyState,
        retire_after: Option<i64>,
    ) -> Result<(), StoreError>;
    /// Deletes a key (a retired key past its time).
    async fn delete_key(&self, kid: &str) -> Result<(), StoreError>;
    /// A client.
    async fn client(&self, client_id: &str) -> Result<Option<StoredClient>, StoreError>;
    /// Registers a client; `Conflict` if the id is taken.
    async fn insert_client(&self, client: &StoredClient) -> Result<(), StoreError>;
    /// Records a revoked token until its expiry.
    async fn revoke(&self, jti: &str, expires_at: i64) -> Result<(), StoreError>;
    /// Whether a token id was revoked.
    async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError>;
    /// Closes connections after a WAL checkpoint.
    async fn close(&self);
}

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl SqliteStore {
    /// Opens the database at `path` sealed by `shares`, returning the store and the unsealed
    /// root key (`service_kit::sqlite::open_sealed`: wrong shares write nothing).
    pub async fn open_sealed(
        path: &Path,
        shares: &[barrier::Share],
    ) -> Result<(Self, barrier::RootKey), service_kit::sqlite::SealedOpenError> {
        let tables = ["signing_keys", "clients"];
        let (pool, root) = service_kit::sqlite::open_sealed(path, &MIGRATOR, shares, &tables).await?;
        Ok((Self { pool }, root))
    }
}

fn list(s: &str) -> Vec<String> {
    s.split(' ').filter(|x| !x.is_empty()).map(str::to_owned).collect()
}

#[async_trait]
impl Store for SqliteStore {
    async fn keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, state, private_key, public_jwk, created_at, retire_after FROM signing_keys ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(q)?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state").map_err(StoreError::Query)?;
                Ok(StoredKey {
                    kid: r.try_get("kid").map_err(StoreError::Query)?,
                    state: KeyState::parse(&state).unwrap_or(KeyState::Retired),
                    wrapped_private: r.try_get("private_key").map_err(StoreError::Query)?,
                    public_jwk: r.try_get("public_jwk").map_err(StoreError::Query)?,
                    created_at: r.try_get("created_at").map_err(StoreError::Query)?,
                    retire_after: r.try_get("retire_after").map_err(StoreError::Query)?,
                })
            })
            .collect()
    }

    async fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, state, private_key, public_jwk, created_at, retire_after) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.kid)
        .bind(key.state.as_str())
        .bind(&key.wrapped_private)
        .bind(&key.public_jwk)
        .bind(key.created_at)
        .bind(key.retire_after)
        .execute(&self.pool)
        .await
        .map_err(q)?;
        Ok(())
    }

    async fn set_key_state(
        &self,
        kid: &str,
        state: KeyState,
        retire_after: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE signing_keys SET state = $1, retire_after = $2 WHERE kid = $3")
            .bind(state.as_str())
            .bind(retire_after)
            .bind(kid)
            .execute(&self.pool)
            .await
            .map_err(q)?;
        Ok(())
    }

    async fn delete_key(&self, kid: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
            .bind(kid)
            .execute(&self.pool)
            .await
            .map_err(q)?;
        Ok(())
    }

    async fn client(&self, client_id: &str) -> Result<Option<StoredClient>, StoreError> {
        let row = sqlx::query(
            "SELECT client_id, client_type, secret_hash, scopes, audiences, grant_types, redirect_uris, tenant_id, roles \
             FROM clients WHERE client_id = $1",
        )
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(q)?;
        let Some(r) = row else { return Ok(None) };
        let get = |c: &str| -> Result<String, StoreError> { r.try_get(c).map_err(StoreError::Query) };
        Ok(Some(StoredClient {
            client_id: get("client_id")?,
            confidential: get("client_type")? == "confidential",
            secret_hash: r.try_get("secret_hash").map_err(StoreError::Query)?,
            scopes: list(&get("scopes")?),
            audiences: list(&get("audiences")?),
            grant_types: list(&get("grant_types")?),
            redirect_uris: list(&get("redirect_uris")?),
            tenant_id: get("tenant_id")?,
            roles: list(&get("roles")?),
        }))
    }

    async fn insert_client(&self, c: &StoredClient) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO clients (client_id, client_type, secret_hash, scopes, audiences, grant_types, redirect_uris, \
             tenant_id, roles, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&c.client_id)
        .bind(if c.confidential { "confidential" } else { "public" })
        .bind(&c.secret_hash)
        .bind(c.scopes.join(" "))
        .bind(c.audiences.join(" "))
        .bind(c.grant_types.join(" "))
        .bind(c.redirect_uris.join(" "))
        .bind(&c.tenant_id)
        .bind(c.roles.join(" "))
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(|e| match q(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("client {}", c.client_id)),
            other => other,
        })?;
        Ok(())
    }

    async fn revoke(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(q)?;
        sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
            .bind(now())
            .execute(&self.pool)
            .await
            .map_err(q)?;
        Ok(())
    }

    async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 AS hit FROM revoked_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await
            .map_err(q)?;
        Ok(row.is_some())
    }

    async fn close(&self) {
        service_kit::sqlite::close(&self.pool).await;
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
