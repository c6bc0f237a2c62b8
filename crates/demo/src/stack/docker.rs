//! The Docker runtime's start steps (`--runtime docker`): the service image built offline from
//! this binary, the shipped compose files (`deployments/`, compiled in and written to the state
//! directory) brought up through the Engine API by `compose-engine`, and health checked twice —
//! the engine's health status and our own HTTPS `readyz` probe from the host. The checks and
//! flows that follow are the embedded runtime's, against the published ports.
//!
//! The stack stays up after the run (a second run reuses it); `demo down` removes it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use compose_engine::Engine;
use compose_engine::image::ImageSpec;
use compose_engine::model::{Condition, Env, Project};
use compose_engine::stack::{self, RunLabel, UpOptions};

use super::{Ctx, Profile, Stack, id};
use crate::engine::{Phase, Plan, Step, StepError};
use crate::state::State;

/// The compose files and their configuration, as shipped.
const FILES: [(&str, &str); 25] = [
    ("kms/compose.yml", include_str!("../../../../deployments/kms/compose.yml")),
    ("kms/compose.ci.yml", include_str!("../../../../deployments/kms/compose.ci.yml")),
    ("kms/compose.prod.yml", include_str!("../../../../deployments/kms/compose.prod.yml")),
    ("kms/compose.dev.yml", include_str!("../../../../deployments/kms/compose.dev.yml")),
    ("kms/config/kms-dev.yml", include_str!("../../../../deployments/kms/config/kms-dev.yml")),
    (
        "kms/config/kms-with-identity-dev.yml",
        include_str!("../../../../deployments/kms/config/kms-with-identity-dev.yml"),
    ),
    ("kms/config/kms.yml", include_str!("../../../../deployments/kms/config/kms.yml")),
    (
        "kms/config/kms-with-identity.yml",
        include_str!("../../../../deployments/kms/config/kms-with-identity.yml"),
    ),
    ("kms/config/demo-seed.yml", include_str!("../../../../deployments/kms/config/demo-seed.yml")),
    ("identity/compose.yml", include_str!("../../../../deployments/identity/compose.yml")),
    ("identity/compose.ci.yml", include_str!("../../../../deployments/identity/compose.ci.yml")),
    ("identity/compose.prod.yml", include_str!("../../../../deployments/identity/compose.prod.yml")),
    ("identity/compose.dev.yml", include_str!("../../../../deployments/identity/compose.dev.yml")),
    (
        "identity/config/identity-dev.yml",
        include_str!("../../../../deployments/identity/config/identity-dev.yml"),
    ),
    ("identity/config/identity.yml", include_str!("../../../../deployments/identity/config/identity.yml")),
    ("identity/config/demo-seed.yml", include_str!("../../../../deployments/identity/config/demo-seed.yml")),
    ("all/compose.yml", include_str!("../../../../deployments/all/compose.yml")),
    ("all/compose.ci.yml", include_str!("../../../../deployments/all/compose.ci.yml")),
    ("all/compose.prod.yml", include_str!("../../../../deployments/all/compose.prod.yml")),
    ("all/compose.dev.yml", include_str!("../../../../deployments/all/compose.dev.yml")),
    ("postgres/init/10-identity.sql", include_str!("../../../../deployments/postgres/init/10-identity.sql")),
    ("postgres/docker-entrypoint.sh", include_str!("../../../../deployments/postgres/docker-entrypoint.sh")),
    ("telemetry/compose.yml", include_str!("../../../../deployments/telemetry/compose.yml")),
    (
        "telemetry/config/otel-collector.yml",
        include_str!("../../../../deployments/telemetry/config/otel-collector.yml"),
    ),
    ("README.md", include_str!("../../../../deployments/README.md")),
];

/// The services' image: `demo-security/demo:<hash>`, this binary at `/demo` as the entrypoint,
/// run as nobody, the data directory and `/tmp` writable (the compose files mount there).
pub const SERVICE_IMAGE: ImageSpec<'static> = ImageSpec {
    repository: "demo-security/demo",
    title: "demo-security",
    entrypoint_name: "demo",
    user: "65534:65534",
    writable_dirs: &["/var/lib/demo", "/tmp"],
};

