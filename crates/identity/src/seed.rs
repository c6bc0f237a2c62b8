//! Demo seeding: users and clients from `demo-seed.yml`, their passwords and secrets read from
//! files (Docker secrets) and stored only as PBKDF2 hashes. Idempotent: existing users and
//! clients are left as they are.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use service_kit::config::{Validate, Validator};
use uuid::Uuid;

use crate::store::{Store, StoreError, StoredClient, StoredUser};

/// `demo-seed.yml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    /// Users who sign in through the login form.
    #[serde(default)]
    pub users: Vec<SeedUser>,
    /// OAuth clients.
    pub clients: Vec<SeedClient>,
}

/// One user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedUser {
    /// Login name.
    pub username: String,
    /// The password's file, relative to `seed.secrets_dir`.
    pub password_file: PathBuf,
    /// Display name.
    pub name: String,
    /// E-mail.
    pub email: String,
    /// Tenant name.
    pub tenant: String,
    /// Roles its tokens carry.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// One client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedClient {
    /// `client_id`.
    pub client_id: String,
    /// `confidential` or `public`.
    #[serde(rename = "type")]
    pub client_type: String,
    /// The secret's file, relative to `seed.secrets_dir` (confidential clients).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Allowed grant types.
    pub grant_types: Vec<String>,
    /// Allowed scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Allowed audiences; the first is the default.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Exact redirect URIs.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Tenant name.
    pub tenant: String,
    /// Roles its tokens carry.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Exact post-logout redirect URIs (RP-initiated logout).
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
}

const GRANTS: [&str; 3] = ["client_credentials", "authorization_code", "refresh_token"];

impl Validate for SeedFile {
    fn validate(&self, v: &mut Validator) {
        let mut names = std::collections::HashSet::new();
        for (i, u) in self.users.iter().enumerate() {
            let key = |f: &str| format!("users[{i}].{f}");
            v.check(
                !u.username.is_empty()
                    && u.username.len() <= 64
                    && u.username.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c)),
                key("username"),
                "1-64 characters: letters, digits, - _ . @",
            );
            v.check(names.insert(u.username.to_ascii_lowercase()), key("username"), "is used twice");
        }
        let mut ids = std::collections::HashSet::new();
        for (i, c) in self.clients.iter().enumerate() {
            let key = |f: &str| format!("clients[{i}].{f}");
            v.check(
                !c.client_id.is_empty() && !c.client_id.contains(':'),
                key("client_id"),
                "non-empty, no ':'",
            );
            v.check(ids.insert(&c.client_id), key("client_id"), "is used twice");
            match c.client_type.as_str() {
                "confidential" => {
                    v.check(c.secret_file.is_some(), key("secret_file"), "confidential clients need one")
                }
                "public" => {
                    v.check(c.secret_file.is_none(), key("secret_file"), "public clients have no secret");
                    v.check(
                        !c.grant_types.iter().any(|g| g == "client_credentials"),
                        key("grant_types"),
                        "public clients cannot use client_credentials",
                    );
                }
                _ => v.error(key("type"), "must be confidential or public"),
            }
            for g in &c.grant_types {
                v.check(
                    GRANTS.contains(&g.as_str()),
                    key("grant_types"),
                    format!("unknown grant type {g:?}"),
                );
            }
            for uri in c.redirect_uris.iter().chain(&c.post_logout_redirect_uris) {
                v.check(
                    (uri.starts_with("https://")
                        || uri.starts_with("http://127.0.0.1")
                        || uri.starts_with("http://localhost"))
                        && !uri.contains('#'),
                    key("redirect_uris"),
                    format!("{uri:?}: https only (or loopback http for native apps), no fragment"),
                );
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
struct TenantsFile(BTreeMap<String, Uuid>);

impl Validate for TenantsFile {
    fn validate(&self, _: &mut Validator) {}
}

/// Seeding failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// A file is unusable (the cause names file, key and line).
    #[error("cannot load the seed")]
    Load(#[from] service_kit::ConfigError),
    /// A tenant has no id.
    #[error("the tenants file has no id for tenant {0:?}; regenerate the demo environment")]
    MissingTenant(String),
    /// A user's password file is unusable.
    #[error("cannot read the password of user {user}")]
    Password {
        /// The user.
        user: String,
        /// Why.
        #[source]
        source: service_kit::secret::SecretFileError,
    },
    /// A client secret file is unusable.
    #[error("cannot read the secret of client {client}")]
    Secret {
        /// The client.
        client: String,
        /// Why.
        #[source]
        source: service_kit::secret::SecretFileError,
    },
    /// Hashing failed.
    #[error("hashing a client secret failed: {0}")]
    Hash(String),
    /// Storage failed.
    #[error("storing a client failed")]
    Store(#[from] StoreError),
}

fn load_yaml<T: serde::de::DeserializeOwned + Validate>(path: &Path) -> Result<T, service_kit::ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| service_kit::ConfigError::Read { path: path.to_owned(), source })?;
    service_kit::config::load_str(path, &text, "", Vec::new())
}

async fn hash_secret(secret: secrecy::SecretString) -> Result<String, SeedError> {
    let hash = tokio::task::spawn_blocking(move || service_kit::password::hash_password(&secret))
        .await
        .map_err(|e| SeedError::Hash(e.to_string()))?
        .map_err(|e| SeedError::Hash(e.to_string()))?;
    Ok(hash.as_str().to_owned())
}

/// What a seed run added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// New users.
    pub users: usize,
    /// New clients.
    pub clients: usize,
}

/// Loads the seed and registers the users and clients that do not exist yet.
pub async fn apply(
    store: &dyn Store,
    seed: &Path,
    tenants: &Path,
    secrets_dir: &Path,
) -> Result<Applied, SeedError> {
    let file: SeedFile = load_yaml(seed)?;
    let ids: TenantsFile = load_yaml(tenants)?;
    let mut added = Applied::default();
    for u in file.users {
        if store.user_by_name(&u.username).await?.is_some() {
            continue;
        }
        let tenant = ids.0.get(&u.tenant).ok_or_else(|| SeedError::MissingTenant(u.tenant.clone()))?;
        let password = service_kit::secret::read_secret_file(&secrets_dir.join(&u.password_file))
            .map_err(|source| SeedError::Password { user: u.username.clone(), source })?;
        store
            .insert_user(&StoredUser {
                user_id: Uuid::new_v4().to_string(),
                username: u.username,
                password_hash: hash_secret(password).await?,
                name: u.name,
                email: u.email,
                tenant_id: tenant.to_string(),
                roles: u.roles,
            })
            .await?;
        added.users += 1;
    }
    for c in file.clients {
        if store.client(&c.client_id).await?.is_some() {
            continue;
        }
        let tenant = ids.0.get(&c.tenant).ok_or_else(|| SeedError::MissingTenant(c.tenant.clone()))?;
        let secret_hash = match &c.secret_file {
            None => None,
            Some(rel) => {
                let secret = service_kit::secret::read_secret_file(&secrets_dir.join(rel))
                    .map_err(|source| SeedError::Secret { client: c.client_id.clone(), source })?;
                Some(hash_secret(secret).await?)
            }
        };
        store
            .insert_client(&StoredClient {
                client_id: c.client_id,
                confidential: c.client_type == "confidential",
                secret_hash,
                scopes: c.scopes,
                audiences: c.audiences,
                grant_types: c.grant_types,
                redirect_uris: c.redirect_uris,
                tenant_id: tenant.to_string(),
                roles: c.roles,
                post_logout_redirect_uris: c.post_logout_redirect_uris,
            })
            .await?;
        added.clients += 1;
    }
    Ok(added)
}
