//! The `dev` profile's PostgreSQL, first link of the health chain on both runtimes.
//!
//! Embedded: a cluster of the host's installed PostgreSQL (`pg-cluster`: `initdb` once into the
//! state directory, `pg_ctl start` on a free loopback port for the run, stopped with it), the
//! role `demo` with the state directory's `postgres_password`, a database per service.
//!
//! Docker: the image of the stacks' `postgres` service. Where a registry answers, the
//! official image ([`OFFICIAL_IMAGE`]); where none does (this project's machines, an air-gapped
//! laptop), an image assembled offline from the PostgreSQL the host has installed from Debian's
//! packages: its server and client programs, their shared libraries (by `ldd`), a shell and the
//! few tools the entrypoint uses, and `deployments/postgres/docker-entrypoint.sh`, which keeps
//! the official image's contract (`POSTGRES_USER`, `POSTGRES_PASSWORD_FILE`, `POSTGRES_DB`,
//! `PGDATA`, `/docker-entrypoint-initdb.d/*.sql`), so the compose files run either image. The
//! offline image is tagged by its inputs (`postgres --version`, which names the Debian package
//! version, and the entrypoint), so it is built once per installed version.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use compose_engine::Engine;
use compose_engine::rootfs::{Entry, RootfsImage};

use std::sync::{Arc, OnceLock};

use service_kit::postgres::PostgresConfig;

use super::{Ctx, id};
use crate::engine::{Phase, Plan, Step, StepError};
use crate::state::State;

/// The official image, used when it is on the engine or can be pulled.
pub(crate) const OFFICIAL_IMAGE: &str = "postgres:15";

/// The offline image's repository.
pub(crate) const OFFLINE_REPOSITORY: &str = "demo-security/postgres";

/// How long a pull of the official image may take before the offline image is built instead.
const PULL_TIMEOUT: Duration = Duration::from_secs(30);

const ENTRYPOINT: &str = include_str!("../../../../deployments/postgres/docker-entrypoint.sh");

/// The account the offline image's server runs as (the official image's uid and gid).
const POSTGRES_UID: u64 = 999;

/// Which image the run uses, and how it was had (for the report's notes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PgImage {
    /// The reference compose gets as `DEMO_POSTGRES_IMAGE`.
    pub(crate) reference: String,
    /// One sentence for the report.
    pub(crate) how: String,
}

/// The official image when it is here or a registry gives it within [`PULL_TIMEOUT`]; else the
/// offline image (built unless its tag is here). Fails, with the install hint, where neither is
/// possible.
pub(crate) async fn ensure_image(
    engine: &Engine,
    progress: &(dyn Fn(&compose_engine::image::PullProgress) + Send + Sync),
) -> Result<PgImage, StepError> {
    let pulled =
        compose_engine::image::ensure_third_party(engine, OFFICIAL_IMAGE, PULL_TIMEOUT, progress).await;
    let why = match pulled {
        Ok(availability) => {
            let how = match availability {
                compose_engine::image::Availability::Present => "was on the engine",
                compose_engine::image::Availability::Pulled => "was pulled",
            };
            return Ok(PgImage {
                reference: OFFICIAL_IMAGE.to_owned(),
                how: format!("PostgreSQL runs from the official image {OFFICIAL_IMAGE}, which {how}"),
            });
        }
        Err(e) => e.to_string(),
    };
    let recipe = offline_recipe().map_err(|e| {
        StepError::new(format!(
            "no PostgreSQL image can be had: {why}; and none can be built offline: {e}"
        ))
        .with_hint("install PostgreSQL from Debian's packages (apt-get install postgresql) to build it offline, `docker load` the official image, or use --profile demo (SQLite)")
    })?;
    let image = compose_engine::rootfs::ensure_rootfs_image(engine, &recipe, host_files)
        .await
        .map_err(|e| StepError::from_error("cannot build the offline PostgreSQL image", &e))?;
    let verb = if image.built { "built now" } else { "built by an earlier run" };
    Ok(PgImage {
        how: format!(
            "PostgreSQL runs from {}, assembled offline from the host's PostgreSQL packages ({verb}): the official image {OFFICIAL_IMAGE} could not be had ({why})",
            image.tag
        ),
        reference: image.tag,
    })
}

