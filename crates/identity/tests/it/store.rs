//! The store's contract, one suite for both engines: each test below is an
//! `async fn(Arc<dyn Store>)`, and `on_both_engines!` turns it into `store::sqlite::NAME` and
//! `store::postgres::NAME` (a fresh database each; the PostgreSQL one skips loudly where
//! PostgreSQL is not installed, and fails under CI). Races run `ROUNDS` times so that a lucky
//! interleaving does not pass a broken store.

use std::sync::Arc;

use identity::store::{
    ApiKeyChange, ApiKeyRow, AuthCode, KeyState, NewFamily, NewRefresh, OwnerKind, PgStore, Session,
    SqliteStore, Store, StoreError, StoredClient, StoredKey, StoredUser, TenantKey, now,
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
    tenants_keep_their_rows_apart_and_are_dropped_whole,
    api_keys_rotate_delete_restore_and_purge_by_the_rules,
    a_sealed_value_is_made_once,
);

/// The tenant of `client` and `user` below.
const ACME: &str = "0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10";
/// Another tenant.
const GLOBEX: &str = "7d1e2a90-4b3c-4f5e-8a6b-1c2d3e4f5a6b";

fn acme() -> TenantKey {
    TenantKey::parse(ACME).unwrap()
}

/// Acme with the public client `spa` and the user `u-1`, whom codes and families name (the
/// tenant's tables refer to its clients and users).
async fn with_spa(store: &Arc<dyn Store>) -> TenantKey {
    let spa = StoredClient { confidential: false, secret_hash: None, ..client("spa") };
    store.insert_client(&spa).await.unwrap();
    store.insert_user(&user("u-1", "alice")).await.unwrap();
    acme()
}

fn family<'a>(id: &'a str, session: Option<&'a str>) -> NewFamily<'a> {
    NewFamily {
        family_id: id,
        client_id: "spa",
        user_id: "u-1",
        auth_time: now() - 30,
        session_hash: session,
    }
}

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
        tenant_id: ACME.into(),
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
        tenant_id: ACME.into(),
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
    let t = acme();
    assert_eq!(store.user_by_name(&t, "alice").await.unwrap(), Some(alice.clone()));
    assert_eq!(store.user(&t, "u-1").await.unwrap(), Some(alice));
    assert_eq!(store.user(&t, "alice").await.unwrap(), None, "ids and names are not confused");
    assert_eq!(store.user_by_name(&t, "' OR '1'='1").await.unwrap(), None);
    let stranger = TenantKey::parse(GLOBEX).unwrap();
    assert_eq!(store.user_by_name(&stranger, "alice").await.unwrap(), None, "another tenant's name");
    let bad = StoredClient { tenant_id: "0B6F5C3E-7F4A-4D2B-9B1E-6A0C2D4E8F10".into(), ..client("upper") };
    assert!(
        matches!(store.insert_client(&bad).await, Err(StoreError::BadTenant(_))),
        "only the canonical id"
    );
    assert_eq!(store.client("upper").await.unwrap(), None);
    match store.insert_user(&user("u-2", "alice")).await {
        Err(StoreError::Conflict(what)) => assert_eq!(what, "user alice"),
        other => panic!("a second alice must be a conflict: {other:?}"),
    }
}

async fn sessions_expire_and_end(store: Arc<dyn Store>) {
    store.insert_user(&user("u-1", "alice")).await.unwrap();
    let live = Session {
        tenant_id: ACME.into(),
        user_id: "u-1".into(),
        auth_time: now() - 5,
        expires_at: now() + 60,
    };
    store.insert_session("live", &live).await.unwrap();
    assert_eq!(store.session("live").await.unwrap(), Some(live));
    let old = Session {
        tenant_id: ACME.into(),
        user_id: "u-1".into(),
        auth_time: now() - 100,
        expires_at: now() - 10,
    };
    store.insert_session("old", &old).await.unwrap();
    assert_eq!(store.session("old").await.unwrap(), None, "an expired session is not one");
    store.delete_session("live").await.unwrap();
    assert_eq!(store.session("live").await.unwrap(), None);
    let nowhere = Session { tenant_id: GLOBEX.into(), ..old };
    assert!(store.insert_session("orphan", &nowhere).await.is_err(), "a session needs its tenant");
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
    let t = with_spa(&store).await;
    let issued = code();
    store.insert_code(&t, "h1", &issued).await.unwrap();
    assert_eq!(store.code(&t, "h1").await.unwrap(), Some(issued.clone()));
    assert_eq!(store.code(&t, "h2").await.unwrap(), None);
    let exp = now() + 300;
    assert!(store.consume_code(&t, "h1", "jti-1", exp, Some("fam-1")).await.unwrap());
    assert!(!store.consume_code(&t, "h1", "jti-2", exp + 1, None).await.unwrap(), "a code is used once");
    let used = store.code(&t, "h1").await.unwrap().unwrap();
    assert!(used.used_at.is_some_and(|t| (t - now()).abs() < 60));
    assert_eq!(
        (used.access_jti.as_deref(), used.access_exp, used.family_id.as_deref()),
        (Some("jti-1"), Some(exp), Some("fam-1")),
        "the second presentation changed nothing"
    );
    assert!(!store.consume_code(&t, "unknown", "jti-3", exp, None).await.unwrap());
}

