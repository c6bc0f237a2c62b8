//! `demo serve kms|identity` on PostgreSQL refusing to start, through the real binary: a
//! password the server refuses, a server that cannot be reached, and a database whose schema a
//! newer release wrote. Each exits 2 within [`EXIT_WITHIN`], naming the cause with a hint, never
//! printing the password, and writing nothing.
//!
//! Where PostgreSQL is not installed the tests that need a server print `SKIPPED:` (and fail
//! under CI); the unreachable-server test needs none.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use service_kit::postgres::PostgresConfig;

use crate::serve::{Storage, sigterm_and_wait, spawn_serve, write_kms_env};

/// The longest a refused start may take (connecting to a closed port is retried until the
/// pool's `acquire_timeout`, 3 s by default).
const EXIT_WITHIN: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy)]
enum Service {
    Kms,
    Identity,
}

const SERVICES: [Service; 2] = [Service::Kms, Service::Identity];

impl Service {
    fn name(self) -> &'static str {
        match self {
            Self::Kms => "kms",
            Self::Identity => "identity",
        }
    }

    /// A configuration in `dir` over `pg` (for the KMS with a seed that `--demo` applies).
    fn write_config(self, dir: &Path, pg: &PostgresConfig) -> PathBuf {
        match self {
            Self::Kms => write_kms_env(dir, 3, &Storage::Postgres(pg.clone())),
            Self::Identity => write_identity_env(dir, pg),
        }
    }

    /// Starts the service on `config` (the KMS with `--demo`, so its tenant tables hold a row),
    /// waits until it is ready, and stops it with SIGTERM.
    fn start_and_stop(self, config: &Path) {
        let (args, ready): (&[&str], _) = match self {
            Self::Kms => (&["serve", "kms", "--demo"], "KMS ready"),
            Self::Identity => (&["serve", "identity"], "Identity ready"),
        };
        let (mut child, _, _, lines) = spawn_serve(args, config, ready);
        let logs = std::thread::spawn(move || lines.into_iter().collect::<Vec<_>>());
        let status = sigterm_and_wait(&mut child);
        let logs = logs.join().unwrap().join("\n");
        assert!(status.success(), "{self:?} did not stop cleanly ({status}):\n{logs}");
    }

    /// Runs `demo serve <service> --config <config>`, which must exit 2 within [`EXIT_WITHIN`];
    /// returns its stderr, checked for the hint that nothing was written and for none of
    /// `secrets`.
    fn refused(self, config: &Path, secrets: &[&str]) -> String {
        let started = Instant::now();
        let run = crate::demo()
            .args(["serve", self.name(), "--config"])
            .arg(config)
            .timeout(EXIT_WITHIN)
            .assert()
            .code(2);
        let took = started.elapsed();
        assert!(took < EXIT_WITHIN, "{self:?}: the refused start took {took:?}");
        let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
        assert!(stderr.contains("help: nothing was written"), "{self:?}: no hint in\n{stderr}");
        for secret in secrets {
            assert!(!stderr.contains(secret), "{self:?}: a password reached stderr:\n{stderr}");
        }
        stderr
    }
}

/// An identity.yml in `dir` over `pg`: a fresh demo PKI and three of five fresh shares, no seed.
fn write_identity_env(dir: &Path, pg: &PostgresConfig) -> PathBuf {
    let pki = pki::ensure(&dir.join("pki"), &pki::PkiSpec::demo(), &Default::default()).unwrap();
    let shares: String = identity_shares(dir).iter().map(|p| format!("\n    - {}", p.display())).collect();
    let leaf = pki.dir.leaf("identity");
    let config = format!(
        "server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  tls:
    cert_file: {}
    key_file: {}
    ca_file: {}
issuer: https://identity.demo.local:8082
storage:
{}unseal:
  share_files:{shares}
log_format: json
",
        leaf.fullchain.display(),
        leaf.key.display(),
        pki.dir.ca_bundle().display(),
        Storage::Postgres(pg.clone()).yaml(),
    );
    let path = dir.join("identity.yml");
    std::fs::write(&path, config).unwrap();
    path
}

