//! A namespace per tenant, the mechanics both services share (their stores decide what goes
//! in one): on PostgreSQL a schema `tenant_<32 hex>` owned by a NOLOGIN role of its own, entered
//! by a transaction that sets that role and `search_path` for itself only; on SQLite a database
//! file `<32 hex>.db` in a private directory, with a small pool per open tenant. Every name comes
//! from [`TenantKey`](crate::db::TenantKey); nothing here takes text from a request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sqlx::postgres::{PgPool, Postgres};
use sqlx::sqlite::SqlitePool;

use crate::db::{Ident, TenantKey};

/// SQLSTATE of "role does not exist" when a transaction switches to a tenant's role.
const NO_SUCH_ROLE: &str = "22023";

/// A PostgreSQL database's tenant schemas and roles.
#[derive(Debug, Clone)]
pub struct PgTenants {
    database: Ident,
}

impl PgTenants {
    /// The tenants of `database` (its name is part of every role name: roles are cluster-wide).
    pub fn new(database: Ident) -> Self {
        Self { database }
    }

    /// The tenant's role.
    pub fn role(&self, key: &TenantKey) -> String {
        key.role(&self.database)
    }

    /// A transaction inside `key`'s schema, as its role; `None` when the tenant's role does not
    /// exist (no such tenant). PostgreSQL checks every statement of it against that role, which
    /// owns its own schema and nothing else.
    pub async fn transaction(
        &self,
        pool: &PgPool,
        key: &TenantKey,
    ) -> Result<Option<sqlx::Transaction<'static, Postgres>>, sqlx::Error> {
        let mut tx = pool.begin().await?;
        Ok(if self.enter(&mut tx, key).await? { Some(tx) } else { None })
    }

    /// Switches the transaction `tx` into `key`'s schema, as its role, for the rest of it (what
    /// [`Self::transaction`] begins with; for a transaction that first wrote as the service's
    /// role); `false` when the tenant's role does not exist, which aborts `tx`.
    pub async fn enter(&self, tx: &mut sqlx::PgConnection, key: &TenantKey) -> Result<bool, sqlx::Error> {
        match enter(tx, &self.role(key), &key.schema()).await {
            Ok(()) => Ok(true),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(NO_SUCH_ROLE) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates `key`'s role and schema in `tx` (the caller's transaction, so a failure leaves
    /// nothing), then switches `tx` to that role and runs `migrator` there, so the tables are the
    /// role's own. The migrator must have locking off ([`tenant_migrator`]). A role or schema that
    /// exists already is [`NamespaceError::Exists`].
    pub async fn create(
        &self,
        tx: &mut sqlx::PgConnection,
        key: &TenantKey,
        migrator: &sqlx::migrate::Migrator,
    ) -> Result<(), NamespaceError> {
        let (role, schema) = (self.role(key), key.schema());
        // The names are TenantKey's (a fixed prefix and 32 hex digits) and the validated
        // database identifier: never text from a request.
        let ddl = format!(
            "CREATE ROLE {role} NOLOGIN; \
             GRANT {role} TO CURRENT_USER; \
             CREATE SCHEMA {schema} AUTHORIZATION {role}; \
             REVOKE ALL ON SCHEMA {schema} FROM PUBLIC"
        );
        simple(tx, &ddl).await.map_err(|e| {
            if duplicate_object(&e) { NamespaceError::Exists } else { NamespaceError::Query(e) }
        })?;
        enter(tx, &role, &schema).await.map_err(NamespaceError::Query)?;
        migrate(migrator, tx).await.map_err(NamespaceError::Migrate)
    }

    /// Drops `key`'s schema (with everything in it) and role in `tx`; absent ones are no error.
    pub async fn drop(&self, tx: &mut sqlx::PgConnection, key: &TenantKey) -> Result<(), sqlx::Error> {
        let ddl =
            format!("DROP SCHEMA IF EXISTS {} CASCADE; DROP ROLE IF EXISTS {}", key.schema(), self.role(key));
        simple(tx, &ddl).await
    }

    /// Brings the schemas of `keys` up to `migrator`: refuses any that is newer than this binary
    /// (before migrating one), then migrates those behind, one transaction each under the
    /// advisory lock `lock` (replicas starting at once take turns). A tenant without its role
    /// (its schema was removed by hand) is [`NamespaceError::Missing`].
    pub async fn migrate_all(
        &self,
        pool: &PgPool,
        keys: &[TenantKey],
        migrator: &sqlx::migrate::Migrator,
        lock: i64,
    ) -> Result<(), NamespaceError> {
        let known = migrator.iter().map(|m| m.version).max();
        let mut behind = Vec::new();
        for key in keys {
            let Some(mut tx) = self.transaction(pool, key).await.map_err(NamespaceError::Query)? else {
                return Err(NamespaceError::Missing { role: self.role(key) });
            };
            let applied = applied_version(&mut tx).await.map_err(NamespaceError::Query)?;
            tx.rollback().await.map_err(NamespaceError::Query)?;
            crate::db::check_schema_version(applied, migrator)?;
            if applied < known {
                behind.push(*key);
            }
        }
        for key in behind {
            let Some(mut tx) = self.transaction(pool, &key).await.map_err(NamespaceError::Query)? else {
                continue;
            };
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(lock)
                .execute(&mut *tx)
                .await
                .map_err(NamespaceError::Query)?;
            migrate(migrator, &mut tx).await.map_err(NamespaceError::Migrate)?;
            tx.commit().await.map_err(NamespaceError::Query)?;
        }
        Ok(())
    }
}

/// A tenant namespace could not be made, migrated or found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NamespaceError {
    /// The role or schema exists already (another replica made it, or a leftover).
    #[error("the tenant's namespace exists already")]
    Exists,
    /// A tenant in the catalog has no role: its schema was removed by hand.
    #[error(
        "a tenant has no role {role}: its schema was removed by hand; drop the tenant or restore a backup"
    )]
    Missing {
        /// The role that should exist.
        role: String,
    },
    /// The schema is newer than this binary.
    #[error(transparent)]
    SchemaTooNew(#[from] crate::db::SchemaTooNew),
    /// A tenant migration failed.
    #[error("cannot migrate a tenant's schema")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A statement failed.
    #[error("database query failed")]
    Query(#[source] sqlx::Error),
}

impl NamespaceError {
    /// The driver error inside, if this is one (to tell an outage from a bad query).
    pub fn sqlx(&self) -> Option<&sqlx::Error> {
        match self {
            Self::Query(e) => Some(e),
            _ => None,
        }
    }
}

/// A tenant migrator: run inside the caller's transaction, so without sqlx's session-level
/// advisory lock (which an error would leave held on the pooled connection). A new schema is
/// invisible to everyone else until its transaction commits; [`PgTenants::migrate_all`] takes a
/// transaction-level lock instead.
pub fn tenant_migrator(mut migrator: sqlx::migrate::Migrator) -> sqlx::migrate::Migrator {
    migrator.set_locking(false);
    migrator
}

/// Sets, for the transaction only, the role and `search_path` (`set_config(…, true)`, the
/// function form of `SET LOCAL`, with the names bound as parameters).
async fn enter(tx: &mut sqlx::PgConnection, role: &str, schema: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('role', $1, true), set_config('search_path', $2, true)")
        .bind(role)
        .bind(schema)
        .execute(&mut *tx)
        .await
        .map(drop)
}

/// The newest migration the transaction's schema records (`None` before the first).
async fn applied_version(tx: &mut sqlx::PgConnection) -> Result<Option<i64>, sqlx::Error> {
    let table: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text").fetch_one(&mut *tx).await?;
    if table.is_none() {
        return Ok(None);
    }
    sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success").fetch_one(&mut *tx).await
}

/// Runs statements without parameters (several, separated by `;`) in `tx`.
pub async fn simple(tx: &mut sqlx::PgConnection, statements: &str) -> Result<(), sqlx::Error> {
    // Through `Executor::execute`, whose boxed future is `Send` for any lifetime (sqlx's
    // `RawSql::execute` is not, inside the stores' `Send` futures).
    sqlx::Executor::execute(tx, sqlx::raw_sql(statements)).await.map(drop)
}

/// Runs `migrator` in `tx`. (`run_direct` is `run` for a connection in hand; `run` with a
/// transaction's connection trips the compiler's "Acquire is not general enough" inside the
/// `Send` futures of the stores' methods, which is what sqlx provides it for.)
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

/// The SQLite files of the tenants, `<dir>/<32 hex>.db`, each opened (created and migrated) on
/// first use with the durable settings of [`crate::sqlite::open`] and kept open. Whether a
/// tenant exists is the caller's catalog's business: this only opens, caches and removes files.
pub struct SqliteTenants {
    dir: PathBuf,
    migrator: &'static sqlx::migrate::Migrator,
    open: Mutex<HashMap<TenantKey, SqlitePool>>,
    /// Held while a file is opened or removed, so one tenant never gets two pools.
    opening: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SqliteTenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteTenants").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// A tenant's file or its directory could not be made, opened or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TenantFileError {
    /// A file system operation failed.
    #[error("cannot {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Opening or migrating the file failed.
    #[error(transparent)]
    Sqlite(#[from] crate::sqlite::SqliteError),
    /// The file was written by a newer binary.
    #[error("the tenant database {path} cannot be used by this release")]
    SchemaTooNew {
        /// The file.
        path: String,
        /// Its version and ours.
        #[source]
        source: crate::db::SchemaTooNew,
    },
}

impl SqliteTenants {
    /// The tenants' files in `dir` (made, private, on first use), migrated by `migrator`.
    pub fn new(dir: PathBuf, migrator: &'static sqlx::migrate::Migrator) -> Self {
        Self { dir, migrator, open: Mutex::default(), opening: tokio::sync::Mutex::new(()) }
    }

    /// Where `key`'s file is.
    pub fn path(&self, key: &TenantKey) -> PathBuf {
        self.dir.join(key.file_name())
    }

    /// The open pool of `key`'s file, if it is open.
    pub fn cached(&self, key: &TenantKey) -> Option<SqlitePool> {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    /// Refuses, at start, any file of `keys` written by a newer binary (read-only: nothing is
    /// written, and absent files are no error).
    pub async fn check_versions(&self, keys: &[TenantKey]) -> Result<(), TenantFileError> {
        for key in keys {
            self.check_version(&self.path(key)).await?;
        }
        Ok(())
    }

    async fn check_version(&self, path: &Path) -> Result<(), TenantFileError> {
        crate::db::check_schema_version(crate::sqlite::schema_version(path).await?, self.migrator)
            .map_err(|source| TenantFileError::SchemaTooNew { path: path.display().to_string(), source })
    }

    /// The pool of `key`'s file, opening (creating, migrating) it if need be. Call it only for
    /// a tenant the catalog knows.
    pub async fn pool(&self, key: &TenantKey) -> Result<SqlitePool, TenantFileError> {
        if let Some(pool) = self.cached(key) {
            return Ok(pool);
        }
        let _opening = self.opening.lock().await;
        if let Some(pool) = self.cached(key) {
            return Ok(pool);
        }
        make_private_dir(&self.dir)?;
        let path = self.path(key);
        // Refused before anything is written to it, like the catalog.
        self.check_version(&path).await?;
        let pool = crate::sqlite::open(&path, self.migrator).await?;
        self.open.lock().unwrap_or_else(|e| e.into_inner()).insert(*key, pool.clone());
        Ok(pool)
    }

    /// Closes `key`'s file if it is open (the next [`Self::pool`] opens it again).
    pub async fn close_file(&self, key: &TenantKey) {
        let _opening = self.opening.lock().await;
        self.forget(key).await;
    }

    async fn forget(&self, key: &TenantKey) {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
        if let Some(pool) = open {
            pool.close().await;
        }
    }

    /// Closes and removes `key`'s file with its WAL side files; an absent file is no error.
    pub async fn remove(&self, key: &TenantKey) -> Result<(), TenantFileError> {
        let _opening = self.opening.lock().await;
        self.forget(key).await;
        let path = self.path(key);
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(TenantFileError::Io {
                        action: "remove",
                        path: file.display().to_string(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Checkpoints and closes every open file.
    pub async fn close(&self) {
        let files: Vec<SqlitePool> =
            self.open.lock().unwrap_or_else(|e| e.into_inner()).drain().map(|(_, pool)| pool).collect();
        for file in files {
            crate::sqlite::close(&file).await;
        }
    }
}

fn make_private_dir(dir: &Path) -> Result<(), TenantFileError> {
    let err = |action, source| TenantFileError::Io { action, path: dir.display().to_string(), source };
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| err("create the directory", e))?;
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(|e| err("restrict the directory", e))
}
