//! Bringing a [`Project`] up and down through the Engine API, the way `docker compose` does —
//! same object names and labels, so `docker compose -p NAME ps/logs/down` see what we created.
//!
//! `up`: networks and the volumes a service mounts (created if missing), then the services in dependency order:
//! a container is reused when its config hash matches, otherwise (re)created; a service waits for
//! its dependencies' conditions (`service_healthy` polls the engine's health status) and fails at
//! once, with the container's log tail, when a dependency exits or turns unhealthy — never waiting
//! out the timeout. `down`: everything labelled with the project, volumes on request.
//!
//! File secrets are read-only bind mounts at `/run/secrets/NAME`, as compose does outside swarm:
//! no secret ever goes into an environment variable or a label.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HealthStatusEnum, HostConfig, NetworkConnectRequest,
    NetworkCreateRequest, NetworkingConfig, PortBinding, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures_util::StreamExt as _;

use crate::model::{Condition, MountSource, Project, Protocol, Service};
use crate::{Engine, EngineError};

/// Compose's label keys.
pub mod labels {
    /// The project.
    pub const PROJECT: &str = "com.docker.compose.project";
    /// The service.
    pub const SERVICE: &str = "com.docker.compose.service";
    /// The replica number (always 1 here).
    pub const NUMBER: &str = "com.docker.compose.container-number";
    /// `False`: not a `run` container.
    pub const ONEOFF: &str = "com.docker.compose.oneoff";
    /// Hash of the service's configuration: a change recreates the container.
    pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
    /// `service:condition:restart` per dependency, comma-separated.
    pub const DEPENDS_ON: &str = "com.docker.compose.depends_on";
    /// The image reference.
    pub const IMAGE: &str = "com.docker.compose.image";
    /// The compose files.
    pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
    /// The project directory.
    pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
    /// The compose version whose labels these are.
    pub const VERSION: &str = "com.docker.compose.version";
    /// A network's key in the project.
    pub const NETWORK: &str = "com.docker.compose.network";
    /// A volume's key in the project.
    pub const VOLUME: &str = "com.docker.compose.volume";
}

/// The label that marks every object one run creates, so that what a failed or dead run left
/// can be found and removed: the key is the caller's (in its own namespace, e.g.
/// `org.example.run`), the value the run's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLabel {
    /// The label's key.
    pub key: String,
    /// This run's id, the label's value.
    pub id: String,
}

impl RunLabel {
    /// The label `key=id`.
    pub fn new(key: impl Into<String>, id: impl Into<String>) -> Self {
        Self { key: key.into(), id: id.into() }
    }
}

/// The compose version our labels imitate (the one tested against).
pub const COMPOSE_VERSION: &str = "2.40.3";

/// Bringing a stack up or down failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StackError {
    /// The engine refused a request.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A container exited or turned unhealthy while others waited for it.
    #[error("service {service} {state}; its last log lines:\n{logs}")]
    Failed {
        /// The service.
        service: String,
        /// What happened (`exited with code 1`, `is unhealthy`).
        state: String,
        /// Its log tail.
        logs: String,
    },
    /// A dependency did not reach its condition in time. The log tail is in the error itself:
    /// a failed start is rolled back, so the container may be gone when a person reads this.
    #[error("service {service} did not become {condition} within {timeout:?}; its last log lines:\n{logs}")]
    Timeout {
        /// The service.
        service: String,
        /// `healthy`, `started`, `completed`.
        condition: &'static str,
        /// How long we waited.
        timeout: Duration,
        /// Its log tail.
        logs: String,
    },
}

fn api(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> StackError {
    let what = what.into();
    move |source| StackError::Engine(EngineError::Api { what, source })
}

/// How to bring a stack up.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Written on everything created.
    pub run: RunLabel,
    /// How long one service may take to reach the condition others wait for.
    pub timeout: Duration,
}

/// What `up` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpReport {
    /// Services whose container was created (or recreated after a config change).
    pub created: Vec<String>,
    /// Services whose running container was kept (same config hash).
    pub reused: Vec<String>,
}

/// The container name compose uses.
pub fn container_name(project: &str, service: &str) -> String {
    format!("{project}-{service}-1")
}

