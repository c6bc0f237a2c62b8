//! The Identity service as a library: an OAuth 2.1 authorization server and OpenID Connect
//! provider. Users and clients (passwords and secrets PBKDF2-hashed, read from files), ES256
//! signing keys sealed at rest by the `barrier` and rotated with a published next key,
//! discovery, JWKS, a server-rendered sign-in and consent form, the `authorization_code` (PKCE
//! S256 only), `refresh_token` (rotation, reuse revokes the family) and `client_credentials`
//! grants, token exchange (RFC 8693) issuing access tokens and transaction tokens under a policy
//! per actor, RFC 9068 access tokens, ID tokens, userinfo, RP-initiated logout, introspection
//! (RFC 7662) and revocation (RFC 7009).
//!
//! What it must not do: share code with the KMS other than through `pki`, `service-kit`, `trust-store` and
//! `barrier`; accept an algorithm from a token; take secrets from anywhere but files; advertise
//! in discovery anything it does not implement.

pub mod api;
pub mod apikeys;
mod authorize;
pub mod config;
pub mod consent;
pub mod exchange;
mod html;
pub mod seed;
pub mod service;
pub mod signing;
pub mod store;
mod token;
pub mod tokens;