async fn concurrent_presentations_of_a_code_have_one_winner(store: Arc<dyn Store>) {
    let t = with_spa(&store).await;
    for round in 0..ROUNDS {
        let hash = format!("code-{round}");
        store.insert_code(&t, &hash, &code()).await.unwrap();
        let mut racers = JoinSet::new();
        for i in 0..RACERS {
            let (store, hash) = (store.clone(), hash.clone());
            racers.spawn(async move {
                let jti = format!("jti-{i}");
                let won = store.consume_code(&acme(), &hash, &jti, now() + 300, Some(&jti)).await.unwrap();
                won.then_some(jti)
            });
        }
        let winners: Vec<String> = racers.join_all().await.into_iter().flatten().collect();
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let row = store.code(&t, &hash).await.unwrap().unwrap();
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
    let t = with_spa(&store).await;
    let auth_time = now() - 30;
    store.insert_family(&t, &NewFamily { auth_time, ..family("fam", Some("s-1")) }).await.unwrap();
    store.insert_refresh(&t, &refresh_token("t1", "fam", "a1")).await.unwrap();
    let t1 = store.refresh(&t, "t1").await.unwrap().unwrap();
    assert_eq!(
        (t1.family_id.as_str(), t1.client_id.as_str(), t1.user_id.as_str(), t1.scope.as_str()),
        ("fam", "spa", "u-1", "openid profile")
    );
    assert_eq!((t1.auth_time, t1.used_at, t1.family_revoked), (auth_time, None, false));
    assert!((t1.family_created_at - now()).abs() < 60);
    assert_eq!(store.refresh(&t, "nope").await.unwrap(), None);

    assert!(store.consume_refresh(&t, "t1").await.unwrap());
    assert!(!store.consume_refresh(&t, "t1").await.unwrap(), "a refresh token rotates once");
    assert!(store.refresh(&t, "t1").await.unwrap().unwrap().used_at.is_some());
    store.insert_refresh(&t, &refresh_token("t2", "fam", "a2")).await.unwrap();
    assert!(!store.is_revoked(&t, "a1").await.unwrap());

    store.revoke_family(&t, "fam").await.unwrap();
    assert!(store.refresh(&t, "t2").await.unwrap().unwrap().family_revoked);
    assert!(store.is_revoked(&t, "a1").await.unwrap() && store.is_revoked(&t, "a2").await.unwrap());
    store.revoke_family(&t, "fam").await.unwrap();
    // A token stored into a revoked family (a rotation that lost a race with reuse detection):
    // its access token is revoked with it.
    store.insert_refresh(&t, &refresh_token("t3", "fam", "a3")).await.unwrap();
    assert!(store.is_revoked(&t, "a3").await.unwrap());
    assert!(store.insert_refresh(&t, &refresh_token("t4", "no-family", "a4")).await.is_err());

    // Signing out revokes the families of that session only.
    store.insert_family(&t, &family("mine", Some("s-2"))).await.unwrap();
    store.insert_family(&t, &family("other", Some("s-3"))).await.unwrap();
    store.insert_refresh(&t, &refresh_token("m1", "mine", "am")).await.unwrap();
    store.insert_refresh(&t, &refresh_token("o1", "other", "ao")).await.unwrap();
    store.revoke_session_families(&t, "s-2").await.unwrap();
    assert!(store.refresh(&t, "m1").await.unwrap().unwrap().family_revoked);
    assert!(!store.refresh(&t, "o1").await.unwrap().unwrap().family_revoked);
    assert!(store.is_revoked(&t, "am").await.unwrap() && !store.is_revoked(&t, "ao").await.unwrap());
}

async fn concurrent_presentations_of_a_refresh_token_have_one_winner(store: Arc<dyn Store>) {
    let t = with_spa(&store).await;
    for round in 0..ROUNDS {
        let (fam, hash) = (format!("fam-{round}"), format!("tok-{round}"));
        store.insert_family(&t, &family(&fam, None)).await.unwrap();
        store.insert_refresh(&t, &refresh_token(&hash, &fam, &format!("a-{round}"))).await.unwrap();
        let mut racers = JoinSet::new();
        for _ in 0..RACERS {
            let (store, hash) = (store.clone(), hash.clone());
            racers.spawn(async move { store.consume_refresh(&acme(), &hash).await.unwrap() });
        }
        let wins = racers.join_all().await.into_iter().filter(|w| *w).count();
        assert_eq!(wins, 1, "round {round}");
    }
}

async fn a_rotation_racing_a_revocation_never_leaves_its_access_token_live(store: Arc<dyn Store>) {
    let t = with_spa(&store).await;
    for round in 0..ROUNDS {
        let fam = format!("fam-{round}");
        store.insert_family(&t, &family(&fam, None)).await.unwrap();
        store
            .insert_refresh(&t, &refresh_token(&format!("old-{round}"), &fam, &format!("a-old-{round}")))
            .await
            .unwrap();
        let (revoker, rotator) = (store.clone(), store.clone());
        let (f1, f2) = (fam.clone(), fam.clone());
        let new = refresh_token(&format!("new-{round}"), &f2, &format!("a-new-{round}"));
        let (revoked, rotated) = tokio::join!(
            tokio::spawn(async move { revoker.revoke_family(&acme(), &f1).await }),
            tokio::spawn(async move { rotator.insert_refresh(&acme(), &new).await }),
        );
        revoked.unwrap().unwrap();
        rotated.unwrap().unwrap();
        assert!(store.is_revoked(&t, &format!("a-old-{round}")).await.unwrap(), "round {round}");
        assert!(
            store.is_revoked(&t, &format!("a-new-{round}")).await.unwrap(),
            "round {round}: the access token issued beside a rotation that raced the revocation is revoked"
        );
        assert!(store.refresh(&t, &format!("new-{round}")).await.unwrap().unwrap().family_revoked);
    }
}

async fn revocations_are_kept_until_expiry(store: Arc<dyn Store>) {
    let t = with_spa(&store).await;
    assert!(!store.is_revoked(&t, "j1").await.unwrap());
    store.revoke(&t, "j1", now() + 60).await.unwrap();
    store.revoke(&t, "j1", now() + 60).await.unwrap();
    assert!(store.is_revoked(&t, "j1").await.unwrap());
    assert!(!store.is_revoked(&t, "j2").await.unwrap());
    // A token past its expiry needs no record: the next revocation sweeps it.
    store.revoke(&t, "expired", now() - 10).await.unwrap();
    store.revoke(&t, "j3", now() + 60).await.unwrap();
    assert!(!store.is_revoked(&t, "expired").await.unwrap());
    assert!(store.is_revoked(&t, "j3").await.unwrap());
}

async fn tenants_keep_their_rows_apart_and_are_dropped_whole(store: Arc<dyn Store>) {
    let a = with_spa(&store).await;
    let b = TenantKey::parse(GLOBEX).unwrap();
    // The same login name in both tenants: names are unique per tenant.
    let bob = StoredUser { tenant_id: GLOBEX.into(), ..user("u-2", "alice") };
    store.insert_user(&bob).await.unwrap();
    let globex_app = StoredClient { tenant_id: GLOBEX.into(), ..client("globex-app") };
    store.insert_client(&globex_app).await.unwrap();
    match store.insert_client(&StoredClient { tenant_id: GLOBEX.into(), ..client("spa") }).await {
        Err(StoreError::Conflict(what)) => assert_eq!(what, "client spa"),
        other => panic!("client ids are unique across tenants: {other:?}"),
    }
    assert_eq!(store.user_by_name(&a, "alice").await.unwrap().unwrap().user_id, "u-1");
    assert_eq!(store.user_by_name(&b, "alice").await.unwrap().unwrap().user_id, "u-2");
    assert_eq!(store.user(&b, "u-1").await.unwrap(), None, "acme's user is not globex's");
    assert_eq!(store.client("globex-app").await.unwrap().unwrap().tenant_id, GLOBEX);

    store.insert_code(&a, "code-a", &code()).await.unwrap();
    assert_eq!(store.code(&b, "code-a").await.unwrap(), None, "a code is looked up in its tenant only");
    assert!(!store.consume_code(&b, "code-a", "jti", now() + 60, None).await.unwrap());
    assert!(store.code(&a, "code-a").await.unwrap().unwrap().used_at.is_none(), "untouched by globex");
    store.revoke(&a, "jti-a", now() + 60).await.unwrap();
    assert!(!store.is_revoked(&b, "jti-a").await.unwrap());
    let mut listed = store.tenants().await.unwrap();
    listed.sort_by(|x, y| x.hex().cmp(y.hex()));
    assert_eq!(listed, [a, b]);

    // Dropping acme takes its clients, users, codes, revocations and sessions with it.
    let session =
        Session { tenant_id: ACME.into(), user_id: "u-1".into(), auth_time: now(), expires_at: now() + 60 };
    store.insert_session("sa", &session).await.unwrap();
    assert!(store.drop_tenant(&a).await.unwrap());
    assert!(!store.drop_tenant(&a).await.unwrap(), "gone already");
    assert_eq!(store.client("spa").await.unwrap(), None);
    assert_eq!(store.user(&a, "u-1").await.unwrap(), None);
    assert_eq!(store.code(&a, "code-a").await.unwrap(), None);
    assert_eq!(store.session("sa").await.unwrap(), None);
    assert!(store.is_revoked(&a, "any").await.unwrap(), "a token of a dropped tenant is revoked");
    assert!(matches!(store.insert_code(&a, "c", &code()).await, Err(StoreError::NoTenant)));
    assert_eq!(store.tenants().await.unwrap(), [b]);
    assert_eq!(store.user_by_name(&b, "alice").await.unwrap().unwrap().user_id, "u-2", "globex untouched");
    // The tenant can come back, empty.
    store.insert_user(&user("u-1", "alice")).await.unwrap();
    assert_eq!(store.code(&a, "code-a").await.unwrap(), None);
}

/// PostgreSQL itself keeps tenants apart: a transaction scoped to acme cannot read globex's
/// tables, nor the catalog, even with a hand-written, schema-qualified query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_a_tenant_transaction_any_other_tenants_tables() {
    let Some(server) = test_support::postgres::server() else { return };
    let (pg, _) = PgStore::open_sealed(&server.fresh_database(), &shares()).await.unwrap();
    let pg = Arc::new(pg);
    let store: Arc<dyn Store> = pg.clone();
    with_spa(&store).await;
    store.insert_user(&StoredUser { tenant_id: GLOBEX.into(), ..user("u-2", "bob") }).await.unwrap();
    let globex = TenantKey::parse(GLOBEX).unwrap();
    for query in [
        format!("SELECT username FROM {}.users", globex.schema()),
        format!("SELECT password_hash FROM {}.users WHERE username = 'bob'", globex.schema()),
        "SELECT client_id FROM public.client_directory".to_owned(),
        "SELECT tenant_id FROM public.sessions".to_owned(),
        "SELECT sealed_root FROM public.seal".to_owned(),
        "SELECT private_key FROM public.signing_keys".to_owned(),
    ] {
        let mut tx = pg.tenant_transaction(&acme()).await.unwrap().unwrap();
        let own: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&mut *tx).await.unwrap();
        assert_eq!(own, 1, "acme sees its own user");
        let err = sqlx::query(&query).fetch_all(&mut *tx).await.unwrap_err();
        let code = err.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("42501"), "{query}: {err}");
    }
    store.close().await;
}

