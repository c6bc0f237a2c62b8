//! Two Identity replicas on one PostgreSQL database, raced for real: both start at once (one
//! seal, one signing key per stage, identical JWKS), and the same refresh token or
//! authorization code presented to both at once has exactly one winner, the loser's
//! presentation revoking what the winner got — as on one replica. Each race runs `ROUNDS`
//! times. Skipped loudly where PostgreSQL is not installed (a failure under CI).

use std::sync::Arc;

use identity::config::{IdentityConfig, Storage, Tokens};
use identity::signing::SigningKeys;
use identity::store::{PgStore, Store};
use serde_json::Value;
use test_support::TestDir;

use crate::browser::{Browser, authorize_query, login_for_code, pkce};
use crate::flows::{active, exchange, refresh};
use crate::{ALICE_PASSWORD, Env, TENANTS, TEST_SEED, seeded_config, start_config};

const ROUNDS: usize = 20;

/// Two replicas over one fresh database, started at once with the same configuration (one
/// PKI, the same shares and seed); `None` where PostgreSQL is not installed.
async fn replicas() -> Option<(Env, Env, Arc<test_support::postgres::Server>, String)> {
    let server = test_support::postgres::server()?;
    let pg = server.fresh_database();
    let database = pg.database.clone();
    let dir = Arc::new(TestDir::with_demo_pki());
    let config = IdentityConfig {
        storage: Storage::postgres(pg),
        ..seeded_config(&dir, TEST_SEED, TENANTS, Tokens::default())
    };
    let (a, b) = tokio::join!(start_config(dir.clone(), &config), start_config(dir.clone(), &config));
    Some((a.unwrap(), b.unwrap(), server, database))
}