/// Three of five fresh unseal shares, as files in `dir`.
fn identity_shares(dir: &Path) -> Vec<PathBuf> {
    use secrecy::ExposeSecret as _;
    let shares = barrier::new_shares(3, 5).unwrap();
    shares
        .iter()
        .take(3)
        .enumerate()
        .map(|(i, share)| {
            let path = dir.join(format!("identity_share_{i}"));
            std::fs::write(&path, share.encode().expose_secret()).unwrap();
            path
        })
        .collect()
}

fn password_of(pg: &PostgresConfig) -> String {
    std::fs::read_to_string(&pg.password_file).unwrap().trim().to_owned()
}

/// Every table of `database` outside the system schemas, with a checksum of its rows, and the
/// roles named after the database (the KMS's per-tenant roles): what a start could write.
fn snapshot(server: &test_support::postgres::Server, database: &str) -> String {
    let tables = server.psql(
        database,
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables \
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    );
    let mut sql: Vec<String> = tables
        .lines()
        .map(|table| {
            format!(
                "SELECT '{table}' || ' ' || count(*) || ' ' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"
            )
        })
        .collect();
    sql.push(format!(
        "SELECT 'roles ' || coalesce(string_agg(rolname, ',' ORDER BY rolname), '') FROM pg_roles WHERE rolname LIKE '{database}%'"
    ));
    server.psql(database, &sql.join(" UNION ALL "))
}

#[test]
fn a_refused_password_exits_2_and_writes_nothing() {
    let Some(server) = test_support::postgres::server() else { return };
    for service in SERVICES {
        let dir = tempfile::tempdir().unwrap();
        let mut pg = server.fresh_database();
        let right = password_of(&pg);
        let wrong = "not-the-demo-role-password";
        pg.password_file = dir.path().join("wrong_password");
        std::fs::write(&pg.password_file, format!("{wrong}\n")).unwrap();
        let config = service.write_config(dir.path(), &pg);

        let stderr = service.refused(&config, &[&right, wrong]);
        assert!(stderr.contains(&format!("PostgreSQL at {} refused the password", pg.target())), "{stderr}");
        assert!(stderr.contains("in the file storage.postgres.password_file names"), "{stderr}");
        assert_eq!(snapshot(&server, &pg.database), "roles", "{service:?} wrote to the database");
    }
}

#[test]
fn an_unreachable_server_exits_2_naming_it() {
    // No server needed: a loopback port nobody listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    for service in SERVICES {
        let dir = tempfile::tempdir().unwrap();
        let password = "a-password-never-sent";
        let pg = PostgresConfig {
            host: "127.0.0.1".into(),
            port,
            database: "demo".into(),
            user: "demo".into(),
            password_file: dir.path().join("password"),
            max_connections: 2,
            acquire_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(10),
        };
        std::fs::write(&pg.password_file, format!("{password}\n")).unwrap();
        let config = service.write_config(dir.path(), &pg);

        let stderr = service.refused(&config, &[password]);
        assert!(
            stderr.contains(&format!("cannot reach PostgreSQL at demo@127.0.0.1:{port}/demo")),
            "{stderr}"
        );
        assert!(stderr.contains("pg_isready -h HOST -p PORT"), "{stderr}");
    }
}

#[test]
fn a_schema_from_a_newer_release_exits_2_and_writes_nothing() {
    let Some(server) = test_support::postgres::server() else { return };
    for service in SERVICES {
        let dir = tempfile::tempdir().unwrap();
        let pg = server.fresh_database();
        let config = service.write_config(dir.path(), &pg);
        service.start_and_stop(&config);
        server.psql(
            &pg.database,
            "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
             VALUES (99999, 'from the future', now(), true, '\\x00', 0)",
        );
        let before = snapshot(&server, &pg.database);
        assert!(before.contains("public.seal 1 "), "{service:?}: the first start sealed nothing:\n{before}");

        let stderr = service.refused(&config, &[&password_of(&pg)]);
        assert!(
            stderr.contains("the database's schema is version 99999, newer than this binary knows"),
            "{stderr}"
        );
        assert!(stderr.contains("the database stays as the newer release left it"), "{stderr}");
        assert_eq!(snapshot(&server, &pg.database), before, "{service:?} wrote to a newer schema");
        let newest =
            server.psql(&pg.database, "SELECT max(version) || ' ' || count(*) FROM _sqlx_migrations");
        assert!(newest.starts_with("99999 "), "{service:?}: {newest}");
    }
}
