//! A throwaway PostgreSQL cluster made from the host's installed binaries: `initdb` into a
//! directory, `pg_ctl start` on a loopback port with its Unix socket in that directory, roles and
//! databases made through `psql`, `pg_ctl stop` when done. The embedded runtime's `dev` profile
//! runs its database this way, and the tests that need PostgreSQL do too.
//!
//! We drive the real tools rather than embed a server (crates such as `postgresql_embedded`
//! download a build at run time, which this project's machines cannot do). When the process runs
//! as root (CI containers), the tools run as the `postgres` system account through `runuser`:
//! PostgreSQL refuses to run as root.
//!
//! Authentication: the cluster's superuser (the OS account that runs it) signs in over the Unix
//! socket only (`peer`); every other role signs in with a SCRAM-SHA-256 password, over the
//! socket or TCP on 127.0.0.1. Passwords reach `psql` on its standard input, never on a command
//! line or in the environment.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// What went wrong with the cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// No PostgreSQL server binaries on this machine.
    #[error(
        "PostgreSQL is not installed here (no initdb / pg_ctl under /usr/lib/postgresql/*/bin or on PATH); install it (Debian: apt-get install postgresql) or use another profile"
    )]
    NotInstalled,
    /// Running as root, and there is no `postgres` account to run the server as.
    #[error(
        "running as root, and there is no `postgres` account to run PostgreSQL as (it refuses root); install Debian's postgresql package, which creates it, or run as another user"
    )]
    NoServiceAccount,
    /// The directory cannot be reached by the account that runs the server.
    #[error(
        "{dir} cannot be reached by the `{user}` account that runs PostgreSQL (a parent directory is private); choose a directory under /tmp or /var/tmp"
    )]
    DirNotReachable {
        /// The cluster directory.
        dir: PathBuf,
        /// The account.
        user: String,
    },
    /// A tool could not be run.
    #[error("cannot run {tool}")]
    Spawn {
        /// The tool.
        tool: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A tool ran and failed.
    #[error("{tool} failed: {stderr}")]
    Tool {
        /// The tool.
        tool: String,
        /// The end of what it wrote on stderr (and of the server log, for `pg_ctl start`).
        stderr: String,
    },
    /// A file of the cluster could not be read or written.
    #[error("cannot write {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A role or database name that is not a plain identifier.
    #[error("{0:?} is not a plain identifier (lowercase letters, digits and _ only)")]
    BadName(String),
}

/// The server binaries of one PostgreSQL version.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// The newest version under Debian's `/usr/lib/postgresql/*/bin`, else `pg_ctl` on `PATH`.
    pub fn find() -> Result<Self, ClusterError> {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let major = e.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").is_file().then_some((major, bin))
            })
            .collect();
        versions.sort();
        if let Some((_, dir)) = versions.pop() {
            return Ok(Self { dir });
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .find(|d| d.join("pg_ctl").is_file() && d.join("initdb").is_file())
            .map(|dir| Self { dir })
            .ok_or(ClusterError::NotInstalled)
    }

    /// The directory holding `initdb`, `pg_ctl`, `postgres`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `postgres --version`'s text, e.g. `postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`.
    pub fn version(&self) -> Result<String, ClusterError> {
        let out = run(Command::new(self.dir.join("postgres")).arg("--version"), "postgres --version")?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

/// The account the server runs as when we are root.
#[derive(Debug, Clone)]
struct Account {
    name: String,
    uid: u32,
    gid: u32,
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn postgres_account() -> Option<Account> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() <= 3 || f[0] != "postgres" {
            return None;
        }
        Some(Account { name: f[0].to_owned(), uid: f[2].parse().ok()?, gid: f[3].parse().ok()? })
    })
}

/// A cluster in a directory: `data/` (the cluster), `server.log`, and the Unix socket.
#[derive(Debug)]
pub struct Cluster {
    bin: Binaries,
    dir: PathBuf,
    port: u16,
    run_as: Option<Account>,
}

impl Cluster {
    /// Opens the cluster in `dir`, running `initdb` first when `dir/data` holds none. Nothing
    /// is started. `port` is where [`Cluster::start`] listens (127.0.0.1 only).
    ///
    /// The data directory is fsync'ed like any PostgreSQL (durability is part of what the dev
    /// profile shows).
    pub fn init(dir: &Path, port: u16) -> Result<Self, ClusterError> {
        let bin = Binaries::find()?;
        let run_as = if running_as_root() {
            Some(postgres_account().ok_or(ClusterError::NoServiceAccount)?)
        } else {
            None
        };
        std::fs::create_dir_all(dir).map_err(|source| ClusterError::Io { path: dir.to_owned(), source })?;
        let dir = dir.canonicalize().map_err(|source| ClusterError::Io { path: dir.to_owned(), source })?;
        if let Some(account) = &run_as {
            check_reachable(&dir, account)?;
            std::os::unix::fs::chown(&dir, Some(account.uid), Some(account.gid))
                .map_err(|source| ClusterError::Io { path: dir.clone(), source })?;
        }
        let cluster = Self { bin, dir, port, run_as };
        if !cluster.data_dir().join("PG_VERSION").is_file() {
            cluster.initdb()?;
        }
        Ok(cluster)
    }

