//! Identity on PostgreSQL when the database misbehaves: bad input at start (a wrong password
//! file, an unreachable server, a schema newer than the binary) is a named error that writes
//! nothing; an outage while running is answered 503 in bounded time, `readyz` names the
//! `database`, and the service recovers by itself when the server is back. Skipped loudly
//! where PostgreSQL is not installed (a failure under CI); the unreachable case needs no
//! server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use identity::config::{IdentityConfig, Storage, Tokens};
use identity::service::StartError;
use serde_json::Value;
use service_kit::db::SealedOpenError;
use service_kit::postgres::{PostgresConfig, PostgresError};
use test_support::TestDir;

use crate::browser::{Browser, authorize_query, login_for_code, pkce};
use crate::flows::{exchange, refresh};
use crate::{ALICE_PASSWORD, Env, OTHER_SECRET, TENANTS, TEST_SEED, seeded_config, start_config};

/// Identity over `pg` with the tests' seed, in a fresh directory.
async fn start_on(pg: PostgresConfig) -> Result<Env, StartError> {
    let dir = Arc::new(TestDir::with_demo_pki());
    let config = IdentityConfig {
        storage: Storage::postgres(pg),
        ..seeded_config(&dir, TEST_SEED, TENANTS, Tokens::default())
    };
    start_config(dir, &config).await
}

