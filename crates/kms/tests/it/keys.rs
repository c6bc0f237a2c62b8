//! The key service over a real store, on both engines (SQLite and PostgreSQL, one suite:
//! `engines::on_both_engines!`): pools, rotation, tenants, restart and unseal.

use barrier::Share;
use kms::crypto::Algorithm;
use kms::{Kms, KmsError, PoolName, TenantId};

use crate::engines::{Backend, on_both_engines};

on_both_engines!(
    encrypt_rotate_and_old_versions_still_decrypt,
    aad_is_bound_to_the_ciphertext,
    another_tenants_key_answers_like_a_missing_one,
    sign_verify_wrap_and_data_keys,
    restart_with_other_shares_keeps_every_key,
    too_few_or_wrong_shares_refuse_to_start_and_touch_nothing,
    a_database_with_keys_but_no_seal_is_never_resealed,
    concurrent_rotations_neither_lose_nor_repeat_a_version,
    a_dropped_tenants_keys_are_gone_even_from_memory,
);

struct Fixture {
    backend: Backend,
    shares: Vec<Share>,
}

fn fixture(backend: Backend) -> Fixture {
    Fixture { backend, shares: barrier::new_shares(3, 5).unwrap() }
}

fn pool(name: &str) -> PoolName {
    PoolName::new(name).unwrap()
}

async fn open(f: &Fixture, picks: &[usize]) -> Result<Kms, KmsError> {
    let shares: Vec<Share> = picks.iter().map(|&i| f.shares[i].clone()).collect();
    f.backend.open(&shares).await
}

async fn with_tenant(kms: &Kms, name: &str) -> TenantId {
    kms.ensure_tenant(name, TenantId::random()).await.unwrap().id
}

async fn encrypt_rotate_and_old_versions_still_decrypt(backend: Backend) {
    let f = fixture(backend);
    let kms = open(&f, &[0, 1, 2]).await.unwrap();
    let t = with_tenant(&kms, "acme").await;
    let info = kms.create_pool(t, &pool("payments"), Algorithm::A256Gcm).await.unwrap();
    assert_eq!(info.current_version, Some(1));

    let (kid1, jwe1) = kms.encrypt(t, &pool("payments"), b"card 4111", None).await.unwrap();
    assert_eq!(kid1.to_string(), "payments/1");
    let info = kms.rotate(t, &pool("payments")).await.unwrap();
    assert_eq!(info.current_version, Some(2));
    let (kid2, jwe2) = kms.encrypt(t, &pool("payments"), b"card 5500", None).await.unwrap();
    assert_eq!(kid2.to_string(), "payments/2");

    let (_, pt1) = kms.decrypt(t, jwe1.compact().unwrap()).await.unwrap();
    assert_eq!(&*pt1, b"card 4111");
    let (_, pt2) = kms.decrypt(t, jwe2.compact().unwrap()).await.unwrap();
    assert_eq!(&*pt2, b"card 5500");

    // Disabling v1 stops it; v2 keeps working; re-enabling restores it.
    kms.set_enabled(t, &pool("payments"), 1, false).await.unwrap();
    assert!(matches!(kms.decrypt(t, jwe1.compact().unwrap()).await, Err(KmsError::Disabled(_))));
    assert!(kms.decrypt(t, jwe2.compact().unwrap()).await.is_ok());
    kms.set_enabled(t, &pool("payments"), 1, true).await.unwrap();
    assert!(kms.decrypt(t, jwe1.compact().unwrap()).await.is_ok());
    // Disabling the current version falls back to the newest enabled one.
    let info = kms.set_enabled(t, &pool("payments"), 2, false).await.unwrap();
    assert_eq!(info.current_version, Some(1));
    assert!(matches!(kms.set_enabled(t, &pool("payments"), 9, true).await, Err(KmsError::NotFound(_))));
}

async fn aad_is_bound_to_the_ciphertext(backend: Backend) {
    let f = fixture(backend);
    let kms = open(&f, &[0, 1, 2]).await.unwrap();
    let t = with_tenant(&kms, "acme").await;
    kms.create_pool(t, &pool("p"), Algorithm::A256Gcm).await.unwrap();
    let (_, jwe) = kms.encrypt(t, &pool("p"), b"x", Some(b"order-1")).await.unwrap();
    let jwe = serde_json::Value::from(jwe);
    assert!(jwe.is_object(), "AAD gives a flattened JSON JWE");
    let text = jwe.to_string();
    assert_eq!(&*kms.decrypt(t, &text).await.unwrap().1, b"x");
    let tampered = text.replace(jwe["aad"].as_str().unwrap(), "b3JkZXItMg");
    assert!(matches!(kms.decrypt(t, &tampered).await, Err(KmsError::Jose(_))));
}

