//! Plumbing the demo's HTTPS services share, so that neither the KMS nor Identity writes it
//! twice:
//!
//! * [`config`]: YAML + environment overrides + validation, errors with file, key and line;
//!   secrets only through `*_file` settings.
//! * [`server`]: axum over rustls (TLS 1.3 only, certificates from `pki`), a separate admin
//!   listener with [`health`] `livez`/`readyz` and [`metrics`] `/metrics`, request ids, tracing, body limits, timeouts,
//!   graceful shutdown on SIGINT/SIGTERM.
//! * [`problem`]: RFC 9457 problem+json for every error response, internals never echoed.
//! * [`password`]: PBKDF2-HMAC-SHA256 (600,000 rounds, 32-byte salt) PHC hashes, and
//!   [`credcache`], the cache of successful verifications that makes them affordable.
//! * [`secret`]: redacting secret types and secret files.
//! * [`sqlite`], [`postgres`] and [`db`]: the two database engines' shared plumbing (durable
//!   opening, migrations that refuse a newer schema, the sealed open, per-tenant names).
//!
//! What it must not do: know about keys, tokens, tenants or any one service's routes.

pub mod apikey;
pub mod config;
pub mod credcache;
pub mod db;
pub mod health;
pub mod metrics;
pub mod password;
pub mod postgres;
pub mod problem;
pub mod request_id;
pub mod secret;
pub mod server;
pub mod sqlite;
pub mod telemetry;
pub mod tenancy;
pub mod throttle;
pub mod unread;

pub use config::{ConfigError, Validate, Validator};
pub use health::{Dependency, Readiness};
pub use problem::Problem;
pub use server::{HttpConfig, RunningServer, ServerError};
