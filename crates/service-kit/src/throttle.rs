//! Throttling credential checks, shared by every service that verifies passwords or secrets.
//! The model (the threat, and why each bound is what it is) is in `docs/security.md`,
//! "Throttling password guessing"; in short:
//!
//! * **Per (name, address) budgets with backoff.** Failures are counted per name *and* client
//!   address: `max_failures` failures are free, then every further failure locks that pair
//!   for an exponentially growing time (`backoff_initial`, doubled per failure, capped at
//!   `backoff_max`), and after a lock ends one attempt at a time is let through. A pair is
//!   forgotten once it has been quiet (no failure, no lock) for `failure_window`, or for the
//!   length of its last lock if that is longer, so waiting out the cap once does not buy a
//!   fresh budget. A success from the pair forgets it at once. Guessing from one address is
//!   slowed, and it slows only that address: the owner signing in from elsewhere is never
//!   refused because of it.
//! * **A per-name ceiling.** At most `failure_ceiling` failures per name per window from all
//!   addresses together, then the name is refused for the rest of the window: a botnet is
//!   still bounded. The ceiling must be far above what one address can reach in a window
//!   ([`ThrottleConfig::most_failures_per_address`]; the configuration check demands at least
//!   twice that), so one address can never lock anyone out. A success does not reset it.
//! * **Addresses are buckets**: an IPv4 address, or the /64 prefix of an IPv6 address (one
//!   subscriber usually gets a whole /64, so rotating addresses inside it buys nothing); an
//!   IPv4-mapped IPv6 address is its IPv4 address ([`address_bucket`]).
//! * attempts are counted **before** they are verified, in-flight ones included, so parallel
//!   guesses cannot exceed a budget or the ceiling;
//! * an [`Attempt`] is a guard: reported with [`Attempt::finish`], or — when the request is
//!   cancelled (the client hung up, a timeout fired) or ended for a reason that says nothing
//!   about the credentials (no verification slot, a database error) — dropped, which releases
//!   it without counting a failure. A cancelled request can never leave a name locked;
//! * expensive verifications (PBKDF2) run behind a semaphore sized to the cores, whose permit
//!   ([`LoginThrottle::slot`]) is owned, so it moves into the blocking task and is held until
//!   the hash is done even if the request is cancelled: the CPU bound holds;
//! * the tables are bounded so that filling them is expensive and evicts nothing that
//!   matters: names are capped at 256 bytes; one address holds at most 64 names (past that,
//!   that address — and only it — is refused new names until one of its entries expires, which
//!   also bounds password spraying); at most 65,536 (name, address) pairs and 65,536 names are
//!   tracked. Only failures, locks and attempts in flight are kept (a success leaves nothing),
//!   so every kept entry cost its maker a PBKDF2 verification. When a table is full, expired
//!   entries go first, then the entry whose loss helps a guesser least — not locked, nothing in
//!   flight, fewest failures; locked entries and entries in flight are never evicted, and only
//!   when nothing else is left is a new entry refused as busy.
//!
//! Callers answer a cached success before asking the throttle, so a lock someone else caused —
//! even from the same address — does not shut out a client that keeps using its valid
//! credentials. When a budget is filled by attempts still in flight rather than by failures —
//! a client opening many connections at once with a valid secret —
//! [`LoginThrottle::begin_or_wait`] waits for them and answers from the cache their success
//! filled, instead of refusing a legitimate burst.
//!
//! The address is the TCP peer's ([`PeerAddr`]). `X-Forwarded-For` is not trusted: behind a
//! reverse proxy every client would share the proxy's address, so such a deployment needs a
//! configured list of trusted proxies whose header is believed (not built).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::config::Validator;

/// Why an attempt may not proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Too many recent failures (or attempts in flight) for this name from this address, or
    /// for this name from everywhere.
    Locked {
        /// Seconds until an attempt may be let through again.
        retry_after: u64,
    },
    /// No verification slot came free in time, or the tables are full of entries that may not
    /// be evicted.
    Busy,
}

/// The throttle's settings (Identity's `throttle:` section; the KMS spells the same fields
/// under `auth:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// Free failures per name and client address before backoff starts.
    pub max_failures: u32,
    /// How long a quiet (name, address) pair is remembered; also the window of the per-name
    /// ceiling.
    #[serde(with = "humantime_serde")]
    pub failure_window: Duration,
    /// The first lock once a pair's free failures are spent; doubled per further failure.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// The longest lock.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Failures per name per window from all addresses together, then the name is refused
    /// for the rest of the window.
    pub failure_ceiling: u32,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            max_failures: 5,
            failure_window: Duration::from_secs(60),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(15 * 60),
            failure_ceiling: 100,
        }
    }
}

