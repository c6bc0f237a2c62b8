//! `POST /api/v1/users` over HTTPS on both engines: tenant admins create database-realm users
//! in their own tenant, granting only roles they may grant; the new users sign in through the
//! database realm, after the file realm in the configured order.

use kms::TenantId;
use kms::config::RealmConfig;
use kms::service::RunningKms;
use serde_json::{Value, json};
use test_support::{Running, TestDir};

use crate::calls::call;
use crate::engines::{Backend, on_both_engines};

on_both_engines!(tenant_admins_create_users_in_their_own_tenant);

const TENANT_A: &str = "1c9e5a7b-3d2f-4b8e-a6c1-0f4d2e9b7a53";
const TENANT_B: &str = "8e2d4f6a-1b3c-4d5e-9f7a-2c4b6d8e0a1f";
const PASSWORD: &str = "correct horse battery";

async fn start(
    storage: kms::config::StorageConfig,
    realms: impl Fn(std::path::PathBuf) -> Vec<RealmConfig>,
) -> (TestDir, Running<RunningKms>) {
    let dir = TestDir::with_demo_pki();
    let realm = dir.write(
        "realms.yml",
        format!(
            "users:
  - {{username: a-admin, password: aa-pass, demo: true, tenant: {TENANT_A}, roles: [tenant-admin]}}
  - {{username: b-admin, password: ba-pass, demo: true, tenant: {TENANT_B}, roles: [tenant-admin]}}
  - {{username: manager, password: m-pass, demo: true, tenant: {TENANT_A}, roles: [key-manager]}}
"
        ),
    );
    let mut config = test_support::kms::config(&dir, test_support::kms::auth(realms(realm)));
    config.storage = storage;
    let kms = test_support::kms::start(&dir, &config, Default::default()).await;
    for (name, id) in [("a", TENANT_A), ("b", TENANT_B)] {
        kms.service.kms.ensure_tenant(name, TenantId(id.parse().unwrap())).await.unwrap();
    }
    (dir, kms)
}

async fn tenant_admins_create_users_in_their_own_tenant(backend: Backend) {
    let both = |file| vec![RealmConfig::File { path: file }, RealmConfig::Database];
    let (_dir, kms) = start(backend.storage.clone(), both).await;
    let a_admin = ("a-admin", "aa-pass");
    let create =
        |username: &str, roles: Value| json!({"username": username, "password": PASSWORD, "roles": roles});

    let (status, user) =
        call(&kms, a_admin, "POST", "/users", Some(create("ops-alice", json!(["key-manager", "auditor"]))))
            .await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(
        user,
        json!({"username": "ops-alice", "tenant": TENANT_A, "roles": ["key-manager", "auditor"]})
    );
    // The new user signs in through the database realm, in the admin's tenant, with its roles.
    let alice = ("ops-alice", PASSWORD);
    let (status, me) = call(&kms, alice, "GET", "/whoami", None).await;
    assert_eq!(
        (status, &me["tenant"], &me["roles"]),
        (200, &json!(TENANT_A), &json!(["key-manager", "auditor"])),
        "{me}"
    );
    let (status, _) =
        call(&kms, alice, "POST", "/pools", Some(json!({"name": "alices", "algorithm": "A256GCM"}))).await;
    assert_eq!(status, 201);
    assert_eq!(
        call(&kms, ("manager", "m-pass"), "GET", "/pools/alices", None).await.0,
        200,
        "the same tenant's pool"
    );
    assert_eq!(call(&kms, ("ops-alice", "wrong password!"), "GET", "/whoami", None).await.0, 401);

    // Another tenant's admin makes users of its own tenant, who do not see tenant A's pools.
    let (status, bob) = call(
        &kms,
        ("b-admin", "ba-pass"),
        "POST",
        "/users",
        Some(create("ops-bob", json!(["tenant-admin"]))),
    )
    .await;
    assert_eq!((status, &bob["tenant"]), (201, &json!(TENANT_B)), "{bob}");
    assert_eq!(call(&kms, ("ops-bob", PASSWORD), "GET", "/pools/alices", None).await.0, 404);

    // Refused: a name taken in the database realm or in the file realm (it would shadow or be
    // shadowed), a caller that is not a tenant admin, a role the caller may not grant.
    for (caller, body, want, kind) in [
        (a_admin, create("ops-alice", json!(["user"])), 409, "conflict"),
        (a_admin, create("manager", json!(["user"])), 409, "conflict"),
        (("manager", "m-pass"), create("ops-carol", json!(["user"])), 403, "forbidden"),
        (alice, create("ops-carol", json!(["user"])), 403, "forbidden"),
        (a_admin, create("ops-carol", json!(["admin"])), 403, "forbidden"),
        (a_admin, create("a b", json!(["user"])), 400, "bad-request"),
        (a_admin, create("", json!(["user"])), 400, "bad-request"),
        (
            a_admin,
            json!({"username": "ops-carol", "password": "short", "roles": ["user"]}),
            400,
            "bad-request",
        ),
        (a_admin, create("ops-carol", json!([])), 400, "bad-request"),
        (a_admin, create("ops-carol", json!(["wizard"])), 422, "unprocessable"),
        (
            a_admin,
            json!({"username": "ops-carol", "password": PASSWORD, "roles": ["user"], "tenant": TENANT_B}),
            422,
            "unprocessable",
        ),
    ] {
        let (status, problem) = call(&kms, caller, "POST", "/users", Some(body.clone())).await;
        assert_eq!(status, want, "{body}: {problem}");
        assert_eq!(problem["type"], format!("urn:demo:problem:{kind}"), "{body}: {problem}");
    }
    assert_eq!(
        call(&kms, ("ops-carol", PASSWORD), "GET", "/whoami", None).await.0,
        401,
        "no refused user was made"
    );
    let Running { service, .. } = kms;
    service.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_a_database_realm_no_user_is_made() {
    let backend = Backend::sqlite();
    let (_dir, kms) = start(backend.storage.clone(), |file| vec![RealmConfig::File { path: file }]).await;
    let body = json!({"username": "ops-alice", "password": PASSWORD, "roles": ["user"]});
    let (status, problem) = call(&kms, ("a-admin", "aa-pass"), "POST", "/users", Some(body)).await;
    assert_eq!((status, &problem["type"]), (409, &json!("urn:demo:problem:no-database-realm")), "{problem}");
    assert!(kms.service.kms.store().user("ops-alice").await.unwrap().is_none());
}