/// A stable hash of what makes a container: a changed image, command, mount or secret file
/// changes it. (The secret files' contents are not hashed: a new secret value with the same path
/// is the caller's to handle, by removing the containers.)
fn config_hash(service: &Service) -> String {
    let text = format!("{service:?}");
    hex::encode(&aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes()).as_ref()[..16])
}

fn project_labels(project: &Project, run: &RunLabel) -> HashMap<String, String> {
    HashMap::from([
        (labels::PROJECT.to_owned(), project.name.clone()),
        (run.key.clone(), run.id.clone()),
        (labels::VERSION.to_owned(), COMPOSE_VERSION.to_owned()),
    ])
}

fn nanos(d: Option<Duration>) -> Option<i64> {
    d.map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The container for `service`.
fn container_body(project: &Project, name: &str, service: &Service, run: &RunLabel) -> ContainerCreateBody {
    let mut container_labels = project_labels(project, run);
    container_labels.extend(service.labels.clone());
    let depends: Vec<String> = service
        .depends_on
        .iter()
        .map(|(d, c)| {
            let c = match c {
                Condition::Started => "service_started",
                Condition::Healthy => "service_healthy",
                Condition::CompletedSuccessfully => "service_completed_successfully",
            };
            format!("{d}:{c}:false")
        })
        .collect();
    for (k, v) in [
        (labels::SERVICE, name.to_owned()),
        (labels::NUMBER, "1".to_owned()),
        (labels::ONEOFF, "False".to_owned()),
        (labels::CONFIG_HASH, config_hash(service)),
        (labels::DEPENDS_ON, depends.join(",")),
        (labels::IMAGE, service.image.clone()),
        (
            labels::CONFIG_FILES,
            project.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(","),
        ),
        (labels::WORKING_DIR, project.working_dir.display().to_string()),
    ] {
        container_labels.insert(k.to_owned(), v);
    }
    let mut binds = Vec::new();
    for mount in &service.volumes {
        let ro = if mount.read_only { ":ro" } else { "" };
        match &mount.source {
            MountSource::Volume(key) => {
                binds.push(format!("{}:{}{ro}", project.volume_name(key), mount.target))
            }
            MountSource::Bind(path) => binds.push(format!("{}:{}{ro}", path.display(), mount.target)),
            MountSource::Tmpfs => {}
        }
    }
    for secret in &service.secrets {
        if let Some(file) = project.secrets.get(&secret.source) {
            binds.push(format!("{}:{}:ro", file.file.display(), secret.target));
        }
    }
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    let mut exposed: Vec<String> = Vec::new();
    for port in &service.ports {
        let key = format!("{}/{}", port.target, if port.protocol == Protocol::Udp { "udp" } else { "tcp" });
        exposed.push(key.clone());
        port_bindings.entry(key).or_insert_with(|| Some(Vec::new())).get_or_insert_with(Vec::new).push(
            PortBinding {
                host_ip: port.host_ip.map(|ip| ip.to_string()),
                host_port: Some(port.published.map(|p| p.to_string()).unwrap_or_default()),
            },
        );
    }
    let tmpfs: HashMap<String, String> = service
        .volumes
        .iter()
        .filter(|m| m.source == MountSource::Tmpfs)
        .map(|m| (m.target.clone(), String::new()))
        .collect();
    // API 1.41 connects one network at creation; the others are connected before start.
    let first_network = service.networks.iter().next();
    let networking = first_network.map(|(key, net)| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            project.network_name(key),
            EndpointSettings { aliases: Some(aliases(name, &net.aliases)), ..Default::default() },
        )])),
    });
    ContainerCreateBody {
        image: Some(service.image.clone()),
        cmd: service.command.clone(),
        entrypoint: service.entrypoint.clone(),
        env: Some(service.environment.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        user: service.user.clone(),
        labels: Some(container_labels),
        exposed_ports: Some(exposed),
        healthcheck: service.healthcheck.as_ref().filter(|h| !h.disabled).map(|h| HealthConfig {
            test: Some(std::iter::once("CMD".to_owned()).chain(h.test.iter().cloned()).collect()),
            interval: nanos(h.interval),
            timeout: nanos(h.timeout),
            retries: h.retries.map(i64::from),
            start_period: nanos(h.start_period),
            ..Default::default()
        }),
        stop_timeout: service.stop_grace_period.map(|d| i64::try_from(d.as_secs()).unwrap_or(10)),
        host_config: Some(HostConfig {
            binds: Some(binds),
            port_bindings: Some(port_bindings),
            init: service.init,
            tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
            network_mode: first_network.map(|(key, _)| project.network_name(key)),
            ..Default::default()
        }),
        networking_config: networking,
        ..Default::default()
    }
}

