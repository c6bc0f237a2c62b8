//! Integration tests of compose-engine: the compose model read from fixture files, and the service
//! image built through the real engine. One binary.
// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod errors;
mod image;
mod include;
mod interpolation;
mod merge;
mod oracle;
mod profiles;
mod stack;

use std::path::PathBuf;

use compose_engine::model::{self, Env, ModelError, Project};

/// A fixture's path (`tests/it/fixtures/<rel>`).
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures").join(rel)
}

/// Loads fixtures with `env` and no active profile.
pub fn load(files: &[&str], env: &[(&str, &str)]) -> Result<Project, ModelError> {
    load_with(files, env, &[])
}

/// Loads fixtures with `env` and `profiles`.
pub fn load_with(files: &[&str], env: &[(&str, &str)], profiles: &[&str]) -> Result<Project, ModelError> {
    let files: Vec<PathBuf> = files.iter().map(|f| fixture(f)).collect();
    let env: Env = env.iter().copied().collect();
    let profiles: Vec<String> = profiles.iter().map(|p| (*p).to_owned()).collect();
    model::load(&files, &env, &profiles)
}

/// The error of loading fixtures that must fail, with its message.
pub fn fail(files: &[&str], env: &[(&str, &str)]) -> (ModelError, String) {
    let err = load(files, env).expect_err("the fixture must not load");
    let text = err.to_string();
    (err, text)
}
