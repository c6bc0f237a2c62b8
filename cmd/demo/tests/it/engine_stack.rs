//! The compose engine brings `deployments/all` up through the Engine API with compose's labels:
//! healthy in dependency order, visible to `docker compose -p NAME ps`, reused on a second `up`,
//! and gone after `down`. Needs Docker (and Compose v2 for the `ps` check): skipped loudly
//! without them, a failure under CI.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use compose_engine::model::{Condition, Env};
use compose_engine::stack::{self, RunLabel, UpOptions};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The engine and the service image built from the `demo` binary; `None` (skipped loudly, a
/// failure under CI) without an engine.
async fn engine_and_image() -> Option<(compose_engine::Engine, String)> {
    let engine = match compose_engine::Engine::connect(Duration::from_secs(2)).await {
        Ok(engine) => engine,
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "no Docker engine under CI: {e}");
            eprintln!("SKIPPED: this test needs a Docker engine: {e}");
            return None;
        }
    };
    let image = compose_engine::image::ensure_service_image(
        &engine,
        &assert_cmd::cargo::cargo_bin("demo"),
        &demo::stack::docker::SERVICE_IMAGE,
    )
    .await
    .unwrap();
    Some((engine, image.tag))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_brings_the_all_stack_up_like_compose_and_takes_it_down() {
    let Some((engine, image)) = engine_and_image().await else { return };
    let tmp = tempfile::tempdir().unwrap();
    let state = demo::state::State::ensure(&tmp.path().join("state"), &pki::PkiSpec::demo()).unwrap();
    let meta = std::fs::metadata(state.root()).unwrap();
    let kms_port = free_port();
    let name = format!("demo-engine-test-{}", std::process::id());
    let env = Env::new()
        .var("DEMO_TELEMETRY_NETWORK", format!("{name}-telemetry"))
        .var("DEMO_IMAGE", &image)
        .var("DEMO_STATE_DIR", state.root().display().to_string())
        .var("DEMO_UID", std::os::unix::fs::MetadataExt::uid(&meta).to_string())
        .var("DEMO_GID", std::os::unix::fs::MetadataExt::gid(&meta).to_string())
        .var("KMS_PORT", kms_port.to_string())
        .var("IDENTITY_PORT", free_port().to_string());
    let deployments = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deployments");
    let mut project = compose_engine::model::load(&[deployments.join("all/compose.yml")], &env, &[]).unwrap();
    project.name = name.clone();
    // The telemetry network the stack joins (without the collector: its image is not here).
    let mut telemetry =
        compose_engine::model::load(&[deployments.join("telemetry/compose.yml")], &env, &[]).unwrap();
    telemetry.name = format!("{name}-telemetry");
    assert!(telemetry.services.is_empty(), "the collector is in the `telemetry` profile only");
    let options = UpOptions {
        run: RunLabel::new(demo::stack::docker::RUN_LABEL, "test-run"),
        timeout: Duration::from_secs(90),
    };
    stack::up(&engine, &telemetry, &options).await.unwrap();

    let (engine2, project2, options2, pki_dir) =
        (engine.clone(), project.clone(), options.clone(), pki::PkiDir::new(state.pki_dir()));
    let result = async move {
        let (engine, project, options) = (engine2, project2, options2);
        let first = stack::up(&engine, &project, &options).await.unwrap();
        assert_eq!(
            first.created,
            ["identity", "kms", "partner"],
            "dependency order: Identity healthy, then the KMS (the fixture issuer depends on nothing)"
        );
        for service in ["kms", "partner"] {
            stack::wait_for(&engine, &project, service, Condition::Healthy, options.timeout).await.unwrap();
        }

        // docker compose sees our objects as its own.
        if Command::new("docker").args(["compose", "version"]).output().is_ok_and(|o| o.status.success()) {
            let ps = Command::new("docker")
                .args(["compose", "-p", &project.name, "ps", "--format", "json"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&ps.stdout);
            assert_eq!(text.matches("\"Health\":\"healthy\"").count(), 3, "{text}");
            assert!(
                !String::from_utf8_lossy(&ps.stderr).contains("WARN"),
                "{}",
                String::from_utf8_lossy(&ps.stderr)
            );
        }
        // The KMS answers on its published port.
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(pki::client_config_for(&pki_dir, None).unwrap())
            .resolve("kms.demo.local", std::net::SocketAddr::from(([127, 0, 0, 1], kms_port)))
            .build()
            .unwrap();
        let pools = client
            .get(format!("https://kms.demo.local:{kms_port}/api/v1/pools"))
            .basic_auth("acme-admin", Some("acme-admin-demo"))
            .send()
            .await
            .unwrap();
        assert_eq!(pools.status(), 200);

        let second = stack::up(&engine, &project, &options).await.unwrap();
        assert_eq!(second.reused, ["identity", "kms", "partner"], "an unchanged stack is reused");
        assert!(second.created.is_empty());

        // A changed service (its admin port now published on a fixed host port) is recreated;
        // the unchanged one is kept.
        let mut changed = project.clone();
        let kms = changed.services.get_mut("kms").unwrap();
        let admin = kms.ports.iter_mut().find(|p| p.published.is_none()).unwrap();
        admin.published = Some(free_port());
        let third = stack::up(&engine, &changed, &options).await.unwrap();
        assert_eq!(third.reused, ["identity", "partner"], "unchanged: kept");
        assert_eq!(third.created, ["kms"], "changed: recreated");
        stack::wait_for(&engine, &changed, "kms", Condition::Healthy, options.timeout).await.unwrap();
    };
    let outcome = tokio::spawn(result).await;
    stack::down(&engine, &project.name, true).await.unwrap();
    stack::down(&engine, &telemetry.name, true).await.unwrap();
    let left = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=com.docker.compose.project={}", project.name)])
        .output()
        .unwrap();
    let volumes = Command::new("docker")
        .args([
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("label=com.docker.compose.project={}", project.name),
        ])
        .output()
        .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
    assert!(left.stdout.is_empty() && volumes.stdout.is_empty(), "down left objects behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_that_exits_fails_the_start_at_once_with_its_log_tail() {
    let Some((engine, image)) = engine_and_image().await else { return };
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("compose.yml");
    std::fs::write(
        &file,
        format!(
            "name: broken
services:
  broken:
    image: {}
    command: [serve, kms, --config, /nowhere/kms.yml]
    healthcheck:
      test: [CMD, /demo, healthcheck, \"https://localhost:9081/readyz\", --ca, /nowhere/ca.pem]
      interval: 1s
  waiting:
    image: {}
    command: [--version]
    depends_on:
      broken: {{ condition: service_healthy }}
",
            image, image
        ),
    )
    .unwrap();
    let mut project = compose_engine::model::load(&[file], &Env::new(), &[]).unwrap();
    project.name = format!("demo-engine-fault-{}", std::process::id());
    let options = UpOptions {
        run: RunLabel::new(demo::stack::docker::RUN_LABEL, "test-run"),
        timeout: Duration::from_secs(60),
    };
    let err = stack::up(&engine, &project, &options).await.unwrap_err();
    stack::down(&engine, &project.name, true).await.unwrap();
    let text = err.to_string();
    assert!(text.contains("service broken exited with code 2"), "{text}");
    assert!(text.contains("/nowhere/kms.yml"), "the log tail names the cause: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_shot_dependency_counts_as_done_when_it_exits_0_and_fails_the_start_otherwise() {
    let Some((engine, image)) = engine_and_image().await else { return };
    let tmp = tempfile::tempdir().unwrap();
    // A migration-like one-shot (`demo --version` exits 0, or a bad command exits 2) and a
    // service that may start only once it completed successfully (compose #10596).
    let project = |init_command: &str, name: &str| {
        let file = tmp.path().join(format!("{name}.yml"));
        std::fs::write(
            &file,
            format!(
                "name: {name}
services:
  init:
    image: {tag}
    command: [{init_command}]
  app:
    image: {tag}
    command: [--version]
    depends_on:
      init: {{ condition: service_completed_successfully }}
",
                tag = image
            ),
        )
        .unwrap();
        let mut project = compose_engine::model::load(&[file], &Env::new(), &[]).unwrap();
        project.name = format!("{name}-{}", std::process::id());
        project
    };
    let options = UpOptions {
        run: RunLabel::new(demo::stack::docker::RUN_LABEL, "test-run"),
        timeout: Duration::from_secs(60),
    };
    let good = project("--version", "demo-engine-oneshot");
    let done = stack::up(&engine, &good, &options).await;
    stack::down(&engine, &good.name, true).await.unwrap();
    assert_eq!(done.unwrap().created, ["init", "app"], "the one-shot ran first; exit 0 let app start");

    let bad = project("no-such-subcommand", "demo-engine-oneshot-bad");
    let failed = stack::up(&engine, &bad, &options).await;
    // As compose does, every container is created first; app is never started.
    let app = engine.docker().inspect_container(&stack::container_name(&bad.name, "app"), None).await;
    let app_started =
        app.ok().and_then(|c| c.state).and_then(|s| s.started_at).is_some_and(|t| !t.starts_with("0001"));
    stack::down(&engine, &bad.name, true).await.unwrap();
    let text = failed.unwrap_err().to_string();
    assert!(text.contains("service init exited with code 2"), "{text}");
    assert!(!app_started, "app is never started after its one-shot dependency failed");
}