    fn initdb(&self) -> Result<(), ClusterError> {
        let data = self.data_dir();
        let mut cmd = self.tool("initdb");
        cmd.arg("-D")
            .arg(&data)
            .args(["--auth-local=peer", "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-locale"])
            .args(["--no-instructions"]);
        run(&mut cmd, "initdb")?;
        let owner = self.os_user();
        let hba = format!(
            "# Written by pg-cluster: the superuser by peer over the socket; every other role by\n\
             # SCRAM-SHA-256 password, over the socket or TCP on 127.0.0.1.\n\
             local all {owner} peer\n\
             local all all scram-sha-256\n\
             host  all all 127.0.0.1/32 scram-sha-256\n"
        );
        self.write_owned(&data.join("pg_hba.conf"), &hba)
    }

    fn os_user(&self) -> String {
        match &self.run_as {
            Some(a) => a.name.clone(),
            None => std::env::var("USER")
                .ok()
                .filter(|u| !u.is_empty())
                .or_else(|| {
                    let out = Command::new("id").arg("-un").output().ok()?;
                    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
                })
                .unwrap_or_else(|| "postgres".to_owned()),
        }
    }

    fn write_owned(&self, path: &Path, text: &str) -> Result<(), ClusterError> {
        let io = |source| ClusterError::Io { path: path.to_owned(), source };
        std::fs::write(path, text).map_err(io)?;
        if let Some(a) = &self.run_as {
            std::os::unix::fs::chown(path, Some(a.uid), Some(a.gid)).map_err(io)?;
        }
        Ok(())
    }

    /// The cluster directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `dir/data`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the Unix socket (`.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The server binaries.
    pub fn binaries(&self) -> &Binaries {
        &self.bin
    }

    /// The server's process id (first line of `postmaster.pid`), while it runs.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Whether a server runs on this data directory (`pg_ctl status`).
    pub fn is_running(&self) -> bool {
        self.tool("pg_ctl")
            .arg("status")
            .arg("-D")
            .arg(self.data_dir())
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Starts the server and waits until it accepts connections (at most 60 s). A server already
    /// running on this directory is left as it is.
    pub fn start(&self) -> Result<(), ClusterError> {
        if self.is_running() {
            return Ok(());
        }
        let log = self.dir.join("server.log");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories='{}' -c max_connections=100",
            self.port,
            self.dir.display()
        );
        let mut cmd = self.tool("pg_ctl");
        cmd.args(["start", "-w", "-t", "60", "-D"])
            .arg(self.data_dir())
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(options);
        run(&mut cmd, "pg_ctl start").map_err(|e| match e {
            ClusterError::Tool { tool, stderr } => {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(8).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                ClusterError::Tool {
                    tool,
                    stderr: format!("{stderr}\nserver log ({}):\n{}", log.display(), tail.join("\n")),
                }
            }
            other => other,
        })?;
        Ok(())
    }

    /// Stops the server: `fast` (rolls back open transactions, checkpoints) unless `immediate`
    /// (a crash, as `kill -9` would leave it; the next start recovers from the WAL).
    pub fn stop(&self, immediate: bool) -> Result<(), ClusterError> {
        if !self.is_running() {
            return Ok(());
        }
        let mode = if immediate { "immediate" } else { "fast" };
        let mut cmd = self.tool("pg_ctl");
        cmd.args(["stop", "-w", "-t", "60", "-m", mode, "-D"]).arg(self.data_dir());
        run(&mut cmd, "pg_ctl stop").map(drop)
    }

