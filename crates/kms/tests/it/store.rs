//! The store itself, on both engines (one suite, `engines::on_both_engines!`): tenants and
//! their namespaces (created with the tenant, dropped with it), database-realm users, and the
//! isolation the database enforces between tenants' namespaces; plus SQLite's one-time move of
//! keys an older version kept in the catalog.

use std::sync::Arc;

use kms::crypto::Algorithm;
use kms::model::{Pool, StoredUser, StoredVersion, Tenant};
use kms::store::{PostgresStore, SqliteStore, Store, StoreError};
use kms::{PoolName, TenantId};
use service_kit::db::TenantKey;

use crate::engines::{Backend, Engine, on_both_engines};

on_both_engines!(
    tenants_are_created_found_and_refused_twice,
    dropping_a_tenant_removes_its_keys_users_and_namespace,
    an_unknown_tenant_has_no_namespace,
    database_realm_users_round_trip,
    a_tenants_connection_cannot_reach_another_tenants_tables,
);

/// The concrete store of `backend` (the trait object and, for the isolation test, the type).
enum Opened {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PostgresStore>),
}

impl Opened {
    async fn open(backend: &Backend) -> Self {
        let shares = barrier::new_shares(3, 5).unwrap();
        match backend.engine {
            Engine::Sqlite => Self::Sqlite(Arc::new(
                SqliteStore::open_sealed(backend.sqlite_path(), &shares[..3]).await.unwrap().0,
            )),
            Engine::Postgres => Self::Postgres(Arc::new(
                PostgresStore::open_sealed(backend.postgres_config(), &shares[..3]).await.unwrap().0,
            )),
        }
    }

    fn store(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(s) => s.clone(),
            Self::Postgres(s) => s.clone(),
        }
    }
}

fn tenant(name: &str) -> Tenant {
    Tenant { id: TenantId::random(), name: name.to_owned(), created_at: "2026-12-01T00:00:00Z".to_owned() }
}

fn pool(tenant: &Tenant, name: &str) -> Pool {
    Pool {
        tenant: tenant.id,
        name: PoolName::new(name).unwrap(),
        algorithm: Algorithm::A256Gcm,
        created_at: "2026-12-01T00:00:00Z".to_owned(),
    }
}

/// A version whose "wrapped material" is a marker: the store neither wraps nor unwraps.
fn version(n: u32, marker: &[u8]) -> StoredVersion {
    StoredVersion {
        version: n,
        enabled: true,
        wrapped: marker.to_vec(),
        created_at: "2026-12-01T00:00:00Z".into(),
    }
}

async fn tenants_are_created_found_and_refused_twice(backend: Backend) {
    let store = Opened::open(&backend).await.store();
    let acme = tenant("acme");
    store.create_tenant(&acme).await.unwrap();
    assert_eq!(store.tenant(acme.id).await.unwrap(), Some(acme.clone()));
    assert_eq!(store.tenant_by_name("acme").await.unwrap(), Some(acme.clone()));
    assert_eq!(store.tenant_by_name("globex").await.unwrap(), None);
    // The same name, or the same id, again: a conflict that names the tenant, and nothing made.
    let err = store.create_tenant(&Tenant { id: TenantId::random(), ..acme.clone() }).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(what) if what.contains("acme")), "{err:?}");
    let err = store.create_tenant(&Tenant { name: "acme-2".into(), ..acme.clone() }).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.tenant_by_name("acme-2").await.unwrap(), None);
    store.close().await;
}