/// The service name is an alias on every network, as compose does.
fn aliases(service: &str, extra: &[String]) -> Vec<String> {
    std::iter::once(service.to_owned()).chain(extra.iter().cloned()).collect()
}

/// Brings `project` up; see the module documentation.
pub async fn up(engine: &Engine, project: &Project, options: &UpOptions) -> Result<UpReport, StackError> {
    up_with(engine, project, options, None).await
}

/// The caller's own judge of "healthy" for a service of a project: its probe of the service's
/// health endpoint (from the host, say), asked every 50 ms. The engine runs a healthcheck only
/// every `interval` (a second or more), so a dependant waiting for `service_healthy` would
/// otherwise wait that long after the service is ready; with a probe, a service counts as
/// healthy as soon as **either** the engine's healthcheck or the probe says so. A container
/// that exits or that the engine finds unhealthy still fails the wait at once: the probe only
/// shortens it, it never excuses a failure.
pub type ReadyProbe = std::sync::Arc<
    dyn Fn(&Project, &str) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>> + Send + Sync,
>;

/// [`up`], with `ready` (when given) deciding `service_healthy` dependencies as soon as it can.
pub async fn up_with(
    engine: &Engine,
    project: &Project,
    options: &UpOptions,
    ready: Option<&ReadyProbe>,
) -> Result<UpReport, StackError> {
    let docker = engine.docker();
    let base = project_labels(project, &options.run);
    for (key, network) in &project.networks {
        if network.external {
            continue;
        }
        let name = project.network_name(key);
        if docker
            .inspect_network(&name, None::<bollard::query_parameters::InspectNetworkOptions>)
            .await
            .is_ok()
        {
            continue;
        }
        let mut l = base.clone();
        l.insert(labels::NETWORK.to_owned(), key.clone());
        l.extend(network.labels.clone());
        docker
            .create_network(NetworkCreateRequest {
                name: name.clone(),
                driver: network.driver.clone(),
                internal: Some(network.internal),
                labels: Some(l),
                ..Default::default()
            })
            .await
            .map_err(api(format!("creating network {name}")))?;
    }
    for (key, volume) in &project.volumes {
        // Like compose: a volume no enabled service mounts is not created (a profile that puts
        // the data on a tmpfs leaves no empty volume behind).
        let used = project
            .services
            .values()
            .any(|s| s.volumes.iter().any(|m| m.source == MountSource::Volume(key.clone())));
        if volume.external || !used {
            continue;
        }
        let name = project.volume_name(key);
        if docker.inspect_volume(&name).await.is_ok() {
            continue;
        }
        let mut l = base.clone();
        l.insert(labels::VOLUME.to_owned(), key.clone());
        l.extend(volume.labels.clone());
        docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.clone()),
                driver: volume.driver.clone(),
                labels: Some(l),
                ..Default::default()
            })
            .await
            .map_err(api(format!("creating volume {name}")))?;
    }
    // As compose does: every container is created first (that needs no dependency), then each
    // is started in dependency order once what it depends on meets its condition.
    let mut report = UpReport::default();
    let mut to_start = Vec::new();
    for name in project.start_order() {
        let Some(service) = project.services.get(name) else { continue };
        let container = container_name(&project.name, name);
        let hash = config_hash(service);
        let existing = docker.inspect_container(&container, None).await.ok();
        let same = existing.as_ref().is_some_and(|c| {
            c.config.as_ref().and_then(|cfg| cfg.labels.as_ref()).and_then(|l| l.get(labels::CONFIG_HASH))
                == Some(&hash)
        });
        if same {
            let running = existing.and_then(|c| c.state).and_then(|s| s.running).unwrap_or(false);
            if !running {
                to_start.push((name, service, container));
            }
            report.reused.push(name.to_owned());
            continue;
        }
        if existing.is_some() {
            docker
                .remove_container(
                    &container,
                    Some(RemoveContainerOptionsBuilder::default().force(true).build()),
                )
                .await
                .map_err(api(format!("removing the outdated {container}")))?;
        }
        let body = container_body(project, name, service, &options.run);
        docker
            .create_container(Some(CreateContainerOptionsBuilder::default().name(&container).build()), body)
            .await
            .map_err(api(format!("creating {container}")))?;
        for (key, net) in service.networks.iter().skip(1) {
            docker
                .connect_network(
                    &project.network_name(key),
                    NetworkConnectRequest {
                        container: container.clone(),
                        endpoint_config: Some(EndpointSettings {
                            aliases: Some(aliases(name, &net.aliases)),
                            ..Default::default()
                        }),
                    },
                )
                .await
                .map_err(api(format!("connecting {container} to {key}")))?;
        }
        to_start.push((name, service, container));
        report.created.push(name.to_owned());
    }
    for (_, service, container) in to_start {
        for (dependency, condition) in &service.depends_on {
            wait_for_with(engine, project, dependency, *condition, options.timeout, ready).await?;
        }
        docker.start_container(&container, None).await.map_err(api(format!("starting {container}")))?;
    }
    Ok(report)
}

