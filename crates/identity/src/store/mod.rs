//! Identity's storage: the `Store` trait, the records it holds and its errors, with two
//! implementations that run the same SQL — `SqliteStore` (embedded and `demo` profile) and
//! `PgStore` (PostgreSQL, which several replicas share). The statements are written once in
//! `sql` and the row decoding once here; the engine modules add opening, tenant namespaces,
//! closing and which errors mean "the database is unavailable".
//!
//! **Tenants are realms.** The catalog holds what is shared: the seal, the signing keys, the
//! tenants, the directory that finds a client's tenant, and browser sessions. Everything else —
//! clients, users, codes, refresh tokens, revocations — lives in the tenant's own namespace (a
//! SQLite file; a PostgreSQL schema entered as the tenant's role, so that PostgreSQL refuses
//! any other tenant's tables). Usernames are unique per tenant, and a client's sign-in form
//! looks names up in the client's tenant only: each tenant's users sign in to its own clients.
//! Namespace names come only from `TenantKey` (the canonical UUID).
//!
//! Single use is the database's job, not the caller's: codes and refresh tokens are consumed by
//! one conditional `UPDATE … WHERE used_at IS NULL`, so of concurrent presentations — at one
//! replica or several — exactly one wins (on PostgreSQL under READ COMMITTED the second
//! `UPDATE` waits on the row lock, re-reads the row and finds it used).

use async_trait::async_trait;

#[macro_use]
mod sql;
mod postgres;
pub(crate) mod revoked;
mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

pub use service_kit::db::TenantKey;

/// The catalog tables whose rows prove a database was initialised (rows there without a seal:
/// refuse). `clients` and `users` are the shared tables of schemas before tenant namespaces.
pub(crate) const DATA_TABLES: [&str; 4] = ["signing_keys", "tenants", "clients", "users"];

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened, migrated or peeked at.
    #[error(transparent)]
    Sqlite(#[from] service_kit::sqlite::SqliteError),
    /// The database cannot be reached now (stopped, restarting, unreachable, out of
    /// connections): requests are answered 503 and `readyz` says so until it answers again.
    #[error("the database is unavailable; retry once it answers again (see readyz)")]
    Unavailable(#[source] sqlx::Error),
    /// A query failed.
    #[error("database query failed")]
    Query(#[source] sqlx::Error),
    /// The row exists.
    #[error("{0} already exists")]
    Conflict(String),
    /// No such tenant (so no namespace to write into).
    #[error("no such tenant")]
    NoTenant,
    /// A tenant id that is not the canonical UUID (from a seed, a token or a stored row).
    #[error(transparent)]
    BadTenant(#[from] service_kit::db::NotATenantId),
    /// A tenant's namespace could not be made, migrated or entered.
    #[error("cannot prepare a tenant's namespace")]
    Namespace(#[from] service_kit::tenancy::NamespaceError),
    /// A tenant's SQLite file could not be made, opened or removed.
    #[error(transparent)]
    TenantFile(#[from] service_kit::tenancy::TenantFileError),
    /// Stored data does not fit together (corruption or a hand edit).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the database was unavailable (an outage), rather than the query or data wrong.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// Sorts a driver error: a unique violation is a `Conflict`, what `unavailable` says is an
    /// outage `Unavailable`, anything else a failed `Query`.
    pub(crate) fn classify(e: sqlx::Error, unavailable: fn(&sqlx::Error) -> bool) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Conflict("the record".into()),
            _ if unavailable(&e) => Self::Unavailable(e),
            _ => Self::Query(e),
        }
    }
}

/// Opening a store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Connecting, a newer schema, unsealing, or a database that holds data but no seal.
    #[error(transparent)]
    Sealed(service_kit::db::SealedOpenError),
    /// `storage.postgres.database` cannot name per-tenant roles.
    #[error("storage.postgres.database cannot be used in role names")]
    DatabaseName(#[source] service_kit::db::NotAnIdent),
    /// Bringing the tenants' namespaces up to date, or moving an older database's shared rows
    /// into them, failed (nothing was lost: old rows are deleted only once copied).
    #[error("cannot prepare the tenants' namespaces")]
    Tenants(#[source] StoreError),
}

/// A signing key's life stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published in the JWKS, not yet signing.
    Next,
    /// Signing.
    Current,
    /// Published until `retire_after`, no longer signing.
    Retired,
}

impl KeyState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Current => "current",
            Self::Retired => "retired",
        }
    }
    pub(crate) fn parse(s: &str) -> Option<Self> {
        [Self::Next, Self::Current, Self::Retired].into_iter().find(|k| k.as_str() == s)
    }
}

