//! The compose model: compose files read into a [`Project`] the stack engine can run, strictly.
//!
//! [`load`] reads the `-f` files in order (later ones override earlier ones by compose's merge
//! rules), follows `include:` (relative to the including file, cycles refused), resolves
//! `extends:` (same file, or `file:` + `service:`), interpolates `${VAR…}` from the caller's
//! [`Env`] (never the process environment), keeps the services the active profiles enable and
//! validates the result (dependencies, cycles, declared networks/volumes/secrets, ports).
//!
//! Only the part of the compose specification our deployments use is accepted; any other key is
//! an error naming the file, the line, the path in the document and what to do. See
//! `docs/compose-model.md` for the choices and the deviations from `docker compose`.

mod error;
mod interpolate;
mod lines;
mod load;
mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{Location, ModelError};
pub use load::load;

/// The variables interpolation may use: exactly the ones the caller gives, plus (when asked
/// with [`Env::with_dotenv`]) a `.env` file beside the first compose file. Given values win
/// over `.env`, as the shell's do for `docker compose`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
    dotenv: bool,
}

impl Env {
    /// No variables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also read `.env` beside the first compose file, if there is one.
    #[must_use]
    pub fn with_dotenv(mut self) -> Self {
        self.dotenv = true;
        self
    }

    /// Sets a variable.
    #[must_use]
    pub fn var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// A variable's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    pub(crate) fn reads_dotenv(&self) -> bool {
        self.dotenv
    }

    pub(crate) fn insert_missing(&mut self, name: String, value: String) {
        self.vars.entry(name).or_insert(value);
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Env {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self { vars: iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect(), dotenv: false }
    }
}

/// A loaded, merged and validated compose project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// The top-level `name:`, else the first file's directory name (lower-cased, with
    /// characters other than `[a-z0-9_-]` dropped), as compose does.
    pub name: String,
    /// The directory relative paths of the `-f` files are resolved against (the first file's).
    pub working_dir: PathBuf,
    /// The `-f` files, as given (compose's `com.docker.compose.project.config_files` label).
    pub files: Vec<PathBuf>,
    /// The services the active profiles enable, by name.
    pub services: BTreeMap<String, Service>,
    /// Networks by their key in the file; `default` is added when a service uses no network.
    pub networks: BTreeMap<String, Network>,
    /// Named volumes by their key in the file.
    pub volumes: BTreeMap<String, Volume>,
    /// Secrets by their key in the file.
    pub secrets: BTreeMap<String, Secret>,
}

impl Project {
    /// The services in an order that starts every dependency before its dependants; among
    /// services free to start, by name. Validation refused cycles, so every service is listed.
    pub fn start_order(&self) -> Vec<&str> {
        let mut waiting: BTreeMap<&str, BTreeSet<&str>> = self
            .services
            .iter()
            .map(|(name, s)| {
                let deps = s.depends_on.keys().map(String::as_str).filter(|d| self.services.contains_key(*d));
                (name.as_str(), deps.collect())
            })
            .collect();
        let mut order = Vec::with_capacity(waiting.len());
        while let Some(next) = waiting.iter().find(|(_, deps)| deps.is_empty()).map(|(name, _)| *name) {
            waiting.remove(next);
            for deps in waiting.values_mut() {
                deps.remove(next);
            }
            order.push(next);
        }
        // Only reachable with a cycle, which `load` refuses; keep every service listed anyway.
        order.extend(waiting.keys());
        order
    }
}

/// One service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Service {
    /// The file that defined it (for `extends`/overrides: the first file that did).
    pub defined_in: PathBuf,
    /// The image reference (required: `build:` is not supported).
    pub image: String,
    /// `command:` in exec form; `None` keeps the image's.
    pub command: Option<Vec<String>>,
    /// `entrypoint:` in exec form; `None` keeps the image's.
    pub entrypoint: Option<Vec<String>>,
    /// Environment variables, after interpolation.
    pub environment: BTreeMap<String, String>,
    /// Published ports.
    pub ports: Vec<Port>,
    /// The networks it joins, with their aliases; empty means the project's `default` network.
    pub networks: BTreeMap<String, ServiceNetwork>,
    /// Mounts: named volumes, bind mounts, tmpfs.
    pub volumes: Vec<Mount>,
    /// Secrets mounted as files.
    pub secrets: Vec<SecretMount>,
    /// The healthcheck, exec form only.
    pub healthcheck: Option<Healthcheck>,
    /// Services to start first, and what to wait for.
    pub depends_on: BTreeMap<String, Condition>,
    /// `user:` (`uid[:gid]` or a name).
    pub user: Option<String>,
    /// `init:` (run an init process as PID 1).
    pub init: Option<bool>,
    /// `stop_grace_period:` (SIGTERM, then this long before SIGKILL).
    pub stop_grace_period: Option<std::time::Duration>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Profiles that enable it; empty: always enabled.
    pub profiles: Vec<String>,
    /// Restart policy.
    pub restart: Option<Restart>,
}

