//! Password authentication: realms (the `realms.yml` file realm and the database realm, the
//! store's `users` table, whose users tenant admins create through the API) tried in the
//! configured order, a bounded cache of recent successful verifications, and
//! throttled failures (`service_kit::throttle`: per user and client address with backoff, and a
//! per-user ceiling over all addresses).
//!
//! Successful verifications are cached (`service_kit::credcache`: HMAC-keyed, TTL, bounded)
//! because PBKDF2 with 600,000 rounds costs ~0.1 s of CPU. Reloading a realm clears the cache.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use service_kit::config::{Validate, Validator};
use service_kit::password::{self, PasswordHashString};
use uuid::Uuid;

use crate::authz::{AuthMethod, Principal, Role};
use crate::model::TenantId;

/// The realm file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RealmError {
    /// Reading, parsing or validating the file failed (the cause names file, key and line).
    #[error("cannot load the realm file")]
    Load(#[from] service_kit::ConfigError),
}

/// `realms.yml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealmFile {
    /// The users.
    pub users: Vec<RealmUser>,
}

/// One user of the file realm.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealmUser {
    /// Login name (no ':').
    pub username: String,
    /// PBKDF2-SHA256 PHC hash (`demo hash-password` makes one).
    #[serde(default)]
    pub password_hash: Option<String>,
    /// Plaintext password: allowed only with `demo: true`, and logged as a warning.
    #[serde(default)]
    pub password: Option<String>,
    /// Marks a documented demo account.
    #[serde(default)]
    pub demo: bool,
    /// The user's tenant (a UUID).
    pub tenant: Uuid,
    /// Roles.
    pub roles: Vec<Role>,
}

impl std::fmt::Debug for RealmUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealmUser")
            .field("username", &self.username)
            .field("tenant", &self.tenant)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

impl Validate for RealmFile {
    fn validate(&self, v: &mut Validator) {
        let mut seen = std::collections::HashSet::new();
        for (i, user) in self.users.iter().enumerate() {
            let key = |field: &str| format!("users[{i}].{field}");
            v.check(
                !user.username.is_empty() && !user.username.contains(':') && user.username.len() <= 128,
                key("username"),
                "must be 1 to 128 characters without ':'",
            );
            v.check(seen.insert(user.username.as_str()), key("username"), "is used twice");
            v.check(!user.roles.is_empty(), key("roles"), "needs at least one role");
            match (&user.password_hash, &user.password) {
                (Some(hash), None) => {
                    if let Err(e) = PasswordHashString::parse(hash) {
                        v.error(key("password_hash"), e.to_string());
                    }
                }
                (None, Some(_)) if user.demo => {}
                (None, Some(_)) => v.error(
                    key("password"),
                    "plaintext passwords are allowed only for demo users (demo: true); use password_hash",
                ),
                (Some(_), Some(_)) => v.error(key("password"), "give password_hash or password, not both"),
                (None, None) => v.error(key("password_hash"), "is missing"),
            }
        }
    }
}

#[derive(Clone)]
enum Credential {
    Hash(PasswordHashString),
    DemoPlain(SecretString),
}

impl Credential {
    /// Runs PBKDF2 for hashes: call from a blocking context.
    fn verify(&self, password: &SecretString) -> bool {
        match self {
            Credential::Hash(hash) => hash.verify(password),
            Credential::DemoPlain(plain) => {
                // Cost the same as a hashed user, so timing does not single out demo accounts.
                password::dummy_verify(password);
                let (a, b) = (plain.expose_secret().as_bytes(), password.expose_secret().as_bytes());
                aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
            }
        }
    }
}

/// A user found in a realm, not yet verified.
#[derive(Clone)]
struct Candidate {
    credential: Credential,
    tenant: TenantId,
    roles: BTreeSet<Role>,
}

struct UserEntry {
    credential: Credential,
    tenant: TenantId,
    roles: BTreeSet<Role>,
}

/// The answer of one realm about one login.
#[derive(Debug)]
pub enum Check {
    /// The realm does not know the user: ask the next one.
    Unknown,
    /// The realm knows the user and the password is wrong.
    Wrong,
    /// Authenticated.
    Ok(Principal),
}

