//! The demo's state directory: everything a demo environment is made of, generated once and
//! reused until `--reset-demo`.
//!
//! ```text
//! STATE/
//!   .gitignore, state.json         "*"; what made the directory (the reset guard)
//!   pki/                           the CA chain and leaves (crates/pki)
//!   secrets/                       Docker secrets: one file each, 0600
//!     kms_unseal_share_{1..5}      3-of-5 shares of the KMS barrier
//!     identity_unseal_share_{1..5} 3-of-5 shares of Identity's barrier
//!     tenants.yml                  tenant name -> UUIDv4, new for every environment
//!     client_secret_<client>       random client secrets
//!     user_password_<user>         random passwords of Identity's demo users
//!     postgres_password            the dev profile's PostgreSQL password (role `demo`)
//!   data/                          databases (removed by a reset)
//!     postgres/                    the embedded dev profile's PostgreSQL cluster (when this
//!                                  tool runs as root: /var/tmp/demo-postgres-<hash>, where the
//!                                  `postgres` account can reach it)
//! ```
//!
//! Files are 0600, directories 0700. A reset removes only a directory whose `state.json` says
//! this tool made it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::distributions::{Alphanumeric, DistString};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

/// Shares per barrier, and how many open it.
pub const SHARES: u8 = 5;
/// Threshold of each barrier.
pub const THRESHOLD: u8 = 3;
/// The demo's tenants.
pub const TENANTS: [&str; 2] = ["acme", "globex"];
/// Confidential clients whose secrets are generated.
pub const CLIENTS: [&str; 3] = ["kms-service", "demo-confidential", "demo-gateway"];
/// Identity's demo users whose passwords are generated.
pub const USERS: [&str; 3] = ["admin", "user", "service"];
/// What `state.json` says about its directory.
const MARKER: &str = "demo-security-state";

