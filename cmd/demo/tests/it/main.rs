//! Integration tests of the `demo` binary: arguments, exit codes, output. One test binary.
// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod all_demo;
mod cli_errors;
mod compose_files;
mod dev_profile;
mod discovery;
mod docker_demo;
mod docker_faults;
mod docker_image;
mod docker_library;
mod durability;
mod engine_stack;
mod faults;
mod healthcheck;
mod identity_demo;
mod kms_demo;
mod pki;
mod serve;
mod serve_identity;
mod serve_postgres_errors;
mod tidy;

use assert_cmd::Command;

/// The `demo` binary with a clean environment for colour decisions.
pub fn demo() -> Command {
    let mut cmd = Command::cargo_bin("demo").unwrap();
    cmd.env_remove("NO_COLOR").env("CI", "true");
    cmd
}
