//! Outside tools the tests use as independent judges (Python's JOSE/OAuth/JSON Schema
//! libraries, schemathesis, Docker, a browser): here, or a loud skip — and a failure when the
//! environment variable `CI` is set, since `.ci/run` installs every one of them.

use std::process::Command;

/// Whether `python3` can import `modules` (`"jwt, cryptography"`); see [`present`] for what
/// happens when it cannot.
pub fn python(modules: &str, what: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    present(ok, what)
}

/// Whether a Docker engine answers (`docker info`).
pub fn docker() -> bool {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    present(ok, "a Docker engine")
}

/// `ok` as the answer to "is `what` here?". When it is not: a panic under `CI` (the test
/// environment is broken, not the test), else a `SKIPPED: …` line on stderr — never a silent
/// pass.
pub fn present(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "{what} is missing under CI: .ci/run must install it");
        eprintln!("SKIPPED: {what} is not here; this test needs it as an independent oracle");
    }
    ok
}
