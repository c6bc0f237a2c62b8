//! `demo all --runtime docker` against the real engine: every flow passes on containers built
//! and started by the CLI itself, the report is valid, a second run reuses the stack, `docker
//! compose ls` sees it, and `demo down --volumes` removes it. Skipped loudly without an engine,
//! a failure under CI.

use std::process::Command;

pub fn engine_answers() -> bool {
    test_support::oracle::docker()
}

/// This test's turn with the engine: `None` (a loud skip) without one; otherwise a guard that
/// keeps the other Docker stack tests of this binary waiting until it is dropped. Stacks of
/// parallel tests contend for the same preferred host ports (8081/8082) and for the engine's
/// time; one at a time, their faults and timings are their own.
pub fn engine_turn() -> Option<std::sync::MutexGuard<'static, ()>> {
    static ENGINE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    engine_answers().then(|| ENGINE.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
}

pub fn run_json(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = crate::demo().args(args).output().unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), doc, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The ids of a project's containers, by `docker compose -p NAME ps`: compose itself must see
/// what the CLI created.
fn compose_ps(project: &str) -> Vec<String> {
    let out = Command::new("docker").args(["compose", "-p", project, "ps", "-q"]).output().unwrap();
    assert!(out.status.success(), "docker compose ps: {}", String::from_utf8_lossy(&out.stderr));
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    ids.sort();
    ids
}

/// Every secret value of the state directory: the files under `secrets/` and the private keys.
fn secret_values(state: &std::path::Path) -> Vec<String> {
    let mut values = Vec::new();
    for entry in std::fs::read_dir(state.join("secrets")).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        // Multi-line files (tenants.yml): each value line.
        values.extend(text.lines().map(str::trim).filter(|l| l.len() >= 12).map(str::to_owned));
    }
    // The services' TLS keys, and the fixture issuer's (its own PKI under partner/).
    for key in ["pki/leaves/kms/key.pem", "pki/leaves/identity/key.pem", "partner/pki/leaves/partner/key.pem"]
    {
        let key = std::fs::read_to_string(state.join(key)).unwrap();
        values.extend(key.lines().filter(|l| !l.starts_with("-----")).map(str::to_owned));
    }
    assert!(values.len() > 10, "the state directory holds secrets: {values:?}");
    values
}

