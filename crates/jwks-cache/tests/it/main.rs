//! Integration tests of `jwks-cache`: a fixture issuer over HTTPS on loopback (axum on rustls,
//! certificates from `pki`), the cache's behaviour against it, the security limits, the JWT
//! attack corpus in `testdata/jwt/` and a bounded fuzz loop. One test binary.
// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cache;
mod corpus;
mod discovery;
mod fuzz;
mod security;
mod support;