/// The offline image's recipe: generated files and settings, and the inputs its tag derives
/// from. The host's files are listed only when it must be built ([`host_files`]).
fn offline_recipe() -> Result<RootfsImage, String> {
    let binaries = pg_cluster::Binaries::find().map_err(|e| e.to_string())?;
    let version = binaries.version().map_err(|e| e.to_string())?;
    let bin = binaries.dir().to_owned();
    let inputs = format!("{version}\nbin {}\n", bin.display());
    let dir =
        |at: &str, mode: u32, owner: u64| Entry::Dir { at: at.to_owned(), mode, uid: owner, gid: owner };
    let bytes = |at: &str, text: &str, mode: u32| Entry::Bytes {
        at: at.to_owned(),
        bytes: text.as_bytes().to_vec(),
        mode,
    };
    Ok(RootfsImage {
        repository: OFFLINE_REPOSITORY.to_owned(),
        title: "demo-security-postgres".to_owned(),
        inputs,
        entries: vec![
            dir("/tmp", 0o1777, 0),
            dir("/var/lib/postgresql", 0o755, POSTGRES_UID),
            dir("/var/lib/postgresql/data", 0o755, 0),
            dir("/var/run/postgresql", 0o2775, POSTGRES_UID),
            dir("/docker-entrypoint-initdb.d", 0o755, 0),
            bytes(
                "/etc/passwd",
                "root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh\n",
                0o644,
            ),
            bytes("/etc/group", "root:x:0:\npostgres:x:999:\n", 0o644),
            bytes("/usr/local/bin/docker-entrypoint.sh", ENTRYPOINT, 0o755),
        ],
        user: String::new(),
        env: vec![
            ("PATH".to_owned(), format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display())),
            ("PGDATA".to_owned(), "/var/lib/postgresql/data/pgdata".to_owned()),
            ("TZ".to_owned(), "UTC".to_owned()),
        ],
        entrypoint: vec!["/bin/sh".to_owned(), "/usr/local/bin/docker-entrypoint.sh".to_owned()],
        // Fast shutdown (the official image's choice too).
        stop_signal: "SIGINT".to_owned(),
    })
}

/// The tools the entrypoint runs besides PostgreSQL's own.
const TOOLS: [&str; 7] = ["id", "mkdir", "chown", "chmod", "cat", "rm", "setpriv"];

/// The host's files for the image: PostgreSQL's programs, modules and share directory, a shell
/// at `/bin/sh`, the entrypoint's tools, the time zone the server runs in, and every shared
/// library `ldd` names for all of these. Only called when the image must be built.
fn host_files() -> Result<Vec<Entry>, compose_engine::image::ImageError> {
    let read_err = |path: &Path, e: std::io::Error| compose_engine::image::ImageError::Read {
        path: path.to_owned(),
        source: e,
    };
    let binaries =
        pg_cluster::Binaries::find().map_err(|e| compose_engine::image::ImageError::Build(e.to_string()))?;
    let bin = binaries.dir().to_owned();
    let lib = bin.parent().map(|p| p.join("lib")).unwrap_or_default();
    let major = bin
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let share = PathBuf::from("/usr/share/postgresql").join(&major);
    let mut files: Vec<(PathBuf, String, u32)> = Vec::new();
    let mut elves: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(&bin).map_err(|e| read_err(&bin, e))? {
        let path = entry.map_err(|e| read_err(&bin, e))?.path();
        if path.is_file() {
            files.push((path.clone(), path.display().to_string(), 0o755));
            elves.push(path);
        }
    }
    for entry in std::fs::read_dir(&lib).map_err(|e| read_err(&lib, e))? {
        let path = entry.map_err(|e| read_err(&lib, e))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        // The JIT (and its LLVM, 100 MB) stays out: the server runs without it.
        if path.is_file() && name.ends_with(".so") && !name.starts_with("llvmjit") {
            files.push((path.clone(), path.display().to_string(), 0o755));
            elves.push(path);
        }
    }
    walk(&share, &mut |path| {
        if !path.starts_with(share.join("man")) {
            files.push((path.to_owned(), path.display().to_string(), 0o644));
        }
    })
    .map_err(|e| read_err(&share, e))?;
    for zone in ["/usr/share/zoneinfo/UTC", "/usr/share/zoneinfo/Etc/UTC"] {
        if Path::new(zone).is_file() {
            files.push((PathBuf::from(zone), zone.to_owned(), 0o644));
        }
    }
    let shell =
        ["/usr/bin/dash", "/bin/dash", "/bin/sh"].into_iter().map(PathBuf::from).find(|p| p.is_file());
    let Some(shell) = shell else {
        return Err(compose_engine::image::ImageError::Build("no /bin/sh on the host".to_owned()));
    };
    files.push((shell.clone(), "/bin/sh".to_owned(), 0o755));
    elves.push(shell);
    for tool in TOOLS {
        let found = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.is_file());
        let Some(path) = found else {
            return Err(compose_engine::image::ImageError::Build(format!("the host has no `{tool}`")));
        };
        files.push((path.clone(), format!("/usr/bin/{tool}"), 0o755));
        elves.push(path);
    }
    let mut libraries = BTreeSet::new();
    for elf in &elves {
        libraries.extend(compose_engine::image::shared_libraries(elf)?);
    }
    let mut seen = BTreeSet::new();
    let mut entries = Vec::new();
    for (host, at, mode) in files.into_iter().chain(libraries.into_iter().map(|l| {
        let at = l.display().to_string();
        (l, at, 0o755)
    })) {
        if seen.insert(at.clone()) {
            entries.push(Entry::HostFile { host, at, mode });
        }
    }
    Ok(entries)
}

