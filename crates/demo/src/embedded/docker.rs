//! The Docker runtime's start steps (`--runtime docker`): the service image built offline from
//! this binary, the shipped compose files (`deployments/`, compiled in and written to the state
//! directory) brought up through the Engine API by `compose-engine`, and health checked twice —
//! the engine's health status and our own HTTPS `readyz` probe from the host. The checks and
//! flows that follow are the embedded runtime's, against the published ports.
//!
//! The stack stays up after the run (a second run reuses it); `demo down` removes it.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use compose_engine::Engine;
use compose_engine::model::{Condition, Env, Project};
use compose_engine::stack::{self, UpOptions};

use super::{Ctx, Stack};
use crate::engine::{Phase, Plan, Step, StepError};

/// The compose files and their configuration, as shipped.
const FILES: [(&str, &str); 9] = [
    ("kms/compose.yml", include_str!("../../../../deployments/kms/compose.yml")),
    ("kms/config/kms.yml", include_str!("../../../../deployments/kms/config/kms.yml")),
    (
        "kms/config/kms-with-identity.yml",
        include_str!("../../../../deployments/kms/config/kms-with-identity.yml"),
    ),
    ("kms/config/demo-seed.yml", include_str!("../../../../deployments/kms/config/demo-seed.yml")),
    ("identity/compose.yml", include_str!("../../../../deployments/identity/compose.yml")),
    ("identity/config/identity.yml", include_str!("../../../../deployments/identity/config/identity.yml")),
    ("identity/config/demo-seed.yml", include_str!("../../../../deployments/identity/config/demo-seed.yml")),
    ("all/compose.yml", include_str!("../../../../deployments/all/compose.yml")),
    ("README.md", include_str!("../../../../deployments/README.md")),
];

/// What the Docker steps share.
#[derive(Default)]
pub(crate) struct DockerCtx {
    engine: OnceLock<Engine>,
    image: OnceLock<String>,
    pub(crate) project: OnceLock<Project>,
    /// This run's id (the label on everything it creates), set before anything is created.
    run_id: OnceLock<String>,
    /// Set when every service is healthy: nothing to roll back.
    up_done: std::sync::atomic::AtomicBool,
}

fn free_port() -> Result<u16, StepError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| StepError::from_error("cannot find a free local port", &e))
}

/// The host port of a service's API for this state directory: chosen free once, then kept in
/// `STATE/docker-ports/<service>` so the next run finds the same configuration and reuses the
/// running containers.
fn port(root: &Path, service: &str) -> Result<u16, StepError> {
    let dir = root.join("docker-ports");
    let path = dir.join(service);
    if let Some(port) = std::fs::read_to_string(&path).ok().and_then(|t| t.trim().parse().ok()) {
        return Ok(port);
    }
    let port = free_port()?;
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, port.to_string()))
        .map_err(|e| StepError::from_error(format!("cannot write {}", path.display()), &e))?;
    Ok(port)
}

/// Before anything is created: every fixed host port must be free, or held by this project's
/// own container (a reuse). Otherwise fail naming the holder when Docker knows it.
async fn check_host_ports(engine: &Engine, project: &Project, root: &Path) -> Result<(), StepError> {
    let ours = stack::status(engine, &project.name).await.map_err(|e| StepError::new(e.to_string()))?;
    for (name, service) in &project.services {
        for port in service.ports.iter().filter_map(|p| p.published) {
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                continue;
            }
            if ours.iter().any(|s| s.ports.iter().any(|p| p.contains(&format!(":{port} ->")))) {
                continue;
            }
            let holder = docker_holder(engine, port).await.map_or_else(
                || format!("another process (`ss -ltnp 'sport = :{port}'` names it)"),
                |c| format!("the container {c}"),
            );
            return Err(StepError::new(format!("host port {port} for {name} is taken by {holder}"))
                .with_hint(format!(
                    "stop it, or remove {} so the next run picks a free port",
                    root.join("docker-ports").join(name).display()
                )));
        }
    }
    Ok(())
}

