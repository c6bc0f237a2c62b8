//! Tidy: docs and code stay in step.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn readme_mentions_every_flag() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut help = String::new();
    for command in [
        &["--help"][..],
        &["pki", "--help"],
        &["serve", "--help"],
        &["healthcheck", "--help"],
        &["kms", "--help"],
        &["identity", "--help"],
        &["all", "--help"],
        &["down", "--help"],
        &["status", "--help"],
        &["logs", "--help"],
        &["completions", "--help"],
        &["man", "--help"],
    ] {
        let out = crate::demo().args(command).assert().success();
        help.push_str(&String::from_utf8_lossy(&out.get_output().stdout));
    }
    let flags: Vec<&str> = help
        .split_whitespace()
        .map(|w| w.trim_end_matches([',', '.']))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .collect();
    assert!(flags.contains(&"--out"), "{help}");
    for flag in flags {
        if flag == "--help" || flag == "--version" {
            continue;
        }
        let flag = flag.split('=').next().unwrap_or(flag);
        assert!(readme.contains(flag), "README.md does not document {flag}");
    }
}

#[test]
fn architecture_lists_every_crate_and_every_crate_says_what_it_is_for() {
    let map = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    for parent in ["crates", "cmd"] {
        for entry in std::fs::read_dir(root().join(parent)).unwrap() {
            let dir = entry.unwrap().path();
            let name = format!("{parent}/{}", dir.file_name().unwrap().to_string_lossy());
            assert!(map.contains(&format!("`{name}`")), "docs/architecture.md does not describe `{name}`");
            let entry_file = if parent == "crates" { "src/lib.rs" } else { "src/main.rs" };
            let source = std::fs::read_to_string(dir.join(entry_file)).unwrap();
            assert!(source.starts_with("//!"), "{name}/{entry_file} must open with a //! paragraph");
        }
    }
}

/// The multi-stage Dockerfile (hosts with a registry) builds what the offline image holds: the
/// `demo` binary of the `demo-cli` package, stripped, at `/demo`, run as 65534, from every
/// directory the build reads. It cannot be built here (no registry), so this keeps it from
/// drifting.
#[test]
fn the_dockerfile_builds_the_image_the_offline_build_makes() {
    let dockerfile = std::fs::read_to_string(root().join("deployments/Dockerfile")).unwrap();
    let manifest = std::fs::read_to_string(root().join("cmd/demo/Cargo.toml")).unwrap();
    assert!(manifest.contains("name = \"demo-cli\""), "the package the Dockerfile builds");
    assert!(dockerfile.contains("cargo build --release --locked -p demo-cli"), "{dockerfile}");
    for copied in [
        "COPY Cargo.toml Cargo.lock ./",
        "COPY cmd cmd",
        "COPY crates crates",
        "COPY deployments deployments",
        "COPY testdata testdata",
    ] {
        assert!(dockerfile.contains(copied), "the Dockerfile lacks `{copied}`");
    }
    assert!(dockerfile.contains("ENTRYPOINT [\"/demo\"]") && dockerfile.contains("USER 65534:65534"));
    assert!(
        dockerfile.contains("strip --strip-all"),
        "the image holds the binary stripped, as the offline one"
    );
    let offline = demo::stack::docker::SERVICE_IMAGE;
    assert_eq!((offline.user, offline.entrypoint_name), ("65534:65534", "demo"), "the offline image changed");
    for stack in ["kms", "identity"] {
        let compose =
            std::fs::read_to_string(root().join(format!("deployments/{stack}/compose.yml"))).unwrap();
        assert!(compose.contains("test: [CMD, /demo, healthcheck"), "{stack}'s healthcheck runs /demo");
    }
}

/// The dependency rules of docs/architecture.md, checked against `cargo metadata`.
#[test]
fn crates_depend_only_on_what_the_architecture_allows() {
    let map = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let section =
        map.split("## Dependency rules").nth(1).expect("architecture.md has a Dependency rules section");
    let section = section.split("\n## ").next().unwrap();
    let names = |cell: &str| -> Vec<String> {
        cell.split('`').enumerate().filter(|(i, _)| i % 2 == 1).map(|(_, n)| n.to_owned()).collect()
    };
    let mut rules = std::collections::BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let krate = names(cells[1]).remove(0);
        rules.insert(krate, (names(cells[2]), names(cells[3])));
    }
    assert!(rules.len() >= 9, "the table lists the crates: {rules:?}");
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let members: Vec<String> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    let mut broken = Vec::new();
    for package in metadata["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap();
        let Some((allowed, never)) = rules.get(name) else {
            broken.push(format!("{name} is not in the dependency rules of docs/architecture.md"));
            continue;
        };
        for dep in package["dependencies"].as_array().unwrap().iter().filter(|d| d["kind"].is_null()) {
            let dep = dep["name"].as_str().unwrap();
            if never.iter().any(|n| n == dep) {
                broken.push(format!("{name} depends on {dep}, which the rules forbid"));
            } else if members.iter().any(|m| m == dep) && !allowed.iter().any(|a| a == dep) {
                broken.push(format!(
                    "{name} depends on the workspace crate {dep}, which the rules do not allow"
                ));
            }
        }
    }
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).unwrap();
    for openssl in ["name = \"openssl\"", "name = \"openssl-sys\""] {
        if lock.contains(openssl) {
            broken.push(format!("Cargo.lock holds {openssl}: no OpenSSL in our binaries"));
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}