async fn dropping_a_tenant_removes_its_keys_users_and_namespace(backend: Backend) {
    let opened = Opened::open(&backend).await;
    let store = opened.store();
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    for t in [&acme, &globex] {
        store.create_tenant(t).await.unwrap();
        store.create_pool(&pool(t, "p"), &version(1, t.name.as_bytes())).await.unwrap();
    }
    let user = StoredUser {
        username: "acme-admin".into(),
        password_hash: "$pbkdf2-sha256$unused".into(),
        tenant: acme.id,
        roles: vec!["tenant-admin".into()],
    };
    store.create_user(&user).await.unwrap();
    let key = TenantKey::parse(&acme.id.to_string()).unwrap();

    assert!(store.drop_tenant(acme.id).await.unwrap());
    assert_eq!(store.tenant(acme.id).await.unwrap(), None);
    assert_eq!(store.user("acme-admin").await.unwrap(), None, "its users go with it");
    assert!(store.pools(acme.id).await.unwrap().is_empty());
    match &opened {
        Opened::Sqlite(s) => {
            assert!(!s.tenant_path(acme.id).unwrap().exists(), "the tenant's file is removed")
        }
        Opened::Postgres(_) => {
            let database = &backend.postgres_config().database;
            let left = backend
                .exec(&format!(
                    "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = '{}') || ',' || \
                            (SELECT count(*) FROM pg_roles WHERE rolname = '{}')",
                    key.schema(),
                    key.role(&service_kit::db::Ident::new(database).unwrap())
                ))
                .await;
            assert_eq!(left, "0,0", "the schema and the role are dropped");
        }
    }
    // The other tenant is untouched; a second drop finds nothing.
    assert_eq!(
        store.version(globex.id, &PoolName::new("p").unwrap(), 1).await.unwrap().unwrap().wrapped,
        b"globex"
    );
    assert!(!store.drop_tenant(acme.id).await.unwrap());
    // The id can be used again, and starts empty.
    store.create_tenant(&acme).await.unwrap();
    assert!(store.pools(acme.id).await.unwrap().is_empty());
    store.close().await;
}

async fn an_unknown_tenant_has_no_namespace(backend: Backend) {
    let opened = Opened::open(&backend).await;
    let store = opened.store();
    let ghost = tenant("ghost");
    let p = PoolName::new("p").unwrap();
    assert_eq!(store.pool(ghost.id, &p).await.unwrap(), None);
    assert!(store.pools(ghost.id).await.unwrap().is_empty());
    assert!(store.versions(ghost.id, &p).await.unwrap().is_empty());
    assert!(!store.set_enabled(ghost.id, &p, 1, false).await.unwrap());
    let err = store.create_pool(&pool(&ghost, "p"), &version(1, b"x")).await.unwrap_err();
    assert!(matches!(err, StoreError::NoTenant), "{err:?}");
    let make = |n| Ok(version(n, b"x"));
    assert!(store.add_next_version(ghost.id, &p, &make).await.unwrap().is_none());
    if let Opened::Sqlite(s) = &opened {
        assert!(
            !s.tenant_path(ghost.id).unwrap().exists(),
            "no file is made for a tenant that does not exist"
        );
    }
    store.close().await;
}

async fn database_realm_users_round_trip(backend: Backend) {
    let store = Opened::open(&backend).await.store();
    let acme = tenant("acme");
    store.create_tenant(&acme).await.unwrap();
    let user = StoredUser {
        username: "ops".into(),
        password_hash: "$pbkdf2-sha256$i=600000,l=32$c2FsdA$aGFzaA".into(),
        tenant: acme.id,
        roles: vec!["key-manager".into(), "auditor".into()],
    };
    store.create_user(&user).await.unwrap();
    assert_eq!(store.user("ops").await.unwrap(), Some(user.clone()));
    assert_eq!(store.user("OPS").await.unwrap(), None, "names are exact");
    let err = store.create_user(&StoredUser { roles: vec!["user".into()], ..user }).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(what) if what.contains("ops")), "{err:?}");
    store.close().await;
}

