//! One issuer's key cache: fetching with HTTP cache semantics, single-flight refreshes,
//! refresh ahead of expiry, stale-while-error, the unknown-`kid` rate limit, snapshots and
//! status.
//!
//! # How a lookup is answered
//!
//! - The set is **fresh**: the key is returned at once (a *hit*). Inside the refresh-ahead
//!   window a background refresh is started, not awaited.
//! - The set is fresh but has **no such `kid`**: at most one refetch per
//!   `unknown_kid_interval` is made (a conditional request, so a 304 costs the issuer little);
//!   every other such lookup is refused at once, without waiting and without a request. Lookups
//!   of known `kid`s never wait on these refetches.
//! - The set is **expired**, or there is none: the lookup waits for a refresh (a *miss*).
//!   Concurrent misses share one refresh (single flight), which runs in its own task so a
//!   caller giving up never leaves it half done. If the refresh fails and the expired set is
//!   still within `stale_window`, the key is served from it (*stale*); otherwise the lookup
//!   fails with the fetch error. After a failure, automatic refreshes pause for
//!   `failure_cooldown`, so an outage costs the issuer a trickle of requests, not a flood.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use http::HeaderValue;
use http::header::{ETAG, LAST_MODIFIED};
use http_cache_semantics::{AfterResponse, CacheOptions, CachePolicy};
use serde::Serialize;

use crate::clock::{Clock, from_unix_millis, unix_millis, unix_secs_f64};
use crate::conditional::{self, Answer, Validators};
use crate::config::ProviderConfig;
use crate::error::{ConfigError, FetchError, LookupError};
use crate::keys::{JwksError, KeySet, VerifierKey};
use crate::metrics::Handles;
use crate::snapshot::{self, Snapshot};
use crate::tls;

type Flight = Shared<BoxFuture<'static, Result<Arc<Cached>, FetchError>>>;

/// A key set as cached, with its HTTP metadata and deadlines.
#[derive(Debug)]
struct Cached {
    keys: Arc<KeySet>,
    body: Arc<str>,
    policy: CachePolicy,
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
    fetched_at: SystemTime,
    fresh_until: SystemTime,
    refresh_at: SystemTime,
    stale_until: SystemTime,
    from_snapshot: bool,
}

impl Cached {
    #[allow(clippy::too_many_arguments)] // one constructor for all three ways a set arrives
    fn new(
        config: &ProviderConfig,
        keys: Arc<KeySet>,
        body: Arc<str>,
        policy: CachePolicy,
        etag: Option<HeaderValue>,
        last_modified: Option<HeaderValue>,
        fetched_at: SystemTime,
        ttl: Duration,
    ) -> Self {
        let ttl = ttl.clamp(config.min_ttl, config.max_ttl);
        let fresh_until = fetched_at + ttl;
        Self {
            keys,
            body,
            policy,
            etag,
            last_modified,
            fetched_at,
            fresh_until,
            refresh_at: fresh_until - config.refresh_ahead.min(ttl / 2),
            stale_until: fresh_until + config.stale_window,
            from_snapshot: false,
        }
    }
}

#[derive(Debug, Default)]
struct Health {
    last_attempt: Option<SystemTime>,
    last_success: Option<SystemTime>,
    last_error: Option<(SystemTime, FetchError)>,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    refreshes: AtomicU64,
    errors: AtomicU64,
    requests: AtomicU64,
    unknown_kid_refetches: AtomicU64,
    unknown_kid_limited: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

#[derive(Debug)]
struct Inner {
    config: ProviderConfig,
    url: reqwest::Url,
    uri: http::Uri,
    client: reqwest::Client,
    state: RwLock<Option<Arc<Cached>>>,
    flight: Mutex<Option<(u64, Flight)>>,
    next_flight: AtomicU64,
    unknown_kid_last: Mutex<Option<SystemTime>>,
    /// Unix ms before which automatic refreshes do not start (0: none).
    cooldown_until_ms: AtomicU64,
    health: Mutex<Health>,
    counts: Counters,
    metrics: Handles,
    /// The snapshot file's writer (in order: writes never go backwards).
    snapshots: snapshot::OrderedWriter,
}

/// The key cache of one issuer. Cheap to clone (clones share the cache). Lookups and
/// refreshes run on tokio (refreshes are spawned tasks), so call them inside a tokio runtime.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use jwks_cache::{Provider, ProviderConfig};
///
/// let config = ProviderConfig::new("https://login.example.com", "https://login.example.com/jwks");
/// let provider = Provider::new(config)?;
/// let _refresher = provider.spawn_background_refresh(); // keeps the set fresh; stops on drop
/// let key = provider.key("2024-06-key").await?;
/// println!("{:?} {}", key.kind(), provider.status().counts.hits);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Provider {
    inner: Arc<Inner>,
}