async fn another_tenants_key_answers_like_a_missing_one(backend: Backend) {
    let f = fixture(backend);
    let kms = open(&f, &[0, 1, 2]).await.unwrap();
    let a = with_tenant(&kms, "a").await;
    let b = with_tenant(&kms, "b").await;
    kms.create_pool(a, &pool("shared-name"), Algorithm::A256Gcm).await.unwrap();
    let (_, jwe) = kms.encrypt(a, &pool("shared-name"), b"a's secret", None).await.unwrap();

    let err_other = kms.decrypt(b, jwe.compact().unwrap()).await.unwrap_err();
    let jwe_missing = jwe.compact().unwrap().to_owned();
    let err_missing = kms.decrypt(TenantId::random(), &jwe_missing).await.unwrap_err();
    assert_eq!(err_other.to_string(), err_missing.to_string());
    assert!(matches!(err_other, KmsError::NotFound("pool")));

    // Even with a pool of the same name, b's key is another key: decryption fails.
    kms.create_pool(b, &pool("shared-name"), Algorithm::A256Gcm).await.unwrap();
    assert!(matches!(kms.decrypt(b, jwe.compact().unwrap()).await, Err(KmsError::Jose(_))));
    assert!(kms.list_pools(a).await.unwrap().len() == 1 && kms.list_pools(b).await.unwrap().len() == 1);
}

async fn sign_verify_wrap_and_data_keys(backend: Backend) {
    let f = fixture(backend);
    let kms = open(&f, &[0, 1, 2]).await.unwrap();
    let t = with_tenant(&kms, "acme").await;
    for (name, algorithm) in [("es", Algorithm::Es256), ("ed", Algorithm::EdDsa), ("ps", Algorithm::Ps256)] {
        kms.create_pool(t, &pool(name), algorithm).await.unwrap();
        let (kid, jws) = kms.sign(t, &pool(name), b"payload").await.unwrap();
        assert_eq!(kms.verify(t, &jws).await.unwrap(), (kid.clone(), true));
        kms.rotate(t, &pool(name)).await.unwrap();
        assert!(kms.verify(t, &jws).await.unwrap().1, "old versions still verify");
        let mut forged = jws.clone();
        forged.replace_range(forged.len() - 3.., "AAA");
        assert!(!kms.verify(t, &forged).await.unwrap().1);
    }
    let jwks = kms.jwks(t).await.unwrap();
    assert_eq!(jwks.keys.len(), 6, "3 pools × 2 versions");

    kms.create_pool(t, &pool("kek"), Algorithm::A256Kw).await.unwrap();
    let (kid, wrapped) = kms.wrap(t, &pool("kek"), &[9u8; 32]).await.unwrap();
    assert_eq!(&*kms.unwrap(t, &kid, &wrapped).await.unwrap(), &[9u8; 32]);
    assert!(kms.unwrap(t, &kid, &wrapped[..16]).await.is_err());

    kms.create_pool(t, &pool("dek"), Algorithm::A256Gcm).await.unwrap();
    let (plain, _, jwe) = kms.data_key(t, &pool("dek")).await.unwrap();
    assert_eq!(plain.len(), 32);
    assert_eq!(kms.decrypt(t, &jwe).await.unwrap().1, plain);

    // Operations that do not fit the pool's algorithm are refused by name.
    let err = kms.encrypt(t, &pool("es"), b"x", None).await.unwrap_err();
    assert!(matches!(err, KmsError::WrongAlgorithm { .. }), "{err}");
    assert!(matches!(kms.sign(t, &pool("dek"), b"x").await, Err(KmsError::WrongAlgorithm { .. })));
    assert!(matches!(kms.create_pool(t, &pool("dek"), Algorithm::A256Gcm).await, Err(KmsError::Conflict(_))));
}

async fn restart_with_other_shares_keeps_every_key(backend: Backend) {
    let f = fixture(backend);
    let (t, jwe) = {
        let kms = open(&f, &[0, 1, 2]).await.unwrap();
        let t = with_tenant(&kms, "acme").await;
        kms.create_pool(t, &pool("p"), Algorithm::A256Gcm).await.unwrap();
        let (_, jwe) = kms.encrypt(t, &pool("p"), b"survives restarts", None).await.unwrap();
        (t, jwe)
    };
    let kms = open(&f, &[4, 2, 3]).await.unwrap();
    assert_eq!(&*kms.decrypt(t, jwe.compact().unwrap()).await.unwrap().1, b"survives restarts");
}

