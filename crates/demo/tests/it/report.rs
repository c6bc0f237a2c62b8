//! The JSON report: its shape (insta) and its validity against docs/report.schema.json, checked
//! by an independent validator (Python jsonschema).

use std::process::Command;
use std::sync::Arc;

use demo::engine::{Engine, EngineOptions, Phase, Plan, Step, StepError};
use demo::report::{Artifacts, Report, RuntimeChoice, ServiceReport};
use tokio::sync::watch;

async fn sample() -> serde_json::Value {
    let plan: Plan<()> = Plan::new()
        .step(Step::new("pki.generate", Phase::Setup, |_| async { Ok(()) }))
        .step(Step::new("health.kms", Phase::Health, |_| async { Ok(()) }))
        .step(Step::new("flow.token.kms.encrypt", Phase::Flows, |_| async {
            Err(StepError { causes: vec!["403 Forbidden".into()], ..StepError::new("encrypt was refused") }
                .with_hint("give the client the kms:encrypt scope"))
        }))
        .step(
            Step::new("flow.token.kms.decrypt", Phase::Flows, |_| async { Ok(()) })
                .after(&["flow.token.kms.encrypt"]),
        );
    let (_tx, rx) = watch::channel(false);
    let run = Engine::new(EngineOptions::default(), Arc::new(())).run(plan, Arc::new(()), rx).await;
    let report = Report::new(
        "all",
        RuntimeChoice { name: "embedded", reason: "--runtime embedded".into() },
        "ci",
        &run,
        vec![ServiceReport {
            name: "kms".into(),
            url: "https://kms.demo.local:8081".into(),
            health: "healthy",
        }],
        Artifacts {
            ca_bundle: "/state/pki/ca-bundle.pem".into(),
            state_dir: "/state".into(),
            credentials_file: "/state/credentials.json".into(),
        },
    );
    serde_json::to_value(report).unwrap()
}

#[tokio::test(start_paused = true)]
async fn report_shape() {
    let doc = sample().await;
    assert_eq!(doc["outcome"], "partial");
    assert_eq!(doc["exit_code"], 1);
    assert_eq!(doc["errors"][0]["step"], "flow.token.kms.encrypt");
    assert_eq!(doc["steps"][3]["status"], "skipped");
    insta::assert_json_snapshot!("report_partial", doc, { ".duration_ms" => "[ms]", ".steps[].duration_ms" => "[ms]" });
}

#[tokio::test(start_paused = true)]
async fn reports_validate_against_the_documented_schema() {
    if !test_support::oracle::python("jsonschema", "python3 with jsonschema") {
        return;
    }
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/report.schema.json");
    let doc = sample().await;
    let script = "import json,sys,jsonschema\nschema=json.load(open(sys.argv[1]))\njsonschema.Draft202012Validator.check_schema(schema)\njsonschema.validate(json.loads(sys.argv[2]), schema, cls=jsonschema.Draft202012Validator)";
    let out = Command::new("python3").args(["-c", script, schema, &doc.to_string()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // And the validator is not a rubber stamp: a broken report fails.
    let mut broken = doc.clone();
    broken["outcome"] = "mostly-fine".into();
    let out = Command::new("python3").args(["-c", script, schema, &broken.to_string()]).output().unwrap();
    assert!(!out.status.success());
}
