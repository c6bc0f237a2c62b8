//! Errors as a stranger meets them: JSON on stdout for every outcome, causes that keep the
//! engine's own words, hints that name an action that works, relative state directories, and a
//! `demo down` that reports what it removed.

use std::path::Path;

use crate::docker_demo::{engine_turn, state_suffix};
use crate::docker_faults::leftovers;

fn run_in(dir: &Path, args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = crate::demo().current_dir(dir).args(args).output().unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), doc, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn json_output_without_a_docker_engine_is_one_valid_report() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let out = crate::demo()
        .env("DOCKER_HOST", format!("unix://{}", tmp.path().join("no-engine.sock").display()))
        .args(["kms", "--runtime", "docker", "--output", "json", "--state-dir", state.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("stdout is one JSON document ({e}): {}", String::from_utf8_lossy(&out.stdout))
    });
    crate::all_demo::validate_with_jsonschema(&doc);
    assert_eq!(doc["outcome"], "failure");
    assert_eq!(doc["runtime"]["name"], "docker");
    let error = &doc["errors"][0];
    assert_eq!(error["code"], "demo::docker", "{doc:#}");
    assert!(error["causes"].to_string().contains("no-engine.sock"), "names the socket tried: {error}");
    assert!(error["hint"].as_str().unwrap().contains("--runtime embedded"), "{error}");
    // The human form says the same on stderr/stdout, once.
    let human = crate::demo()
        .env("DOCKER_HOST", format!("unix://{}", tmp.path().join("no-engine.sock").display()))
        .args(["kms", "--runtime", "docker", "--state-dir", state.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(human.status.code(), Some(2));
    let text =
        format!("{}{}", String::from_utf8_lossy(&human.stdout), String::from_utf8_lossy(&human.stderr));
    assert!(text.contains("no Docker engine answered") && text.contains("--runtime embedded"), "{text}");
}

#[test]
fn a_foreign_state_directory_gets_a_hint_that_can_help() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("thesis.tex"), "years of work").unwrap();
    for extra in [&[][..], &["--reset-demo"]] {
        let mut args = vec!["kms", "--runtime", "embedded", "--output", "json", "--state-dir"];
        args.push(tmp.path().to_str().unwrap());
        args.extend_from_slice(extra);
        let (code, doc, stderr) = run_in(tmp.path(), &args);
        assert_eq!(code, 2, "{doc:#}\n{stderr}");
        crate::all_demo::validate_with_jsonschema(&doc);
        let error = &doc["errors"][0];
        let hint = error["hint"].as_str().unwrap();
        assert!(!hint.contains("--reset-demo"), "--reset-demo cannot help with a directory not ours: {hint}");
        assert!(hint.contains("--state-dir"), "{hint}");
        assert!(error["causes"].to_string().contains("not a demo state directory"), "{error}");
    }
    assert_eq!(std::fs::read_to_string(tmp.path().join("thesis.tex")).unwrap(), "years of work");
}

#[test]
fn a_relative_state_directory_is_one_absolute_path_on_either_runtime() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, doc, stderr) = run_in(
        tmp.path(),
        &["kms", "--runtime", "embedded", "--profile", "ci", "--output", "json", "--state-dir", "relstate"],
    );
    assert_eq!(code, 0, "{doc:#}\n{stderr}");
    let absolute = std::fs::canonicalize(tmp.path().join("relstate")).unwrap();
    assert_eq!(doc["artifacts"]["state_dir"], absolute.to_str().unwrap());
    assert_eq!(doc["artifacts"]["ca_bundle"], absolute.join("pki/ca-bundle.pem").to_str().unwrap());
}

