//! The PostgreSQL store, which several Identity replicas share: the settings of
//! `storage.postgres` (the password only from a file), the catalog (keys, tenants, client
//! directory, sessions) in `public` with the migrations of `migrations/postgres/`, a sealed open
//! that is safe when replicas start at once (`service_kit::postgres::open_sealed`), and outages
//! told apart from bad queries (`service_kit::postgres::is_unavailable` → `Unavailable`, 503).
//!
//! Each tenant's clients, users, codes and refresh tokens live in a schema `tenant_<32 hex>`
//! owned by a NOLOGIN role `<database>_t<32 hex>` (`service_kit::tenancy::PgTenants`), migrated
//! by `migrations/tenant/postgres/`. Every tenant operation runs in a transaction that sets that
//! role and `search_path` for itself only, so PostgreSQL refuses any statement that names
//! another tenant's tables. A client's directory entry and its row are written in one
//! transaction. Tenants are made on first use by whichever replica gets there first (the
//! catalog row's insert decides; the other waits for it and finds it).
//!
//! Databases of schema v1 kept every tenant's rows in shared tables in `public`; opening one
//! moves them into the tenants' schemas in one transaction (codes and families by their
//! client's tenant; one whose user is of another tenant is not moved, as no such pair can sign
//! in any more; revocations into every tenant) and empties the old tables.

use service_kit::db::Ident;
use service_kit::postgres::PostgresConfig;
use service_kit::tenancy::{NamespaceError, PgTenants};
use sqlx::postgres::{PgPool, Postgres};

use super::{OpenError, StoreError, TenantKey};

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    tenants: PgTenants,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

fn tenant_migrator() -> sqlx::migrate::Migrator {
    service_kit::tenancy::tenant_migrator(sqlx::migrate!("./migrations/tenant/postgres"))
}

/// `pg_advisory_xact_lock` key serialising replicas that migrate tenant schemas or move legacy
/// rows at start.
const TENANT_MIGRATION_LOCK: i64 = 0x6964_5f74_656e_616e; // "id_tenan"

impl PgStore {
    /// Connects with `config`, refuses a schema newer than this binary, migrates, and opens (or
    /// on first start creates) the seal with `shares`; wrong shares, a wrong password, an
    /// unreachable server or a newer schema fail before anything is written. Then brings every
    /// tenant schema up to date and moves an older database's shared rows into them.
    pub async fn open_sealed(
        config: &PostgresConfig,
        shares: &[barrier::Share],
    ) -> Result<(Self, barrier::RootKey), OpenError> {
        let database = Ident::new(&config.database).map_err(OpenError::DatabaseName)?;
        let (pool, root) = service_kit::postgres::open_sealed(config, &MIGRATOR, shares, &super::DATA_TABLES)
            .await
            .map_err(OpenError::Sealed)?;
        let store = Self { pool, tenants: PgTenants::new(database) };
        let prepared = async {
            let keys = store.tenant_keys().await?;
            store.tenants.migrate_all(&store.pool, &keys, &tenant_migrator(), TENANT_MIGRATION_LOCK).await?;
            store.move_legacy_rows().await
        };
        prepared.await.map_err(OpenError::Tenants)?;
        Ok((store, root))
    }

