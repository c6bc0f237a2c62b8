//! Faults of a demo run, each with its exit code and a precise message: a service that never
//! becomes ready (test hook), an unreadable file in the state directory. (A corrupt certificate
//! is in `kms_demo`, a failing flow in `identity_demo`; ports are always chosen free, so two
//! runs never collide — `crates/demo/tests/it/stack.rs` runs two side by side.)

fn run_json(args: &[&str], env: &[(&str, &str)]) -> (i32, serde_json::Value) {
    let mut cmd = crate::demo();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), doc)
}

fn status<'a>(doc: &'a serde_json::Value, id: &str) -> &'a str {
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .and_then(|s| s["status"].as_str())
        .unwrap_or("absent")
}

#[test]
fn a_service_that_never_becomes_ready_fails_the_run_naming_it_and_its_readyz() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let (code, doc) = run_json(
        &[
            "all",
            "--runtime",
            "embedded",
            "--health-timeout",
            "1s",
            "--output",
            "json",
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &[(demo::stack::NEVER_READY_HOOK, "kms")],
    );
    assert_eq!(code, 2, "{doc:#}");
    assert_eq!(doc["outcome"], "failure");
    let error = &doc["errors"][0];
    assert_eq!(error["step"], "health.kms");
    assert!(error["message"].as_str().unwrap().contains("the KMS did not become ready within 1s"), "{error}");
    assert!(error["causes"].to_string().contains("test_hook_never_ready"), "the last readyz answer: {error}");
    assert!(error["hint"].as_str().unwrap().contains("--health-timeout"));
    assert_eq!(status(&doc, "health.identity"), "passed", "Identity, earlier in the chain, was fine");
    assert_eq!(status(&doc, "flow.bearer.kms.encrypt-decrypt"), "skipped");
    assert_eq!(status(&doc, "stack.down"), "passed", "what started is torn down");
    assert_eq!(doc["services"][1]["health"], "unhealthy");
}

#[test]
fn an_unreadable_state_file_fails_the_start_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("state");
    demo::state::State::ensure(&root, &pki::PkiSpec::demo()).unwrap();
    let tenants = root.join("secrets/tenants.yml");
    std::fs::remove_file(&tenants).unwrap();
    std::fs::create_dir(&tenants).unwrap(); // unreadable as a file, even for root
    let (code, doc) = run_json(
        &["kms", "--runtime", "embedded", "--output", "json", "--state-dir", root.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 2, "{doc:#}");
    let error = &doc["errors"][0];
    assert_eq!(error["step"], "stack.up.kms");
    assert!(error["causes"].to_string().contains("secrets/tenants.yml"), "{error}");
    assert!(error["hint"].as_str().unwrap().contains("--reset-demo"), "{error}");
    assert_eq!(status(&doc, "health.kms"), "skipped");
}

#[test]
fn completions_and_the_manual_page_come_from_the_command_line_itself() {
    for (shell, marker) in [
        ("bash", "_demo()"),
        ("zsh", "#compdef demo"),
        ("fish", "complete -c demo"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = crate::demo().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("reset-demo"), "{shell} completes the run flags");
    }
    let out = crate::demo().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "an unknown shell is a usage error");
    let man = crate::demo().arg("man").output().unwrap();
    assert!(man.status.success());
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(page.starts_with(".ie") || page.contains(".TH demo"), "{page}");
    assert!(page.contains("healthcheck") && page.contains("completions"), "every command is listed");
}
