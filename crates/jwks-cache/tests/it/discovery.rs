//! The discovery document's cache against the fixture issuer: kept while fresh, revalidated
//! with its ETag, served stale while the issuer fails (and no longer after the stale window),
//! kept on disk across a restart, and never replaced by a document naming another issuer.

use std::sync::atomic::Ordering;
use std::time::Duration;

use jwks_cache::{Discovery, DiscoveryError};
use serde_json::json;

use crate::support::{Fixture, eventually};

fn serve_honest(fx: &Fixture, issuer: &str) {
    *fx.issuer.discovery.lock().unwrap() = Some(json!({ "issuer": issuer, "jwks_uri": fx.url() }));
}

fn requests(fx: &Fixture) -> usize {
    fx.issuer.discovery_requests.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_document_is_kept_while_fresh_and_revalidated_once_it_expires() {
    let fx = Fixture::start().await;
    let config = fx.config();
    serve_honest(&fx, &config.issuer);
    let discovery = Discovery::new(config.clone(), &fx.discovery_url()).unwrap();
    for _ in 0..5 {
        assert_eq!(&*discovery.jwks_uri().await.unwrap(), fx.url());
    }
    assert_eq!(requests(&fx), 1, "max-age=300: fetched once");

    fx.clock.advance(Duration::from_secs(301));
    assert_eq!(&*discovery.jwks_uri().await.unwrap(), fx.url());
    assert_eq!(requests(&fx), 2);
    assert_eq!(fx.issuer.discovery_not_modified.load(Ordering::SeqCst), 1, "revalidated with its ETag: 304");
    assert_eq!(&*discovery.jwks_uri().await.unwrap(), fx.url());
    assert_eq!(requests(&fx), 2, "fresh again after the 304");

    // The document moves the keys: the next fetch after expiry says so.
    let moved = format!("{}?v=2", fx.url());
    *fx.issuer.discovery.lock().unwrap() = Some(json!({ "issuer": config.issuer, "jwks_uri": moved }));
    fx.clock.advance(Duration::from_secs(301));
    assert_eq!(&*discovery.jwks_uri().await.unwrap(), moved);
}

#[tokio::test]
async fn the_last_good_document_serves_while_the_issuer_fails_until_the_stale_window_ends() {
    let fx = Fixture::start().await;
    let config = fx.config();
    serve_honest(&fx, &config.issuer);
    let discovery = Discovery::new(config.clone(), &fx.discovery_url()).unwrap();
    discovery.jwks_uri().await.unwrap();

    *fx.issuer.discovery.lock().unwrap() = None;
    fx.clock.advance(Duration::from_secs(301));
    assert_eq!(&*discovery.jwks_uri().await.unwrap(), fx.url(), "stale while the issuer fails");
    let after_failure = requests(&fx);
    for _ in 0..10 {
        assert_eq!(&*discovery.jwks_uri().await.unwrap(), fx.url());
    }
    assert_eq!(requests(&fx), after_failure, "no request during the failure cooldown");

    // Past max-age (300 s) + the stale window (600 s): the failure is the answer.
    fx.clock.advance(Duration::from_secs(700));
    match discovery.jwks_uri().await.unwrap_err() {
        DiscoveryError::Status { status: 404, .. } => {}
        other => panic!("expected the issuer's 404 once the stale window ended: {other}"),
    }
}

#[tokio::test]
async fn a_refetched_document_naming_another_issuer_is_refused_and_the_kept_one_serves() {
    let fx = Fixture::start().await;
    let config = fx.config();
    serve_honest(&fx, &config.issuer);
    let discovery = Discovery::new(config.clone(), &fx.discovery_url()).unwrap();
    discovery.jwks_uri().await.unwrap();

    let evil = "https://identity.demo.local:1/evil-jwks";
    *fx.issuer.discovery.lock().unwrap() = Some(json!({ "issuer": "https://evil.test", "jwks_uri": evil }));
    fx.clock.advance(Duration::from_secs(301));
    assert_eq!(&*discovery.jwks_uri().await.unwrap(), fx.url(), "the mix-up document is never adopted");
    // A fresh cache has nothing to fall back on: the mix-up is the error.
    let cold = Discovery::new(config, &fx.discovery_url()).unwrap();
    match cold.jwks_uri().await.unwrap_err() {
        DiscoveryError::IssuerMismatch { found, .. } => assert_eq!(found, "https://evil.test"),
        other => panic!("expected the mix-up refusal: {other}"),
    }
}

#[tokio::test]
async fn a_snapshot_lets_a_restart_find_the_keys_while_the_issuer_is_down() {
    let fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = fx.config();
    config.snapshot_path = Some(dir.path().join("discovery.json"));
    serve_honest(&fx, &config.issuer);
    Discovery::new(config.clone(), &fx.discovery_url()).unwrap().jwks_uri().await.unwrap();
    let path = dir.path().join("discovery.json");
    eventually("the snapshot is written", || path.is_file()).await;

    *fx.issuer.discovery.lock().unwrap() = None;
    let restarted = Discovery::new(config.clone(), &fx.discovery_url()).unwrap();
    assert_eq!(&*restarted.jwks_uri().await.unwrap(), fx.url(), "from the snapshot while the issuer is down");

    // Another issuer's cache does not read it (and says nothing it should not).
    let mut other = config.clone();
    other.issuer = fx.unique_issuer();
    let foreign = Discovery::new(other, &fx.discovery_url()).unwrap();
    assert!(matches!(foreign.jwks_uri().await.unwrap_err(), DiscoveryError::Status { status: 404, .. }));

    // The stale window counts from the snapshot's original expiry: a restart does not stretch it.
    fx.clock.advance(Duration::from_secs(301 + 601));
    let late = Discovery::new(config, &fx.discovery_url()).unwrap();
    assert!(late.jwks_uri().await.is_err(), "past the stale window, a snapshot serves no more");
}

#[tokio::test]
async fn with_nothing_kept_a_failure_is_shared_for_a_second_not_asked_again() {
    let fx = Fixture::start().await;
    let config = fx.config();
    let discovery = Discovery::new(config.clone(), &fx.discovery_url()).unwrap();
    assert!(matches!(discovery.jwks_uri().await.unwrap_err(), DiscoveryError::Status { status: 404, .. }));
    for _ in 0..10 {
        match discovery.jwks_uri().await.unwrap_err() {
            DiscoveryError::Fetch { reason, .. } => assert!(reason.contains("failed just now"), "{reason}"),
            other => panic!("the shared failure: {other}"),
        }
    }
    assert_eq!(requests(&fx), 1, "callers within the second share the one failure");
    serve_honest(&fx, &config.issuer);
    fx.clock.advance(Duration::from_secs(2));
    assert_eq!(&*discovery.jwks_uri().await.unwrap(), fx.url());
    assert_eq!(requests(&fx), 2);
}