/// The label on every object a run creates, its value the run's id: what a dead run left is
/// found by it.
pub const RUN_LABEL: &str = "demo-security.run";

/// The telemetry stack's collector service (compose profile `telemetry`).
const COLLECTOR: &str = "otel-collector";

/// How long a pull of a third-party image may take before the run goes on without it.
const PULL_TIMEOUT: Duration = Duration::from_secs(60);

/// What the Docker steps share.
#[derive(Default)]
pub(crate) struct DockerCtx {
    engine: OnceLock<Engine>,
    image: OnceLock<String>,
    pub(crate) project: OnceLock<Project>,
    /// Our own readiness probe (HTTPS `readyz` from the host), which decides `service_healthy`
    /// as soon as it answers instead of at the engine's next healthcheck.
    probe: OnceLock<stack::ReadyProbe>,
    /// The API ports of the KMS and Identity, the same on the host and in their containers.
    api_ports: OnceLock<(u16, u16)>,
    telemetry: OnceLock<Project>,
    /// This run's id (the label on everything it creates), set before anything is created.
    run_id: OnceLock<String>,
    /// Set when every service is healthy: nothing to roll back.
    pub(crate) up_done: std::sync::atomic::AtomicBool,
    /// `STATE/docker.lock`, held for the whole run: one run per state directory at a time.
    /// Taken by `state.prepare` (before a reset) when the directory exists, else by `stack.up`.
    pub(crate) lock: OnceLock<std::fs::File>,
}

/// The port of a service's API for this state directory, the same on the host and inside its
/// container (so the issuer and every advertised URL work in both places): the design's port
/// when free, else a free one, chosen once and kept in `STATE/docker-ports/<service>` so the next
/// run finds the same configuration and reuses the running containers. The claim keeps other
/// demo runs off the port until this run's containers publish it.
fn port(root: &Path, service: &str, preferred: u16) -> Result<crate::ports::Claim, StepError> {
    let dir = State::known(root).docker_ports_dir();
    let path = dir.join(service);
    if let Some(port) = std::fs::read_to_string(&path).ok().and_then(|t| t.trim().parse().ok()) {
        return Ok(crate::ports::keep(port));
    }
    let claim = crate::ports::claim(preferred)
        .map_err(|e| StepError::from_error("cannot find a free local port", &e))?;
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, claim.port.to_string()))
        .map_err(|e| StepError::from_error(format!("cannot write {}", path.display()), &e))?;
    Ok(claim)
}

/// Before anything is created: every fixed host port must be free, or held by this project's
/// own container (a reuse). Otherwise fail naming the holder when Docker knows it.
async fn check_host_ports(engine: &Engine, project: &Project, root: &Path) -> Result<(), StepError> {
    let ours = stack::status(engine, &project.name).await.map_err(|e| StepError::of(&e))?;
    for (name, service) in &project.services {
        for port in service.ports.iter().filter_map(|p| p.published) {
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                continue;
            }
            if ours.iter().any(|s| s.ports.iter().any(|p| p.contains(&format!(":{port} ->")))) {
                continue;
            }
            let holder = stack::port_holder(engine, port).await;
            let ours = holder
                .as_deref()
                .is_some_and(|c| projects(root).iter().any(|p| c.starts_with(&format!("{p}-"))));
            let hint = if ours {
                // Another stack (or profile) of this same state directory: they share its ports.
                format!(
                    "another stack of this state directory runs: `demo down --state-dir {}` first",
                    root.display()
                )
            } else {
                format!(
                    "stop it, or remove {} so the next run picks a free port",
                    State::known(root).docker_ports_dir().join(name).display()
                )
            };
            let holder = holder.map_or_else(
                || format!("another process (`ss -ltnp 'sport = :{port}'` names it)"),
                |c| format!("the container {c}"),
            );
            return Err(
                StepError::new(format!("host port {port} for {name} is taken by {holder}")).with_hint(hint)
            );
        }
    }
    Ok(())
}

