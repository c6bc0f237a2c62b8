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

use sqlx::postgres::{PgPool, Postgres};

use service_kit::db::{Ident, SealedOpenError, check_schema_version};
use service_kit::postgres::{PostgresConfig, PostgresError};

use super::{OpenError, StoreError, query_err, sql, tenant_key};
use crate::model::{Tenant, TenantId};

static CATALOG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
/// The tenant migrations, run inside the caller's transaction without sqlx's session-level
/// advisory lock (which an error would leave held on the pooled connection): a new schema is
/// invisible to everyone else until its transaction commits, and migrations of existing schemas
/// at start take [`TENANT_MIGRATION_LOCK`] for their transaction instead.
fn tenant_migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations/tenant/postgres");
    migrator.set_locking(false);
    migrator
}

/// `pg_advisory_xact_lock` key serialising replicas that migrate tenant schemas at start.
const TENANT_MIGRATION_LOCK: i64 = 0x6b6d_735f_7465_6e61; // "kms_tena"

/// SQLSTATE of "role does not exist" when a transaction switches to a tenant's role.
const NO_SUCH_ROLE: &str = "22023";

/// The PostgreSQL store. See the module documentation.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    database: Ident,
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
        let (pool, root) =
            service_kit::postgres::open_sealed(config, &CATALOG_MIGRATOR, shares, &["tenants", "users"])
                .await?;
        let store = Self { pool, database };
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
        let key = tenant_key(tenant)?;
        let mut tx = self.pool.begin().await.map_err(query_err)?;
        let scoped = sqlx::query("SELECT set_config('role', $1, true), set_config('search_path', $2, true)")
            .bind(key.role(&self.database))
            .bind(key.schema())
            .execute(&mut *tx)
            .await;
        match scoped {
            Ok(_) => Ok(Some(tx)),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(NO_SUCH_ROLE) => Ok(None),
            Err(e) => Err(query_err(e)),
        }
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
        let migrator = tenant_migrator();
        let known = migrator.iter().map(|m| m.version).max();
        let ids: Vec<String> =
            sqlx::query_scalar(sql::TENANT_IDS).fetch_all(&self.pool).await.map_err(query_err)?;
        let mut behind = Vec::new();
        for id in ids {
            let tenant = super::rows::tenant_id(&id)?;
            let Some(mut tx) = self.tenant_transaction(tenant).await? else {
                return Err(StoreError::Corrupt(format!(
                    "tenant {id} has no role {}: its schema was removed by hand; drop the tenant or restore a backup",
                    tenant_key(tenant)?.role(&self.database)
                ))
                .into());
            };
            let applied = applied_version(&mut tx).await?;
            tx.rollback().await.map_err(query_err)?;
            check_schema_version(applied, &migrator).map_err(SealedOpenError::from)?;
            if applied < known {
                behind.push(tenant);
            }
        }
        for tenant in behind {
            let Some(mut tx) = self.tenant_transaction(tenant).await? else { continue };
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(TENANT_MIGRATION_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(query_err)?;
            migrate(&migrator, &mut tx).await.map_err(|e| self.migrate_error(e))?;
            tx.commit().await.map_err(query_err)?;
        }
        Ok(())
    }

    fn migrate_error(&self, source: sqlx::migrate::MigrateError) -> StoreError {
        StoreError::Postgres(PostgresError::Migrate {
            target: format!("database {}", self.database.as_str()),
            source,
        })
    }
}

/// The newest migration the transaction's schema records (`None` before the first).
async fn applied_version(tx: &mut sqlx::PgConnection) -> Result<Option<i64>, StoreError> {
    let table: Option<String> = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
        .fetch_one(&mut *tx)
        .await
        .map_err(query_err)?;
    if table.is_none() {
        return Ok(None);
    }
    sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut *tx)
        .await
        .map_err(query_err)
}

/// Runs statements without parameters (several, separated by `;`) in `tx`.
async fn simple(tx: &mut sqlx::PgConnection, statements: &str) -> Result<(), sqlx::Error> {
    // Through `Executor::execute`, whose boxed future is `Send` for any lifetime (sqlx's
    // `RawSql::execute` is not, inside the store's `Send` futures).
    sqlx::Executor::execute(tx, sqlx::raw_sql(statements)).await.map(drop)
}

/// Runs `migrator` in `tx`. (`run_direct` is `run` for a connection in hand; `run` with a
/// transaction's connection trips the compiler's "Acquire is not general enough" inside the
/// `Send` futures of the store's methods, which is what sqlx provides it for.)
async fn migrate(
    migrator: &sqlx::migrate::Migrator,
    tx: &mut sqlx::PgConnection,
) -> Result<(), sqlx::migrate::MigrateError> {
    migrator.run_direct(tx).await
}

/// PostgreSQL's errors for a role or schema that exists already (a concurrent create).
fn duplicate_object(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("42710" | "42P06")))
}

super::store_impl!(PostgresStore, sqlx::Postgres, {
    async fn create_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let key = tenant_key(tenant.id)?;
        let (role, schema) = (key.role(&self.database), key.schema());
        let conflict = || format!("tenant {}", tenant.name);
        let mut tx = self.pool.begin().await.map_err(query_err)?;
        Self::remember_tenant(&mut tx, tenant).await?;
        // The names are TenantKey's (a fixed prefix and 32 hex digits) and the validated
        // database identifier: never text from a request.
        let ddl = format!(
            "CREATE ROLE {role} NOLOGIN; \
             GRANT {role} TO CURRENT_USER; \
             CREATE SCHEMA {schema} AUTHORIZATION {role}; \
             REVOKE ALL ON SCHEMA {schema} FROM PUBLIC"
        );
        simple(&mut tx, &ddl).await.map_err(|e| {
            if duplicate_object(&e) { StoreError::Conflict(conflict()) } else { query_err(e) }
        })?;
        // The tables are made as the tenant's role, so that they are its own.
        sqlx::query("SELECT set_config('role', $1, true), set_config('search_path', $2, true)")
            .bind(&role)
            .bind(&schema)
            .execute(&mut *tx)
            .await
            .map_err(query_err)?;
        migrate(&tenant_migrator(), &mut tx).await.map_err(|e| self.migrate_error(e))?;
        tx.commit().await.map_err(query_err)
    }

    async fn drop_tenant(&self, id: TenantId) -> Result<bool, StoreError> {
        let key = tenant_key(id)?;
        let mut tx = self.pool.begin().await.map_err(query_err)?;
        if !Self::forget_tenant(&mut tx, id).await? {
            return Ok(false);
        }
        let ddl = format!(
            "DROP SCHEMA IF EXISTS {} CASCADE; DROP ROLE IF EXISTS {}",
            key.schema(),
            key.role(&self.database)
        );
        simple(&mut tx, &ddl).await.map_err(query_err)?;
        tx.commit().await.map_err(query_err)?;
        Ok(true)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
});
