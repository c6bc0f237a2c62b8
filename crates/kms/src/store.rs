//! Storage behind one trait. SQLite today (sqlx, migrations embedded and versioned); the
//! PostgreSQL store implements the same trait with the same portable SQL.
//!
//! Every query that touches keys is scoped by tenant: there is no method that reads a pool or a
//! version without a `TenantId`.

use std::path::Path;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqlitePool;

use crate::crypto::Algorithm;
use crate::model::{Pool, PoolName, StoredUser, StoredVersion, Tenant, TenantId};

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The row exists already.
    #[error("{0} already exists")]
    Conflict(String),
    /// The database could not be opened, migrated or peeked at.
    #[error(transparent)]
    Sqlite(#[from] service_kit::sqlite::SqliteError),
    /// A query failed.
    #[error("database query failed")]
    Query(#[source] sqlx::Error),
    /// A stored value does not parse: corruption or a bug.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

fn query_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict("the record".to_owned())
        }
        _ => StoreError::Query(e),
    }
}

/// The KMS's persistent state.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Creates a tenant.
    async fn create_tenant(&self, tenant: &Tenant) -> Result<(), StoreError>;
    /// A tenant by id.
    async fn tenant(&self, id: TenantId) -> Result<Option<Tenant>, StoreError>;
    /// A tenant by name.
    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, StoreError>;

    /// Creates a pool with its first version, atomically.
    async fn create_pool(&self, pool: &Pool, first: &StoredVersion) -> Result<(), StoreError>;
    /// A pool of `tenant`.
    async fn pool(&self, tenant: TenantId, name: &PoolName) -> Result<Option<Pool>, StoreError>;
    /// Every pool of `tenant`.
    async fn pools(&self, tenant: TenantId) -> Result<Vec<Pool>, StoreError>;
    /// Adds a version; `Conflict` if that number exists (a concurrent rotation).
    async fn add_version(
        &self,
        tenant: TenantId,
        pool: &PoolName,
        version: &StoredVersion,
    ) -> Result<(), StoreError>;
    /// One version of a pool of `tenant`.
    async fn version(
        &self,
        tenant: TenantId,
        pool: &PoolName,
        version: u32,
    ) -> Result<Option<StoredVersion>, StoreError>;
    /// Every version of a pool of `tenant`, oldest first.
    async fn versions(&self, tenant: TenantId, pool: &PoolName) -> Result<Vec<StoredVersion>, StoreError>;
    /// Enables or disables a version; false if there is no such version.
    async fn set_enabled(
        &self,
        tenant: TenantId,
        pool: &PoolName,
        version: u32,
        enabled: bool,
    ) -> Result<bool, StoreError>;
    /// A user of the database realm.
    async fn user(&self, username: &str) -> Result<Option<StoredUser>, StoreError>;
    /// Creates a user of the database realm; `Conflict` if the name is taken.
    async fn create_user(&self, user: &StoredUser) -> Result<(), StoreError>;
    /// Closes connections, flushing what the backend buffers (SQLite checkpoints its WAL).
    async fn close(&self);
}

