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

use kms::config::{
    AuthConfig, KmsConfig, RealmConfig, SeedConfig, SqliteConfig, StorageConfig, UnsealConfig,
};
use kms::service::{self, StartOptions};
use secrecy::ExposeSecret;
use service_kit::server::HttpConfig;

/// Fixed: a finding reproduces with the same seed.
const SEED: &str = "20261201";
/// Generated cases per operation and phase: bounded so the run stays within about two minutes
/// on two cores.
const MAX_EXAMPLES: &str = "100";

/// schemathesis's command line through python3 (the package has no `__main__`; its `st` script
/// may not be on PATH), so the same interpreter as the other oracles runs it.
const CLI: &str =
    "import sys; sys.argv[0] = 'st'; from schemathesis.cli import schemathesis; sys.exit(schemathesis())";

/// True when schemathesis can be run; loud skip otherwise, failure under CI.
fn have_schemathesis() -> bool {
    let ok =
        Command::new("python3").args(["-c", CLI, "--version"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "schemathesis is missing under CI: .ci/run must install it (.ci/requirements.txt)"
        );
        eprintln!(
            "SKIPPED: schemathesis is not installed (pip install -r .ci/requirements.txt); this test needs it"
        );
    }
    ok
}

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The KMS as `demo serve kms --demo` runs it: the shipped seed, the database realm with the
/// demo accounts.
async fn start_demo_kms(dir: &Path, pki: &pki::PkiDir) -> service::RunningKms {
    let shares = barrier::new_shares(3, 5).unwrap();
    let mut share_files = Vec::new();
    for (i, share) in shares.iter().take(3).enumerate() {
        let path = dir.join(format!("share_{i}"));
        std::fs::write(&path, share.encode().expose_secret()).unwrap();
        share_files.push(path);
    }
    let tenants_file = dir.join("tenants.yml");
    std::fs::write(
        &tenants_file,
        format!("acme: {}\nglobex: {}\n", kms::TenantId::random(), kms::TenantId::random()),
    )
    .unwrap();
    let config = KmsConfig {
        server: HttpConfig::loopback(pki, "kms"),
        storage: StorageConfig { sqlite: SqliteConfig { path: dir.join("kms.db") } },
        unseal: UnsealConfig { share_files },
        auth: AuthConfig {
            realms: vec![RealmConfig::Database],
            cache_ttl: Duration::from_secs(600),
            cache_entries: 100,
            // ignored_auth probes each operation once with a made-up user: with the default
            // lockout (5 failures) the later probes would be answered 429, which that check does
            // not count as a refusal. The lockout itself is tested in api.rs.
            max_failures: 1000,
            failure_window: Duration::from_secs(60),
            bearer: None,
        },
        seed: Some(SeedConfig {
            file: repo_file("../../deployments/kms/config/demo-seed.yml"),
            tenants_file,
        }),
        log_format: Default::default(),
    };
    service::start_with(&config, StartOptions { demo: true }).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_the_document_does_not_say() {
    if !have_schemathesis() {
        return;
    }
    let (dir, pki) = crate::api::prepare();
    let kms = start_demo_kms(dir.path(), &pki).await;
    let origin = format!("https://127.0.0.1:{}", kms.server.addr.port());
    let ca = pki.ca_bundle();
    let config = repo_file("tests/it/schemathesis.toml");
    let work = dir.path().to_owned();
    let args: Vec<String> = vec![
        "-c".into(),
        CLI.into(),
        "--no-color".into(),
        "--config-file".into(),
        config.display().to_string(),
        "run".into(),
        format!("{origin}/api/v1/openapi.json"),
        "--url".into(),
        origin.clone(),
        "--tls-verify".into(),
        ca.display().to_string(),
        "--auth".into(),
        "acme-admin:acme-admin-demo".into(),
        "--checks".into(),
        "all".into(),
        "--seed".into(),
        SEED.into(),
        "--max-examples".into(),
        MAX_EXAMPLES.into(),
        "--workers".into(),
        "1".into(),
        "--generation-database".into(),
        "none".into(),
        "--request-timeout".into(),
        "20".into(),
    ];
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3").args(&args).current_dir(&work).env("NO_COLOR", "1").output()
    })
    .await
    .unwrap()
    .unwrap();
    let report =
        format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    kms.shutdown().await.unwrap();
    assert!(output.status.success(), "schemathesis found problems (seed {SEED}):\n{report}");
    // The warnings and the summary, for the log of a green run.
    let summary: Vec<&str> =
        report.lines().skip_while(|l| !l.contains("WARNINGS") && !l.contains("SUMMARY")).collect();
    eprintln!("{}", summary.join("\n"));
    // A run that tested nothing would also exit 0.
    assert!(report.contains("16 selected") || report.contains("16 total"), "{report}");
}
