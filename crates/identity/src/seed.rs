//! Demo seeding: users and clients from `demo-seed.yml`, their passwords and secrets read from
//! files (Docker secrets) and stored only as PBKDF2 hashes. Idempotent: existing users and
//! clients are left as they are.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use service_kit::config::{Validate, Validator};
use uuid::Uuid;

use crate::consent::{ConsentText, MAX_DESCRIPTION, MAX_DISPLAY_NAME, is_scope_token, text_problem};
use crate::store::{Store, StoreError, StoredClient, StoredUser, TenantKey};

/// `demo-seed.yml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    /// Users who sign in through the login form.
    #[serde(default)]
    pub users: Vec<SeedUser>,
    /// OAuth clients.
    pub clients: Vec<SeedClient>,
    /// Scope → what it lets an application do, in words for the consent page. The standard
    /// OpenID Connect scopes have built-in texts (this may replace them); a scope described
    /// nowhere is shown by its name.
    #[serde(default)]
    pub scopes: BTreeMap<String, String>,
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
    /// The name the sign-in page shows (default: `client_id`).
    #[serde(default)]
    pub name: Option<String>,
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

const GRANTS: [&str; 4] =
    ["client_credentials", "authorization_code", "refresh_token", crate::exchange::GRANT_TYPE];

