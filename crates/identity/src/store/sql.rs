//! The SQL of Identity's store, written once for both engines: `$n` placeholders, `ON CONFLICT`,
//! `RETURNING` and column types (`TEXT`, 64-bit integers, bytes) that SQLite and PostgreSQL
//! read alike, and rows decoded by `super::decode`.
//!
//! Why a macro and not a generic `impl<DB: sqlx::Database> Store for SqlStore<DB>`: the generic
//! version needs higher-ranked bounds (`for<'c> &'c mut DB::Connection: Executor<'c>`, one per
//! bound type) that `async_trait`'s `Send` futures cannot carry through reliably (rustc's
//! "higher-ranked lifetime error"). The macro stamps the one text out for each engine, which
//! supplies, as inherent items:
//!
//! * `catalog()`: the pool of the shared tables (keys, tenants, client directory, sessions);
//! * `read_scope(tenant)`: `Some` handle (derefs to the engine's connection) inside the tenant's
//!   namespace, `None` when the tenant does not exist; `end_read(handle)` finishes it;
//! * `write_scope(tenant)`: the same as a transaction, which the caller commits;
//! * `ensure_tenant(tenant)`: makes the tenant and its namespace unless they exist;
//! * `fail(sqlx::Error) -> StoreError` (its notion of "unavailable") and `close_pool()`;
//! * `remember(change)`: what a committed revocation tells the engine's in-memory revoked set
//!   (SQLite's; PostgreSQL keeps none, as other replicas revoke too);
//! * the engine's own `Store` methods, passed in as `$own` (`tenants`, `drop_tenant`,
//!   `insert_client`, which keeps the directory and the tenant's row together its own way, and
//!   `is_revoked`, the hot read of introspection, userinfo and token exchange).

