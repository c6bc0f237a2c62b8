//! `demo all --runtime docker` against the real engine: every flow passes on containers built
//! and started by the CLI itself, the report is valid, a second run reuses the stack, `docker
//! compose ls` sees it, and `demo down --volumes` removes it. Skipped loudly without an engine,
//! a failure under CI.

use std::process::Command;

fn engine_answers() -> bool {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "no Docker engine under CI");
        eprintln!("SKIPPED: this test needs a Docker engine");
    }
    ok
}

fn run_json(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = crate::demo().args(args).output().unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), doc, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn demo_all_on_docker_passes_reuses_and_goes_down() {
    if !engine_answers() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let state = state.to_str().unwrap();
    let args = ["all", "--runtime", "docker", "--output", "json", "--state-dir", state];
    let (code, doc, stderr) = run_json(&args);
    let cleanup = || crate::demo().args(["down", "--volumes", "--state-dir", state]).output().unwrap();
    if code != 0 {
        cleanup();
        panic!("{doc:#}\n{stderr}");
    }
    assert_eq!(doc["runtime"]["name"], "docker");
    crate::all_demo::validate_with_jsonschema(&doc);
    let steps = doc["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["status"] == "passed"), "{doc:#}");
    for want in ["image.build", "stack.up", "health.identity", "health.kms", "flow.bearer.kms.revoked-token"]
    {
        assert!(steps.iter().any(|s| s["id"] == want), "{want} missing");
    }
    let status = crate::demo().args(["status", "--output", "json", "--state-dir", state]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let services = &status["stacks"][0]["services"];
    assert_eq!(services.as_array().map(Vec::len), Some(2), "{status:#}");
    assert!(services.as_array().unwrap().iter().all(|s| s["status"].as_str().unwrap().contains("(healthy)")));
    let ls = Command::new("docker").args(["compose", "ls", "--format", "json"]).output().unwrap();
    let ls = String::from_utf8_lossy(&ls.stdout).into_owned();
    let again = run_json(&args);
    let down = cleanup();
    assert!(ls.contains(&format!("{state}/deployments/all/compose.yml")), "docker compose ls: {ls}");
    assert_eq!(again.0, 0, "second run (stack reused): {:#}\n{}", again.1, again.2);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    let project = format!("label=com.docker.compose.project=demo-all-{}", state_suffix(state));
    for what in [
        &["ps", "-aq", "--filter"][..],
        &["volume", "ls", "-q", "--filter"],
        &["network", "ls", "-q", "--filter"],
    ] {
        let out = Command::new("docker").args(what).arg(&project).output().unwrap();
        assert!(out.stdout.is_empty(), "`docker {}` still lists objects of the project", what.join(" "));
    }
}

fn state_suffix(state: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, state.as_bytes());
    digest.as_ref().iter().take(4).map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_taken_host_port_fails_before_anything_is_created_naming_it() {
    if !engine_answers() {
        return;
    }
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
    let project =
        format!("label=com.docker.compose.project=demo-kms-{}", state_suffix(state.to_str().unwrap()));
    let left = Command::new("docker").args(["ps", "-aq", "--filter", &project]).output().unwrap();
    assert!(left.stdout.is_empty(), "nothing was created");
    drop(squatter);
}

#[test]
fn a_service_that_cannot_start_fails_with_its_log_tail_and_is_rolled_back() {
    if !engine_answers() {
        return;
    }
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
    let project =
        format!("label=com.docker.compose.project=demo-kms-{}", state_suffix(state.to_str().unwrap()));
    for what in [
        &["ps", "-aq", "--filter"][..],
        &["volume", "ls", "-q", "--filter"],
        &["network", "ls", "-q", "--filter"],
    ] {
        let out = Command::new("docker").args(what).arg(&project).output().unwrap();
        assert!(out.stdout.is_empty(), "`docker {}` still lists objects of the failed run", what.join(" "));
    }
}
