//! The OpenAPI document against the server it describes: schemathesis (an independent fuzzer,
//! pinned in .ci/requirements.txt) reads `/api/v1/openapi.json` from a KMS started with the
//! demo seed, generates valid and invalid requests for every operation (the document's
//! examples, boundary cases, random data, and chains along its links), sends them as demo
//! accounts, and checks every answer against the document with all of its checks. Any finding
//! fails the test with schemathesis's report.
//!
//! Deterministic: a fixed seed, no example database, one worker, a fresh server in a temporary
//! directory per run. The per-operation settings (and why) are in `schemathesis.toml` beside
//! this file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kms::config::{AuthConfig, RealmConfig, SeedConfig};
use kms::service::{self, StartOptions};
use test_support::TestDir;

/// Fixed: a finding reproduces with the same seed.
const SEED: &str = "20261201";

/// schemathesis's command line through python3 (the package has no `__main__`; its `st` script
/// may not be on PATH), so the same interpreter as the other oracles runs it.
const CLI: &str =
    "import sys; sys.argv[0] = 'st'; from schemathesis.cli import schemathesis; sys.exit(schemathesis())";

/// True when schemathesis can be run; loud skip otherwise, failure under CI.
fn have_schemathesis() -> bool {
    let ok =
        Command::new("python3").args(["-c", CLI, "--version"]).output().is_ok_and(|o| o.status.success());
    test_support::oracle::present(ok, "schemathesis (pip install -r .ci/requirements.txt)")
}

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The KMS as `demo serve kms --demo` runs it: the shipped seed, the database realm with the
/// demo accounts.
async fn start_demo_kms(dir: &TestDir) -> service::RunningKms {
    let (acme, globex) = (kms::TenantId::random().to_string(), kms::TenantId::random().to_string());
    let tenants_file = dir.tenants_file(&[("acme", &acme), ("globex", &globex)]);
    let mut config = test_support::kms::config(
        dir,
        AuthConfig {
            cache_ttl: Duration::from_secs(600),
            // ignored_auth probes each operation once with a made-up user: with the default
            // lockout (5 failures) the later probes would be answered 429, which that check does
            // not count as a refusal. The lockout itself is tested in api.rs.
            max_failures: 1000,
            failure_ceiling: 10_000,
            ..test_support::kms::auth(vec![RealmConfig::Database])
        },
    );
    config.seed =
        Some(SeedConfig { file: repo_file("../../deployments/kms/config/demo-seed.yml"), tenants_file });
    test_support::kms::start(dir, &config, StartOptions { demo: true }).await.service
}

/// How a pass authenticates.
#[derive(Clone, Copy)]
enum Auth {
    /// As acme's tenant admin, with globex's user as a peer that must not see acme's objects
    /// (what `object_level_authorization` probes).
    AdminWithPeer,
    /// Basic `user:password`.
    Basic(&'static str),
    /// No credentials.
    Anonymous,
}

/// Who fuzzes, and how hard. The tenant admin reaches every operation (the bulk of the run);
/// a user meets 403 on pool management; without credentials every answer is a 401, so its
/// `WWW-Authenticate` header and body are checked against the document too (a request without
/// credentials costs no password check, so that pass stays fast).
const PASSES: [(&str, Auth, &str); 3] = [
    ("acme-admin", Auth::AdminWithPeer, "100"),
    ("acme-user", Auth::Basic("acme-user:acme-user-demo"), "10"),
    ("anonymous", Auth::Anonymous, "5"),
];

/// The Web Fuzzing Commons auth file and a copy of `schemathesis.toml` that names the peers.
fn peer_config(work: &Path) -> PathBuf {
    use base64::Engine as _;
    let basic = |user: &str, password: &str| {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        serde_json::json!({ "name": user, "fixedHeaders": [{ "name": "Authorization", "value": format!("Basic {token}") }] })
    };
    let wfc = work.join("wfc-auth.json");
    let accounts = [basic("acme-admin", "acme-admin-demo"), basic("globex-user", "globex-user-demo")];
    std::fs::write(&wfc, serde_json::json!({ "auth": accounts }).to_string()).unwrap();
    let mut config = std::fs::read_to_string(repo_file("tests/it/schemathesis.toml")).unwrap();
    config.push_str(&format!(
        "\n[auth.wfc]\npath = {:?}\nuser = \"acme-admin\"\npeers = [\"acme-admin\", \"globex-user\"]\n",
        wfc.display().to_string()
    ));
    let path = work.join("schemathesis-peers.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// One schemathesis run: `Ok(summary)` or `Err(the whole report)`.
fn run_schemathesis(
    origin: &str,
    ca: &Path,
    work: &Path,
    auth: Auth,
    max_examples: &str,
) -> Result<String, String> {
    let config = match auth {
        Auth::AdminWithPeer => peer_config(work),
        Auth::Basic(_) | Auth::Anonymous => repo_file("tests/it/schemathesis.toml"),
    };
    let mut args: Vec<String> = vec![
        "-c".into(),
        CLI.into(),
        "--no-color".into(),
        "--config-file".into(),
        config.display().to_string(),
        "run".into(),
        format!("{origin}/api/v1/openapi.json"),
        "--url".into(),
        origin.to_owned(),
        "--tls-verify".into(),
        ca.display().to_string(),
        "--checks".into(),
        "all".into(),
        "--seed".into(),
        SEED.into(),
        "--max-examples".into(),
        max_examples.into(),
        "--workers".into(),
        "1".into(),
        "--generation-database".into(),
        "none".into(),
        "--request-timeout".into(),
        "20".into(),
    ];
    if let Auth::Basic(credentials) = auth {
        args.extend(["--auth".into(), credentials.to_owned()]);
    }
    let output = Command::new("python3").args(&args).current_dir(work).env("NO_COLOR", "1").output().unwrap();
    let report =
        format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    // A run that tested nothing would also exit 0.
    if !output.status.success() || !report.contains("Tested: 17") {
        return Err(report);
    }
    // The warnings and the summary, for the log of a green run.
    Ok(report
        .lines()
        .skip_while(|l| !l.contains("WARNINGS") && !l.contains("SUMMARY"))
        .collect::<Vec<_>>()
        .join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_the_document_does_not_say() {
    if !have_schemathesis() {
        return;
    }
    let dir = crate::api::prepare();
    let kms = start_demo_kms(&dir).await;
    let origin = format!("https://127.0.0.1:{}", kms.server.addr.port());
    let (ca, work) = (dir.pki().ca_bundle(), dir.path().to_owned());
    let outcomes = tokio::task::spawn_blocking(move || {
        PASSES
            .map(|(who, auth, max_examples)| (who, run_schemathesis(&origin, &ca, &work, auth, max_examples)))
    })
    .await
    .unwrap();
    kms.shutdown().await.unwrap();
    let mut failed = Vec::new();
    for (who, outcome) in outcomes {
        match outcome {
            Ok(summary) => eprintln!("schemathesis as {who}:\n{summary}"),
            Err(report) => {
                failed.push(format!("schemathesis as {who} found problems (seed {SEED}):\n{report}"))
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}
