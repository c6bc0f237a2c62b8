//! The KMS as a library: versioned key pools per tenant, sealed at rest by the `barrier`, and the
//! operations on them — AES-256-GCM encryption as JWE, ES256/EdDSA/PS256 signatures as JWS,
//! A256KW key wrapping, data keys, public keys as JWK.
//!
//! This step holds the cryptographic core ([`crypto`], [`jose`]); storage, authentication and
//! the HTTP API build on it.
//!
//! What it must not do: hand-roll cryptography (aws-lc-rs does it), trust an algorithm named in
//! a token or header beyond checking it equals the key's own, take a tenant from anywhere but
//! the authenticated principal, or put key material in logs, errors or `Debug` output.

pub mod crypto;
pub mod jose;