/// A stored signing key; the private key is wrapped by the barrier.
#[derive(Clone)]
pub struct StoredKey {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// Stage.
    pub state: KeyState,
    /// PKCS#8, wrapped by the root key.
    pub wrapped_private: Vec<u8>,
    /// The public JWK (JSON).
    pub public_jwk: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds after which a retired key leaves the JWKS.
    pub retire_after: Option<i64>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// A registered client.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredClient {
    /// `client_id`.
    pub client_id: String,
    /// `confidential` or `public`.
    pub confidential: bool,
    /// PBKDF2 PHC hash of the secret (confidential clients).
    pub secret_hash: Option<String>,
    /// Scopes it may be granted.
    pub scopes: Vec<String>,
    /// Audiences (resource servers) it may ask for; the first is the default.
    pub audiences: Vec<String>,
    /// Grant types it may use.
    pub grant_types: Vec<String>,
    /// Registered redirect URIs (exact match).
    pub redirect_uris: Vec<String>,
    /// The tenant its tokens carry.
    pub tenant_id: String,
    /// Roles its tokens carry.
    pub roles: Vec<String>,
    /// Registered post-logout redirect URIs (exact match).
    pub post_logout_redirect_uris: Vec<String>,
    /// The name the sign-in page shows (`None`: the page shows `client_id`).
    pub display_name: Option<String>,
}

impl StoredClient {
    /// The key of its tenant.
    pub fn tenant(&self) -> Result<TenantKey, StoreError> {
        Ok(TenantKey::parse(&self.tenant_id)?)
    }
}

impl std::fmt::Debug for StoredClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredClient").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

/// A user who signs in through the login form.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredUser {
    /// Stable subject identifier (a UUID).
    pub user_id: String,
    /// Login name.
    pub username: String,
    /// PBKDF2 PHC hash of the password.
    pub password_hash: String,
    /// Display name (`profile` scope).
    pub name: String,
    /// E-mail (`email` scope).
    pub email: String,
    /// The tenant the user's tokens carry.
    pub tenant_id: String,
    /// Roles the user's tokens carry.
    pub roles: Vec<String>,
}

impl StoredUser {
    /// The key of its tenant.
    pub fn tenant(&self) -> Result<TenantKey, StoreError> {
        Ok(TenantKey::parse(&self.tenant_id)?)
    }
}

impl std::fmt::Debug for StoredUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredUser").field("username", &self.username).finish_non_exhaustive()
    }
}

/// A browser session (looked up by the hash of its cookie).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The tenant of the user who signed in (canonical UUID).
    pub tenant_id: String,
    /// Who signed in.
    pub user_id: String,
    /// When they typed their password (OIDC `auth_time`).
    pub auth_time: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

/// An authorization code (looked up by its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCode {
    /// The client it was issued to.
    pub client_id: String,
    /// The user who approved it.
    pub user_id: String,
    /// The exact redirect URI of the request.
    pub redirect_uri: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// OIDC nonce of the request.
    pub nonce: Option<String>,
    /// When the user authenticated.
    pub auth_time: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// Set on the first exchange.
    pub used_at: Option<i64>,
    /// The access token the first exchange issued (revoked on replay).
    pub access_jti: Option<String>,
    /// Its expiry.
    pub access_exp: Option<i64>,
    /// The refresh token family the first exchange started (revoked on replay).
    pub family_id: Option<String>,
    /// The browser session that approved it (its families end when it signs out).
    pub session_hash: Option<String>,
}

/// A refresh token with its family (looked up by its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// Its family.
    pub family_id: String,
    /// The client.
    pub client_id: String,
    /// The user.
    pub user_id: String,
    /// Scopes, space-separated.
    pub scope: String,
    /// When the user authenticated.
    pub auth_time: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// Set when it was rotated.
    pub used_at: Option<i64>,
    /// Whether its family was revoked.
    pub family_revoked: bool,
    /// When the family started (the absolute lifetime counts from here).
    pub family_created_at: i64,
}

