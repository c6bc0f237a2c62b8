//! The compose files under `deployments/` work with plain `docker compose` (v2): `config`
//! accepts all three, and `up --wait` of `deployments/all` brings Identity and the KMS up
//! healthy from the image the CLI builds, with no secret in any container's environment;
//! `down --volumes` leaves nothing of the project. Needs Docker and Compose v2: skipped loudly
//! without them, a failure under CI (`.ci/run` installs Compose v2).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn have_compose() -> bool {
    let ok = Command::new("docker").args(["compose", "version"]).output().is_ok_and(|o| o.status.success());
    test_support::oracle::present(ok, "Docker with Compose v2")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn compose(dir: &str, env: &[(&str, String)], args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("docker");
    cmd.arg("compose").args(args).current_dir(root().join("deployments").join(dir));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn plain_docker_compose_accepts_the_files_and_brings_the_stack_up() {
    if !have_compose() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = demo::state::State::ensure(&tmp.path().join("state"), &pki::PkiSpec::demo()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let image = runtime.block_on(async {
        let engine = compose_engine::Engine::connect(Duration::from_secs(2)).await.unwrap();
        compose_engine::image::ensure_service_image(
            &engine,
            &assert_cmd::cargo::cargo_bin("demo"),
            &demo::stack::docker::SERVICE_IMAGE,
        )
        .await
        .unwrap()
    });
    let meta = std::fs::metadata(state.root()).unwrap();
    let (kms_port, identity_port) = (free_port(), free_port());
    let project = format!("demo-compose-test-{}", std::process::id());
    // The product files join the environment's telemetry network, which they declare external.
    let telemetry_network = format!("{project}-telemetry");
    let env = [
        ("DEMO_TELEMETRY_NETWORK", telemetry_network.clone()),
        ("DEMO_IMAGE", image.tag.clone()),
        ("DEMO_STATE_DIR", state.root().display().to_string()),
        ("DEMO_UID", std::os::unix::fs::MetadataExt::uid(&meta).to_string()),
        ("DEMO_GID", std::os::unix::fs::MetadataExt::gid(&meta).to_string()),
        ("KMS_PORT", kms_port.to_string()),
        ("IDENTITY_PORT", identity_port.to_string()),
    ];
    for dir in ["kms", "identity", "all"] {
        let out = compose(dir, &env, &["config", "--quiet"]);
        assert!(out.status.success(), "{dir}: {}", String::from_utf8_lossy(&out.stderr));
        // Each profile's override file, as `-f compose.yml -f compose.<profile>.yml`.
        for profile in ["dev", "ci", "prod"] {
            let overlay = format!("compose.{profile}.yml");
            let args = ["-f", "compose.yml", "-f", &overlay, "--profile", profile, "config", "--quiet"];
            let out = compose(dir, &env, &args);
            assert!(out.status.success(), "{dir} {profile}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let out = compose("telemetry", &env, &["--profile", "telemetry", "config", "--quiet"]);
    assert!(out.status.success(), "telemetry: {}", String::from_utf8_lossy(&out.stderr));
    // Without the variables, compose names one that is missing (which one first varies) and our hint.
    let out = compose("kms", &[], &["config", "--quiet"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("required variable DEMO_") && stderr.contains("set DEMO_"), "{stderr}");

    let created = Command::new("docker").args(["network", "create", &telemetry_network]).output().unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let up = compose("all", &env, &["-p", &project, "up", "--detach", "--wait", "--wait-timeout", "120"]);
    let logs = || {
        String::from_utf8_lossy(&compose("all", &env, &["-p", &project, "logs", "--tail", "30"]).stdout)
            .into_owned()
    };
    let result = std::panic::catch_unwind(|| {
        assert!(up.status.success(), "up --wait failed: {}\n{}", String::from_utf8_lossy(&up.stderr), logs());
        let ps = compose("all", &env, &["-p", &project, "ps", "--format", "json"]);
        let text = String::from_utf8_lossy(&ps.stdout);
        for service in ["identity", "kms", "partner"] {
            assert!(text.contains(&format!("\"Service\":\"{service}\"")), "{text}");
        }
        assert_eq!(text.matches("\"Health\":\"healthy\"").count(), 3, "{text}");
        // The KMS answers on its published port, over TLS with our CA.
        let status = tokio::runtime::Runtime::new().unwrap().block_on(async {
            let client = reqwest::Client::builder()
                .tls_backend_preconfigured(
                    pki::client_config_for(&pki::PkiDir::new(state.pki_dir()), None).unwrap(),
                )
                .resolve("kms.demo.local", std::net::SocketAddr::from(([127, 0, 0, 1], kms_port)))
                .build()
                .unwrap();
            client
                .get(format!("https://kms.demo.local:{kms_port}/api/v1/pools"))
                .basic_auth("acme-admin", Some("acme-admin-demo"))
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
        assert_eq!(status.unwrap(), 200);
        // No secret value in any container's configuration.
        let ids = compose("all", &env, &["-p", &project, "ps", "-q"]);
        let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout).lines().map(str::to_owned).collect();
        let inspect = Command::new("docker").arg("inspect").args(&ids).output().unwrap();
        let inspect = String::from_utf8_lossy(&inspect.stdout);
        for secret in [
            state.client_secret("kms-service"),
            state.user_password("admin"),
            state.unseal_shares("kms")[0].clone(),
        ] {
            let value = std::fs::read_to_string(&secret).unwrap();
            assert!(!inspect.contains(value.trim()), "{} leaked into docker inspect", secret.display());
        }
    });
    let down = compose("all", &env, &["-p", &project, "down", "--volumes", "--timeout", "10"]);
    let network_removed =
        Command::new("docker").args(["network", "rm", &telemetry_network]).output().unwrap();
    let left = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=com.docker.compose.project={project}")])
        .output()
        .unwrap();
    let volumes = Command::new("docker")
        .args(["volume", "ls", "-q", "--filter", &format!("label=com.docker.compose.project={project}")])
        .output()
        .unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(network_removed.status.success(), "{}", String::from_utf8_lossy(&network_removed.stderr));
    assert!(left.stdout.is_empty() && volumes.stdout.is_empty(), "objects left behind");
}