/// The SQLite store: WAL journal with `synchronous=FULL`, so a write is durable when the request
/// that made it returns; foreign keys on.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl SqliteStore {
    /// Opens the database at `path` sealed by `shares`, returning the store and the unsealed
    /// root key (see `service_kit::sqlite::open_sealed` for the order that keeps wrong shares
    /// from writing anything).
    pub async fn open_sealed(
        path: &Path,
        shares: &[barrier::Share],
    ) -> Result<(Self, barrier::RootKey), service_kit::sqlite::SealedOpenError> {
        let tables = ["tenants", "key_versions", "users"];
        let (pool, root) = service_kit::sqlite::open_sealed(path, &MIGRATOR, shares, &tables).await?;
        Ok((Self { pool }, root))
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn tenant_from(row: &sqlx::sqlite::SqliteRow) -> Result<Tenant, StoreError> {
    let id: String = row.try_get("id").map_err(StoreError::Query)?;
    Ok(Tenant {
        id: TenantId(
            uuid::Uuid::parse_str(&id).map_err(|_| StoreError::Corrupt(format!("tenant id {id:?}")))?,
        ),
        name: row.try_get("name").map_err(StoreError::Query)?,
        created_at: row.try_get("created_at").map_err(StoreError::Query)?,
    })
}

fn pool_from(tenant: TenantId, row: &sqlx::sqlite::SqliteRow) -> Result<Pool, StoreError> {
    let name: String = row.try_get("name").map_err(StoreError::Query)?;
    let algorithm: String = row.try_get("algorithm").map_err(StoreError::Query)?;
    Ok(Pool {
        tenant,
        name: PoolName::new(&name).map_err(StoreError::Corrupt)?,
        algorithm: Algorithm::from_jose_name(&algorithm)
            .ok_or_else(|| StoreError::Corrupt(format!("algorithm {algorithm:?}")))?,
        created_at: row.try_get("created_at").map_err(StoreError::Query)?,
    })
}

fn version_from(row: &sqlx::sqlite::SqliteRow) -> Result<StoredVersion, StoreError> {
    let version: i64 = row.try_get("version").map_err(StoreError::Query)?;
    let enabled: i64 = row.try_get("enabled").map_err(StoreError::Query)?;
    Ok(StoredVersion {
        version: u32::try_from(version).map_err(|_| StoreError::Corrupt(format!("version {version}")))?,
        enabled: enabled == 1,
        wrapped: row.try_get("material").map_err(StoreError::Query)?,
        created_at: row.try_get("created_at").map_err(StoreError::Query)?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(tenant.id.to_string())
            .bind(&tenant.name)
            .bind(&tenant.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| match query_err(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("tenant {}", tenant.name)),
                other => other,
            })?;
        Ok(())
    }

    async fn tenant(&self, id: TenantId) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err)?;
        row.as_ref().map(tenant_from).transpose()
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err)?;
        row.as_ref().map(tenant_from).transpose()
    }

    async fn create_pool(&self, pool: &Pool, first: &StoredVersion) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(query_err)?;
        sqlx::query("INSERT INTO pools (tenant_id, name, algorithm, created_at) VALUES ($1, $2, $3, $4)")
            .bind(pool.tenant.to_string())
            .bind(pool.name.as_str())
            .bind(pool.algorithm.jose_name())
            .bind(&pool.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| match query_err(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("pool {}", pool.name)),
                other => other,
            })?;
        insert_version(&mut tx, pool.tenant, &pool.name, first).await?;
        tx.commit().await.map_err(query_err)
    }

    async fn pool(&self, tenant: TenantId, name: &PoolName) -> Result<Option<Pool>, StoreError> {
        let row =
            sqlx::query("SELECT name, algorithm, created_at FROM pools WHERE tenant_id = $1 AND name = $2")
                .bind(tenant.to_string())
                .bind(name.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(query_err)?;
        row.as_ref().map(|r| pool_from(tenant, r)).transpose()
    }

    async fn pools(&self, tenant: TenantId) -> Result<Vec<Pool>, StoreError> {
        let rows =
            sqlx::query("SELECT name, algorithm, created_at FROM pools WHERE tenant_id = $1 ORDER BY name")
                .bind(tenant.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err(query_err)?;
        rows.iter().map(|r| pool_from(tenant, r)).collect()
    }

    async fn add_version(
        &self,
        tenant: TenantId,
        pool: &PoolName,
        version: &StoredVersion,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(query_err)?;
        insert_version(&mut tx, tenant, pool, version).await?;
        tx.commit().await.map_err(query_err)
    }

    async fn version(
        &self,
        tenant: TenantId,
        pool: &PoolName,
        version: u32,
    ) -> Result<Option<StoredVersion>, StoreError> {
        let row = sqlx::query(
            "SELECT version, enabled, material, created_at FROM key_versions \
             WHERE tenant_id = $1 AND pool = $2 AND version = $3",
        )
        .bind(tenant.to_string())
        .bind(pool.as_str())
        .bind(i64::from(version))
        .fetch_optional(&self.pool)
        .await
        .map_err(query_err)?;
        row.as_ref().map(version_from).transpose()
    }

    async fn versions(&self, tenant: TenantId, pool: &PoolName) -> Result<Vec<StoredVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT version, enabled, material, created_at FROM key_versions \
             WHERE tenant_id = $1 AND pool = $2 ORDER BY version",
        )
        .bind(tenant.to_string())
        .bind(pool.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(query_err)?;
        rows.iter().map(version_from).collect()
    }

    async fn set_enabled(
        &self,
        tenant: TenantId,
        pool: &PoolName,
        version: u32,
        enabled: bool,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE key_versions SET enabled = $1 WHERE tenant_id = $2 AND pool = $3 AND version = $4",
        )
        .bind(i64::from(enabled))
        .bind(tenant.to_string())
        .bind(pool.as_str())
        .bind(i64::from(version))
        .execute(&self.pool)
        .await
        .map_err(query_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn user(&self, username: &str) -> Result<Option<StoredUser>, StoreError> {
        let row =
            sqlx::query("SELECT username, password_hash, tenant_id, roles FROM users WHERE username = $1")
                .bind(username)
                .fetch_optional(&self.pool)
                .await
                .map_err(query_err)?;
        let Some(row) = row else { return Ok(None) };
        let tenant: String = row.try_get("tenant_id").map_err(StoreError::Query)?;
        let roles: String = row.try_get("roles").map_err(StoreError::Query)?;
        Ok(Some(StoredUser {
            username: row.try_get("username").map_err(StoreError::Query)?,
            password_hash: row.try_get("password_hash").map_err(StoreError::Query)?,
            tenant: TenantId(
                uuid::Uuid::parse_str(&tenant)
                    .map_err(|_| StoreError::Corrupt(format!("tenant id {tenant:?}")))?,
            ),
            roles: roles.split(',').filter(|r| !r.is_empty()).map(str::to_owned).collect(),
        }))
    }

    async fn create_user(&self, user: &StoredUser) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (username, password_hash, tenant_id, roles, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(user.tenant.to_string())
        .bind(user.roles.join(","))
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(|e| match query_err(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("user {}", user.username)),
            other => other,
        })?;
        Ok(())
    }

    async fn close(&self) {
        service_kit::sqlite::close(&self.pool).await;
    }
}

async fn insert_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    tenant: TenantId,
    pool: &PoolName,
    version: &StoredVersion,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO key_versions (tenant_id, pool, version, enabled, material, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant.to_string())
    .bind(pool.as_str())
    .bind(i64::from(version.version))
    .bind(i64::from(version.enabled))
    .bind(&version.wrapped)
    .bind(&version.created_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| match query_err(e) {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("version {} of pool {pool}", version.version))
        }
        other => other,
    })?;
    Ok(())
}

pub(crate) fn timestamp() -> String {
    now()
}