/// A refresh token to store, with the access token issued beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefresh {
    /// SHA-256 of the token.
    pub token_hash: String,
    /// Its family.
    pub family_id: String,
    /// Scopes.
    pub scope: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// The access token issued with it.
    pub access_jti: String,
    /// Its expiry.
    pub access_exp: i64,
}

/// Identity's persistent state.
///
/// The signing keys, the tenants, the directory of clients and the browser sessions are shared
/// (the **catalog**); each tenant's clients, users, codes, refresh tokens and revocations live in
/// a **namespace of the tenant's own** (a SQLite file, a PostgreSQL schema entered as the
/// tenant's role), so every method that reaches them takes the tenant's key and cannot reach
/// another tenant's rows.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Every signing key.
    async fn keys(&self) -> Result<Vec<StoredKey>, StoreError>;
    /// Adds a key; `false`, writing nothing, when another key already holds its stage (`next`
    /// and `current` are one key each, which the database itself enforces), so replicas that
    /// initialise one database at once end up with one key of each.
    async fn insert_key(&self, key: &StoredKey) -> Result<bool, StoreError>;
    /// Moves a key to another stage.
    async fn set_key_state(
        &self,
        kid: &str,
        state: KeyState,
        retire_after: Option<i64>,
    ) -> Result<(), StoreError>;
    /// Deletes a key (a retired key past its time).
    async fn delete_key(&self, kid: &str) -> Result<(), StoreError>;
    /// The tenants that have a namespace.
    async fn tenants(&self) -> Result<Vec<TenantKey>, StoreError>;
    /// Removes a tenant with everything in its namespace (its clients leave the directory, its
    /// users' sessions end); `false` if there was no such tenant.
    async fn drop_tenant(&self, tenant: &TenantKey) -> Result<bool, StoreError>;
    /// A client, found through the directory in its tenant's namespace.
    async fn client(&self, client_id: &str) -> Result<Option<StoredClient>, StoreError>;
    /// Registers a client in its tenant (made on first use); `Conflict` if the id is taken in
    /// any tenant.
    async fn insert_client(&self, client: &StoredClient) -> Result<(), StoreError>;
    /// A user of `tenant` by login name.
    async fn user_by_name(
        &self,
        tenant: &TenantKey,
        username: &str,
    ) -> Result<Option<StoredUser>, StoreError>;
    /// A user of `tenant` by id.
    async fn user(&self, tenant: &TenantKey, user_id: &str) -> Result<Option<StoredUser>, StoreError>;
    /// Adds a user to its tenant (made on first use); `Conflict` if the name or id is taken there.
    async fn insert_user(&self, user: &StoredUser) -> Result<(), StoreError>;
    /// Stores a session under the hash of its cookie.
    async fn insert_session(&self, hash: &str, session: &Session) -> Result<(), StoreError>;
    /// A session that has not expired.
    async fn session(&self, hash: &str) -> Result<Option<Session>, StoreError>;
    /// Ends a session.
    async fn delete_session(&self, hash: &str) -> Result<(), StoreError>;
    /// Stores a code of `tenant` (its client's and user's) under its hash.
    async fn insert_code(&self, tenant: &TenantKey, hash: &str, code: &AuthCode) -> Result<(), StoreError>;
    /// A code of `tenant`, used or not.
    async fn code(&self, tenant: &TenantKey, hash: &str) -> Result<Option<AuthCode>, StoreError>;
    /// Marks a code used and records what its exchange issues (so a replay can revoke it);
    /// `false` if it was already used (exactly one caller wins).
    async fn consume_code(
        &self,
        tenant: &TenantKey,
        hash: &str,
        access_jti: &str,
        access_exp: i64,
        family_id: Option<&str>,
    ) -> Result<bool, StoreError>;
    /// Starts a refresh token family, tied to the session that signed in.
    async fn insert_family(&self, tenant: &TenantKey, family: &NewFamily<'_>) -> Result<(), StoreError>;
    /// Revokes every family a browser session started (sign-out).
    async fn revoke_session_families(&self, tenant: &TenantKey, session_hash: &str)
    -> Result<(), StoreError>;
    /// Stores a refresh token. Should its family be revoked already (a reuse detected while this
    /// rotation ran), the access token issued with it is recorded as revoked as well: whichever
    /// of the two commits first, the other sees it.
    async fn insert_refresh(&self, tenant: &TenantKey, token: &NewRefresh) -> Result<(), StoreError>;
    /// A refresh token of `tenant`, used or not, with its family.
    async fn refresh(&self, tenant: &TenantKey, hash: &str) -> Result<Option<RefreshToken>, StoreError>;
    /// Marks a refresh token used; `false` if it already was (exactly one caller wins).
    async fn consume_refresh(&self, tenant: &TenantKey, hash: &str) -> Result<bool, StoreError>;
    /// Revokes a family: its refresh tokens stop working and the access tokens issued with them
    /// are recorded as revoked.
    async fn revoke_family(&self, tenant: &TenantKey, family_id: &str) -> Result<(), StoreError>;
    /// Records a revoked token of `tenant` until its expiry.
    async fn revoke(&self, tenant: &TenantKey, jti: &str, expires_at: i64) -> Result<(), StoreError>;
    /// Whether a token id of `tenant` was revoked.
    async fn is_revoked(&self, tenant: &TenantKey, jti: &str) -> Result<bool, StoreError>;
    /// A value the service sealed (`sealed_values`, wrapped by the root key), if made.
    async fn sealed_value(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores a sealed value unless one of that name exists (another replica's: read it back).
    async fn insert_sealed_value(&self, name: &str, wrapped: &[u8]) -> Result<(), StoreError>;
    /// Adds an API key to `tenant` (a conflict when the owner has a live key of that name).
    async fn insert_api_key(&self, tenant: &TenantKey, key: &ApiKeyRow) -> Result<(), StoreError>;
    /// An API key of `tenant`, deleted or not.
    async fn api_key(&self, tenant: &TenantKey, key_id: &str) -> Result<Option<ApiKeyRow>, StoreError>;
    /// The API keys of `tenant` (of one owner when given), deleted ones included, oldest first.
    async fn api_keys(
        &self,
        tenant: &TenantKey,
        owner: Option<(OwnerKind, &str)>,
    ) -> Result<Vec<ApiKeyRow>, StoreError>;
    /// Applies `change`; false when the key does not exist or the change does not apply (a
    /// delete of a deleted key, a restore of a live one, a use recorded recently).
    async fn update_api_key(
        &self,
        tenant: &TenantKey,
        key_id: &str,
        change: &ApiKeyChange,
    ) -> Result<bool, StoreError>;
    /// Removes `tenant`'s keys deleted before `deleted_before`; how many.
    async fn purge_api_keys(&self, tenant: &TenantKey, deleted_before: i64) -> Result<u64, StoreError>;
    /// Closes the connections (SQLite: after a WAL checkpoint).
    async fn close(&self);
}

/// A refresh token family to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewFamily<'a> {
    /// Its id.
    pub family_id: &'a str,
    /// The client.
    pub client_id: &'a str,
    /// The user.
    pub user_id: &'a str,
    /// When the user authenticated.
    pub auth_time: i64,
    /// The browser session that signed in.
    pub session_hash: Option<&'a str>,
}

/// Who owns an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OwnerKind {
    /// A user of the tenant (its `user_id`).
    User,
    /// A confidential client of the tenant (its `client_id`).
    Client,
}