fn write_files(root: &Path) -> std::io::Result<()> {
    for (rel, text) in FILES {
        let path = State::known(root).deployments_dir().join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, text)?;
    }
    Ok(())
}

/// Waits for `service` of the stack to be healthy by the engine's healthcheck.
pub(crate) async fn wait_healthy(c: &Ctx, service: &str, timeout: Duration) -> Result<(), StepError> {
    let project = c.docker.project.get().ok_or_else(|| StepError::new("the stack is not up"))?;
    stack::wait_for(engine(c)?, project, service, Condition::Healthy, timeout)
        .await
        .map_err(|e| StepError::of(&e))
}

fn engine(c: &Ctx) -> Result<&Engine, StepError> {
    c.docker.engine.get().ok_or_else(|| StepError::new("no Docker engine"))
}

/// The suffix that makes a state directory's projects its own: the first 4 bytes of the SHA-256
/// of its path, in hex.
fn suffix(root: &Path) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, root.as_os_str().as_encoded_bytes());
    digest.as_ref().iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// Every compose project a state directory can have, products first, telemetry (whose network
/// the products join) last.
fn projects(root: &Path) -> Vec<String> {
    let suffix = suffix(root);
    ["kms", "identity", "all", "kms-prod", "identity-prod", "all-prod", "telemetry"]
        .iter()
        .map(|s| format!("demo-{s}-{suffix}"))
        .collect()
}

/// The telemetry network of a state directory, shared by its stacks and the collector.
fn telemetry_network(root: &Path) -> String {
    format!("demo-telemetry-{}", suffix(root))
}

/// One demo run per state directory at a time: the lock file stays locked for the run (the OS
/// drops the lock when the process ends, however it ends).
pub(crate) fn lock_state(root: &Path) -> Result<std::fs::File, StepError> {
    let (path, file) = open_lock(root);
    let file = file.map_err(|e| StepError::from_error(format!("cannot open {}", path.display()), &e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(StepError::new(format!("another demo run is using {} right now", root.display()))
                .with_hint("wait for it to finish, or use another --state-dir"))
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(StepError::from_error(format!("cannot lock {}", path.display()), &e))
        }
    }
}

/// `STATE/docker.lock`, opened (created if missing, never truncated) but not yet locked.
fn open_lock(root: &Path) -> (PathBuf, std::io::Result<std::fs::File>) {
    let path = State::known(root).docker_lock();
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path);
    (path, file)
}

/// The journal of starts in progress: `STATE/docker-runs/<run id>` lists the projects a run is
/// creating objects in. A run removes its entry once its stack is healthy or rolled back, so an
/// entry found while holding the state lock belongs to a run that died mid-start (killed,
/// crashed): its objects carry its run label and are removed.
fn journal(root: &Path) -> PathBuf {
    State::known(root).docker_runs_dir()
}

/// Removes what dead runs left (see [`journal`]); returns their ids.
async fn remove_dead_runs(engine: &Engine, root: &Path) -> Result<Vec<String>, String> {
    let dir = journal(root);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let run_id = entry.file_name().to_string_lossy().into_owned();
        // An entry we cannot read names no project: nothing to find by it. Drop it.
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for project in text.lines().filter(|l| !l.trim().is_empty()) {
            stack::remove_run(engine, project.trim(), &RunLabel::new(RUN_LABEL, &run_id))
                .await
                .map_err(|e| format!("cannot remove what run {run_id} left in {project}: {e}"))?;
        }
        std::fs::remove_file(entry.path())
            .map_err(|e| format!("cannot remove {}: {e}", entry.path().display()))?;
        removed.push(run_id);
    }
    Ok(removed)
}

fn journal_entry(root: &Path, run_id: &str) -> PathBuf {
    journal(root).join(run_id)
}

/// Removes a run's journal entry: its start is over (healthy, or rolled back).
fn settle(root: &Path, run_id: &str) -> Result<(), StepError> {
    let entry = journal_entry(root, run_id);
    match std::fs::remove_file(&entry) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StepError::from_error(format!("cannot remove {}", entry.display()), &e)),
    }
}