    /// The connection pool (for the `database` readiness watcher).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A transaction inside `tenant`'s schema, as its role: what every tenant operation runs in;
    /// `None` when the tenant does not exist. Tests use it to show what PostgreSQL lets such a
    /// transaction reach.
    pub async fn tenant_transaction(
        &self,
        tenant: &TenantKey,
    ) -> Result<Option<sqlx::Transaction<'static, Postgres>>, StoreError> {
        self.tenants.transaction(&self.pool, tenant).await.map_err(Self::fail)
    }

    fn catalog(&self) -> &PgPool {
        &self.pool
    }

    async fn read_scope(
        &self,
        tenant: &TenantKey,
    ) -> Result<Option<sqlx::Transaction<'static, Postgres>>, StoreError> {
        self.tenant_transaction(tenant).await
    }

    async fn end_read(scope: sqlx::Transaction<'static, Postgres>) -> Result<(), StoreError> {
        scope.commit().await.map_err(Self::fail)
    }

    async fn write_scope(
        &self,
        tenant: &TenantKey,
    ) -> Result<Option<sqlx::Transaction<'static, Postgres>>, StoreError> {
        self.tenant_transaction(tenant).await
    }

    /// Makes the tenant (catalog row, role, schema, tables) in one transaction unless it exists.
    async fn ensure_tenant(&self, tenant: &TenantKey) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(Self::fail)?;
        if Self::remember_tenant(&mut tx, tenant).await? {
            self.tenants.create(&mut tx, tenant, &tenant_migrator()).await.map_err(|e| match e {
                NamespaceError::Exists => StoreError::Corrupt(format!(
                    "the role or schema of tenant {} exists but the tenant does not: remove them or restore a backup",
                    tenant.canonical()
                )),
                NamespaceError::Query(e) => Self::fail(e),
                other => StoreError::Namespace(other),
            })?;
        }
        tx.commit().await.map_err(Self::fail)
    }

    /// Other replicas revoke too: no revocation is kept in memory (see `super::revoked`).
    fn remember(&self, _change: super::revoked::Change) {}

    /// Inserts the tenant's catalog row in `tx`; `false` if it was there (a concurrent insert
    /// waits for the other transaction and then finds it).
    async fn remember_tenant(tx: &mut sqlx::PgConnection, tenant: &TenantKey) -> Result<bool, StoreError> {
        let new: Option<String> = sqlx::query_scalar(
            "INSERT INTO tenants (tenant_id, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING tenant_id",
        )
        .bind(tenant.canonical())
        .bind(super::now())
        .fetch_optional(&mut *tx)
        .await
        .map_err(Self::fail)?;
        Ok(new.is_some())
    }

    fn fail(e: sqlx::Error) -> StoreError {
        StoreError::classify(e, service_kit::postgres::is_unavailable)
    }

    async fn close_pool(&self) {
        self.pool.close().await;
    }

    /// See the module documentation. One transaction under the migration lock, so replicas
    /// starting at once move the rows once.
    async fn move_legacy_rows(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(Self::fail)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(TENANT_MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(Self::fail)?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT tenant_id FROM public.clients UNION SELECT tenant_id FROM public.users",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(Self::fail)?;
        if ids.is_empty() {
            return Ok(());
        }
        for id in &ids {
            let tenant = TenantKey::parse(id)?;
            if Self::remember_tenant(&mut tx, &tenant).await? {
                self.tenants.create(&mut tx, &tenant, &tenant_migrator()).await?;
                // `create` left the transaction as the tenant's role: back to the service's.
                sqlx::query(
                    "SELECT set_config('role', 'none', true), set_config('search_path', 'public', true)",
                )
                .execute(&mut *tx)
                .await
                .map_err(Self::fail)?;
            }
            // The schema name is TenantKey's; the statements are this file's constants.
            let schema = tenant.schema();
            for (i, statement) in COPY_INTO_TENANT.iter().enumerate() {
                let text = statement.replace("{t}", &schema);
                let query = sqlx::query(&text);
                let query = if i < 2 { query.bind(id) } else { query };
                query.execute(&mut *tx).await.map_err(Self::fail)?;
            }
            sqlx::query(
                "INSERT INTO client_directory (client_id, tenant_id) SELECT client_id, tenant_id FROM public.clients \
                 WHERE tenant_id = $1 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(Self::fail)?;
        }
        for table in
            ["refresh_tokens", "refresh_families", "auth_codes", "users", "clients", "revoked_tokens"]
        {
            // Table names are constants.
            sqlx::query(&format!("DELETE FROM public.{table}"))
                .execute(&mut *tx)
                .await
                .map_err(Self::fail)?;
        }
        tx.commit().await.map_err(Self::fail)?;
        tracing::info!(
            tenants = ids.len(),
            "clients, users, codes and refresh tokens moved from the shared tables into the tenants' schemas"
        );
        Ok(())
    }
}

/// Copies one tenant's legacy rows from `public` into its schema (`{t}`): the first two take
/// the tenant's id as `$1`, the others follow the rows copied before them.
const COPY_INTO_TENANT: [&str; 6] = [
    "INSERT INTO {t}.clients (client_id, client_type, secret_hash, scopes, audiences, grant_types, \
     redirect_uris, roles, post_logout_redirect_uris, display_name, created_at) \
     SELECT client_id, client_type, secret_hash, scopes, audiences, grant_types, redirect_uris, roles, \
     post_logout_redirect_uris, display_name, created_at FROM public.clients WHERE tenant_id = $1 ON CONFLICT DO NOTHING",
    "INSERT INTO {t}.users (user_id, username, password_hash, name, email, roles, created_at) \
     SELECT user_id, username, password_hash, name, email, roles, created_at FROM public.users \
     WHERE tenant_id = $1 ON CONFLICT DO NOTHING",
    "INSERT INTO {t}.auth_codes SELECT c.code_hash, c.client_id, c.user_id, c.redirect_uri, c.scope, \
     c.code_challenge, c.nonce, c.auth_time, c.expires_at, c.used_at, c.access_jti, c.access_exp, c.family_id, \
     c.session_hash FROM public.auth_codes c WHERE c.client_id IN (SELECT client_id FROM {t}.clients) \
     AND c.user_id IN (SELECT user_id FROM {t}.users) ON CONFLICT DO NOTHING",
    "INSERT INTO {t}.refresh_families SELECT f.family_id, f.client_id, f.user_id, f.auth_time, f.created_at, \
     f.revoked_at, f.session_hash FROM public.refresh_families f WHERE f.client_id IN (SELECT client_id FROM {t}.clients) \
     AND f.user_id IN (SELECT user_id FROM {t}.users) ON CONFLICT DO NOTHING",
    "INSERT INTO {t}.refresh_tokens SELECT r.token_hash, r.family_id, r.scope, r.expires_at, r.used_at, \
     r.access_jti, r.access_exp FROM public.refresh_tokens r \
     WHERE r.family_id IN (SELECT family_id FROM {t}.refresh_families) ON CONFLICT DO NOTHING",
    "INSERT INTO {t}.revoked_tokens (jti, expires_at) SELECT jti, expires_at FROM public.revoked_tokens \
     ON CONFLICT DO NOTHING",
];

sql_store!(PgStore, sqlx::Postgres, {
    async fn drop_tenant(&self, tenant: &TenantKey) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(Self::fail)?;
        if !Self::forget_tenant(&mut tx, tenant).await? {
            return Ok(false);
        }
        self.tenants.drop(&mut tx, tenant).await.map_err(Self::fail)?;
        tx.commit().await.map_err(Self::fail)?;
        Ok(true)
    }

    async fn is_revoked(&self, tenant: &TenantKey, jti: &str) -> Result<bool, StoreError> {
        // The hot read of introspection, userinfo and token exchange, in one round trip: as the
        // service's role (a member of every tenant's), in the tenant's schema named from its
        // TenantKey, outside a transaction — rather than the four round trips of a transaction
        // scoped to the tenant's role. The table holds token ids and expiries only; every
        // other read and every write of a tenant's rows stays scoped to its role.
        let statement =
            format!("SELECT EXISTS (SELECT 1 FROM {}.revoked_tokens WHERE jti = $1)", tenant.schema());
        // Not kept prepared: the text differs per tenant, and sqlx keeps 100 statements per
        // connection; an unnamed statement still goes in one round trip.
        match sqlx::query_scalar::<_, bool>(&statement)
            .bind(jti)
            .persistent(false)
            .fetch_one(&self.pool)
            .await
        {
            Ok(hit) => Ok(hit),
            // No such schema or table: the tenant does not exist (any more), so neither does
            // the token.
            Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("3F000" | "42P01")) => {
                Ok(true)
            }
            Err(e) => Err(Self::fail(e)),
        }
    }

    async fn insert_client(&self, c: &super::StoredClient) -> Result<(), StoreError> {
        let tenant = c.tenant()?;
        self.ensure_tenant(&tenant).await?;
        // One transaction: the directory entry as the service's role, then the row as the
        // tenant's.
        let mut tx = self.pool.begin().await.map_err(Self::fail)?;
        sqlx::query("INSERT INTO client_directory (client_id, tenant_id) VALUES ($1, $2)")
            .bind(&c.client_id)
            .bind(tenant.canonical())
            .execute(&mut *tx)
            .await
            .map_err(|e| Self::conflict(e, || format!("client {}", c.client_id)))?;
        if !self.tenants.enter(&mut tx, &tenant).await.map_err(Self::fail)? {
            return Err(StoreError::NoTenant);
        }
        Self::insert_client_row(&mut tx, c).await?;
        tx.commit().await.map_err(Self::fail)
    }
});