impl OwnerKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Client => "client",
        }
    }
}

/// An API key's row (`api_keys`, in its tenant's namespace): never the secret, only its MAC.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    /// Its id (32 hex digits; the key carries it).
    pub key_id: String,
    /// Its name, unique per owner among the keys not deleted.
    pub name: String,
    /// Who owns it.
    pub owner_kind: OwnerKind,
    /// The owner's `user_id` or `client_id`.
    pub owner_id: String,
    /// HMAC-SHA256 of the current secret.
    pub secret_mac: Vec<u8>,
    /// HMAC-SHA256 of the previous secret, valid until `previous_until` (a rotation's overlap).
    pub previous_mac: Option<Vec<u8>>,
    /// End of the overlap (Unix seconds).
    pub previous_until: Option<i64>,
    /// Its permissions (`scope` or `scope@pool:NAME`).
    pub permissions: Vec<String>,
    /// Created (Unix seconds).
    pub created_at: i64,
    /// Expiry, if any.
    pub expires_at: Option<i64>,
    /// Last verified (at most a minute late).
    pub last_used_at: Option<i64>,
    /// Soft-deleted at; purged once the retention period has passed.
    pub deleted_at: Option<i64>,
}

impl std::fmt::Debug for ApiKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRow")
            .field("key_id", &self.key_id)
            .field("name", &self.name)
            .field("owner_kind", &self.owner_kind)
            .field("owner_id", &self.owner_id)
            .field("permissions", &self.permissions)
            .field("deleted_at", &self.deleted_at)
            .finish_non_exhaustive()
    }
}

