//! Integration tests of the `kms` crate. One test binary, modules by topic.
// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod bearer;
mod calls;
mod engines;
mod fuzz_openapi;
mod jose_interop;
mod jose_props;
mod keys;
mod postgres;
mod seed;
mod store;
mod throttle;
mod users;
mod wycheproof_kat;