/// Calls `f` with every regular file under `dir`.
fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, f)?;
        } else if path.is_file() {
            f(&path);
        }
    }
    Ok(())
}

/// The role the services sign in as (`POSTGRES_USER` on Docker), and its databases.
pub(crate) const ROLE: &str = "demo";
const DATABASES: [&str; 2] = ["kms", "identity"];

/// What the embedded steps share.
#[derive(Default)]
pub(crate) struct PostgresCtx {
    /// The cluster this run started.
    pub(crate) cluster: std::sync::Mutex<Option<EmbeddedCluster>>,
    /// Its TCP port on 127.0.0.1.
    port: OnceLock<u16>,
}

impl PostgresCtx {
    /// The settings a service uses for `database`, once the cluster runs (embedded dev profile);
    /// `None` otherwise.
    pub(crate) fn config(&self, state: &State, database: &str) -> Option<PostgresConfig> {
        self.port.get().map(|port| config(state, *port, database))
    }
}

fn config(state: &State, port: u16, database: &str) -> PostgresConfig {
    PostgresConfig {
        host: "127.0.0.1".to_owned(),
        port,
        database: database.to_owned(),
        user: ROLE.to_owned(),
        password_file: state.postgres_password(),
        max_connections: 8,
        acquire_timeout: Duration::from_secs(3),
        statement_timeout: Duration::from_secs(10),
    }
}

/// A cluster this run started, stopped (fast shutdown) when dropped: by the teardown, by
/// `RunningStack::shutdown`, or with a stack dropped without either — never left running.
pub(crate) struct EmbeddedCluster(pg_cluster::Cluster);

impl Drop for EmbeddedCluster {
    fn drop(&mut self) {
        if let Err(e) = self.0.stop(false) {
            eprintln!("warning: PostgreSQL in {} did not stop cleanly: {e}", self.0.dir().display());
        }
    }
}

impl std::fmt::Debug for EmbeddedCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EmbeddedCluster({})", self.0.dir().display())
    }
}

/// Embedded dev profile: the cluster started (created on first use) and the services' role and
/// databases made, then the database's health step: the role signs in by password over TCP.
pub(crate) fn embedded_steps(plan: Plan<Ctx>, health_timeout: Duration) -> Plan<Ctx> {
    plan.step(
        Step::new(id::STACK_UP_POSTGRES, Phase::Start, |c: Arc<Ctx>| async move {
            let state = c.state()?.clone();
            let cluster = tokio::task::spawn_blocking(move || start_cluster(&state))
                .await
                .map_err(|e| StepError::new(format!("the PostgreSQL start was interrupted: {e}")))??;
            let _ = c.postgres.port.set(cluster.0.port());
            if let Ok(mut slot) = c.postgres.cluster.lock() {
                *slot = Some(cluster);
            }
            Ok(())
        })
        .after(&[id::STATE_PREPARE])
        .critical(),
    )
    .step(
        Step::new(id::HEALTH_POSTGRES, Phase::Health, move |c: Arc<Ctx>| async move {
            let config = c
                .postgres
                .config(c.state()?, DATABASES[0])
                .ok_or_else(|| StepError::new("PostgreSQL is not running"))?;
            // `connect` signs in once: a wrong password or a server that does not answer fails here.
            let probe = async {
                let pool = service_kit::postgres::connect(&config).await?;
                pool.close().await;
                Ok::<_, service_kit::postgres::PostgresError>(())
            };
            tokio::time::timeout(health_timeout, probe)
                .await
                .map_err(|_| StepError::new(format!("PostgreSQL did not answer within {health_timeout:?}")))?
                .map_err(|e| {
                    StepError::from_error("PostgreSQL is not usable", &e).with_hint(super::START_HINT)
                })
        })
        .after(&[id::STACK_UP_POSTGRES])
        .verifies(
            "the services' role signs in to PostgreSQL by password (SCRAM-SHA-256) over TCP on 127.0.0.1",
        )
        .timeout(health_timeout + Duration::from_secs(5))
        .critical(),
    )
}