#[test]
fn demo_all_on_docker_passes_reuses_and_goes_down() {
    let Some(_engine) = engine_turn() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let state_path = tmp.path().join("state");
    let state = state_path.to_str().unwrap();
    let args = ["all", "--runtime", "docker", "--profile", "ci", "--output", "json", "--state-dir", state];
    let (code, doc, stderr) = run_json(&args);
    let cleanup = || crate::demo().args(["down", "--volumes", "--state-dir", state]).output().unwrap();
    if code != 0 {
        cleanup();
        panic!("{doc:#}\n{stderr}");
    }
    assert_eq!(doc["runtime"]["name"], "docker");
    assert_eq!(doc["profile"], "ci");
    crate::all_demo::validate_with_jsonschema(&doc);
    let steps = doc["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["status"] == "passed"), "{doc:#}");
    for want in ["image.build", "stack.up", "health.identity", "health.kms", "flow.bearer.kms.revoked-token"]
    {
        assert!(steps.iter().any(|s| s["id"] == want), "{want} missing");
    }
    // The same checks and flows as the embedded runtime: every embedded step id but its
    // in-process start and stop.
    let embedded = tempfile::tempdir().unwrap();
    let (code, embedded_doc, _) = run_json(&[
        "all",
        "--runtime",
        "embedded",
        "--output",
        "json",
        "--state-dir",
        embedded.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    for step in embedded_doc["steps"].as_array().unwrap() {
        let id = step["id"].as_str().unwrap();
        if id.starts_with("config.") || id.starts_with("stack.") {
            continue;
        }
        assert!(steps.iter().any(|s| s["id"] == id), "{id} runs embedded but not on docker");
    }
    // Telemetry cannot be had on a machine without a registry: the run says so.
    let notes = doc["notes"].to_string();
    let collector_here = Command::new("docker")
        .args(["image", "inspect", "otel/opentelemetry-collector-contrib:0.114.0"])
        .output()
        .unwrap()
        .status
        .success();
    if !collector_here {
        assert!(notes.contains("telemetry is off") && notes.contains("could not be pulled"), "{notes}");
    }

    let project = format!("demo-all-{}", state_suffix(state));
    let containers = compose_ps(&project);
    assert_eq!(
        containers.len(),
        3,
        "docker compose -p {project} ps lists both services and the fixture issuer"
    );
    let secrets = secret_values(&state_path);
    for id in &containers {
        let inspect = Command::new("docker").args(["inspect", id]).output().unwrap();
        let inspect = String::from_utf8_lossy(&inspect.stdout);
        let doc: serde_json::Value = serde_json::from_str(&inspect).unwrap();
        let env = doc[0]["Config"]["Env"].to_string();
        assert!(!env.contains("SECRET") && !env.contains("PASSWORD"), "environment: {env}");
        for value in &secrets {
            assert!(!inspect.contains(value.as_str()), "a secret value appears in `docker inspect {id}`");
        }
        // ci is ephemeral: the services' data is on a tmpfs, in no volume (the fixture issuer
        // keeps none).
        if !doc[0]["Name"].as_str().unwrap().contains("-partner-") {
            assert!(inspect.contains("\"/var/lib/demo\""), "{inspect}");
        }
    }
    let volumes = Command::new("docker")
        .args(["volume", "ls", "-q", "--filter", &format!("label=com.docker.compose.project={project}")])
        .output()
        .unwrap();
    assert!(volumes.stdout.is_empty(), "the ci profile creates no volume");

    let status = crate::demo().args(["status", "--output", "json", "--state-dir", state]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let services = &status["stacks"][0]["services"];
    assert_eq!(services.as_array().map(Vec::len), Some(3), "{status:#}");
    assert!(services.as_array().unwrap().iter().all(|s| s["status"].as_str().unwrap().contains("(healthy)")));
    // What the telemetry collector scrapes: the KMS's /metrics, read by Prometheus's own parser
    // (observed now, asserted after the cleanup).
    let admin = services.as_array().into_iter().flatten().filter(|s| s["service"] == "kms").find_map(|s| {
        s["ports"].as_array()?.iter().find_map(|p| p.as_str()?.strip_suffix(" -> 9081").map(str::to_owned))
    });
    let families = admin
        .ok_or_else(|| format!("no admin port in {status:#}"))
        .and_then(|a| prometheus_families(&state_path, &a));

    let ls = Command::new("docker").args(["compose", "ls", "--format", "json"]).output().unwrap();
    let ls = String::from_utf8_lossy(&ls.stdout).into_owned();
    let again = run_json(&args);
    let reused = compose_ps(&project);
    // --reset-demo: the stack is removed, and secrets, tenant ids and certificates regenerated.
    let ca_before = std::fs::read(state_path.join("pki/ca-bundle.pem")).unwrap();
    let tenants_before = std::fs::read(state_path.join("secrets/tenants.yml")).unwrap();
    let reset = run_json(&[&args[..], &["--reset-demo"]].concat());
    let after_reset = compose_ps(&project);
    let ca_after = std::fs::read(state_path.join("pki/ca-bundle.pem")).unwrap();
    let tenants_after = std::fs::read(state_path.join("secrets/tenants.yml")).unwrap();
    let down = cleanup();
    assert!(ls.contains(&format!("{state}/deployments/all/compose.yml")), "docker compose ls: {ls}");
    assert_eq!(again.0, 0, "second run (stack reused): {:#}\n{}", again.1, again.2);
    assert_eq!(reused, containers, "the second run reuses the running containers");
    assert_eq!(reset.0, 0, "--reset-demo: {:#}\n{}", reset.1, reset.2);
    assert_eq!(after_reset.len(), 3);
    assert!(after_reset.iter().all(|c| !containers.contains(c)), "--reset-demo recreates the containers");
    assert_ne!(ca_before, ca_after, "--reset-demo issues a new CA");
    assert_ne!(tenants_before, tenants_after, "--reset-demo draws new tenant ids");
    let (first_ms, second_ms) =
        (doc["duration_ms"].as_u64().unwrap(), again.1["duration_ms"].as_u64().unwrap());
    assert!(
        second_ms < first_ms,
        "reusing the stack ({second_ms} ms) is faster than starting it ({first_ms} ms)"
    );
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    let families = families.unwrap();
    // The federation flows ran in the container: the trust store verified the partner's tokens,
    // its discovery document was looked up (and kept).
    for family in [
        "http_server_requests",
        "http_server_request_duration_seconds",
        "jwks_cache_hits",
        "jwks_cache_keys",
        "trust_store_verifications",
        "jwks_discovery_lookups",
    ] {
        assert!(families.iter().any(|f| f == family), "/metrics lacks {family}: {families:?}");
    }
    for project in [project, format!("demo-telemetry-{}", state_suffix(state))] {
        let left = crate::docker_faults::leftovers(&project);
        assert!(left.is_empty(), "`demo down --volumes` left {left:?} of {project}");
    }
}

/// The metric families a service's admin `/metrics` (at `127.0.0.1:PORT`) exposes, as the
/// Python Prometheus client's parser reads them (an independent oracle of the text format).
fn prometheus_families(state: &std::path::Path, admin: &str) -> Result<Vec<String>, String> {
    let port = admin.rsplit(':').next().unwrap_or_default();
    let url = format!("https://localhost:{port}/metrics");
    let text = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?.block_on(async {
        let tls =
            pki::client_config_for(&pki::PkiDir::new(state.join("pki")), None).map_err(|e| e.to_string())?;
        let client =
            reqwest::Client::builder().tls_backend_preconfigured(tls).build().map_err(|e| e.to_string())?;
        let resp = client.get(&url).send().await.map_err(|e| format!("{url}: {e}"))?;
        if resp.status() != 200 {
            return Err(format!("{url} answered {}", resp.status()));
        }
        resp.text().await.map_err(|e| e.to_string())
    })?;
    if !test_support::oracle::python("prometheus_client", "python3 with prometheus-client") {
        let known = [
            "http_server_requests",
            "http_server_request_duration_seconds",
            "jwks_cache_hits",
            "jwks_cache_keys",
        ];
        return Ok(known.into_iter().filter(|f| text.contains(f)).map(str::to_owned).collect());
    }
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as parse\n\
             for f in parse(sys.stdin.read()): print(f.name)",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        std::io::Write::write_all(&mut stdin, text.as_bytes()).map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "the Prometheus parser refused /metrics: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect())
}

pub fn state_suffix(state: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, state.as_bytes());
    digest.as_ref().iter().take(4).map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_taken_host_port_fails_before_anything_is_created_naming_it() {
    let Some(_engine) = engine_turn() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    demo::state::State::ensure(&state, &pki::PkiSpec::demo()).unwrap();
    // Someone else holds the port this environment's KMS uses.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port();
    std::fs::create_dir_all(state.join("docker-ports")).unwrap();
    std::fs::write(state.join("docker-ports/kms"), port.to_string()).unwrap();
    let (code, doc, stderr) =
        run_json(&["kms", "--runtime", "docker", "--output", "json", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(code, 2, "{doc:#}\n{stderr}");
    let error = &doc["errors"][0];
    assert_eq!(error["step"], "stack.up");
    assert!(
        error["message"].as_str().unwrap().contains(&format!("host port {port} for kms is taken")),
        "{error}"
    );
    assert!(error["hint"].as_str().unwrap().contains("docker-ports/kms"), "{error}");
    for stack in ["kms", "telemetry"] {
        let project = format!("demo-{stack}-{}", state_suffix(state.to_str().unwrap()));
        let left = crate::docker_faults::leftovers(&project);
        assert!(left.is_empty(), "nothing was created, yet {left:?} of {project} exists");
    }
    drop(squatter);
}

#[test]
fn a_service_that_cannot_start_fails_with_its_log_tail_and_is_rolled_back() {
    let Some(_engine) = engine_turn() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    demo::state::State::ensure(&state, &pki::PkiSpec::demo()).unwrap();
    // A damaged unseal share: the KMS refuses to start and exits.
    std::fs::write(state.join("secrets/kms_unseal_share_1"), "not a share\n").unwrap();
    let (code, doc, stderr) = run_json(&[
        "kms",
        "--runtime",
        "docker",
        "--health-timeout",
        "60s",
        "--output",
        "json",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{doc:#}\n{stderr}");
    let error = doc["errors"][0].to_string();
    assert!(error.contains("health.kms") && error.contains("exited with code"), "{error}");
    assert!(error.contains("share"), "the log tail says why: {error}");
    let rollback = doc["steps"].as_array().unwrap().iter().find(|s| s["id"] == "stack.rollback").unwrap();
    assert_eq!(rollback["status"], "passed");
    for stack in ["kms", "telemetry"] {
        let project = format!("demo-{stack}-{}", state_suffix(state.to_str().unwrap()));
        let left = crate::docker_faults::leftovers(&project);
        assert!(left.is_empty(), "the failed run left {left:?} of {project}");
    }
}