/// The compose files for `stack` in `dir`: `compose.yml`, then the profile's override
/// (`compose.dev.yml`, `compose.ci.yml`, `compose.prod.yml`) — as `docker compose -f A -f B`.
fn compose_files(dir: &Path, stack: &str, profile: Profile) -> Result<Vec<PathBuf>, StepError> {
    let base = dir.join(stack).join("compose.yml");
    if profile == Profile::Demo {
        return Ok(vec![base]);
    }
    let overlay = dir.join(stack).join(format!("compose.{}.yml", profile.name()));
    if !overlay.is_file() {
        return Err(StepError::new(format!(
            "the {} profile needs {}, which is missing",
            profile.name(),
            overlay.display()
        ))
        .with_hint("copy it from the shipped deployments/, or choose another --profile"));
    }
    Ok(vec![base, overlay])
}

/// Makes sure the collector's image is here (pulling it with progress where a registry
/// answers); `false`, with a note saying why, when it cannot be had.
async fn collector_image(c: &Ctx, engine: &Engine, image: &str) -> bool {
    let layers = std::sync::Mutex::new(std::collections::BTreeMap::<String, (u64, u64)>::new());
    let observer = c.observer.clone();
    let progress = move |p: &compose_engine::image::PullProgress| {
        let Ok(mut layers) = layers.lock() else { return };
        if let Some(bytes) = p.bytes {
            layers.insert(p.layer.clone(), bytes);
        }
        let (done, total) = layers.values().fold((0, 0), |(d, t), (a, b)| (d + a, t + b));
        let line = if total > 0 {
            format!("pulling {image}: {:.1} / {:.1} MB", done as f64 / 1e6, total as f64 / 1e6)
        } else {
            format!("pulling {image}: {}", p.status)
        };
        observer.progress(id::STACK_UP.as_str(), &line);
    };
    match compose_engine::image::ensure_third_party(engine, image, PULL_TIMEOUT, &progress).await {
        Ok(_) => true,
        Err(e) => {
            c.note(format!(
                "telemetry is off: {e}. The stacks run without a collector (telemetry is optional); \
                 `docker load` the image, or run where a registry answers, to have it"
            ));
            false
        }
    }
}

/// Loads a project, naming it for this state directory: two environments never share objects.
/// `variant` (`-prod`) keeps a profile's objects apart from the others'.
fn load_project(
    files: &[PathBuf],
    env: &Env,
    profiles: &[String],
    root: &Path,
    variant: &str,
) -> Result<Project, StepError> {
    let mut project = compose_engine::model::load(files, env, profiles).map_err(|e| {
        StepError::new(e.to_string())
            .with_hint("fix the compose file named above; `docker compose config` checks it too")
    })?;
    project.name = format!("{}{variant}-{}", project.name, suffix(root));
    Ok(project)
}

