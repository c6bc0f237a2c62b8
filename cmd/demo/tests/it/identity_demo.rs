//! `demo identity` on the embedded runtime, through the binary.

fn run_json(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = crate::demo().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), doc, stderr)
}

fn statuses(doc: &serde_json::Value) -> Vec<(String, String)> {
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_owned(), s["status"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn every_flow_passes_then_a_second_run_reuses_the_state() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let state = state.to_str().unwrap();
    let args = ["identity", "--runtime", "embedded", "--state-dir", state, "--output", "json"];
    let (code, doc, stderr) = run_json(&args);
    assert_eq!(code, 0, "{doc:#}\n{stderr}");
    assert_eq!(doc["command"], "identity");
    let steps = statuses(&doc);
    for want in [
        "health.identity",
        "verify.identity.discovery",
        "verify.identity.clients",
        "verify.identity.users",
        "flow.identity.client-credentials",
        "flow.identity.introspection",
        "flow.identity.revocation",
        "flow.identity.code-pkce",
        "flow.identity.userinfo",
        "flow.identity.refresh-rotation",
        "flow.identity.refresh-reuse",
        "stack.down",
    ] {
        assert!(steps.iter().any(|(id, s)| id == want && s == "passed"), "{want} did not pass: {steps:?}");
    }
    assert_eq!(doc["services"][0]["name"], "identity");
    let credentials =
        std::fs::read_to_string(doc["artifacts"]["credentials_file"].as_str().unwrap()).unwrap();
    assert!(credentials.contains("user_password_admin"), "{credentials}");
    let secret = std::fs::read_to_string(tmp.path().join("state/secrets/user_password_admin")).unwrap();
    assert!(!credentials.contains(&secret), "the credentials file names files, it does not copy secrets");

    // Same state again: the database, users and keys are reused, and everything passes.
    let (code, doc, stderr) = run_json(&args);
    assert_eq!(code, 0, "{doc:#}\n{stderr}");
}

#[test]
fn a_user_whose_password_no_longer_matches_makes_the_run_partial() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let state = state.to_str().unwrap();
    let args = ["identity", "--runtime", "embedded", "--state-dir", state, "--output", "json"];
    assert_eq!(run_json(&args).0, 0);
    // The seeded hash stays in the database; the state directory makes a new, different password.
    std::fs::remove_file(tmp.path().join("state/secrets/user_password_admin")).unwrap();
    let (code, doc, stderr) = run_json(&args);
    assert_eq!(code, 1, "{doc:#}\n{stderr}");
    assert_eq!(doc["outcome"], "partial");
    let steps = statuses(&doc);
    let status = |id: &str| steps.iter().find(|(s, _)| s == id).map(|(_, st)| st.as_str());
    assert_eq!(status("verify.identity.users"), Some("failed"));
    assert_eq!(status("flow.identity.code-pkce"), Some("skipped"), "dependants are skipped");
    assert_eq!(status("flow.identity.refresh-reuse"), Some("skipped"));
    assert_eq!(status("flow.identity.client-credentials"), Some("passed"), "the others still run");
    assert_eq!(status("stack.down"), Some("passed"));
    let error = doc["errors"][0].to_string();
    assert!(error.contains("seeded user admin cannot sign in"), "{error}");
    assert!(error.contains("answered 400"), "the cause names what the server answered: {error}");
}
