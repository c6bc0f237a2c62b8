//! The cache against the fixture issuer: request counts, freshness, staleness, errors.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use jwks_cache::{
    Algorithm, CacheState, FetchError, LookupError, Provider, ValidationErrorKind, Validator, ValidatorConfig,
};

use crate::support::{AUD, Fixture, Mode, TestKey, eventually, metrics_of};

fn validator(provider: &Provider) -> Validator {
    Validator::new(
        provider.clone(),
        ValidatorConfig::new([AUD], &[Algorithm::ES256]).with_required_typ("at+jwt"),
    )
    .unwrap()
}

#[tokio::test]
async fn cold_start_fetches_once_then_answers_from_the_cache() {
    let fx = Fixture::start().await;
    let provider = fx.provider();
    assert_eq!(provider.status().state, CacheState::Empty);
    assert!(provider.cached_key(&fx.key.kid).is_none());
    for _ in 0..50 {
        let key = provider.key(&fx.key.kid).await.unwrap();
        assert_eq!(key.kid(), fx.key.kid);
    }
    assert_eq!(fx.issuer.requests(), 1);
    let status = provider.status();
    assert_eq!(status.state, CacheState::Fresh);
    assert_eq!(status.kids, std::slice::from_ref(&fx.key.kid));
    assert_eq!((status.counts.misses, status.counts.hits, status.counts.refreshes), (1, 49, 1));
    assert!(status.last_refresh.is_some() && status.last_error.is_none());
    assert!(provider.cached_key(&fx.key.kid).is_some());
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["state"], "fresh");
    assert!(json["last_refresh"].is_f64(), "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_misses_make_one_request() {
    let fx = Fixture::start().await;
    fx.issuer.set_delay(Duration::from_millis(200));
    let provider = fx.provider();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (provider, kid) = (provider.clone(), fx.key.kid.clone());
        tasks.spawn(async move { provider.key(&kid).await.map(|k| k.kid().to_owned()) });
    }
    let mut ok = 0;
    while let Some(done) = tasks.join_next().await {
        assert_eq!(done.unwrap().unwrap(), fx.key.kid);
        ok += 1;
    }
    assert_eq!(ok, 1000);
    assert_eq!(fx.issuer.requests(), 1, "one request for a thousand concurrent misses");
    assert_eq!(provider.status().counts.refreshes, 1);
}

#[tokio::test]
async fn cache_control_sets_the_ttl_within_the_configured_bounds() {
    let fx = Fixture::start().await;
    fx.issuer.set_cache_control("public, max-age=600");
    let provider = fx.provider();
    provider.key(&fx.key.kid).await.unwrap();
    fx.clock.advance(Duration::from_secs(500));
    provider.key(&fx.key.kid).await.unwrap();
    assert_eq!(fx.issuer.requests(), 1, "fresh for max-age=600");
    fx.clock.advance(Duration::from_secs(101));
    provider.key(&fx.key.kid).await.unwrap();
    assert_eq!(fx.issuer.requests(), 2, "expired after 600 s");
    assert_eq!(fx.issuer.not_modified.load(Ordering::SeqCst), 1, "revalidated with If-None-Match");

    // Shorter than min_ttl (60 s): clamped up.
    fx.issuer.set_cache_control("max-age=5");
    provider.refresh().await.unwrap();
    fx.clock.advance(Duration::from_secs(45));
    provider.key(&fx.key.kid).await.unwrap();
    assert_eq!(fx.issuer.requests(), 3, "max-age=5 is held for min_ttl");
    // no-store: min_ttl as well.
    fx.issuer.set_cache_control("no-store");
    provider.refresh().await.unwrap();
    fx.clock.advance(Duration::from_secs(45));
    provider.key(&fx.key.kid).await.unwrap();
    assert_eq!(fx.issuer.requests(), 4);
    fx.clock.advance(Duration::from_secs(20));
    provider.key(&fx.key.kid).await.unwrap();
    assert_eq!(fx.issuer.requests(), 5, "expired after min_ttl");

    // Longer than max_ttl (1 h): clamped down.
    fx.issuer.set_cache_control("max-age=604800");
    provider.refresh().await.unwrap();
    let status = provider.status();
    let ttl = status.fresh_until.unwrap().duration_since(status.last_refresh.unwrap()).unwrap();
    assert!(ttl <= Duration::from_secs(3600), "{ttl:?}");
    fx.clock.advance(Duration::from_secs(3601));
    provider.key(&fx.key.kid).await.unwrap();
    assert_eq!(fx.issuer.requests(), 7);
}

