//! The SQLite store: the catalog in the configured file (WAL, `synchronous=FULL`, the migrations
//! in `migrations/`, `service_kit::sqlite::open_sealed`), and each tenant's namespace in a file
//! of its own, `<stem>-tenants/<32 hex>.db` beside it (`identity.db` → `identity-tenants/`; the
//! name from `TenantKey::file_name`), migrated by `migrations/tenant/sqlite/`. A tenant's
//! connection sees only its own file: another tenant's tables are not there to be named.
//!
//! A client's row (in its tenant's file) and its directory entry (in the catalog) are two
//! files, so not one transaction: the row is written first and the entry second, under a lock
//! that makes registrations in this process take turns (one process owns a SQLite database). A
//! crash in between leaves a row no lookup reaches (lookups go through the directory), which the
//! next registration of that client replaces.
//!
//! Databases written before tenant namespaces kept every tenant's rows in the catalog's
//! `clients`, `users`, `auth_codes`, `refresh_families`, `refresh_tokens` and `revoked_tokens`.
//! Opening one copies those rows into their tenants' files (codes and families by their
//! client's tenant; a code or family whose user is of another tenant is not copied, as no such
//! pair can sign in any more; revocations into every tenant), then empties the old tables;
//! rows already copied by an interrupted start are kept, so a second start completes the move.

use std::path::{Path, PathBuf};

use service_kit::tenancy::SqliteTenants;
use sqlx::sqlite::{Sqlite, SqlitePool};

use super::{OpenError, StoreError, TenantKey};

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    files: SqliteTenants,
    /// Client registrations take turns (see the module documentation).
    registering: tokio::sync::Mutex<()>,
    /// The revoked tokens in memory (`super::revoked`): every revocation passes through here.
    revoked: std::sync::Arc<super::revoked::RevokedSet>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
static TENANT_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/tenant/sqlite");

/// The legacy shared tables, in the order their rows are deleted (references first).
const LEGACY_TABLES: [&str; 6] =
    ["refresh_tokens", "refresh_families", "auth_codes", "users", "clients", "revoked_tokens"];

impl SqliteStore {
    /// Opens the database at `path` sealed by `shares`, returning the store and the unsealed
    /// root key (`service_kit::sqlite::open_sealed`: wrong shares write nothing), then moves the
    /// rows an older version kept in the catalog into the tenants' files.
    pub async fn open_sealed(
        path: &Path,
        shares: &[barrier::Share],
    ) -> Result<(Self, barrier::RootKey), OpenError> {
        let (pool, root) = service_kit::sqlite::open_sealed(path, &MIGRATOR, shares, &super::DATA_TABLES)
            .await
            .map_err(OpenError::Sealed)?;
        let store = Self {
            pool,
            files: SqliteTenants::new(Self::tenants_dir(path), &TENANT_MIGRATOR),
            registering: tokio::sync::Mutex::new(()),
            revoked: std::sync::Arc::default(),
        };
        let prepared = async {
            let keys = store.tenant_keys().await?;
            store.files.check_versions(&keys).await?;
            store.move_legacy_rows().await?;
            store.load_revocations().await
        };
        prepared.await.map_err(OpenError::Tenants)?;
        Ok((store, root))
    }

    /// The directory of the tenants' files for the catalog at `path`.
    pub fn tenants_dir(path: &Path) -> PathBuf {
        let stem = path.file_stem().map_or_else(|| "identity".into(), |s| s.to_string_lossy());
        path.parent().unwrap_or(Path::new(".")).join(format!("{stem}-tenants"))
    }

    /// The pool of `tenant`'s file, `None` for a tenant that does not exist (no file is made
    /// for it). Tests use it to show what a tenant's connection can reach.
    pub async fn tenant_pool(&self, tenant: &TenantKey) -> Result<Option<SqlitePool>, StoreError> {
        if let Some(pool) = self.files.cached(tenant) {
            return Ok(Some(pool));
        }
        let known: Option<String> = sqlx::query_scalar("SELECT tenant_id FROM tenants WHERE tenant_id = $1")
            .bind(tenant.canonical())
            .fetch_optional(&self.pool)
            .await
            .map_err(Self::fail)?;
        if known.is_none() {
            return Ok(None);
        }
        Ok(Some(self.files.pool(tenant).await?))
    }

    fn catalog(&self) -> &SqlitePool {
        &self.pool
    }

    async fn read_scope(
        &self,
        tenant: &TenantKey,
    ) -> Result<Option<sqlx::pool::PoolConnection<Sqlite>>, StoreError> {
        let Some(pool) = self.tenant_pool(tenant).await? else { return Ok(None) };
        Ok(Some(pool.acquire().await.map_err(Self::fail)?))
    }

