//! The KMS on PostgreSQL as deployments run it: two replicas sharing one database, a database
//! outage and the recovery from it, and the start refusing bad settings by name while writing
//! nothing. (The store suite itself runs on both engines in `keys.rs` and `store.rs`.)
//!
//! Where PostgreSQL is not installed each test prints `SKIPPED:` (and fails under CI).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kms::config::{KmsConfig, RealmConfig, StorageConfig};
use kms::service::RunningKms;
use kms::{KmsError, TenantId};
use serde_json::{Value, json};
use service_kit::db::SealedOpenError;
use service_kit::postgres::PostgresError;
use test_support::{Running, TestDir};

const TENANT: &str = "4a6c2f0e-9b1d-4e3a-8c5f-7d2e1b0a9c38";
const MANAGER: (&str, &str) = ("manager", "m-pass");

/// A test directory with a realm of one key manager of [`TENANT`], and the KMS configuration
/// over `storage` (built once: every replica must read the same unseal share files).
fn setup(storage: StorageConfig) -> (TestDir, KmsConfig) {
    let dir = TestDir::with_demo_pki();
    let realm = dir.write(
        "realms.yml",
        format!(
            "users:\n  - {{username: {}, password: {}, demo: true, tenant: {TENANT}, roles: [key-manager]}}\n",
            MANAGER.0, MANAGER.1
        ),
    );
    let mut config =
        test_support::kms::config(&dir, test_support::kms::auth(vec![RealmConfig::File { path: realm }]));
    config.storage = storage;
    (dir, config)
}

