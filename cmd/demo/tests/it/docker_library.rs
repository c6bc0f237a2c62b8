//! The library API on the Docker runtime, as parallel integration tests use it: two KMS stacks
//! started at once from different state directories get their own compose projects and free
//! host ports, answer through the stack's client, and `shutdown()` takes each down. Skipped
//! loudly without an engine, a failure under CI.

use std::sync::Arc;

use demo::runtime::Runtime;
use demo::stack::{DemoOptions, Profile, RunningStack, Stack};

use crate::docker_demo::{engine_turn, state_suffix};
use crate::docker_faults::leftovers;

async fn start_kms(state: &std::path::Path) -> RunningStack {
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let options = DemoOptions {
        profile: Profile::Ci,
        service_binary: Some(assert_cmd::cargo::cargo_bin("demo")),
        ..DemoOptions::new(Stack::Kms, state)
    };
    demo::stack::start(options.on(Runtime::Docker), Arc::new(()), rx).await
}

/// The status of the KMS's pool list for the demo's tenant admin, through the stack's client.
pub(crate) async fn list_pools(stack: &RunningStack) -> Result<u16, String> {
    let url = format!("{}/api/v1/pools", stack.kms_url.clone().unwrap_or_default());
    let client = stack.client().ok_or("no client")?;
    client
        .get(url)
        .basic_auth("acme-admin", Some("acme-admin-demo"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The engine turn is held for the whole test on purpose: it only keeps other tests waiting,
// and each test runs on a runtime of its own.
#[allow(clippy::await_holding_lock)]
async fn two_docker_stacks_start_in_parallel_without_colliding_and_shut_down() {
    let Some(_engine) = engine_turn() else {
        return;
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, sb) = (a.path().join("state"), b.path().join("state"));
    let (first, second) = tokio::join!(start_kms(&sa), start_kms(&sb));
    let projects: Vec<String> =
        [&sa, &sb].iter().map(|s| format!("demo-kms-{}", state_suffix(s.to_str().unwrap()))).collect();
    // Everything is observed first and asserted after the shutdown, so a failure leaves nothing.
    let mut answers = Vec::new();
    for stack in [&first, &second] {
        answers.push(list_pools(stack).await);
    }
    let running: Vec<usize> = projects.iter().map(|p| leftovers(p).len()).collect();
    let reports = [first.report.clone(), second.report.clone()];
    let urls = (first.kms_url.clone(), second.kms_url.clone());
    let down = (first.shutdown().await, second.shutdown().await);
    for report in &reports {
        assert_eq!(report.exit_code, 0, "{:#?}", report.errors);
        assert_eq!(report.runtime.name, "docker");
    }
    for answer in answers {
        assert_eq!(answer, Ok(200), "each stack answers through its own client");
    }
    assert_ne!(urls.0, urls.1, "each stack has its own free host port");
    assert_ne!(projects[0], projects[1], "each state directory has its own compose project");
    assert!(running.iter().all(|n| *n > 0), "both projects ran: {running:?}");
    assert!(down.0.is_ok() && down.1.is_ok(), "{down:?}");
    let telemetry: Vec<String> =
        [&sa, &sb].iter().map(|s| format!("demo-telemetry-{}", state_suffix(s.to_str().unwrap()))).collect();
    for project in projects.iter().chain(&telemetry) {
        let left = leftovers(project);
        assert!(left.is_empty(), "shutdown() left {left:?} of {project} (ci keeps no volume)");
    }
}
