//! The demo seed shipped in deployments/: loads, applies, and applies again without changes.

use std::path::PathBuf;

use kms::authz::Scope;
use kms::realm::{AuthSettings, Authenticator, Realm};
use kms::seed::{Seed, SeedError, SeedReport};
use kms::{Kms, PoolName, TenantId};
use secrecy::SecretString;

const LOOPBACK: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn shipped_seed() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deployments/kms/config/demo-seed.yml"))
}

#[tokio::test]
async fn the_shipped_seed_applies_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let (acme, globex) = (TenantId::random(), TenantId::random());
    let tenants = dir.path().join("tenants.yml");
    std::fs::write(&tenants, format!("acme: {acme}\nglobex: {globex}\n")).unwrap();
    let seed = Seed::load(&shipped_seed(), &tenants).unwrap();
    let shares = barrier::new_shares(3, 5).unwrap();
    let kms = Kms::open_sqlite(&dir.path().join("kms.db"), &shares[..3]).await.unwrap();

    let first = seed.apply(&kms).await.unwrap();
    assert_eq!(
        first,
        SeedReport { tenants_created: 2, pools_created: 7, versions_added: 2, users_created: 5 }
    );
    let second = seed.apply(&kms).await.unwrap();
    assert_eq!(second, SeedReport::default(), "a second run changes nothing");

    let payments = kms.pool_info(acme, &PoolName::new("payments").unwrap()).await.unwrap();
    assert_eq!(payments.current_version, Some(2));
    let jwks = kms.jwks(acme).await.unwrap();
    assert_eq!(jwks.keys.len(), 4, "signing ×2, signing-ed, signing-rsa");
    assert_eq!(kms.list_pools(globex).await.unwrap().len(), 1);

    // The seeded accounts log in through the database realm with their documented passwords.
    let auth =
        Authenticator::new(vec![Realm::Database(kms.store().clone())], AuthSettings::default()).unwrap();
    let app =
        auth.basic("acme-app", &SecretString::from("acme-app-demo".to_owned()), LOOPBACK).await.unwrap();
    assert_eq!(app.tenant, acme);
    assert!(app.require(Scope::Unwrap).is_ok());
    let user = auth
        .basic("globex-user", &SecretString::from("globex-user-demo".to_owned()), LOOPBACK)
        .await
        .unwrap();
    assert_eq!(user.tenant, globex);
    assert!(auth.basic("acme-app", &SecretString::from("wrong".to_owned()), LOOPBACK).await.is_err());
}

#[tokio::test]
async fn a_seed_for_another_environment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants.yml");
    std::fs::write(&tenants, format!("acme: {}\nglobex: {}\n", TenantId::random(), TenantId::random()))
        .unwrap();
    let shares = barrier::new_shares(3, 5).unwrap();
    let kms = Kms::open_sqlite(&dir.path().join("kms.db"), &shares[..3]).await.unwrap();
    Seed::load(&shipped_seed(), &tenants).unwrap().apply(&kms).await.unwrap();

    // New ids for the same names: the database belongs to the old environment.
    std::fs::write(&tenants, format!("acme: {}\nglobex: {}\n", TenantId::random(), TenantId::random()))
        .unwrap();
    let err = Seed::load(&shipped_seed(), &tenants).unwrap().apply(&kms).await.unwrap_err();
    assert!(matches!(err, SeedError::TenantIdMismatch { .. }), "{err}");
}

#[test]
fn bad_seed_files_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants.yml");
    std::fs::write(&tenants, "acme: 0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10\n").unwrap();
    let seed = dir.path().join("seed.yml");
    for (text, expect) in [
        ("tenants:\n  - name: acme\n    pools:\n      - { name: p, algorithm: ROT13 }\n", "algorithm"),
        (
            "tenants:\n  - name: acme\n    pools:\n      - { name: p, algorithm: A256GCM, versions: 0 }\n",
            "tenants[0].pools[0].versions",
        ),
        (
            "tenants:\n  - name: acme\n    pools:\n      - { name: Bad Name, algorithm: A256GCM }\n",
            "pool name",
        ),
        ("tenants:\n  - name: other\n", "no id for tenant \"other\""),
        (
            "tenants:\n  - name: acme\nusers:\n  - { username: u, password: long-enough, tenant: nope, roles: [user] }\n",
            "users[0].tenant",
        ),
    ] {
        std::fs::write(&seed, text).unwrap();
        let err = Seed::load(&seed, &tenants).unwrap_err();
        let mut chain = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            chain.push_str(&format!(": {s}"));
            source = s.source();
        }
        assert!(chain.contains(expect), "{expect}: {chain}");
    }
}