/// The file realm.
pub struct FileRealm {
    path: PathBuf,
    users: HashMap<String, UserEntry>,
}

impl std::fmt::Debug for FileRealm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileRealm").field("path", &self.path).field("users", &self.users.len()).finish()
    }
}

impl FileRealm {
    /// Loads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, RealmError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| service_kit::ConfigError::Read { path: path.to_owned(), source })?;
        let file: RealmFile = service_kit::config::load_str(path, &text, "", Vec::new())?;
        let mut users = HashMap::new();
        for user in file.users {
            let credential = match (user.password_hash, user.password) {
                (Some(hash), _) => Credential::Hash(
                    // validate() parsed it already; parse again to keep the typed value.
                    PasswordHashString::parse(&hash).map_err(|e| service_kit::ConfigError::Validation {
                        path: path.to_owned(),
                        problems: vec![service_kit::config::Problem {
                            key: "password_hash".into(),
                            line: None,
                            message: e.to_string(),
                        }],
                    })?,
                ),
                (None, Some(plain)) => {
                    tracing::warn!(user = %user.username, file = %path.display(), "demo user with a plaintext password in the realm file");
                    Credential::DemoPlain(SecretString::from(plain))
                }
                (None, None) => continue,
            };
            users.insert(
                user.username,
                UserEntry {
                    credential,
                    tenant: TenantId(user.tenant),
                    roles: user.roles.into_iter().collect(),
                },
            );
        }
        Ok(Self { path: path.to_owned(), users })
    }

    /// Checks a login. Runs PBKDF2: call from a blocking context.
    pub fn check(&self, username: &str, password: &SecretString) -> Check {
        match self.lookup(username) {
            None => Check::Unknown,
            Some(c) if c.credential.verify(password) => {
                Check::Ok(Principal::from_roles(username, c.tenant, c.roles, AuthMethod::Basic))
            }
            Some(_) => Check::Wrong,
        }
    }

    fn lookup(&self, username: &str) -> Option<Candidate> {
        self.users.get(username).map(|u| Candidate {
            credential: u.credential.clone(),
            tenant: u.tenant,
            roles: u.roles.clone(),
        })
    }
}

/// A realm: where users and their password hashes come from.
#[derive(Debug)]
pub enum Realm {
    /// A `realms.yml` file, loaded at start and on reload.
    File(FileRealm),
    /// The `users` table of the key store.
    Database(std::sync::Arc<dyn crate::store::Store>),
}

impl Realm {
    async fn lookup(&self, username: &str) -> Result<Option<Candidate>, Denied> {
        match self {
            Realm::File(file) => Ok(file.lookup(username)),
            Realm::Database(store) => {
                let user = store.user(username).await.map_err(|e| {
                    tracing::error!(error = %e, "database realm lookup failed");
                    Denied::Unavailable
                })?;
                let Some(user) = user else { return Ok(None) };
                // A stored hash that does not meet policy can never match: treat as unknown
                // and say so in the log.
                let Ok(hash) = PasswordHashString::parse(&user.password_hash) else {
                    tracing::warn!(user = %user.username, "database realm user has an unusable password hash");
                    return Ok(None);
                };
                let roles = user.roles.iter().filter_map(|r| parse_role(r)).collect();
                Ok(Some(Candidate { credential: Credential::Hash(hash), tenant: user.tenant, roles }))
            }
        }
    }
}

/// Parses a role name as realm files spell it (`key-manager`).
fn parse_role(name: &str) -> Option<Role> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

/// Why a login failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Unknown user or wrong password (deliberately not distinguished).
    BadCredentials,
    /// A realm could not be asked (the database failed): 503, not 401.
    Unavailable,
    /// Too many recent failures for this user from this address (or from everywhere).
    Locked {
        /// Seconds until an attempt may go through again.
        retry_after: u64,
    },
}

/// Longest a login waits for a free PBKDF2 slot before it is answered 503.
const VERIFY_WAIT: Duration = Duration::from_secs(10);