/// On SQLite a tenant is a file: acme's connection has no globex table to name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_gives_each_tenant_a_file_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.db");
    let (store, _) = SqliteStore::open_sealed(&path, &shares()).await.unwrap();
    let store = Arc::new(store);
    let dyn_store: Arc<dyn Store> = store.clone();
    with_spa(&dyn_store).await;
    dyn_store.insert_user(&StoredUser { tenant_id: GLOBEX.into(), ..user("u-2", "bob") }).await.unwrap();
    let globex = TenantKey::parse(GLOBEX).unwrap();
    let files = SqliteStore::tenants_dir(&path);
    assert_eq!(files, dir.path().join("identity-tenants"));
    assert!(files.join(acme().file_name()).is_file() && files.join(globex.file_name()).is_file());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&files).unwrap().permissions().mode() & 0o777, 0o700);
    let acme_pool = store.tenant_pool(&acme()).await.unwrap().unwrap();
    let names: Vec<String> =
        sqlx::query_scalar("SELECT username FROM users").fetch_all(&acme_pool).await.unwrap();
    assert_eq!(names, ["alice"], "bob is globex's, in another file");
    let catalog_tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE name IN ('seal', 'signing_keys', 'client_directory')",
    )
    .fetch_all(&acme_pool)
    .await
    .unwrap();
    assert!(catalog_tables.is_empty(), "the catalog is not in a tenant's file: {catalog_tables:?}");
    assert!(dyn_store.drop_tenant(&globex).await.unwrap());
    assert!(!files.join(globex.file_name()).exists(), "dropping the tenant removes its file");
    dyn_store.close().await;
}