async fn too_few_or_wrong_shares_refuse_to_start_and_touch_nothing(backend: Backend) {
    let f = fixture(backend);
    {
        let kms = open(&f, &[0, 1, 2]).await.unwrap();
        let t = with_tenant(&kms, "acme").await;
        kms.create_pool(t, &pool("p"), Algorithm::A256Gcm).await.unwrap();
        kms.close().await;
    }
    let before = f.backend.fingerprint().await;

    let err = open(&f, &[0, 1]).await.unwrap_err();
    assert!(
        matches!(err, KmsError::Unseal(barrier::BarrierError::TooFewShares { given: 2, needed: 3 })),
        "{err:?}"
    );

    let other = barrier::new_shares(3, 5).unwrap();
    let err = f.backend.open(&other[..3]).await.unwrap_err();
    assert!(matches!(err, KmsError::Unseal(barrier::BarrierError::ForeignBarrier { .. })), "{err:?}");

    assert_eq!(f.backend.fingerprint().await, before, "a refused start must not change the database");
    // The fingerprint does see writes (so the equality above means something).
    let kms = open(&f, &[2, 3, 4]).await.unwrap();
    with_tenant(&kms, "globex").await;
    kms.close().await;
    assert_ne!(f.backend.fingerprint().await, before);
}

async fn a_database_with_keys_but_no_seal_is_never_resealed(backend: Backend) {
    let f = fixture(backend);
    {
        let kms = open(&f, &[0, 1, 2]).await.unwrap();
        let t = with_tenant(&kms, "acme").await;
        kms.create_pool(t, &pool("p"), Algorithm::A256Gcm).await.unwrap();
        kms.close().await;
    }
    // Someone deletes the seal row.
    f.backend.exec("DELETE FROM seal").await;

    let other = barrier::new_shares(3, 5).unwrap();
    let err = f.backend.open(&other[..3]).await.unwrap_err();
    assert!(matches!(err, KmsError::SealMissing), "{err:?}");
    let err = open(&f, &[0, 1, 2]).await.unwrap_err();
    assert!(matches!(err, KmsError::SealMissing), "even the right shares do not re-seal: {err:?}");
}

/// Many rotations of one pool at once (on PostgreSQL over several connections, on SQLite over
/// the tenant file's pool): every one adds exactly one version, the numbers run 1..=N without a
/// gap or a repeat, and each answer shows its own new version as the current one.
async fn concurrent_rotations_neither_lose_nor_repeat_a_version(backend: Backend) {
    const ROTATIONS: u32 = 16;
    let f = fixture(backend);
    let kms = open(&f, &[0, 1, 2]).await.unwrap();
    let t = with_tenant(&kms, "acme").await;
    kms.create_pool(t, &pool("busy"), Algorithm::A256Gcm).await.unwrap();
    let mut rotations = tokio::task::JoinSet::new();
    for _ in 0..ROTATIONS {
        let kms = kms.clone();
        rotations.spawn(async move { kms.rotate(t, &pool("busy")).await });
    }
    let mut answered = Vec::new();
    while let Some(result) = rotations.join_next().await {
        answered.push(result.unwrap().unwrap().current_version.unwrap());
    }
    answered.sort_unstable();
    assert_eq!(answered, (2..=ROTATIONS + 1).collect::<Vec<_>>(), "each rotation answers its own version");
    let info = kms.pool_info(t, &pool("busy")).await.unwrap();
    let numbers: Vec<u32> = info.versions.iter().map(|v| v.version).collect();
    assert_eq!(numbers, (1..=ROTATIONS + 1).collect::<Vec<_>>());
    // Every version holds a working key of its own number.
    let (kid, jwe) = kms.encrypt(t, &pool("busy"), b"after the storm", None).await.unwrap();
    assert_eq!(kid.version, ROTATIONS + 1);
    assert_eq!(&*kms.decrypt(t, jwe.compact().unwrap()).await.unwrap().1, b"after the storm");
}

/// Dropping a tenant removes its keys from the store and from this process's caches: a
/// ciphertext that decrypted a moment ago (its key unwrapped and cached) no longer does.
async fn a_dropped_tenants_keys_are_gone_even_from_memory(backend: Backend) {
    let f = fixture(backend);
    let kms = open(&f, &[0, 1, 2]).await.unwrap();
    let (t, other) = (with_tenant(&kms, "acme").await, with_tenant(&kms, "globex").await);
    for tenant in [t, other] {
        kms.create_pool(tenant, &pool("p"), Algorithm::A256Gcm).await.unwrap();
    }
    let (_, jwe) = kms.encrypt(t, &pool("p"), b"short-lived", None).await.unwrap();
    assert!(kms.decrypt(t, jwe.compact().unwrap()).await.is_ok());
    assert!(kms.drop_tenant(t).await.unwrap());
    assert!(matches!(kms.decrypt(t, jwe.compact().unwrap()).await, Err(KmsError::NotFound(_))));
    assert!(matches!(
        kms.create_pool(t, &pool("q"), Algorithm::A256Gcm).await,
        Err(KmsError::NotFound("tenant"))
    ));
    assert!(!kms.drop_tenant(t).await.unwrap());
    assert_eq!(kms.list_pools(other).await.unwrap().len(), 1, "other tenants keep their keys");
}