/// The start steps for `stack`.
pub(crate) fn steps(plan: Plan<Ctx>, stack: Stack, health_timeout: Duration, profile: Profile) -> Plan<Ctx> {
    let dev = profile == Profile::Dev;
    // The fixture issuer is demo data: prod runs no partner and trusts no other issuer.
    let partner = stack == Stack::All && profile != Profile::Prod;
    let services: &'static [&'static str] = match stack {
        Stack::Kms => &["kms"],
        Stack::Identity => &["identity"],
        Stack::All => &["identity", "kms"],
    };
    let mut plan = plan
        .step(
            Step::new(id::IMAGE_BUILD, Phase::Setup, |c: Arc<Ctx>| async move {
                let engine = Engine::connect(Duration::from_secs(2))
                    .await
                    .map_err(|e| StepError::from_error("the Docker engine is not reachable", &e))?;
                let binary = match &c.options.service_binary {
                    Some(binary) => binary.clone(),
                    None => std::env::current_exe()
                        .map_err(|e| StepError::from_error("cannot find this program's binary", &e))?,
                };
                let image = compose_engine::image::ensure_service_image(&engine, &binary, &SERVICE_IMAGE)
                    .await
                    .map_err(|e| StepError::from_error("cannot build the service image", &e))?;
                for note in &image.notes {
                    c.note(note);
                }
                let _ = c.docker.image.set(image.tag);
                let _ = c.docker.engine.set(engine);
                Ok(())
            })
            .after(&[id::STATE_PREPARE])
            .critical(),
        )
        .step(
            Step::new(id::STACK_UP, Phase::Start, move |c: Arc<Ctx>| async move {
                let state = c.state()?;
                let root = state.root();
                if c.docker.lock.get().is_none() {
                    let _ = c.docker.lock.set(lock_state(root)?);
                }
                let dir = match &c.options.compose_dir {
                    Some(dir) => dir.clone(),
                    None => {
                        write_files(root).map_err(|e| {
                            StepError::from_error(
                                "cannot write the compose files into the state directory",
                                &e,
                            )
                        })?;
                        state.deployments_dir()
                    }
                };
                let engine = engine(&c)?;
                let dead = remove_dead_runs(engine, root).await.map_err(|e| {
                    StepError::new(e).with_hint(format!(
                        "remove the stack with `demo down --state-dir {}` and run again",
                        root.display()
                    ))
                })?;
                if !dead.is_empty() {
                    c.note(format!(
                        "removed what {} earlier run(s) left behind when they stopped mid-start (run {})",
                        dead.len(),
                        dead.join(", ")
                    ));
                }
                let meta = std::fs::metadata(root)
                    .map_err(|e| StepError::from_error("cannot read the state directory", &e))?;
                let image = c.docker.image.get().ok_or_else(|| StepError::new("no image"))?;
                // Held until the step ends: by then the containers publish the ports.
                let kms_port = port(root, "kms", crate::ports::KMS_PORT)?;
                let identity_port = port(root, "identity", crate::ports::IDENTITY_PORT)?;
                let _ = c.docker.api_ports.set((kms_port.port, identity_port.port));
                let env = Env::new()
                    .var("DEMO_IMAGE", image)
                    .var("DEMO_STATE_DIR", root.display().to_string())
                    .var("DEMO_UID", std::os::unix::fs::MetadataExt::uid(&meta).to_string())
                    .var("DEMO_GID", std::os::unix::fs::MetadataExt::gid(&meta).to_string())
                    .var("DEMO_TELEMETRY_NETWORK", telemetry_network(root))
                    .var("KMS_PORT", kms_port.port.to_string())
                    .var("IDENTITY_PORT", identity_port.port.to_string());
                // The one variable taken from the caller's environment, as plain compose does: a
                // collector image loaded under another name (not a secret).
                let env = match std::env::var("OTEL_COLLECTOR_IMAGE") {
                    Ok(image) if !image.is_empty() => env.var("OTEL_COLLECTOR_IMAGE", image),
                    _ => env,
                };
                let profiles = vec![c.options.profile.name().to_owned(), "telemetry".to_owned()];
                let mut telemetry =
                    load_project(&[dir.join("telemetry").join("compose.yml")], &env, &profiles, root, "")?;
                let collector = telemetry.services.get(COLLECTOR).map(|s| s.image.clone());
                let keep = match (c.options.telemetry, collector) {
                    (true, Some(image)) => collector_image(&c, engine, &image).await,
                    (false, Some(_)) => {
                        c.note("telemetry is off (--no-telemetry)");
                        false
                    }
                    (_, None) => false,
                };
                if !keep {
                    telemetry.services.remove(COLLECTOR);
                    // A collector an earlier run started is not wanted now.
                    stack::remove_service(engine, &telemetry.name, COLLECTOR)
                        .await
                        .map_err(|e| StepError::from_error("cannot remove the unwanted collector", &e))?;
                }
                let env = if c.options.profile == Profile::Dev {
                    let observer = c.observer.clone();
                    let progress = move |p: &compose_engine::image::PullProgress| {
                        observer.progress(id::STACK_UP.as_str(), &format!("PostgreSQL image: {}", p.status));
                    };
                    let image = super::postgres::ensure_image(engine, &progress).await?;
                    c.note(image.how);
                    env.var("DEMO_POSTGRES_IMAGE", image.reference)
                } else {
                    env
                };
                if stack == Stack::All {
                    super::federation::prepare_docker(&c, partner)?;
                }
                let files = compose_files(&dir, stack.command(), c.options.profile)?;
                // prod has its own project and volumes: it never mounts data a demo run seeded.
                let variant = if c.options.profile == Profile::Prod { "-prod" } else { "" };
                let project = load_project(&files, &env, &profiles[..1], root, variant)?;
                check_host_ports(engine, &project, root).await?;
                if c.options.reset {
                    // The secrets were just regenerated: every stack of this state directory is
                    // useless now, with its volumes (the collector too: it holds the old CA).
                    // Products first, then the telemetry network they were attached to.
                    for name in projects(root) {
                        stack::down(engine, &name, true)
                            .await
                            .map_err(|e| StepError::from_error("cannot remove the previous stack", &e))?;
                    }
                }
                let run_id = uuid::Uuid::now_v7().to_string();
                let entry = journal_entry(root, &run_id);
                std::fs::create_dir_all(journal(root))
                    .and_then(|()| std::fs::write(&entry, format!("{}\n{}\n", project.name, telemetry.name)))
                    .map_err(|e| StepError::from_error(format!("cannot write {}", entry.display()), &e))?;
                let _ = c.docker.run_id.set(run_id.clone());
                let _ = c.docker.project.set(project.clone());
                let _ = c.docker.telemetry.set(telemetry.clone());
                let options = UpOptions { run: RunLabel::new(RUN_LABEL, run_id), timeout: health_timeout };
                // The rollback removes what this run created, logs included: the error carries
                // the engine's words and the log tail, so the hint points at nothing that is gone.
                let hint = "fix what the cause names, then run again (what this run created was removed)";
                let probe = ready_probe(engine, state.ca_bundle());
                stack::up(engine, &telemetry, &options)
                    .await
                    .map_err(|e| StepError::of(&e).with_hint(hint))?;
                stack::up_with(engine, &project, &options, Some(&probe))
                    .await
                    .map_err(|e| StepError::of(&e).with_hint(hint))?;
                let _ = c.docker.probe.set(probe);
                Ok(())
            })
            .after(&[id::IMAGE_BUILD])
            .critical(),
        );
    let health = |service: &str| match service {
        "kms" => id::HEALTH_KMS,
        "postgres" => id::HEALTH_POSTGRES,
        _ => id::HEALTH_IDENTITY,
    };
    // The dev profile's database first: the chain is PostgreSQL → Identity → KMS.
    let services: &'static [&'static str] = match (dev, stack) {
        (false, _) => services,
        (true, Stack::Kms) => &["postgres", "kms"],
        (true, Stack::Identity) => &["postgres", "identity"],
        (true, Stack::All) => &["postgres", "identity", "kms"],
    };
    if dev {
        plan = plan.step(
            Step::new(id::HEALTH_POSTGRES, Phase::Health, move |c: Arc<Ctx>| async move {
                wait_healthy(&c, "postgres", health_timeout).await
            })
            .after(&[id::STACK_UP])
            .verifies("the database container is healthy by its healthcheck (pg_isready over TCP, which passes once its first-start setup is done)")
            .timeout(health_timeout + Duration::from_secs(5))
            .critical(),
        );
    }
    for (i, service) in services.iter().enumerate().filter(|(_, s)| **s != "postgres") {
        let mut after = vec![id::STACK_UP];
        if i > 0 {
            after.push(health(services[i - 1]));
        }
        plan = plan.step(
            Step::new(health(service), Phase::Health, move |c: Arc<Ctx>| async move {
                let project = c.docker.project.get().ok_or_else(|| StepError::new("the stack is not up"))?;
                let engine = engine(&c)?;
                let probe = c.docker.probe.get();
                stack::wait_for_with(engine, project, service, Condition::Healthy, health_timeout, probe)
                    .await
                    .map_err(|e| StepError::of(&e))?;
                // The API listens on the port it is published on (`port`); the admin port is
                // fixed inside and published on any free host port.
                let admin_port = if *service == "kms" { 9081 } else { 9082 };
                let ports = c.docker.api_ports.get().ok_or_else(|| StepError::new("no ports were chosen"))?;
                let api_port = if *service == "kms" { ports.0 } else { ports.1 };
                let api = stack::published(engine, project, service, api_port).await;
                let admin = stack::published(engine, project, service, admin_port).await;
                let (Some(api), Some(admin)) = (api, admin) else {
                    return Err(StepError::new(format!("{service}'s ports are not published")));
                };
                let ca = c.state()?.ca_bundle();
                super::wait_ready(service, admin, &ca, health_timeout).await?;
                let client = super::service_client(c.state()?, &format!("{service}.demo.local"), api)?;
                if *service == "kms" {
                    let _ = c.kms.api.set(api);
                    let _ = c.kms.admin.set(admin);
                    let _ = c.kms.client.set(client);
                } else {
                    let _ = c.identity.api.set(api);
                    let _ = c.identity.admin.set(admin);
                    let _ = c.identity.client.set(client);
                }
                Ok(())
            })
            .after(&after)
            .verifies("the container is healthy by the engine's healthcheck, and readyz answers 200 over TLS 1.3 (our CA) from the host")
            .timeout(health_timeout * 2 + Duration::from_secs(5))
            .critical(),
        );
    }
    // Our probe decided "healthy" early; compose's `--wait` asks the engine's own healthcheck.
    // That answer is checked here, beside the flows rather than before them: a healthcheck that
    // never passes still fails the run (and the start is rolled back), it just does not hold
    // everything else up for the engine's next check interval.
    let last = health(services[services.len() - 1]);
    plan = plan.step(
        Step::new(id::VERIFY_DOCKER_HEALTHCHECKS, Phase::Flows, move |c: Arc<Ctx>| async move {
            let project = c.docker.project.get().ok_or_else(|| StepError::new("the stack is not up"))?;
            let engine = engine(&c)?;
            let fixture: &[&str] = if partner { &["partner"] } else { &[] };
            for service in services.iter().chain(fixture) {
                stack::wait_for(engine, project, service, Condition::Healthy, health_timeout)
                    .await
                    .map_err(|e| StepError::of(&e))?;
            }
            // Healthy by every account: settled. From here a killed run leaves a working stack.
            c.docker.up_done.store(true, std::sync::atomic::Ordering::SeqCst);
            if let Some(run_id) = c.docker.run_id.get() {
                settle(c.state()?.root(), run_id)?;
            }
            Ok(())
        })
        .after(&[last])
        .verifies("the engine's own healthcheck (the compose file's) reports every container healthy, as `docker compose up --wait` requires")
        .timeout(health_timeout + Duration::from_secs(5))
        .critical(),
    );
    if partner { super::federation::docker(plan, health_timeout) } else { plan }
}

