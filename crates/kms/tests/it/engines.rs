//! The two storage engines as one test fixture: [`Backend`] is a fresh, empty key store on
//! SQLite (a temporary directory) or PostgreSQL (a fresh database on the test binary's server),
//! and [`on_both_engines!`] runs each named test function once per engine, so the store suite
//! is written once.
//!
//! Where PostgreSQL is not installed, `test_support::postgres::server()` prints a `SKIPPED:`
//! line (and fails under CI) and the PostgreSQL variant returns without asserting.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use barrier::Share;
use kms::config::StorageConfig;
use kms::{Kms, KmsError};
use service_kit::postgres::PostgresConfig;

/// Which engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A fresh key store's settings, and what a test needs to look inside it.
pub struct Backend {
    pub engine: Engine,
    pub storage: StorageConfig,
    _dir: tempfile::TempDir,
    server: Option<Arc<test_support::postgres::Server>>,
}

impl Backend {
    /// SQLite: `kms.db` in a fresh directory.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let storage = StorageConfig::sqlite(dir.path().join("kms.db"));
        Self { engine: Engine::Sqlite, storage, _dir: dir, server: None }
    }

    /// PostgreSQL: a fresh database owned by the service role; `None` (skipped loudly) where
    /// PostgreSQL is not installed.
    pub fn postgres() -> Option<Self> {
        let server = test_support::postgres::server()?;
        let storage = StorageConfig::postgres(server.fresh_database());
        Some(Self {
            engine: Engine::Postgres,
            storage,
            _dir: tempfile::tempdir().unwrap(),
            server: Some(server),
        })
    }

    /// Opens the KMS on this store.
    pub async fn open(&self, shares: &[Share]) -> Result<Kms, KmsError> {
        Kms::open(&self.storage, shares).await
    }

    /// The SQLite catalog's path.
    pub fn sqlite_path(&self) -> &Path {
        &self.storage.sqlite.as_ref().unwrap().path
    }

    /// The PostgreSQL settings.
    pub fn postgres_config(&self) -> &PostgresConfig {
        self.storage.postgres.as_ref().unwrap()
    }

    /// Runs `sql` on the catalog with full rights (SQLite: the file; PostgreSQL: the
    /// superuser), for a test's own checks and sabotage; returns the output (PostgreSQL) or "".
    pub async fn exec(&self, sql: &str) -> String {
        match self.engine {
            Engine::Sqlite => {
                let url = format!("sqlite://{}", self.sqlite_path().display());
                let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                sqlx::raw_sql(sql).execute(&pool).await.unwrap();
                pool.close().await;
                String::new()
            }
            Engine::Postgres => self.server.as_ref().unwrap().psql(&self.postgres_config().database, sql),
        }
    }

    /// A digest of everything stored, to prove that a refused start wrote nothing: SQLite's
    /// files (the catalog with any write-ahead log content, and every tenant file), or on
    /// PostgreSQL the rows of the catalog, the migrations, and the schemas and roles there are.
    pub async fn fingerprint(&self) -> Vec<u8> {
        let mut all = Vec::new();
        match self.engine {
            Engine::Sqlite => {
                let db = self.sqlite_path();
                let mut files = vec![db.to_owned(), PathBuf::from(format!("{}-wal", db.display()))];
                if let Ok(entries) = std::fs::read_dir(db.parent().unwrap().join("tenants")) {
                    let mut tenants: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
                    tenants.sort();
                    files.extend(tenants);
                }
                for file in files {
                    all.extend_from_slice(file.display().to_string().as_bytes());
                    all.extend_from_slice(&std::fs::read(file).unwrap_or_default());
                }
            }
            Engine::Postgres => {
                let text = self.exec(
                    "SELECT (SELECT string_agg(s::text, ',') FROM seal s) || '|' || \
                            (SELECT coalesce(string_agg(t::text, ',' ORDER BY id), '') FROM tenants t) || '|' || \
                            (SELECT coalesce(string_agg(u::text, ',' ORDER BY username), '') FROM kms_realm_users u) || '|' || \
                            (SELECT string_agg(version || ':' || encode(checksum, 'hex'), ',' ORDER BY version) FROM _sqlx_migrations) || '|' || \
                            (SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace) || '|' || \
                            (SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles)",
                )
                .await;
                all.extend_from_slice(text.as_bytes());
            }
        }
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &all).as_ref().to_vec()
    }
}

/// Runs each named `async fn(Backend)` of the calling module once on SQLite and once on
/// PostgreSQL, as the tests `sqlite::<name>` and `postgres::<name>`.
macro_rules! on_both_engines {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::engines::Backend::sqlite()).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(backend) = $crate::engines::Backend::postgres() {
                        super::$test(backend).await
                    }
                }
            )+
        }
    };
}
pub(crate) use on_both_engines;