/// A migrator of the first `n` migrations in `dir` (what an older release ran).
async fn older_migrator(dir: &str, n: usize) -> (tempfile::TempDir, sqlx::migrate::Migrator) {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let tmp = tempfile::tempdir().unwrap();
    for f in &files[..n] {
        std::fs::copy(f, tmp.path().join(f.file_name().unwrap())).unwrap();
    }
    let migrator = sqlx::migrate::Migrator::new(tmp.path()).await.unwrap();
    (tmp, migrator)
}

/// The seal row `open_sealed` would have written for `shares`.
fn seal_row(shares: &[barrier::Share]) -> String {
    let key = barrier::combine(shares).unwrap();
    let (_, json) = barrier::open_or_create(&key, None).unwrap();
    format!(
        "INSERT INTO seal (id, barrier, sealed_root, created_at) VALUES (1, '{}', '{}', '0')",
        key.barrier(),
        json.unwrap().replace('\'', "''")
    )
}

/// Rows of every shared table of the schema before tenant namespaces (`{far}`: a time to come).
const LEGACY_ROWS: &str = "
INSERT INTO clients (client_id, client_type, secret_hash, scopes, audiences, grant_types, redirect_uris, tenant_id, roles, created_at, post_logout_redirect_uris, display_name)
  VALUES ('spa', 'public', NULL, 'openid', '', 'authorization_code refresh_token', 'https://app/cb', '{acme}', '', 1, 'https://app/bye', 'The app');