/// Our readiness probe for `up`: the service's `readyz` on its published admin port, over TLS
/// 1.3 trusting only the demo CA — the same endpoint the image's healthcheck asks, asked from
/// the host at short intervals instead of once per healthcheck `interval`. The engine's own
/// health status still counts, and an exited or unhealthy container still fails at once.
fn ready_probe(engine: &Engine, ca: PathBuf) -> stack::ReadyProbe {
    let engine = engine.clone();
    std::sync::Arc::new(move |project: &Project, service: &str| {
        let admin = match service {
            "kms" => 9081,
            "identity" => 9082,
            _ => 0,
        };
        let (engine, project, service, ca) =
            (engine.clone(), project.clone(), service.to_owned(), ca.clone());
        Box::pin(async move {
            if admin == 0 {
                return false;
            }
            let Some(addr) = stack::published(&engine, &project, &service, admin).await else { return false };
            let url = format!("https://localhost:{}/readyz", addr.port());
            crate::healthcheck::check(&url, &ca, Duration::from_millis(500)).await.is_ok()
        })
    })
}

/// The teardown: a start that failed or was interrupted (Ctrl-C) leaves nothing it created
/// behind; a stack that came up stays up (`demo down` removes it). Runs in every case.
pub(crate) fn rollback_step() -> Step<Ctx> {
    Step::new(id::STACK_ROLLBACK, Phase::Teardown, |c: Arc<Ctx>| async move {
        let (Some(engine), Some(run_id), Ok(state)) =
            (c.docker.engine.get(), c.docker.run_id.get(), c.state())
        else {
            return Ok(());
        };
        if !c.docker.up_done.load(std::sync::atomic::Ordering::SeqCst) {
            for project in [c.docker.project.get(), c.docker.telemetry.get()].into_iter().flatten() {
                stack::remove_run(engine, &project.name, &RunLabel::new(RUN_LABEL, run_id))
                    .await
                    .map_err(|e| StepError::from_error("cannot roll back the failed start", &e))?;
            }
        }
        // Settled either way: healthy (the entry is gone already), or rolled back.
        settle(state.root(), run_id)
    })
}

