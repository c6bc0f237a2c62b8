//! The API-key realm: `Authorization: ApiKey dak_…`, a key Identity issued. Each key is verified
//! at Identity (`auth.bearer.api_keys.endpoint`, as the client Identity names in its
//! `api_keys.verifiers`), and the answer — active or not — reused for `cache_ttl`, so a deleted
//! or rotated-out key keeps working here at most that long (docs/kms.md, "API keys").
//!
//! A key whose form or checksum is wrong is refused here, before any call (and never cached).
//! The principal is the key's owner in the key's tenant. Its scopes are the key's permissions
//! intersected with what the owner's roles allow (as for Bearer tokens); a permission on one pool
//! (`kms:encrypt@pool:payments`) holds in that pool only, so an operation that names no pool
//! (decrypt, verify, unwrap) needs the scope everywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use service_kit::credcache::CredentialCache;

use crate::authz::{AuthMethod, Principal, Role};
use crate::bearer::{BearerDenied, BearerSetupError};
use crate::config::ApiKeysConfig;
use crate::model::TenantId;

/// The realm.
pub struct ApiKeyRealm {
    client: reqwest::Client,
    endpoint: String,
    client_id: String,
    secret: SecretString,
    /// Identity's answers by key (HMAC-keyed, bounded): the principal, or why not.
    answers: CredentialCache<Arc<Result<Principal, String>>>,
}

impl std::fmt::Debug for ApiKeyRealm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRealm").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

/// Identity's answer.
#[derive(serde::Deserialize)]
struct Answer {
    active: bool,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
    /// With impersonation: the key's owner, acting (`{"sub": …}`).
    #[serde(default)]
    act: Option<serde_json::Value>,
}

impl ApiKeyRealm {
    /// Builds the realm (no network yet) with Identity's CA and host mappings.
    pub(crate) fn new(
        config: &ApiKeysConfig,
        ca_file: &std::path::Path,
        resolve: &BTreeMap<String, std::net::SocketAddr>,
    ) -> Result<Self, BearerSetupError> {
        let secret = service_kit::secret::read_secret_file(&config.client_secret_file)
            .map_err(BearerSetupError::Secret)?;
        let client = crate::bearer::identity_client(ca_file, resolve)?;
        let answers = CredentialCache::new(config.cache_ttl, 10_000)
            .map_err(|_| BearerSetupError::Client("the crypto library failed to initialise".to_owned()))?;
        Ok(Self {
            client,
            endpoint: config.endpoint.clone(),
            client_id: config.client_id.clone(),
            secret,
            answers,
        })
    }

    /// Authenticates a key.
    /// Authenticates a key; with `impersonate` (`user:<name>` or `client:<id>`, from the
    /// `X-Demo-Impersonate` header) as that entity of the key's tenant, which Identity allows
    /// only to a key holding `identity:impersonate`. Answers are cached per key and entity.
    pub async fn authenticate(
        &self,
        key: &str,
        impersonate: Option<&str>,
    ) -> Result<Principal, BearerDenied> {
        // The form and checksum first, here: junk costs Identity nothing and the cache no room.
        let parsed = service_kit::apikey::parse(key)
            .map_err(|why| BearerDenied::Invalid(format!("the API key is not valid: malformed ({why})")))?;
        let secret = SecretString::from(key.to_owned());
        // The cache's name: the entity acted as (none: the owner), so each is its own answer.
        let name = format!("api_key:{}", impersonate.unwrap_or(""));
        let answer = match self.answers.get(&name, &secret) {
            Some(answer) => answer,
            None => {
                let answer = Arc::new(self.ask(key, impersonate).await?);
                self.answers.insert(&name, &secret, answer.clone());
                answer
            }
        };
        match answer.as_ref() {
            // The tenant the key names is the one Identity answered for (it looked it up there).
            Ok(principal) if principal.tenant.0.to_string() != parsed.tenant.canonical() => {
                Err(BearerDenied::Invalid("Identity answered for another tenant than the key names".into()))
            }
            Ok(principal) => Ok(principal.clone()),
            Err(reason) => Err(BearerDenied::Invalid(reason.clone())),
        }
    }

