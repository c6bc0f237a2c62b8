//! Storage behind one trait, on two engines: SQLite ([`SqliteStore`]) and PostgreSQL
//! ([`PostgresStore`]), with sqlx and versioned migrations embedded per engine.
//!
//! Each engine keeps a **catalog** (the seal, the tenants, the database realm's users, the
//! migrations) and a **namespace per tenant** holding that tenant's pools and key versions: a
//! database file `tenants/<32 hex>.db` beside the catalog on SQLite, a schema
//! `tenant_<32 hex>` owned by a role of its own on PostgreSQL, where every tenant operation runs
//! in a transaction with that role and `search_path`, so PostgreSQL itself refuses another
//! tenant's tables. The names come only from `service_kit::db::TenantKey` (the canonical UUID).
//!
//! Every method that touches keys takes a `TenantId`: there is no way to read a pool or a
//! version without naming the tenant, and a tenant's queries cannot name another namespace.
//!
//! This module holds what the engines share: the trait, [`StoreError`], the SQL text (both
//! engines run the same statements), the decoding of rows into the model, and
//! [`store_impl!`](store_impl), which writes the shared methods of [`Store`] for each engine.

mod postgres;
mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use service_kit::db::{SealedOpenError, TenantKey};

use crate::crypto::Algorithm;
use crate::model::{Pool, PoolName, StoredUser, StoredVersion, Tenant, TenantId};

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The row exists already.
    #[error("{0} already exists")]
    Conflict(String),
    /// The tenant does not exist (so neither does its namespace).
    #[error("no such tenant")]
    NoTenant,
    /// The SQLite database (or a tenant's file) could not be opened, migrated or read.
    #[error(transparent)]
    Sqlite(#[from] service_kit::sqlite::SqliteError),
    /// PostgreSQL could not be reached, signed in to or migrated.
    #[error(transparent)]
    Postgres(#[from] service_kit::postgres::PostgresError),
    /// The database cannot be reached now (down, restarting, out of connections, timing out):
    /// answered 503, and `readyz` says so; retry shortly.
    #[error("the database is unavailable; retry shortly")]
    Unavailable(#[source] sqlx::Error),
    /// A query failed.
    #[error("database query failed")]
    Query(#[source] sqlx::Error),
    /// A stored value does not parse: corruption or a bug.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// A tenant's database file or its directory could not be made, opened or removed.
    #[error(transparent)]
    TenantFile(#[from] service_kit::tenancy::TenantFileError),
    /// A tenant's schema could not be made, migrated or found.
    #[error("cannot prepare a tenant's schema")]
    Namespace(#[from] service_kit::tenancy::NamespaceError),
}

/// Opening a store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Unsealing, connecting, migrating or the seal check failed.
    #[error(transparent)]
    Sealed(#[from] SealedOpenError),
    /// `storage.postgres.database` cannot name per-tenant roles.
    #[error("storage.postgres.database cannot be used in role names")]
    DatabaseName(#[source] service_kit::db::NotAnIdent),
    /// Preparing the tenants' namespaces failed.
    #[error("cannot prepare the tenants' key stores")]
    Store(#[from] StoreError),
}

/// Maps a query's error: a unique violation is a conflict, a lost or unreachable database is
/// `Unavailable` (503), anything else a failed query.
pub(crate) fn query_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict("the record".to_owned())
        }
        _ if service_kit::postgres::is_unavailable(&e) => StoreError::Unavailable(e),
        _ => StoreError::Query(e),
    }
}

/// `query_err`, naming what conflicts.
pub(crate) fn conflict_as(what: impl FnOnce() -> String) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match query_err(e) {
        StoreError::Conflict(_) => StoreError::Conflict(what()),
        other => other,
    }
}

/// The names of a tenant's namespace, from its id's canonical text only.
pub(crate) fn tenant_key(tenant: TenantId) -> Result<TenantKey, StoreError> {
    // `Uuid`'s Display is the canonical lowercase hyphenated form, the one TenantKey accepts.
    TenantKey::parse(&tenant.to_string()).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Builds the next version of a pool for the number the store picked (wrapping material made
/// beforehand, bound to that number). Called inside the store's transaction: keep it cheap.
pub type NewVersion<'a> = &'a (dyn Fn(u32) -> Result<StoredVersion, StoreError> + Send + Sync);

/// The KMS's persistent state.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Creates a tenant and its namespace (file or schema and role), atomically.
    async fn create_tenant(&self, tenant: &Tenant) -> Result<(), StoreError>;
    /// Drops a tenant: its namespace with every key, its users, its catalog row. False if
    /// there was no such tenant.
    async fn drop_tenant(&self, id: TenantId) -> Result<bool, StoreError>;
    /// A tenant by id.
    async fn tenant(&self, id: TenantId) -> Result<Option<Tenant>, StoreError>;
    /// A tenant by name.
    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, StoreError>;

    /// Creates a pool with its first version, atomically; `NoTenant` without the tenant.
    async fn create_pool(&self, pool: &Pool, first: &StoredVersion) -> Result<(), StoreError>;
    /// A pool of `tenant`.
    async fn pool(&self, tenant: TenantId, name: &PoolName) -> Result<Option<Pool>, StoreError>;
    /// Every pool of `tenant`.
    async fn pools(&self, tenant: TenantId) -> Result<Vec<Pool>, StoreError>;
    /// Adds the next version of a pool: one more than the highest, picked while holding a lock
    /// on the pool that serialises rotations across every process sharing the database, so
    /// concurrent rotations neither collide nor skip a number. Returns every version as of the
    /// commit (the new one last); `None` if there is no such pool.
    async fn add_next_version(
        &self,
        tenant: TenantId,
        pool: &PoolName,
        make: NewVersion<'_>,
    ) -> Result<Option<Vec<StoredVersion>>, StoreError>;
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

/// The statements both engines run (sqlx binds `$n` on SQLite as on PostgreSQL). Catalog
/// statements run on the catalog; the others inside a tenant's namespace, where the tenant is
/// implicit.
pub(crate) mod sql {
    pub const TENANT_BY_ID: &str = "SELECT id, name, created_at FROM tenants WHERE id = $1";
    pub const TENANT_BY_NAME: &str = "SELECT id, name, created_at FROM tenants WHERE name = $1";
    pub const INSERT_TENANT: &str = "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)";
    pub const TENANT_EXISTS: &str = "SELECT 1 FROM tenants WHERE id = $1";
    pub const TENANT_IDS: &str = "SELECT id FROM tenants ORDER BY id";
    pub const DELETE_TENANT_USERS: &str = "DELETE FROM kms_realm_users WHERE tenant_id = $1";
    pub const DELETE_TENANT: &str = "DELETE FROM tenants WHERE id = $1";
    pub const USER: &str =
        "SELECT username, password_hash, tenant_id, roles FROM kms_realm_users WHERE username = $1";
    pub const INSERT_USER: &str = "INSERT INTO kms_realm_users (username, password_hash, tenant_id, roles, created_at) \
                                   VALUES ($1, $2, $3, $4, $5)";

    pub const INSERT_POOL: &str = "INSERT INTO pools (name, algorithm, created_at) VALUES ($1, $2, $3)";
    pub const POOL: &str = "SELECT name, algorithm, created_at FROM pools WHERE name = $1";
    pub const POOLS: &str = "SELECT name, algorithm, created_at FROM pools ORDER BY name";
    /// A write to the pool's row: on PostgreSQL it takes the row lock, on SQLite (as the first
    /// statement of the transaction) the database's write lock, so rotations of one pool run
    /// one after another — replicas included — and each sees the versions the previous one
    /// committed. (Not the primary key: SQLite would check the key's references.)
    pub const LOCK_POOL: &str = "UPDATE pools SET algorithm = algorithm WHERE name = $1";
    pub const INSERT_VERSION: &str = "INSERT INTO key_versions (pool, version, enabled, material, created_at) \
                                      VALUES ($1, $2, $3, $4, $5)";
    pub const VERSION: &str =
        "SELECT version, enabled, material, created_at FROM key_versions WHERE pool = $1 AND version = $2";
    pub const VERSIONS: &str =
        "SELECT version, enabled, material, created_at FROM key_versions WHERE pool = $1 ORDER BY version";
    pub const SET_ENABLED: &str = "UPDATE key_versions SET enabled = $1 WHERE pool = $2 AND version = $3";
}

/// Rows as both engines return them (`FromRow` derives an implementation for any sqlx row
/// whose columns decode to these types: TEXT → `String`, INTEGER/BIGINT → `i64`, BLOB/BYTEA →
/// `Vec<u8>`), and their one conversion into the model.
pub(crate) mod rows {
    use super::*;

    #[derive(sqlx::FromRow)]
    pub struct TenantRow {
        pub id: String,
        pub name: String,
        pub created_at: String,
    }

    #[derive(sqlx::FromRow)]
    pub struct PoolRow {
        pub name: String,
        pub algorithm: String,
        pub created_at: String,
    }

    #[derive(sqlx::FromRow)]
    pub struct VersionRow {
        pub version: i64,
        pub enabled: i64,
        pub material: Vec<u8>,
        pub created_at: String,
    }

    #[derive(sqlx::FromRow)]
    pub struct UserRow {
        pub username: String,
        pub password_hash: String,
        pub tenant_id: String,
        pub roles: String,
    }

    pub fn tenant_id(text: &str) -> Result<TenantId, StoreError> {
        uuid::Uuid::parse_str(text)
            .map(TenantId)
            .map_err(|_| StoreError::Corrupt(format!("tenant id {text:?}")))
    }

    impl TenantRow {
        pub fn into_model(self) -> Result<Tenant, StoreError> {
            Ok(Tenant { id: tenant_id(&self.id)?, name: self.name, created_at: self.created_at })
        }
    }

    impl PoolRow {
        pub fn into_model(self, tenant: TenantId) -> Result<Pool, StoreError> {
            Ok(Pool {
                tenant,
                name: PoolName::new(&self.name).map_err(StoreError::Corrupt)?,
                algorithm: Algorithm::from_jose_name(&self.algorithm)
                    .ok_or_else(|| StoreError::Corrupt(format!("algorithm {:?}", self.algorithm)))?,
                created_at: self.created_at,
            })
        }
    }

    impl VersionRow {
        pub fn into_model(self) -> Result<StoredVersion, StoreError> {
            Ok(StoredVersion {
                version: u32::try_from(self.version)
                    .map_err(|_| StoreError::Corrupt(format!("version {}", self.version)))?,
                enabled: self.enabled == 1,
                wrapped: self.material,
                created_at: self.created_at,
            })
        }
    }

    impl UserRow {
        pub fn into_model(self) -> Result<StoredUser, StoreError> {
            Ok(StoredUser {
                tenant: tenant_id(&self.tenant_id)?,
                username: self.username,
                password_hash: self.password_hash,
                roles: self.roles.split(',').filter(|r| !r.is_empty()).map(str::to_owned).collect(),
            })
        }
    }
}

/// Writes `impl Store for $store` (whose sqlx database is `$db`) with the methods both engines
/// share, plus the engine's own (`create_tenant`, `drop_tenant`, `close`, passed in as `$own`),
/// and the inherent helpers they use (`find_tenant`, `insert_version`, `remember_tenant`,
/// `forget_tenant`).
///
/// Why a macro: the shared methods are the same text for both engines — the same SQL, the same
/// binds, the same decoding — but for two different `sqlx::Database` types. A generic function
/// over `sqlx::Database` needs a dozen higher-ranked bounds (arguments, executors, each bound
/// type's `Encode`/`Decode`/`Type`) that the compiler does not infer and every caller would
/// repeat; the macro keeps one readable copy. It relies on four inherent methods of `$store`:
///
/// * `catalog()`: the pool the catalog tables are reached through;
/// * `read_scope(tenant)`: `Some` handle (derefs to the engine's connection) inside the tenant's
///   namespace, `None` when the tenant does not exist; `end_read(handle)` finishes it;
/// * `write_scope(tenant)`: the same as a transaction, committed by the caller.
macro_rules! store_impl {
    ($store:ty, $db:ty, { $($own:tt)* }) => {
        /// Shared helpers of the methods below (and of the engine's own).
        impl $store {
            async fn find_tenant(
                &self,
                query: &'static str,
                value: String,
            ) -> Result<Option<$crate::model::Tenant>, $crate::store::StoreError> {
                use $crate::store::{query_err, rows::TenantRow};
                let row: Option<TenantRow> =
                    sqlx::query_as(query).bind(value).fetch_optional(self.catalog()).await.map_err(query_err)?;
                row.map(TenantRow::into_model).transpose()
            }

            async fn insert_version(
                conn: &mut <$db as sqlx::Database>::Connection,
                pool: &$crate::model::PoolName,
                version: &$crate::model::StoredVersion,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::{conflict_as, sql};
                sqlx::query(sql::INSERT_VERSION)
                    .bind(pool.as_str())
                    .bind(i64::from(version.version))
                    .bind(i64::from(version.enabled))
                    .bind(&version.wrapped)
                    .bind(&version.created_at)
                    .execute(conn)
                    .await
                    .map_err(conflict_as(|| format!("version {} of pool {pool}", version.version)))?;
                Ok(())
            }

            /// Inserts a tenant's catalog row in `conn`'s transaction (`Conflict` naming it).
            async fn remember_tenant(
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &$crate::model::Tenant,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::{conflict_as, sql};
                sqlx::query(sql::INSERT_TENANT)
                    .bind(tenant.id.to_string())
                    .bind(&tenant.name)
                    .bind(&tenant.created_at)
                    .execute(conn)
                    .await
                    .map_err(conflict_as(|| format!("tenant {}", tenant.name)))?;
                Ok(())
            }

            /// Deletes a tenant's catalog rows (its users, then itself) in `conn`'s transaction;
            /// false if there was no such tenant.
            async fn forget_tenant(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: $crate::model::TenantId,
            ) -> Result<bool, $crate::store::StoreError> {
                use $crate::store::{query_err, sql};
                sqlx::query(sql::DELETE_TENANT_USERS).bind(id.to_string()).execute(&mut *conn).await.map_err(query_err)?;
                let gone =
                    sqlx::query(sql::DELETE_TENANT).bind(id.to_string()).execute(&mut *conn).await.map_err(query_err)?;
                Ok(gone.rows_affected() == 1)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            $($own)*

            async fn tenant(
                &self,
                id: $crate::model::TenantId,
            ) -> Result<Option<$crate::model::Tenant>, $crate::store::StoreError> {
                self.find_tenant($crate::store::sql::TENANT_BY_ID, id.to_string()).await
            }

            async fn tenant_by_name(
                &self,
                name: &str,
            ) -> Result<Option<$crate::model::Tenant>, $crate::store::StoreError> {
                self.find_tenant($crate::store::sql::TENANT_BY_NAME, name.to_owned()).await
            }

            async fn create_pool(
                &self,
                pool: &$crate::model::Pool,
                first: &$crate::model::StoredVersion,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::{StoreError, conflict_as, query_err, sql};
                let Some(mut tx) = self.write_scope(pool.tenant).await? else {
                    return Err(StoreError::NoTenant);
                };
                sqlx::query(sql::INSERT_POOL)
                    .bind(pool.name.as_str())
                    .bind(pool.algorithm.jose_name())
                    .bind(&pool.created_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(conflict_as(|| format!("pool {}", pool.name)))?;
                Self::insert_version(&mut tx, &pool.name, first).await?;
                tx.commit().await.map_err(query_err)
            }

            async fn pool(
                &self,
                tenant: $crate::model::TenantId,
                name: &$crate::model::PoolName,
            ) -> Result<Option<$crate::model::Pool>, $crate::store::StoreError> {
                use $crate::store::{query_err, rows::PoolRow, sql};
                let Some(mut scope) = self.read_scope(tenant).await? else { return Ok(None) };
                let row: Option<PoolRow> = sqlx::query_as(sql::POOL)
                    .bind(name.as_str())
                    .fetch_optional(&mut *scope)
                    .await
                    .map_err(query_err)?;
                Self::end_read(scope).await?;
                row.map(|r| r.into_model(tenant)).transpose()
            }

            async fn pools(
                &self,
                tenant: $crate::model::TenantId,
            ) -> Result<Vec<$crate::model::Pool>, $crate::store::StoreError> {
                use $crate::store::{query_err, rows::PoolRow, sql};
                let Some(mut scope) = self.read_scope(tenant).await? else { return Ok(Vec::new()) };
                let rows: Vec<PoolRow> =
                    sqlx::query_as(sql::POOLS).fetch_all(&mut *scope).await.map_err(query_err)?;
                Self::end_read(scope).await?;
                rows.into_iter().map(|r| r.into_model(tenant)).collect()
            }

            async fn add_next_version(
                &self,
                tenant: $crate::model::TenantId,
                pool: &$crate::model::PoolName,
                make: $crate::store::NewVersion<'_>,
            ) -> Result<Option<Vec<$crate::model::StoredVersion>>, $crate::store::StoreError> {
                use $crate::store::{StoreError, query_err, rows::VersionRow, sql};
                let Some(mut tx) = self.write_scope(tenant).await? else { return Ok(None) };
                let locked =
                    sqlx::query(sql::LOCK_POOL).bind(pool.as_str()).execute(&mut *tx).await.map_err(query_err)?;
                if locked.rows_affected() == 0 {
                    return Ok(None);
                }
                let rows: Vec<VersionRow> = sqlx::query_as(sql::VERSIONS)
                    .bind(pool.as_str())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(query_err)?;
                let mut versions = rows.into_iter().map(VersionRow::into_model).collect::<Result<Vec<_>, _>>()?;
                let next = match versions.last() {
                    None => 1,
                    Some(v) => v.version.checked_add(1).ok_or_else(|| {
                        StoreError::Conflict(format!("version {} of pool {pool} (the last number)", v.version))
                    })?,
                };
                let new = make(next)?;
                Self::insert_version(&mut tx, pool, &new).await?;
                tx.commit().await.map_err(query_err)?;
                versions.push(new);
                Ok(Some(versions))
            }

            async fn version(
                &self,
                tenant: $crate::model::TenantId,
                pool: &$crate::model::PoolName,
                version: u32,
            ) -> Result<Option<$crate::model::StoredVersion>, $crate::store::StoreError> {
                use $crate::store::{query_err, rows::VersionRow, sql};
                let Some(mut scope) = self.read_scope(tenant).await? else { return Ok(None) };
                let row: Option<VersionRow> = sqlx::query_as(sql::VERSION)
                    .bind(pool.as_str())
                    .bind(i64::from(version))
                    .fetch_optional(&mut *scope)
                    .await
                    .map_err(query_err)?;
                Self::end_read(scope).await?;
                row.map(VersionRow::into_model).transpose()
            }

            async fn versions(
                &self,
                tenant: $crate::model::TenantId,
                pool: &$crate::model::PoolName,
            ) -> Result<Vec<$crate::model::StoredVersion>, $crate::store::StoreError> {
                use $crate::store::{query_err, rows::VersionRow, sql};
                let Some(mut scope) = self.read_scope(tenant).await? else { return Ok(Vec::new()) };
                let rows: Vec<VersionRow> = sqlx::query_as(sql::VERSIONS)
                    .bind(pool.as_str())
                    .fetch_all(&mut *scope)
                    .await
                    .map_err(query_err)?;
                Self::end_read(scope).await?;
                rows.into_iter().map(VersionRow::into_model).collect()
            }

            async fn set_enabled(
                &self,
                tenant: $crate::model::TenantId,
                pool: &$crate::model::PoolName,
                version: u32,
                enabled: bool,
            ) -> Result<bool, $crate::store::StoreError> {
                use $crate::store::{query_err, sql};
                let Some(mut tx) = self.write_scope(tenant).await? else { return Ok(false) };
                let done = sqlx::query(sql::SET_ENABLED)
                    .bind(i64::from(enabled))
                    .bind(pool.as_str())
                    .bind(i64::from(version))
                    .execute(&mut *tx)
                    .await
                    .map_err(query_err)?;
                tx.commit().await.map_err(query_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn user(
                &self,
                username: &str,
            ) -> Result<Option<$crate::model::StoredUser>, $crate::store::StoreError> {
                use $crate::store::{query_err, rows::UserRow, sql};
                let row: Option<UserRow> = sqlx::query_as(sql::USER)
                    .bind(username)
                    .fetch_optional(self.catalog())
                    .await
                    .map_err(query_err)?;
                row.map(UserRow::into_model).transpose()
            }

            async fn create_user(
                &self,
                user: &$crate::model::StoredUser,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::{conflict_as, sql};
                sqlx::query(sql::INSERT_USER)
                    .bind(&user.username)
                    .bind(&user.password_hash)
                    .bind(user.tenant.to_string())
                    .bind(user.roles.join(","))
                    .bind($crate::store::timestamp())
                    .execute(self.catalog())
                    .await
                    .map_err(conflict_as(|| format!("user {}", user.username)))?;
                Ok(())
            }
        }
    };
}
pub(crate) use store_impl;

/// Now, as RFC 3339 (what every `created_at` holds).
pub(crate) fn timestamp() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