/// Before anything else: one run per state directory, locked before a reset can touch it.
pub(crate) fn prepare(c: &Ctx) -> Result<(), StepError> {
    let root = c.options.state.root();
    if State::is_ours(root) {
        let _ = c.docker.lock.set(lock_state(root)?);
    }
    Ok(())
}

/// `demo status`: the running stacks of a state directory, by project.
pub async fn status(state_root: &Path) -> Result<Vec<(String, Vec<stack::ServiceStatus>)>, String> {
    let engine = Engine::connect(Duration::from_secs(2)).await.map_err(|e| crate::error::chain(&e))?;
    let mut out = Vec::new();
    for project in projects(state_root) {
        let services = stack::status(&engine, &project).await.map_err(|e| crate::error::chain(&e))?;
        if !services.is_empty() {
            out.push((project, services));
        }
    }
    Ok(out)
}

/// The state lock for `demo down` and `shutdown()`: a run in progress holds it until it ends, so
/// wait a while, then say so. `None` when there is no state directory to coordinate on.
async fn wait_for_lock(state_root: &Path) -> Result<Option<std::fs::File>, String> {
    let (path, Ok(file)) = open_lock(state_root) else {
        return Ok(None);
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                return Err(format!("cannot lock {} (is another demo run using it?): {e}", path.display()));
            }
        }
    }
}