/// Waits until `service` meets `condition`, failing at once if it exits or turns unhealthy.
pub async fn wait_for(
    engine: &Engine,
    project: &Project,
    service: &str,
    condition: Condition,
    timeout: Duration,
) -> Result<(), StackError> {
    wait_for_with(engine, project, service, condition, timeout, None).await
}

/// [`wait_for`], with `ready` (when given) satisfying `Healthy` as soon as it says so.
pub async fn wait_for_with(
    engine: &Engine,
    project: &Project,
    service: &str,
    condition: Condition,
    timeout: Duration,
    ready: Option<&ReadyProbe>,
) -> Result<(), StackError> {
    let container = container_name(&project.name, service);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let inspect = engine
            .docker()
            .inspect_container(&container, None)
            .await
            .map_err(api(format!("inspecting {container}")))?;
        let state = inspect.state.unwrap_or_default();
        let running = state.running.unwrap_or(false);
        let exited = matches!(
            state.status,
            Some(
                bollard::models::ContainerStateStatusEnum::EXITED
                    | bollard::models::ContainerStateStatusEnum::DEAD
            )
        );
        let exit = state.exit_code.unwrap_or(0);
        let health = state.health.and_then(|h| h.status);
        match condition {
            Condition::Started if running => return Ok(()),
            Condition::CompletedSuccessfully if exited && exit == 0 => return Ok(()),
            Condition::Healthy if health == Some(HealthStatusEnum::HEALTHY) => return Ok(()),
            Condition::Healthy if running && health != Some(HealthStatusEnum::UNHEALTHY) => {
                if let Some(probe) = ready
                    && probe(project, service).await
                {
                    return Ok(());
                }
            }
            _ => {}
        }
        let failed = if exited {
            Some(format!("exited with code {exit}"))
        } else if health == Some(HealthStatusEnum::UNHEALTHY) {
            Some("is unhealthy".to_owned())
        } else {
            None
        };
        if let Some(state) = failed {
            let logs = log_tail(engine, &container, 20).await;
            return Err(StackError::Failed { service: service.to_owned(), state, logs });
        }
        if tokio::time::Instant::now() >= deadline {
            let condition = match condition {
                Condition::Started => "started",
                Condition::Healthy => "healthy",
                Condition::CompletedSuccessfully => "completed",
            };
            let logs = log_tail(engine, &container, 20).await;
            return Err(StackError::Timeout { service: service.to_owned(), condition, timeout, logs });
        }
        let poll = if ready.is_some() { Duration::from_millis(50) } else { Duration::from_millis(250) };
        tokio::time::sleep(poll).await;
    }
}

/// Where the engine published a service's container port on the host (`127.0.0.1:PORT`).
pub async fn published(
    engine: &Engine,
    project: &Project,
    service: &str,
    target: u16,
) -> Option<std::net::SocketAddr> {
    let container = container_name(&project.name, service);
    let inspect = engine.docker().inspect_container(&container, None).await.ok()?;
    let ports = inspect.network_settings?.ports?;
    let binding = ports.get(&format!("{target}/tcp"))?.as_ref()?.first()?.clone();
    let ip: std::net::IpAddr = binding
        .host_ip
        .filter(|ip| !ip.is_empty() && ip != "0.0.0.0")
        .and_then(|ip| ip.parse().ok())
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    Some(std::net::SocketAddr::new(ip, binding.host_port?.parse().ok()?))
}

