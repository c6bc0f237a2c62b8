//! The SQLite store: one file, WAL with `synchronous=FULL`, the migrations in `migrations/`
//! (`service_kit::sqlite::open_sealed`). Its statements are `super::sql`'s.

use std::path::Path;

use sqlx::sqlite::SqlitePool;

use super::StoreError;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl SqliteStore {
    /// Opens the database at `path` sealed by `shares`, returning the store and the unsealed
    /// root key (`service_kit::sqlite::open_sealed`: wrong shares write nothing).
    pub async fn open_sealed(
        path: &Path,
        shares: &[barrier::Share],
    ) -> Result<(Self, barrier::RootKey), service_kit::sqlite::SealedOpenError> {
        let (pool, root) =
            service_kit::sqlite::open_sealed(path, &MIGRATOR, shares, &super::DATA_TABLES).await?;
        Ok((Self { pool }, root))
    }

    /// A local file is unavailable only when no connection could be had in time.
    fn fail(e: sqlx::Error) -> StoreError {
        StoreError::classify(e, |e| matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed))
    }

    async fn close_pool(&self) {
        service_kit::sqlite::close(&self.pool).await;
    }
}

sql_store!(SqliteStore);
