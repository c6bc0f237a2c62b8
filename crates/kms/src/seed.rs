//! Demo seeding: tenants and key pools (with a number of versions) from `demo-seed.yml`,
//! applied idempotently when the KMS starts with `--demo`.
//!
//! Tenant ids are not in the seed: they are UUIDv4s generated when a demo environment is created
//! (and again on reset), kept in a separate tenants file (`name: uuid` lines) that the demo CLI
//! writes into its state directory. User accounts come from the realm file.
//!
//! ```yaml
//! tenants:
//!   - name: acme
//!     pools:
//!       - { name: payments, algorithm: A256GCM, versions: 2 }
//!       - { name: signing, algorithm: ES256 }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use service_kit::config::{Validate, Validator};
use uuid::Uuid;

use crate::crypto::Algorithm;
use crate::keys::{Kms, KmsError};
use crate::model::{PoolName, TenantId};

/// `demo-seed.yml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    /// Tenants and their pools.
    pub tenants: Vec<SeedTenant>,
    /// Demo accounts for the database realm.
    #[serde(default)]
    pub users: Vec<SeedUser>,
}

/// A demo account. Its password is documented and predictable on purpose (a demo); it is
/// stored only as a PBKDF2 hash.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedUser {
    /// Login name.
    pub username: String,
    /// The documented demo password.
    pub password: String,
    /// Tenant name (from `tenants`).
    pub tenant: String,
    /// Roles.
    pub roles: Vec<crate::authz::Role>,
}

impl std::fmt::Debug for SeedUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedUser")
            .field("username", &self.username)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

/// One tenant of the seed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedTenant {
    /// Unique name; its id comes from the tenants file.
    pub name: String,
    /// Pools to create.
    #[serde(default)]
    pub pools: Vec<SeedPool>,
}

/// One pool of the seed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedPool {
    /// Pool name.
    pub name: PoolName,
    /// Algorithm.
    pub algorithm: Algorithm,
    /// How many versions the pool should have (rotated up to this; never fewer).
    #[serde(default = "one")]
    pub versions: u32,
}

fn one() -> u32 {
    1
}

impl Validate for SeedFile {
    fn validate(&self, v: &mut Validator) {
        let tenant_names: std::collections::HashSet<&str> =
            self.tenants.iter().map(|t| t.name.as_str()).collect();
        let mut usernames = std::collections::HashSet::new();
        for (i, user) in self.users.iter().enumerate() {
            v.check(
                !user.username.is_empty() && !user.username.contains(':'),
                format!("users[{i}].username"),
                "must be non-empty without ':'",
            );
            v.check(usernames.insert(&user.username), format!("users[{i}].username"), "is used twice");
            v.check(
                tenant_names.contains(user.tenant.as_str()),
                format!("users[{i}].tenant"),
                "names no tenant of this seed",
            );
            v.check(!user.roles.is_empty(), format!("users[{i}].roles"), "needs at least one role");
            v.check(user.password.len() >= 8, format!("users[{i}].password"), "needs at least 8 characters");
        }
        let mut names = std::collections::HashSet::new();
        for (i, tenant) in self.tenants.iter().enumerate() {
            v.check(!tenant.name.is_empty(), format!("tenants[{i}].name"), "must not be empty");
            v.check(names.insert(&tenant.name), format!("tenants[{i}].name"), "is used twice");
            let mut pools = std::collections::HashSet::new();
            for (j, pool) in tenant.pools.iter().enumerate() {
                v.check(pools.insert(&pool.name), format!("tenants[{i}].pools[{j}].name"), "is used twice");
                v.check(
                    (1..=100).contains(&pool.versions),
                    format!("tenants[{i}].pools[{j}].versions"),
                    "must be between 1 and 100",
                );
            }
        }
    }
}

/// The tenants file: tenant name → id.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct TenantsFile(pub BTreeMap<String, Uuid>);

impl Validate for TenantsFile {
    fn validate(&self, _: &mut Validator) {}
}

/// A loaded seed with every tenant's id resolved.
#[derive(Debug, Clone)]
pub struct Seed {
    tenants: Vec<(TenantId, SeedTenant)>,
    users: Vec<(TenantId, SeedUser)>,
}