INSERT INTO clients (client_id, client_type, secret_hash, scopes, audiences, grant_types, redirect_uris, tenant_id, roles, created_at, post_logout_redirect_uris, display_name)
  VALUES ('globex-svc', 'confidential', 'h', 'kms:encrypt', 'https://kms', 'client_credentials', '', '{globex}', 'service', 1, '', NULL);
INSERT INTO users (user_id, username, password_hash, name, email, tenant_id, roles, created_at) VALUES ('u-1', 'alice', 'h', 'Alice', 'a@x', '{acme}', 'user', 1);
INSERT INTO users (user_id, username, password_hash, name, email, tenant_id, roles, created_at) VALUES ('u-2', 'bob', 'h', 'Bob', 'b@x', '{globex}', 'user', 1);
INSERT INTO sessions (session_hash, user_id, auth_time, expires_at) VALUES ('s-1', 'u-1', 1, {far});
INSERT INTO auth_codes (code_hash, client_id, user_id, redirect_uri, scope, code_challenge, auth_time, expires_at, session_hash)
  VALUES ('c-1', 'spa', 'u-1', 'https://app/cb', 'openid', 'x', 1, {far}, 's-1');
INSERT INTO auth_codes (code_hash, client_id, user_id, redirect_uri, scope, code_challenge, auth_time, expires_at)
  VALUES ('c-cross', 'spa', 'u-2', 'https://app/cb', 'openid', 'x', 1, {far});
