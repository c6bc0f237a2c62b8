//! The PostgreSQL store, which several Identity replicas share: the settings of
//! `storage.postgres` (the password only from a file), the migrations in
//! `migrations/postgres/`, a sealed open that is safe when replicas start at once
//! (`service_kit::postgres::open_sealed`), and outages told apart from bad queries
//! (`service_kit::postgres::is_unavailable` → `StoreError::Unavailable`, answered 503). Its
//! statements are `super::sql`'s.

use service_kit::postgres::PostgresConfig;
use sqlx::postgres::PgPool;

use super::StoreError;

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl PgStore {
    /// Connects with `config`, refuses a schema newer than this binary, migrates, and opens (or
    /// on first start creates) the seal with `shares`; wrong shares, a wrong password, an
    /// unreachable server or a newer schema fail before anything is written.
    pub async fn open_sealed(
        config: &PostgresConfig,
        shares: &[barrier::Share],
    ) -> Result<(Self, barrier::RootKey), service_kit::db::SealedOpenError> {
        let (pool, root) =
            service_kit::postgres::open_sealed(config, &MIGRATOR, shares, &super::DATA_TABLES).await?;
        Ok((Self { pool }, root))
    }

    /// The connection pool (for the `database` readiness watcher).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn fail(e: sqlx::Error) -> StoreError {
        StoreError::classify(e, service_kit::postgres::is_unavailable)
    }

    async fn close_pool(&self) {
        self.pool.close().await;
    }
}

sql_store!(PgStore);