#[test]
fn docker_a_relative_state_directory_works_and_down_reports_what_it_removed() {
    let Some(_engine) = engine_turn() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let args = ["kms", "--runtime", "docker", "--output", "json", "--state-dir", "relstate"];
    let (code, doc, stderr) = run_in(tmp.path(), &args);
    let absolute = std::fs::canonicalize(tmp.path().join("relstate")).unwrap();
    let absolute = absolute.to_str().unwrap();
    // `demo logs` shows the containers' output as compose does: `service | line`.
    let logs = crate::demo()
        .current_dir(tmp.path())
        .args(["logs", "kms", "--tail", "5", "--state-dir", "relstate"])
        .output()
        .unwrap();
    let down = crate::demo()
        .current_dir(tmp.path())
        .args(["down", "--volumes", "--state-dir", "relstate"])
        .output()
        .unwrap();
    let again =
        crate::demo().current_dir(tmp.path()).args(["down", "--state-dir", "relstate"]).output().unwrap();
    assert_eq!(code, 0, "{doc:#}\n{stderr}");
    assert_eq!(doc["artifacts"]["state_dir"], absolute);
    let logs_out = String::from_utf8_lossy(&logs.stdout);
    assert!(logs.status.success(), "{}", String::from_utf8_lossy(&logs.stderr));
    let lines: Vec<&str> = logs_out.lines().collect();
    assert!(!lines.is_empty() && lines.len() <= 5, "{logs_out}");
    assert!(lines.iter().all(|l| l.starts_with("kms | ")), "{logs_out}");
    // The stack typed relatively is the absolute path's stack: one project, named for it.
    let project = format!("demo-kms-{}", state_suffix(absolute));
    let said = String::from_utf8_lossy(&down.stderr);
    assert!(down.status.success(), "{said}");
    assert!(said.contains(&format!("{project}: 1 container")), "{said}");
    assert!(said.contains("volume"), "{said}");
    let projects = said.lines().filter(|l| l.starts_with("  demo-")).count();
    assert_eq!(projects, 2, "the KMS and telemetry projects existed, nothing else: {said}");
    let said_again = String::from_utf8_lossy(&again.stderr);
    assert!(said_again.contains("nothing to remove"), "{said_again}");
    assert!(leftovers(&project).is_empty());
}

#[test]
fn docker_an_engine_refusal_carries_the_engines_message_and_no_stale_hint() {
    let Some(_engine) = engine_turn() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // An image the engine does not have: compose-engine never pulls implicitly, so the engine
    // refuses to create the container, in its own words.
    let image = "image: ${DEMO_IMAGE:?set DEMO_IMAGE to the image the demo CLI built}";
    let (dir, _) =
        crate::docker_faults::broken_deployments(tmp.path(), image, "image: demo-security/no-such-image:0");
    let state = tmp.path().join("state");
    let (code, doc, stderr) = run_in(
        tmp.path(),
        &[
            "kms",
            "--runtime",
            "docker",
            "--compose-dir",
            dir.to_str().unwrap(),
            "--output",
            "json",
            "--state-dir",
            state.to_str().unwrap(),
        ],
    );
    let _ = crate::demo().args(["down", "--volumes", "--state-dir", state.to_str().unwrap()]).output();
    assert_eq!(code, 2, "{doc:#}\n{stderr}");
    let error = &doc["errors"][0];
    assert_eq!(error["step"], "stack.up", "{doc:#}");
    let causes = error["causes"].to_string();
    assert!(causes.contains("no-such-image"), "the engine's own message is a cause: {error}");
    let hint = error["hint"].as_str().unwrap();
    assert!(
        !hint.contains("docker compose -p") && !hint.contains("logs"),
        "no pointer at removed containers: {hint}"
    );
}

#[test]
fn logs_of_an_embedded_run_are_kept_in_the_state_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let state = state.to_str().unwrap();
    let nothing = crate::demo().args(["logs", "--state-dir", state]).output().unwrap();
    assert_eq!(nothing.status.code(), Some(2), "nothing ran yet");
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("no logs for"), "{nothing:?}");
    let run =
        crate::demo().args(["kms", "--runtime", "embedded", "-q", "--state-dir", state]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let logs = crate::demo().args(["logs", "kms", "--tail", "1", "--state-dir", state]).output().unwrap();
    assert!(logs.status.success(), "{}", String::from_utf8_lossy(&logs.stderr));
    let text = String::from_utf8_lossy(&logs.stdout);
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines.iter().all(|l| l["target"].as_str().unwrap().starts_with("kms")), "{text}");
    let all = crate::demo().args(["logs", "--state-dir", state]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&all.stdout).contains("service_kit::server"),
        "without a service: every line"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(std::path::Path::new(state).join("logs/embedded.log")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "logs are private");
}
