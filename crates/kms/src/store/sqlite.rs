//! The SQLite store: the catalog in the configured file, each tenant's keys in a file of its
//! own, `tenants/<32 hex>.db` beside it (the name from `TenantKey::file_name`), opened lazily
//! with the catalog's durable settings (WAL, `synchronous=FULL`, foreign keys) and kept open in
//! a small pool per tenant. A tenant's connection sees only its own file: another tenant's
//! tables are not there to be named.
//!
//! Databases written before tenants had files kept every pool in the catalog's `pools` and
//! `key_versions` tables (migration 0001, which stays as it was). Opening such a database moves
//! those rows into the tenants' files once, then empties the old tables; nothing is lost, and a
//! move interrupted half-way is completed by the next start.

use std::path::{Path, PathBuf};

use service_kit::tenancy::SqliteTenants;
use sqlx::sqlite::{Sqlite, SqlitePool};

use super::rows::{PoolRow, VersionRow};
use super::{OpenError, StoreError, query_err, sql, tenant_key};
use crate::model::{Tenant, TenantId};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
static TENANT_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/tenant/sqlite");

/// The SQLite store. See the module documentation.
pub struct SqliteStore {
    catalog: SqlitePool,
    /// `<directory of the catalog>/tenants/<32 hex>.db`.
    files: SqliteTenants,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("files", &self.files).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the database at `path` sealed by `shares`, returning the store and the unsealed
    /// root key (see `service_kit::sqlite::open_sealed` for the order that keeps wrong shares
    /// from writing anything), then moves keys an older version kept in the catalog into the
    /// tenants' files.
    pub async fn open_sealed(
        path: &Path,
        shares: &[barrier::Share],
    ) -> Result<(Self, barrier::RootKey), OpenError> {
        let tables = ["tenants", "key_versions", "kms_realm_users"];
        let (catalog, root) = service_kit::sqlite::open_sealed(path, &MIGRATOR, shares, &tables).await?;
        let dir = path.parent().unwrap_or(Path::new(".")).join("tenants");
        let store = Self { catalog, files: SqliteTenants::new(dir, &TENANT_MIGRATOR) };
        let ids: Vec<String> =
            sqlx::query_scalar(sql::TENANT_IDS).fetch_all(&store.catalog).await.map_err(query_err)?;
        let keys = ids
            .iter()
            .map(|id| tenant_key(super::rows::tenant_id(id)?))
            .collect::<Result<Vec<_>, StoreError>>()?;
        store.files.check_versions(&keys).await.map_err(StoreError::from)?;
        store.move_legacy_keys().await?;
        Ok((store, root))
    }

    /// Where `tenant`'s file is.
    pub fn tenant_path(&self, tenant: TenantId) -> Result<PathBuf, StoreError> {
        Ok(self.files.path(&tenant_key(tenant)?))
    }

    /// The connection pool of `tenant`'s file, opened on first use; `None` for a tenant that
    /// does not exist (no file is made for it). Tests use it to show what a tenant's connection
    /// can reach.
    pub async fn tenant_pool(&self, tenant: TenantId) -> Result<Option<SqlitePool>, StoreError> {
        let key = tenant_key(tenant)?;
        if let Some(pool) = self.files.cached(&key) {
            return Ok(Some(pool));
        }
        let exists: Option<i64> = sqlx::query_scalar(sql::TENANT_EXISTS)
            .bind(tenant.to_string())
            .fetch_optional(&self.catalog)
            .await
            .map_err(query_err)?;
        if exists.is_none() {
            return Ok(None);
        }
        Ok(Some(self.files.pool(&key).await?))
    }

    fn catalog(&self) -> &SqlitePool {
        &self.catalog
    }

    async fn read_scope(
        &self,
        tenant: TenantId,
    ) -> Result<Option<sqlx::pool::PoolConnection<Sqlite>>, StoreError> {
        let Some(pool) = self.tenant_pool(tenant).await? else { return Ok(None) };
        Ok(Some(pool.acquire().await.map_err(query_err)?))
    }

    async fn end_read(_scope: sqlx::pool::PoolConnection<Sqlite>) -> Result<(), StoreError> {
        // Reads ran outside a transaction: nothing to finish.
        Ok(())
    }