/// Where a provider's cached set stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CacheState {
    /// Nothing cached.
    Empty,
    /// A set within its TTL.
    Fresh,
    /// An expired set still within the stale window (served only while the issuer fails).
    Stale,
    /// An expired set past the stale window (never served).
    Expired,
}

/// Lookup and refresh counts since the provider was built.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Counts {
    /// Lookups answered from a fresh set.
    pub hits: u64,
    /// Lookups that waited for a fetch.
    pub misses: u64,
    /// Lookups answered from a stale set because the issuer failed.
    pub stale: u64,
    /// Successful refreshes (200 or 304).
    pub refreshes: u64,
    /// Failed refreshes (after retries).
    pub errors: u64,
    /// HTTP requests sent (retries included).
    pub http_requests: u64,
    /// Refetches triggered by unknown `kid`s.
    pub unknown_kid_refetches: u64,
    /// Unknown-`kid` lookups refused by the rate limit without a refetch.
    pub unknown_kid_limited: u64,
}

/// A point-in-time report on one provider, for status pages and health checks. Times
/// serialize as Unix seconds.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ProviderStatus {
    /// The issuer.
    pub issuer: String,
    /// The JWKS URL.
    pub jwks_url: String,
    /// Where the cached set stands.
    pub state: CacheState,
    /// Usable keys in the cached set.
    pub key_count: usize,
    /// Their ids.
    pub kids: Vec<String>,
    /// Keys of the set that were skipped (unsupported, symmetric, encryption-only...).
    pub skipped_keys: usize,
    /// Whether the cached set came from the snapshot file and has not been confirmed since.
    pub from_snapshot: bool,
    /// Whether a refresh is running now.
    pub refreshing: bool,
    /// Last successful refresh.
    #[serde(serialize_with = "unix_opt")]
    pub last_refresh: Option<SystemTime>,
    /// Last HTTP attempt.
    #[serde(serialize_with = "unix_opt")]
    pub last_attempt: Option<SystemTime>,
    /// The last refresh error, if the last refresh failed.
    pub last_error: Option<String>,
    /// When it happened.
    #[serde(serialize_with = "unix_opt")]
    pub last_error_at: Option<SystemTime>,
    /// End of the cached set's TTL.
    #[serde(serialize_with = "unix_opt")]
    pub fresh_until: Option<SystemTime>,
    /// End of its stale window.
    #[serde(serialize_with = "unix_opt")]
    pub stale_until: Option<SystemTime>,
    /// Counts since start.
    pub counts: Counts,
}

fn unix_opt<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_some(&unix_secs_f64(*t)),
        None => s.serialize_none(),
    }
}

/// The background refresher of one provider; stops when dropped (or when the provider is
/// dropped).
#[derive(Debug)]
pub struct BackgroundRefresh {
    handle: tokio::task::JoinHandle<()>,
}

