//! PostgreSQL plumbing both services share: the `storage.postgres` settings (the password only
//! from a file), a connection pool whose failures become named errors, migrations that refuse a
//! schema newer than the binary, a sealed open that writes nothing with wrong shares and lets
//! two replicas initialise one database at once, and a readiness watcher for `readyz`.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Deserialize;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::db::{SealedOpenError, check_schema_version};
use crate::health::Dependency;
use crate::secret::{SecretFileError, read_secret_file};

/// `storage.postgres:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Host name or address, or an absolute directory holding the server's Unix socket.
    pub host: String,
    /// TCP port (also names the socket file).
    #[serde(default = "default_port")]
    pub port: u16,
    /// Database name.
    pub database: String,
    /// Role to sign in as.
    pub user: String,
    /// File holding the role's password (a Docker secret). Never the URL or the environment.
    pub password_file: PathBuf,
    /// Pool size.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How long a request waits for a connection before it is answered 503.
    #[serde(default = "default_acquire_timeout", with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// The server cancels a statement running longer than this.
    #[serde(default = "default_statement_timeout", with = "humantime_serde")]
    pub statement_timeout: Duration,
}

fn default_port() -> u16 {
    5432
}
fn default_max_connections() -> u32 {
    8
}
fn default_acquire_timeout() -> Duration {
    Duration::from_secs(3)
}
fn default_statement_timeout() -> Duration {
    Duration::from_secs(10)
}

impl PostgresConfig {
    /// `user@host:port/database`, for messages (no password, ever).
    pub fn target(&self) -> String {
        format!("{}@{}:{}/{}", self.user, self.host, self.port, self.database)
    }

    /// Checks what can be checked without connecting.
    pub fn validate(&self, key: &str, v: &mut crate::Validator) {
        v.check(!self.host.is_empty(), format!("{key}.host"), "must name a host or a socket directory");
        v.check(
            crate::db::Ident::new(&self.database).is_ok(),
            format!("{key}.database"),
            "must be a plain identifier (lowercase letters, digits, _; at most 30)",
        );
        v.check(!self.user.is_empty(), format!("{key}.user"), "must name a role");
        v.check(self.max_connections >= 1, format!("{key}.max_connections"), "must be at least 1");
    }
}

/// Connecting to, migrating or querying PostgreSQL failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The password file could not be read.
    #[error("cannot read the PostgreSQL password")]
    Password(#[from] SecretFileError),
    /// The server refused the role or its password.
    #[error(
        "PostgreSQL at {target} refused the password: the password file does not hold the role's password; fix the file (the Docker secret postgres_password) or reset the demo"
    )]
    Auth {
        /// `user@host:port/database`.
        target: String,
    },
    /// The database does not exist.
    #[error("PostgreSQL at {target} has no such database: create it, or fix storage.postgres.database")]
    NoDatabase {
        /// `user@host:port/database`.
        target: String,
    },
    /// No connection could be made.
    #[error(
        "cannot reach PostgreSQL at {target}: is the server running, and are storage.postgres.host and port right?"
    )]
    Unreachable {
        /// `user@host:port/database`.
        target: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// Migrations failed.
    #[error("cannot migrate the database schema at {target}")]
    Migrate {
        /// `user@host:port/database`.
        target: String,
        /// Why.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("database query failed")]
    Query(#[source] sqlx::Error),
}

/// Whether `e` means the database cannot be reached now (answer 503 and let `readyz` say so),
/// rather than that the query or the data is wrong.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            // 08: connection exception; 57P01-03: shutdown, crash, cannot connect now;
            // 53300: too many connections; 57014: statement timeout (a stuck server).
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "53300" | "57014")
        }),
        _ => false,
    }
}

fn classify(target: String, e: sqlx::Error) -> PostgresError {
    if let sqlx::Error::Database(db) = &e {
        match db.code().as_deref() {
            Some("28P01" | "28000") => return PostgresError::Auth { target },
            Some("3D000") => return PostgresError::NoDatabase { target },
            _ => {}
        }
    }
    if is_unavailable(&e) {
        PostgresError::Unreachable { target, source: e }
    } else {
        PostgresError::Query(e)
    }
}

/// The pool's connection options (the password read from its file now).
pub fn connect_options(config: &PostgresConfig) -> Result<PgConnectOptions, PostgresError> {
    let password = read_secret_file(&config.password_file)?;
    let mut options = PgConnectOptions::new()
        .port(config.port)
        .database(&config.database)
        .username(&config.user)
        .password(password.expose_secret())
        .application_name("demo-service")
        .options([("statement_timeout", config.statement_timeout.as_millis().to_string())]);
    options =
        if config.host.starts_with('/') { options.socket(&config.host) } else { options.host(&config.host) };
    Ok(options)
}

/// Opens a pool and one connection (so that a wrong password or an unreachable server fails the
/// start with its named error, not the first request).
pub async fn connect(config: &PostgresConfig) -> Result<PgPool, PostgresError> {
    let options = connect_options(config)?;
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .connect_with(options)
        .await
        .map_err(|e| classify(config.target(), e))
}

/// The newest migration recorded in the current schema, `None` when none ran yet. Reads only.
pub async fn applied_version(pool: &PgPool) -> Result<Option<i64>, sqlx::Error> {
    let exists: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text").fetch_one(pool).await?;
    if exists.is_none() {
        return Ok(None);
    }
    sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success").fetch_one(pool).await
}