/// A change to an API key's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKeyChange {
    /// A new secret; the old one's MAC stays valid until the overlap ends (none: not at all).
    Rotate {
        /// The MAC the caller read: the rotation applies only if it is still the current one
        /// (two rotations racing: one wins, the other is told).
        expected_mac: Vec<u8>,
        /// The new secret's MAC.
        secret_mac: Vec<u8>,
        /// The old one's MAC and the end of the overlap (valid while `now < end`).
        previous: Option<(Vec<u8>, i64)>,
    },
    /// Soft delete (only a key not deleted); any rotation overlap ends with it.
    Delete,
    /// Undo a soft delete (only a deleted key).
    Restore,
    /// Verified now (only when the last use is older than `older_than`).
    Used {
        /// Record only when the last use is before this.
        older_than: i64,
    },
}

/// The columns of either engine's rows, so that each record is decoded once (below) for both.
/// One blanket implementation over sqlx's `Row`: its bounds say "this engine decodes text,
/// 64-bit integers and bytes", which both do.
pub(crate) trait Columns {
    /// A `TEXT` column.
    fn text(&self, name: &str) -> Result<String, StoreError>;
    /// A nullable `TEXT` column.
    fn text_opt(&self, name: &str) -> Result<Option<String>, StoreError>;
    /// An `INTEGER` (SQLite) or `BIGINT` (PostgreSQL) column.
    fn int(&self, name: &str) -> Result<i64, StoreError>;
    /// A nullable integer column.
    fn int_opt(&self, name: &str) -> Result<Option<i64>, StoreError>;
    /// A `BLOB` (SQLite) or `BYTEA` (PostgreSQL) column.
    fn bytes(&self, name: &str) -> Result<Vec<u8>, StoreError>;
    /// A nullable bytes column.
    fn bytes_opt(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

impl<R> Columns for R
where
    R: sqlx::Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn text(&self, name: &str) -> Result<String, StoreError> {
        sqlx::Row::try_get(self, name).map_err(StoreError::Query)
    }
    fn text_opt(&self, name: &str) -> Result<Option<String>, StoreError> {
        sqlx::Row::try_get(self, name).map_err(StoreError::Query)
    }
    fn int(&self, name: &str) -> Result<i64, StoreError> {
        sqlx::Row::try_get(self, name).map_err(StoreError::Query)
    }
    fn int_opt(&self, name: &str) -> Result<Option<i64>, StoreError> {
        sqlx::Row::try_get(self, name).map_err(StoreError::Query)
    }
    fn bytes(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        sqlx::Row::try_get(self, name).map_err(StoreError::Query)
    }
    fn bytes_opt(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::Row::try_get(self, name).map_err(StoreError::Query)
    }
}

/// Decoding each record from a row of `sql`'s queries (the column names are theirs).
pub(crate) mod decode {
    use super::{
        ApiKeyRow, AuthCode, Columns, KeyState, OwnerKind, RefreshToken, Session, StoreError, StoredClient,
        StoredKey, StoredUser, TenantKey,
    };