async fn call(kms: &Running<RunningKms>, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    crate::calls::call(kms, MANAGER, method, path, body).await
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_database() {
    let Some(server) = test_support::postgres::server() else { return };
    let (dir, config) = setup(StorageConfig::postgres(server.fresh_database()));
    // Both start at once: one seals the new database, the other opens that seal.
    let (a, b) = tokio::join!(
        test_support::kms::start(&dir, &config, Default::default()),
        test_support::kms::start(&dir, &config, Default::default())
    );
    a.service.kms.ensure_tenant("acme", TenantId(TENANT.parse().unwrap())).await.unwrap();

    // A pool created on one replica is usable on the other, and each decrypts the other's
    // ciphertext.
    let (status, _) =
        call(&a, "POST", "/pools", Some(json!({"name": "shared", "algorithm": "A256GCM"}))).await;
    assert_eq!(status, 201);
    let (status, from_b) =
        call(&b, "POST", "/pools/shared/encrypt", Some(json!({"plaintext": b64(b"from b")}))).await;
    assert_eq!(status, 200, "{from_b}");
    let (status, from_a) =
        call(&a, "POST", "/pools/shared/encrypt", Some(json!({"plaintext": b64(b"from a")}))).await;
    assert_eq!(status, 200, "{from_a}");
    let (status, plain) = call(&a, "POST", "/decrypt", Some(json!({"jwe": from_b["jwe"]}))).await;
    assert_eq!((status, &plain["plaintext"]), (200, &json!(b64(b"from b"))));
    let (status, plain) = call(&b, "POST", "/decrypt", Some(json!({"jwe": from_a["jwe"]}))).await;
    assert_eq!((status, &plain["plaintext"]), (200, &json!(b64(b"from a"))));

    // Concurrent rotations of that pool, split across both replicas, all at once.
    const ROTATIONS: u32 = 24;
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let mut rotations = tokio::task::JoinSet::new();
    for i in 0..ROTATIONS {
        let replica = if i % 2 == 0 { a.clone() } else { b.clone() };
        rotations.spawn(async move { call(&replica, "POST", "/pools/shared/rotate", None).await });
    }
    let mut answered = Vec::new();
    while let Some(result) = rotations.join_next().await {
        let (status, body) = result.unwrap();
        assert_eq!(status, 200, "{body}");
        answered.push(u32::try_from(body["current_version"].as_u64().unwrap()).unwrap());
    }
    let distinct: BTreeSet<u32> = answered.iter().copied().collect();
    assert_eq!(distinct.len(), answered.len(), "two rotations answered the same version: {answered:?}");
    assert_eq!(distinct, (2..=ROTATIONS + 1).collect(), "{answered:?}");
    for replica in [&a, &b] {
        let (status, pool) = call(replica, "GET", "/pools/shared", None).await;
        assert_eq!(status, 200);
        let numbers: Vec<u64> =
            pool["versions"].as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
        assert_eq!(
            numbers,
            (1..=u64::from(ROTATIONS) + 1).collect::<Vec<_>>(),
            "no version lost or duplicated"
        );
    }
    // The newest version, made by whichever replica rotated last, is current on both, and a
    // ciphertext made with it on one decrypts on the other.
    let newest = format!("shared/{}", ROTATIONS + 1);
    for (maker, other) in [(&a, &b), (&b, &a)] {
        let (_, sealed) =
            call(maker, "POST", "/pools/shared/encrypt", Some(json!({"plaintext": b64(b"late")}))).await;
        assert_eq!(sealed["kid"], json!(newest), "{sealed}");
        let (status, plain) = call(other, "POST", "/decrypt", Some(json!({"jwe": sealed["jwe"]}))).await;
        assert_eq!((status, &plain["plaintext"]), (200, &json!(b64(b"late"))), "{sealed}");
    }
    let (Ok(a), Ok(b)) = (std::sync::Arc::try_unwrap(a), std::sync::Arc::try_unwrap(b)) else {
        panic!("replicas still shared")
    };
    a.service.shutdown().await.unwrap();
    b.service.shutdown().await.unwrap();
}

/// Polls `readyz` on the admin listener until `done(status, body)` or the deadline.
async fn readyz_until(
    dir: &TestDir,
    kms: &RunningKms,
    deadline: Duration,
    done: impl Fn(u16, &Value) -> bool,
) -> (u16, Value) {
    let admin = dir
        .client(test_support::kms::HOST, kms.server.admin_addr)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let url = format!("https://{}:{}/readyz", test_support::kms::HOST, kms.server.admin_addr.port());
    let start = Instant::now();
    loop {
        let response = admin.get(&url).send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if done(status, &body) {
            return (status, body);
        }
        assert!(start.elapsed() < deadline, "readyz never got there: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// While the database is down, requests that need it get 503 `database-unavailable` quickly and
/// `readyz` names the database; once it is back the service recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_a_quick_503_and_the_service_recovers_by_itself() {
    let Some(server) = test_support::postgres::dedicated() else { return };
    let (dir, config) = setup(StorageConfig::postgres(server.fresh_database()));
    let kms = test_support::kms::start(&dir, &config, Default::default()).await;
    kms.service.kms.ensure_tenant("acme", TenantId(TENANT.parse().unwrap())).await.unwrap();
    assert_eq!(call(&kms, "POST", "/pools", Some(json!({"name": "p", "algorithm": "A256GCM"}))).await.0, 201);
    readyz_until(&dir, &kms.service, Duration::from_secs(10), |s, _| s == 200).await;

    server.cluster().stop(false).unwrap();
    let started = Instant::now();
    let (status, problem) = call(&kms, "GET", "/pools", None).await;
    let took = started.elapsed();
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["type"], "urn:demo:problem:database-unavailable", "{problem}");
    assert!(took < Duration::from_secs(10), "a request during the outage took {took:?}");
    let (status, report) = readyz_until(&dir, &kms.service, Duration::from_secs(15), |s, body| {
        s == 503 && body["checks"]["database"]["state"] == "failing"
    })
    .await;
    assert_eq!(status, 503);
    assert!(report["checks"]["database"]["reason"].as_str().unwrap().contains("PostgreSQL"), "{report}");
    // Rotation (a write) fails the same way, and says when to come back.
    let url = format!(
        "https://{}:{}/api/v1/pools/p/rotate",
        test_support::kms::HOST,
        kms.service.server.addr.port()
    );
    let response = kms.client.post(url).basic_auth(MANAGER.0, Some(MANAGER.1)).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("retry-after").is_some());
    assert_eq!(response.headers()["content-type"], "application/problem+json");

    server.cluster().start().unwrap();
    readyz_until(&dir, &kms.service, Duration::from_secs(30), |s, _| s == 200).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = call(&kms, "POST", "/pools/p/rotate", None).await;
        if status == 200 {
            assert_eq!(body["current_version"], 2, "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    kms.service.shutdown().await.unwrap();
}

/// A wrong password, a server that is not there, a database written by a newer release: each
/// refused at start with its own error, and nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_database_settings_are_refused_by_name_and_write_nothing() {
    let Some(server) = test_support::postgres::server() else { return };
    let shares = barrier::new_shares(3, 5).unwrap();
    let nothing_written = |database: &str| {
        server.psql(database, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            + &server.psql(database, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tenant_%'")
    };

    // The password file holds another password.
    let mut config = server.fresh_database();
    let wrong = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(wrong.path(), "not-the-password\n").unwrap();
    config.password_file = wrong.path().to_owned();
    let err = kms::Kms::open_postgres(&config, &shares[..3]).await.unwrap_err();
    assert!(matches!(err, KmsError::Open(SealedOpenError::Postgres(PostgresError::Auth { .. }))), "{err:?}");
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(text.contains("refused the password") && !text.contains("not-the-password"), "{text}");
    assert_eq!(nothing_written(&config.database), "00");

    // Nothing listens on the port.
    let mut config = server.fresh_database();
    config.port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let err = kms::Kms::open_postgres(&config, &shares[..3]).await.unwrap_err();
    assert!(
        matches!(err, KmsError::Open(SealedOpenError::Postgres(PostgresError::Unreachable { .. }))),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());

    // A database whose newest migration this binary does not know: first a used one…
    let config = server.fresh_database();
    let kms = kms::Kms::open_postgres(&config, &shares[..3]).await.unwrap();
    kms.ensure_tenant("acme", TenantId::random()).await.unwrap();
    kms.close().await;
    server.psql(
        &config.database,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', true, '\\x00', 0)",
    );
    let state = || {
        server.psql(
            &config.database,
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM _sqlx_migrations",
        ) + "|"
            + &server.psql(&config.database, "SELECT string_agg(sealed_root, ',') FROM seal")
    };
    let before = state();
    let err = kms::Kms::open_postgres(&config, &shares[1..4]).await.unwrap_err();
    assert!(
        matches!(&err, KmsError::Open(SealedOpenError::SchemaTooNew(too_new)) if too_new.found == 9999),
        "{err:?}"
    );
    assert!(std::error::Error::source(&err).unwrap().to_string().contains("newer"), "{err}");
    assert_eq!(state(), before);
    // …then an empty one that only records the future migration: no table is made, no seal.
    let config = server.fresh_database();
    server.psql(
        &config.database,
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, \
             checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL); \
         ALTER TABLE _sqlx_migrations OWNER TO demo; \
         INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from the future', true, '\\x00', 0)",
    );
    let err = kms::Kms::open_postgres(&config, &shares[..3]).await.unwrap_err();
    assert!(matches!(err, KmsError::Open(SealedOpenError::SchemaTooNew(_))), "{err:?}");
    assert_eq!(nothing_written(&config.database), "10", "only the migrations table, which was there");
}

/// A tenant schema written by a newer release is refused the same way, before any schema is
/// migrated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_schema_newer_than_the_binary_is_refused() {
    let Some(server) = test_support::postgres::server() else { return };
    let shares = barrier::new_shares(3, 5).unwrap();
    let config = server.fresh_database();
    let kms = kms::Kms::open_postgres(&config, &shares[..3]).await.unwrap();
    let tenant = kms.ensure_tenant("acme", TenantId::random()).await.unwrap();
    kms.close().await;
    let schema = service_kit::db::TenantKey::parse(&tenant.id.to_string()).unwrap().schema();
    server.psql(
        &config.database,
        &format!(
            "INSERT INTO {schema}._sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from the future', true, '\\x00', 0)"
        ),
    );
    let err = kms::Kms::open_postgres(&config, &shares[..3]).await.unwrap_err();
    assert!(matches!(&err, KmsError::Open(SealedOpenError::SchemaTooNew(t)) if t.found == 9999), "{err:?}");
}
