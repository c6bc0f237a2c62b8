//! The store's contract, one suite for both engines: each test below is an
//! `async fn(Arc<dyn Store>)`, and `on_both_engines!` turns it into `store::sqlite::NAME` and
//! `store::postgres::NAME` (a fresh database each; the PostgreSQL one skips loudly where
//! PostgreSQL is not installed, and fails under CI). Races run `ROUNDS` times so that a lucky
//! interleaving does not pass a broken store.

use std::sync::Arc;

use identity::store::{
    AuthCode, KeyState, NewRefresh, PgStore, Session, SqliteStore, Store, StoreError, StoredClient,
    StoredKey, StoredUser, now,
};
use tokio::task::JoinSet;

/// How often each race is run.
const ROUNDS: usize = 20;
/// How many presentations race in each round.
const RACERS: usize = 8;

fn shares() -> Vec<barrier::Share> {
    barrier::new_shares(3, 5).unwrap().into_iter().take(3).collect()
}

pub async fn open_sqlite(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    let (store, _) = SqliteStore::open_sealed(&dir.path().join("identity.db"), &shares()).await.unwrap();
    Arc::new(store)
}

pub async fn open_postgres() -> Option<Arc<dyn Store>> {
    let server = test_support::postgres::server()?;
    let (store, _) = PgStore::open_sealed(&server.fresh_database(), &shares()).await.unwrap();
    Some(Arc::new(store))
}

macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = super::open_sqlite(&dir).await;
                    super::$name(store.clone()).await;
                    store.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(store) = super::open_postgres().await else { return };
                    super::$name(store.clone()).await;
                    store.close().await;
                }
            )*
        }
    };
}

on_both_engines!(
    signing_keys_keep_one_per_stage_and_their_bytes,
    concurrent_first_keys_leave_one_of_each_stage,
    clients_and_users_round_trip_and_refuse_duplicates,
    sessions_expire_and_end,
    a_code_is_consumed_once_and_records_what_it_issued,
    concurrent_presentations_of_a_code_have_one_winner,
    refresh_rotation_and_family_revocation,
    concurrent_presentations_of_a_refresh_token_have_one_winner,
    a_rotation_racing_a_revocation_never_leaves_its_access_token_live,
    revocations_are_kept_until_expiry,
);

