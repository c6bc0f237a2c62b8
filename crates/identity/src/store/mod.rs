//! Identity's storage behind one trait; SQLite today (sqlx, embedded migrations, WAL with
//! `synchronous=FULL`), PostgreSQL later with the same portable SQL.

use std::path::Path;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqlitePool;

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened, migrated or peeked at.
    #[error(transparent)]
    Sqlite(#[from] service_kit::sqlite::SqliteError),
    /// A query failed.
    #[error("database query failed")]
    Query(#[source] sqlx::Error),
    /// The row exists.
    #[error("{0} already exists")]
    Conflict(String),
}

fn q(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict("the record".into()),
        _ => StoreError::Query(e),
    }
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
    fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Current => "current",
            Self::Retired => "retired",
        }
    }
    fn parse(s: &str) -> Option<Self> {
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

impl std::fmt::Debug for StoredUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredUser").field("username", &self.username).finish_non_exhaustive()
    }
}

/// A browser session (looked up by the hash of its cookie).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
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
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Every signing key.
    async fn keys(&self) -> Result<Vec<StoredKey>, StoreError>;
    /// Adds a key.
    async fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError>;
    /// Moves a key to another stage.
    async fn set_key_state(
        &self,
        kid: &str,
        state: KeyState,
        retire_after: Option<i64>,
    ) -> Result<(), StoreError>;
    /// Deletes a key (a retired key past its time).
    async fn delete_key(&self, kid: &str) -> Result<(), StoreError>;
    /// A client.
    async fn client(&self, client_id: &str) -> Result<Option<StoredClient>, StoreError>;
    /// Registers a client; `Conflict` if the id is taken.
    async fn insert_client(&self, client: &StoredClient) -> Result<(), StoreError>;
    /// A user by login name.
    async fn user_by_name(&self, username: &str) -> Result<Option<StoredUser>, StoreError>;
    /// A user by id.
    async fn user(&self, user_id: &str) -> Result<Option<StoredUser>, StoreError>;
    /// Adds a user; `Conflict` if the name is taken.
    async fn insert_user(&self, user: &StoredUser) -> Result<(), StoreError>;
    /// Stores a session under the hash of its cookie.
    async fn insert_session(&self, hash: &str, session: &Session) -> Result<(), StoreError>;
    /// A session that has not expired.
    async fn session(&self, hash: &str) -> Result<Option<Session>, StoreError>;
    /// Ends a session.
    async fn delete_session(&self, hash: &str) -> Result<(), StoreError>;
    /// Stores a code under its hash.
    async fn insert_code(&self, hash: &str, code: &AuthCode) -> Result<(), StoreError>;
    /// A code, used or not.
    async fn code(&self, hash: &str) -> Result<Option<AuthCode>, StoreError>;
    /// Marks a code used and records what its exchange issues (so a replay can revoke it);
    /// `false` if it was already used (exactly one caller wins).
    async fn consume_code(
        &self,
        hash: &str,
        access_jti: &str,
        access_exp: i64,
        family_id: Option<&str>,
    ) -> Result<bool, StoreError>;
    /// Starts a refresh token family, tied to the session that signed in.
    async fn insert_family(
        &self,
        family_id: &str,
        client_id: &str,
        user_id: &str,
        auth_time: i64,
        session_hash: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Revokes every family a browser session started (sign-out).
    async fn revoke_session_families(&self, session_hash: &str) -> Result<(), StoreError>;
    /// Stores a refresh token.
    async fn insert_refresh(&self, token: &NewRefresh) -> Result<(), StoreError>;
    /// A refresh token, used or not, with its family.
    async fn refresh(&self, hash: &str) -> Result<Option<RefreshToken>, StoreError>;
    /// Marks a refresh token used; `false` if it already was (exactly one caller wins).
    async fn consume_refresh(&self, hash: &str) -> Result<bool, StoreError>;
    /// Revokes a family: its refresh tokens stop working and the access tokens issued with them
    /// are recorded as revoked.
    async fn revoke_family(&self, family_id: &str) -> Result<(), StoreError>;
    /// Records a revoked token until its expiry.
    async fn revoke(&self, jti: &str, expires_at: i64) -> Result<(), StoreError>;
    /// Whether a token id was revoked.
    async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError>;
    /// Closes connections after a WAL checkpoint.
    async fn close(&self);
}

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl SqliteStore {
    /// Opens the database at `path` sealed by `shares`, returning the store and the unsealed
    /// root key (`service_kit::sqlite::open_sealed`: wrong shares write nothing).
    pub async fn open_sealed(
        path: &Path,
        shares: &[barrier::Share],
    ) -> Result<(Self, barrier::RootKey), service_kit::sqlite::SealedOpenError> {
        let tables = ["signing_keys", "clients", "users"];
        let (pool, root) = service_kit::sqlite::open_sealed(path, &MIGRATOR, shares, &tables).await?;
        Ok((Self { pool }, root))
    }
}

