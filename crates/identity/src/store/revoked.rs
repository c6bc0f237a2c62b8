//! The revoked access tokens in memory, for the SQLite store: one process writes a SQLite
//! database, so every revocation passes through it, and introspection, userinfo and token
//! exchange need not read the database to learn whether a token was revoked.
//!
//! The set is loaded from every tenant's namespace at start and changed by every revocation the
//! store commits; until it is loaded, nothing is answered from it. Tenants are tracked too: a
//! token of a tenant the set does not know is looked up in the database (which knows whether the
//! tenant exists), and a dropped tenant is forgotten with its revocations.
//!
//! PostgreSQL keeps no such set: other replicas revoke too, and a revocation must take effect at
//! every replica at once (DESIGN §10), which no notification between processes guarantees. It
//! reads the record in one round trip instead (`super::postgres`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::TenantKey;

/// Entries beyond which a revocation first sweeps the expired ones.
const SWEEP_AT: usize = 100_000;

/// What the memory says about a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Revoked.
    Revoked,
    /// Not revoked.
    Live,
    /// The memory cannot say (not loaded yet, or a tenant it does not know): ask the database.
    Unknown,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct RevokedSet {
    inner: Mutex<Inner>,
    loaded: AtomicBool,
}

/// The known tenants (the keys) with their revocations: jti → expiry (Unix seconds).
#[derive(Debug, Default)]
struct Inner {
    tenants: HashMap<TenantKey, HashMap<String, i64>>,
    /// Revocations held, all tenants together.
    entries: usize,
    /// At this many entries a revocation first sweeps the expired ones (then twice what is
    /// left, so that a large set of live revocations is not swept on every revocation).
    next_sweep: usize,
}

/// One committed change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// A token was revoked.
    Revoked { tenant: TenantKey, jti: String, exp: i64 },
    /// A tenant was dropped.
    Dropped(TenantKey),
}

impl RevokedSet {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces everything with a fresh load (`revoked`: every unexpired revocation of every
    /// tenant); from now on the set answers.
    pub(crate) fn load(&self, tenants: Vec<TenantKey>, revoked: Vec<((TenantKey, String), i64)>) {
        let mut inner = Inner { next_sweep: SWEEP_AT, ..Inner::default() };
        for tenant in tenants {
            inner.tenants.entry(tenant).or_default();
        }
        for ((tenant, jti), exp) in revoked {
            inner.tenants.entry(tenant).or_default().insert(jti, exp);
            inner.entries += 1;
        }
        inner.next_sweep = inner.next_sweep.max(2 * inner.entries);
        *self.inner() = inner;
        self.loaded.store(true, Ordering::SeqCst);
    }

    /// What the memory says about `jti` of `tenant`.
    pub(crate) fn lookup(&self, tenant: &TenantKey, jti: &str) -> Answer {
        if !self.loaded.load(Ordering::SeqCst) {
            return Answer::Unknown;
        }
        let inner = self.inner();
        let Some(revoked) = inner.tenants.get(tenant) else { return Answer::Unknown };
        // A record past its token's expiry says nothing (the database sweeps those): the token
        // is refused for its expiry anyway.
        match revoked.get(jti) {
            Some(until) if *until >= super::now() => Answer::Revoked,
            _ => Answer::Live,
        }
    }

    /// A tenant known to exist (made here, or found in the database).
    pub(crate) fn know(&self, tenant: TenantKey) {
        self.inner().tenants.entry(tenant).or_default();
    }

    /// Applies a committed change.
    pub(crate) fn apply(&self, change: Change) {
        let mut inner = self.inner();
        match change {
            Change::Revoked { tenant, jti, exp } => {
                if inner.entries >= inner.next_sweep.max(SWEEP_AT) {
                    let now = super::now();
                    for revoked in inner.tenants.values_mut() {
                        revoked.retain(|_, until| *until >= now);
                    }
                    inner.entries = inner.tenants.values().map(HashMap::len).sum();
                    inner.next_sweep = SWEEP_AT.max(2 * inner.entries);
                }
                if inner.tenants.entry(tenant).or_default().insert(jti, exp).is_none() {
                    inner.entries += 1;
                }
            }
            Change::Dropped(tenant) => {
                if let Some(revoked) = inner.tenants.remove(&tenant) {
                    inner.entries -= revoked.len();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> TenantKey {
        TenantKey::parse("0b6f5c3e-7f4a-4d2b-9b1e-6a0c2d4e8f10").unwrap()
    }

    #[test]
    fn nothing_is_answered_before_a_load_or_for_an_unknown_tenant() {
        let set = RevokedSet::default();
        assert_eq!(set.lookup(&acme(), "j"), Answer::Unknown, "not loaded yet");
        set.load(vec![acme()], vec![((acme(), "j".into()), i64::MAX), ((acme(), "old".into()), 1)]);
        assert_eq!(set.lookup(&acme(), "j"), Answer::Revoked);
        assert_eq!(set.lookup(&acme(), "k"), Answer::Live);
        assert_eq!(set.lookup(&acme(), "old"), Answer::Live, "a record past its token's expiry");
        let other = TenantKey::parse("7d1e2a90-4b3c-4f5e-8a6b-1c2d3e4f5a6b").unwrap();
        assert_eq!(set.lookup(&other, "k"), Answer::Unknown, "a tenant made elsewhere");
        set.know(other);
        assert_eq!(set.lookup(&other, "k"), Answer::Live);
        assert_eq!(set.lookup(&other, "j"), Answer::Live, "acme's revocation is acme's");
        set.apply(Change::Revoked { tenant: other, jti: "k".into(), exp: i64::MAX });
        assert_eq!(set.lookup(&other, "k"), Answer::Revoked);
        set.apply(Change::Dropped(other));
        assert_eq!(set.lookup(&other, "k"), Answer::Unknown, "a dropped tenant goes back to the database");
    }
}
