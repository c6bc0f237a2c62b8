//! Materialisation: layout, permissions, reuse, and refusal of bad input.

use std::os::unix::fs::PermissionsExt;

use pki::{EnsureOptions, PkiError, PkiSpec};

use crate::{demo_pki, tree};

#[test]
fn layout_permissions_and_gitignore() {
    let (_tmp, out) = demo_pki();
    assert!(out.created);
    let root = out.dir.root();
    let files = tree(root);
    for expected in [
        ".gitignore",
        "ca-bundle.pem",
        "intermediates.pem",
        "manifest.json",
        "ca/root/cert.pem",
        "ca/policy/key.pem",
        "ca/issuing/cert.pem",
        "leaves/kms/fullchain.pem",
        "leaves/identity/key.pem",
        "leaves/demo-cli/cert.pem",
    ] {
        assert!(files.iter().any(|f| f == expected), "{expected} missing from {files:?}");
    }
    for f in &files {
        let mode = std::fs::metadata(root.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    for d in ["", "ca", "ca/root", "leaves", "leaves/kms"] {
        let mode = std::fs::metadata(root.join(d)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{d:?}");
    }
    assert!(std::fs::read_to_string(root.join(".gitignore")).unwrap().lines().any(|l| l == "*"));
    assert_eq!(out.written.len(), files.len());
}

#[test]
fn second_run_reuses_without_rewriting() {
    let (_tmp, first) = demo_pki();
    let root = first.dir.root().to_owned();
    let before = std::fs::read(root.join("leaves/kms/cert.pem")).unwrap();
    let second = pki::ensure(&root, &PkiSpec::demo(), &EnsureOptions::default()).unwrap();
    assert!(!second.created);
    assert!(second.written.is_empty());
    assert_eq!(second.manifest, first.manifest);
    assert_eq!(std::fs::read(root.join("leaves/kms/cert.pem")).unwrap(), before);
}

#[test]
fn other_settings_on_an_existing_pki_are_refused() {
    let (_tmp, first) = demo_pki();
    let spec = PkiSpec { chain_length: 2, ..PkiSpec::demo() };
    let err = pki::ensure(first.dir.root(), &spec, &EnsureOptions::default()).unwrap_err();
    assert!(matches!(err, PkiError::SpecMismatch { .. }), "{err}");
    assert!(err.to_string().contains("chain length 3 there, 2 asked"), "{err}");
}

#[test]
fn chain_length_zero_or_ten_writes_nothing() {
    for len in [0u8, 10] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("pki");
        let spec = PkiSpec { chain_length: len, ..PkiSpec::demo() };
        let err = pki::ensure(&out, &spec, &EnsureOptions::default()).unwrap_err();
        assert!(matches!(err, PkiError::ChainLength { .. }), "{err}");
        assert!(tree(tmp.path()).is_empty(), "left behind: {:?}", tree(tmp.path()));
    }
}

#[test]
fn unwritable_out_dir_is_a_clear_error_and_leaves_nothing() {
    // A path below a regular file can never be created, even by root.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = pki::ensure(&file.join("pki"), &PkiSpec::demo(), &EnsureOptions::default()).unwrap_err();
    assert!(matches!(err, PkiError::OutDir { .. }), "{err}");
    assert!(err.to_string().contains("a-file/pki"), "{err}");
    assert_eq!(tree(tmp.path()), ["a-file"]);
}

#[test]
fn a_directory_we_did_not_write_is_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), b"mine").unwrap();
    let err = pki::ensure(tmp.path(), &PkiSpec::demo(), &EnsureOptions::default()).unwrap_err();
    assert!(matches!(err, PkiError::ForeignDir { .. }), "{err}");
    assert_eq!(tree(tmp.path()), ["notes.txt"]);
}

#[test]
fn an_empty_existing_directory_is_used() {
    let tmp = tempfile::tempdir().unwrap();
    let out = pki::ensure(tmp.path(), &PkiSpec::demo(), &EnsureOptions::default()).unwrap();
    assert!(out.created);
    assert!(tmp.path().join("manifest.json").exists());
}

#[test]
fn corrupt_certificate_in_the_dir_names_the_file() {
    let (_tmp, out) = demo_pki();
    let path = out.dir.leaf("kms").fullchain;
    std::fs::write(&path, "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n").unwrap();
    let err = pki::ensure(out.dir.root(), &PkiSpec::demo(), &EnsureOptions::default()).unwrap_err();
    assert!(err.to_string().contains("leaves/kms/fullchain.pem"), "{err}");
}

#[test]
fn a_key_from_another_leaf_is_a_mismatch() {
    let (_tmp, out) = demo_pki();
    let kms = out.dir.leaf("kms");
    std::fs::copy(out.dir.leaf("identity").key, &kms.key).unwrap();
    let err = pki::ensure(out.dir.root(), &PkiSpec::demo(), &EnsureOptions::default()).unwrap_err();
    assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err}");
    assert!(err.to_string().contains("leaves/kms/key.pem"), "{err}");
}

#[test]
fn a_certificate_swapped_in_from_another_run_is_caught() {
    let (_tmp_a, a) = demo_pki();
    let (_tmp_b, b) = demo_pki();
    for name in ["cert.pem", "key.pem", "fullchain.pem"] {
        std::fs::copy(b.dir.leaf("kms").dir.join(name), a.dir.leaf("kms").dir.join(name)).unwrap();
    }
    let err = pki::ensure(a.dir.root(), &PkiSpec::demo(), &EnsureOptions::default()).unwrap_err();
    assert!(err.to_string().contains("leaves/kms/fullchain.pem"), "{err}");
}

#[test]
fn a_manifest_that_is_not_json_is_reported() {
    let (_tmp, out) = demo_pki();
    std::fs::write(out.dir.manifest(), b"{ nope").unwrap();
    let err = pki::ensure(out.dir.root(), &PkiSpec::demo(), &EnsureOptions::default()).unwrap_err();
    assert!(matches!(err, PkiError::Manifest { .. }), "{err}");
}
