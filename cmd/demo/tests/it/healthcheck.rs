//! `demo healthcheck`: the container probe, against a real server on loopback.

use std::time::Duration;

use service_kit::Readiness;
use service_kit::server::HttpConfig;

async fn server(dir: &std::path::Path) -> (pki::PkiDir, service_kit::RunningServer, service_kit::Dependency) {
    let pki = pki::ensure(&dir.join("pki"), &pki::PkiSpec::demo(), &Default::default()).unwrap();
    let config = HttpConfig::loopback(&pki.dir, "kms");
    let readiness = Readiness::new();
    let db = readiness.dependency("database");
    let running = service_kit::server::start(&config, axum::Router::new(), readiness).await.unwrap();
    (pki.dir, running, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_follow_docker_and_the_reason_is_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, running, db) = server(tmp.path()).await;
    let url = format!("https://127.0.0.1:{}/readyz", running.admin_addr.port());
    let ca = dir.ca_bundle();
    let probe = |url: String, ca: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            crate::demo()
                .args(["healthcheck", &url, "--ca"])
                .arg(ca)
                .arg("--timeout")
                .arg("2s")
                .output()
                .unwrap()
        })
    };

    let out = probe(url.clone(), ca.clone()).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "not ready yet");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("503") && stderr.contains("database"), "{stderr}");

    db.ready();
    let out = probe(url.clone(), ca.clone()).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "quiet when healthy");

    // Another CA: the TLS handshake fails, which is unhealthy (1), with the reason.
    let other = tempfile::tempdir().unwrap();
    let other_pki =
        pki::ensure(&other.path().join("pki"), &pki::PkiSpec::demo(), &Default::default()).unwrap();
    let out = probe(url.clone(), other_pki.dir.ca_bundle()).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("UnknownIssuer"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Usage mistakes are 2.
    let out = probe(url.replace("https://", "http://"), ca.clone()).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = probe(url.clone(), tmp.path().join("missing.pem")).await.unwrap();
    assert_eq!(out.status.code(), Some(2));

    running.shutdown().await.unwrap();
    // Nobody listening: unhealthy, promptly.
    let started = std::time::Instant::now();
    let out = probe(url, ca).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(10));
}
