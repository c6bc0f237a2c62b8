//! SQLite plumbing both services share: opening with durable settings and embedded migrations,
//! opening a database sealed by the `barrier` (the `seal` table every schema has) in an order
//! that writes nothing with wrong shares, and a close that leaves a complete database file.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// Opening, migrating or reading the database failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteError {
    /// The file could not be opened.
    #[error("cannot open the database {path}")]
    Open {
        /// Where.
        path: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// Migrations failed.
    #[error("cannot migrate the database schema")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database query failed")]
    Query(#[source] sqlx::Error),
}

/// Opens (creating if missing) and migrates the database at `path`: WAL journal with
/// `synchronous=FULL` (a write is durable when it returns), foreign keys on, a busy timeout.
pub async fn open(path: &Path, migrator: &sqlx::migrate::Migrator) -> Result<SqlitePool, SqliteError> {
    let open_err = |source| SqliteError::Open { path: path.display().to_string(), source };
    let options = SqliteConnectOptions::from_str("sqlite://")
        .map_err(open_err)?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await.map_err(open_err)?;
    migrator.run(&pool).await.map_err(SqliteError::Migrate)?;
    Ok(pool)
}

/// What a start reads before it writes anything, through one read-only connection: the newest
/// migration the database records (to refuse a newer schema) and its sealed root key (to check
/// the shares). Both `None` when the file, the migrations table or the seal does not exist yet.
/// A start with the wrong shares or an old binary must leave the database as it was.
async fn peek(path: &Path) -> Result<(Option<i64>, Option<String>), SqliteError> {
    if !path.exists() {
        return Ok((None, None));
    }
    let open_err = |source| SqliteError::Open { path: path.display().to_string(), source };
    // The content cannot change through this connection (SQLite may still create its -wal and
    // -shm side files). Not `immutable`: that turns off locking and WAL reading, and a read
    // racing another connection's checkpoint then sees a malformed file.
    let options =
        SqliteConnectOptions::from_str("sqlite://").map_err(open_err)?.filename(path).read_only(true);
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.map_err(open_err)?;
    // A table that does not exist: a database that was never initialised.
    let absent =
        |e: &sqlx::Error| matches!(e, sqlx::Error::Database(e) if e.message().contains("no such table"));
    let version =
        match sqlx::query_scalar::<_, Option<i64>>("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&pool)
            .await
        {
            Ok(v) => v,
            Err(e) if absent(&e) => None,
            Err(e) => return Err(SqliteError::Query(e)),
        };
    let sealed = match sqlx::query("SELECT sealed_root FROM seal WHERE id = 1").fetch_optional(&pool).await {
        Ok(row) => row.map(|r| r.try_get("sealed_root").map_err(SqliteError::Query)).transpose()?,
        Err(e) if absent(&e) => None,
        Err(e) => return Err(SqliteError::Query(e)),
    };
    pool.close().await;
    Ok((version, sealed))
}

/// The newest migration the database at `path` records, read without writing anything
/// (`None` for a file that does not exist or was never migrated).
pub async fn schema_version(path: &Path) -> Result<Option<i64>, SqliteError> {
    Ok(peek(path).await?.0)
}

pub use crate::db::SealedOpenError;

/// Opens a sealed database in the one order that writes nothing unless the shares are right:
///
/// 1. combine the shares (too few, duplicated, altered or mixed shares are refused here);
/// 2. open an existing seal through a read-only connection;
/// 3. only then open the database for writing and migrate it;
/// 4. refuse a database whose `data_tables` hold rows but which has no seal;
/// 5. open the seal, or on first start create the root key and store its seal.
pub async fn open_sealed(
    path: &Path,
    migrator: &sqlx::migrate::Migrator,
    shares: &[barrier::Share],
    data_tables: &[&str],
) -> Result<(SqlitePool, barrier::RootKey), SealedOpenError> {
    let key = barrier::combine(shares).map_err(SealedOpenError::Unseal)?;
    let (version, sealed) = peek(path).await?;
    crate::db::check_schema_version(version, migrator)?;
    if let Some(json) = sealed {
        barrier::open_or_create(&key, Some(&json)).map_err(SealedOpenError::Unseal)?;
    }
    let pool = open(path, migrator).await?;
    let existing = sqlx::query("SELECT sealed_root FROM seal WHERE id = 1")
        .fetch_optional(&pool)
        .await
        .map_err(SqliteError::Query)?
        .map(|r| r.try_get::<String, _>("sealed_root"))
        .transpose()
        .map_err(SqliteError::Query)?;
    if existing.is_none() {
        for table in data_tables {
            // Table names are the caller's constants, never input.
            let row = sqlx::query(&format!("SELECT EXISTS (SELECT 1 FROM {table}) AS data"))
                .fetch_one(&pool)
                .await
                .map_err(SqliteError::Query)?;
            if row.try_get::<i64, _>("data").map_err(SqliteError::Query)? != 0 {
                return Err(SealedOpenError::SealMissing);
            }
        }
    }
    let (root, created) =
        barrier::open_or_create(&key, existing.as_deref()).map_err(SealedOpenError::Unseal)?;
    if let Some(json) = created {
        let now = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
        sqlx::query("INSERT INTO seal (id, barrier, sealed_root, created_at) VALUES (1, $1, $2, $3)")
            .bind(key.barrier().to_string())
            .bind(json)
            .bind(now)
            .execute(&pool)
            .await
            .map_err(SqliteError::Query)?;
        tracing::info!(barrier = %key.barrier(), path = %path.display(), "new root key sealed");
    }
    Ok((pool, root))
}

/// Checkpoints the WAL, then closes. sqlx's close returns before SQLite's own
/// checkpoint-on-close has run on the worker thread; checkpointing first makes the database
/// file complete when this returns.
pub async fn close(pool: &SqlitePool) {
    if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(pool).await {
        tracing::warn!(error = %e, "WAL checkpoint on close failed");
    }
    pool.close().await;
}
