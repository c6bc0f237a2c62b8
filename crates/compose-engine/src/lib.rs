//! The compose engine: compose stacks brought up through the Docker Engine API (bollard).
//!
//! [`Engine::connect`] (the local socket, API 1.41 — the newest the project's engine speaks —
//! with a short probe so an absent engine is reported within seconds) and
//! [`image::ensure_service_image`], which builds a service image **offline** from a binary of
//! the host: `FROM scratch`, the binary (stripped of symbols and debug information) and the
//! shared libraries it needs, tagged with a hash of its inputs so an unchanged binary is never
//! rebuilt; and [`rootfs::ensure_rootfs_image`], an image assembled from files of the host (a
//! third-party program from installed packages, for engines that reach no registry).
//! [`model::load`] reads compose files (merge, `include`, `extends`, interpolation, profiles)
//! into a validated [`model::Project`], strictly: unknown keys and unsupported features are
//! errors. [`stack::up`] and [`stack::down`] run a project like compose does (its object names
//! and labels, dependency order, health conditions that fail fast with the log tail).
//!
//! The crate knows no product: the caller tells it what its image is called and how it runs
//! ([`image::ImageSpec`]) and which label marks a run's objects ([`stack::RunLabel`]).
//!
//! What it must not do: pull from a registry implicitly, link OpenSSL (the socket needs no
//! TLS), or put a secret into an image, an environment variable or a label.

pub mod image;
pub mod model;
pub mod rootfs;
pub mod stack;

use std::time::Duration;

use bollard::{ClientVersion, Docker};

/// How long one Engine API request may take (bollard's default).
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// The Docker Engine API version we speak: Docker 20.10's. Newer engines accept it too.
pub const API_VERSION: ClientVersion = ClientVersion { major_version: 1, minor_version: 41 };

/// The engine could not be reached or refused a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// No engine answered on the socket.
    #[error(
        "no Docker engine answered on {socket} within {timeout:?} (is it running? DOCKER_HOST names another socket)"
    )]
    Unreachable {
        /// The socket tried.
        socket: String,
        /// How long we waited.
        timeout: Duration,
        /// Why.
        #[source]
        source: Option<bollard::errors::Error>,
    },
    /// A request failed.
    #[error("the Docker engine refused {what}")]
    Api {
        /// What was asked.
        what: String,
        /// Why.
        #[source]
        source: bollard::errors::Error,
    },
}

/// A connected engine.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
}

impl Engine {
    /// Connects to the local engine (`DOCKER_HOST=unix://…` or `/var/run/docker.sock`) and pings
    /// it, giving up after `timeout`.
    pub async fn connect(timeout: Duration) -> Result<Self, EngineError> {
        let socket = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| h.starts_with("unix://"))
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned());
        let unreachable = |source| EngineError::Unreachable { socket: socket.clone(), timeout, source };
        // `timeout` bounds the probe only. Each later request gets bollard's usual two minutes:
        // a container's forced removal (kill, then remove) can take seconds on a busy machine,
        // and the probe's 2 s made rollbacks fail with "Timeout error".
        let docker = Docker::connect_with_unix(&socket, REQUEST_TIMEOUT_SECS, &API_VERSION)
            .map_err(|e| unreachable(Some(e)))?;
        match tokio::time::timeout(timeout, docker.ping()).await {
            Ok(Ok(_)) => Ok(Self { docker }),
            Ok(Err(e)) => Err(unreachable(Some(e))),
            Err(_) => Err(unreachable(None)),
        }
    }

    /// The bollard client, for what this crate does not wrap yet.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }
}
