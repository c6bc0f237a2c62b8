//! The Identity service as a library: an OAuth 2.1 authorization server and (growing into) an
//! OpenID Connect provider. Today: clients (secrets PBKDF2-hashed, from files), ES256 signing
//! keys sealed at rest by the `barrier` and rotated with a published next key, discovery, JWKS,
//! the `client_credentials` grant with RFC 9068 access tokens, introspection (RFC 7662) and
//! revocation (RFC 7009).
//!
//! What it must not do: share code with the KMS other than through `pki`, `service-kit` and
//! `barrier`; accept an algorithm from a token; take secrets from anywhere but files; advertise
//! in discovery anything it does not implement.

pub mod api;
pub mod config;
pub mod seed;
pub mod service;
pub mod signing;
pub mod store;
pub mod tokens;