/// Implements `Store` for `$store`, an engine over the sqlx database `$db` (see the module doc).
macro_rules! sql_store {
    ($store:ty, $db:ty, { $($own:tt)* }) => {
        impl $store {
            /// Inserts a client's row in the tenant's namespace (`conn` is inside it).
            async fn insert_client_row(
                conn: &mut <$db as sqlx::Database>::Connection,
                c: &$crate::store::StoredClient,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO clients (client_id, client_type, secret_hash, scopes, audiences, grant_types, \
                     redirect_uris, roles, post_logout_redirect_uris, display_name, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(&c.client_id)
                .bind(if c.confidential { "confidential" } else { "public" })
                .bind(&c.secret_hash)
                .bind(c.scopes.join(" "))
                .bind(c.audiences.join(" "))
                .bind(c.grant_types.join(" "))
                .bind(c.redirect_uris.join(" "))
                .bind(c.roles.join(" "))
                .bind(c.post_logout_redirect_uris.join(" "))
                .bind(&c.display_name)
                .bind($crate::store::now())
                .execute(conn)
                .await
                .map_err(|e| Self::conflict(e, || format!("client {}", c.client_id)))?;
                Ok(())
            }

            fn conflict(e: sqlx::Error, what: impl FnOnce() -> String) -> $crate::store::StoreError {
                match Self::fail(e) {
                    $crate::store::StoreError::Conflict(_) => $crate::store::StoreError::Conflict(what()),
                    other => other,
                }
            }

            /// Deletes a tenant's catalog rows (its directory entries, its sessions, itself) in
            /// `conn`'s transaction; `false` if there was no such tenant.
            async fn forget_tenant(
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &$crate::store::TenantKey,
            ) -> Result<bool, $crate::store::StoreError> {
                let id = tenant.canonical();
                for statement in
                    ["DELETE FROM client_directory WHERE tenant_id = $1", "DELETE FROM sessions WHERE tenant_id = $1"]
                {
                    sqlx::query(statement).bind(&id).execute(&mut *conn).await.map_err(Self::fail)?;
                }
                let gone = sqlx::query("DELETE FROM tenants WHERE tenant_id = $1")
                    .bind(&id)
                    .execute(&mut *conn)
                    .await
                    .map_err(Self::fail)?;
                Ok(gone.rows_affected() == 1)
            }

            /// Every tenant the catalog lists.
            async fn tenant_keys(&self) -> Result<Vec<$crate::store::TenantKey>, $crate::store::StoreError> {
                let ids: Vec<String> = sqlx::query_scalar("SELECT tenant_id FROM tenants ORDER BY tenant_id")
                    .fetch_all(self.catalog())
                    .await
                    .map_err(Self::fail)?;
                ids.iter().map(|id| Ok($crate::store::TenantKey::parse(id)?)).collect()
            }

            /// The tenant of a client, from the directory.
            async fn client_tenant(
                &self,
                client_id: &str,
            ) -> Result<Option<$crate::store::TenantKey>, $crate::store::StoreError> {
                let tenant: Option<String> =
                    sqlx::query_scalar("SELECT tenant_id FROM client_directory WHERE client_id = $1")
                        .bind(client_id)
                        .fetch_optional(self.catalog())
                        .await
                        .map_err(Self::fail)?;
                Ok(tenant.map(|t| $crate::store::TenantKey::parse(&t)).transpose()?)
            }

            /// One row of `statement` (one `$1`, `key`) in `tenant`'s namespace; `None` when
            /// there is no such row, or no such tenant.
            async fn read_row(
                &self,
                tenant: &$crate::store::TenantKey,
                statement: &str,
                key: &str,
            ) -> Result<Option<<$db as sqlx::Database>::Row>, $crate::store::StoreError> {
                let Some(mut scope) = self.read_scope(tenant).await? else { return Ok(None) };
                let row = sqlx::query(statement).bind(key).fetch_optional(&mut *scope).await.map_err(Self::fail)?;
                Self::end_read(scope).await?;
                Ok(row)
            }

            async fn user_where(
                &self,
                tenant: &$crate::store::TenantKey,
                column: &str,
                value: &str,
            ) -> Result<Option<$crate::store::StoredUser>, $crate::store::StoreError> {
                // `column` is one of two literals of this file, never input.
                let sql = format!(
                    "SELECT user_id, username, password_hash, name, email, roles FROM users WHERE {column} = $1"
                );
                let row = self.read_row(tenant, &sql, value).await?;
                row.as_ref().map(|r| $crate::store::decode::user(r, tenant)).transpose()
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            $($own)*

            async fn tenants(&self) -> Result<Vec<$crate::store::TenantKey>, $crate::store::StoreError> {
                self.tenant_keys().await
            }

            async fn keys(&self) -> Result<Vec<$crate::store::StoredKey>, $crate::store::StoreError> {
                let rows = sqlx::query(
                    "SELECT kid, state, private_key, public_jwk, created_at, retire_after \
                     FROM signing_keys ORDER BY created_at, kid",
                )
                .fetch_all(self.catalog())
                .await
                .map_err(Self::fail)?;
                rows.iter().map($crate::store::decode::key).collect()
            }

            async fn insert_key(&self, key: &$crate::store::StoredKey) -> Result<bool, $crate::store::StoreError> {
                // The unique index on the stage (`next`, `current`) makes a second key of a stage
                // a conflict, which DO NOTHING turns into "not inserted" — race-free on both
                // engines, as PostgreSQL's insert waits for a concurrent one to commit first.
                let inserted = sqlx::query(
                    "INSERT INTO signing_keys (kid, state, private_key, public_jwk, created_at, retire_after) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING kid",
                )
                .bind(&key.kid)
                .bind(key.state.as_str())
                .bind(&key.wrapped_private)
                .bind(&key.public_jwk)
                .bind(key.created_at)
                .bind(key.retire_after)
                .fetch_optional(self.catalog())
                .await
                .map_err(Self::fail)?;
                Ok(inserted.is_some())
            }

            async fn set_key_state(
                &self,
                kid: &str,
                state: $crate::store::KeyState,
                retire_after: Option<i64>,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query("UPDATE signing_keys SET state = $1, retire_after = $2 WHERE kid = $3")
                    .bind(state.as_str())
                    .bind(retire_after)
                    .bind(kid)
                    .execute(self.catalog())
                    .await
                    .map_err(Self::fail)?;
                Ok(())
            }

            async fn delete_key(&self, kid: &str) -> Result<(), $crate::store::StoreError> {
                sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
                    .bind(kid)
                    .execute(self.catalog())
                    .await
                    .map_err(Self::fail)?;
                Ok(())
            }

            async fn client(
                &self,
                client_id: &str,
            ) -> Result<Option<$crate::store::StoredClient>, $crate::store::StoreError> {
                let Some(tenant) = self.client_tenant(client_id).await? else { return Ok(None) };
                let row = self
                    .read_row(
                        &tenant,
                        "SELECT client_id, client_type, secret_hash, scopes, audiences, grant_types, redirect_uris, \
                         roles, post_logout_redirect_uris, display_name FROM clients WHERE client_id = $1",
                        client_id,
                    )
                    .await?;
                row.as_ref().map(|r| $crate::store::decode::client(r, &tenant)).transpose()
            }

            async fn user_by_name(
                &self,
                tenant: &$crate::store::TenantKey,
                username: &str,
            ) -> Result<Option<$crate::store::StoredUser>, $crate::store::StoreError> {
                self.user_where(tenant, "username", username).await
            }

            async fn user(
                &self,
                tenant: &$crate::store::TenantKey,
                user_id: &str,
            ) -> Result<Option<$crate::store::StoredUser>, $crate::store::StoreError> {
                self.user_where(tenant, "user_id", user_id).await
            }

            async fn insert_user(&self, u: &$crate::store::StoredUser) -> Result<(), $crate::store::StoreError> {
                let tenant = u.tenant()?;
                self.ensure_tenant(&tenant).await?;
                let Some(mut tx) = self.write_scope(&tenant).await? else {
                    return Err($crate::store::StoreError::NoTenant);
                };
                sqlx::query(
                    "INSERT INTO users (user_id, username, password_hash, name, email, roles, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&u.user_id)
                .bind(&u.username)
                .bind(&u.password_hash)
                .bind(&u.name)
                .bind(&u.email)
                .bind(u.roles.join(" "))
                .bind($crate::store::now())
                .execute(&mut *tx)
                .await
                .map_err(|e| Self::conflict(e, || format!("user {}", u.username)))?;
                tx.commit().await.map_err(Self::fail)
            }

            async fn insert_session(
                &self,
                hash: &str,
                s: &$crate::store::Session,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO sessions (session_hash, tenant_id, user_id, auth_time, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(hash)
                .bind(&s.tenant_id)
                .bind(&s.user_id)
                .bind(s.auth_time)
                .bind(s.expires_at)
                .execute(self.catalog())
                .await
                .map_err(Self::fail)?;
                sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
                    .bind($crate::store::now())
                    .execute(self.catalog())
                    .await
                    .map_err(Self::fail)?;
                Ok(())
            }

            async fn session(&self, hash: &str) -> Result<Option<$crate::store::Session>, $crate::store::StoreError> {
                let row = sqlx::query(
                    "SELECT tenant_id, user_id, auth_time, expires_at FROM sessions \
                     WHERE session_hash = $1 AND expires_at >= $2",
                )
                .bind(hash)
                .bind($crate::store::now())
                .fetch_optional(self.catalog())
                .await
                .map_err(Self::fail)?;
                row.as_ref().map($crate::store::decode::session).transpose()
            }

            async fn delete_session(&self, hash: &str) -> Result<(), $crate::store::StoreError> {
                sqlx::query("DELETE FROM sessions WHERE session_hash = $1")
                    .bind(hash)
                    .execute(self.catalog())
                    .await
                    .map_err(Self::fail)?;
                Ok(())
            }

            async fn insert_code(
                &self,
                tenant: &$crate::store::TenantKey,
                hash: &str,
                c: &$crate::store::AuthCode,
            ) -> Result<(), $crate::store::StoreError> {
                let Some(mut tx) = self.write_scope(tenant).await? else {
                    return Err($crate::store::StoreError::NoTenant);
                };
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
                .execute(&mut *tx)
                .await
                .map_err(Self::fail)?;
                // Codes live a minute; keep used ones a day for replay detection, then drop them.
                sqlx::query("DELETE FROM auth_codes WHERE expires_at < $1")
                    .bind($crate::store::now() - 86_400)
                    .execute(&mut *tx)
                    .await
                    .map_err(Self::fail)?;
                tx.commit().await.map_err(Self::fail)
            }

            async fn code(
                &self,
                tenant: &$crate::store::TenantKey,
                hash: &str,
            ) -> Result<Option<$crate::store::AuthCode>, $crate::store::StoreError> {
                let row = self
                    .read_row(
                        tenant,
                        "SELECT client_id, user_id, redirect_uri, scope, code_challenge, nonce, auth_time, expires_at, \
                         used_at, access_jti, access_exp, family_id, session_hash FROM auth_codes WHERE code_hash = $1",
                        hash,
                    )
                    .await?;
                row.as_ref().map($crate::store::decode::code).transpose()
            }

            async fn consume_code(
                &self,
                tenant: &$crate::store::TenantKey,
                hash: &str,
                access_jti: &str,
                access_exp: i64,
                family_id: Option<&str>,
            ) -> Result<bool, $crate::store::StoreError> {
                let Some(mut tx) = self.write_scope(tenant).await? else { return Ok(false) };
                // One statement decides: a concurrent second UPDATE (PostgreSQL: blocked on the
                // row lock, then re-checking the condition) finds used_at set and returns nothing.
                let won = sqlx::query(
                    "UPDATE auth_codes SET used_at = $1, access_jti = $2, access_exp = $3, family_id = $4 \
                     WHERE code_hash = $5 AND used_at IS NULL RETURNING code_hash",
                )
                .bind($crate::store::now())
                .bind(access_jti)
                .bind(access_exp)
                .bind(family_id)
                .bind(hash)
                .fetch_optional(&mut *tx)
                .await
                .map_err(Self::fail)?;
                tx.commit().await.map_err(Self::fail)?;
                Ok(won.is_some())
            }

            async fn insert_family(
                &self,
                tenant: &$crate::store::TenantKey,
                f: &$crate::store::NewFamily<'_>,
            ) -> Result<(), $crate::store::StoreError> {
                let Some(mut tx) = self.write_scope(tenant).await? else {
                    return Err($crate::store::StoreError::NoTenant);
                };
                sqlx::query(
                    "INSERT INTO refresh_families (family_id, client_id, user_id, auth_time, created_at, session_hash) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(f.family_id)
                .bind(f.client_id)
                .bind(f.user_id)
                .bind(f.auth_time)
                .bind($crate::store::now())
                .bind(f.session_hash)
                .execute(&mut *tx)
                .await
                .map_err(Self::fail)?;
                tx.commit().await.map_err(Self::fail)
            }

            async fn revoke_session_families(
                &self,
                tenant: &$crate::store::TenantKey,
                session_hash: &str,
            ) -> Result<(), $crate::store::StoreError> {
                let Some(mut scope) = self.read_scope(tenant).await? else { return Ok(()) };
                let families: Vec<String> = sqlx::query_scalar(
                    "SELECT family_id FROM refresh_families WHERE session_hash = $1 AND revoked_at IS NULL",
                )
                .bind(session_hash)
                .fetch_all(&mut *scope)
                .await
                .map_err(Self::fail)?;
                Self::end_read(scope).await?;
                for family in families {
                    self.revoke_family(tenant, &family).await?;
                }
                Ok(())
            }

            async fn insert_refresh(
                &self,
                tenant: &$crate::store::TenantKey,
                t: &$crate::store::NewRefresh,
            ) -> Result<(), $crate::store::StoreError> {
                let Some(mut tx) = self.write_scope(tenant).await? else {
                    return Err($crate::store::StoreError::NoTenant);
                };
                // A write to the family's row first: it waits for (and then sees) a revocation
                // in flight, and a revocation that starts now waits for this transaction and
                // then sees its token. (No `SELECT … FOR UPDATE`: SQLite has none; there the
                // first write takes the database's write lock, which serialises the same way.)
                let revoked_at: Option<Option<i64>> = sqlx::query_scalar(
                    "UPDATE refresh_families SET revoked_at = revoked_at WHERE family_id = $1 RETURNING revoked_at",
                )
                .bind(&t.family_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(Self::fail)?;
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
                .execute(&mut *tx)
                .await
                .map_err(Self::fail)?;
                let mut change = None;
                if revoked_at.flatten().is_some() {
                    sqlx::query(
                        "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
                    )
                    .bind(&t.access_jti)
                    .bind(t.access_exp)
                    .execute(&mut *tx)
                    .await
                    .map_err(Self::fail)?;
                    let revoked = $crate::store::revoked::Change::Revoked {
                        tenant: *tenant,
                        jti: t.access_jti.clone(),
                        exp: t.access_exp,
                    };
                    change = Some(revoked);
                }
                tx.commit().await.map_err(Self::fail)?;
                if let Some(change) = change {
                    self.remember(change);
                }
                Ok(())
            }

            async fn refresh(
                &self,
                tenant: &$crate::store::TenantKey,
                hash: &str,
            ) -> Result<Option<$crate::store::RefreshToken>, $crate::store::StoreError> {
                let row = self
                    .read_row(
                        tenant,
                        "SELECT t.family_id, f.client_id, f.user_id, t.scope, f.auth_time, t.expires_at, t.used_at, \
                         f.revoked_at, f.created_at FROM refresh_tokens t \
                         JOIN refresh_families f ON f.family_id = t.family_id WHERE t.token_hash = $1",
                        hash,
                    )
                    .await?;
                row.as_ref().map($crate::store::decode::refresh).transpose()
            }

            async fn consume_refresh(
                &self,
                tenant: &$crate::store::TenantKey,
                hash: &str,
            ) -> Result<bool, $crate::store::StoreError> {
                let Some(mut tx) = self.write_scope(tenant).await? else { return Ok(false) };
                // As consume_code: one conditional UPDATE, so exactly one presentation wins.
                let won = sqlx::query(
                    "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL \
                     RETURNING token_hash",
                )
                .bind($crate::store::now())
                .bind(hash)
                .fetch_optional(&mut *tx)
                .await
                .map_err(Self::fail)?;
                tx.commit().await.map_err(Self::fail)?;
                Ok(won.is_some())
            }

            async fn revoke_family(
                &self,
                tenant: &$crate::store::TenantKey,
                family_id: &str,
            ) -> Result<(), $crate::store::StoreError> {
                let Some(mut tx) = self.write_scope(tenant).await? else { return Ok(()) };
                sqlx::query(
                    "UPDATE refresh_families SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
                )
                .bind($crate::store::now())
                .bind(family_id)
                .execute(&mut *tx)
                .await
                .map_err(Self::fail)?;
                let revoked: Vec<(String, i64)> = sqlx::query_as(
                    "INSERT INTO revoked_tokens (jti, expires_at) SELECT access_jti, access_exp FROM refresh_tokens \
                     WHERE family_id = $1 ON CONFLICT (jti) DO NOTHING RETURNING jti, expires_at",
                )
                .bind(family_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(Self::fail)?;
                let changes: Vec<$crate::store::revoked::Change> = revoked
                    .into_iter()
                    .map(|(jti, exp)| $crate::store::revoked::Change::Revoked { tenant: *tenant, jti, exp })
                    .collect();
                tx.commit().await.map_err(Self::fail)?;
                for change in changes {
                    self.remember(change);
                }
                Ok(())
            }

            async fn revoke(
                &self,
                tenant: &$crate::store::TenantKey,
                jti: &str,
                expires_at: i64,
            ) -> Result<(), $crate::store::StoreError> {
                let Some(mut tx) = self.write_scope(tenant).await? else {
                    return Err($crate::store::StoreError::NoTenant);
                };
                sqlx::query(
                    "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
                )
                .bind(jti)
                .bind(expires_at)
                .execute(&mut *tx)
                .await
                .map_err(Self::fail)?;
                sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
                    .bind($crate::store::now())
                    .execute(&mut *tx)
                    .await
                    .map_err(Self::fail)?;
                let change =
                    $crate::store::revoked::Change::Revoked { tenant: *tenant, jti: jti.to_owned(), exp: expires_at };
                tx.commit().await.map_err(Self::fail)?;
                self.remember(change);
                Ok(())
            }

            async fn sealed_value(&self, name: &str) -> Result<Option<Vec<u8>>, $crate::store::StoreError> {
                let row: Option<(Vec<u8>,)> = sqlx::query_as("SELECT wrapped FROM sealed_values WHERE name = $1")
                    .bind(name)
                    .fetch_optional(self.catalog())
                    .await
                    .map_err(Self::fail)?;
                Ok(row.map(|(w,)| w))
            }

            async fn insert_sealed_value(&self, name: &str, wrapped: &[u8]) -> Result<(), $crate::store::StoreError> {
                sqlx::query("INSERT INTO sealed_values (name, wrapped) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                    .bind(name)
                    .bind(wrapped)
                    .execute(self.catalog())
                    .await
                    .map_err(Self::fail)?;
                Ok(())
            }

            async fn insert_api_key(
                &self,
                tenant: &$crate::store::TenantKey,
                k: &$crate::store::ApiKeyRow,
            ) -> Result<(), $crate::store::StoreError> {
                let Some(mut tx) = self.write_scope(tenant).await? else {
                    return Err($crate::store::StoreError::NoTenant);
                };
                sqlx::query(
                    "INSERT INTO api_keys (key_id, name, owner_kind, owner_id, secret_mac, previous_mac, previous_until, \
                     permissions, created_at, expires_at, last_used_at, deleted_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(&k.key_id)
                .bind(&k.name)
                .bind(k.owner_kind.as_str())
                .bind(&k.owner_id)
                .bind(&k.secret_mac)
                .bind(&k.previous_mac)
                .bind(k.previous_until)
                .bind(k.permissions.join(" "))
                .bind(k.created_at)
                .bind(k.expires_at)
                .bind(k.last_used_at)
                .bind(k.deleted_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| Self::conflict(e, || format!("an API key named {:?} of this owner", k.name)))?;
                tx.commit().await.map_err(Self::fail)
            }

            async fn api_key(
                &self,
                tenant: &$crate::store::TenantKey,
                key_id: &str,
            ) -> Result<Option<$crate::store::ApiKeyRow>, $crate::store::StoreError> {
                let row = self
                    .read_row(tenant, &format!("{} WHERE key_id = $1", $crate::store::sql::API_KEY_COLUMNS), key_id)
                    .await?;
                row.as_ref().map($crate::store::decode::api_key).transpose()
            }

            async fn api_keys(
                &self,
                tenant: &$crate::store::TenantKey,
                owner: Option<($crate::store::OwnerKind, &str)>,
            ) -> Result<Vec<$crate::store::ApiKeyRow>, $crate::store::StoreError> {
                let Some(mut scope) = self.read_scope(tenant).await? else { return Ok(Vec::new()) };
                let rows = match owner {
                    Some((kind, id)) => {
                        sqlx::query(&format!(
                            "{} WHERE owner_kind = $1 AND owner_id = $2 ORDER BY created_at, key_id",
                            $crate::store::sql::API_KEY_COLUMNS
                        ))
                        .bind(kind.as_str())
                        .bind(id)
                        .fetch_all(&mut *scope)
                        .await
                    }
                    None => {
                        sqlx::query(&format!("{} ORDER BY created_at, key_id", $crate::store::sql::API_KEY_COLUMNS))
                            .fetch_all(&mut *scope)
                            .await
                    }
                }
                .map_err(Self::fail)?;
                Self::end_read(scope).await?;
                rows.iter().map($crate::store::decode::api_key).collect()
            }

            async fn update_api_key(
                &self,
                tenant: &$crate::store::TenantKey,
                key_id: &str,
                change: &$crate::store::ApiKeyChange,
            ) -> Result<bool, $crate::store::StoreError> {
                use $crate::store::ApiKeyChange;
                let Some(mut tx) = self.write_scope(tenant).await? else { return Ok(false) };
                let now = $crate::store::now();
                // Each a conditional UPDATE: the condition is the rule ("only a live key"), and
                // concurrent callers see one winner.
                let changed = match change {
                    ApiKeyChange::Rotate { expected_mac, secret_mac, previous } => {
                        sqlx::query(
                            "UPDATE api_keys SET secret_mac = $1, previous_mac = $2, previous_until = $3 \
                             WHERE key_id = $4 AND deleted_at IS NULL AND secret_mac = $5",
                        )
                        .bind(secret_mac)
                        .bind(previous.as_ref().map(|(mac, _)| mac.clone()))
                        .bind(previous.as_ref().map(|(_, until)| *until))
                        .bind(key_id)
                        .bind(expected_mac)
                        .execute(&mut *tx)
                        .await
                    }
                    ApiKeyChange::Delete => {
                        sqlx::query(
                            "UPDATE api_keys SET deleted_at = $1, previous_mac = NULL, previous_until = NULL \
                             WHERE key_id = $2 AND deleted_at IS NULL",
                        )
                            .bind(now)
                            .bind(key_id)
                            .execute(&mut *tx)
                            .await
                    }
                    ApiKeyChange::Restore => {
                        sqlx::query("UPDATE api_keys SET deleted_at = NULL WHERE key_id = $1 AND deleted_at IS NOT NULL")
                            .bind(key_id)
                            .execute(&mut *tx)
                            .await
                    }
                    ApiKeyChange::Used { older_than } => {
                        sqlx::query(
                            "UPDATE api_keys SET last_used_at = $1 WHERE key_id = $2 \
                             AND (last_used_at IS NULL OR last_used_at < $3)",
                        )
                        .bind(now)
                        .bind(key_id)
                        .bind(*older_than)
                        .execute(&mut *tx)
                        .await
                    }
                }
                .map_err(|e| Self::conflict(e, || "a live API key of that name and owner".to_owned()))?;
                tx.commit().await.map_err(Self::fail)?;
                Ok(changed.rows_affected() == 1)
            }

            async fn purge_api_keys(
                &self,
                tenant: &$crate::store::TenantKey,
                deleted_before: i64,
            ) -> Result<u64, $crate::store::StoreError> {
                let Some(mut tx) = self.write_scope(tenant).await? else { return Ok(0) };
                let done = sqlx::query("DELETE FROM api_keys WHERE deleted_at IS NOT NULL AND deleted_at < $1")
                    .bind(deleted_before)
                    .execute(&mut *tx)
                    .await
                    .map_err(Self::fail)?;
                tx.commit().await.map_err(Self::fail)?;
                Ok(done.rows_affected())
            }

            async fn close(&self) {
                self.close_pool().await;
            }
        }
    };
}

/// The columns `decode::api_key` reads.
pub(crate) const API_KEY_COLUMNS: &str = "SELECT key_id, name, owner_kind, owner_id, secret_mac, previous_mac, \
     previous_until, permissions, created_at, expires_at, last_used_at, deleted_at FROM api_keys";
