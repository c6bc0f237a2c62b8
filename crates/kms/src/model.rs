//! Domain types. Ids are newtypes so a tenant id cannot be passed where a pool name is wanted.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::crypto::Algorithm;

/// A tenant: a UUIDv4 generated when the environment is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(pub Uuid);

impl TenantId {
    /// A new random tenant id.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A pool name: 1 to 64 of `a-z 0-9 - _`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PoolName(String);

impl PoolName {
    /// Checks and wraps a name.
    pub fn new(name: &str) -> Result<Self, String> {
        if crate::jose::valid_pool_name(name) {
            Ok(Self(name.to_owned()))
        } else {
            Err(format!("invalid pool name {name:?}: use 1 to 64 of a-z, 0-9, '-', '_'"))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PoolName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::new(&s)
    }
}

impl From<PoolName> for String {
    fn from(p: PoolName) -> String {
        p.0
    }
}

impl std::fmt::Display for PoolName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `name` may be a database-realm user's name: 1 to 64 of `A-Z a-z 0-9 . _ @ -`
/// (`kms_proto::formats::Username`).
pub fn valid_username(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
}

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    /// A unique human name (`acme`).
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
}

/// A key pool as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pool {
    /// Owner.
    pub tenant: TenantId,
    /// Name, unique per tenant.
    pub name: PoolName,
    /// What its keys do.
    pub algorithm: Algorithm,
    /// RFC 3339.
    pub created_at: String,
}

/// One version of a pool's key, with its material still wrapped.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredVersion {
    /// Version number, from 1.
    pub version: u32,
    /// Disabled versions refuse every operation.
    pub enabled: bool,
    /// Material wrapped by the barrier's root key.
    pub wrapped: Vec<u8>,
    /// RFC 3339.
    pub created_at: String,
}

impl std::fmt::Debug for StoredVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredVersion")
            .field("version", &self.version)
            .field("enabled", &self.enabled)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A user of the database realm.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredUser {
    /// Login name.
    pub username: String,
    /// PBKDF2-SHA256 PHC string.
    pub password_hash: String,
    /// The user's tenant.
    pub tenant: TenantId,
    /// Role names, as in realm files (`key-manager`).
    pub roles: Vec<String>,
}

impl std::fmt::Debug for StoredUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredUser")
            .field("username", &self.username)
            .field("tenant", &self.tenant)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}