    pub(crate) fn api_key(r: &impl Columns) -> Result<ApiKeyRow, StoreError> {
        Ok(ApiKeyRow {
            key_id: r.text("key_id")?,
            name: r.text("name")?,
            // The schema allows only the two kinds.
            owner_kind: if r.text("owner_kind")? == "client" { OwnerKind::Client } else { OwnerKind::User },
            owner_id: r.text("owner_id")?,
            secret_mac: r.bytes("secret_mac")?,
            previous_mac: r.bytes_opt("previous_mac")?,
            previous_until: r.int_opt("previous_until")?,
            permissions: list(&r.text("permissions")?),
            created_at: r.int("created_at")?,
            expires_at: r.int_opt("expires_at")?,
            last_used_at: r.int_opt("last_used_at")?,
            deleted_at: r.int_opt("deleted_at")?,
        })
    }

    /// A space-separated list (scopes, grant types, URIs), empty items dropped.
    pub(crate) fn list(s: &str) -> Vec<String> {
        s.split(' ').filter(|x| !x.is_empty()).map(str::to_owned).collect()
    }

    pub(crate) fn key(r: &impl Columns) -> Result<StoredKey, StoreError> {
        Ok(StoredKey {
            kid: r.text("kid")?,
            // The schema allows only the three stages; anything else is treated as retired.
            state: KeyState::parse(&r.text("state")?).unwrap_or(KeyState::Retired),
            wrapped_private: r.bytes("private_key")?,
            public_jwk: r.text("public_jwk")?,
            created_at: r.int("created_at")?,
            retire_after: r.int_opt("retire_after")?,
        })
    }

    /// A client of the namespace of `tenant` (whose rows carry no tenant id).
    pub(crate) fn client(r: &impl Columns, tenant: &TenantKey) -> Result<StoredClient, StoreError> {
        Ok(StoredClient {
            client_id: r.text("client_id")?,
            confidential: r.text("client_type")? == "confidential",
            secret_hash: r.text_opt("secret_hash")?,
            scopes: list(&r.text("scopes")?),
            audiences: list(&r.text("audiences")?),
            grant_types: list(&r.text("grant_types")?),
            redirect_uris: list(&r.text("redirect_uris")?),
            tenant_id: tenant.canonical(),
            roles: list(&r.text("roles")?),
            post_logout_redirect_uris: list(&r.text("post_logout_redirect_uris")?),
            display_name: r.text_opt("display_name")?,
        })
    }

    /// A user of the namespace of `tenant`.
    pub(crate) fn user(r: &impl Columns, tenant: &TenantKey) -> Result<StoredUser, StoreError> {
        Ok(StoredUser {
            user_id: r.text("user_id")?,
            username: r.text("username")?,
            password_hash: r.text("password_hash")?,
            name: r.text("name")?,
            email: r.text("email")?,
            tenant_id: tenant.canonical(),
            roles: list(&r.text("roles")?),
        })
    }

    pub(crate) fn session(r: &impl Columns) -> Result<Session, StoreError> {
        Ok(Session {
            tenant_id: r.text("tenant_id")?,
            user_id: r.text("user_id")?,
            auth_time: r.int("auth_time")?,
            expires_at: r.int("expires_at")?,
        })
    }

    pub(crate) fn code(r: &impl Columns) -> Result<AuthCode, StoreError> {
        Ok(AuthCode {
            client_id: r.text("client_id")?,
            user_id: r.text("user_id")?,
            redirect_uri: r.text("redirect_uri")?,
            scope: r.text("scope")?,
            code_challenge: r.text("code_challenge")?,
            nonce: r.text_opt("nonce")?,
            auth_time: r.int("auth_time")?,
            expires_at: r.int("expires_at")?,
            used_at: r.int_opt("used_at")?,
            access_jti: r.text_opt("access_jti")?,
            access_exp: r.int_opt("access_exp")?,
            family_id: r.text_opt("family_id")?,
            session_hash: r.text_opt("session_hash")?,
        })
    }

    pub(crate) fn refresh(r: &impl Columns) -> Result<RefreshToken, StoreError> {
        Ok(RefreshToken {
            family_id: r.text("family_id")?,
            client_id: r.text("client_id")?,
            user_id: r.text("user_id")?,
            scope: r.text("scope")?,
            auth_time: r.int("auth_time")?,
            expires_at: r.int("expires_at")?,
            used_at: r.int_opt("used_at")?,
            family_revoked: r.int_opt("revoked_at")?.is_some(),
            family_created_at: r.int("created_at")?,
        })
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