/// What applying a seed changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SeedReport {
    /// Tenants created.
    pub tenants_created: usize,
    /// Pools created.
    pub pools_created: usize,
    /// Versions added by rotation (beyond each new pool's first).
    pub versions_added: usize,
    /// Demo accounts created in the database realm.
    pub users_created: usize,
}

/// Seeding failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// A file is unusable (the cause names file, key and line).
    #[error("cannot load the seed")]
    Load(#[from] service_kit::ConfigError),
    /// The tenants file has no id for a seeded tenant.
    #[error(
        "the tenants file {file} has no id for tenant {tenant:?}; regenerate the demo environment (demo --reset-demo)"
    )]
    MissingTenantId {
        /// The tenants file.
        file: String,
        /// The tenant.
        tenant: String,
    },
    /// A tenant of that name exists with another id.
    #[error(
        "tenant {tenant:?} exists with id {existing}, but the tenants file says {wanted}; the database belongs to another demo environment: reset it"
    )]
    TenantIdMismatch {
        /// The tenant.
        tenant: String,
        /// Id in the database.
        existing: TenantId,
        /// Id in the tenants file.
        wanted: TenantId,
    },
    /// A key operation failed.
    #[error("seeding failed")]
    Kms(#[from] KmsError),
}

impl Seed {
    /// Loads and validates the seed and the tenants file.
    pub fn load(seed: &Path, tenants: &Path) -> Result<Self, SeedError> {
        let file: SeedFile = load_yaml(seed)?;
        let ids: TenantsFile = load_yaml(tenants)?;
        let mut out = Vec::new();
        for tenant in file.tenants {
            let id = ids.0.get(&tenant.name).ok_or_else(|| SeedError::MissingTenantId {
                file: tenants.display().to_string(),
                tenant: tenant.name.clone(),
            })?;
            out.push((TenantId(*id), tenant));
        }
        let users = file
            .users
            .into_iter()
            .filter_map(|u| out.iter().find(|(_, t)| t.name == u.tenant).map(|(id, _)| (*id, u)))
            .collect();
        Ok(Self { tenants: out, users })
    }

    /// Creates what is missing; running it twice changes nothing the second time.
    pub async fn apply(&self, kms: &Kms) -> Result<SeedReport, SeedError> {
        let mut report = SeedReport::default();
        for (id, tenant) in &self.tenants {
            let existing = kms.store().tenant_by_name(&tenant.name).await.map_err(KmsError::from)?;
            match existing {
                Some(t) if t.id != *id => {
                    return Err(SeedError::TenantIdMismatch {
                        tenant: tenant.name.clone(),
                        existing: t.id,
                        wanted: *id,
                    });
                }
                Some(_) => {}
                None => {
                    kms.ensure_tenant(&tenant.name, *id).await?;
                    report.tenants_created += 1;
                }
            }
            for pool in &tenant.pools {
                let mut info = match kms.pool_info(*id, &pool.name).await {
                    Ok(info) => info,
                    Err(KmsError::NotFound(_)) => {
                        report.pools_created += 1;
                        kms.create_pool(*id, &pool.name, pool.algorithm).await?
                    }
                    Err(e) => return Err(e.into()),
                };
                if info.algorithm != pool.algorithm {
                    tracing::warn!(pool = %pool.name, have = info.algorithm.jose_name(), seed = pool.algorithm.jose_name(), "seeded pool exists with another algorithm; left as it is");
                    continue;
                }
                while (info.versions.len() as u32) < pool.versions {
                    info = kms.rotate(*id, &pool.name).await?;
                    report.versions_added += 1;
                }
            }
        }
        for (tenant, user) in &self.users {
            if kms.store().user(&user.username).await.map_err(KmsError::from)?.is_some() {
                continue;
            }
            let password = secrecy::SecretString::from(user.password.clone());
            kms.create_user(*tenant, &user.username, password, &user.roles).await?;
            report.users_created += 1;
        }
        Ok(report)
    }
}

fn load_yaml<T: serde::de::DeserializeOwned + Validate>(path: &Path) -> Result<T, service_kit::ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| service_kit::ConfigError::Read { path: path.to_owned(), source })?;
    service_kit::config::load_str(path, &text, "", Vec::new())
}