/// The last `lines` lines a container wrote.
pub async fn log_tail(engine: &Engine, container: &str, lines: usize) -> String {
    let options = LogsOptionsBuilder::default().stdout(true).stderr(true).tail(&lines.to_string()).build();
    let mut stream = engine.docker().logs(container, Some(options));
    let mut text = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        text.push_str(&chunk.to_string());
    }
    text
}

/// One service of a running project, as a status command shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServiceStatus {
    /// The service.
    pub service: String,
    /// The container's name.
    pub container: String,
    /// The engine's status line (`Up 5 minutes (healthy)`).
    pub status: String,
    /// Published ports: `host:port -> container port`.
    pub ports: Vec<String>,
}

/// The containers of `project` (empty when it is not up).
pub async fn status(engine: &Engine, project: &str) -> Result<Vec<ServiceStatus>, StackError> {
    let filter = HashMap::from([("label", vec![format!("{}={project}", labels::PROJECT)])]);
    let containers = engine
        .docker()
        .list_containers(Some(ListContainersOptionsBuilder::default().all(true).filters(&filter).build()))
        .await
        .map_err(api(format!("listing the containers of {project}")))?;
    let mut out: Vec<ServiceStatus> = containers
        .into_iter()
        .map(|c| {
            let labels = c.labels.unwrap_or_default();
            let mut ports: Vec<String> = c
                .ports
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| {
                    Some(format!("{}:{} -> {}", p.ip.unwrap_or_default(), p.public_port?, p.private_port))
                })
                .collect();
            ports.sort();
            ports.dedup();
            ServiceStatus {
                service: labels.get(labels::SERVICE).cloned().unwrap_or_default(),
                container: c
                    .names
                    .unwrap_or_default()
                    .first()
                    .map(|n| n.trim_start_matches('/').to_owned())
                    .unwrap_or_default(),
                status: c.status.unwrap_or_default(),
                ports,
            }
        })
        .collect();
    out.sort_by(|a, b| a.service.cmp(&b.service));
    Ok(out)
}

/// Removes what one run created in `project` (objects carrying its [`RunLabel`]): the rollback
/// of a failed or interrupted start. Objects an earlier run made and this one reused stay; a
/// network such a container still uses stays too, which is not an error here.
pub async fn remove_run(engine: &Engine, project: &str, run: &RunLabel) -> Result<(), StackError> {
    let selector = [format!("{}={project}", labels::PROJECT), format!("{}={}", run.key, run.id)];
    // A run interrupted mid-start may have left a request in flight (a container or volume the
    // engine creates after we stopped waiting for it): while a pass finds something, look again
    // a moment later, a few times at most.
    for _ in 0..4 {
        let removed = remove_labelled(
            engine,
            &format!("run {}", run.id),
            &selector,
            Removal { stop_first: false, volumes: true, strict: false },
        )
        .await?;
        if removed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

/// Removes one service's container of `project`, if there is one (a service the project no
/// longer enables, say: `up` only touches the services it runs).
pub async fn remove_service(engine: &Engine, project: &str, service: &str) -> Result<(), StackError> {
    let container = container_name(project, service);
    match engine
        .docker()
        .remove_container(&container, Some(RemoveContainerOptionsBuilder::default().force(true).build()))
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if gone(&e) => Ok(()),
        Err(source) => Err(api(format!("removing {container}"))(source)),
    }
}

/// What a removal removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// Containers.
    pub containers: usize,
    /// Networks.
    pub networks: usize,
    /// Named volumes.
    pub volumes: usize,
}

impl Removed {
    /// Whether nothing was there to remove.
    pub fn is_empty(&self) -> bool {
        self.containers + self.networks + self.volumes == 0
    }
}

/// Stops and removes everything labelled with `project`; named volumes too with `volumes`.
/// Returns what it removed (nothing, when no such project exists).
pub async fn down(engine: &Engine, project: &str, volumes: bool) -> Result<Removed, StackError> {
    let selector = [format!("{}={project}", labels::PROJECT)];
    remove_labelled(engine, project, &selector, Removal { stop_first: true, volumes, strict: true }).await
}

/// How [`remove_labelled`] removes.
#[derive(Debug, Clone, Copy)]
struct Removal {
    /// Stop containers gracefully (SIGTERM, 10 s) before removing them.
    stop_first: bool,
    /// Remove named volumes too.
    volumes: bool,
    /// A network or volume that cannot be removed is an error (otherwise it is left).
    strict: bool,
}