fn refused(r: service_kit::throttle::Refused) -> Denied {
    match r {
        service_kit::throttle::Refused::Locked { retry_after } => Denied::Locked { retry_after },
        service_kit::throttle::Refused::Busy => Denied::Unavailable,
    }
}

/// Settings of the authenticator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthSettings {
    /// How long a successful verification is reused.
    pub cache_ttl: Duration,
    /// Most cached verifications.
    pub cache_entries: usize,
    /// Failure budgets, backoff and the per-user ceiling.
    pub throttle: service_kit::throttle::ThrottleConfig,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            cache_ttl: Duration::from_secs(60),
            cache_entries: 10_000,
            throttle: service_kit::throttle::ThrottleConfig::default(),
        }
    }
}

/// Password authentication over the configured realms.
pub struct Authenticator {
    realms: std::sync::RwLock<std::sync::Arc<Vec<Realm>>>,
    settings: AuthSettings,
    cache: service_kit::credcache::CredentialCache<Principal>,
    throttle: service_kit::throttle::LoginThrottle,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("realms", &self.realms)
            .field("settings", &self.settings)
            .finish()
    }
}

impl Authenticator {
    /// An authenticator over `realms`, tried in order.
    pub fn new(realms: Vec<Realm>, settings: AuthSettings) -> Result<Self, aws_lc_rs::error::Unspecified> {
        let cache = service_kit::credcache::CredentialCache::new(settings.cache_ttl, settings.cache_entries)
            .map_err(|_| aws_lc_rs::error::Unspecified)?;
        Ok(Self {
            realms: std::sync::RwLock::new(std::sync::Arc::new(realms)),
            settings,
            cache,
            throttle: service_kit::throttle::LoginThrottle::new(settings.throttle, VERIFY_WAIT),
        })
    }

    /// Replaces the realms (after an edit of a realm file) and forgets every cached login.
    pub fn reload(&self, realms: Vec<Realm>) {
        *self.realms.write().unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::new(realms);
        self.cache.clear();
    }