/// Refuses a schema newer than `migrator`, then migrates (sqlx holds an advisory lock, so
/// replicas starting together migrate once).
pub async fn migrate(
    pool: &PgPool,
    migrator: &sqlx::migrate::Migrator,
    target: &str,
) -> Result<(), SealedOpenError> {
    let applied = applied_version(pool).await.map_err(PostgresError::Query)?;
    check_schema_version(applied, migrator)?;
    migrator
        .run(pool)
        .await
        .map_err(|source| PostgresError::Migrate { target: target.to_owned(), source })?;
    Ok(())
}

/// Opens a sealed PostgreSQL database, in the order that writes nothing unless the shares are
/// right and the schema is one this binary knows (as `crate::sqlite::open_sealed` does):
/// combine the shares, read an existing seal and check it, check the schema version, migrate,
/// refuse data without a seal, then open the seal or create it. Two replicas creating the seal
/// at once: one insert wins, the other opens the winner's seal.
pub async fn open_sealed(
    config: &PostgresConfig,
    migrator: &sqlx::migrate::Migrator,
    shares: &[barrier::Share],
    data_tables: &[&str],
) -> Result<(PgPool, barrier::RootKey), SealedOpenError> {
    let key = barrier::combine(shares).map_err(SealedOpenError::Unseal)?;
    let pool = connect(config).await?;
    let applied = applied_version(&pool).await.map_err(PostgresError::Query)?;
    check_schema_version(applied, migrator)?;
    if applied.is_some()
        && let Some(json) = read_seal(&pool).await?
    {
        barrier::open_or_create(&key, Some(&json)).map_err(SealedOpenError::Unseal)?;
    }
    migrate(&pool, migrator, &config.target()).await?;
    let mut existing = read_seal(&pool).await?;
    if existing.is_none() {
        for table in data_tables {
            // Table names are the caller's constants, never input.
            let any: bool = sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {table})"))
                .fetch_one(&pool)
                .await
                .map_err(PostgresError::Query)?;
            if any {
                // Another replica may have sealed and written data since the read above: its
                // seal was committed before its data, so reading again finds it if so.
                existing = read_seal(&pool).await?;
                if existing.is_none() {
                    return Err(SealedOpenError::SealMissing);
                }
                break;
            }
        }
    }
    let (root, created) =
        barrier::open_or_create(&key, existing.as_deref()).map_err(SealedOpenError::Unseal)?;
    let Some(json) = created else { return Ok((pool, root)) };
    let now = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    let inserted = sqlx::query(
        "INSERT INTO seal (id, barrier, sealed_root, created_at) VALUES (1, $1, $2, $3) \
         ON CONFLICT (id) DO NOTHING RETURNING id",
    )
    .bind(key.barrier().to_string())
    .bind(json)
    .bind(now)
    .fetch_optional(&pool)
    .await
    .map_err(PostgresError::Query)?;
    if inserted.is_some() {
        tracing::info!(barrier = %key.barrier(), target = %config.target(), "new root key sealed");
        return Ok((pool, root));
    }
    // Another replica sealed first: its root key is the database's.
    let json = read_seal(&pool).await?.ok_or(SealedOpenError::SealMissing)?;
    let (root, _) = barrier::open_or_create(&key, Some(&json)).map_err(SealedOpenError::Unseal)?;
    Ok((pool, root))
}

async fn read_seal(pool: &PgPool) -> Result<Option<String>, PostgresError> {
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass('seal')::text")
        .fetch_one(pool)
        .await
        .map_err(PostgresError::Query)?;
    if exists.is_none() {
        return Ok(None);
    }
    sqlx::query("SELECT sealed_root FROM seal WHERE id = 1")
        .fetch_optional(pool)
        .await
        .map_err(PostgresError::Query)?
        .map(|r| r.try_get::<String, _>("sealed_root"))
        .transpose()
        .map_err(PostgresError::Query)
}

/// Keeps `dependency` (the `database` line of `readyz`) true: a `SELECT 1` every `every`, each
/// bounded by a timeout, marks it ready or failing with the reason. Runs until the pool closes.
pub fn watch(
    pool: PgPool,
    target: String,
    dependency: Dependency,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if pool.is_closed() {
                return;
            }
            let probe = tokio::time::timeout(every.max(Duration::from_secs(1)), async {
                sqlx::query("SELECT 1").execute(&pool).await
            })
            .await;
            match probe {
                Ok(Ok(_)) => dependency.ready(),
                Ok(Err(e)) => dependency.failing(format!("cannot reach PostgreSQL at {target}: {e}")),
                Err(_) => dependency.failing(format!("PostgreSQL at {target} did not answer in time")),
            }
            tokio::time::sleep(every).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_never_holds_the_password() {
        let config: PostgresConfig = serde_norway::from_str(
            "{ host: db, database: kms, user: demo, password_file: /run/secrets/postgres_password }",
        )
        .unwrap();
        assert_eq!(config.target(), "demo@db:5432/kms");
        assert_eq!(config.acquire_timeout, Duration::from_secs(3));
        let err = connect_options(&PostgresConfig { password_file: "/nonexistent/pw".into(), ..config })
            .unwrap_err();
        assert!(err.to_string().contains("password"), "{err}");
    }

    #[test]
    fn unknown_settings_are_refused() {
        let err = serde_norway::from_str::<PostgresConfig>(
            "{ host: db, database: kms, user: demo, password: hunter2, password_file: x }",
        )
        .unwrap_err();
        assert!(err.to_string().contains("password"), "{err}");
    }
}
