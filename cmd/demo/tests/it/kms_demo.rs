//! `demo kms` on the embedded runtime, through the binary.

fn run_json(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = crate::demo().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), doc, stderr)
}

#[test]
fn a_full_run_passes_every_step_and_reports_them() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let state = state.to_str().unwrap();
    let (code, doc, stderr) =
        run_json(&["kms", "--runtime", "embedded", "--state-dir", state, "--output", "json"]);
    assert_eq!(code, 0, "{doc:#}\n{stderr}");
    assert_eq!(doc["outcome"], "success");
    assert_eq!(doc["runtime"]["name"], "embedded");
    let ids: Vec<&str> = doc["steps"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    for want in [
        "state.prepare",
        "health.kms",
        "verify.kms.pools",
        "flow.basic.kms.encrypt",
        "flow.basic.kms.tenant-isolation",
        "stack.down",
    ] {
        assert!(ids.contains(&want), "{want} missing from {ids:?}");
    }
    assert!(doc["steps"].as_array().unwrap().iter().all(|s| s["status"] == "passed"));
    assert!(std::path::Path::new(doc["artifacts"]["credentials_file"].as_str().unwrap()).exists());
}

#[test]
fn a_corrupt_certificate_in_the_state_dir_fails_with_the_file_named() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("state");
    demo::state::State::ensure(&root, &pki::PkiSpec::demo()).unwrap();
    std::fs::write(
        root.join("pki/leaves/kms/fullchain.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let (code, doc, _) = run_json(&[
        "kms",
        "--runtime",
        "embedded",
        "--state-dir",
        root.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(code, 2, "{doc:#}");
    assert_eq!(doc["outcome"], "failure");
    let error = &doc["errors"][0];
    assert_eq!(error["step"], "state.prepare");
    assert!(error.to_string().contains("leaves/kms/fullchain.pem"), "{error}");
    assert!(error["hint"].as_str().unwrap().contains("--reset-demo"));
    // Everything after the failed critical step is skipped, nothing is silently passed.
    let statuses: Vec<&str> =
        doc["steps"].as_array().unwrap().iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == "passed").count(), 1, "{statuses:?} (only teardown)");
}

#[test]
fn docker_asked_for_but_unreachable_exits_2_naming_the_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let run = crate::demo()
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["kms", "--runtime", "docker", "--state-dir"])
        .arg(tmp.path().join("s"))
        .assert()
        .code(2);
    // The summary (the report, human form) names the socket and what to do.
    let out = run.get_output();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("unix:///nonexistent/docker.sock"), "{text}");
    assert!(text.contains("--runtime embedded"), "the hint: {text}");
}

#[test]
fn auto_without_an_engine_falls_back_to_embedded_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, doc, _) = {
        let out = crate::demo()
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .args(["kms", "--output", "json", "--state-dir"])
            .arg(tmp.path().join("s"))
            .output()
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        (out.status.code(), doc, ())
    };
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(doc["runtime"]["name"], "embedded");
    assert!(doc["runtime"]["reason"].as_str().unwrap().contains("no Docker engine answered"), "{doc:#}");
}

#[test]
fn human_output_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let out = crate::demo()
        .args(["kms", "--runtime", "embedded", "--no-color", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    // Progress goes to stderr (minus the services' own log lines), the summary to stdout.
    let progress: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("  "))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = format!("--- stderr\n{progress}--- stdout\n{}", String::from_utf8_lossy(&out.stdout));
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&regex_escape(&tmp.path().display().to_string()), "[TMP]");
    settings.add_filter(r"kms.demo.local:\d+", "kms.demo.local:[PORT]");
    settings.add_filter(r"in \d+\.\ds", "in [TIME]");
    settings.bind(|| insta::assert_snapshot!("kms_human", text));
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '/' { c.to_string() } else { format!("\\{c}") })
        .collect()
}