fn key(kid: &str, state: KeyState) -> StoredKey {
    StoredKey {
        kid: kid.to_owned(),
        state,
        // Every byte value, so that a text-typed column or an encoding would show.
        wrapped_private: (0..=255u8).chain([0, 0, 255]).collect(),
        public_jwk: format!(r#"{{"kid":"{kid}"}}"#),
        created_at: now(),
        retire_after: None,
    }
}

fn kids(keys: &[StoredKey], state: KeyState) -> Vec<String> {
    keys.iter().filter(|k| k.state == state).map(|k| k.kid.clone()).collect()
}

async fn signing_keys_keep_one_per_stage_and_their_bytes(store: Arc<dyn Store>) {
    assert!(store.keys().await.unwrap().is_empty());
    assert!(store.insert_key(&key("c1", KeyState::Current)).await.unwrap());
    assert!(!store.insert_key(&key("c2", KeyState::Current)).await.unwrap(), "one current key");
    assert!(store.insert_key(&key("n1", KeyState::Next)).await.unwrap());
    assert!(!store.insert_key(&key("n2", KeyState::Next)).await.unwrap(), "one next key");
    let far = i64::MAX - 1;
    let retired = StoredKey { retire_after: Some(far), ..key("r1", KeyState::Retired) };
    assert!(store.insert_key(&retired).await.unwrap());
    assert!(store.insert_key(&key("r2", KeyState::Retired)).await.unwrap(), "retired keys are many");

    let keys = store.keys().await.unwrap();
    assert_eq!(keys.len(), 4, "{keys:?}");
    let r1 = keys.iter().find(|k| k.kid == "r1").unwrap();
    assert_eq!(r1.wrapped_private, retired.wrapped_private);
    assert_eq!((r1.public_jwk.as_str(), r1.retire_after), (r#"{"kid":"r1"}"#, Some(far)));
    assert_eq!(kids(&keys, KeyState::Current), ["c1"]);
    assert_eq!(kids(&keys, KeyState::Next), ["n1"]);

    // A rotation in the order the stage rule allows: retire, promote, add.
    store.set_key_state("c1", KeyState::Retired, Some(now() + 600)).await.unwrap();
    store.set_key_state("n1", KeyState::Current, None).await.unwrap();
    assert!(store.insert_key(&key("n3", KeyState::Next)).await.unwrap());
    assert!(!store.insert_key(&key("c3", KeyState::Current)).await.unwrap());
    store.delete_key("r2").await.unwrap();
    let keys = store.keys().await.unwrap();
    assert_eq!(kids(&keys, KeyState::Current), ["n1"]);
    assert_eq!(kids(&keys, KeyState::Next), ["n3"]);
    let mut retired = kids(&keys, KeyState::Retired);
    retired.sort();
    assert_eq!(retired, ["c1", "r1"]);
}

async fn concurrent_first_keys_leave_one_of_each_stage(store: Arc<dyn Store>) {
    for round in 0..ROUNDS {
        let mut racers = JoinSet::new();
        for i in 0..RACERS {
            let store = store.clone();
            racers.spawn(async move {
                let current =
                    store.insert_key(&key(&format!("c{round}-{i}"), KeyState::Current)).await.unwrap();
                let next = store.insert_key(&key(&format!("n{round}-{i}"), KeyState::Next)).await.unwrap();
                (current, next)
            });
        }
        let results = racers.join_all().await;
        assert_eq!(results.iter().filter(|r| r.0).count(), 1, "round {round}: one current key inserted");
        assert_eq!(results.iter().filter(|r| r.1).count(), 1, "round {round}: one next key inserted");
        let keys = store.keys().await.unwrap();
        assert_eq!(keys.len(), 2, "round {round}: {keys:?}");
        for k in keys {
            store.delete_key(&k.kid).await.unwrap();
        }
    }
}

fn client(id: &str) -> StoredClient {
    StoredClient {
        client_id: id.to_owned(),
        confidential: true,
        secret_hash: Some("$pbkdf2-sha256$i=600000$c2FsdA$aGFzaA".into()),
        scopes: vec!["openid".into(), "kms:encrypt".into()],
        audiences: vec!["https://kms.demo.local:8081".into()],
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        redirect_uris: vec!["https://app.demo.local/cb".into(), "https://app.demo.local/cb2".into()],
        tenant_id: "0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10".into(),
        roles: vec!["service".into()],
        post_logout_redirect_uris: vec!["https://app.demo.local/bye".into()],
        display_name: Some("L'appli « démo » \"quoted\"; DROP TABLE clients; --".into()),
    }
}

fn user(id: &str, name: &str) -> StoredUser {
    StoredUser {
        user_id: id.to_owned(),
        username: name.to_owned(),
        password_hash: "$pbkdf2-sha256$i=600000$c2FsdA$aGFzaA".into(),
        name: "Zoë O'Brien".into(),
        email: format!("{name}@acme.example"),
        tenant_id: "0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10".into(),
        roles: vec!["admin".into(), "user".into()],
    }
}

async fn clients_and_users_round_trip_and_refuse_duplicates(store: Arc<dyn Store>) {
    let full = client("webapp");
    store.insert_client(&full).await.unwrap();
    assert_eq!(store.client("webapp").await.unwrap(), Some(full.clone()));
    let public = StoredClient {
        confidential: false,
        secret_hash: None,
        audiences: vec![],
        roles: vec![],
        post_logout_redirect_uris: vec![],
        display_name: None,
        ..client("spa")
    };
    store.insert_client(&public).await.unwrap();
    assert_eq!(store.client("spa").await.unwrap(), Some(public));
    assert_eq!(store.client("nobody").await.unwrap(), None);
    match store.insert_client(&client("webapp")).await {
        Err(StoreError::Conflict(what)) => assert_eq!(what, "client webapp"),
        other => panic!("a second webapp must be a conflict: {other:?}"),
    }

    let alice = user("u-1", "alice");
    store.insert_user(&alice).await.unwrap();
    assert_eq!(store.user_by_name("alice").await.unwrap(), Some(alice.clone()));
    assert_eq!(store.user("u-1").await.unwrap(), Some(alice));
    assert_eq!(store.user("alice").await.unwrap(), None, "ids and names are not confused");
    assert_eq!(store.user_by_name("' OR '1'='1").await.unwrap(), None);
    match store.insert_user(&user("u-2", "alice")).await {
        Err(StoreError::Conflict(what)) => assert_eq!(what, "user alice"),
        other => panic!("a second alice must be a conflict: {other:?}"),
    }
}

async fn sessions_expire_and_end(store: Arc<dyn Store>) {
    store.insert_user(&user("u-1", "alice")).await.unwrap();
    let live = Session { user_id: "u-1".into(), auth_time: now() - 5, expires_at: now() + 60 };
    store.insert_session("live", &live).await.unwrap();
    assert_eq!(store.session("live").await.unwrap(), Some(live));
    let old = Session { user_id: "u-1".into(), auth_time: now() - 100, expires_at: now() - 10 };
    store.insert_session("old", &old).await.unwrap();
    assert_eq!(store.session("old").await.unwrap(), None, "an expired session is not one");
    store.delete_session("live").await.unwrap();
    assert_eq!(store.session("live").await.unwrap(), None);
    assert!(
        store.insert_session("orphan", &Session { user_id: "u-404".into(), ..old }).await.is_err(),
        "a session needs its user"
    );
}

fn code() -> AuthCode {
    AuthCode {
        client_id: "spa".into(),
        user_id: "u-1".into(),
        redirect_uri: "https://app.demo.local/cb".into(),
        scope: "openid profile".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        nonce: Some("n-1".into()),
        auth_time: now(),
        expires_at: now() + 60,
        used_at: None,
        access_jti: None,
        access_exp: None,
        family_id: None,
        session_hash: Some("s-1".into()),
    }
}

async fn a_code_is_consumed_once_and_records_what_it_issued(store: Arc<dyn Store>) {
    let issued = code();
    store.insert_code("h1", &issued).await.unwrap();
    assert_eq!(store.code("h1").await.unwrap(), Some(issued.clone()));
    assert_eq!(store.code("h2").await.unwrap(), None);
    let exp = now() + 300;
    assert!(store.consume_code("h1", "jti-1", exp, Some("fam-1")).await.unwrap());
    assert!(!store.consume_code("h1", "jti-2", exp + 1, None).await.unwrap(), "a code is used once");
    let used = store.code("h1").await.unwrap().unwrap();
    assert!(used.used_at.is_some_and(|t| (t - now()).abs() < 60));
    assert_eq!(
        (used.access_jti.as_deref(), used.access_exp, used.family_id.as_deref()),
        (Some("jti-1"), Some(exp), Some("fam-1")),
        "the second presentation changed nothing"
    );
    assert!(!store.consume_code("unknown", "jti-3", exp, None).await.unwrap());
}

async fn concurrent_presentations_of_a_code_have_one_winner(store: Arc<dyn Store>) {
    for round in 0..ROUNDS {
        let hash = format!("code-{round}");
        store.insert_code(&hash, &code()).await.unwrap();
        let mut racers = JoinSet::new();
        for i in 0..RACERS {
            let (store, hash) = (store.clone(), hash.clone());
            racers.spawn(async move {
                let jti = format!("jti-{i}");
                let won = store.consume_code(&hash, &jti, now() + 300, Some(&jti)).await.unwrap();
                won.then_some(jti)
            });
        }
        let winners: Vec<String> = racers.join_all().await.into_iter().flatten().collect();
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let row = store.code(&hash).await.unwrap().unwrap();
        assert_eq!(row.access_jti.as_ref(), Some(&winners[0]), "round {round}: the winner's record stands");
        assert_eq!(row.family_id.as_ref(), Some(&winners[0]));
    }
}

fn refresh_token(hash: &str, family: &str, jti: &str) -> NewRefresh {
    NewRefresh {
        token_hash: hash.to_owned(),
        family_id: family.to_owned(),
        scope: "openid profile".into(),
        expires_at: now() + 3600,
        access_jti: jti.to_owned(),
        access_exp: now() + 300,
    }
}

async fn refresh_rotation_and_family_revocation(store: Arc<dyn Store>) {
    let auth_time = now() - 30;
    store.insert_family("fam", "spa", "u-1", auth_time, Some("s-1")).await.unwrap();
    store.insert_refresh(&refresh_token("t1", "fam", "a1")).await.unwrap();
    let t1 = store.refresh("t1").await.unwrap().unwrap();
    assert_eq!(
        (t1.family_id.as_str(), t1.client_id.as_str(), t1.user_id.as_str(), t1.scope.as_str()),
        ("fam", "spa", "u-1", "openid profile")
    );
    assert_eq!((t1.auth_time, t1.used_at, t1.family_revoked), (auth_time, None, false));
    assert!((t1.family_created_at - now()).abs() < 60);
    assert_eq!(store.refresh("nope").await.unwrap(), None);

    assert!(store.consume_refresh("t1").await.unwrap());
    assert!(!store.consume_refresh("t1").await.unwrap(), "a refresh token rotates once");
    assert!(store.refresh("t1").await.unwrap().unwrap().used_at.is_some());
    store.insert_refresh(&refresh_token("t2", "fam", "a2")).await.unwrap();
    assert!(!store.is_revoked("a1").await.unwrap());

    store.revoke_family("fam").await.unwrap();
    assert!(store.refresh("t2").await.unwrap().unwrap().family_revoked);
    assert!(store.is_revoked("a1").await.unwrap() && store.is_revoked("a2").await.unwrap());
    store.revoke_family("fam").await.unwrap();
    // A token stored into a revoked family (a rotation that lost a race with reuse detection):
    // its access token is revoked with it.
    store.insert_refresh(&refresh_token("t3", "fam", "a3")).await.unwrap();
    assert!(store.is_revoked("a3").await.unwrap());
    assert!(store.insert_refresh(&refresh_token("t4", "no-family", "a4")).await.is_err());

    // Signing out revokes the families of that session only.
    store.insert_family("mine", "spa", "u-1", auth_time, Some("s-2")).await.unwrap();
    store.insert_family("other", "spa", "u-1", auth_time, Some("s-3")).await.unwrap();
    store.insert_refresh(&refresh_token("m1", "mine", "am")).await.unwrap();
    store.insert_refresh(&refresh_token("o1", "other", "ao")).await.unwrap();
    store.revoke_session_families("s-2").await.unwrap();
    assert!(store.refresh("m1").await.unwrap().unwrap().family_revoked);
    assert!(!store.refresh("o1").await.unwrap().unwrap().family_revoked);
    assert!(store.is_revoked("am").await.unwrap() && !store.is_revoked("ao").await.unwrap());
}

async fn concurrent_presentations_of_a_refresh_token_have_one_winner(store: Arc<dyn Store>) {
    for round in 0..ROUNDS {
        let (family, hash) = (format!("fam-{round}"), format!("tok-{round}"));
        store.insert_family(&family, "spa", "u-1", now(), None).await.unwrap();
        store.insert_refresh(&refresh_token(&hash, &family, &format!("a-{round}"))).await.unwrap();
        let mut racers = JoinSet::new();
        for _ in 0..RACERS {
            let (store, hash) = (store.clone(), hash.clone());
            racers.spawn(async move { store.consume_refresh(&hash).await.unwrap() });
        }
        let wins = racers.join_all().await.into_iter().filter(|w| *w).count();
        assert_eq!(wins, 1, "round {round}");
    }
}

async fn a_rotation_racing_a_revocation_never_leaves_its_access_token_live(store: Arc<dyn Store>) {
    for round in 0..ROUNDS {
        let family = format!("fam-{round}");
        store.insert_family(&family, "spa", "u-1", now(), None).await.unwrap();
        store
            .insert_refresh(&refresh_token(&format!("old-{round}"), &family, &format!("a-old-{round}")))
            .await
            .unwrap();
        let (revoker, rotator) = (store.clone(), store.clone());
        let (f1, f2) = (family.clone(), family.clone());
        let new = refresh_token(&format!("new-{round}"), &f2, &format!("a-new-{round}"));
        let (revoked, rotated) = tokio::join!(
            tokio::spawn(async move { revoker.revoke_family(&f1).await }),
            tokio::spawn(async move { rotator.insert_refresh(&new).await }),
        );
        revoked.unwrap().unwrap();
        rotated.unwrap().unwrap();
        assert!(store.is_revoked(&format!("a-old-{round}")).await.unwrap(), "round {round}");
        assert!(
            store.is_revoked(&format!("a-new-{round}")).await.unwrap(),
            "round {round}: the access token issued beside a rotation that raced the revocation is revoked"
        );
        assert!(store.refresh(&format!("new-{round}")).await.unwrap().unwrap().family_revoked);
    }
}

async fn revocations_are_kept_until_expiry(store: Arc<dyn Store>) {
    assert!(!store.is_revoked("j1").await.unwrap());
    store.revoke("j1", now() + 60).await.unwrap();
    store.revoke("j1", now() + 60).await.unwrap();
    assert!(store.is_revoked("j1").await.unwrap());
    assert!(!store.is_revoked("j2").await.unwrap());
    // A token past its expiry needs no record: the next revocation sweeps it.
    store.revoke("expired", now() - 10).await.unwrap();
    store.revoke("j3", now() + 60).await.unwrap();
    assert!(!store.is_revoked("expired").await.unwrap());
    assert!(store.is_revoked("j3").await.unwrap());
}
