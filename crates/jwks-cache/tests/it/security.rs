//! Where keys may come from and how much of them: schemes, domains, pins, roots, sizes.

use std::time::Duration;

use jwks_cache::{ConfigError, FetchError, Provider, SpkiPin, TrustRoots};
use serde_json::json;

use crate::support::{Fixture, HOST, Mode};

#[tokio::test]
async fn http_urls_are_refused() {
    let fx = Fixture::start().await;
    let mut config = fx.config();
    config.jwks_url = format!("http://{HOST}:{}/jwks", fx.addr().port());
    let err = Provider::new(config).unwrap_err();
    assert!(matches!(err, ConfigError::InsecureUrl { .. }), "{err}");
    assert!(err.to_string().contains("only https://"), "{err}");
    assert_eq!(fx.issuer.requests(), 0);
}

#[tokio::test]
async fn hosts_outside_the_allowed_domains_are_refused() {
    let fx = Fixture::start().await;
    // `localhost` is a SAN of the fixture's certificate, but not an allowed domain.
    let mut config = fx.config();
    config.jwks_url = format!("https://localhost:{}/jwks", fx.addr().port());
    config.allowed_domains = vec![HOST.to_owned()];
    let err = Provider::new(config).unwrap_err();
    assert!(matches!(err, ConfigError::DomainNotAllowed { ref host, .. } if host == "localhost"), "{err}");

    // A redirect to a host that is not allowed is refused at fetch time, and not retried.
    let provider = fx.provider();
    fx.issuer.set_mode(Mode::Redirect(format!("https://localhost:{}/jwks", fx.addr().port())));
    let err = provider.refresh().await.unwrap_err();
    assert!(matches!(err, FetchError::RedirectRefused { .. }), "{err}");
    assert!(err.to_string().contains("localhost is not an allowed domain"), "{err}");
    assert_eq!(fx.issuer.requests(), 1);
    // And so is a redirect to http://.
    fx.issuer.set_mode(Mode::Redirect(format!("http://{HOST}:{}/jwks", fx.addr().port())));
    let err = provider.refresh().await.unwrap_err();
    assert!(matches!(err, FetchError::RedirectRefused { .. }), "{err}");
}

#[tokio::test]
async fn a_matching_spki_pin_is_accepted_and_a_mismatch_refused() {
    let fx = Fixture::start().await;
    let mut pinned = fx.config();
    pinned.spki_pins = vec![SpkiPin::of_spki(b"some other key"), fx.server_pin()];
    pinned.tls13_only = true;
    Provider::new(pinned).unwrap().refresh().await.unwrap();
    assert_eq!(fx.issuer.requests(), 1);

    let mut wrong = fx.config();
    wrong.spki_pins = vec![SpkiPin::of_spki(b"some other key")];
    let provider = Provider::new(wrong).unwrap();
    let err = provider.refresh().await.unwrap_err();
    assert!(matches!(err, FetchError::PinMismatch { .. }), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(fx.issuer.requests(), 1, "the handshake failed: no request reached the issuer");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let fx = Fixture::start().await;
    let other = test_support::TestDir::with_demo_pki();
    let mut config = fx.config();
    config.trust = TrustRoots::from_pem_file(&other.pki().ca_bundle()).unwrap();
    let err = Provider::new(config).unwrap().refresh().await.unwrap_err();
    assert!(matches!(err, FetchError::Tls { .. }), "{err}");
    assert_eq!(fx.issuer.requests(), 0);
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_or_without_a_content_length() {
    let fx = Fixture::start().await;
    let mut config = fx.config();
    config.max_response_bytes = 4096;
    let provider = Provider::new(config).unwrap();
    for chunked in [false, true] {
        fx.issuer.set_mode(Mode::Oversized { bytes: 1024 * 1024, chunked });
        let err =
            tokio::time::timeout(Duration::from_secs(3), provider.refresh()).await.unwrap().unwrap_err();
        assert!(matches!(err, FetchError::TooLarge { limit: 4096, .. }), "chunked={chunked}: {err}");
    }
    assert_eq!(fx.issuer.requests(), 2, "not retried");
    assert_eq!(provider.status().key_count, 0);
}

#[tokio::test]
async fn too_many_keys_are_refused_and_unusable_keys_skipped() {
    let fx = Fixture::start().await;
    let mut config = fx.config();
    config.max_keys = 3;
    let provider = Provider::new(config).unwrap();
    let five: Vec<_> = (0..5).map(|i| crate::support::TestKey::new(&format!("k{i}")).jwk()).collect();
    fx.issuer.set_raw_keys(five);
    let err = provider.refresh().await.unwrap_err();
    assert!(matches!(err, FetchError::TooManyKeys { count: 5, limit: 3, .. }), "{err}");

    // Within the limit, keys that cannot verify here are skipped, not fatal.
    fx.issuer.set_raw_keys(vec![
        fx.key.jwk(),
        json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
        json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}),
    ]);
    let keys = provider.refresh().await.unwrap();
    assert_eq!(keys.kids().collect::<Vec<_>>(), [fx.key.kid.as_str()]);
    assert_eq!(provider.status().skipped_keys, 2);
}