INSERT INTO refresh_families (family_id, client_id, user_id, auth_time, created_at, session_hash) VALUES ('f-1', 'spa', 'u-1', 1, {far}, 's-1');
INSERT INTO refresh_tokens (token_hash, family_id, scope, expires_at, access_jti, access_exp) VALUES ('r-1', 'f-1', 'openid', {far}, 'a-1', {far});
INSERT INTO revoked_tokens (jti, expires_at) VALUES ('jti-old', {far});
";

fn legacy_rows() -> String {
    LEGACY_ROWS
        .replace("{acme}", ACME)
        .replace("{globex}", GLOBEX)
        .replace("{far}", &(now() + 3600).to_string())
}

/// What the rows above are after the move, checked twice: once after the first open, once after
/// a second (which must find nothing left to move and lose nothing).
async fn legacy_rows_were_moved(store: &Arc<dyn Store>) {
    let (a, b) = (acme(), TenantKey::parse(GLOBEX).unwrap());
    let spa = store.client("spa").await.unwrap().unwrap();
    assert_eq!(
        (spa.tenant_id.as_str(), spa.display_name.as_deref(), spa.post_logout_redirect_uris.as_slice()),
        (ACME, Some("The app"), ["https://app/bye".to_owned()].as_slice())
    );
    assert_eq!(store.client("globex-svc").await.unwrap().unwrap().tenant_id, GLOBEX);
    assert_eq!(store.user_by_name(&a, "alice").await.unwrap().unwrap().user_id, "u-1");
    assert_eq!(store.user_by_name(&b, "bob").await.unwrap().unwrap().user_id, "u-2");
    assert_eq!(store.user_by_name(&a, "bob").await.unwrap(), None);
    assert_eq!(store.code(&a, "c-1").await.unwrap().unwrap().session_hash.as_deref(), Some("s-1"));
    assert_eq!(store.code(&a, "c-cross").await.unwrap(), None, "a code across tenants is not moved");
    assert_eq!(store.refresh(&a, "r-1").await.unwrap().unwrap().family_id, "f-1");
    assert!(store.is_revoked(&a, "jti-old").await.unwrap() && store.is_revoked(&b, "jti-old").await.unwrap());
    assert_eq!(store.session("s-1").await.unwrap(), None, "old sessions end: their users sign in again");
    let mut tenants = store.tenants().await.unwrap();
    tenants.sort_by(|x, y| x.hex().cmp(y.hex()));
    assert_eq!(tenants, [a, b]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_moves_an_older_databases_rows_into_the_tenants_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.db");
    let shares = shares();
    let (_src, v4) = older_migrator("migrations", 4).await;
    let pool = service_kit::sqlite::open(&path, &v4).await.unwrap();
    sqlx::raw_sql(&seal_row(&shares)).execute(&pool).await.unwrap();
    sqlx::raw_sql(&legacy_rows()).execute(&pool).await.unwrap();
    service_kit::sqlite::close(&pool).await;
    for _ in 0..2 {
        let (store, _) = SqliteStore::open_sealed(&path, &shares).await.unwrap();
        let store: Arc<dyn Store> = Arc::new(store);
        legacy_rows_were_moved(&store).await;
        store.close().await;
    }
    let catalog = service_kit::sqlite::open(&path, &sqlx::migrate!("./migrations")).await.unwrap();
    for table in ["clients", "users", "auth_codes", "refresh_families", "refresh_tokens", "revoked_tokens"] {
        let left: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&catalog).await.unwrap();
        assert_eq!(left, 0, "the catalog's old {table} is emptied");
    }
    catalog.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_moves_an_older_databases_rows_into_the_tenants_schemas() {
    let Some(server) = test_support::postgres::server() else { return };
    let config = server.fresh_database();
    let shares = shares();
    let (_src, v1) = older_migrator("migrations/postgres", 1).await;
    let pool = service_kit::postgres::connect(&config).await.unwrap();
    v1.run(&pool).await.unwrap();
    sqlx::raw_sql(&seal_row(&shares)).execute(&pool).await.unwrap();
    sqlx::raw_sql(&legacy_rows()).execute(&pool).await.unwrap();
    for _ in 0..2 {
        let (store, _) = PgStore::open_sealed(&config, &shares).await.unwrap();
        let store: Arc<dyn Store> = Arc::new(store);
        legacy_rows_were_moved(&store).await;
        store.close().await;
    }
    for table in ["clients", "users", "auth_codes", "refresh_families", "refresh_tokens", "revoked_tokens"] {
        let left: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM public.{table}"))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(left, 0, "the old shared {table} is emptied");
    }
    pool.close().await;
}

/// A tenant's file written by a newer release stops the start, before anything is written to
/// it, with the file named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_a_tenant_file_from_a_newer_release() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.db");
    let shares = shares();
    let (store, _) = SqliteStore::open_sealed(&path, &shares).await.unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    with_spa(&store).await;
    store.close().await;
    let file = SqliteStore::tenants_dir(&path).join(acme().file_name());
    let pool = service_kit::sqlite::open(&file, &sqlx::migrate!("./migrations/tenant/sqlite")).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99, 'from the future', 1, x'00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    service_kit::sqlite::close(&pool).await;
    let before = std::fs::read(&file).unwrap();
    let err = SqliteStore::open_sealed(&path, &shares).await.unwrap_err();
    let chain = format!("{:?}", anyhow_chain(&err));
    assert!(chain.contains("version 99, newer than this binary knows"), "{chain}");
    assert!(chain.contains(&file.display().to_string()), "{chain}");
    assert_eq!(std::fs::read(&file).unwrap(), before, "the file is as the newer release left it");
}

