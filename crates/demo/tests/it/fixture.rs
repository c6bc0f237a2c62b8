//! The fixture issuer as another project's integration test would use it: started from a
//! directory, its tokens verified by the trust store from the entry it writes, its discovery
//! document naming itself, and the same key and CA on the next start.

use demo::fixture::FixtureIssuer;

const TENANT: &str = "7d1e2a90-4b3c-4f5e-8a6b-1c2d3e4f5a6b";
const AUDIENCE: &str = "https://kms.demo.local:8081";

#[tokio::test]
async fn its_tokens_verify_through_a_trust_store_of_its_own_entry() {
    let dir = tempfile::tempdir().unwrap();
    let partner = FixtureIssuer::start(dir.path()).await.unwrap();
    assert!(partner.issuer().starts_with("https://partner.demo.local:"), "{}", partner.issuer());
    let trust = dir.path().join("trust.yml");
    std::fs::write(&trust, format!("issuers:\n{}", partner.trust_entry(&[AUDIENCE], &[TENANT]))).unwrap();
    let store = trust_store::TrustStore::load(&trust).unwrap();

    let token = partner
        .token(serde_json::json!({"sub": "partner-user", "aud": AUDIENCE, "tenant_id": TENANT, "scope": "kms:encrypt"}))
        .unwrap();
    let verified = store.verify(&token).await.unwrap();
    assert_eq!(
        (verified.issuer.as_str(), verified.claims["sub"].as_str()),
        (partner.issuer(), Some("partner-user"))
    );
    let other = partner
        .token(serde_json::json!({"sub": "x", "aud": AUDIENCE, "tenant_id": "0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10"}))
        .unwrap();
    assert!(matches!(store.verify(&other).await, Err(trust_store::Refusal::NotAuthority { .. })));
    assert!(partner.token(serde_json::json!("not an object")).is_err());

    let key_before = std::fs::read(dir.path().join("signing-key.pk8")).unwrap();
    partner.shutdown().await;
    let again = FixtureIssuer::start(dir.path()).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("signing-key.pk8")).unwrap(), key_before, "the key is kept");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("signing-key.pk8")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // A token of the first start still verifies against the second (same key, same kid) once
    // the store knows the new port's issuer.
    std::fs::write(&trust, format!("issuers:\n{}", again.trust_entry(&[AUDIENCE], &[TENANT]))).unwrap();
    let store = trust_store::TrustStore::load(&trust).unwrap();
    let token = again.token(serde_json::json!({"sub": "y", "aud": AUDIENCE, "tenant_id": TENANT})).unwrap();
    store.verify(&token).await.unwrap();
    again.shutdown().await;
}