    /// Runs `sql` as the superuser in `database`, the SQL on psql's standard input; returns what
    /// it printed (unaligned, tuples only).
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, ClusterError> {
        let mut cmd = self.tool("psql");
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-d", database])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| ClusterError::Spawn { tool: "psql".into(), source })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(sql.as_bytes())
                .map_err(|source| ClusterError::Spawn { tool: "psql".into(), source })?;
        }
        let out =
            child.wait_with_output().map_err(|source| ClusterError::Spawn { tool: "psql".into(), source })?;
        if !out.status.success() {
            return Err(ClusterError::Tool { tool: "psql".into(), stderr: tail(&out.stderr) });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Creates (or updates the password of) a login role with `password`, and with
    /// `CREATEROLE` when `create_role` (a service that makes one role per tenant needs it).
    pub fn ensure_role(&self, name: &str, password: &str, create_role: bool) -> Result<(), ClusterError> {
        ident(name)?;
        let literal = password.replace('\'', "''");
        let extra = if create_role { " CREATEROLE" } else { "" };
        let sql = format!(
            "SELECT format('CREATE ROLE {name} LOGIN') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') \\gexec\n\
             ALTER ROLE {name} LOGIN{extra} PASSWORD '{literal}';\n"
        );
        self.psql("postgres", &sql).map(drop)
    }

    /// Creates `name` owned by `owner` unless it exists.
    pub fn ensure_database(&self, name: &str, owner: &str) -> Result<(), ClusterError> {
        ident(name)?;
        ident(owner)?;
        let sql = format!(
            "SELECT format('CREATE DATABASE {name} OWNER {owner}') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}') \\gexec\n"
        );
        self.psql("postgres", &sql).map(drop)
    }

    fn tool(&self, name: &str) -> Command {
        let path = self.bin.dir.join(name);
        match &self.run_as {
            Some(a) => {
                let mut c = Command::new("runuser");
                c.args(["-u", &a.name, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }
}

/// Every ancestor of `dir` must let `account` through (execute permission for it).
fn check_reachable(dir: &Path, account: &Account) -> Result<(), ClusterError> {
    for ancestor in dir.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(ancestor) else { continue };
        let mode = meta.mode();
        let ok = if meta.uid() == account.uid {
            mode & 0o100 != 0
        } else if meta.gid() == account.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !ok {
            return Err(ClusterError::DirNotReachable { dir: dir.to_owned(), user: account.name.clone() });
        }
    }
    Ok(())
}

fn ident(name: &str) -> Result<(), ClusterError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok { Ok(()) } else { Err(ClusterError::BadName(name.to_owned())) }
}

fn run(cmd: &mut Command, tool: &str) -> Result<Output, ClusterError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ClusterError::Spawn { tool: tool.to_owned(), source })?;
    if !out.status.success() {
        let mut stderr = tail(&out.stderr);
        if stderr.is_empty() {
            stderr = tail(&out.stdout);
        }
        return Err(ClusterError::Tool { tool: tool.to_owned(), stderr });
    }
    Ok(out)
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().rev().take(8).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// A loopback TCP port nobody listens on now (the OS's choice).
pub fn free_port() -> Result<u16, ClusterError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|source| ClusterError::Io { path: PathBuf::from("127.0.0.1:0"), source })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| ClusterError::Io { path: PathBuf::from("127.0.0.1:0"), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_plain() {
        for ok in ["demo", "kms", "t_0123", "_x"] {
            assert!(ident(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Demo", "a-b", "a;drop", "1abc", "a b", "x\"", &"a".repeat(64)] {
            assert!(matches!(ident(bad), Err(ClusterError::BadName(_))), "{bad}");
        }
    }

    #[test]
    fn a_cluster_starts_serves_a_role_and_stops() {
        let Ok(_) = Binaries::find() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL is missing under CI: .ci/run must install it"
            );
            eprintln!("SKIPPED: PostgreSQL is not installed");
            return;
        };
        let root = tempfile::Builder::new().prefix("pg-cluster-").tempdir_in("/tmp").unwrap();
        std::fs::set_permissions(root.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let cluster = Cluster::init(&root.path().join("pg"), free_port().unwrap()).unwrap();
        cluster.start().unwrap();
        assert!(cluster.is_running());
        cluster.ensure_role("demo", "it's a secret", true).unwrap();
        cluster.ensure_role("demo", "it's a secret", true).unwrap();
        cluster.ensure_database("kms", "demo").unwrap();
        cluster.ensure_database("kms", "demo").unwrap();
        let owner = cluster
            .psql("postgres", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'kms'")
            .unwrap();
        assert_eq!(owner, "demo");
        assert!(matches!(cluster.ensure_database("x;drop", "demo"), Err(ClusterError::BadName(_))));
        cluster.stop(false).unwrap();
        assert!(!cluster.is_running());
        // Opening again does not re-run initdb, and the data is still there.
        let again = Cluster::init(&root.path().join("pg"), cluster.port()).unwrap();
        again.start().unwrap();
        assert_eq!(
            again.psql("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'kms'").unwrap(),
            "1"
        );
        again.stop(true).unwrap();
    }
}
