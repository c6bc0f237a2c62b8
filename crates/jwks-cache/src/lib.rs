//! A hardened JWKS cache and JWT access-token validator for resource servers: it fetches an
//! issuer's JSON Web Key Set over HTTPS only (rustls; allowed domains; optional SPKI pinning;
//! size and key-count limits), caches it by the HTTP caching rules with TTL bounds, refreshes
//! it ahead of expiry in a single flight, keeps serving the last good keys for a stale window
//! while the issuer fails, rate-limits refetches caused by unknown `kid`s, and validates
//! tokens with algorithms pinned by configuration. A [`Registry`] holds one [`Provider`] per
//! issuer, with status snapshots and metrics.
//!
//! What it must not do: take an algorithm or a key from the token (`alg` is checked against a
//! pinned list and the key's own type; `jku`, `x5u`, `jwk`, `x5c` and `crit` are refused),
//! fetch keys over plain HTTP or from hosts not allowed, let forged `kid`s starve valid tokens
//! or hammer the issuer, panic on any input, or put tokens or claim values in error messages.
//!
//! ```no_run
//! # async fn demo(token: &str) -> Result<(), Box<dyn std::error::Error>> {
//! use jwks_cache::{Algorithm, ProviderConfig, Registry, TrustRoots, Validator, ValidatorConfig};
//!
//! let registry = Registry::new();
//! let mut config = ProviderConfig::new("https://identity.example.com", "https://identity.example.com/jwks");
//! config.trust = TrustRoots::from_pem_file("ca-bundle.pem".as_ref())?;
//! let provider = registry.add(config)?;
//! let _refresh = provider.spawn_background_refresh();
//!
//! let validator = Validator::new(provider, ValidatorConfig::new(["kms"], &[Algorithm::ES256]).with_required_typ("at+jwt"))?;
//! let claims = validator.validate(token).await?;
//! println!("subject {}", claims["sub"]);
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod clock;
mod conditional;
mod config;
pub mod discovery;
mod error;
mod keys;
pub mod metrics;
mod provider;
mod registry;
mod snapshot;
mod strict_json;
mod tls;
mod validator;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{ProviderConfig, RetryPolicy, SpkiPin, TrustRoots};
pub use discovery::{Discovered, Discovery, DiscoveryError, discover};
pub use error::{ConfigError, FetchError, LookupError, ValidationError, ValidationErrorKind};
pub use jsonwebtoken::Algorithm;
pub use keys::{
    JwksError, KeyKind, KeySet, MAX_KID_BYTES, MAX_RSA_BITS, MIN_RSA_BITS, SkippedKey, VerifierKey,
};
pub use provider::{BackgroundRefresh, CacheState, Counts, Provider, ProviderStatus};
pub use registry::Registry;
pub use validator::{FORBIDDEN_HEADERS, Validator, ValidatorConfig, algorithm_by_name};

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
