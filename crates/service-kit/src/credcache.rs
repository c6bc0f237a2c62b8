//! A bounded TTL cache of successful credential verifications (passwords, client secrets).
//!
//! PBKDF2 with 600,000 rounds costs ~0.1 s of CPU per check, which would cap a core near ten
//! logins per second. Once a credential has been verified, its result is reused for a short
//! TTL. Entries are keyed by HMAC-SHA256 — with a random key made per process — over the name
//! and the secret, so the cache holds no secret, a changed secret misses, and keys cannot be
//! predicted or collided from outside. Only successes are cached.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};

/// The cache. `T` is what a successful verification produced (a principal, a client).
pub struct CredentialCache<T> {
    key: aws_lc_rs::hmac::Key,
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<[u8; 32], (T, Instant)>>,
}

impl<T> std::fmt::Debug for CredentialCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache").field("ttl", &self.ttl).field("capacity", &self.capacity).finish()
    }
}

/// The system random generator failed while making the cache key.
#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct CacheKeyError;

impl<T: Clone> CredentialCache<T> {
    /// An empty cache keeping entries for `ttl`, at most `capacity` of them.
    pub fn new(ttl: Duration, capacity: usize) -> Result<Self, CacheKeyError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key =
            aws_lc_rs::hmac::Key::generate(aws_lc_rs::hmac::HMAC_SHA256, &rng).map_err(|_| CacheKeyError)?;
        Ok(Self { key, ttl, capacity: capacity.max(1), entries: Mutex::new(HashMap::new()) })
    }

    fn tag(&self, name: &str, secret: &SecretString) -> [u8; 32] {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.key);
        ctx.update(&(name.len() as u64).to_be_bytes());
        ctx.update(name.as_bytes());
        ctx.update(secret.expose_secret().as_bytes());
        let mut tag = [0u8; 32];
        tag.copy_from_slice(ctx.sign().as_ref());
        tag
    }

    /// The cached result for this name and secret, if verified within the TTL.
    pub fn get(&self, name: &str, secret: &SecretString) -> Option<T> {
        let tag = self.tag(name, secret);
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(&tag).filter(|(_, at)| at.elapsed() < self.ttl).map(|(value, _)| value.clone())
    }

    /// Remembers a successful verification.
    pub fn insert(&self, name: &str, secret: &SecretString, value: T) {
        let tag = self.tag(name, secret);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
            // Still full of live entries: start over rather than track recency per entry; a
            // miss costs one verification.
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(tag, (value, Instant::now()));
    }

    /// Forgets everything (after a realm or client reload).
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> SecretString {
        SecretString::from(x.to_owned())
    }

    #[test]
    fn hits_only_the_same_name_and_secret() {
        let cache = CredentialCache::new(Duration::from_secs(60), 10).unwrap();
        cache.insert("alice", &s("pw"), 1);
        assert_eq!(cache.get("alice", &s("pw")), Some(1));
        assert_eq!(cache.get("alice", &s("pw2")), None);
        assert_eq!(cache.get("alic", &s("epw")), None, "name and secret are length-separated");
        cache.clear();
        assert_eq!(cache.get("alice", &s("pw")), None);
    }

    #[test]
    fn expires_and_stays_bounded() {
        let cache = CredentialCache::new(Duration::from_millis(1), 2).unwrap();
        cache.insert("a", &s("1"), ());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(cache.get("a", &s("1")), None);
        for i in 0..10 {
            cache.insert(&i.to_string(), &s("x"), ());
        }
        assert!(cache.entries.lock().unwrap().len() <= 2);
    }
}