    async fn write_scope(
        &self,
        tenant: TenantId,
    ) -> Result<Option<sqlx::Transaction<'static, Sqlite>>, StoreError> {
        let Some(pool) = self.tenant_pool(tenant).await? else { return Ok(None) };
        Ok(Some(pool.begin().await.map_err(query_err)?))
    }

    /// Moves pools and versions from the catalog's old tables into the tenants' files: copied
    /// (rows already there, from an interrupted move, are kept), then deleted from the catalog.
    async fn move_legacy_keys(&self) -> Result<(), StoreError> {
        let tenants: Vec<String> = sqlx::query_scalar("SELECT DISTINCT tenant_id FROM pools")
            .fetch_all(&self.catalog)
            .await
            .map_err(query_err)?;
        for id in tenants {
            let tenant = super::rows::tenant_id(&id)?;
            let Some(file) = self.tenant_pool(tenant).await? else {
                return Err(StoreError::Corrupt(format!("pools of tenant {id}, which does not exist")));
            };
            let pools: Vec<PoolRow> =
                sqlx::query_as("SELECT name, algorithm, created_at FROM pools WHERE tenant_id = $1")
                    .bind(&id)
                    .fetch_all(&self.catalog)
                    .await
                    .map_err(query_err)?;
            let versions: Vec<LegacyVersionRow> = sqlx::query_as(
                "SELECT pool, version, enabled, material, created_at FROM key_versions WHERE tenant_id = $1",
            )
            .bind(&id)
            .fetch_all(&self.catalog)
            .await
            .map_err(query_err)?;
            let mut tx = file.begin().await.map_err(query_err)?;
            for p in &pools {
                sqlx::query("INSERT OR IGNORE INTO pools (name, algorithm, created_at) VALUES ($1, $2, $3)")
                    .bind(&p.name)
                    .bind(&p.algorithm)
                    .bind(&p.created_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(query_err)?;
            }
            for v in &versions {
                sqlx::query(
                    "INSERT OR IGNORE INTO key_versions (pool, version, enabled, material, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&v.pool)
                .bind(v.row.version)
                .bind(v.row.enabled)
                .bind(&v.row.material)
                .bind(&v.row.created_at)
                .execute(&mut *tx)
                .await
                .map_err(query_err)?;
            }
            tx.commit().await.map_err(query_err)?;
            let mut tx = self.catalog.begin().await.map_err(query_err)?;
            for table in ["key_versions", "pools"] {
                // Table names are constants.
                sqlx::query(&format!("DELETE FROM {table} WHERE tenant_id = $1"))
                    .bind(&id)
                    .execute(&mut *tx)
                    .await
                    .map_err(query_err)?;
            }
            tx.commit().await.map_err(query_err)?;
            tracing::info!(tenant = %id, pools = pools.len(), versions = versions.len(), "keys moved from the catalog into the tenant's own database file");
        }
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct LegacyVersionRow {
    pool: String,
    #[sqlx(flatten)]
    row: VersionRow,
}

super::store_impl!(SqliteStore, sqlx::Sqlite, {
    async fn create_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let key = tenant_key(tenant.id)?;
        let mut tx = self.catalog.begin().await.map_err(query_err)?;
        Self::remember_tenant(&mut tx, tenant).await?;
        // A file without a catalog row is left over from a start that failed after making it:
        // reused while it holds no keys, refused (never silently adopted) when it does.
        let file = self.files.pool(&key).await?;
        let pools: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pools").fetch_one(&file).await.map_err(query_err)?;
        if pools > 0 {
            self.files.close_file(&key).await;
            return Err(StoreError::Corrupt(format!(
                "{} holds keys but no tenant of that id exists: move the file away (or restore the tenant from a backup)",
                self.files.path(&key).display()
            )));
        }
        tx.commit().await.map_err(query_err)
    }

    async fn drop_tenant(&self, id: TenantId) -> Result<bool, StoreError> {
        let key = tenant_key(id)?;
        let mut tx = self.catalog.begin().await.map_err(query_err)?;
        if !Self::forget_tenant(&mut tx, id).await? {
            return Ok(false);
        }
        // The file goes first: if it cannot, the catalog row stays and the drop can be retried.
        self.files.remove(&key).await?;
        tx.commit().await.map_err(query_err)?;
        Ok(true)
    }

    async fn close(&self) {
        self.files.close().await;
        service_kit::sqlite::close(&self.catalog).await;
    }
});