    /// Whether a configured realm knows `username`. A new user must not take a name a realm
    /// already has: the first realm that knows a name decides its logins, so the new user
    /// would either never sign in or shadow the other.
    pub async fn knows(&self, username: &str) -> Result<bool, Denied> {
        let realms = self.realms.read().unwrap_or_else(|e| e.into_inner()).clone();
        for realm in realms.iter() {
            if realm.lookup(username).await?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether the database realm is configured (so users created through the API can sign in).
    pub fn has_database_realm(&self) -> bool {
        self.realms.read().unwrap_or_else(|e| e.into_inner()).iter().any(|r| matches!(r, Realm::Database(_)))
    }

    /// Authenticates a Basic login from the client address `from`: realms in order, the first
    /// that knows the user decides.
    ///
    /// A cached success is answered first (it proves the password, so a lock an attacker
    /// caused — even from the same address — does not shut out a client that keeps using its
    /// valid credentials). Otherwise the attempt is counted *before* verification, per user and
    /// address and per user overall — attempts in flight count — so parallel guesses cannot
    /// exceed a budget (a burst of the same login waits for the attempts in flight and is
    /// answered from the cache they fill), and PBKDF2 runs behind a semaphore sized to the
    /// cores, so a flood of logins queues instead of exhausting the CPU.
    pub async fn basic(
        &self,
        username: &str,
        password: &SecretString,
        from: std::net::IpAddr,
    ) -> Result<Principal, Denied> {
        let ready = || self.cache.get(username, password);
        let attempt = match self.throttle.begin_or_wait(username, from, ready).await {
            Ok(service_kit::throttle::Admitted::Ready(principal)) => return Ok(principal),
            Ok(service_kit::throttle::Admitted::Attempt(attempt)) => attempt,
            Err(r) => return Err(refused(r)),
        };
        let result = self.verify_uncached(username, password).await;
        match &result {
            // Says nothing about the password: released without counting a failure.
            Err(Denied::Unavailable | Denied::Locked { .. }) => drop(attempt),
            _ => attempt.finish(result.is_ok()),
        }
        result
    }

    async fn verify_uncached(&self, username: &str, password: &SecretString) -> Result<Principal, Denied> {
        // Owned: it moves into the blocking task, so a cancelled request cannot free it early.
        let mut permit = Some(self.throttle.slot().await.map_err(refused)?);
        // While this request waited, another may have verified the same credentials.
        if let Some(principal) = self.cache.get(username, password) {
            return Ok(principal);
        }
        let realms = self.realms.read().unwrap_or_else(|e| e.into_inner()).clone();
        for realm in realms.iter() {
            let Some(candidate) = realm.lookup(username).await? else { continue };
            let (attempt, credential, held) = (password.clone(), candidate.credential.clone(), permit.take());
            let ok = tokio::task::spawn_blocking(move || {
                let _held = held;
                credential.verify(&attempt)
            })
            .await
            .map_err(|_| Denied::Unavailable)?;
            if !ok {
                return Err(Denied::BadCredentials);
            }
            let principal =
                Principal::from_roles(username, candidate.tenant, candidate.roles, AuthMethod::Basic);
            self.cache.insert(username, password, principal.clone());
            return Ok(principal);
        }
        // Unknown everywhere: spend the same time as a real check, so timing does not reveal
        // which user names exist.
        let (attempt, held) = (password.clone(), permit.take());
        let _ = tokio::task::spawn_blocking(move || {
            let _held = held;
            password::dummy_verify(&attempt)
        })
        .await;
        Err(Denied::BadCredentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const HERE: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    fn realm_file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("realms.yml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    const TENANT: &str = "6f1f8a5e-2b1c-4b7e-9a51-0d5e2f4c8a10";

    #[tokio::test]
    async fn hashed_and_demo_users_authenticate_and_are_cached() {
        let hash = password::hash_password(&secret("s3cret")).unwrap();
        let text = format!(
            "users:\n  - username: alice\n    password_hash: \"{}\"\n    tenant: {TENANT}\n    roles: [user]\n  - username: demo\n    password: demo-pass\n    demo: true\n    tenant: {TENANT}\n    roles: [auditor]\n",
            hash.as_str()
        );
        let (_d, path) = realm_file(&text);
        let auth =
            Authenticator::new(vec![Realm::File(FileRealm::load(&path).unwrap())], AuthSettings::default())
                .unwrap();
        let p = auth.basic("alice", &secret("s3cret"), HERE).await.unwrap();
        assert_eq!(p.tenant.to_string(), TENANT);
        assert!(p.roles.contains(&Role::User));
        // Second call is served from the cache (same result, no PBKDF2): measured by benches,
        // asserted here only for equality.
        assert_eq!(auth.basic("alice", &secret("s3cret"), HERE).await.unwrap(), p);
        assert_eq!(auth.basic("alice", &secret("wrong"), HERE).await.unwrap_err(), Denied::BadCredentials);
        assert!(auth.basic("demo", &secret("demo-pass"), HERE).await.is_ok());
        assert_eq!(auth.basic("nobody", &secret("x"), HERE).await.unwrap_err(), Denied::BadCredentials);
        // A reload forgets cached logins: a removed user no longer gets in.
        let (_d2, empty) = realm_file("users: []\n");
        auth.reload(vec![Realm::File(FileRealm::load(&empty).unwrap())]);
        assert_eq!(auth.basic("alice", &secret("s3cret"), HERE).await.unwrap_err(), Denied::BadCredentials);
    }

    #[tokio::test]
    async fn repeated_failures_lock_the_user_for_the_window() {
        let text = format!(
            "users:\n  - username: bob\n    password: right\n    demo: true\n    tenant: {TENANT}\n    roles: [user]\n"
        );
        let (_d, path) = realm_file(&text);
        let throttle = service_kit::throttle::ThrottleConfig { max_failures: 3, ..Default::default() };
        let settings = AuthSettings { throttle, ..AuthSettings::default() };
        let auth = Authenticator::new(vec![Realm::File(FileRealm::load(&path).unwrap())], settings).unwrap();
        for _ in 0..3 {
            assert_eq!(auth.basic("bob", &secret("wrong"), HERE).await.unwrap_err(), Denied::BadCredentials);
        }
        assert!(matches!(auth.basic("bob", &secret("right"), HERE).await, Err(Denied::Locked { .. })));
        // The lock holds for this address only: bob signs in from another.
        let elsewhere = std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));
        assert!(auth.basic("bob", &secret("right"), elsewhere).await.is_ok());
        // Other users are not affected.
        assert_eq!(auth.basic("carol", &secret("x"), HERE).await.unwrap_err(), Denied::BadCredentials);
    }

    #[test]
    fn bad_realm_files_name_the_key_and_line() {
        for (text, expect) in [
            (format!("users:\n  - username: a\n    password: x\n    tenant: {TENANT}\n    roles: [user]\n"), "users[0].password"),
            (format!("users:\n  - username: a\n    password_hash: nope\n    tenant: {TENANT}\n    roles: [user]\n"), "users[0].password_hash"),
            (format!("users:\n  - username: a\n    password: x\n    demo: true\n    tenant: {TENANT}\n    roles: [wizard]\n"), "roles"),
            ("users:\n  - username: a\n    password: x\n    demo: true\n    tenant: not-a-uuid\n    roles: [user]\n".to_owned(), "tenant"),
            (format!("users:\n  - username: a\n    password: x\n    demo: true\n    tenant: {TENANT}\n    roles: []\n"), "users[0].roles"),
        ] {
            let (_d, path) = realm_file(&text);
            let err = FileRealm::load(&path).unwrap_err();
            let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
            assert!(chain.contains(expect), "{expect}: {chain}");
            assert!(chain.contains("realms.yml"), "{chain}");
        }
    }
}

#[cfg(test)]
mod concurrency_tests {
    use super::tests::HERE;
    use super::*;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_guesses_cannot_exceed_the_limit_and_cached_clients_keep_working() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("realms.yml");
        let hash = password::hash_password(&SecretString::from("right".to_owned())).unwrap();
        std::fs::write(
            &path,
            format!(
                "users:\n  - username: svc\n    password_hash: \"{}\"\n    tenant: 6f1f8a5e-2b1c-4b7e-9a51-0d5e2f4c8a10\n    roles: [service]\n",
                hash.as_str()
            ),
        )
        .unwrap();
        // Locks of ten minutes and more: none ends while the test runs.
        let throttle = service_kit::throttle::ThrottleConfig {
            backoff_initial: Duration::from_secs(600),
            ..Default::default()
        };
        let settings = AuthSettings { throttle, ..AuthSettings::default() };
        let auth = Arc::new(
            Authenticator::new(vec![Realm::File(FileRealm::load(&path).unwrap())], settings).unwrap(),
        );
        // A client logs in once: its credentials are now cached.
        auth.basic("svc", &SecretString::from("right".to_owned()), HERE).await.unwrap();

        let mut guesses = tokio::task::JoinSet::new();
        for i in 0..12 {
            let auth = auth.clone();
            guesses.spawn(
                async move { auth.basic("svc", &SecretString::from(format!("guess-{i}")), HERE).await },
            );
        }
        let (mut bad, mut locked) = (0, 0);
        while let Some(result) = guesses.join_next().await {
            match result.unwrap() {
                Err(Denied::BadCredentials) => bad += 1,
                Err(Denied::Locked { .. }) => locked += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(bad, 5, "exactly max_failures guesses were checked");
        assert_eq!(locked, 7);
        // The attacker locked the name at its address, but the cached client, at the same
        // address, is not shut out.
        assert!(auth.basic("svc", &SecretString::from("right".to_owned()), HERE).await.is_ok());
        // An uncached attempt from that address is refused until the lock ends…
        assert!(matches!(
            auth.basic("svc", &SecretString::from("guess-x".to_owned()), HERE).await,
            Err(Denied::Locked { retry_after }) if retry_after > 500
        ));
        // …while from another address it is verified (and wrong), not refused.
        let elsewhere = std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));
        assert_eq!(
            auth.basic("svc", &SecretString::from("guess-y".to_owned()), elsewhere).await.unwrap_err(),
            Denied::BadCredentials
        );
    }
}