/// A state-directory operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A file or directory could not be created or read.
    #[error("cannot use {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The directory holds something this tool did not write.
    #[error(
        "{path} is not empty and is not a demo state directory (no state.json of ours); refusing to use or delete it"
    )]
    Foreign {
        /// The directory.
        path: PathBuf,
    },
    /// The PKI is unusable.
    #[error("the PKI in the state directory is unusable")]
    Pki(#[source] pki::PkiError),
    /// Share generation failed.
    #[error("cannot generate unseal shares")]
    Barrier(#[source] barrier::BarrierError),
    /// The fixture issuer's PKI or key could not be made.
    #[error(transparent)]
    Fixture(crate::fixture::FixtureError),
}

impl StateError {
    /// What to do about it — an action that works for this error (`--reset-demo` cannot help
    /// with a directory that is not ours, nor with one we may not write).
    pub fn hint(&self, root: &Path) -> String {
        use std::io::ErrorKind;
        match self {
            Self::Foreign { .. } => {
                "choose a --state-dir that is new, empty or made by this tool (the default is ~/.local/share/demo-security); this directory is never touched".to_owned()
            }
            Self::Io { path, source } => match source.kind() {
                ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => format!(
                    "you may not write {}: choose a --state-dir you own",
                    path.display()
                ),
                ErrorKind::NotADirectory | ErrorKind::AlreadyExists => format!(
                    "{} is in the way (a file where a directory belongs): choose another --state-dir",
                    path.display()
                ),
                ErrorKind::StorageFull => "the disk is full: free space, or choose a --state-dir on another disk".to_owned(),
                _ => format!("check that {} can be created and written", root.display()),
            },
            Self::Pki(_) => "the certificates were changed or damaged: run again with --reset-demo to regenerate the environment".to_owned(),
            Self::Barrier(_) => "the system's random source failed: run again".to_owned(),
            Self::Fixture(_) => format!(
                "the fixture issuer's files under {} were changed or damaged: run again with --reset-demo to regenerate the environment",
                root.join("partner").display()
            ),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io { path: path.to_owned(), source }
}

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    kind: String,
    format: u32,
}

/// A materialised state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    root: PathBuf,
}

impl State {
    /// The default location: `$XDG_DATA_HOME/demo-security`, else
    /// `~/.local/share/demo-security`, else `./.demo-state`.
    pub fn default_root() -> PathBuf {
        if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir).join("demo-security");
        }
        if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(home).join(".local/share/demo-security");
        }
        PathBuf::from(".demo-state")
    }

    /// Creates what is missing under `root` and returns it; never overwrites a file.
    pub fn ensure(root: &Path, pki_spec: &pki::PkiSpec) -> Result<Self, StateError> {
        let state = Self::at(root);
        state.claim()?;
        pki::ensure(&state.pki_dir(), pki_spec, &Default::default()).map_err(StateError::Pki)?;
        let secrets = state.secrets_dir();
        mkdir(&secrets)?;
        mkdir(&state.data_dir())?;
        for service in ["kms", "identity"] {
            if !secrets.join(format!("{service}_unseal_share_1")).exists() {
                let shares = barrier::new_shares(THRESHOLD, SHARES).map_err(StateError::Barrier)?;
                for share in shares {
                    let path = secrets.join(format!("{service}_unseal_share_{}", share.index()));
                    write_new(&path, format!("{}\n", share.encode().expose_secret()).as_bytes())?;
                }
            }
        }
        let tenants = state.tenants_file();
        if !tenants.exists() {
            let lines: String = TENANTS.iter().map(|t| format!("{t}: {}\n", uuid::Uuid::new_v4())).collect();
            write_new(&tenants, lines.as_bytes())?;
        }
        let secret_files = CLIENTS
            .map(|c| state.client_secret(c))
            .into_iter()
            .chain(USERS.map(|u| state.user_password(u)))
            .chain([state.postgres_password()]);
        for path in secret_files {
            if !path.exists() {
                let secret = zeroize::Zeroizing::new(Alphanumeric.sample_string(&mut rand::thread_rng(), 40));
                write_new(&path, secret.as_bytes())?;
            }
        }
        // What `deployments/all` mounts besides: the fixture issuer's directory, and a trust
        // store that lists no issuer until a run names the partner in it.
        crate::fixture::ensure(&state.partner_dir()).map_err(StateError::Fixture)?;
        let trust = state.trust_file();
        if !trust.exists() {
            mkdir(&state.trust_dir())?;
            write_new(&trust, b"issuers: []\n")?;
        }
        Ok(state)
    }

    /// Removes everything a previous `ensure` made (a `--reset-demo`). Refuses a directory
    /// without our marker, so a mistyped `--state-dir` never deletes someone's files. Kept: the
    /// marker, and the Docker runtime's lock (`docker.lock`, held by the run resetting) and its
    /// journal of starts in progress (`docker-runs/`): they describe containers, which outlive
    /// the certificates and secrets.
    pub fn reset(root: &Path) -> Result<(), StateError> {
        let entries = match fs::read_dir(root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(StateError::Io { path: root.to_owned(), source }),
            Ok(entries) => entries,
        };
        if !is_ours(root) {
            return Err(StateError::Foreign { path: root.to_owned() });
        }
        let outside = Self::at(root).postgres_dir();
        if !outside.starts_with(root) {
            match fs::remove_dir_all(&outside) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&outside)(e)),
                _ => {}
            }
        }
        for entry in entries {
            let entry = entry.map_err(io(root))?;
            let name = entry.file_name();
            if [".gitignore", "state.json", "docker.lock", "docker-runs"].iter().any(|keep| name == *keep) {
                continue;
            }
            let path = entry.path();
            let removed = if entry.file_type().map_err(io(&path))?.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.map_err(io(&path))?;
        }
        Ok(())
    }

    /// Whether `root` is a state directory this tool made (it carries our marker).
    pub fn is_ours(root: &Path) -> bool {
        is_ours(root)
    }

    /// The state directory at `root`, without checking or creating anything. The path is made
    /// absolute here, once, for everything that follows: Docker mounts need absolute paths, and
    /// the same directory typed two ways (`relstate`, `./relstate`, through a symlink) is one
    /// environment with one stack. An existing directory is resolved to its real path; one that
    /// does not exist yet is joined to the working directory.
    pub fn at(root: &Path) -> Self {
        let root =
            fs::canonicalize(root).or_else(|_| std::path::absolute(root)).unwrap_or_else(|_| root.to_owned());
        Self { root }
    }

    /// The state directory at `root`, which [`State::at`] already made absolute (a path taken
    /// from a `State`): for code that carries the root and needs one of its paths.
    pub(crate) fn known(root: &Path) -> Self {
        Self { root: root.to_owned() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The PKI.
    pub fn pki_dir(&self) -> PathBuf {
        self.root.join("pki")
    }
    /// The CA bundle: the only certificate clients of the demo trust.
    pub fn ca_bundle(&self) -> PathBuf {
        self.pki_dir().join("ca-bundle.pem")
    }
    /// `credentials.md`: where every demo credential is.
    pub fn credentials_file(&self) -> PathBuf {
        self.root.join("credentials.md")
    }
    /// The services' configuration files and seeds as the embedded runtime writes them.
    pub fn config_dir(&self) -> PathBuf {
        self.root.join("config")
    }
    /// The compose files as shipped, written for the Docker runtime (`deployments/` inside).
    pub fn deployments_dir(&self) -> PathBuf {
        self.root.join("deployments")
    }
    /// The Docker runtime's chosen API ports, one file per service.
    pub fn docker_ports_dir(&self) -> PathBuf {
        self.root.join("docker-ports")
    }
    /// The Docker runtime's lock: one run per state directory at a time.
    pub fn docker_lock(&self) -> PathBuf {
        self.root.join("docker.lock")
    }
    /// The Docker runtime's journal of starts in progress (`<run id>` files).
    pub fn docker_runs_dir(&self) -> PathBuf {
        self.root.join("docker-runs")
    }
    /// The embedded runtime's service logs (one JSON object per line), for `demo logs`.
    pub fn embedded_log(&self) -> PathBuf {
        self.root.join("logs").join("embedded.log")
    }
    /// The Docker secrets.
    pub fn secrets_dir(&self) -> PathBuf {
        self.root.join("secrets")
    }
    /// Databases.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }
    /// The fixture issuer's PKI and signing key (`demo::fixture`).
    pub fn partner_dir(&self) -> PathBuf {
        self.root.join("partner")
    }
    /// The KMS container's trust store directory (mounted at `/etc/demo/trust`).
    pub fn trust_dir(&self) -> PathBuf {
        self.root.join("trust")
    }
    /// The KMS container's trust store (`auth.bearer.trust_file`).
    pub fn trust_file(&self) -> PathBuf {
        self.trust_dir().join("trust.yml")
    }
    /// Tenant name → id.
    pub fn tenants_file(&self) -> PathBuf {
        self.secrets_dir().join("tenants.yml")
    }
    /// The dev profile's PostgreSQL password (role `demo`).
    pub fn postgres_password(&self) -> PathBuf {
        self.secrets_dir().join("postgres_password")
    }

    /// The embedded dev profile's PostgreSQL cluster: `data/postgres`, or, when this process
    /// runs as root (the server then runs as the `postgres` account, which cannot enter a
    /// private state directory), `/var/tmp/demo-postgres-<hash of the state directory>`.
    pub fn postgres_dir(&self) -> PathBuf {
        use std::os::unix::fs::MetadataExt;
        if fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
            let digest = aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                self.root.as_os_str().as_encoded_bytes(),
            );
            PathBuf::from(format!("/var/tmp/demo-postgres-{}", &hex::encode(digest)[..16]))
        } else {
            self.data_dir().join("postgres")
        }
    }

    /// A client's secret.
    pub fn client_secret(&self, client: &str) -> PathBuf {
        self.secrets_dir().join(format!("client_secret_{client}"))
    }

    /// The password file of one of Identity's demo users.
    pub fn user_password(&self, user: &str) -> PathBuf {
        self.secrets_dir().join(format!("user_password_{user}"))
    }
    /// A service's unseal share files (`kms` or `identity`), 1..=5.
    pub fn unseal_shares(&self, service: &str) -> Vec<PathBuf> {
        (1..=SHARES).map(|i| self.secrets_dir().join(format!("{service}_unseal_share_{i}"))).collect()
    }

    /// Creates the directory with its marker, or checks that an existing one is ours.
    fn claim(&self) -> Result<(), StateError> {
        let root = &self.root;
        match fs::read_dir(root) {
            Ok(mut entries) => {
                let empty = entries.next().is_none();
                if !empty && !is_ours(root) {
                    return Err(StateError::Foreign { path: root.to_owned() });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => mkdir(root)?,
            Err(source) => return Err(StateError::Io { path: root.to_owned(), source }),
        }
        fs::set_permissions(root, fs::Permissions::from_mode(0o700)).map_err(io(root))?;
        let marker = root.join("state.json");
        if !marker.exists() {
            let json = serde_json::to_vec_pretty(&Marker { kind: MARKER.into(), format: 1 })
                .map_err(|e| StateError::Io { path: marker.clone(), source: std::io::Error::other(e) })?;
            write_new(&marker, &json)?;
            write_new(&root.join(".gitignore"), b"# Demo state: keys and secrets. Never commit.\n*\n")?;
        }
        Ok(())
    }
}

fn is_ours(root: &Path) -> bool {
    fs::read(root.join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Marker>(&b).ok())
        .is_some_and(|m| m.kind == MARKER)
}

fn mkdir(path: &Path) -> Result<(), StateError> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(io(path))
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let mut file =
        fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_owned()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push((p.clone(), fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn created_once_private_and_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("state");
        let state = State::ensure(&root, &pki::PkiSpec::demo()).unwrap();
        let first = files(&root);
        for (path, _) in &first {
            let mode = fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        assert_eq!(fs::metadata(&root).unwrap().permissions().mode() & 0o777, 0o700);
        // Shares open their barrier; the two services have different barriers.
        let read = |p: &PathBuf| fs::read_to_string(p).unwrap().parse::<barrier::Share>().unwrap();
        let kms: Vec<_> = state.unseal_shares("kms").iter().map(read).collect();
        let identity: Vec<_> = state.unseal_shares("identity").iter().map(read).collect();
        assert!(barrier::combine(&kms[..3]).is_ok());
        assert_ne!(kms[0].barrier(), identity[0].barrier());
        let tenants = fs::read_to_string(state.tenants_file()).unwrap();
        assert!(tenants.contains("acme: ") && tenants.contains("globex: "));
        assert_eq!(fs::read(state.client_secret("kms-service")).unwrap().len(), 40);
        assert_eq!(fs::read(state.user_password("admin")).unwrap().len(), 40);

        // A second run changes nothing.
        State::ensure(&root, &pki::PkiSpec::demo()).unwrap();
        assert_eq!(files(&root), first);

        // A reset removes everything but the marker and the Docker runtime's lock and journal;
        // the next ensure makes a new environment.
        fs::write(root.join("docker.lock"), "").unwrap();
        fs::create_dir(root.join("docker-runs")).unwrap();
        State::reset(&root).unwrap();
        let mut left: Vec<String> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".gitignore", "docker-runs", "docker.lock", "state.json"]);
        let again = State::ensure(&root, &pki::PkiSpec::demo()).unwrap();
        assert_ne!(
            fs::read(again.tenants_file()).unwrap(),
            first.iter().find(|(p, _)| p.ends_with("tenants.yml")).unwrap().1
        );
    }

    #[test]
    fn a_foreign_directory_is_neither_used_nor_deleted() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("thesis.tex"), "years of work").unwrap();
        assert!(matches!(State::ensure(tmp.path(), &pki::PkiSpec::demo()), Err(StateError::Foreign { .. })));
        assert!(matches!(State::reset(tmp.path()), Err(StateError::Foreign { .. })));
        assert!(tmp.path().join("thesis.tex").exists());
        // Resetting what does not exist is fine.
        State::reset(&tmp.path().join("nothing")).unwrap();
    }

    #[test]
    fn default_root_follows_xdg() {
        assert!(
            State::default_root().ends_with("demo-security")
                || State::default_root().ends_with(".demo-state")
        );
    }
}