impl Validate for SeedFile {
    fn validate(&self, v: &mut Validator) {
        for (scope, description) in &self.scopes {
            let key = format!("scopes.{scope}");
            v.check(
                is_scope_token(scope),
                key.clone(),
                "a scope name is printable ASCII without spaces, quotes or backslashes (RFC 6749 §3.3)",
            );
            if let Some(problem) = text_problem(description, MAX_DESCRIPTION) {
                v.error(key, format!("the description {problem}"));
            }
        }
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
            if let Some(problem) = c.name.as_deref().and_then(|n| text_problem(n, MAX_DISPLAY_NAME)) {
                v.error(key("name"), problem);
            }
            match c.client_type.as_str() {
                "confidential" => {
                    v.check(c.secret_file.is_some(), key("secret_file"), "confidential clients need one")
                }
                "public" => {
                    v.check(c.secret_file.is_none(), key("secret_file"), "public clients have no secret");
                    v.check(
                        !c.grant_types
                            .iter()
                            .any(|g| g == "client_credentials" || g == crate::exchange::GRANT_TYPE),
                        key("grant_types"),
                        "public clients cannot use client_credentials or token exchange",
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

/// What a seed run added, and the words the consent page takes from the seed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seeded {
    /// New users and clients.
    pub added: Applied,
    /// Scope descriptions and tenant names.
    pub consent: ConsentText,
}

/// Loads the seed and registers the users and clients that do not exist yet. The scope
/// descriptions and tenant names are read on every start (they are not stored), so editing
/// them takes effect at the next start; a client's display name is stored with the client.
pub async fn apply(
    store: &dyn Store,
    seed: &Path,
    tenants: &Path,
    secrets_dir: &Path,
) -> Result<Seeded, SeedError> {
    let file: SeedFile = load_yaml(seed)?;
    let ids: TenantsFile = load_yaml(tenants)?;
    let consent = ConsentText {
        scopes: file.scopes.clone(),
        tenants: ids.0.iter().map(|(name, id)| (id.to_string(), name.clone())).collect(),
    };
    let mut added = Applied::default();
    for u in file.users {
        let tenant = ids.0.get(&u.tenant).ok_or_else(|| SeedError::MissingTenant(u.tenant.clone()))?;
        let key = TenantKey::parse(&tenant.to_string()).map_err(StoreError::from)?;
        if store.user_by_name(&key, &u.username).await?.is_some() {
            continue;
        }
        let password = service_kit::secret::read_secret_file(&secrets_dir.join(&u.password_file))
            .map_err(|source| SeedError::Password { user: u.username.clone(), source })?;
        let inserted = store
            .insert_user(&StoredUser {
                user_id: Uuid::new_v4().to_string(),
                username: u.username,
                password_hash: hash_secret(password).await?,
                name: u.name,
                email: u.email,
                tenant_id: key.canonical(),
                roles: u.roles,
            })
            .await;
        match inserted {
            Ok(()) => added.users += 1,
            // Another replica seeding the same database got there first.
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
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
        let inserted = store
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
                display_name: c.name,
            })
            .await;
        match inserted {
            Ok(()) => added.clients += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Seeded { added, consent })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = "clients:\n  - client_id: spa\n    type: public\n    grant_types: [authorization_code]\n    tenant: acme\n";

    fn load(text: &str) -> Result<SeedFile, service_kit::ConfigError> {
        service_kit::config::load_str(Path::new("/etc/demo/demo-seed.yml"), text, "", Vec::new())
    }

    /// The one problem a seed has: its display names the file, and the key is the one expected.
    fn problem(text: &str) -> (String, String) {
        let err = load(text).expect_err("the seed must be refused");
        let shown = err.to_string();
        assert!(shown.contains("/etc/demo/demo-seed.yml"), "the error names the file: {shown}");
        match err {
            service_kit::ConfigError::Validation { problems, .. } => {
                assert_eq!(problems.len(), 1, "{problems:?}");
                (problems[0].key.clone(), problems[0].message.clone())
            }
            service_kit::ConfigError::Invalid { key, message, .. } => (key, message),
            other => panic!("unexpected error: {other}"),
        }
    }

    #[test]
    fn the_shipped_seed_describes_its_scopes_and_names_its_clients() {
        let text = include_str!("../../../deployments/identity/config/demo-seed.yml");
        let seed = load(text).unwrap();
        for client in &seed.clients {
            assert!(client.name.is_some(), "{} has a display name", client.client_id);
            for scope in &client.scopes {
                let described = ConsentText { scopes: seed.scopes.clone(), ..Default::default() };
                assert!(described.describe(scope).is_some(), "{scope} of {} is described", client.client_id);
            }
        }
    }

    #[test]
    fn scope_descriptions_and_client_names_are_read() {
        let seed = load(&format!(
            "scopes:\n  kms:encrypt: Encrypt data\n  \"api/x\": \"Use <x> & more\"\n{CLIENT}    name: My App\n"
        ))
        .unwrap();
        assert_eq!(seed.scopes["kms:encrypt"], "Encrypt data");
        assert_eq!(seed.scopes["api/x"], "Use <x> & more", "markup is text here; the page escapes it");
        assert_eq!(seed.clients[0].name.as_deref(), Some("My App"));
        assert!(load(CLIENT).unwrap().scopes.is_empty(), "`scopes:` is optional");
    }

    #[test]
    fn bad_scope_descriptions_are_refused_with_their_key() {
        let cases: [(&str, &str, &str); 6] = [
            ("scopes:\n  \"kms encrypt\": Encrypt\n", "scopes.kms encrypt", "RFC 6749"),
            ("scopes:\n  \"kms\\\\x\": Encrypt\n", "scopes.kms\\x", "RFC 6749"),
            ("scopes:\n  kms:encrypt: \"  \"\n", "scopes.kms:encrypt", "must not be empty"),
            ("scopes:\n  kms:encrypt: \"two\\nlines\"\n", "scopes.kms:encrypt", "one line"),
            ("scopes:\n  kms:encrypt: \"evil\\u202Etxt\"\n", "scopes.kms:encrypt", "bidirectional"),
            ("scopes:\n  kms:encrypt: [a, b]\n", "scopes.kms:encrypt", "invalid type"),
        ];
        for (section, key, message) in cases {
            let (k, m) = problem(&format!("{section}{CLIENT}"));
            assert_eq!(k, key, "{section}");
            assert!(m.contains(message), "{section}: {m}");
        }
        let long = format!("scopes:\n  kms:encrypt: {}\n{CLIENT}", "x".repeat(MAX_DESCRIPTION + 1));
        let (k, m) = problem(&long);
        assert_eq!(k, "scopes.kms:encrypt");
        assert!(m.contains(&format!("at most {MAX_DESCRIPTION}")), "{m}");
    }

    #[test]
    fn bad_client_names_are_refused_with_their_key() {
        for (name, message) in [
            ("\"\"", "must not be empty"),
            (&"n".repeat(MAX_DISPLAY_NAME + 1) as &str, "at most"),
            ("\"tab\\there\"", "one line"),
        ] {
            let (k, m) = problem(&format!("{CLIENT}    name: {name}\n"));
            assert_eq!(k, "clients[0].name", "{name}");
            assert!(m.contains(message), "{name}: {m}");
        }
    }
}