impl ThrottleConfig {
    /// The lock after the `n`th failure beyond the free budget (`n = 0`: the failure that
    /// spent it): `backoff_initial · 2ⁿ`, at most `backoff_max`.
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n).unwrap_or(u32::MAX);
        self.backoff_initial.saturating_mul(factor).min(self.backoff_max)
    }

    /// The most failures one address can have verified for one name within one window: the
    /// free budget at once, then one probe at the end of each lock.
    pub fn most_failures_per_address(&self) -> u32 {
        let mut count = u64::from(self.max_failures);
        let mut elapsed = Duration::ZERO;
        for n in 0..64 {
            let lock = self.backoff(n);
            if lock.is_zero() {
                return u32::MAX;
            }
            if lock >= self.backoff_max {
                // Steady state: probes at elapsed + k·lock, k ≥ 1, inside the window.
                let left = self.failure_window.saturating_sub(elapsed).as_nanos();
                count += u64::try_from(left.saturating_sub(1) / lock.as_nanos()).unwrap_or(u64::MAX);
                break;
            }
            elapsed += lock;
            if elapsed >= self.failure_window {
                break;
            }
            count += 1;
        }
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Checks the settings; `prefix` is where they live in the file (`auth.`, `throttle.`).
    pub fn validate(&self, prefix: &str, v: &mut Validator) {
        let key = |field: &str| format!("{prefix}{field}");
        let day = Duration::from_secs(86_400);
        v.check(self.max_failures >= 1, key("max_failures"), "at least 1");
        v.check(
            self.failure_window >= Duration::from_secs(1) && self.failure_window <= day,
            key("failure_window"),
            "must be between 1s and 24h",
        );
        v.check(
            self.backoff_max >= Duration::from_millis(1) && self.backoff_max <= day,
            key("backoff_max"),
            "must be between 1ms and 24h",
        );
        v.check(
            self.backoff_initial >= Duration::from_millis(1) && self.backoff_initial <= self.backoff_max,
            key("backoff_initial"),
            format!("must be at least 1ms and at most {prefix}backoff_max"),
        );
        let one = self.most_failures_per_address();
        v.check(
            self.failure_ceiling >= one.saturating_mul(2),
            key("failure_ceiling"),
            format!(
                "must be at least {} (twice the {one} failures one address can reach in a window), \
                 or a single address could lock the name out",
                one.saturating_mul(2)
            ),
        );
    }
}

/// The bucket an address is counted in: an IPv4 address itself, an IPv6 address's /64 prefix
/// (the unit one subscriber is usually given), an IPv4-mapped IPv6 address's IPv4 address.
pub fn address_bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

/// The client's address as the TCP connection shows it (`service_kit::server` serves with
/// connection info). `X-Forwarded-For` is deliberately ignored. A router served without
/// connection info (a test calling it in process) sees `0.0.0.0` for every request: one shared
/// bucket, the strict side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub IpAddr);

impl PeerAddr {
    /// The address from a request's extensions.
    pub fn from_extensions(extensions: &http::Extensions) -> Self {
        extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map_or(Self(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), |info| Self(info.0.ip()))
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_extensions(&parts.extensions))
    }
}

/// One (name, address bucket) pair.
#[derive(Debug, Clone, Copy)]
struct Pair {
    failures: u32,
    in_flight: u32,
    /// No attempt before this; when not locked, the time of the last failure.
    locked_until: Instant,
    /// The length of the last lock (zero while the free budget lasts).
    lock: Duration,
}

impl Pair {
    fn fresh(now: Instant) -> Self {
        Self { failures: 0, in_flight: 0, locked_until: now, lock: Duration::ZERO }
    }

    /// Forgotten once quiet for the window, or for its last lock if that is longer.
    fn expired(&self, now: Instant, window: Duration) -> bool {
        self.in_flight == 0
            && self.locked_until.checked_add(self.lock.max(window)).is_none_or(|end| now >= end)
    }

    fn evictable(&self, now: Instant) -> bool {
        self.in_flight == 0 && now >= self.locked_until
    }
}

/// The per-name ceiling's count.
#[derive(Debug, Clone, Copy)]
struct NameCount {
    failures: u32,
    in_flight: u32,
    since: Instant,
}

impl NameCount {
    fn window_over(&self, now: Instant, window: Duration) -> bool {
        now.duration_since(self.since) >= window
    }
}

/// Table sizes (constants in production; small in the unit tests).
#[derive(Debug, Clone, Copy)]
struct Bounds {
    pairs: usize,
    names: usize,
    per_address: usize,
}

const BOUNDS: Bounds = Bounds { pairs: 65_536, names: 65_536, per_address: 64 };
const MAX_NAME_BYTES: usize = 256;

#[derive(Debug, Default)]
struct Tables {
    /// Address bucket → name → pair.
    addresses: HashMap<IpAddr, HashMap<String, Pair>>,
    /// How many pairs `addresses` holds.
    pairs: usize,
    names: HashMap<String, NameCount>,
}

struct Inner {
    config: ThrottleConfig,
    bounds: Bounds,
    wait: Duration,
    tables: Mutex<Tables>,
    verifiers: Arc<tokio::sync::Semaphore>,
    finished: tokio::sync::Notify,
}

