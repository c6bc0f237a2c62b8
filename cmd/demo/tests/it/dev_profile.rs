//! `--profile dev`: the services on PostgreSQL, the database first in the health chain, on both
//! runtimes. Embedded: a cluster of the host's PostgreSQL in the state directory, stopped with
//! the run, holding a schema per KMS tenant (read back with `psql`). Docker: the `postgres`
//! service (official image or the offline one), listed by `demo status`, removed with its volume
//! by `demo down --volumes`. And the library call that asks for PostgreSQL. Skipped loudly
//! without PostgreSQL (or Docker), a failure under CI.

use std::sync::Arc;

use demo::runtime::Runtime;
use demo::stack::{DemoOptions, Profile, Stack};

use crate::docker_demo::{engine_turn, run_json, state_suffix};

fn postgres_installed() -> bool {
    test_support::oracle::present(pg_cluster::Binaries::find().is_ok(), "PostgreSQL (initdb, pg_ctl)")
}

/// The ids of the steps of phase health, in report order, and whether every step passed.
fn health_steps(doc: &serde_json::Value) -> Vec<String> {
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["id"].as_str().filter(|id| id.starts_with("health.")).map(str::to_owned))
        .collect()
}

fn all_passed(doc: &serde_json::Value) -> bool {
    doc["steps"].as_array().unwrap().iter().all(|s| s["status"] == "passed")
}

/// The KMS tenants' schemas in the embedded cluster of `state` (started for the query, stopped
/// after).
fn tenant_schemas(state: &std::path::Path) -> Vec<String> {
    let dir = demo::state::State::at(state).postgres_dir();
    let cluster = pg_cluster::Cluster::init(&dir, pg_cluster::free_port().unwrap()).unwrap();
    assert!(!cluster.is_running(), "the run stopped its PostgreSQL");
    cluster.start().unwrap();
    let out =
        cluster.psql("kms", "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant\\_%' ORDER BY 1");
    cluster.stop(false).unwrap();
    out.unwrap().lines().map(str::to_owned).collect()
}

#[test]
fn embedded_dev_runs_on_postgres_reuses_it_and_resets_it() {
    if !postgres_installed() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state_path = tmp.path().join("state");
    let state = state_path.to_str().unwrap();
    let args = ["all", "--runtime", "embedded", "--profile", "dev", "--output", "json", "--state-dir", state];
    let (code, doc, stderr) = run_json(&args);
    assert_eq!(code, 0, "{doc:#}\n{stderr}");
    assert!(all_passed(&doc), "{doc:#}");
    assert_eq!(doc["profile"], "dev");
    crate::all_demo::validate_with_jsonschema(&doc);
    assert_eq!(health_steps(&doc), ["health.postgres", "health.identity", "health.kms"]);
    let steps: Vec<&str> =
        doc["steps"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert!(steps.contains(&"stack.up.postgres") && steps.contains(&"stack.down"), "{steps:?}");
    // The KMS's tenants live in PostgreSQL, a schema each.
    let first = tenant_schemas(&state_path);
    assert_eq!(first.len(), 2, "acme and globex: {first:?}");

    // Again on the same cluster and data.
    let (code, doc, stderr) = run_json(&args);
    assert_eq!(code, 0, "{doc:#}\n{stderr}");
    assert_eq!(tenant_schemas(&state_path), first, "the same tenants: the data was reused");

    // A reset makes a new cluster with new tenant ids.
    let mut reset = args.to_vec();
    reset.push("--reset-demo");
    let (code, doc, stderr) = run_json(&reset);
    assert_eq!(code, 0, "{doc:#}\n{stderr}");
    let after = tenant_schemas(&state_path);
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|s| !first.contains(s)), "new tenants after the reset: {first:?} {after:?}");
    std::fs::remove_dir_all(demo::state::State::at(&state_path).postgres_dir()).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_asks_for_postgres_and_shutdown_stops_it() {
    if !postgres_installed() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let options = DemoOptions { profile: Profile::Dev, ..DemoOptions::new(Stack::Kms, &state) };
    let stack = demo::stack::start(options.on(Runtime::Embedded), Arc::new(()), rx).await;
    let answer = crate::docker_library::list_pools(&stack).await;
    let report = stack.report.clone();
    let pid_file = demo::state::State::at(&state).postgres_dir().join("data/postmaster.pid");
    let running = pid_file.exists();
    let down = stack.shutdown().await;
    assert_eq!(report.exit_code, 0, "{:#?}", report.errors);
    assert_eq!(answer, Ok(200));
    assert!(running, "PostgreSQL runs while the stack does");
    assert_eq!(down, Ok(()));
    assert!(!pid_file.exists(), "shutdown stopped PostgreSQL");
    std::fs::remove_dir_all(demo::state::State::at(&state).postgres_dir()).ok();
}

#[test]
fn docker_dev_runs_postgres_first_and_down_removes_it() {
    let Some(_engine) = engine_turn().filter(|_| postgres_installed()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let state_path = tmp.path().join("state");
    let state = state_path.to_str().unwrap();
    let project = format!("demo-all-{}", state_suffix(state));
    let args = ["all", "--runtime", "docker", "--profile", "dev", "--output", "json", "--state-dir", state];
    let (code, doc, stderr) = run_json(&args);
    let status = crate::demo().args(["status", "--state-dir", state]).output().unwrap();
    let down = crate::demo().args(["down", "--volumes", "--state-dir", state]).output().unwrap();
    let left = crate::docker_faults::leftovers(&project);
    assert_eq!(code, 0, "{doc:#}\n{stderr}");
    assert!(all_passed(&doc), "{doc:#}");
    assert_eq!(health_steps(&doc), ["health.postgres", "health.identity", "health.kms"]);
    let notes = doc["notes"].to_string();
    assert!(notes.contains("PostgreSQL runs from"), "the report says which image: {notes}");
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.lines().any(|l| l.trim_start().starts_with("postgres") && l.contains("healthy")),
        "{status}"
    );
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(left.is_empty(), "demo down --volumes leaves nothing, the database's volume included: {left:?}");
}