fn anyhow_chain(e: &dyn std::error::Error) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut next = e.source();
    while let Some(s) = next {
        out.push(s.to_string());
        next = s.source();
    }
    out
}

/// SQLite answers revocation lookups from memory: what was revoked before a restart is loaded
/// again, a revocation is seen at once, and a dropped tenant's tokens count as revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_revocations_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.db");
    let shares = shares();
    let (store, _) = SqliteStore::open_sealed(&path, &shares).await.unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    let t = with_spa(&store).await;
    store.revoke(&t, "before", now() + 600).await.unwrap();
    store.revoke(&t, "long-gone", now() - 10).await.unwrap();
    store.close().await;

    let (store, _) = SqliteStore::open_sealed(&path, &shares).await.unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    assert!(store.is_revoked(&t, "before").await.unwrap(), "loaded at start");
    assert!(!store.is_revoked(&t, "long-gone").await.unwrap(), "an expired record is not loaded");
    assert!(!store.is_revoked(&t, "after").await.unwrap());
    store.revoke(&t, "after", now() + 600).await.unwrap();
    assert!(store.is_revoked(&t, "after").await.unwrap(), "seen at once");
    store.insert_family(&t, &family("f", None)).await.unwrap();
    store.insert_refresh(&t, &refresh_token("r", "f", "by-family")).await.unwrap();
    store.revoke_family(&t, "f").await.unwrap();
    assert!(store.is_revoked(&t, "by-family").await.unwrap(), "a family's access tokens too");
    let globex = TenantKey::parse(GLOBEX).unwrap();
    assert!(store.is_revoked(&globex, "x").await.unwrap(), "a tenant that does not exist");
    assert!(store.drop_tenant(&t).await.unwrap());
    assert!(store.is_revoked(&t, "anything").await.unwrap(), "a dropped tenant");
    store.close().await;
}

fn api_key(id: &str, name: &str, owner: &str) -> ApiKeyRow {
    ApiKeyRow {
        key_id: id.to_owned(),
        name: name.to_owned(),
        owner_kind: OwnerKind::Client,
        owner_id: owner.to_owned(),
        // Every byte value, as for signing keys.
        secret_mac: (0..=255u8).collect(),
        previous_mac: None,
        previous_until: None,
        permissions: vec!["kms:encrypt".into(), "kms:decrypt@pool:payments".into()],
        created_at: now(),
        expires_at: None,
        last_used_at: None,
        deleted_at: None,
    }
}