fn list(s: &str) -> Vec<String> {
    s.split(' ').filter(|x| !x.is_empty()).map(str::to_owned).collect()
}

#[async_trait]
impl Store for SqliteStore {
    async fn keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, state, private_key, public_jwk, created_at, retire_after FROM signing_keys ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(q)?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state").map_err(StoreError::Query)?;
                Ok(StoredKey {
                    kid: r.try_get("kid").map_err(StoreError::Query)?,
                    state: KeyState::parse(&state).unwrap_or(KeyState::Retired),
                    wrapped_private: r.try_get("private_key").map_err(StoreError::Query)?,
                    public_jwk: r.try_get("public_jwk").map_err(StoreError::Query)?,
                    created_at: r.try_get("created_at").map_err(StoreError::Query)?,
                    retire_after: r.try_get("retire_after").map_err(StoreError::Query)?,
                })
            })
            .collect()
    }

    async fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, state, private_key, public_jwk, created_at, retire_after) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.kid)
        .bind(key.state.as_str())
        .bind(&key.wrapped_private)
        .bind(&key.public_jwk)
        .bind(key.created_at)
        .bind(key.retire_after)
        .execute(&self.pool)
        .await
        .map_err(q)?;
        Ok(())
    }

    async fn set_key_state(
        &self,
        kid: &str,
        state: KeyState,
        retire_after: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE signing_keys SET state = $1, retire_after = $2 WHERE kid = $3")
            .bind(state.as_str())
            .bind(retire_after)
            .bind(kid)
            .execute(&self.pool)
            .await
            .map_err(q)?;
        Ok(())
    }

    async fn delete_key(&self, kid: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
            .bind(kid)
            .execute(&self.pool)
            .await
            .map_err(q)?;
        Ok(())
    }

    async fn client(&self, client_id: &str) -> Result<Option<StoredClient>, StoreError> {
        let row = sqlx::query(
            "SELECT client_id, client_type, secret_hash, scopes, audiences, grant_types, redirect_uris, tenant_id, roles, \
             post_logout_redirect_uris, display_name \
             FROM clients WHERE client_id = $1",
        )
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(q)?;
        let Some(r) = row else { return Ok(None) };
        let get = |c: &str| -> Result<String, StoreError> { r.try_get(c).map_err(StoreError::Query) };
        Ok(Some(StoredClient {
            client_id: get("client_id")?,
            confidential: get("client_type")? == "confidential",
            secret_hash: r.try_get("secret_hash").map_err(StoreError::Query)?,
            scopes: list(&get("scopes")?),
            audiences: list(&get("audiences")?),
            grant_types: list(&get("grant_types")?),
            redirect_uris: list(&get("redirect_uris")?),
            tenant_id: get("tenant_id")?,
            roles: list(&get("roles")?),
            post_logout_redirect_uris: list(&get("post_logout_redirect_uris")?),
            display_name: r.try_get("display_name").map_err(StoreError::Query)?,
        }))
    }

    async fn insert_client(&self, c: &StoredClient) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO clients (client_id, client_type, secret_hash, scopes, audiences, grant_types, redirect_uris, \
             tenant_id, roles, post_logout_redirect_uris, display_name, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&c.client_id)
        .bind(if c.confidential { "confidential" } else { "public" })
        .bind(&c.secret_hash)
        .bind(c.scopes.join(" "))
        .bind(c.audiences.join(" "))
        .bind(c.grant_types.join(" "))
        .bind(c.redirect_uris.join(" "))
        .bind(&c.tenant_id)
        .bind(c.roles.join(" "))
        .bind(c.post_logout_redirect_uris.join(" "))
        .bind(&c.display_name)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(|e| match q(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("client {}", c.client_id)),
            other => other,
        })?;
        Ok(())
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<StoredUser>, StoreError> {
        self.user_where("username", username).await
    }

    async fn user(&self, user_id: &str) -> Result<Option<StoredUser>, StoreError> {
        self.user_where("user_id", user_id).await
    }

    async fn insert_user(&self, u: &StoredUser) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (user_id, username, password_hash, name, email, tenant_id, roles, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&u.user_id)
        .bind(&u.username)
        .bind(&u.password_hash)
        .bind(&u.name)
        .bind(&u.email)
        .bind(&u.tenant_id)
        .bind(u.roles.join(" "))
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(|e| match q(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("user {}", u.username)),
            other => other,
        })?;
        Ok(())
    }

    async fn insert_session(&self, hash: &str, s: &Session) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (session_hash, user_id, auth_time, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(hash)
        .bind(&s.user_id)
        .bind(s.auth_time)
        .bind(s.expires_at)
        .execute(&self.pool)
        .await
        .map_err(q)?;
        sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(now())
            .execute(&self.pool)
            .await
            .map_err(q)?;
        Ok(())
    }

    async fn session(&self, hash: &str) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id, auth_time, expires_at FROM sessions WHERE session_hash = $1 AND expires_at >= $2",
        )
        .bind(hash)
        .bind(now())
        .fetch_optional(&self.pool)
        .await
        .map_err(q)?;
        row.map(|r| {
            Ok(Session {
                user_id: r.try_get("user_id").map_err(StoreError::Query)?,
                auth_time: r.try_get("auth_time").map_err(StoreError::Query)?,
                expires_at: r.try_get("expires_at").map_err(StoreError::Query)?,
            })
        })
        .transpose()
    }

    async fn delete_session(&self, hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE session_hash = $1")
            .bind(hash)
            .execute(&self.pool)
            .await
            .map_err(q)?;
        Ok(())
    }

    async fn insert_code(&self, hash: &str, c: &AuthCode) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO auth_codes (code_hash, client_id, user_id, redirect_uri, scope, code_challenge, nonce, \
             auth_time, expires_at, session_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(hash)
        .bind(&c.client_id)
        .bind(&c.user_id)
        .bind(&c.redirect_uri)
        .bind(&c.scope)
        .bind(&c.code_challenge)
        .bind(&c.nonce)
        .bind(c.auth_time)
        .bind(c.expires_at)
        .bind(&c.session_hash)
        .execute(&self.pool)
        .await
        .map_err(q)?;
        // Codes live a minute; keep used ones a day for replay detection, then drop them.
        sqlx::query("DELETE FROM auth_codes WHERE expires_at < $1")
            .bind(now() - 86_400)
            .execute(&self.pool)
            .await
            .map_err(q)?;
        Ok(())
    }

    async fn code(&self, hash: &str) -> Result<Option<AuthCode>, StoreError> {
        let row = sqlx::query(
            "SELECT client_id, user_id, redirect_uri, scope, code_challenge, nonce, auth_time, expires_at, used_at, \
             access_jti, access_exp, family_id, session_hash FROM auth_codes WHERE code_hash = $1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(q)?;
        let Some(r) = row else { return Ok(None) };
        let e = StoreError::Query;
        Ok(Some(AuthCode {
            client_id: r.try_get("client_id").map_err(e)?,
            user_id: r.try_get("user_id").map_err(e)?,
            redirect_uri: r.try_get("redirect_uri").map_err(e)?,
            scope: r.try_get("scope").map_err(e)?,
            code_challenge: r.try_get("code_challenge").map_err(e)?,
            nonce: r.try_get("nonce").map_err(e)?,
            auth_time: r.try_get("auth_time").map_err(e)?,
            expires_at: r.try_get("expires_at").map_err(e)?,
            used_at: r.try_get("used_at").map_err(e)?,
            access_jti: r.try_get("access_jti").map_err(e)?,
            access_exp: r.try_get("access_exp").map_err(e)?,
            family_id: r.try_get("family_id").map_err(e)?,
            session_hash: r.try_get("session_hash").map_err(e)?,
        }))
    }

    async fn consume_code(
        &self,
        hash: &str,
        access_jti: &str,
        access_exp: i64,
        family_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE auth_codes SET used_at = $1, access_jti = $2, access_exp = $3, family_id = $4 \
             WHERE code_hash = $5 AND used_at IS NULL",
        )
        .bind(now())
        .bind(access_jti)
        .bind(access_exp)
        .bind(family_id)
        .bind(hash)
        .execute(&self.pool)
        .await
        .map_err(q)?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_family(
        &self,
        family_id: &str,
        client_id: &str,
        user_id: &str,
        auth_time: i64,
        session_hash: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refresh_families (family_id, client_id, user_id, auth_time, created_at, session_hash) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(family_id)
        .bind(client_id)
        .bind(user_id)
        .bind(auth_time)
        .bind(now())
        .bind(session_hash)
        .execute(&self.pool)
        .await
        .map_err(q)?;
        Ok(())
    }

    async fn revoke_session_families(&self, session_hash: &str) -> Result<(), StoreError> {
        let rows = sqlx::query(
            "SELECT family_id FROM refresh_families WHERE session_hash = $1 AND revoked_at IS NULL",
        )
        .bind(session_hash)
        .fetch_all(&self.pool)
        .await
        .map_err(q)?;
        for row in rows {
            let family: String = row.try_get("family_id").map_err(StoreError::Query)?;
            self.revoke_family(&family).await?;
        }
        Ok(())
    }

    async fn insert_refresh(&self, t: &NewRefresh) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, scope, expires_at, access_jti, access_exp) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&t.token_hash)
        .bind(&t.family_id)
        .bind(&t.scope)
        .bind(t.expires_at)
        .bind(&t.access_jti)
        .bind(t.access_exp)
        .execute(&self.pool)
        .await
        .map_err(q)?;
        Ok(())
    }

    async fn refresh(&self, hash: &str) -> Result<Option<RefreshToken>, StoreError> {
        let row = sqlx::query(
            "SELECT t.family_id, f.client_id, f.user_id, t.scope, f.auth_time, t.expires_at, t.used_at, \
             f.revoked_at, f.created_at FROM refresh_tokens t JOIN refresh_families f ON f.family_id = t.family_id \
             WHERE t.token_hash = $1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(q)?;
        let Some(r) = row else { return Ok(None) };
        let e = StoreError::Query;
        let revoked: Option<i64> = r.try_get("revoked_at").map_err(e)?;
        Ok(Some(RefreshToken {
            family_id: r.try_get("family_id").map_err(e)?,
            client_id: r.try_get("client_id").map_err(e)?,
            user_id: r.try_get("user_id").map_err(e)?,
            scope: r.try_get("scope").map_err(e)?,
            auth_time: r.try_get("auth_time").map_err(e)?,
            expires_at: r.try_get("expires_at").map_err(e)?,
            used_at: r.try_get("used_at").map_err(e)?,
            family_revoked: revoked.is_some(),
            family_created_at: r.try_get("created_at").map_err(e)?,
        }))
    }

    async fn consume_refresh(&self, hash: &str) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL")
                .bind(now())
                .bind(hash)
                .execute(&self.pool)
                .await
                .map_err(q)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_family(&self, family_id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(q)?;
        sqlx::query(
            "UPDATE refresh_families SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(family_id)
        .execute(&mut *tx)
        .await
        .map_err(q)?;
        sqlx::query(
            "INSERT INTO revoked_tokens (jti, expires_at) SELECT access_jti, access_exp FROM refresh_tokens \
             WHERE family_id = $1 ON CONFLICT (jti) DO NOTHING",
        )
        .bind(family_id)
        .execute(&mut *tx)
        .await
        .map_err(q)?;
        tx.commit().await.map_err(q)?;
        Ok(())
    }

    async fn revoke(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(q)?;
        sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
            .bind(now())
            .execute(&self.pool)
            .await
            .map_err(q)?;
        Ok(())
    }

    async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 AS hit FROM revoked_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await
            .map_err(q)?;
        Ok(row.is_some())
    }

    async fn close(&self) {
        service_kit::sqlite::close(&self.pool).await;
    }
}

impl SqliteStore {
    async fn user_where(&self, column: &str, value: &str) -> Result<Option<StoredUser>, StoreError> {
        // `column` is one of two literals from this file, never input.
        let sql = format!(
            "SELECT user_id, username, password_hash, name, email, tenant_id, roles FROM users WHERE {column} = $1"
        );
        let row = sqlx::query(&sql).bind(value).fetch_optional(&self.pool).await.map_err(q)?;
        let Some(r) = row else { return Ok(None) };
        let get = |c: &str| -> Result<String, StoreError> { r.try_get(c).map_err(StoreError::Query) };
        Ok(Some(StoredUser {
            user_id: get("user_id")?,
            username: get("username")?,
            password_hash: get("password_hash")?,
            name: get("name")?,
            email: get("email")?,
            tenant_id: get("tenant_id")?,
            roles: list(&get("roles")?),
        }))
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