#[tokio::test]
async fn revalidation_sends_the_etag_and_a_304_keeps_the_keys() {
    let fx = Fixture::start().await;
    let provider = fx.provider();
    let first = provider.refresh().await.unwrap();
    fx.clock.advance(Duration::from_secs(200));
    let before = provider.status().fresh_until.unwrap();
    let second = provider.refresh().await.unwrap();
    assert_eq!(fx.issuer.requests(), 2);
    assert_eq!(fx.issuer.conditional.load(Ordering::SeqCst), 1);
    assert_eq!(fx.issuer.not_modified.load(Ordering::SeqCst), 1);
    assert!(Arc::ptr_eq(&first, &second), "a 304 keeps the parsed set");
    assert!(provider.status().fresh_until.unwrap() > before, "a 304 renews the TTL");
    // A changed set is a 200 with the new keys.
    let k2 = TestKey::new("key-2");
    fx.issuer.set_keys(&[&fx.key, &k2]);
    let third = provider.refresh().await.unwrap();
    assert_eq!(third.len(), 2);
    assert_eq!(fx.issuer.not_modified.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn revalidation_uses_last_modified_when_there_is_no_etag() {
    let fx = Fixture::start().await;
    fx.issuer.last_modified_only.store(true, Ordering::SeqCst);
    let provider = fx.provider();
    let first = provider.refresh().await.unwrap();
    let second = provider.refresh().await.unwrap();
    assert_eq!(fx.issuer.conditional.load(Ordering::SeqCst), 1, "If-Modified-Since was sent");
    assert_eq!(fx.issuer.not_modified.load(Ordering::SeqCst), 1);
    assert!(Arc::ptr_eq(&first, &second));
}

#[tokio::test]
async fn a_registry_refreshes_and_reports_every_issuer() {
    let fx = Fixture::start().await;
    let registry = jwks_cache::Registry::new();
    let a = registry.add(fx.config()).unwrap();
    let b = registry.add(fx.config()).unwrap();
    assert_eq!(registry.statuses().iter().filter(|s| s.state == CacheState::Empty).count(), 2);
    let results = registry.refresh_all().await;
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
    let statuses = registry.statuses();
    assert!(statuses.iter().all(|s| s.state == CacheState::Fresh && s.key_count == 1), "{statuses:?}");
    assert_eq!(registry.get(a.issuer()).unwrap().issuer(), a.issuer());
    // Each provider keeps its own cache: two issuers, two requests.
    assert_eq!(fx.issuer.requests(), 2);
    fx.issuer.set_mode(Mode::Status(500));
    let results = registry.refresh_all().await;
    assert!(results.iter().all(|(_, r)| r.is_err()));
    let failed = registry.get(b.issuer()).unwrap().status();
    assert!(failed.last_error.is_some() && failed.state == CacheState::Fresh, "{failed:?}");
}

#[tokio::test]
async fn transient_errors_are_retried_with_backoff_and_client_errors_are_not() {
    let fx = Fixture::start().await;
    fx.issuer.fail_next.store(2, Ordering::SeqCst);
    let provider = fx.provider();
    provider.key(&fx.key.kid).await.unwrap();
    assert_eq!(fx.issuer.requests(), 3, "two 500s, then success");
    assert_eq!(provider.status().counts.http_requests, 3);

    fx.issuer.set_mode(Mode::Status(404));
    let err = provider.refresh().await.unwrap_err();
    assert!(matches!(err, FetchError::Status { status: 404, .. }), "{err}");
    assert_eq!(fx.issuer.requests(), 4, "404 is not retried");
    assert!(err.to_string().contains("HTTP 404"), "{err}");
}

#[tokio::test]
async fn an_issuer_outage_is_survived_for_the_stale_window_and_not_after() {
    let fx = Fixture::start().await;
    let provider = fx.provider();
    let validator = validator(&provider);
    let token = |fx: &Fixture| fx.key.token(&fx.claims(provider.issuer()));
    validator.validate(&token(&fx)).await.unwrap();

    fx.issuer.set_mode(Mode::Status(503));
    fx.clock.advance(Duration::from_secs(301)); // past max-age=300
    let claims = validator.validate(&token(&fx)).await.unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(fx.issuer.requests(), 4, "one refresh of three attempts");
    let status = provider.status();
    assert_eq!(status.state, CacheState::Stale);
    assert_eq!(status.counts.stale, 1);
    assert_eq!(status.counts.errors, 1);
    assert!(status.last_error.as_deref().unwrap().contains("503"), "{status:?}");

    // During the cooldown, lookups are served stale without a request.
    for _ in 0..100 {
        validator.validate(&token(&fx)).await.unwrap();
    }
    assert_eq!(fx.issuer.requests(), 4, "no request per token during an outage");
    // After the cooldown, one more refresh; still stale-served.
    fx.clock.advance(Duration::from_secs(11));
    validator.validate(&token(&fx)).await.unwrap();
    assert_eq!(fx.issuer.requests(), 7);

    // Past the stale window (600 s after expiry): no more tokens.
    fx.clock.advance(Duration::from_secs(600));
    let err = validator.validate(&token(&fx)).await.unwrap_err();
    assert_eq!(err.kind(), ValidationErrorKind::KeysUnavailable, "{err}");
    assert!(err.is_unavailable());
    assert_eq!(provider.status().state, CacheState::Expired);

    // The issuer comes back: validation resumes.
    fx.issuer.set_mode(Mode::Ok);
    fx.clock.advance(Duration::from_secs(11));
    validator.validate(&token(&fx)).await.unwrap();
    assert_eq!(provider.status().state, CacheState::Fresh);
}

#[tokio::test]
async fn a_cold_cache_with_a_failing_issuer_does_not_retry_on_every_lookup() {
    let fx = Fixture::start().await;
    fx.issuer.set_mode(Mode::Status(500));
    let provider = fx.provider();
    let err = provider.key(&fx.key.kid).await.unwrap_err();
    assert!(
        matches!(err, LookupError::Unavailable { source: FetchError::Status { status: 500, .. }, .. }),
        "{err}"
    );
    assert_eq!(fx.issuer.requests(), 3);
    for _ in 0..20 {
        assert!(matches!(provider.key(&fx.key.kid).await, Err(LookupError::Unavailable { .. })));
    }
    assert_eq!(fx.issuer.requests(), 3, "cooldown: the last error is returned without a request");
}

#[tokio::test]
async fn a_failed_manual_refresh_leaves_nothing_stuck() {
    let fx = Fixture::start().await;
    let provider = fx.provider();
    fx.issuer.set_mode(Mode::Status(500));
    let bounded = Duration::from_secs(2);
    let err = tokio::time::timeout(bounded, provider.refresh()).await.unwrap().unwrap_err();
    assert!(matches!(err, FetchError::Status { status: 500, .. }));
    assert!(!provider.status().refreshing, "no refresh left running");

    // A caller that gives up mid-refresh does not wedge the next one either.
    fx.issuer.set_mode(Mode::Ok);
    fx.issuer.set_delay(Duration::from_millis(300));
    assert!(tokio::time::timeout(Duration::from_millis(50), provider.refresh()).await.is_err());
    fx.issuer.set_delay(Duration::ZERO);
    let keys = tokio::time::timeout(bounded, provider.refresh()).await.unwrap().unwrap();
    assert_eq!(keys.len(), 1);
    // Manual refreshes ignore the failure cooldown.
    fx.issuer.set_mode(Mode::Status(500));
    assert!(tokio::time::timeout(bounded, provider.refresh()).await.unwrap().is_err());
    fx.issuer.set_mode(Mode::Ok);
    tokio::time::timeout(bounded, provider.refresh()).await.unwrap().unwrap();
    assert!(provider.status().last_error.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_kids_neither_starve_valid_tokens_nor_hammer_the_issuer() {
    let fx = Fixture::start().await;
    let provider = fx.provider();
    let validator = validator(&provider);
    let good = fx.key.token(&fx.claims(provider.issuer()));
    validator.validate(&good).await.unwrap();
    assert_eq!(fx.issuer.requests(), 1);

    // The issuer is slow now: a refetch takes 1.5 s.
    fx.issuer.set_delay(Duration::from_millis(1500));
    let forger = TestKey::new("unused");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..500 {
        let token = forger.token_with_kid(&format!("forged-{i}"), &fx.claims(provider.issuer()));
        let v = validator.clone();
        tasks.spawn(async move { (false, v.validate(&token).await.map(|_| ()).map_err(|e| e.kind()), 0) });
    }
    for _ in 0..500 {
        let (v, token, issuer) = (validator.clone(), good.clone(), fx.issuer.clone());
        tasks.spawn(async move {
            let result = v.validate(&token).await.map(|_| ()).map_err(|e| e.kind());
            // How many slow answers the issuer had given when this valid token was through.
            (true, result, issuer.slow_answered())
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (valid, result, slow_answers_seen) = done.unwrap();
        if valid {
            assert_eq!(result, Ok(()));
            assert_eq!(slow_answers_seen, 0, "a valid token waited for the forged kids' refetch");
        } else {
            assert_eq!(result, Err(ValidationErrorKind::UnknownKid));
        }
    }
    assert_eq!(fx.issuer.requests(), 2, "500 forged kids cost one refetch");
    let counts = provider.status().counts;
    assert_eq!(counts.unknown_kid_refetches, 1);
    assert_eq!(counts.unknown_kid_limited, 499);

    // Next interval: one more refetch at most, however many forgeries.
    fx.issuer.set_delay(Duration::ZERO);
    fx.clock.advance(Duration::from_secs(31));
    for i in 0..200 {
        let forged = forger.token_with_kid(&format!("again-{i}"), &fx.claims(provider.issuer()));
        let err = validator.validate(&forged).await.unwrap_err();
        assert_eq!(err.kind(), ValidationErrorKind::UnknownKid);
    }
    assert_eq!(fx.issuer.requests(), 3);
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_by_one_unknown_kid_refetch() {
    let fx = Fixture::start().await;
    let provider = fx.provider();
    let validator = validator(&provider);
    validator.validate(&fx.key.token(&fx.claims(provider.issuer()))).await.unwrap();
    let next = TestKey::new("key-2");
    fx.issuer.set_keys(&[&fx.key, &next]);
    validator.validate(&next.token(&fx.claims(provider.issuer()))).await.unwrap();
    assert_eq!(fx.issuer.requests(), 2);
    // Both keys validate from the cache now.
    validator.validate(&fx.key.token(&fx.claims(provider.issuer()))).await.unwrap();
    validator.validate(&next.token(&fx.claims(provider.issuer()))).await.unwrap();
    assert_eq!(fx.issuer.requests(), 2);
}

#[tokio::test]
async fn a_key_removed_from_the_set_stops_validating_after_refresh() {
    let fx = Fixture::start().await;
    let old = TestKey::new("old");
    fx.issuer.set_keys(&[&fx.key, &old]);
    let provider = fx.provider();
    let validator = validator(&provider);
    let old_token = old.token(&fx.claims(provider.issuer()));
    validator.validate(&old_token).await.unwrap();

    fx.issuer.set_keys(&[&fx.key]);
    validator.validate(&old_token).await.unwrap(); // still cached until a refresh
    let keys = provider.refresh().await.unwrap();
    assert!(keys.get("old").is_none());
    let err = validator.validate(&old_token).await.unwrap_err();
    assert_eq!(err.kind(), ValidationErrorKind::UnknownKid, "{err}");
    validator.validate(&fx.key.token(&fx.claims(provider.issuer()))).await.unwrap();
}

#[tokio::test]
async fn a_lookup_in_the_refresh_ahead_window_refreshes_in_the_background() {
    let fx = Fixture::start().await;
    let provider = fx.provider();
    provider.key(&fx.key.kid).await.unwrap();
    fx.clock.advance(Duration::from_secs(280)); // max-age=300, refresh 30 s ahead
    fx.issuer.set_delay(Duration::from_millis(500));
    provider.key(&fx.key.kid).await.unwrap();
    assert_eq!(fx.issuer.slow_answered(), 0, "the lookup did not wait for the refresh");
    eventually("the background refresh", || provider.status().counts.refreshes == 2).await;
    assert_eq!(fx.issuer.requests(), 2);
    assert_eq!(provider.status().counts.misses, 1, "the refresh ahead was not a miss");
}

#[tokio::test]
async fn the_background_refresher_keeps_the_set_fresh_and_stops_on_drop() {
    let fx = Fixture::start().await;
    let mut config = fx.config();
    config.background_check_interval = Duration::from_millis(20);
    let provider = Provider::new(config).unwrap();
    let refresher = provider.spawn_background_refresh();
    eventually("the first fetch", || provider.status().counts.refreshes == 1).await;
    fx.clock.advance(Duration::from_secs(275));
    eventually("the refresh ahead of expiry", || fx.issuer.requests() == 2).await;
    refresher.stop();
    fx.clock.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fx.issuer.requests(), 2, "a stopped refresher sends nothing");
}

#[tokio::test]
async fn a_snapshot_lets_a_restart_validate_during_an_outage() {
    let fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = fx.config();
    config.snapshot_path = Some(dir.path().join("jwks.json"));
    let first = Provider::new(config.clone()).unwrap();
    let token = fx.key.token(&fx.claims(first.issuer()));
    validator(&first).validate(&token).await.unwrap();
    eventually("the snapshot", || dir.path().join("jwks.json").exists()).await;
    drop(first);

    // Restart during an outage, after the TTL but within the stale window.
    fx.issuer.set_mode(Mode::Status(503));
    fx.clock.advance(Duration::from_secs(400));
    let restarted = Provider::new(config.clone()).unwrap();
    assert!(restarted.status().from_snapshot);
    assert_eq!(restarted.status().state, CacheState::Stale);
    let token = fx.key.token(&fx.claims(restarted.issuer()));
    validator(&restarted).validate(&token).await.unwrap();
    assert_eq!(restarted.status().counts.stale, 1);

    // Past the window the snapshot is no help.
    fx.clock.advance(Duration::from_secs(600));
    let late = Provider::new(config.clone()).unwrap();
    let err = validator(&late).validate(&fx.key.token(&fx.claims(late.issuer()))).await.unwrap_err();
    assert_eq!(err.kind(), ValidationErrorKind::KeysUnavailable);

    // A damaged snapshot is ignored, not fatal.
    std::fs::write(dir.path().join("jwks.json"), b"{ damaged").unwrap();
    let damaged = Provider::new(config).unwrap();
    assert_eq!(damaged.status().state, CacheState::Empty);
}

#[tokio::test]
async fn a_snapshot_never_stands_in_for_asking_the_issuer() {
    let fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = fx.config();
    config.snapshot_path = Some(dir.path().join("jwks.json"));
    let first = Provider::new(config.clone()).unwrap();
    first.refresh().await.unwrap();
    eventually("the snapshot", || dir.path().join("jwks.json").exists()).await;
    drop(first);
    let requests = fx.issuer.requests();

    // Restarted within the TTL with the issuer up: the snapshot is loaded as expired, so the
    // first lookup asks the issuer instead of trusting the file's freshness.
    let restarted = Provider::new(config.clone()).unwrap();
    assert!(restarted.status().from_snapshot);
    assert_ne!(restarted.status().state, CacheState::Fresh);
    restarted.key(&fx.key.kid).await.unwrap();
    assert_eq!(fx.issuer.requests(), requests + 1, "the issuer was asked");

    // A snapshot that claims to come from the future (a clock that ran ahead, an edited file)
    // is refused outright.
    // (A copy: the provider above may still be rewriting its own snapshot in the background.)
    let path = dir.path().join("future.json");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("jwks.json")).unwrap()).unwrap();
    let ten_years = 10 * 365 * 86_400_000_u64;
    for field in ["fetched_at_ms", "fresh_until_ms"] {
        doc[field] = (doc[field].as_u64().unwrap() + ten_years).into();
    }
    std::fs::write(&path, doc.to_string()).unwrap();
    config.snapshot_path = Some(path);
    let future = Provider::new(config).unwrap();
    assert_eq!(future.status().state, CacheState::Empty, "not loaded");
}

#[tokio::test]
async fn invalid_json_is_an_error_and_the_last_good_set_stays() {
    let fx = Fixture::start().await;
    let provider = fx.provider();
    provider.refresh().await.unwrap();
    fx.issuer.set_mode(Mode::InvalidJson);
    let err = provider.refresh().await.unwrap_err();
    assert!(matches!(err, FetchError::InvalidJwks { .. }), "{err}");
    assert_eq!(fx.issuer.requests(), 2, "a malformed set is not retried");
    assert!(provider.key(&fx.key.kid).await.is_ok(), "the last good set is still used");
    assert!(provider.status().last_error.unwrap().contains("not a JWK set"));
}

#[tokio::test]
async fn a_slow_issuer_times_out_within_the_request_timeout() {
    let fx = Fixture::start().await;
    fx.issuer.set_delay(Duration::from_secs(3));
    let mut config = fx.config();
    config.request_timeout = Duration::from_millis(300);
    config.retry.attempts = 1;
    let provider = Provider::new(config).unwrap();
    let err = provider.refresh().await.unwrap_err();
    assert!(matches!(err, FetchError::Timeout { .. }), "{err}");
    assert_eq!(fx.issuer.slow_answered(), 0, "gave up before the slow answer came");
}

#[tokio::test]
async fn metrics_are_labelled_by_provider() {
    let fx = Fixture::start().await;
    let provider = fx.provider();
    provider.key(&fx.key.kid).await.unwrap();
    provider.key(&fx.key.kid).await.unwrap();
    provider.key(&fx.key.kid).await.unwrap();
    assert!(provider.key("nope").await.is_err()); // one unknown-kid refetch
    assert!(provider.key("nope-2").await.is_err()); // rate-limited
    fx.issuer.set_mode(Mode::Status(500));
    fx.clock.advance(Duration::from_secs(301));
    provider.key(&fx.key.kid).await.unwrap(); // stale
    let m = metrics_of(provider.issuer());
    let get = |name: &str| m.get(name).copied().unwrap_or_else(|| panic!("no {name} in {m:?}"));
    assert_eq!(get(jwks_cache::metrics::HITS), 2.0);
    assert_eq!(get(jwks_cache::metrics::MISSES), 3.0);
    assert_eq!(get(jwks_cache::metrics::STALE), 1.0);
    assert_eq!(get(jwks_cache::metrics::REFRESHES), 2.0);
    assert_eq!(get(jwks_cache::metrics::ERRORS), 1.0);
    assert_eq!(get(jwks_cache::metrics::REQUESTS), 5.0);
    assert_eq!(get(jwks_cache::metrics::UNKNOWN_KID_LIMITED), 1.0);
    assert_eq!(get(jwks_cache::metrics::KEYS), 1.0);
    assert!(get(jwks_cache::metrics::LAST_REFRESH) > 1.0e9);
}