/// The engine's "no such object": what a removal wanted is already the case.
fn gone(error: &bollard::errors::Error) -> bool {
    matches!(error, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

/// Removes the containers, networks and (optionally) volumes carrying all of `selector`'s labels.
/// An object that disappears between the listing and its removal (the engine rolls back a
/// create whose client went away, say, when a start is interrupted) is not an error.
async fn remove_labelled(
    engine: &Engine,
    what: &str,
    selector: &[String],
    how: Removal,
) -> Result<Removed, StackError> {
    let mut removed = Removed::default();
    let docker = engine.docker();
    let filter = HashMap::from([("label", selector.to_vec())]);
    let containers = docker
        .list_containers(Some(ListContainersOptionsBuilder::default().all(true).filters(&filter).build()))
        .await
        .map_err(api(format!("listing the containers of {what}")))?;
    let ids: Vec<String> = containers.into_iter().filter_map(|c| c.id).collect();
    if how.stop_first {
        // All at once, as compose stops a project: each container gets its grace period in
        // parallel rather than one after another.
        let stops = ids
            .iter()
            .map(|id| docker.stop_container(id, Some(StopContainerOptionsBuilder::default().t(10).build())));
        let _ = futures_util::future::join_all(stops).await;
    }
    for id in ids {
        match docker
            .remove_container(&id, Some(RemoveContainerOptionsBuilder::default().force(true).build()))
            .await
        {
            Ok(()) => removed.containers += 1,
            Err(e) if gone(&e) => {}
            Err(e) => return Err(api(format!("removing container {id}"))(e)),
        }
    }
    let networks = docker
        .list_networks(Some(ListNetworksOptionsBuilder::default().filters(&filter).build()))
        .await
        .map_err(api(format!("listing the networks of {what}")))?;
    for name in networks.into_iter().filter_map(|n| n.name) {
        match docker.remove_network(&name).await {
            Ok(()) => removed.networks += 1,
            Err(e) if gone(&e) => {}
            Err(e) if how.strict => return Err(api(format!("removing network {name}"))(e)),
            Err(_) => {}
        }
    }
    if how.volumes {
        let list = docker
            .list_volumes(Some(ListVolumesOptionsBuilder::default().filters(&filter).build()))
            .await
            .map_err(api(format!("listing the volumes of {what}")))?;
        for v in list.volumes.unwrap_or_default() {
            match docker.remove_volume(&v.name, None::<bollard::query_parameters::RemoveVolumeOptions>).await
            {
                Ok(()) => removed.volumes += 1,
                Err(e) if gone(&e) => {}
                Err(e) if how.strict => return Err(api(format!("removing volume {}", v.name))(e)),
                Err(_) => {}
            }
        }
    }
    Ok(removed)
}

/// The running container that publishes host `port`, by name, if Docker knows one (to say who
/// holds a port a stack needs). `None` when no container does or the engine cannot be asked.
pub async fn port_holder(engine: &Engine, port: u16) -> Option<String> {
    let containers =
        engine.docker().list_containers(Some(ListContainersOptionsBuilder::default().build())).await.ok()?;
    containers
        .into_iter()
        .find(|c| c.ports.iter().flatten().any(|p| p.public_port == Some(port)))
        .and_then(|c| c.names?.first().map(|n| n.trim_start_matches('/').to_owned()))
}

/// A container's output as it comes (`docker logs [--follow] [--tail N]`): chunks of text,
/// stdout and stderr interleaved; with `follow` the stream ends when the container stops.
pub fn logs(
    engine: &Engine,
    container: &str,
    follow: bool,
    tail: Option<usize>,
) -> impl futures_util::Stream<Item = Result<String, StackError>> + use<> {
    let tail = tail.map_or_else(|| "all".to_owned(), |n| n.to_string());
    let options = LogsOptionsBuilder::default().stdout(true).stderr(true).follow(follow).tail(&tail).build();
    let what = format!("the logs of {container}");
    engine.docker().logs(container, Some(options)).map(move |chunk| {
        chunk
            .map(|c| c.to_string())
            .map_err(|source| StackError::Engine(EngineError::Api { what: what.clone(), source }))
    })
}