/// The throttle.
pub struct LoginThrottle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

/// What [`LoginThrottle::begin_or_wait`] found.
#[derive(Debug)]
pub enum Admitted<T> {
    /// The check passed while waiting (another attempt's success filled the cache).
    Ready(T),
    /// Verify, then report with [`Attempt::finish`] (or drop it: neutral).
    Attempt(Attempt),
}

/// Inside `begin`: locked by failures, or only by attempts in flight.
enum Full {
    Locked(u64),
    InFlight(u64),
    Crowded,
}

/// A counted attempt in flight. Report its result with [`Attempt::finish`]; dropping it
/// releases it without counting a failure (cancellation, busy, internal errors).
#[must_use = "report the attempt's result with Attempt::finish, or drop it to release it neutrally"]
pub struct Attempt {
    name: String,
    bucket: IpAddr,
    inner: Arc<Inner>,
    reported: bool,
}

impl std::fmt::Debug for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt").finish_non_exhaustive()
    }
}

impl Attempt {
    /// Reports how the verification ended: a failure counts toward the pair's budget and the
    /// name's ceiling, a success forgets the pair's failures (not the name's).
    pub fn finish(mut self, succeeded: bool) {
        self.reported = true;
        self.inner.record(&self.name, self.bucket, Some(succeeded));
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.reported {
            self.inner.record(&self.name, self.bucket, None);
        }
    }
}