/// Takes down one stack that a library caller or `--keep-running` started (containers and
/// networks; volumes stay), and the telemetry project when no other stack of the state directory
/// still runs.
pub(crate) async fn down_stack(state_root: &Path, project: &str) -> Result<(), String> {
    let engine = Engine::connect(Duration::from_secs(2)).await.map_err(|e| crate::error::chain(&e))?;
    // Not while another run of this state directory starts: it may be about to use telemetry.
    let _lock = wait_for_lock(state_root).await?;
    stack::down(&engine, project, false).await.map_err(|e| crate::error::chain(&e))?;
    let all = projects(state_root);
    let (telemetry, products) = all.split_last().ok_or("no projects")?;
    for other in products {
        if !stack::status(&engine, other).await.map_err(|e| crate::error::chain(&e))?.is_empty() {
            return Ok(());
        }
    }
    stack::down(&engine, telemetry, false).await.map(drop).map_err(|e| crate::error::chain(&e))
}

/// `demo down`: removes the stacks of a state directory (volumes too with `volumes`), and
/// everything a run that died mid-start left, its volumes included. Waits for a run in progress
/// on the same state directory to finish first. Returns the projects that had something to
/// remove, with what was removed.
pub async fn down(state_root: &Path, volumes: bool) -> Result<Vec<(String, stack::Removed)>, String> {
    let engine = Engine::connect(Duration::from_secs(2)).await.map_err(|e| crate::error::chain(&e))?;
    let _lock = wait_for_lock(state_root).await?;
    remove_dead_runs(&engine, state_root).await?;
    let mut removed = Vec::new();
    for project in projects(state_root) {
        let what = stack::down(&engine, &project, volumes).await.map_err(|e| crate::error::chain(&e))?;
        if !what.is_empty() {
            removed.push((project, what));
        }
    }
    Ok(removed)
}
