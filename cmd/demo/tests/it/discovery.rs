//! What a stranger's tools hit first: every URL that discovery advertises answers on the port it
//! names — from the host on both runtimes, followed by an independent relying party (Authlib)
//! whose only help is a hosts-file-like name mapping, and on Docker also from inside the stack
//! (the KMS's container probing each URL with the image's own `demo healthcheck`). The issuer
//! the KMS expects is that same URL: its Bearer flows pass.

use std::process::Command;
use std::sync::Arc;

use demo::runtime::Runtime;
use demo::stack::{DemoOptions, Profile, RunningStack, Stack};

use crate::docker_demo::{engine_turn, state_suffix};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/follow_discovery.py");

/// Whether Python with Authlib and requests is here; loud skip, or a failure under CI.
fn authlib_here() -> bool {
    test_support::oracle::python("authlib, requests", "python3 with Authlib and requests")
}

/// Runs the relying party against `stack`; returns what it observed, or its complaint.
fn follow(stack: &RunningStack) -> Result<serde_json::Value, String> {
    let issuer = stack.identity_url.clone().ok_or("no Identity URL")?;
    let out = Command::new("python3")
        .arg(SCRIPT)
        .arg(&issuer)
        .arg(stack.state.ca_bundle())
        .arg("demo-confidential")
        .arg(stack.client_secret_file("demo-confidential"))
        .env_remove("REQUESTS_CA_BUNDLE")
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// What the relying party must have seen.
fn assert_followed(observed: &serde_json::Value, issuer: &str) {
    assert_eq!(observed["issuer"], issuer, "{observed:#}");
    let followed = observed["followed"].as_object().unwrap();
    for key in [
        "jwks_uri",
        "token_endpoint",
        "authorization_endpoint",
        "userinfo_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
    ] {
        assert!(followed.contains_key(key), "{key} was not advertised or not followed: {observed:#}");
    }
    assert_eq!(observed["active"], true, "{observed:#}");
    assert!(observed["jwks_keys"].as_u64().unwrap() >= 1, "{observed:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_every_advertised_url_answers_where_it_says() {
    if !authlib_here() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let stack =
        demo::stack::start(DemoOptions::new(Stack::All, tmp.path().join("state")), Arc::new(()), rx).await;
    let observed = follow(&stack);
    let report = stack.report.clone();
    let issuer = stack.identity_url.clone().unwrap();
    stack.shutdown().await.unwrap();
    // The KMS accepted tokens of this issuer: the Bearer flows ran against it.
    assert_eq!(report.exit_code, 0, "{:#?}", report.errors);
    let bearer = report.steps.iter().find(|s| s.id == "flow.bearer.kms.encrypt-decrypt");
    assert_eq!(bearer.map(|s| s.status), Some(demo::engine::Status::Passed), "{:#?}", report.steps);
    assert_followed(&observed.unwrap(), &issuer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The engine turn is held for the whole test on purpose: it only keeps other tests waiting,
// and each test runs on a runtime of its own.
#[allow(clippy::await_holding_lock)]
async fn docker_every_advertised_url_answers_from_the_host_and_from_inside_the_stack() {
    let Some(_engine) = engine_turn().filter(|_| authlib_here()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let options = DemoOptions {
        profile: Profile::Ci,
        service_binary: Some(assert_cmd::cargo::cargo_bin("demo")),
        ..DemoOptions::new(Stack::All, &state)
    };
    let stack = demo::stack::start(options.on(Runtime::Docker), Arc::new(()), rx).await;
    // Observed first, asserted after the shutdown, so a failure leaves nothing running.
    let from_host = follow(&stack);
    let issuer = stack.identity_url.clone().unwrap_or_default();
    let kms = format!("demo-all-{}-kms-1", state_suffix(state.to_str().unwrap()));
    let mut from_inside = Vec::new();
    if from_host.is_ok() {
        let disco = format!("{issuer}/.well-known/openid-configuration");
        for url in std::iter::once(disco).chain(advertised_urls(&stack).await) {
            let out = Command::new("docker")
                .args(["exec", &kms, "/demo", "healthcheck", &url, "--ca", "/run/secrets/ca_bundle"])
                .output()
                .unwrap();
            from_inside.push((url, out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned()));
        }
    }
    let report = stack.report.clone();
    stack.shutdown().await.unwrap();
    assert_eq!(report.exit_code, 0, "{:#?}", report.errors);
    let port = issuer.rsplit(':').next().unwrap();
    assert_followed(&from_host.unwrap(), &issuer);
    assert!(from_inside.len() >= 7, "{from_inside:#?}");
    for (url, code, stderr) in from_inside {
        // 0: a 2xx; 1 with "answered": an HTTP answer (405 for a GET of the token endpoint).
        // "no answer" (refused, unresolvable, TLS) is the failure this test exists for.
        assert!(
            code == Some(0) || (code == Some(1) && stderr.contains(" answered ")),
            "from the KMS's container, {url} (port {port}): {code:?} {stderr}"
        );
    }
}

/// The URLs discovery advertises, read with the stack's own client.
async fn advertised_urls(stack: &RunningStack) -> Vec<String> {
    let (Some(client), Some(issuer)) = (stack.client(), &stack.identity_url) else { return Vec::new() };
    let Ok(resp) = client.get(format!("{issuer}/.well-known/openid-configuration")).send().await else {
        return Vec::new();
    };
    let doc: serde_json::Value = resp.json().await.unwrap_or_default();
    doc.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.ends_with("_endpoint") || k.ends_with("_uri"))
        .filter_map(|(_, v)| v.as_str().map(str::to_owned))
        .collect()
}
