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

pub(crate) fn validate_with_jsonschema(doc: &serde_json::Value) {
    if !test_support::oracle::python("jsonschema", "python3 with jsonschema") {
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
        // Issue 16: token exchange, and a second issuer through the KMS's trust store.
        "flow.exchange.txn-token.kms",
        "flow.exchange.unpermitted-actor",
        "flow.exchange.wider-scope",
        "stack.up.partner",
        "flow.federation.partner-token",
        "flow.federation.not-authority",
        "flow.federation.trust-reload",
        // Issue 17: API keys made at Identity, used at the KMS.
        "flow.apikey.kms",
        "flow.apikey.pool-scoped",
        "flow.apikey.lifecycle",
    ] {
        assert!(steps.contains(&(want, "passed")), "{want} did not pass: {steps:?}");
    }
    // Every check says what it verified; steps that only do work (prepare, start, stop) need not.
    for step in doc["steps"].as_array().unwrap() {
        let id = step["id"].as_str().unwrap();
        if ["verify.", "flow.", "health."].iter().any(|p| id.starts_with(p)) {
            assert!(
                step["verified"].as_str().is_some_and(|v| v.len() > 10),
                "{id} does not say what it verified"
            );
        }
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

#[test]
fn keep_running_serves_after_the_report_until_interrupted() {
    use std::io::{BufRead, BufReader, Read};
    let tmp = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("demo"))
        .args(["kms", "--runtime", "embedded", "--keep-running", "--output", "json", "--state-dir"])
        .arg(tmp.path().join("state"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The banner on stderr comes after the report on stdout.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines();
    let banner = lines.by_ref().map_while(Result::ok).find(|l| l.contains("keeps running until Ctrl-C"));
    assert!(banner.is_some(), "no keep-running banner");
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
    // The report is complete on stdout (one JSON document), then the process waits.
    let mut stdout = child.stdout.take().unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    let report: serde_json::Value = loop {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "stdout closed before a full report: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        if let Ok(doc) = serde_json::from_str(&text) {
            break doc;
        }
    };
    assert_eq!(report["exit_code"], 0, "{report:#}");
    let url = report["services"][0]["url"].as_str().unwrap().to_owned();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let ca = report["artifacts"]["ca_bundle"].as_str().unwrap().to_owned();
    // Still serving after the report.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(
                pki::ClientTlsFiles::trusting(std::path::PathBuf::from(&ca)).build().unwrap(),
            )
            .resolve("kms.demo.local", std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .build()
            .unwrap();
        client
            .get(format!("{url}/api/v1/pools"))
            .basic_auth("acme-admin", Some("acme-admin-demo"))
            .send()
            .await
    });
    assert_eq!(status.unwrap().status(), 200);
    // Ctrl-C: the stack stops and the run's exit code is kept.
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let started = std::time::Instant::now();
    let exit = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(15), "still running after Ctrl-C");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(0), "{}", drain.join().unwrap());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the KMS port is closed");
}
