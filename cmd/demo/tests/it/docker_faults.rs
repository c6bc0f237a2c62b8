//! The Docker runtime's faults against the real engine: a malformed compose file, a health check
//! that never passes, Ctrl-C during the start, and a run killed mid-start whose objects the next
//! run and `demo down` find and remove. (A container that exits at start and a taken host port
//! are in `docker_demo.rs`.) Skipped loudly without an engine, a failure under CI.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::docker_demo::{engine_turn, run_json, state_suffix};

/// A copy of the shipped `deployments/` under `tmp` with `from` replaced by `to` in the KMS's
/// compose file; returns the copy and the file.
pub fn broken_deployments(tmp: &Path, from: &str, to: &str) -> (PathBuf, PathBuf) {
    let dir = tmp.join("deployments");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deployments");
    let out = Command::new("cp").arg("-r").arg(&shipped).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let file = dir.join("kms/compose.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(from), "{from} is not in {}", file.display());
    std::fs::write(&file, text.replace(from, to)).unwrap();
    (dir, file)
}

/// What Docker still lists of `project`: containers, volumes, networks.
pub fn leftovers(project: &str) -> Vec<String> {
    let label = format!("label=com.docker.compose.project={project}");
    let mut left = Vec::new();
    for what in [
        &["ps", "-aq", "--filter"][..],
        &["volume", "ls", "-q", "--filter"],
        &["network", "ls", "-q", "--filter"],
    ] {
        let out = Command::new("docker").args(what).arg(&label).output().unwrap();
        left.extend(String::from_utf8_lossy(&out.stdout).lines().map(|l| format!("{} {l}", what[0])));
    }
    left
}

fn down(state: &str) {
    let out = crate::demo().args(["down", "--volumes", "--state-dir", state]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_malformed_compose_file_names_the_file_the_path_and_what_to_do() {
    let Some(_engine) = engine_turn() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (dir, file) = broken_deployments(tmp.path(), "    healthcheck:", "    helthcheck:");
    let state = tmp.path().join("state");
    let (code, doc, stderr) = run_json(&[
        "kms",
        "--runtime",
        "docker",
        "--compose-dir",
        dir.to_str().unwrap(),
        "--output",
        "json",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{doc:#}\n{stderr}");
    let error = &doc["errors"][0];
    assert_eq!(error["step"], "stack.up");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(file.to_str().unwrap()), "names the file: {message}");
    assert!(message.contains("services.kms.helthcheck"), "names the path: {message}");
    assert!(error["hint"].as_str().is_some_and(|h| !h.is_empty()), "says what to do: {error}");
    assert!(leftovers(&format!("demo-kms-{}", state_suffix(state.to_str().unwrap()))).is_empty());
}

#[test]
fn a_health_check_that_never_passes_times_out_naming_the_service() {
    let Some(_engine) = engine_turn() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // Probes a port nothing listens on: the check fails for ever (well within its 60 retries).
    let (dir, _) =
        broken_deployments(tmp.path(), "https://localhost:9081/readyz", "https://localhost:1/readyz");
    let state = tmp.path().join("state");
    let state = state.to_str().unwrap();
    let started = Instant::now();
    let (code, doc, stderr) = run_json(&[
        "kms",
        "--runtime",
        "docker",
        "--compose-dir",
        dir.to_str().unwrap(),
        "--health-timeout",
        "6s",
        "--output",
        "json",
        "--state-dir",
        state,
    ]);
    let took = started.elapsed();
    let left = leftovers(&format!("demo-kms-{}", state_suffix(state)));
    down(state);
    assert_eq!(code, 2, "{doc:#}\n{stderr}");
    let error = &doc["errors"][0];
    // Our own probe finds the service ready; the engine's healthcheck (the one compose's
    // `--wait` asks) never passes: that check fails the run, which is then rolled back.
    assert_eq!(error["step"], "verify.docker.healthchecks", "{doc:#}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("service kms did not become healthy within 6s"), "{message}");
    assert!(
        took < Duration::from_secs(60),
        "our timeout, not the healthcheck's retries, ended the wait ({took:?})"
    );
    assert!(left.is_empty(), "the failed start was rolled back: {left:?}");
}

/// Starts `demo kms --runtime docker` on `state` and waits until its first container exists.
// The child is returned to the caller, which waits for it (clippy cannot see that).
#[allow(clippy::zombie_processes)]
fn start_and_wait_for_a_container(state: &str) -> Child {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("demo"))
        .args(["kms", "--runtime", "docker", "--output", "json", "--state-dir", state])
        .env("CI", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let project = format!("demo-kms-{}", state_suffix(state));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("label=com.docker.compose.project={project}")])
            .output()
            .unwrap();
        if !out.stdout.is_empty() {
            return child;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no container of {project} appeared");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ctrl_c_during_the_start_leaves_nothing_running() {
    let Some(_engine) = engine_turn() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let state = state.to_str().unwrap();
    let child = start_and_wait_for_a_container(state);
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let mut left = leftovers(&format!("demo-kms-{}", state_suffix(state)));
    left.extend(leftovers(&format!("demo-telemetry-{}", state_suffix(state))));
    down(state);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_ne!(out.status.code(), Some(0), "an interrupted start is not a success: {doc:#}");
    let rollback = doc["steps"].as_array().unwrap().iter().find(|s| s["id"] == "stack.rollback");
    assert_eq!(rollback.map(|s| s["status"].clone()), Some("passed".into()), "{doc:#}");
    assert!(left.is_empty(), "Ctrl-C left {left:?}");
}

#[test]
fn what_a_killed_run_left_is_removed_by_the_next_run_and_by_down() {
    let Some(_engine) = engine_turn() else {
        return;
    };
    // The next run removes it, and says so.
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let state = state.to_str().unwrap();
    let project = format!("demo-kms-{}", state_suffix(state));
    kill_mid_start(state);
    let dead = run_label(&project);
    assert!(!dead.is_empty(), "the killed run left its objects");
    let (code, doc, stderr) =
        run_json(&["kms", "--runtime", "docker", "--output", "json", "--state-dir", state]);
    let now = run_label(&project);
    down(state);
    assert_eq!(code, 0, "{doc:#}\n{stderr}");
    let notes = doc["notes"].to_string();
    assert!(notes.contains("left behind") && notes.contains(&dead), "{notes}");
    assert!(
        !now.is_empty() && now != dead,
        "the container is the new run's ({now}), not the dead one's ({dead})"
    );

    // `demo down` removes it too, volumes included (they were the dead run's).
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let state = state.to_str().unwrap();
    let project = format!("demo-kms-{}", state_suffix(state));
    kill_mid_start(state);
    assert!(!leftovers(&project).is_empty());
    let out = crate::demo().args(["down", "--state-dir", state]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let left = leftovers(&project);
    assert!(left.is_empty(), "`demo down` left {left:?} of the killed run");
}

/// Starts `demo kms` on Docker and kills it (SIGKILL: no rollback) once it has created objects.
fn kill_mid_start(state: &str) {
    let mut child = start_and_wait_for_a_container(state);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The run label of the project's container.
fn run_label(project: &str) -> String {
    let out = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{index .Config.Labels \"demo-security.run\"}}",
            &format!("{project}-kms-1"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn one_run_per_state_directory_at_a_time() {
    let Some(_engine) = engine_turn() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let state = state.to_str().unwrap();
    let mut first = start_and_wait_for_a_container(state);
    let (code, doc, stderr) =
        run_json(&["kms", "--runtime", "docker", "--output", "json", "--state-dir", state]);
    let _ = first.kill();
    let _ = first.wait();
    down(state);
    assert_eq!(code, 2, "{doc:#}\n{stderr}");
    let error = &doc["errors"][0];
    assert!(error["message"].as_str().unwrap().contains("another demo run is using"), "{error}");
    assert!(error["hint"].as_str().unwrap().contains("--state-dir"), "{error}");
    let left = leftovers(&format!("demo-kms-{}", state_suffix(state)));
    assert!(left.is_empty(), "`demo down` after the killed run left {left:?}");
}

#[test]
fn the_prod_profile_comes_up_without_demo_data_in_its_own_project() {
    let Some(_engine) = engine_turn() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let state = state.to_str().unwrap();
    let (code, doc, stderr) = run_json(&[
        "kms",
        "--runtime",
        "docker",
        "--profile",
        "prod",
        "--output",
        "json",
        "--state-dir",
        state,
    ]);
    let prod = leftovers(&format!("demo-kms-prod-{}", state_suffix(state)));
    let demo = leftovers(&format!("demo-kms-{}", state_suffix(state)));
    down(state);
    let after = leftovers(&format!("demo-kms-prod-{}", state_suffix(state)));
    assert_eq!(code, 0, "{doc:#}\n{stderr}");
    assert_eq!(doc["profile"], "prod");
    let ids: Vec<&str> = doc["steps"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"health.kms") && ids.contains(&"verify.prod.kms.no-demo-accounts"), "{ids:?}");
    assert!(
        !ids.iter().any(|id| id.starts_with("flow.") || id.starts_with("verify.kms.")),
        "no demo flows: {ids:?}"
    );
    assert!(doc["notes"].to_string().contains("profile prod"), "{}", doc["notes"]);
    assert!(!prod.is_empty() && demo.is_empty(), "prod runs in its own project");
    assert!(after.is_empty(), "`demo down` removes the prod project too: {after:?}");
}
