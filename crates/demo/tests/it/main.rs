//! Integration tests of the `demo` library. One test binary.
// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod engine;
mod fixture;
mod report;
mod stack;
