//! A PostgreSQL server for the tests: one throwaway cluster (`pg-cluster`) per test binary,
//! started on first use in a directory under `/tmp` and stopped when the binary exits, and a
//! fresh database per test, so that tests run in parallel without seeing each other's data.
//!
//! [`server`] returns `None` (a loud skip) where PostgreSQL is not installed, and panics under
//! `CI`, where `.ci/run` installs it.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use service_kit::postgres::PostgresConfig;

/// The role every test database belongs to (it may create the per-tenant roles).
pub const ROLE: &str = "demo";

/// A running cluster shared by one test binary.
#[derive(Debug)]
pub struct Server {
    cluster: pg_cluster::Cluster,
    password_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.cluster.stop(true);
    }
}

static SERVER: OnceLock<Option<Arc<Server>>> = OnceLock::new();

/// The test binary's cluster, started on first use; `None` (after a `SKIPPED:` line) where
/// PostgreSQL is not installed. Panics under `CI` in that case, and wherever setup fails.
///
/// Statics are never dropped, so a watchdog process stops the server and removes its directory
/// when the test binary exits (however it exits).
pub fn server() -> Option<Arc<Server>> {
    SERVER
        .get_or_init(|| {
            if !installed() {
                return None;
            }
            let server = start();
            watch_for_exit(&server);
            Some(Arc::new(server))
        })
        .clone()
}

/// A cluster of the test's own, stopped and removed when dropped: for tests that stop and
/// start the server. `None` as for [`server`].
pub fn dedicated() -> Option<Server> {
    installed().then(start)
}

fn installed() -> bool {
    crate::oracle::present(pg_cluster::Binaries::find().is_ok(), "PostgreSQL (initdb, pg_ctl)")
}

fn watch_for_exit(server: &Server) {
    let Some(pid) = server.cluster.postmaster_pid() else { return };
    let spawned = std::process::Command::new("sh")
        .args(["-c", r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done; kill -9 "$2" 2>/dev/null; sleep 1; rm -rf "$3""#, "watchdog"])
        .arg(std::process::id().to_string())
        .arg(pid.to_string())
        .arg(server._dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        eprintln!("warning: cannot start the PostgreSQL watchdog ({e}); the test server outlives this run");
    }
}

fn start() -> Server {
    // Under /tmp and world-traversable: when tests run as root the server runs as `postgres`.
    let dir = tempfile::Builder::new()
        .prefix("demo-pg-")
        .tempdir_in("/tmp")
        .unwrap_or_else(|e| panic!("cannot create the PostgreSQL directory: {e}"));
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap_or_else(|e| panic!("cannot open the PostgreSQL directory to its server: {e}"));
    let port = pg_cluster::free_port().unwrap_or_else(|e| panic!("no free port: {e}"));
    let cluster = pg_cluster::Cluster::init(&dir.path().join("cluster"), port)
        .unwrap_or_else(|e| panic!("cannot create a PostgreSQL cluster: {e}"));
    cluster.start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"));
    let password = format!("pw-{}", uuid_like());
    cluster.ensure_role(ROLE, &password, true).unwrap_or_else(|e| panic!("cannot create the role: {e}"));
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{password}\n"))
        .unwrap_or_else(|e| panic!("cannot write the password file: {e}"));
    std::fs::set_permissions(&password_file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .unwrap_or_else(|e| panic!("cannot restrict the password file: {e}"));
    Server { cluster, password_file, _dir: dir }
}

fn uuid_like() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::thread_rng().r#gen();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Server {
    /// A new, empty database owned by [`ROLE`], and the settings that reach it over TCP.
    pub fn fresh_database(&self) -> PostgresConfig {
        let name = format!("t_{}", &uuid_like()[..16]);
        self.cluster
            .ensure_database(&name, ROLE)
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        self.config_for(&name)
    }

    /// The settings for database `name` (which may not exist).
    pub fn config_for(&self, name: &str) -> PostgresConfig {
        PostgresConfig {
            host: "127.0.0.1".into(),
            port: self.cluster.port(),
            database: name.into(),
            user: ROLE.into(),
            password_file: self.password_file.clone(),
            max_connections: 8,
            acquire_timeout: std::time::Duration::from_secs(3),
            statement_timeout: std::time::Duration::from_secs(10),
        }
    }

    /// Runs SQL as the cluster's superuser (for a test's own checks and sabotage).
    pub fn psql(&self, database: &str, sql: &str) -> String {
        self.cluster.psql(database, sql).unwrap_or_else(|e| panic!("psql failed: {e}"))
    }

    /// The cluster (to stop and start it in outage tests).
    pub fn cluster(&self) -> &pg_cluster::Cluster {
        &self.cluster
    }
}
