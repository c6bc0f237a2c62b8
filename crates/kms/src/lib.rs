//! The KMS as a library: versioned key pools per tenant, sealed at rest by the `barrier`, and the
//! operations on them — AES-256-GCM encryption as JWE, ES256/EdDSA/PS256 signatures as JWS,
//! A256KW key wrapping, data keys, public keys as JWK.
//!
//! Layers, bottom up: [`crypto`] (key material through aws-lc-rs), [`jose`] (JWE/JWS/JWK),
//! [`store`] (SQLite or PostgreSQL behind the [`store::Store`] trait, a namespace per
//! tenant that the database itself keeps apart), [`keys`] (the unsealed [`Kms`]:
//! pools, versions and operations, all scoped by tenant). Authentication and the HTTP API
//! build on these.
//!
//! What it must not do: hand-roll cryptography (aws-lc-rs does it), trust an algorithm named in
//! a token or header beyond checking it equals the key's own, take a tenant from anywhere but
//! the authenticated principal, or put key material in logs, errors or `Debug` output.

pub mod api;
pub mod apikey;
pub mod authz;
pub mod bearer;
pub mod config;
pub mod crypto;
pub mod jose;
pub mod keys;
pub mod model;
pub mod openapi;
pub mod realm;
pub mod seed;
pub mod service;
pub mod store;
pub mod swagger;

pub use keys::{Kms, KmsError, PoolInfo};
pub use model::{PoolName, TenantId};
