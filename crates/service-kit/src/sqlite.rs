//! SQLite plumbing both services share: opening with durable settings and embedded migrations,
//! the `seal` table every schema has, reading the seal through a read-only connection, and a
//! close that leaves a complete database file.

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

/// Reads the sealed root key through a read-only connection, without migrating or writing: a
/// start with the wrong shares must leave the database as it was. `None` when the database or
/// its seal does not exist yet.
pub async fn peek_sealed_root(path: &Path) -> Result<Option<String>, SqliteError> {
    if !path.exists() {
        return Ok(None);
    }
    let open_err = |source| SqliteError::Open { path: path.display().to_string(), source };
    // The content cannot change through this connection (SQLite may still create its -wal and
    // -shm side files). Not `immutable`: that turns off locking and WAL reading, and a read
    // racing another connection's checkpoint then sees a malformed file.
    let options =
        SqliteConnectOptions::from_str("sqlite://").map_err(open_err)?.filename(path).read_only(true);
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.map_err(open_err)?;
    let sealed = match sqlx::query("SELECT sealed_root FROM seal WHERE id = 1").fetch_optional(&pool).await {
        Ok(row) => row.map(|r| r.try_get("sealed_root").map_err(SqliteError::Query)).transpose()?,
        // No seal table: a database that was never initialised.
        Err(sqlx::Error::Database(e)) if e.message().contains("no such table") => None,
        Err(e) => return Err(SqliteError::Query(e)),
    };
    pool.close().await;
    Ok(sealed)
}

/// The sealed root key of an open database.
pub async fn sealed_root(pool: &SqlitePool) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query("SELECT sealed_root FROM seal WHERE id = 1").fetch_optional(pool).await?;
    row.map(|r| r.try_get("sealed_root")).transpose()
}

/// Stores the sealed root key; fails (unique violation) if one exists.
pub async fn put_sealed_root(
    pool: &SqlitePool,
    barrier: &str,
    sealed: &str,
    now: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO seal (id, barrier, sealed_root, created_at) VALUES (1, $1, $2, $3)")
        .bind(barrier)
        .bind(sealed)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
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