    async fn end_read(_scope: sqlx::pool::PoolConnection<Sqlite>) -> Result<(), StoreError> {
        // Reads ran outside a transaction: nothing to finish.
        Ok(())
    }

    async fn write_scope(
        &self,
        tenant: &TenantKey,
    ) -> Result<Option<sqlx::Transaction<'static, Sqlite>>, StoreError> {
        let Some(pool) = self.tenant_pool(tenant).await? else { return Ok(None) };
        Ok(Some(pool.begin().await.map_err(Self::fail)?))
    }

    /// Records the tenant in the catalog (first), then opens (creating, migrating) its file.
    async fn ensure_tenant(&self, tenant: &TenantKey) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO tenants (tenant_id, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(tenant.canonical())
            .bind(super::now())
            .execute(&self.pool)
            .await
            .map_err(Self::fail)?;
        self.files.pool(tenant).await?;
        self.revoked.know(*tenant);
        Ok(())
    }

    /// A committed revocation (or drop) into the in-memory set.
    fn remember(&self, change: super::revoked::Change) {
        self.revoked.apply(change);
    }

    /// Loads every tenant's unexpired revocations into the in-memory set.
    async fn load_revocations(&self) -> Result<(), StoreError> {
        let tenants = self.tenant_keys().await?;
        let mut all = Vec::new();
        for tenant in &tenants {
            let pool = self.files.pool(tenant).await?;
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT jti, expires_at FROM revoked_tokens WHERE expires_at >= $1")
                    .bind(super::now())
                    .fetch_all(&pool)
                    .await
                    .map_err(Self::fail)?;
            all.extend(rows.into_iter().map(|(jti, exp)| ((*tenant, jti), exp)));
        }
        self.revoked.load(tenants, all);
        Ok(())
    }

    /// A local file is unavailable only when no connection could be had in time.
    fn fail(e: sqlx::Error) -> StoreError {
        StoreError::classify(e, |e| matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed))
    }

    async fn close_pool(&self) {
        self.files.close().await;
        service_kit::sqlite::close(&self.pool).await;
    }

    /// See the module documentation.
    async fn move_legacy_rows(&self) -> Result<(), StoreError> {
        let tenants: Vec<String> =
            sqlx::query_scalar("SELECT tenant_id FROM clients UNION SELECT tenant_id FROM users")
                .fetch_all(&self.pool)
                .await
                .map_err(Self::fail)?;
        if tenants.is_empty() {
            return Ok(());
        }
        for id in &tenants {
            let tenant = TenantKey::parse(id)?;
            self.ensure_tenant(&tenant).await?;
            // One connection with the tenant's file attached as `t`: the copy is plain SQL. The
            // path is bound as a parameter, never written into the statement.
            let mut conn = self.pool.acquire().await.map_err(Self::fail)?;
            let path = self.files.path(&tenant);
            sqlx::query("ATTACH DATABASE $1 AS t")
                .bind(path.display().to_string())
                .execute(&mut *conn)
                .await
                .map_err(Self::fail)?;
            let copied = async {
                for (i, statement) in COPY_INTO_TENANT.iter().enumerate() {
                    let query = sqlx::query(statement);
                    let query = if i < 2 { query.bind(id) } else { query };
                    query.execute(&mut *conn).await?;
                }
                sqlx::query(
                    "INSERT OR IGNORE INTO client_directory (client_id, tenant_id) \
                     SELECT client_id, tenant_id FROM main.clients WHERE tenant_id = $1",
                )
                .bind(id)
                .execute(&mut *conn)
                .await?;
                Ok::<_, sqlx::Error>(())
            }
            .await;
            let detached = sqlx::query("DETACH DATABASE t").execute(&mut *conn).await;
            copied.map_err(Self::fail)?;
            detached.map_err(Self::fail)?;
            tracing::info!(tenant = %id, "clients, users, codes and refresh tokens moved from the catalog into the tenant's own database file");
        }
        let mut tx = self.pool.begin().await.map_err(Self::fail)?;
        for table in LEGACY_TABLES {
            // Table names are constants.
            sqlx::query(&format!("DELETE FROM {table}")).execute(&mut *tx).await.map_err(Self::fail)?;
        }
        tx.commit().await.map_err(Self::fail)
    }
}