fn key(name: &str) -> String {
    let mut end = name.len().min(MAX_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

/// Whole seconds, rounded up, at least 1: what `Retry-After` says.
fn secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

impl Tables {
    fn pair(&self, bucket: IpAddr, name: &str) -> Option<&Pair> {
        self.addresses.get(&bucket).and_then(|m| m.get(name))
    }

    /// Drops the expired pairs of `bucket` (`None`: of every bucket).
    fn prune_pairs(&mut self, bucket: Option<IpAddr>, now: Instant, window: Duration) {
        let mut removed = 0;
        self.addresses.retain(|b, pairs| {
            if bucket.is_none_or(|only| only == *b) {
                let before = pairs.len();
                pairs.retain(|_, p| !p.expired(now, window));
                removed += before - pairs.len();
            }
            !pairs.is_empty()
        });
        self.pairs -= removed;
    }

    fn remove_pair(&mut self, bucket: IpAddr, name: &str) {
        if let Some(pairs) = self.addresses.get_mut(&bucket)
            && pairs.remove(name).is_some()
        {
            self.pairs -= 1;
            if pairs.is_empty() {
                self.addresses.remove(&bucket);
            }
        }
    }

    /// Makes room for a new pair, or says why not.
    fn room_for_pair(
        &mut self,
        bucket: IpAddr,
        c: &ThrottleConfig,
        b: Bounds,
        now: Instant,
    ) -> Result<(), Full> {
        let window = c.failure_window;
        if self.addresses.get(&bucket).is_some_and(|m| m.len() >= b.per_address) {
            self.prune_pairs(Some(bucket), now, window);
            if let Some(pairs) = self.addresses.get(&bucket)
                && pairs.len() >= b.per_address
            {
                // This address tracks as many names as it may: it alone waits for one to expire.
                let soonest = pairs
                    .values()
                    .filter(|p| p.in_flight == 0)
                    .filter_map(|p| p.locked_until.checked_add(p.lock.max(window)))
                    .min()
                    .map_or(1, |end| secs(end.saturating_duration_since(now)));
                return Err(Full::Locked(soonest));
            }
        }
        if self.pairs >= b.pairs {
            self.prune_pairs(None, now, window);
        }
        if self.pairs >= b.pairs {
            // Full of live entries: drop the one whose loss helps a guesser least.
            let victim = self
                .addresses
                .iter()
                .flat_map(|(b, pairs)| pairs.iter().map(move |(n, p)| (b, n, p)))
                .filter(|(_, _, p)| p.evictable(now))
                .min_by_key(|(_, _, p)| (p.failures, p.locked_until))
                .map(|(b, n, _)| (*b, n.clone()));
            let Some((b, n)) = victim else { return Err(Full::Crowded) };
            self.remove_pair(b, &n);
        }
        Ok(())
    }

    /// Makes room for a new name, or says why not.
    fn room_for_name(&mut self, c: &ThrottleConfig, b: Bounds, now: Instant) -> Result<(), Full> {
        if self.names.len() < b.names {
            return Ok(());
        }
        let window = c.failure_window;
        self.names.retain(|_, n| n.in_flight > 0 || (n.failures > 0 && !n.window_over(now, window)));
        if self.names.len() < b.names {
            return Ok(());
        }
        let victim = self
            .names
            .iter()
            .filter(|(_, n)| n.in_flight == 0 && n.failures < c.failure_ceiling)
            .min_by_key(|(_, n)| (n.failures, n.since))
            .map(|(name, _)| name.clone());
        let Some(victim) = victim else { return Err(Full::Crowded) };
        self.names.remove(&victim);
        Ok(())
    }
}

/// May the pair let another attempt through?
fn pair_verdict(p: &Pair, c: &ThrottleConfig, now: Instant) -> Result<(), Full> {
    if now < p.locked_until {
        return Err(Full::Locked(secs(p.locked_until - now)));
    }
    let full = if p.failures < c.max_failures {
        p.failures + p.in_flight >= c.max_failures
    } else {
        // The budget is spent: one probe at a time once a lock ends.
        p.in_flight > 0
    };
    if full { Err(Full::InFlight(1)) } else { Ok(()) }
}

/// May the name take another attempt under its ceiling?
fn name_verdict(n: &NameCount, c: &ThrottleConfig, now: Instant) -> Result<(), Full> {
    let left = secs(c.failure_window.saturating_sub(now.duration_since(n.since)));
    if n.failures >= c.failure_ceiling {
        Err(Full::Locked(left))
    } else if n.failures + n.in_flight >= c.failure_ceiling {
        Err(Full::InFlight(left))
    } else {
        Ok(())
    }
}

impl Inner {
    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Some(ok)`: a verification result; `None`: released without a verdict.
    fn record(&self, name: &str, bucket: IpAddr, outcome: Option<bool>) {
        let now = Instant::now();
        let c = &self.config;
        {
            let mut tables = self.tables();
            let mut forget = false;
            if let Some(p) = tables.addresses.get_mut(&bucket).and_then(|m| m.get_mut(name)) {
                p.in_flight = p.in_flight.saturating_sub(1);
                match outcome {
                    Some(true) => *p = Pair { in_flight: p.in_flight, ..Pair::fresh(now) },
                    Some(false) => {
                        p.failures = p.failures.saturating_add(1);
                        if p.failures >= c.max_failures {
                            p.lock = c.backoff(p.failures - c.max_failures);
                            p.locked_until = now.checked_add(p.lock).unwrap_or(now);
                        } else {
                            p.locked_until = now;
                        }
                    }
                    None => {}
                }
                forget = p.failures == 0 && p.in_flight == 0;
            }
            if forget {
                tables.remove_pair(bucket, name);
            }
            let mut forget = false;
            if let Some(n) = tables.names.get_mut(name) {
                n.in_flight = n.in_flight.saturating_sub(1);
                if outcome == Some(false) {
                    if n.window_over(now, c.failure_window) {
                        n.failures = 0;
                        n.since = now;
                    }
                    n.failures = n.failures.saturating_add(1);
                    if n.failures == c.failure_ceiling {
                        tracing::warn!(
                            name = ?name,
                            ceiling = c.failure_ceiling,
                            "failed logins from all addresses together reached the ceiling: the name is \
                             refused to everyone without cached credentials for the rest of the window \
                             (distributed guessing?)"
                        );
                    }
                }
                forget = n.failures == 0 && n.in_flight == 0;
            }
            if forget {
                tables.names.remove(name);
            }
        }
        self.finished.notify_waiters();
    }
}

impl LoginThrottle {
    /// A throttle with `config`; verifications wait at most `wait` for a slot.
    pub fn new(config: ThrottleConfig, wait: Duration) -> Self {
        Self::with_bounds(config, wait, BOUNDS)
    }

    fn with_bounds(config: ThrottleConfig, wait: Duration, bounds: Bounds) -> Self {
        let slots = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let config = ThrottleConfig {
            max_failures: config.max_failures.max(1),
            failure_ceiling: config.failure_ceiling.max(1),
            ..config
        };
        Self {
            inner: Arc::new(Inner {
                config,
                bounds,
                wait,
                tables: Mutex::new(Tables::default()),
                verifiers: Arc::new(tokio::sync::Semaphore::new(slots)),
                finished: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Counts an attempt for `name` from `from`, or refuses it.
    pub fn begin(&self, name: &str, from: IpAddr) -> Result<Attempt, Refused> {
        self.try_begin(name, from).map_err(|full| match full {
            Full::Locked(retry_after) | Full::InFlight(retry_after) => Refused::Locked { retry_after },
            Full::Crowded => Refused::Busy,
        })
    }

    /// Like [`begin`](Self::begin), but while a budget is filled only by attempts in flight,
    /// waits (at most the slot wait) for them to finish, asking `ready` — typically a cache
    /// lookup — after each. Failures still lock at once.
    pub async fn begin_or_wait<T>(
        &self,
        name: &str,
        from: IpAddr,
        mut ready: impl FnMut() -> Option<T>,
    ) -> Result<Admitted<T>, Refused> {
        let deadline = tokio::time::Instant::now() + self.inner.wait;
        loop {
            // Registered before the check, so a finish between check and wait is not missed.
            let finished = self.inner.finished.notified();
            if let Some(value) = ready() {
                return Ok(Admitted::Ready(value));
            }
            match self.try_begin(name, from) {
                Ok(attempt) => return Ok(Admitted::Attempt(attempt)),
                Err(Full::Locked(retry_after)) => return Err(Refused::Locked { retry_after }),
                Err(Full::Crowded) => return Err(Refused::Busy),
                Err(Full::InFlight(retry_after)) => {
                    if tokio::time::timeout_at(deadline, finished).await.is_err() {
                        return Err(Refused::Locked { retry_after });
                    }
                }
            }
        }
    }

    fn try_begin(&self, name: &str, from: IpAddr) -> Result<Attempt, Full> {
        let inner = &self.inner;
        let c = &inner.config;
        let name = key(name);
        let bucket = address_bucket(from);
        let now = Instant::now();
        let mut guard = inner.tables();
        let tables = &mut *guard;

        // The pair's budget. Nothing is created until every check has passed.
        match tables.pair(bucket, &name) {
            Some(p) if !p.expired(now, c.failure_window) => pair_verdict(p, c, now)?,
            Some(_) => {
                // Quiet long enough: forgotten, and recreated below.
                tables.remove_pair(bucket, &name);
                tables.room_for_pair(bucket, c, inner.bounds, now)?;
            }
            None => tables.room_for_pair(bucket, c, inner.bounds, now)?,
        }
        // The name's ceiling.
        match tables.names.get(&name) {
            Some(n) if !n.window_over(now, c.failure_window) => name_verdict(n, c, now)?,
            Some(_) => {}
            None => tables.room_for_name(c, inner.bounds, now)?,
        }

        let Tables { addresses, pairs, names } = tables;
        let pair = addresses.entry(bucket).or_default().entry(name.clone()).or_insert_with(|| {
            *pairs += 1;
            Pair::fresh(now)
        });
        pair.in_flight += 1;
        let count = names.entry(name.clone()).or_insert(NameCount { failures: 0, in_flight: 0, since: now });
        if count.window_over(now, c.failure_window) {
            count.failures = 0;
            count.since = now;
        }
        count.in_flight += 1;
        Ok(Attempt { name, bucket, inner: inner.clone(), reported: false })
    }

    /// Reports how a counted attempt ended (the same as [`Attempt::finish`]).
    pub fn finish(&self, attempt: Attempt, succeeded: bool) {
        attempt.finish(succeeded);
    }

    /// Waits for a verification slot. The permit is owned: move it into the blocking task that
    /// hashes, so it is held until the hash is done even if the request is cancelled.
    pub async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Refused> {
        tokio::time::timeout(self.inner.wait, self.inner.verifiers.clone().acquire_owned())
            .await
            .map_err(|_| Refused::Busy)?
            .map_err(|_| Refused::Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// `max` free failures, then locks of an hour (nothing expires during a test).
    fn config(max: u32) -> ThrottleConfig {
        ThrottleConfig {
            max_failures: max,
            failure_window: Duration::from_secs(3600),
            backoff_initial: Duration::from_secs(3600),
            backoff_max: Duration::from_secs(4 * 3600),
            failure_ceiling: 1000,
        }
    }

    fn throttle(c: ThrottleConfig) -> LoginThrottle {
        LoginThrottle::new(c, Duration::from_secs(1))
    }

    fn fail(t: &LoginThrottle, name: &str, from: IpAddr) {
        t.begin(name, from).unwrap().finish(false);
    }

    fn pair(t: &LoginThrottle, name: &str, from: IpAddr) -> Option<Pair> {
        t.inner.tables().pair(address_bucket(from), name).copied()
    }

    #[test]
    fn in_flight_attempts_count_and_success_resets() {
        let t = throttle(config(2));
        let a = t.begin("x", A).unwrap();
        let b = t.begin("x", A).unwrap();
        assert!(matches!(t.begin("x", A), Err(Refused::Locked { .. })), "two in flight fill the budget");
        assert!(t.begin("y", A).is_ok(), "names are separate");
        t.finish(a, true);
        t.finish(b, false);
        let c = t.begin("x", A).unwrap();
        t.finish(c, false);
        assert!(matches!(t.begin("x", A), Err(Refused::Locked { .. })), "two failures lock");
    }

    #[test]
    fn a_dropped_attempt_releases_its_place_without_counting_a_failure() {
        let t = throttle(config(2));
        for _ in 0..10 {
            // A cancelled request: the attempt is dropped mid-verification.
            drop(t.begin("x", A).unwrap());
        }
        let a = t.begin("x", A).expect("cancelled attempts leave nothing in flight");
        let b = t.begin("x", A).unwrap();
        a.finish(false);
        drop(b);
        assert!(t.begin("x", A).is_ok(), "one failure and one neutral release: not locked");
        assert_eq!(t.inner.tables().names["x"].failures, 1, "the ceiling counted the one failure only");
    }

    #[test]
    fn one_address_locks_only_itself() {
        let t = throttle(config(3));
        for _ in 0..3 {
            fail(&t, "alice", A);
        }
        let Err(Refused::Locked { retry_after }) = t.begin("alice", A) else { panic!("A is locked") };
        assert!((3599..=3600).contains(&retry_after), "the first backoff step: {retry_after}");
        t.begin("alice", B).expect("another address is not locked").finish(true);
        assert!(t.begin("alice", A).is_err(), "B's success does not unlock A");
        assert!(pair(&t, "alice", B).is_none(), "a success leaves nothing behind");
    }

    #[test]
    fn ipv6_addresses_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(address_bucket(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(address_bucket(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")), ip("2001:db8:1:2::"));
        assert_eq!(address_bucket(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(address_bucket(ip("192.0.2.7")), ip("192.0.2.7"));

        let t = throttle(config(2));
        fail(&t, "bob", ip("2001:db8:1:2::1"));
        fail(&t, "bob", ip("2001:db8:1:2:dead:beef:0:1"));
        assert!(t.begin("bob", ip("2001:db8:1:2:ffff::9")).is_err(), "rotating inside the /64 buys nothing");
        assert!(t.begin("bob", ip("2001:db8:1:3::1")).is_ok(), "the next /64 is another bucket");
        fail(&t, "carol", ip("::ffff:192.0.2.7"));
        fail(&t, "carol", ip("192.0.2.7"));
        assert!(t.begin("carol", ip("192.0.2.7")).is_err(), "a mapped address is its IPv4 address");
    }

    #[test]
    fn backoff_doubles_per_failure_up_to_the_cap() {
        let c = ThrottleConfig {
            max_failures: 5,
            failure_window: Duration::from_secs(60),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(900),
            failure_ceiling: 100,
        };
        let steps: Vec<u64> = (0..12).map(|n| c.backoff(n).as_secs()).collect();
        assert_eq!(steps, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]);
        assert_eq!(c.backoff(u32::MAX), c.backoff_max, "no overflow");
        // Five at once, then probes at 1, 3, 7, 15 and 31 s; the next would be at 63 s.
        assert_eq!(c.most_failures_per_address(), 10);
        let capped = ThrottleConfig { backoff_max: Duration::from_secs(10), ..c };
        // 5, then probes at 1, 3, 7, 15, 25, 35, 45 and 55 s.
        assert_eq!(capped.most_failures_per_address(), 13);
    }

    #[test]
    fn each_failure_past_the_budget_locks_longer_and_one_probe_goes_through_at_a_time() {
        // Locks of 20, 40, 80 ms: short enough to wait out, in a test that asserts no timing.
        let c = ThrottleConfig {
            max_failures: 2,
            failure_window: Duration::from_secs(3600),
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(80),
            failure_ceiling: 1000,
        };
        let t = throttle(c);
        fail(&t, "x", A);
        assert_eq!(pair(&t, "x", A).unwrap().lock, Duration::ZERO, "inside the free budget");
        fail(&t, "x", A);
        let mut locks = vec![pair(&t, "x", A).unwrap().lock];
        for _ in 0..3 {
            let until = pair(&t, "x", A).unwrap().locked_until;
            std::thread::sleep(until.saturating_duration_since(Instant::now()) + Duration::from_millis(1));
            let probe = t.begin("x", A).expect("the lock ended: one probe");
            assert!(matches!(t.begin("x", A), Err(Refused::Locked { retry_after: 1 })), "only one at a time");
            probe.finish(false);
            locks.push(pair(&t, "x", A).unwrap().lock);
        }
        let ms: Vec<u128> = locks.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [20, 40, 80, 80]);
        // A success after the lock forgets the pair: the full budget is back.
        let until = pair(&t, "x", A).unwrap().locked_until;
        std::thread::sleep(until.saturating_duration_since(Instant::now()) + Duration::from_millis(1));
        t.begin("x", A).unwrap().finish(true);
        assert!(pair(&t, "x", A).is_none());
        let (a, b) = (t.begin("x", A).unwrap(), t.begin("x", A).unwrap());
        drop((a, b));
    }

    #[test]
    fn a_quiet_pair_is_forgotten_but_not_before_its_last_lock_has_passed_again() {
        let quiet =
            Pair { failures: 9, in_flight: 0, locked_until: Instant::now(), lock: Duration::from_secs(900) };
        let window = Duration::from_secs(60);
        assert!(
            !quiet.expired(quiet.locked_until + Duration::from_secs(120), window),
            "lock longer than window"
        );
        assert!(quiet.expired(quiet.locked_until + Duration::from_secs(900), window));
        let short = Pair { lock: Duration::ZERO, ..quiet };
        assert!(!short.expired(short.locked_until + Duration::from_secs(59), window));
        assert!(short.expired(short.locked_until + window, window));
        let busy = Pair { in_flight: 1, ..short };
        assert!(
            !busy.expired(busy.locked_until + Duration::from_secs(86_400), window),
            "never while in flight"
        );

        let t = throttle(ThrottleConfig {
            failure_window: Duration::from_millis(20),
            backoff_initial: Duration::from_millis(1),
            backoff_max: Duration::from_millis(1),
            ..config(1)
        });
        fail(&t, "x", A);
        std::thread::sleep(Duration::from_millis(25));
        let again = t.begin("x", A).expect("the quiet pair was forgotten");
        assert_eq!(pair(&t, "x", A).unwrap().failures, 0);
        drop(again);
    }

    #[test]
    fn the_ceiling_bounds_many_addresses_but_one_address_cannot_reach_it() {
        let t = throttle(ThrottleConfig { failure_ceiling: 6, ..config(2) });
        // One address: its budget ends long before the ceiling.
        fail(&t, "x", ip("10.0.0.1"));
        fail(&t, "x", ip("10.0.0.1"));
        assert!(t.begin("x", ip("10.0.0.1")).is_err());
        assert!(t.begin("x", ip("10.0.0.99")).is_ok(), "one address locks out no one else");
        // Three addresses together reach the ceiling: now everyone is refused.
        for host in 2..=3 {
            let from = IpAddr::V4(Ipv4Addr::new(10, 0, 0, host));
            fail(&t, "x", from);
            fail(&t, "x", from);
        }
        let Err(Refused::Locked { retry_after }) = t.begin("x", ip("10.0.0.99")) else {
            panic!("the name is at its ceiling")
        };
        assert!(retry_after > 3000, "until the name's window ends: {retry_after}");
        assert!(t.begin("y", ip("10.0.0.99")).is_ok(), "other names are not affected");
    }

    #[test]
    fn attempts_in_flight_count_toward_the_ceiling() {
        let t = throttle(ThrottleConfig { failure_ceiling: 3, ..config(5) });
        let held: Vec<_> =
            (1..=3).map(|h| t.begin("x", IpAddr::V4(Ipv4Addr::new(10, 0, 0, h))).unwrap()).collect();
        assert!(t.begin("x", ip("10.0.0.9")).is_err(), "three in flight from three addresses fill it");
        drop(held);
        assert!(t.begin("x", ip("10.0.0.9")).is_ok(), "released without a verdict: nothing counted");
    }

    #[test]
    fn the_configuration_check_keeps_the_ceiling_far_above_one_address() {
        let mut v = Validator::default();
        ThrottleConfig::default().validate("auth.", &mut v);
        assert!(format!("{v:?}").contains("problems: []"), "{v:?}");
        let mut v = Validator::default();
        ThrottleConfig { failure_ceiling: 12, ..ThrottleConfig::default() }.validate("auth.", &mut v);
        let text = format!("{v:?}");
        assert!(text.contains("auth.failure_ceiling") && text.contains("at least 20"), "{text}");
        let mut v = Validator::default();
        let bad = ThrottleConfig {
            max_failures: 0,
            backoff_initial: Duration::from_secs(2000),
            ..ThrottleConfig::default()
        };
        bad.validate("throttle.", &mut v);
        let text = format!("{v:?}");
        assert!(
            text.contains("throttle.max_failures") && text.contains("throttle.backoff_initial"),
            "{text}"
        );
    }

    #[test]
    fn long_names_share_one_bounded_key() {
        let t = throttle(config(1));
        let long = "é".repeat(1000);
        fail(&t, &long, A);
        assert!(t.begin(&format!("{long}suffix"), A).is_err(), "only the first 256 bytes are the key");
        let tables = t.inner.tables();
        assert!(tables.names.keys().all(|k| k.len() <= MAX_NAME_BYTES));
        assert!(tables.addresses.values().flat_map(HashMap::keys).all(|k| k.len() <= MAX_NAME_BYTES));
    }

    fn small(per_address: usize, pairs: usize, names: usize) -> LoginThrottle {
        LoginThrottle::with_bounds(config(3), Duration::from_secs(1), Bounds { pairs, names, per_address })
    }

    #[test]
    fn one_address_may_hold_only_so_many_names_and_that_refuses_only_it() {
        let t = small(4, 100, 100);
        for i in 0..4 {
            fail(&t, &format!("user{i}"), A);
        }
        assert!(
            matches!(t.begin("user9", A), Err(Refused::Locked { retry_after }) if retry_after > 3000),
            "A sprayed four names: a fifth waits until one of its entries expires"
        );
        assert!(t.begin("user0", A).is_ok(), "names it already tracks still take attempts");
        assert!(t.begin("user9", B).is_ok(), "another address is not affected");
        assert_eq!(t.inner.tables().pairs, 4, "released attempts without failures leave nothing");
    }

    #[test]
    fn a_full_table_evicts_what_helps_a_guesser_least_and_never_a_lock() {
        let t = small(10, 4, 100);
        // A locked pair (three failures) and three pairs with one failure each.
        for _ in 0..3 {
            fail(&t, "victim", A);
        }
        fail(&t, "one", B);
        fail(&t, "two", B);
        fail(&t, "two", B);
        fail(&t, "three", B);
        assert_eq!(t.inner.tables().pairs, 4);
        // A new pair evicts the least valuable: a single failure, the older of the two.
        t.begin("new", ip("192.0.2.3")).unwrap().finish(false);
        assert!(pair(&t, "one", B).is_none(), "the oldest single failure went");
        assert_eq!(pair(&t, "two", B).unwrap().failures, 2);
        assert!(matches!(t.begin("victim", A), Err(Refused::Locked { .. })), "the lock survived");
        assert_eq!(t.inner.tables().pairs, 4);
        // When every entry is locked or in flight, a newcomer is refused as busy.
        let held: Vec<_> = ["two", "three", "new"]
            .iter()
            .map(|n| t.begin(n, if *n == "new" { ip("192.0.2.3") } else { B }).unwrap())
            .collect();
        assert_eq!(t.begin("late", ip("192.0.2.4")).err(), Some(Refused::Busy));
        drop(held);
        assert!(t.begin("late", ip("192.0.2.4")).is_ok(), "room again once nothing is held");
    }

    #[test]
    fn the_name_table_is_bounded_and_keeps_names_at_their_ceiling() {
        let t = LoginThrottle::with_bounds(
            ThrottleConfig { failure_ceiling: 2, ..config(5) },
            Duration::from_secs(1),
            Bounds { pairs: 100, names: 2, per_address: 100 },
        );
        fail(&t, "hot", A);
        fail(&t, "hot", B);
        fail(&t, "cold", A);
        t.begin("third", A).unwrap().finish(false);
        let tables = t.inner.tables();
        assert_eq!(tables.names.len(), 2);
        assert!(tables.names.contains_key("hot"), "a name at its ceiling is never evicted");
        assert!(!tables.names.contains_key("cold"));
        drop(tables);
        assert!(t.begin("hot", ip("192.0.2.9")).is_err(), "still at its ceiling");
    }

    #[tokio::test]
    async fn the_slot_permit_outlives_a_cancelled_request() {
        let t = LoginThrottle::new(config(5), Duration::from_millis(10));
        let slots = t.inner.verifiers.available_permits();
        let mut permits = Vec::new();
        for _ in 0..slots {
            permits.push(t.slot().await.unwrap());
        }
        // Every permit is held (as by blocking tasks still hashing): the next waits, then is busy.
        assert!(matches!(t.slot().await, Err(Refused::Busy)));
        drop(permits);
        assert!(t.slot().await.is_ok());
    }

    #[tokio::test]
    async fn a_burst_waits_for_the_attempts_in_flight_instead_of_being_refused() {
        let t = Arc::new(LoginThrottle::new(config(1), Duration::from_secs(5)));
        let verified = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let first = match t.begin_or_wait("x", A, || None::<()>).await.unwrap() {
            Admitted::Attempt(a) => a,
            Admitted::Ready(()) => panic!("nothing is cached yet"),
        };
        let waiter = {
            let (t, verified) = (t.clone(), verified.clone());
            tokio::spawn(async move {
                t.begin_or_wait("x", A, || verified.load(std::sync::atomic::Ordering::SeqCst).then_some(()))
                    .await
            })
        };
        // Let the waiter reach its wait (it cannot finish: nothing is verified yet).
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished(), "the second attempt waits for the first");
        verified.store(true, std::sync::atomic::Ordering::SeqCst);
        first.finish(true);
        assert!(matches!(waiter.await.unwrap(), Ok(Admitted::Ready(()))));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_still_lock_at_once_and_waiting_is_bounded() {
        let t = LoginThrottle::new(config(1), Duration::from_millis(50));
        let a = t.begin("x", A).unwrap();
        // In flight, never finished: the waiter gives up after the bounded wait.
        let started = tokio::time::Instant::now();
        assert!(matches!(t.begin_or_wait("x", A, || None::<()>).await, Err(Refused::Locked { .. })));
        assert_eq!(started.elapsed(), Duration::from_millis(50), "waited exactly the bound (paused clock)");
        a.finish(false);
        let started = tokio::time::Instant::now();
        assert!(matches!(t.begin_or_wait("x", A, || None::<()>).await, Err(Refused::Locked { .. })));
        assert_eq!(started.elapsed(), Duration::ZERO, "a failure lock answers without waiting");
    }

    #[test]
    fn the_peer_address_comes_from_the_connection_only() {
        let mut extensions = http::Extensions::new();
        assert_eq!(PeerAddr::from_extensions(&extensions).0, ip("0.0.0.0"), "no connection info: shared");
        extensions.insert(axum::extract::ConnectInfo(SocketAddr::from(([127, 0, 0, 3], 4711))));
        assert_eq!(PeerAddr::from_extensions(&extensions).0, ip("127.0.0.3"));
    }
}
