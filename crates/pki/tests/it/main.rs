//! Integration tests of the `pki` crate: one test binary, modules by topic.
// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod oracle;
mod store;
mod tls;

use std::path::Path;

/// A fresh demo PKI in a temporary directory.
pub fn demo_pki() -> (tempfile::TempDir, pki::Materialized) {
    let tmp = tempfile::tempdir().unwrap();
    let out = pki::ensure(&tmp.path().join("pki"), &pki::PkiSpec::demo(), &Default::default()).unwrap();
    (tmp, out)
}

/// True when `tool` is on PATH. Where it is missing the test says so loudly; under CI (`CI` set)
/// a missing tool is a failure, because `.ci/run` installs it.
pub fn have_tool(tool: &str) -> bool {
    let found = std::process::Command::new(tool).arg("version").output().is_ok();
    if !found {
        assert!(std::env::var_os("CI").is_none(), "{tool} is missing under CI: .ci/run must install it");
        eprintln!("SKIPPED: `{tool}` is not installed; this test needs it as an independent oracle");
    }
    found
}

/// Every file below `dir`, relative, sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}