/// With a connection scoped to tenant A — on PostgreSQL a transaction after A's `SET LOCAL
/// role` and `search_path`, on SQLite A's file — a hand-written query for tenant B's keys
/// fails: PostgreSQL refuses it ("permission denied"), SQLite has no such table.
async fn a_tenants_connection_cannot_reach_another_tenants_tables(backend: Backend) {
    let opened = Opened::open(&backend).await;
    let store = opened.store();
    let (a, b) = (tenant("a"), tenant("b"));
    for t in [&a, &b] {
        store.create_tenant(t).await.unwrap();
        store.create_pool(&pool(t, "p"), &version(1, t.name.as_bytes())).await.unwrap();
    }
    let b_schema = TenantKey::parse(&b.id.to_string()).unwrap().schema();
    match &opened {
        Opened::Postgres(s) => {
            let mut tx = s.tenant_transaction(a.id).await.unwrap().unwrap();
            // A's own table: A's row only.
            let mine: Vec<u8> =
                sqlx::query_scalar("SELECT material FROM key_versions").fetch_one(&mut *tx).await.unwrap();
            assert_eq!(mine, b"a");
            let err = sqlx::query(&format!("SELECT * FROM {b_schema}.key_versions"))
                .fetch_all(&mut *tx)
                .await
                .unwrap_err();
            let code = err.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
            assert_eq!(code.as_deref(), Some("42501"), "permission denied, not just absent: {err}");
            drop(tx);
            // Nor may it read the catalog: users and their password hashes, the seal.
            for table in ["public.kms_realm_users", "public.seal", "public.tenants"] {
                let mut tx = s.tenant_transaction(a.id).await.unwrap().unwrap();
                let err =
                    sqlx::query(&format!("SELECT * FROM {table}")).fetch_all(&mut *tx).await.unwrap_err();
                let code = err.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
                assert_eq!(code.as_deref(), Some("42501"), "{table}: {err}");
            }
        }
        Opened::Sqlite(s) => {
            let file = s.tenant_pool(a.id).await.unwrap().unwrap();
            let mine: Vec<u8> =
                sqlx::query_scalar("SELECT material FROM key_versions").fetch_one(&file).await.unwrap();
            assert_eq!(mine, b"a");
            let tables: Vec<String> =
                sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                    .fetch_all(&file)
                    .await
                    .unwrap();
            assert!(
                !tables.iter().any(|t| t == "tenants" || t == "kms_realm_users" || t == "seal"),
                "{tables:?}"
            );
            let err = sqlx::query(&format!("SELECT * FROM {b_schema}.key_versions"))
                .execute(&file)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("no such table"), "{err}");
            let err = sqlx::query("SELECT * FROM kms_realm_users").execute(&file).await.unwrap_err();
            assert!(err.to_string().contains("no such table"), "{err}");
        }
    }
    store.close().await;
}

/// A database written before tenants had files: pools and versions in the catalog. Opening it
/// moves them into the tenant's file (keys still decrypt, nothing is left behind), once.
#[tokio::test]
async fn sqlite_keys_an_older_version_kept_in_the_catalog_move_into_the_tenant_files() {
    let backend = Backend::sqlite();
    let shares = barrier::new_shares(3, 5).unwrap();
    let (tenant, jwe) = {
        let kms = backend.open(&shares[..3]).await.unwrap();
        let t = kms.ensure_tenant("acme", TenantId::random()).await.unwrap().id;
        let p = PoolName::new("payments").unwrap();
        kms.create_pool(t, &p, Algorithm::A256Gcm).await.unwrap();
        kms.rotate(t, &p).await.unwrap();
        let (_, jwe) = kms.encrypt(t, &p, b"written before the upgrade", None).await.unwrap();
        kms.close().await;
        (t, jwe)
    };
    // Put the keys back where the older version kept them, and remove the tenant's file.
    let tenant_file = backend
        .sqlite_path()
        .parent()
        .unwrap()
        .join("tenants")
        .join(TenantKey::parse(&tenant.to_string()).unwrap().file_name());
    backend
        .exec(&format!(
            "ATTACH DATABASE '{f}' AS old;
             INSERT INTO pools (tenant_id, name, algorithm, created_at)
                 SELECT '{tenant}', name, algorithm, created_at FROM old.pools;
             INSERT INTO key_versions (tenant_id, pool, version, enabled, material, created_at)
                 SELECT '{tenant}', pool, version, enabled, material, created_at FROM old.key_versions;",
            f = tenant_file.display()
        ))
        .await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tenant_file.display()));
    }

    let kms = backend.open(&shares[1..4]).await.unwrap();
    assert_eq!(&*kms.decrypt(tenant, jwe.compact().unwrap()).await.unwrap().1, b"written before the upgrade");
    let info = kms.pool_info(tenant, &PoolName::new("payments").unwrap()).await.unwrap();
    assert_eq!(info.versions.len(), 2);
    kms.close().await;
    assert!(tenant_file.exists());
    let url = format!("sqlite://{}", backend.sqlite_path().display());
    let catalog = sqlx::SqlitePool::connect(&url).await.unwrap();
    let left: i64 =
        sqlx::query_scalar("SELECT (SELECT count(*) FROM pools) + (SELECT count(*) FROM key_versions)")
            .fetch_one(&catalog)
            .await
            .unwrap();
    catalog.close().await;
    assert_eq!(left, 0, "the catalog's old tables are emptied");
    // A second start finds nothing to move and keeps everything.
    let kms = backend.open(&shares[..3]).await.unwrap();
    assert_eq!(kms.pool_info(tenant, &PoolName::new("payments").unwrap()).await.unwrap().versions.len(), 2);
    kms.close().await;
}