/// Copies one tenant's legacy rows from the catalog (`main`) into its attached file (`t`): the
/// first two take the tenant's id as `$1`, the others follow the rows copied before them.
/// Revocations go to every tenant: they carry no tenant.
const COPY_INTO_TENANT: [&str; 6] = [
    "INSERT OR IGNORE INTO t.clients (client_id, client_type, secret_hash, scopes, audiences, grant_types, \
     redirect_uris, roles, post_logout_redirect_uris, display_name, created_at) \
     SELECT client_id, client_type, secret_hash, scopes, audiences, grant_types, redirect_uris, roles, \
     post_logout_redirect_uris, display_name, created_at FROM main.clients WHERE tenant_id = $1",
    "INSERT OR IGNORE INTO t.users (user_id, username, password_hash, name, email, roles, created_at) \
     SELECT user_id, username, password_hash, name, email, roles, created_at FROM main.users WHERE tenant_id = $1",
    "INSERT OR IGNORE INTO t.auth_codes SELECT c.code_hash, c.client_id, c.user_id, c.redirect_uri, c.scope, \
     c.code_challenge, c.nonce, c.auth_time, c.expires_at, c.used_at, c.access_jti, c.access_exp, c.family_id, \
     c.session_hash FROM main.auth_codes c \
     WHERE c.client_id IN (SELECT client_id FROM t.clients) AND c.user_id IN (SELECT user_id FROM t.users)",
    "INSERT OR IGNORE INTO t.refresh_families SELECT f.family_id, f.client_id, f.user_id, f.auth_time, \
     f.created_at, f.revoked_at, f.session_hash FROM main.refresh_families f \
     WHERE f.client_id IN (SELECT client_id FROM t.clients) AND f.user_id IN (SELECT user_id FROM t.users)",
    "INSERT OR IGNORE INTO t.refresh_tokens SELECT r.token_hash, r.family_id, r.scope, r.expires_at, r.used_at, \
     r.access_jti, r.access_exp FROM main.refresh_tokens r \
     WHERE r.family_id IN (SELECT family_id FROM t.refresh_families)",
    "INSERT OR IGNORE INTO t.revoked_tokens (jti, expires_at) SELECT jti, expires_at FROM main.revoked_tokens",
];

sql_store!(SqliteStore, sqlx::Sqlite, {
    async fn drop_tenant(&self, tenant: &TenantKey) -> Result<bool, StoreError> {
        let _registering = self.registering.lock().await;
        let mut tx = self.pool.begin().await.map_err(Self::fail)?;
        if !Self::forget_tenant(&mut tx, tenant).await? {
            return Ok(false);
        }
        // The file goes first: if it cannot, the catalog rows stay and the drop can be retried.
        self.files.remove(tenant).await?;
        tx.commit().await.map_err(Self::fail)?;
        self.remember(super::revoked::Change::Dropped(*tenant));
        Ok(true)
    }

    async fn is_revoked(&self, tenant: &TenantKey, jti: &str) -> Result<bool, StoreError> {
        match self.revoked.lookup(tenant, jti) {
            super::revoked::Answer::Revoked => return Ok(true),
            super::revoked::Answer::Live => return Ok(false),
            super::revoked::Answer::Unknown => {}
        }
        // A token of a tenant that does not exist (any more) is as good as revoked.
        let Some(pool) = self.tenant_pool(tenant).await? else { return Ok(true) };
        self.revoked.know(*tenant);
        let hit: Option<String> = sqlx::query_scalar("SELECT jti FROM revoked_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(&pool)
            .await
            .map_err(Self::fail)?;
        Ok(hit.is_some())
    }

    async fn insert_client(&self, c: &super::StoredClient) -> Result<(), StoreError> {
        let tenant = c.tenant()?;
        let _registering = self.registering.lock().await;
        let conflict = || StoreError::Conflict(format!("client {}", c.client_id));
        if self.client_tenant(&c.client_id).await?.is_some() {
            return Err(conflict());
        }
        self.ensure_tenant(&tenant).await?;
        let Some(mut tx) = self.write_scope(&tenant).await? else { return Err(StoreError::NoTenant) };
        // A row left by a registration that crashed before its directory entry is replaced.
        sqlx::query("DELETE FROM clients WHERE client_id = $1")
            .bind(&c.client_id)
            .execute(&mut *tx)
            .await
            .map_err(Self::fail)?;
        Self::insert_client_row(&mut tx, c).await?;
        tx.commit().await.map_err(Self::fail)?;
        sqlx::query("INSERT INTO client_directory (client_id, tenant_id) VALUES ($1, $2)")
            .bind(&c.client_id)
            .bind(tenant.canonical())
            .execute(&self.pool)
            .await
            .map_err(|e| Self::conflict(e, || format!("client {}", c.client_id)))?;
        Ok(())
    }
});