/// A published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Port {
    /// The host address to bind (`None`: all addresses).
    pub host_ip: Option<IpAddr>,
    /// The host port (`None`: the engine picks one).
    pub published: Option<u16>,
    /// The container port.
    pub target: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
}

/// A port's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

/// A service's membership of a network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceNetwork {
    /// DNS aliases on that network.
    pub aliases: Vec<String>,
}

/// A mount into a service's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// What is mounted.
    pub source: MountSource,
    /// The absolute path in the container.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// What a [`Mount`] mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A named volume (its key in the top-level `volumes:`).
    Volume(String),
    /// A host path, absolute (relative paths resolved against the file's directory).
    Bind(PathBuf),
    /// A tmpfs.
    Tmpfs,
}

/// A secret mounted into a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMount {
    /// Its key in the top-level `secrets:`.
    pub source: String,
    /// The absolute path in the container (`/run/secrets/<name>` unless `target:` says else).
    pub target: String,
}

/// A healthcheck (exec form: `test: ["CMD", …]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Healthcheck {
    /// The command, without the leading `CMD`; empty when [`Healthcheck::disabled`].
    pub test: Vec<String>,
    /// `disable: true` or `test: ["NONE"]`: the image's healthcheck is turned off.
    pub disabled: bool,
    /// `interval:`.
    pub interval: Option<Duration>,
    /// `timeout:`.
    pub timeout: Option<Duration>,
    /// `retries:`.
    pub retries: Option<u32>,
    /// `start_period:`.
    pub start_period: Option<Duration>,
}

/// What a dependant waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Condition {
    /// The dependency's container was started.
    #[default]
    Started,
    /// The dependency's healthcheck reports healthy.
    Healthy,
    /// The dependency exited with status 0.
    CompletedSuccessfully,
}

/// A restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// `"no"`.
    No,
    /// `always`.
    Always,
    /// `on-failure[:max]`.
    OnFailure(Option<u32>),
    /// `unless-stopped`.
    UnlessStopped,
}

/// A top-level network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Network {
    /// `name:` (the engine's name); `None`: `<project>_<key>`.
    pub name: Option<String>,
    /// Created elsewhere; never created nor removed by us.
    pub external: bool,
    /// `internal:` (no route outside).
    pub internal: bool,
    /// `driver:`; `None` is the engine's default (bridge).
    pub driver: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// A top-level named volume.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Volume {
    /// `name:` (the engine's name); `None`: `<project>_<key>`.
    pub name: Option<String>,
    /// Created elsewhere; never created nor removed by us.
    pub external: bool,
    /// `driver:`; `None` is `local`.
    pub driver: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// A top-level secret: a host file (the only kind supported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// The file, absolute.
    pub file: PathBuf,
}

impl Project {
    /// The engine's name of a network key (`name:` or `<project>_<key>`).
    pub fn network_name(&self, key: &str) -> String {
        self.networks.get(key).and_then(|n| n.name.clone()).unwrap_or_else(|| format!("{}_{key}", self.name))
    }

    /// The engine's name of a volume key (`name:` or `<project>_<key>`).
    pub fn volume_name(&self, key: &str) -> String {
        self.volumes.get(key).and_then(|v| v.name.clone()).unwrap_or_else(|| format!("{}_{key}", self.name))
    }
}

/// compose's rule for a project name taken from a directory.
fn normalize_project_name(raw: &str) -> String {
    raw.to_ascii_lowercase().chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')).collect()
}

/// The directory of a file (`.` for a bare name).
fn dir_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}