impl BackgroundRefresh {
    /// Stops the refresher now.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for BackgroundRefresh {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl Provider {
    /// Checks the configuration, builds the HTTPS client and, when a snapshot path is set,
    /// loads the last good set from it (a missing, damaged or foreign snapshot is logged and
    /// ignored). Fetches nothing: the first lookup or refresh does.
    pub fn new(config: ProviderConfig) -> Result<Self, ConfigError> {
        let url = config.validate()?;
        let uri: http::Uri = url.as_str().parse().map_err(|e: http::uri::InvalidUri| {
            ConfigError::InvalidUrl { url: config.jwks_url.clone(), reason: e.to_string() }
        })?;
        let client = tls::http_client(&config)?;
        let metrics = Handles::register(&config.issuer);
        let inner = Inner {
            url,
            uri,
            client,
            state: RwLock::new(None),
            flight: Mutex::new(None),
            next_flight: AtomicU64::new(1),
            unknown_kid_last: Mutex::new(None),
            cooldown_until_ms: AtomicU64::new(0),
            health: Mutex::new(Health::default()),
            counts: Counters::default(),
            metrics,
            snapshots: snapshot::OrderedWriter::default(),
            config,
        };
        if let Some(path) = &inner.config.snapshot_path {
            match snapshot::load(path, &inner.config.issuer, inner.url.as_str()) {
                Ok(Some(snap)) => match inner.cached_from_snapshot(snap) {
                    Ok(cached) => {
                        tracing::info!(issuer = %inner.config.issuer, path = %path.display(), keys = cached.keys.len(), "loaded JWKS snapshot");
                        inner.publish_metrics(&cached);
                        *inner.state.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(cached));
                    }
                    Err(e) => {
                        tracing::warn!(issuer = %inner.config.issuer, path = %path.display(), error = %e, "ignoring JWKS snapshot")
                    }
                },
                Ok(None) => {}
                Err(e) => tracing::warn!(issuer = %inner.config.issuer, error = %e, "ignoring JWKS snapshot"),
            }
        }
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.inner.config.issuer
    }

    /// The configuration the provider was built with.
    pub fn config(&self) -> &ProviderConfig {
        &self.inner.config
    }

    /// The provider's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.config.clock
    }

    /// The verifier key with this `kid`, from the cache or after a fetch as described in the
    /// [module documentation](self).
    pub async fn key(&self, kid: &str) -> Result<Arc<VerifierKey>, LookupError> {
        let inner = &self.inner;
        let now = inner.config.clock.now();
        let current = inner.current();
        if let Some(c) = &current
            && now < c.fresh_until
        {
            if let Some(key) = c.keys.get(kid) {
                bump(&inner.counts.hits);
                inner.metrics.hits.increment(1);
                if now >= c.refresh_at && !inner.cooling_down(now) {
                    drop(Inner::flight(inner, Some(Some(c))));
                }
                return Ok(key.clone());
            }
            if !inner.take_unknown_kid_budget(now) {
                bump(&inner.counts.unknown_kid_limited);
                inner.metrics.unknown_kid_limited.increment(1);
                return Err(inner.unknown_kid());
            }
            bump(&inner.counts.misses);
            inner.metrics.misses.increment(1);
            bump(&inner.counts.unknown_kid_refetches);
            // Forced: the set is fresh by its TTL, but the issuer may have published a key since.
            return match Inner::flight(inner, None).await {
                Ok(fetched) => fetched.keys.get(kid).cloned().ok_or_else(|| inner.unknown_kid()),
                Err(_) => Err(inner.unknown_kid()),
            };
        }
        let stale = current.clone().filter(|c| now < c.stale_until);
        if inner.cooling_down(now) {
            if let Some(c) = &stale {
                return inner.serve_stale(c, kid);
            }
            if let Some(error) = inner.last_error() {
                return Err(LookupError::Unavailable { issuer: inner.config.issuer.clone(), source: error });
            }
        }
        bump(&inner.counts.misses);
        inner.metrics.misses.increment(1);
        match Inner::flight(inner, Some(current.as_ref())).await {
            Ok(fetched) => fetched.keys.get(kid).cloned().ok_or_else(|| inner.unknown_kid()),
            Err(error) => match stale {
                Some(c) if inner.config.clock.now() < c.stale_until => inner.serve_stale(&c, kid),
                _ => Err(LookupError::Unavailable { issuer: inner.config.issuer.clone(), source: error }),
            },
        }
    }

    /// The current key set, fetching it first when there is no fresh one (with the same
    /// single-flight, cooldown and stale rules as [`key`](Self::key)).
    pub async fn keys(&self) -> Result<Arc<KeySet>, LookupError> {
        let inner = &self.inner;
        let now = inner.config.clock.now();
        let current = inner.current();
        if let Some(c) = &current
            && now < c.fresh_until
        {
            return Ok(c.keys.clone());
        }
        let stale = current.clone().filter(|c| now < c.stale_until);
        if inner.cooling_down(now) {
            if let Some(c) = stale {
                return Ok(c.keys.clone());
            }
            if let Some(error) = inner.last_error() {
                return Err(LookupError::Unavailable { issuer: inner.config.issuer.clone(), source: error });
            }
        }
        match Inner::flight(inner, Some(current.as_ref())).await {
            Ok(fetched) => Ok(fetched.keys.clone()),
            Err(error) => match stale {
                Some(c) if inner.config.clock.now() < c.stale_until => Ok(c.keys.clone()),
                _ => Err(LookupError::Unavailable { issuer: inner.config.issuer.clone(), source: error }),
            },
        }
    }

    /// The cached key with this `kid` if the cached set is fresh; never fetches, never waits.
    pub fn cached_key(&self, kid: &str) -> Option<Arc<VerifierKey>> {
        let now = self.inner.config.clock.now();
        self.inner.current().filter(|c| now < c.fresh_until).and_then(|c| c.keys.get(kid).cloned())
    }

    /// Refreshes now: a conditional request (If-None-Match / If-Modified-Since) whatever the
    /// TTL, the cooldown or the unknown-`kid` limit say. Joins a refresh already running
    /// instead of starting a second. A failure leaves the cached set as it was and nothing
    /// locked: the next call starts a new attempt.
    pub async fn refresh(&self) -> Result<Arc<KeySet>, FetchError> {
        Inner::flight(&self.inner, None).await.map(|c| c.keys.clone())
    }

    /// Starts a task that refreshes the set ahead of its expiry (and retries after the
    /// cooldown while the issuer fails). It stops when the returned handle or the provider is
    /// dropped. Needs a tokio runtime.
    pub fn spawn_background_refresh(&self) -> BackgroundRefresh {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let handle = tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let now = inner.config.clock.now();
                let due = inner.next_due(now);
                let wait = due.duration_since(now).unwrap_or(Duration::ZERO);
                if wait.is_zero() {
                    let seen = inner.current();
                    let flight = Inner::flight(&inner, Some(seen.as_ref()));
                    drop(inner);
                    let _ = flight.await;
                    // Never spin, whatever the clock says.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                } else {
                    let wait = wait.min(inner.config.background_check_interval);
                    drop(inner);
                    tokio::time::sleep(wait).await;
                }
            }
        });
        BackgroundRefresh { handle }
    }

    /// A report on the cache, its last refresh and its counts.
    pub fn status(&self) -> ProviderStatus {
        let inner = &self.inner;
        let now = inner.config.clock.now();
        let current = inner.current();
        // The flight lock is taken (and released) before the health lock: `finish` takes
        // them in the other order.
        let refreshing = inner.flight.lock().unwrap_or_else(PoisonError::into_inner).is_some();
        let health = inner.health.lock().unwrap_or_else(PoisonError::into_inner);
        let c = &inner.counts;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProviderStatus {
            issuer: inner.config.issuer.clone(),
            jwks_url: inner.url.to_string(),
            state: match &current {
                None => CacheState::Empty,
                Some(c) if now < c.fresh_until => CacheState::Fresh,
                Some(c) if now < c.stale_until => CacheState::Stale,
                Some(_) => CacheState::Expired,
            },
            key_count: current.as_ref().map_or(0, |c| c.keys.len()),
            kids: current.as_ref().map_or_else(Vec::new, |c| c.keys.kids().map(str::to_owned).collect()),
            skipped_keys: current.as_ref().map_or(0, |c| c.keys.skipped().len()),
            from_snapshot: current.as_ref().is_some_and(|c| c.from_snapshot),
            refreshing,
            last_refresh: health.last_success,
            last_attempt: health.last_attempt,
            last_error: health.last_error.as_ref().map(|(_, e)| e.to_string()),
            last_error_at: health.last_error.as_ref().map(|(t, _)| *t),
            fresh_until: current.as_ref().map(|c| c.fresh_until),
            stale_until: current.as_ref().map(|c| c.stale_until),
            counts: Counts {
                hits: load(&c.hits),
                misses: load(&c.misses),
                stale: load(&c.stale),
                refreshes: load(&c.refreshes),
                errors: load(&c.errors),
                http_requests: load(&c.requests),
                unknown_kid_refetches: load(&c.unknown_kid_refetches),
                unknown_kid_limited: load(&c.unknown_kid_limited),
            },
        }
    }
}