fn public_tables(server: &test_support::postgres::Server, database: &str) -> String {
    server.psql(database, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_file_is_a_named_error_and_writes_nothing() {
    let Some(server) = test_support::postgres::server() else { return };
    let mut pg = server.fresh_database();
    let dir = tempfile::tempdir().unwrap();
    pg.password_file = dir.path().join("postgres_password");
    std::fs::write(&pg.password_file, "not-the-password\n").unwrap();
    let err = start_on(pg.clone()).await.unwrap_err();
    assert!(
        matches!(&err, StartError::Sealed(SealedOpenError::Postgres(PostgresError::Auth { target }))
            if *target == pg.target()),
        "{err:?}"
    );
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(text.contains("refused the password") && !text.contains("not-the-password"), "{text}");
    assert_eq!(public_tables(&server, &pg.database), "0", "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_named_error_in_bounded_time() {
    // A port nobody listens on (bound, then freed).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("postgres_password");
    std::fs::write(&password_file, "pw\n").unwrap();
    let pg = PostgresConfig {
        host: "127.0.0.1".into(),
        port,
        database: "identity".into(),
        user: "demo".into(),
        password_file,
        max_connections: 2,
        acquire_timeout: Duration::from_secs(2),
        statement_timeout: Duration::from_secs(5),
    };
    let started = Instant::now();
    let err = start_on(pg.clone()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(
        matches!(&err, StartError::Sealed(SealedOpenError::Postgres(PostgresError::Unreachable { target, .. }))
            if *target == pg.target()),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused_and_nothing_is_written() {
    let Some(server) = test_support::postgres::server() else { return };
    // An empty database whose migration table says a newer release ran: no seal is made, no
    // migration applied.
    let pg = server.fresh_database();
    server.psql(
        &pg.database,
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
         installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, \
         checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL); \
         ALTER TABLE _sqlx_migrations OWNER TO demo; \
         INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99, 'from the future', true, '\\x00', 0);",
    );
    let err = start_on(pg.clone()).await.unwrap_err();
    assert!(
        matches!(&err, StartError::Sealed(SealedOpenError::SchemaTooNew(t)) if t.found == 99 && t.known == 3),
        "{err:?}"
    );
    assert_eq!(public_tables(&server, &pg.database), "1", "only _sqlx_migrations");
    assert_eq!(server.psql(&pg.database, "SELECT count(*) FROM _sqlx_migrations").trim(), "1");

    // A database this binary made, then touched by a newer release: refused, left as it was.
    let pg = server.fresh_database();
    let env = start_on(pg.clone()).await.unwrap();
    env.identity.shutdown().await.unwrap();
    server.psql(
        &pg.database,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (4, 'newer', true, '\\x00', 0)",
    );
    let snapshot = "SELECT (SELECT string_agg(version::text, ',' ORDER BY version) FROM _sqlx_migrations) \
                    || ' ' || (SELECT count(*) FROM seal) \
                    || ' ' || (SELECT string_agg(kid, ',' ORDER BY kid) FROM signing_keys)";
    let before = server.psql(&pg.database, snapshot);
    assert!(before.starts_with("1,2,3,4 1 "), "{before}");
    let err = start_on(pg.clone()).await.unwrap_err();
    assert!(matches!(&err, StartError::Sealed(SealedOpenError::SchemaTooNew(t)) if t.found == 4), "{err:?}");
    assert_eq!(server.psql(&pg.database, snapshot), before, "the database is as it was");
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let resp = client.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Polls `readyz` until `want` answers, at most 30 s; returns the last body.
async fn readyz_until(admin: &reqwest::Client, url: &str, want: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get(admin, url).await;
        if status == want {
            return body;
        }
        assert!(Instant::now() < deadline, "readyz never answered {want}: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs a blocking `pg_ctl` call off the runtime's worker.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_answered_503_in_bounded_time_and_heals_by_itself() {
    let Some(server) = test_support::postgres::dedicated() else { return };
    let env = start_on(server.fresh_database()).await.unwrap();
    let admin = env
        .dir
        .client(test_support::identity::HOST, env.identity.server.admin_addr)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let readyz =
        format!("https://{}:{}/readyz", test_support::identity::HOST, env.identity.server.admin_addr.port());
    readyz_until(&admin, &readyz, 200).await;
    let (verifier, challenge) = pkce();
    let code = login_for_code(
        &mut Browser::default(),
        &env,
        &authorize_query(&challenge, &[]),
        ("alice", ALICE_PASSWORD),
    )
    .await;
    let (status, tokens) = exchange(&env, &code, Some(&verifier)).await;
    assert_eq!(status, 200, "{tokens}");
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let other_app = [("grant_type", "client_credentials")];

    blocking(|| server.cluster().stop(false)).unwrap();
    // Token requests that need the database (a refresh; a client whose secret is not in the
    // credential cache): 503 in the OAuth error shape, in bounded time.
    let started = Instant::now();
    let (status, body) = refresh(&env, refresh_token).await;
    let took = started.elapsed();
    assert_eq!((status, body["error"].as_str()), (503, Some("temporarily_unavailable")), "{body}");
    assert!(took < Duration::from_secs(10), "the refresh grant took {took:?}");
    let started = Instant::now();
    let (status, body) = env.post("/token", Some(("other-app", OTHER_SECRET)), &other_app).await;
    let took = started.elapsed();
    assert_eq!((status, body["error"].as_str()), (503, Some("temporarily_unavailable")), "{body}");
    assert!(took < Duration::from_secs(10), "client_credentials took {took:?}");
    // The sign-in page needs the client's row: a 503 page, not a 500.
    let page = Browser::default().get(&env, &authorize_query(&challenge, &[])).await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.body.contains("cannot reach its database"), "{}", page.body);
    let body = readyz_until(&admin, &readyz, 503).await;
    assert_eq!(body["checks"]["database"]["state"], "failing", "{body}");
    assert_eq!(body["checks"]["signing_keys"]["state"], "ready", "{body}");

    blocking(|| server.cluster().start()).unwrap();
    readyz_until(&admin, &readyz, 200).await;
    // The refresh token was never consumed: the failed request stopped before that.
    let (status, body) = refresh(&env, refresh_token).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = env.post("/token", Some(("other-app", OTHER_SECRET)), &other_app).await;
    assert_eq!(status, 200, "{body}");
    env.identity.shutdown().await.unwrap();
}