fn start_cluster(state: &State) -> Result<EmbeddedCluster, StepError> {
    let install = "install PostgreSQL (Debian: apt-get install postgresql), or use --profile demo (SQLite)";
    pg_cluster::Binaries::find()
        .map_err(|e| StepError::from_error("the dev profile needs PostgreSQL", &e).with_hint(install))?;
    let port = pg_cluster::free_port()
        .map_err(|e| StepError::from_error("no free loopback port for PostgreSQL", &e))?;
    let dir = state.postgres_dir();
    let cluster = pg_cluster::Cluster::init(&dir, port).map_err(|e| {
        StepError::from_error(format!("cannot create the PostgreSQL cluster in {}", dir.display()), &e)
            .with_hint("fix the cause above, or run with --reset-demo to start from a new cluster")
    })?;
    // Stopped again if anything below fails.
    let cluster = EmbeddedCluster(cluster);
    cluster.0.start().map_err(|e| {
        StepError::from_error("PostgreSQL did not start", &e)
            .with_hint("the server log is named above; --reset-demo starts from a new cluster")
    })?;
    let password = service_kit::secret::read_secret_file(&state.postgres_password()).map_err(|e| {
        StepError::from_error("cannot read the PostgreSQL password", &e).with_hint(super::START_HINT)
    })?;
    use service_kit::secret::ExposeSecret;
    cluster
        .0
        .ensure_role(ROLE, password.expose_secret(), true)
        .map_err(|e| StepError::from_error("cannot create the services' PostgreSQL role", &e))?;
    for database in DATABASES {
        cluster
            .0
            .ensure_database(database, ROLE)
            .map_err(|e| StepError::from_error(format!("cannot create the database {database}"), &e))?;
    }
    Ok(cluster)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn docker(args: &[&str]) -> std::process::Output {
        std::process::Command::new("docker").args(args).output().unwrap()
    }

    /// The offline image built from this host's packages keeps the official image's contract:
    /// it starts with its password from a secret file (owned by another uid, mode 0600), runs
    /// the init scripts once, answers `pg_isready` over TCP, signs in by password (a wrong one
    /// refused), and the server does not run as root.
    #[tokio::test]
    async fn the_offline_image_keeps_the_official_contract() {
        if !test_support::oracle::docker()
            || !test_support::oracle::present(pg_cluster::Binaries::find().is_ok(), "PostgreSQL")
        {
            return;
        }
        let engine = Engine::connect(Duration::from_secs(5)).await.unwrap();
        let recipe = offline_recipe().unwrap();
        let image = compose_engine::rootfs::ensure_rootfs_image(&engine, &recipe, host_files).await.unwrap();
        assert_eq!(image.tag, recipe.tag(), "tagged by its inputs");
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("pw");
        std::fs::write(&password, "s3cret-for-the-test\n").unwrap();
        std::fs::set_permissions(&password, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let init = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deployments/postgres/init");
        let name = format!("demo-pg-image-test-{}", std::process::id());
        let secret = format!("{}:/run/secrets/postgres_password:ro", password.display());
        let init = format!("{}:/docker-entrypoint-initdb.d:ro", init.display());
        let run = docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "-e",
            "POSTGRES_USER=demo",
            "-e",
            "POSTGRES_DB=kms",
            "-e",
            "POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password",
            "-v",
            &secret,
            "-v",
            &init,
            &image.tag,
        ]);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let ready = (0..120).any(|_| {
            std::thread::sleep(Duration::from_millis(500));
            docker(&["exec", &name, "pg_isready", "-h", "127.0.0.1", "-U", "demo", "-d", "kms"])
                .status
                .success()
        });
        let logs = docker(&["logs", &name]);
        let logs =
            String::from_utf8_lossy(&logs.stderr).into_owned() + &String::from_utf8_lossy(&logs.stdout);
        let psql = |password: &str| {
            docker(&[
                "exec",
                "-e",
                &format!("PGPASSWORD={password}"),
                &name,
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                "demo",
                "-d",
                "identity",
                "-Atc",
                "SELECT current_database() || ' ' || current_setting('is_superuser')",
            ])
        };
        let right = psql("s3cret-for-the-test");
        let wrong = psql("not-the-password");
        let status = docker(&["exec", &name, "cat", "/proc/1/status"]);
        docker(&["rm", "-f", "-v", &name]);
        assert!(ready, "pg_isready never passed; log:\n{logs}");
        assert!(logs.contains("running /docker-entrypoint-initdb.d/10-identity.sql"), "{logs}");
        assert_eq!(
            String::from_utf8_lossy(&right.stdout).trim(),
            "identity on",
            "{}",
            String::from_utf8_lossy(&right.stderr)
        );
        assert!(!wrong.status.success());
        assert!(String::from_utf8_lossy(&wrong.stderr).contains("password authentication failed"));
        let status = String::from_utf8_lossy(&status.stdout);
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert!(uid.split_whitespace().skip(1).all(|u| u == "999"), "the server runs as postgres: {uid}");
    }
}