async fn api_keys_rotate_delete_restore_and_purge_by_the_rules(store: Arc<dyn Store>) {
    let a = with_spa(&store).await;
    let b = TenantKey::parse(GLOBEX).unwrap();
    store.insert_client(&StoredClient { tenant_id: GLOBEX.into(), ..client("globex-app") }).await.unwrap();
    let k1 = api_key("11111111111111111111111111111111", "ci", "svc");
    store.insert_api_key(&a, &k1).await.unwrap();
    assert_eq!(store.api_key(&a, &k1.key_id).await.unwrap().as_ref(), Some(&k1), "round trip, bytes intact");
    assert_eq!(store.api_key(&b, &k1.key_id).await.unwrap(), None, "a key is looked up in its tenant only");
    // A name is unique per owner among live keys; another owner may use it.
    match store.insert_api_key(&a, &api_key("22222222222222222222222222222222", "ci", "svc")).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("a second live key named ci: {other:?}"),
    }
    let other_owner =
        ApiKeyRow { owner_kind: OwnerKind::User, ..api_key("33333333333333333333333333333333", "ci", "u-1") };
    store.insert_api_key(&a, &other_owner).await.unwrap();
    assert_eq!(
        store.api_keys(&a, Some((OwnerKind::Client, "svc"))).await.unwrap(),
        std::slice::from_ref(&k1)
    );
    assert_eq!(store.api_keys(&a, None).await.unwrap().len(), 2);

    let stale = ApiKeyChange::Rotate { expected_mac: vec![7; 32], secret_mac: vec![8; 32], previous: None };
    assert!(!store.update_api_key(&a, &k1.key_id, &stale).await.unwrap(), "rotated meanwhile: refused");
    let rotate = ApiKeyChange::Rotate {
        expected_mac: k1.secret_mac.clone(),
        secret_mac: vec![9; 32],
        previous: Some((k1.secret_mac.clone(), now() + 60)),
    };
    assert!(store.update_api_key(&a, &k1.key_id, &rotate).await.unwrap());
    let rotated = store.api_key(&a, &k1.key_id).await.unwrap().unwrap();
    assert_eq!((rotated.secret_mac, rotated.previous_mac), (vec![9; 32], Some(k1.secret_mac.clone())));

    assert!(store.update_api_key(&a, &k1.key_id, &ApiKeyChange::Delete).await.unwrap());
    let deleted = store.api_key(&a, &k1.key_id).await.unwrap().unwrap();
    assert_eq!(
        (deleted.previous_mac, deleted.previous_until),
        (None, None),
        "the overlap ends with a delete"
    );
    assert!(!store.update_api_key(&a, &k1.key_id, &ApiKeyChange::Delete).await.unwrap(), "deleted once");
    assert!(!store.update_api_key(&a, &k1.key_id, &rotate).await.unwrap(), "a deleted key is not rotated");
    // Its name is free again; restoring the old key then conflicts.
    store.insert_api_key(&a, &api_key("44444444444444444444444444444444", "ci", "svc")).await.unwrap();
    match store.update_api_key(&a, &k1.key_id, &ApiKeyChange::Restore).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("restoring over a live name: {other:?}"),
    }
    assert!(
        store.update_api_key(&a, "44444444444444444444444444444444", &ApiKeyChange::Delete).await.unwrap()
    );
    assert!(store.update_api_key(&a, &k1.key_id, &ApiKeyChange::Restore).await.unwrap());
    assert!(!store.update_api_key(&a, &k1.key_id, &ApiKeyChange::Restore).await.unwrap(), "live already");

    // A use is recorded at most once per granularity.
    let used = ApiKeyChange::Used { older_than: now() - 60 };
    assert!(store.update_api_key(&a, &k1.key_id, &used).await.unwrap());
    assert!(!store.update_api_key(&a, &k1.key_id, &used).await.unwrap(), "recorded a moment ago");

    // Purge: only keys deleted before the cutoff.
    assert_eq!(store.purge_api_keys(&a, now() - 3600).await.unwrap(), 0, "deleted just now: kept");
    assert_eq!(store.purge_api_keys(&a, now() + 1).await.unwrap(), 1);
    assert_eq!(store.api_key(&a, "44444444444444444444444444444444").await.unwrap(), None);
    assert!(store.api_key(&a, &k1.key_id).await.unwrap().is_some(), "a live key is never purged");
}

async fn a_sealed_value_is_made_once(store: Arc<dyn Store>) {
    assert_eq!(store.sealed_value("api-key-mac").await.unwrap(), None);
    store.insert_sealed_value("api-key-mac", &[1, 2, 3]).await.unwrap();
    // A second replica's insert loses; both read the first.
    store.insert_sealed_value("api-key-mac", &[4, 5, 6]).await.unwrap();
    assert_eq!(store.sealed_value("api-key-mac").await.unwrap(), Some(vec![1, 2, 3]));
}