async fn docker_holder(engine: &Engine, port: u16) -> Option<String> {
    let options = bollard::query_parameters::ListContainersOptionsBuilder::default().build();
    let containers = engine.docker().list_containers(Some(options)).await.ok()?;
    containers
        .into_iter()
        .find(|c| c.ports.iter().flatten().any(|p| p.public_port == Some(port)))
        .and_then(|c| c.names?.first().map(|n| n.trim_start_matches('/').to_owned()))
}

fn write_files(root: &Path) -> std::io::Result<()> {
    for (rel, text) in FILES {
        let path = root.join("deployments").join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, text)?;
    }
    Ok(())
}

fn engine(c: &Ctx) -> Result<&Engine, StepError> {
    c.docker.engine.get().ok_or_else(|| StepError::new("no Docker engine"))
}

/// The start steps for `stack`.
pub(crate) fn steps(plan: Plan<Ctx>, stack: Stack, health_timeout: Duration) -> Plan<Ctx> {
    let services: &'static [&'static str] = match stack {
        Stack::Kms => &["kms"],
        Stack::Identity => &["identity"],
        Stack::All => &["identity", "kms"],
    };
    let mut plan = plan
        .step(
            Step::new("image.build", Phase::Setup, |c: Arc<Ctx>| async move {
                let engine = Engine::connect(Duration::from_secs(2))
                    .await
                    .map_err(|e| StepError::from_error("the Docker engine is not reachable", &e))?;
                let binary = std::env::current_exe()
                    .map_err(|e| StepError::from_error("cannot find this program's binary", &e))?;
                let image = compose_engine::image::ensure_service_image(&engine, &binary)
                    .await
                    .map_err(|e| StepError::from_error("cannot build the service image", &e))?;
                let _ = c.docker.image.set(image.tag);
                let _ = c.docker.engine.set(engine);
                Ok(())
            })
            .after(&["state.prepare"])
            .critical(),
        )
        .step(
            Step::new("stack.up", Phase::Start, move |c: Arc<Ctx>| async move {
                let state = c.state()?;
                write_files(state.root()).map_err(|e| {
                    StepError::from_error("cannot write the compose files into the state directory", &e)
                })?;
                let meta = std::fs::metadata(state.root())
                    .map_err(|e| StepError::from_error("cannot read the state directory", &e))?;
                let image = c.docker.image.get().ok_or_else(|| StepError::new("no image"))?;
                let env = Env::new()
                    .var("DEMO_IMAGE", image)
                    .var("DEMO_STATE_DIR", state.root().display().to_string())
                    .var("DEMO_UID", std::os::unix::fs::MetadataExt::uid(&meta).to_string())
                    .var("DEMO_GID", std::os::unix::fs::MetadataExt::gid(&meta).to_string())
                    .var("KMS_PORT", port(state.root(), "kms")?.to_string())
                    .var("IDENTITY_PORT", port(state.root(), "identity")?.to_string());
                let file = state.root().join("deployments").join(stack.command()).join("compose.yml");
                let mut project = compose_engine::model::load(&[file], &env, &[])
                    .map_err(|e| StepError::new(e.to_string()))?;
                // One project per state directory: two environments never share containers.
                let digest = aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA256,
                    state.root().as_os_str().as_encoded_bytes(),
                );
                project.name = format!("{}-{}", project.name, &hex_prefix(digest.as_ref()));
                let engine = engine(&c)?;
                check_host_ports(engine, &project, state.root()).await?;
                if c.reset {
                    // The secrets were just regenerated: the old containers and volumes are useless.
                    stack::down(engine, &project.name, true)
                        .await
                        .map_err(|e| StepError::new(format!("cannot remove the previous stack: {e}")))?;
                }
                let run_id = uuid::Uuid::new_v4().to_string();
                let _ = c.docker.run_id.set(run_id.clone());
                let _ = c.docker.project.set(project.clone());
                stack::up(engine, &project, &UpOptions { run_id, timeout: health_timeout }).await.map_err(
                    |e| {
                        StepError::new(e.to_string()).with_hint(format!(
                            "what this run created is removed again; `docker compose -p {} logs` shows more",
                            project.name
                        ))
                    },
                )?;
                Ok(())
            })
            .after(&["image.build"])
            .critical(),
        );
    // Teardown always runs: a start that failed or was interrupted (Ctrl-C) leaves nothing it
    // created behind. A stack that came up stays up (`demo down` removes it).
    plan = plan.step(Step::new("stack.rollback", Phase::Teardown, |c: Arc<Ctx>| async move {
        if c.docker.up_done.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let (Some(engine), Some(project), Some(run_id)) =
            (c.docker.engine.get(), c.docker.project.get(), c.docker.run_id.get())
        else {
            return Ok(());
        };
        stack::remove_run(engine, &project.name, run_id)
            .await
            .map_err(|e| StepError::new(format!("cannot roll back the failed start: {e}")))
    }));
    for (i, service) in services.iter().enumerate() {
        let id = format!("health.{service}");
        let after: Vec<String> = if i == 0 {
            vec!["stack.up".into()]
        } else {
            vec!["stack.up".into(), format!("health.{}", services[i - 1])]
        };
        let after_refs: Vec<&str> = after.iter().map(String::as_str).collect();
        plan = plan.step(
            Step::new(&id, Phase::Health, move |c: Arc<Ctx>| async move {
                let project = c.docker.project.get().ok_or_else(|| StepError::new("the stack is not up"))?;
                let engine = engine(&c)?;
                stack::wait_for(engine, project, service, Condition::Healthy, health_timeout)
                    .await
                    .map_err(|e| StepError::new(e.to_string()))?;
                let (api_port, admin_port) = if *service == "kms" { (8081, 9081) } else { (8082, 9082) };
                let api = stack::published(engine, project, service, api_port).await;
                let admin = stack::published(engine, project, service, admin_port).await;
                let (Some(api), Some(admin)) = (api, admin) else {
                    return Err(StepError::new(format!("{service}'s ports are not published")));
                };
                let ca = c.state()?.pki_dir().join("ca-bundle.pem");
                super::wait_ready(service, admin, &ca, health_timeout).await?;
                let tls = pki::client_config_for(&pki::PkiDir::new(c.state()?.pki_dir()), None)
                    .map_err(|e| StepError::from_error("cannot trust the demo CA", &e))?;
                let host = format!("{service}.demo.local");
                let client = reqwest::Client::builder()
                    .tls_backend_preconfigured(tls)
                    .resolve(&host, api)
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| StepError::from_error("cannot build the HTTPS client", &e))?;
                if i + 1 == services.len() {
                    c.docker.up_done.store(true, std::sync::atomic::Ordering::SeqCst);
                }
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
            .after(&after_refs)
            .timeout(health_timeout * 2 + Duration::from_secs(5))
            .critical(),
        );
    }
    plan
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

fn projects(state_root: &Path) -> Vec<String> {
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, state_root.as_os_str().as_encoded_bytes());
    let suffix = hex_prefix(digest.as_ref());
    ["kms", "identity", "all"].iter().map(|s| format!("demo-{s}-{suffix}")).collect()
}

/// `demo status`: the running stacks of a state directory, by project.
pub async fn status(state_root: &Path) -> Result<Vec<(String, Vec<stack::ServiceStatus>)>, String> {
    let engine = Engine::connect(Duration::from_secs(2)).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for project in projects(state_root) {
        let services = stack::status(&engine, &project).await.map_err(|e| e.to_string())?;
        if !services.is_empty() {
            out.push((project, services));
        }
    }
    Ok(out)
}

/// `demo down`: removes the stack of a state directory (volumes too with `volumes`).
pub async fn down(state_root: &Path, volumes: bool) -> Result<Vec<String>, String> {
    let engine = Engine::connect(Duration::from_secs(2)).await.map_err(|e| e.to_string())?;
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, state_root.as_os_str().as_encoded_bytes());
    let suffix = hex_prefix(digest.as_ref());
    let mut removed = Vec::new();
    for stack in ["kms", "identity", "all"] {
        let project = format!("demo-{stack}-{suffix}");
        stack::down(&engine, &project, volumes).await.map_err(|e| e.to_string())?;
        removed.push(project);
    }
    Ok(removed)
}
