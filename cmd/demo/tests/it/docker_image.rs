//! The services' image, built offline through the real engine from this build's `demo` binary,
//! and run: it starts, runs as nobody, and an unchanged binary reuses the image. Needs a Docker
//! engine: skipped loudly without one, a failure under CI.

use std::time::Duration;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{LogsOptionsBuilder, RemoveContainerOptionsBuilder};
use compose_engine::Engine;
use futures_util::StreamExt as _;

async fn engine() -> Option<Engine> {
    match Engine::connect(Duration::from_secs(2)).await {
        Ok(engine) => Some(engine),
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "no Docker engine under CI: {e}");
            eprintln!("SKIPPED: this test needs a Docker engine: {e}");
            None
        }
    }
}

#[tokio::test]
async fn the_service_image_builds_offline_and_runs_the_binary_as_nobody() {
    let Some(engine) = engine().await else { return };
    let binary = assert_cmd::cargo::cargo_bin("demo");
    let image =
        compose_engine::image::ensure_service_image(&engine, &binary, &demo::stack::docker::SERVICE_IMAGE)
            .await
            .unwrap();
    assert!(image.tag.starts_with("demo-security/demo:"), "{}", image.tag);
    let again =
        compose_engine::image::ensure_service_image(&engine, &binary, &demo::stack::docker::SERVICE_IMAGE)
            .await
            .unwrap();
    assert_eq!(
        (again.tag.as_str(), again.built),
        (image.tag.as_str(), false),
        "an unchanged binary is reused"
    );

    let inspect = engine.docker().inspect_image(&image.tag).await.unwrap();
    let config = inspect.config.unwrap();
    assert_eq!(config.user.as_deref(), Some("65534:65534"));
    assert_eq!(
        config.env.unwrap_or_default().iter().filter(|e| !e.starts_with("PATH=")).count(),
        0,
        "no environment"
    );

    let body = ContainerCreateBody {
        image: Some(image.tag.clone()),
        cmd: Some(vec!["--version".into()]),
        ..Default::default()
    };
    let id = engine.docker().create_container(None, body).await.unwrap().id;
    engine.docker().start_container(&id, None).await.unwrap();
    let mut wait = engine.docker().wait_container(&id, None);
    let status = wait.next().await.unwrap().map(|w| w.status_code).unwrap_or(-1);
    let mut logs =
        engine.docker().logs(&id, Some(LogsOptionsBuilder::default().stdout(true).stderr(true).build()));
    let mut text = String::new();
    while let Some(Ok(chunk)) = logs.next().await {
        text.push_str(&chunk.to_string());
    }
    engine
        .docker()
        .remove_container(&id, Some(RemoveContainerOptionsBuilder::default().force(true).build()))
        .await
        .unwrap();
    assert_eq!(status, 0, "{text}");
    assert!(text.starts_with("demo "), "{text}");
}
