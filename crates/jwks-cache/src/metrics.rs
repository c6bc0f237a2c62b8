//! Metric names and the per-provider handles, through the [`metrics`] facade. Every series
//! carries a `provider` label whose value is the issuer.
//!
//! Handles are registered when a provider is built, so install your recorder (Prometheus
//! exporter, ...) before building providers; a provider built earlier reports to the no-op
//! recorder.

use metrics::{Counter, Gauge};

/// Counter: key lookups answered from a fresh cached set.
pub const HITS: &str = "jwks_cache_hits_total";
/// Counter: key lookups that had to wait for a fetch (cold cache, expired set, unknown `kid`).
pub const MISSES: &str = "jwks_cache_misses_total";
/// Counter: key lookups answered from an expired set within the stale window because the
/// issuer failed.
pub const STALE: &str = "jwks_cache_stale_total";
/// Counter: successful refreshes (a new set, or a 304 revalidation).
pub const REFRESHES: &str = "jwks_cache_refreshes_total";
/// Counter: failed refreshes (after their retries).
pub const ERRORS: &str = "jwks_cache_refresh_errors_total";
/// Counter: HTTP requests sent (every attempt, retries included).
pub const REQUESTS: &str = "jwks_cache_http_requests_total";
/// Counter: unknown-`kid` lookups refused without a refetch because of the rate limit.
pub const UNKNOWN_KID_LIMITED: &str = "jwks_cache_unknown_kid_limited_total";
/// Counter: discovery documents fetched, by `outcome` (`ok`, `error`: unreachable, refused,
/// not a document, or naming another issuer).
pub const DISCOVERIES: &str = "jwks_discovery_total";
/// Counter: discovery documents asked of a [`crate::Discovery`], by `provider` and `outcome`:
/// `hit` (the kept document was fresh), `miss` (fetched), `revalidated` (a 304 confirmed it),
/// `stale` (the issuer failed and the last good document was served).
pub const DISCOVERY_LOOKUPS: &str = "jwks_discovery_lookups_total";
/// Gauge: usable keys in the current set.
pub const KEYS: &str = "jwks_cache_keys";
/// Gauge: Unix time of the last successful refresh, in seconds.
pub const LAST_REFRESH: &str = "jwks_cache_last_refresh_timestamp_seconds";

/// Registers descriptions for every metric above with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(HITS, "JWKS key lookups answered from a fresh cached set");
    metrics::describe_counter!(MISSES, "JWKS key lookups that waited for a fetch");
    metrics::describe_counter!(STALE, "JWKS key lookups answered from a stale set while the issuer failed");
    metrics::describe_counter!(REFRESHES, "successful JWKS refreshes (200 or 304)");
    metrics::describe_counter!(ERRORS, "failed JWKS refreshes, after retries");
    metrics::describe_counter!(REQUESTS, "HTTP requests sent for JWKS, retries included");
    metrics::describe_counter!(UNKNOWN_KID_LIMITED, "unknown-kid lookups refused by the refetch rate limit");
    metrics::describe_counter!(DISCOVERIES, "discovery documents fetched, by outcome");
    metrics::describe_counter!(
        DISCOVERY_LOOKUPS,
        "discovery documents asked for, by outcome (hit, miss, revalidated, stale)"
    );
    metrics::describe_gauge!(KEYS, "usable keys in the cached JWK set");
    metrics::describe_gauge!(LAST_REFRESH, "Unix time of the last successful JWKS refresh");
}

/// One provider's registered handles.
#[derive(Debug, Clone)]
pub(crate) struct Handles {
    pub(crate) hits: Counter,
    pub(crate) misses: Counter,
    pub(crate) stale: Counter,
    pub(crate) refreshes: Counter,
    pub(crate) errors: Counter,
    pub(crate) requests: Counter,
    pub(crate) unknown_kid_limited: Counter,
    pub(crate) keys: Gauge,
    pub(crate) last_refresh: Gauge,
}

impl Handles {
    pub(crate) fn register(issuer: &str) -> Self {
        let label = || [("provider", issuer.to_owned())];
        Self {
            hits: metrics::counter!(HITS, &label()),
            misses: metrics::counter!(MISSES, &label()),
            stale: metrics::counter!(STALE, &label()),
            refreshes: metrics::counter!(REFRESHES, &label()),
            errors: metrics::counter!(ERRORS, &label()),
            requests: metrics::counter!(REQUESTS, &label()),
            unknown_kid_limited: metrics::counter!(UNKNOWN_KID_LIMITED, &label()),
            keys: metrics::gauge!(KEYS, &label()),
            last_refresh: metrics::gauge!(LAST_REFRESH, &label()),
        }
    }
}

/// Counts one discovery of `issuer`'s document.
pub(crate) fn discovery(issuer: &str, ok: bool) {
    let outcome = if ok { "ok" } else { "error" };
    metrics::counter!(DISCOVERIES, "provider" => issuer.to_owned(), "outcome" => outcome).increment(1);
}