/// Clears a flight's slot when its task ends in any way (panic and cancellation included),
/// unless a newer flight already took the slot.
struct ClearFlight {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for ClearFlight {
    fn drop(&mut self) {
        let mut slot = self.inner.flight.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_some_and(|(id, _)| *id == self.id) {
            *slot = None;
        }
    }
}

impl Inner {
    fn current(&self) -> Option<Arc<Cached>> {
        self.state.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn unknown_kid(&self) -> LookupError {
        LookupError::UnknownKid { issuer: self.config.issuer.clone() }
    }

    fn last_error(&self) -> Option<FetchError> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner).last_error.as_ref().map(|(_, e)| e.clone())
    }

    fn cooling_down(&self, now: SystemTime) -> bool {
        unix_millis(now) < self.cooldown_until_ms.load(Ordering::Acquire)
    }

    fn serve_stale(&self, cached: &Cached, kid: &str) -> Result<Arc<VerifierKey>, LookupError> {
        match cached.keys.get(kid) {
            Some(key) => {
                bump(&self.counts.stale);
                self.metrics.stale.increment(1);
                Ok(key.clone())
            }
            None => Err(self.unknown_kid()),
        }
    }

    /// One unknown-`kid` refetch per interval per provider, and none while cooling down.
    fn take_unknown_kid_budget(&self, now: SystemTime) -> bool {
        if self.cooling_down(now) {
            return false;
        }
        let mut last = self.unknown_kid_last.lock().unwrap_or_else(PoisonError::into_inner);
        let allowed =
            last.is_none_or(|t| now.duration_since(t).is_ok_and(|d| d >= self.config.unknown_kid_interval));
        if allowed {
            *last = Some(now);
        }
        allowed
    }