async fn jwks(env: &Env) -> Value {
    let resp = env.client.get(env.url("/jwks")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_starting_at_once_share_one_seal_and_one_signing_key() {
    let Some((a, b, server, database)) = replicas().await else { return };
    let (ja, jb) = (jwks(&a).await, jwks(&b).await);
    assert_eq!(ja, jb, "both replicas publish the same keys");
    assert_eq!(ja["keys"].as_array().unwrap().len(), 2, "current and next: {ja}");
    let current = a.identity.keys.current_kid().unwrap();
    assert_eq!(b.identity.keys.current_kid(), Some(current.clone()));
    let stages = server.psql(&database, "SELECT state FROM signing_keys ORDER BY state");
    assert_eq!(stages.split_whitespace().collect::<Vec<_>>(), ["current", "next"]);
    assert_eq!(server.psql(&database, "SELECT count(*) FROM seal").trim(), "1");
    // Both seeded at once: one tenant, each user and client exactly once, in the tenant's schema.
    let acme = identity::store::TenantKey::parse("0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10").unwrap().schema();
    assert_eq!(server.psql(&database, "SELECT count(*) FROM tenants").trim(), "1");
    assert_eq!(server.psql(&database, &format!("SELECT count(*) FROM {acme}.users")).trim(), "2");
    assert_eq!(server.psql(&database, &format!("SELECT count(*) FROM {acme}.clients")).trim(), "4");
    assert_eq!(server.psql(&database, "SELECT count(*) FROM client_directory").trim(), "4");
    // A token signed at one replica is good at the other.
    let token = a.token(Some("kms:encrypt")).await;
    assert!(active(&b, &token).await);
    a.identity.shutdown().await.unwrap();
    b.identity.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_key_initialisation_raced_on_an_empty_database_keeps_one_key_per_stage() {
    let Some(server) = test_support::postgres::server() else { return };
    for round in 0..ROUNDS {
        let pg = server.fresh_database();
        let shares: Vec<barrier::Share> = barrier::new_shares(3, 5).unwrap().into_iter().take(3).collect();
        let init = || async {
            let (store, root) = PgStore::open_sealed(&pg, &shares).await.unwrap();
            let store: Arc<dyn Store> = Arc::new(store);
            let keys = SigningKeys::load_or_init(store.clone(), Arc::new(root)).await.unwrap();
            store.close().await;
            keys
        };
        // Two pools, two transactions at a time: the database sees a real race.
        let (x, y) = tokio::join!(init(), init());
        assert_eq!(x.current_kid(), y.current_kid(), "round {round}");
        assert_eq!(x.jwks(), y.jwks(), "round {round}");
        let counts = server
            .psql(&pg.database, "SELECT state, count(*) FROM signing_keys GROUP BY state ORDER BY state");
        assert_eq!(counts.split_whitespace().collect::<Vec<_>>(), ["current|1", "next|1"], "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_at_one_replica_reaches_the_other_by_its_periodic_reload() {
    let Some(server) = test_support::postgres::server() else { return };
    let pg = server.fresh_database();
    let shares: Vec<barrier::Share> = barrier::new_shares(3, 5).unwrap().into_iter().take(3).collect();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let (store, root) = PgStore::open_sealed(&pg, &shares).await.unwrap();
        let store: Arc<dyn Store> = Arc::new(store);
        replicas.push(Arc::new(SigningKeys::load_or_init(store, Arc::new(root)).await.unwrap()));
    }
    let (x, y) = (&replicas[0], &replicas[1]);
    let reload = SigningKeys::spawn_reload(y.clone(), std::time::Duration::from_millis(200));
    let before = y.current_kid().unwrap();
    x.rotate(600).await.unwrap();
    let rotated = x.current_kid().unwrap();
    assert_ne!(rotated, before);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while y.current_kid().as_ref() != Some(&rotated) {
        assert!(std::time::Instant::now() < deadline, "the other replica never picked up the rotation");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(y.jwks(), x.jwks(), "next, current and the retired key, as at the rotating replica");
    assert_eq!(y.jwks()["keys"].as_array().unwrap().len(), 3);
    reload.abort();
}

/// Alice signs in at `env` and gets a code.
async fn code_at(env: &Env, browser: &mut Browser) -> (String, String) {
    let (verifier, challenge) = pkce();
    let code =
        login_for_code(browser, env, &authorize_query(&challenge, &[]), ("alice", ALICE_PASSWORD)).await;
    (code, verifier)
}

/// Which of two answers won (200) and which lost (400 `invalid_grant`); panics unless exactly one
/// of each.
fn one_winner<'a>(round: usize, x: &'a (u16, Value), y: &'a (u16, Value)) -> &'a Value {
    let (winner, loser) = match (x.0, y.0) {
        (200, _) => (x, y),
        (_, 200) => (y, x),
        _ => panic!("round {round}: no presentation won: {x:?} / {y:?}"),
    };
    assert_eq!(
        (loser.0, loser.1["error"].as_str()),
        (400, Some("invalid_grant")),
        "round {round}: exactly one presentation wins; the other is refused: {winner:?} / {loser:?}"
    );
    &winner.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_raced_at_two_replicas_rotates_once_and_revokes_its_family() {
    let Some((a, b, _server, _)) = replicas().await else { return };
    for round in 0..ROUNDS {
        let (code, verifier) = code_at(&a, &mut Browser::default()).await;
        let (status, tokens) = exchange(&a, &code, Some(&verifier)).await;
        assert_eq!(status, 200, "{tokens}");
        let token = tokens["refresh_token"].as_str().unwrap();

        let (x, y) = tokio::join!(refresh(&a, token), refresh(&b, token));
        let won = one_winner(round, &x, &y);
        // The loser was treated as reuse: the family is revoked, the winner's new tokens with it.
        let new_refresh = won["refresh_token"].as_str().unwrap();
        let new_access = won["access_token"].as_str().unwrap();
        for env in [&a, &b] {
            let (status, body) = refresh(env, new_refresh).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some("invalid_grant")),
                "round {round}: {body}"
            );
            assert!(!active(env, new_access).await, "round {round}: the winner's access token is revoked");
        }
        assert!(!active(&b, tokens["access_token"].as_str().unwrap()).await, "round {round}");
    }
    a.identity.shutdown().await.unwrap();
    b.identity.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorization_code_raced_at_two_replicas_is_exchanged_once() {
    let Some((a, b, _server, _)) = replicas().await else { return };
    for round in 0..ROUNDS {
        let (code, verifier) = code_at(&a, &mut Browser::default()).await;
        let (x, y) = tokio::join!(exchange(&a, &code, Some(&verifier)), exchange(&b, &code, Some(&verifier)));
        let won = one_winner(round, &x, &y);
        // The existing code-reuse rule: the second presentation revokes what the first issued.
        let access = won["access_token"].as_str().unwrap();
        let refresh_token = won["refresh_token"].as_str().unwrap();
        for env in [&a, &b] {
            assert!(!active(env, access).await, "round {round}: the winner's access token is revoked");
            let (status, body) = refresh(env, refresh_token).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some("invalid_grant")),
                "round {round}: {body}"
            );
        }
    }
    a.identity.shutdown().await.unwrap();
    b.identity.shutdown().await.unwrap();
}