    /// Asks Identity; `Err` only when Identity cannot answer (503 here, never cached).
    async fn ask(
        &self,
        key: &str,
        impersonate: Option<&str>,
    ) -> Result<Result<Principal, String>, BearerDenied> {
        let mut form = vec![("key", key)];
        if let Some(target) = impersonate {
            form.push(("impersonate", target));
        }
        let response = self
            .client
            .post(&self.endpoint)
            .basic_auth(&self.client_id, Some(self.secret.expose_secret()))
            .form(&form)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "API key verification failed");
                BearerDenied::Unavailable
            })?;
        if !response.status().is_success() {
            tracing::warn!(status = %response.status(), "API key verification refused");
            return Err(BearerDenied::Unavailable);
        }
        let answer: Answer = response.json().await.map_err(|_| BearerDenied::Unavailable)?;
        if !answer.active {
            return Ok(Err(format!(
                "the API key is not valid: {}",
                answer.reason.as_deref().unwrap_or("inactive")
            )));
        }
        Ok(principal(&answer))
    }
}

/// The principal of an active key's answer.
fn principal(answer: &Answer) -> Result<Principal, String> {
    let tenant = answer
        .tenant_id
        .as_deref()
        .and_then(|t| t.parse::<uuid::Uuid>().ok())
        .map(TenantId)
        .ok_or("Identity's answer names no tenant")?;
    let subject = answer.sub.clone().ok_or("Identity's answer names no owner")?;
    let roles: BTreeSet<Role> = answer
        .roles
        .iter()
        .filter_map(|r| serde_json::from_value(serde_json::Value::String(r.clone())).ok())
        .collect();
    let (scopes, pool_scopes) =
        crate::authz::permitted(answer.permissions.iter().map(String::as_str), &roles);
    let actor = answer.act.as_ref().and_then(|a| a["sub"].as_str()).map(str::to_owned);
    tracing::debug!(key_id = answer.key_id.as_deref().unwrap_or(""), %subject, actor = actor.as_deref().unwrap_or(""), "API key verified at Identity");
    Ok(Principal {
        subject,
        tenant,
        roles,
        scopes,
        method: AuthMethod::ApiKey,
        txn: None,
        pool_scopes,
        actor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::Scope;

    fn answer(permissions: &[&str], roles: &[&str]) -> Answer {
        Answer {
            active: true,
            reason: None,
            tenant_id: Some("0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10".into()),
            sub: Some("svc".into()),
            key_id: Some("k".into()),
            act: None,
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    #[test]
    fn permissions_meet_roles_and_pool_permissions_hold_in_their_pool_only() {
        let p = principal(&answer(&["kms:encrypt", "kms:decrypt@pool:payments"], &["user"])).unwrap();
        assert!(p.require(Scope::Encrypt).is_ok());
        assert_eq!(p.require(Scope::Decrypt), Err(Scope::Decrypt), "decrypt only in payments");
        assert!(p.require_in(Scope::Decrypt, "payments").is_ok());
        assert_eq!(p.require_in(Scope::Decrypt, "orders"), Err(Scope::Decrypt));
        // kms:admin for a user: what the role allows of it (as for Bearer tokens), never admin.
        let admin = principal(&answer(&["kms:admin"], &["user"])).unwrap();
        assert_eq!(admin.require(Scope::Admin), Err(Scope::Admin));
        assert!(admin.require(Scope::Decrypt).is_ok());
        assert_eq!(p.method, AuthMethod::ApiKey);
        assert!(principal(&Answer { tenant_id: None, ..answer(&["kms:encrypt"], &["user"]) }).is_err());
    }
}