    fn next_due(&self, now: SystemTime) -> SystemTime {
        let base = self.current().map_or(now, |c| c.refresh_at);
        base.max(from_unix_millis(self.cooldown_until_ms.load(Ordering::Acquire)))
    }

    /// Joins the running refresh or starts one. With `Some(seen)` (the state the caller
    /// looked at, possibly none), a set that arrived since is returned as is, so a burst of
    /// misses costs one request even if some of them get here just after the refresh
    /// finished. With `None`, a refresh is forced.
    fn flight(self: &Arc<Self>, seen: Option<Option<&Arc<Cached>>>) -> Flight {
        let mut slot = self.flight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, running)) = &*slot {
            return running.clone();
        }
        if let Some(seen) = seen
            && let Some(now) = self.current()
            && seen.is_none_or(|seen| !Arc::ptr_eq(seen, &now))
        {
            return futures_util::future::ready(Ok(now)).boxed().shared();
        }
        let id = self.next_flight.fetch_add(1, Ordering::Relaxed);
        let guard = ClearFlight { inner: self.clone(), id };
        let task = tokio::spawn(async move {
            let result = guard.inner.fetch_with_retries().await;
            guard.inner.finish(guard.id, result)
        });
        let url = self.url.to_string();
        let flight = async move {
            match task.await {
                Ok(result) => result,
                Err(e) => Err(FetchError::Worker {
                    url,
                    detail: if e.is_panic() {
                        "the refresh task panicked"
                    } else {
                        "the refresh task was cancelled"
                    }
                    .to_owned(),
                }),
            }
        }
        .boxed()
        .shared();
        *slot = Some((id, flight.clone()));
        flight
    }

    /// Publishes a refresh's outcome and frees the flight slot, under the slot's lock so a
    /// caller that finds no flight also finds the new state.
    fn finish(
        self: &Arc<Self>,
        id: u64,
        result: Result<Arc<Cached>, FetchError>,
    ) -> Result<Arc<Cached>, FetchError> {
        let now = self.config.clock.now();
        let mut slot = self.flight.lock().unwrap_or_else(PoisonError::into_inner);
        match &result {
            Ok(cached) => {
                *self.state.write().unwrap_or_else(PoisonError::into_inner) = Some(cached.clone());
                self.cooldown_until_ms.store(0, Ordering::Release);
                let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
                health.last_success = Some(now);
                health.last_error = None;
                bump(&self.counts.refreshes);
                self.metrics.refreshes.increment(1);
                self.publish_metrics(cached);
                tracing::debug!(issuer = %self.config.issuer, keys = cached.keys.len(), fresh_for = ?cached.fresh_until.duration_since(now).unwrap_or_default(), "JWKS refreshed");
            }
            Err(error) => {
                let until = now + self.config.failure_cooldown;
                self.cooldown_until_ms.store(unix_millis(until), Ordering::Release);
                self.health.lock().unwrap_or_else(PoisonError::into_inner).last_error =
                    Some((now, error.clone()));
                bump(&self.counts.errors);
                self.metrics.errors.increment(1);
                tracing::warn!(issuer = %self.config.issuer, %error, "JWKS refresh failed");
            }
        }
        if slot.as_ref().is_some_and(|(running, _)| *running == id) {
            *slot = None;
        }
        drop(slot);
        if let (Ok(cached), Some(path)) = (&result, &self.config.snapshot_path) {
            self.write_snapshot(path.clone(), cached);
        }
        result
    }

    fn publish_metrics(&self, cached: &Cached) {
        self.metrics.keys.set(cached.keys.len() as f64);
        self.metrics.last_refresh.set(unix_secs_f64(cached.fetched_at));
    }

    /// Writes the snapshot (off the async threads, in order).
    fn write_snapshot(&self, path: std::path::PathBuf, cached: &Cached) {
        let snap = Snapshot {
            format: snapshot::FORMAT,
            issuer: self.config.issuer.clone(),
            jwks_url: self.url.to_string(),
            fetched_at_ms: unix_millis(cached.fetched_at),
            fresh_until_ms: unix_millis(cached.fresh_until),
            etag: cached.etag.as_ref().and_then(|v| v.to_str().ok()).map(str::to_owned),
            last_modified: cached.last_modified.as_ref().and_then(|v| v.to_str().ok()).map(str::to_owned),
            policy: cached.policy.clone(),
            jwks: cached.body.to_string(),
        };
        self.snapshots.write(path, snap, "JWKS");
    }

    fn cached_from_snapshot(&self, snap: Snapshot) -> Result<Cached, String> {
        let keys =
            KeySet::from_jwks_json(snap.jwks.as_bytes(), self.config.max_keys).map_err(|e| e.to_string())?;
        let header = |v: Option<String>| v.and_then(|s| HeaderValue::from_str(&s).ok());
        let fetched_at = from_unix_millis(snap.fetched_at_ms);
        let now = self.config.clock.now();
        // The snapshot is a fallback, not a source of freshness: one written "in the future"
        // (a clock that was ahead, an edited file) is refused, and a loaded set counts as
        // expired at once, so the issuer is asked first and the snapshot only serves through the
        // stale window — which still counts from the original expiry, so restarts cannot
        // stretch it.
        if fetched_at > now + std::time::Duration::from_secs(60) {
            return Err("the snapshot claims to have been fetched in the future".to_owned());
        }
        let original_fresh_until = from_unix_millis(snap.fresh_until_ms);
        let ttl = original_fresh_until.duration_since(fetched_at).unwrap_or_default();
        let mut cached = Cached::new(
            &self.config,
            Arc::new(keys),
            Arc::from(snap.jwks),
            snap.policy,
            header(snap.etag),
            header(snap.last_modified),
            fetched_at,
            ttl,
        );
        cached.from_snapshot = true;
        // Expired now (or at its original time if that passed): refresh before use; the stale
        // window still ends where the original expiry puts it.
        let expiry = cached.fresh_until.min(original_fresh_until).min(now);
        cached.stale_until =
            cached.stale_until.min(original_fresh_until.max(expiry) + self.config.stale_window);
        cached.fresh_until = expiry;
        cached.refresh_at = expiry;
        Ok(cached)
    }

    async fn fetch_with_retries(&self) -> Result<Arc<Cached>, FetchError> {
        let mut attempt = 1;
        loop {
            let current = self.current();
            match self.fetch_once(current.as_deref()).await {
                Ok(fetched) => return Ok(Arc::new(fetched)),
                Err(error) if error.is_retryable() && attempt < self.config.retry.attempts => {
                    let delay = self.config.retry.backoff(attempt);
                    tracing::debug!(issuer = %self.config.issuer, %error, attempt, ?delay, "JWKS fetch failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn fetch_once(&self, current: Option<&Cached>) -> Result<Cached, FetchError> {
        let url = self.url.to_string();
        self.health.lock().unwrap_or_else(PoisonError::into_inner).last_attempt =
            Some(self.config.clock.now());
        bump(&self.counts.requests);
        self.metrics.requests.increment(1);
        let limit = self.config.max_response_bytes;
        let validators =
            current.map(|c| Validators { etag: c.etag.as_ref(), last_modified: c.last_modified.as_ref() });
        let accept = "application/jwk-set+json, application/json";
        let answer = conditional::get(&self.client, &self.url, &self.uri, accept, validators, limit)
            .await
            .map_err(|e| tls::classify(&url, self.config.request_timeout, &e))?;
        let now = self.config.clock.now();
        let (request, parts, body) = match answer {
            Answer::Ok { request, response, body } => (request, response, body),
            Answer::NotModified { request, response } => {
                let Some(c) = current else { return Err(FetchError::UnexpectedNotModified { url }) };
                return match c.policy.after_response(&request, &response, now) {
                    AfterResponse::NotModified(policy, _) => {
                        let ttl = policy.time_to_live(now);
                        Ok(Cached::new(
                            &self.config,
                            c.keys.clone(),
                            c.body.clone(),
                            policy,
                            response.headers.get(ETAG).cloned().or_else(|| c.etag.clone()),
                            response.headers.get(LAST_MODIFIED).cloned().or_else(|| c.last_modified.clone()),
                            now,
                            ttl,
                        ))
                    }
                    AfterResponse::Modified(..) => Err(FetchError::UnexpectedNotModified { url }),
                };
            }
            Answer::Status(status) => return Err(FetchError::Status { url, status }),
            Answer::TooLarge => return Err(FetchError::TooLarge { url, limit }),
        };
        let keys = KeySet::from_jwks_json(&body, self.config.max_keys).map_err(|e| match e {
            JwksError::TooManyKeys { count } => {
                FetchError::TooManyKeys { url: url.clone(), count, limit: self.config.max_keys }
            }
            JwksError::Invalid(detail) => FetchError::InvalidJwks { url: url.clone(), detail },
        })?;
        let body = String::from_utf8(body)
            .map_err(|_| FetchError::InvalidJwks { url: url.clone(), detail: "not UTF-8".to_owned() })?;
        for skipped in keys.skipped() {
            tracing::debug!(issuer = %self.config.issuer, kid = ?skipped.kid, reason = %skipped.reason, "JWK skipped");
        }
        if keys.is_empty() {
            tracing::warn!(issuer = %self.config.issuer, skipped = keys.skipped().len(), "the issuer's JWK set has no usable key");
        }
        let policy = CachePolicy::new_options(
            &request,
            &parts,
            now,
            CacheOptions { shared: false, ..CacheOptions::default() },
        );
        let ttl = policy.time_to_live(now);
        Ok(Cached::new(
            &self.config,
            Arc::new(keys),
            Arc::from(body),
            policy,
            parts.headers.get(ETAG).cloned(),
            parts.headers.get(LAST_MODIFIED).cloned(),
            now,
            ttl,
        ))
    }
}
