//! The PostgreSQL store: the catalog in the database's `public` schema; each tenant's keys in a
//! schema of its own, `tenant_<32 hex>`, owned by a NOLOGIN role `<database>_t<32 hex>` (both
//! names from `TenantKey`) that is granted to the service's role so that it may switch to it.
//!
//! Every tenant operation runs in a transaction that first sets, for that transaction only, the
//! tenant's role and `search_path` (`set_config(…, true)`, the function form of `SET LOCAL`,
//! with the names bound as parameters). PostgreSQL then checks every statement against that
//! role, which owns its own schema and nothing else: a query that names another tenant's
//! tables — a bug, or a hand-written query — is refused with "permission denied". The catalog
//! is the service role's and no tenant role may read it.
//!
//! Several replicas share one database: the seal is created once (`service_kit::postgres::
//! open_sealed`), tenant schemas are created and dropped in one transaction each (DDL and roles
//! are transactional), and rotations of a pool are serialised by a row lock.

use service_kit::db::Ident;
use service_kit::postgres::PostgresConfig;
use service_kit::tenancy::{NamespaceError, PgTenants};
use sqlx::postgres::{PgPool, Postgres};

use super::{OpenError, StoreError, query_err, sql, tenant_key};
use crate::model::{Tenant, TenantId};

static CATALOG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

fn tenant_migrator() -> sqlx::migrate::Migrator {
    service_kit::tenancy::tenant_migrator(sqlx::migrate!("./migrations/tenant/postgres"))
}

/// `pg_advisory_xact_lock` key serialising replicas that migrate tenant schemas at start.
const TENANT_MIGRATION_LOCK: i64 = 0x6b6d_735f_7465_6e61; // "kms_tena"

/// The PostgreSQL store. See the module documentation.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    tenants: PgTenants,
}

impl PostgresStore {
    /// Connects to the database of `config`, unsealed by `shares`, in the order that writes
    /// nothing unless the password, the shares and the schema version are right
    /// (`service_kit::postgres::open_sealed`), then brings every tenant schema up to date.
    pub async fn open_sealed(
        config: &PostgresConfig,
        shares: &[barrier::Share],
    ) -> Result<(Self, barrier::RootKey), OpenError> {
        let database = Ident::new(&config.database).map_err(OpenError::DatabaseName)?;
        let (pool, root) = service_kit::postgres::open_sealed(
            config,
            &CATALOG_MIGRATOR,
            shares,
            &["tenants", "kms_realm_users"],
        )
        .await?;
        let store = Self { pool, tenants: PgTenants::new(database) };
        store.migrate_tenants().await?;
        Ok((store, root))
    }

    /// The connection pool (for the readiness watcher).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A transaction inside `tenant`'s schema, as its role: what every tenant operation runs in;
    /// `None` when the tenant does not exist. Tests use it to show what PostgreSQL lets such a
    /// transaction reach.
    pub async fn tenant_transaction(
        &self,
        tenant: TenantId,
    ) -> Result<Option<sqlx::Transaction<'static, Postgres>>, StoreError> {
        self.tenants.transaction(&self.pool, &tenant_key(tenant)?).await.map_err(query_err)
    }

    fn catalog(&self) -> &PgPool {
        &self.pool
    }

    async fn read_scope(
        &self,
        tenant: TenantId,
    ) -> Result<Option<sqlx::Transaction<'static, Postgres>>, StoreError> {
        self.tenant_transaction(tenant).await
    }

    async fn end_read(scope: sqlx::Transaction<'static, Postgres>) -> Result<(), StoreError> {
        scope.commit().await.map_err(query_err)
    }

    async fn write_scope(
        &self,
        tenant: TenantId,
    ) -> Result<Option<sqlx::Transaction<'static, Postgres>>, StoreError> {
        self.tenant_transaction(tenant).await
    }

    /// Refuses a tenant schema newer than this binary (before migrating any), then migrates
    /// those that are behind.
    async fn migrate_tenants(&self) -> Result<(), OpenError> {
        let ids: Vec<String> =
            sqlx::query_scalar(sql::TENANT_IDS).fetch_all(&self.pool).await.map_err(query_err)?;
        let keys = ids
            .iter()
            .map(|id| tenant_key(super::rows::tenant_id(id)?))
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.tenants.migrate_all(&self.pool, &keys, &tenant_migrator(), TENANT_MIGRATION_LOCK).await.map_err(
            |e| match e {
                NamespaceError::SchemaTooNew(too_new) => OpenError::Sealed(too_new.into()),
                other => OpenError::Store(namespace_err(other)),
            },
        )
    }
}

/// A namespace error, with a driver error inside sorted as an outage or a bad query.
fn namespace_err(e: NamespaceError) -> StoreError {
    match e {
        NamespaceError::Query(e) => query_err(e),
        other => StoreError::Namespace(other),
    }
}

super::store_impl!(PostgresStore, sqlx::Postgres, {
    async fn create_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let key = tenant_key(tenant.id)?;
        let mut tx = self.pool.begin().await.map_err(query_err)?;
        Self::remember_tenant(&mut tx, tenant).await?;
        self.tenants.create(&mut tx, &key, &tenant_migrator()).await.map_err(|e| match e {
            NamespaceError::Exists => StoreError::Conflict(format!("tenant {}", tenant.name)),
            other => namespace_err(other),
        })?;
        tx.commit().await.map_err(query_err)
    }

    async fn drop_tenant(&self, id: TenantId) -> Result<bool, StoreError> {
        let key = tenant_key(id)?;
        let mut tx = self.pool.begin().await.map_err(query_err)?;
        if !Self::forget_tenant(&mut tx, id).await? {
            return Ok(false);
        }
        self.tenants.drop(&mut tx, &key).await.map_err(query_err)?;
        tx.commit().await.map_err(query_err)?;
        Ok(true)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
});
