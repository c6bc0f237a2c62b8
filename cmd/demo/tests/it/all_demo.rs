//! `demo all` on the embedded runtime, through the binary: every flow of DESIGN §8 a step, the
//! report valid against `docs/report.schema.json` (checked by Python's jsonschema), state reuse
//! and `--reset-demo`.

use std::path::Path;
use std::process::Command;

fn run_json(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = crate::demo().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), doc, stderr)
}

fn validate_with_jsonschema(doc: &serde_json::Value) {
    let ok =
        Command::new("python3").args(["-c", "import jsonschema"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with jsonschema is missing under CI: .ci/run installs it"
        );
        eprintln!("SKIPPED: schema validation (python3 with jsonschema is not installed)");
        return;
    }
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/report.schema.json");
    let out = Command::new("python3")
        .args([
            "-c",
            "import json,sys,jsonschema; jsonschema.validate(json.loads(sys.argv[1]), json.load(open(sys.argv[2])))",
            &doc.to_string(),
            schema.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the report does not match the schema: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_design_flow_is_a_passing_step_again_on_reuse_and_after_a_reset() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let state = state.to_str().unwrap();
    let args = ["all", "--runtime", "embedded", "--state-dir", state, "--output", "json"];
    let (code, doc, stderr) = run_json(&args);
    assert_eq!(code, 0, "{doc:#}\n{stderr}");
    assert_eq!((doc["command"].as_str(), doc["outcome"].as_str()), (Some("all"), Some("success")));
    validate_with_jsonschema(&doc);
    let steps: Vec<(&str, &str)> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    // DESIGN §8, in order of the text.
    for want in [
        "health.identity",
        "health.kms",
        "verify.identity.users",
        "verify.identity.clients",
        "verify.kms.pools",
        "flow.bearer.kms.encrypt-decrypt",
        "flow.bearer.kms.missing-scope",
        "flow.bearer.kms.no-token",
        "flow.bearer.kms.tampered-token",
        "flow.identity.introspection",
        "flow.identity.revocation",
        "flow.bearer.kms.revoked-token",
        "flow.identity.code-pkce",
        "flow.identity.userinfo",
        "flow.identity.refresh-rotation",
        "flow.identity.refresh-reuse",
        "flow.basic.kms.encrypt",
    ] {
        assert!(steps.contains(&(want, "passed")), "{want} did not pass: {steps:?}");
    }
    // The health chain: the KMS is checked after Identity.
    let position = |id: &str| steps.iter().position(|(s, _)| *s == id).unwrap();
    assert!(position("health.identity") < position("health.kms"));
    let names: Vec<&str> =
        doc["services"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["identity", "kms"]);

    let (code, doc, stderr) = run_json(&args);
    assert_eq!(code, 0, "second run, state reused: {doc:#}\n{stderr}");
    let mut reset = args.to_vec();
    reset.push("--reset-demo");
    let (code, doc, stderr) = run_json(&reset);
    assert_eq!(code, 0, "after --reset-demo: {doc:#}\n{stderr}");
}
