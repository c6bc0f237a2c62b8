//! The library API integration tests use: start a whole stack in-process, get its endpoints, a
//! client that trusts the demo CA and the seeded credentials, then stop it. Two stacks with
//! different state directories run side by side without colliding.

use std::sync::Arc;

use demo::stack::{DemoOptions, RunningStack, Stack, start};

async fn start_all(dir: &std::path::Path) -> RunningStack {
    let (_tx, rx) = tokio::sync::watch::channel(false);
    start(DemoOptions::new(Stack::All, dir.join("state")), Arc::new(()), rx).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stacks_run_side_by_side_and_are_usable_through_the_api() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (first, second) = tokio::join!(start_all(a.path()), start_all(b.path()));
    for stack in [&first, &second] {
        assert_eq!(stack.report.exit_code, 0, "{:#?}", stack.report.errors);
        assert!(
            !stack.report.steps.iter().any(|s| s.id == "stack.down"),
            "nothing is torn down while the caller holds the stack"
        );
    }
    assert_ne!(first.kms_url, second.kms_url, "free ports: no collision");
    assert_ne!(first.identity_url, second.identity_url);

    // The stack is still up: a confidential client gets a token and the KMS accepts it.
    for stack in [&first, &second] {
        let client = stack.client().unwrap();
        let secret = std::fs::read_to_string(stack.client_secret_file("demo-confidential")).unwrap();
        let token: serde_json::Value = client
            .post(format!("{}/token", stack.identity_url.as_ref().unwrap()))
            .basic_auth("demo-confidential", Some(secret.trim()))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let who = client
            .get(format!("{}/api/v1/whoami", stack.kms_url.as_ref().unwrap()))
            .bearer_auth(token["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(who.status(), 200);
        assert!(stack.user_password_file("admin").exists());
    }
    let kms_url = first.kms_url.clone().unwrap();
    let client = first.client().unwrap().clone();
    first.shutdown().await.unwrap();
    second.shutdown().await.unwrap();
    assert!(client.get(format!("{kms_url}/api/v1/whoami")).send().await.is_err(), "stopped: nothing listens");
}
