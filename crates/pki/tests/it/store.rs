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
    assert!(err.to_string().contains("leaves/kms/cert.pem"), "{err}");
    assert!(err.to_string().contains("not the one manifest.json records"), "{err}");
}

#[test]
fn a_manifest_that_is_not_json_is_reported() {
    let (_tmp, out) = demo_pki();
    std::fs::write(out.dir.manifest(), b"{ nope").unwrap();
    let err = pki::ensure(out.dir.root(), &PkiSpec::demo(), &EnsureOptions::default()).unwrap_err();
    assert!(matches!(err, PkiError::Manifest { .. }), "{err}");
}

#[test]
fn an_extra_root_appended_to_the_bundle_is_caught() {
    let (_tmp, a) = demo_pki();
    let (_tmp_b, b) = demo_pki();
    let mut bundle = std::fs::read_to_string(a.dir.ca_bundle()).unwrap();
    bundle.push_str(&std::fs::read_to_string(b.dir.ca_bundle()).unwrap());
    std::fs::write(a.dir.ca_bundle(), bundle).unwrap();
    let err = pki::ensure(a.dir.root(), &PkiSpec::demo(), &EnsureOptions::default()).unwrap_err();
    assert!(matches!(err, PkiError::Modified { .. }), "{err}");
    assert!(err.to_string().contains("ca-bundle.pem"), "{err}");
}

#[test]
fn every_derived_file_is_checked() {
    for file in
        ["leaves/kms/cert.pem", "leaves/kms/chain.pem", "intermediates.pem", "leaves/demo-cli/fullchain.pem"]
    {
        let (_tmp, out) = demo_pki();
        let path = out.dir.root().join(file);
        let mut text = std::fs::read_to_string(&path).unwrap();
        if file.ends_with("cert.pem") {
            // A second certificate after the leaf.
            text.push_str(&std::fs::read_to_string(out.dir.ca_bundle()).unwrap());
        } else {
            text.push('\n');
        }
        std::fs::write(&path, text).unwrap();
        let err = pki::ensure(out.dir.root(), &PkiSpec::demo(), &EnsureOptions::default()).unwrap_err();
        assert!(err.to_string().contains(file), "{file}: {err}");
    }
}

#[test]
fn a_manifest_listing_fewer_files_is_refused() {
    let (_tmp, out) = demo_pki();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.dir.manifest()).unwrap()).unwrap();
    manifest["leaves"] = serde_json::json!([]);
    std::fs::write(out.dir.manifest(), manifest.to_string()).unwrap();
    let err = pki::ensure(out.dir.root(), &PkiSpec::demo(), &EnsureOptions::default()).unwrap_err();
    assert!(matches!(err, PkiError::Manifest { .. }), "{err}");
}

#[test]
fn a_manifest_cannot_steer_writes_outside_the_directory() {
    let (tmp, out) = demo_pki();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.dir.manifest()).unwrap()).unwrap();
    manifest["leaves"][0]["name"] = "../../escaped".into();
    manifest["spec"]["leaves"][0]["name"] = "../../escaped".into();
    std::fs::write(out.dir.manifest(), manifest.to_string()).unwrap();
    let options = EnsureOptions { pkcs12: Some(pki::Pkcs12Password::Generate) };
    assert!(pki::ensure(out.dir.root(), &PkiSpec::demo(), &options).is_err());
    assert!(!tmp.path().join("escaped").exists());
    assert!(!tmp.path().parent().unwrap().join("escaped").exists());
}

#[test]
fn loose_permissions_are_refused_on_reuse() {
    let (_tmp, out) = demo_pki();
    let key = out.dir.leaf("kms").key;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = pki::ensure(out.dir.root(), &PkiSpec::demo(), &EnsureOptions::default()).unwrap_err();
    assert!(matches!(err, PkiError::Permissions { mode: 0o644, .. }), "{err}");
    assert!(err.to_string().contains("chmod -R go-rwx"), "{err}");
}

#[test]
fn symlinks_are_refused() {
    let (tmp, out) = demo_pki();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(out.dir.root(), &link).unwrap();
    let err = pki::ensure(&link, &PkiSpec::demo(), &EnsureOptions::default()).unwrap_err();
    assert!(matches!(err, PkiError::OutPath { .. }), "{err}");
    assert!(err.to_string().contains("symbolic link"), "{err}");

    let key = out.dir.leaf("kms").key;
    let moved = tmp.path().join("kms-key.pem");
    std::fs::rename(&key, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &key).unwrap();
    let err = pki::ensure(out.dir.root(), &PkiSpec::demo(), &EnsureOptions::default()).unwrap_err();
    assert!(matches!(err, PkiError::Symlink { .. }), "{err}");
}

#[test]
fn dot_dot_is_refused_and_dot_means_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    let err =
        pki::ensure(&tmp.path().join("sub/.."), &PkiSpec::demo(), &EnsureOptions::default()).unwrap_err();
    assert!(matches!(err, PkiError::OutPath { .. }), "{err}");
    assert_eq!(tree(tmp.path()), Vec::<String>::new());
    // `dir/.` is `dir`: an existing empty directory is filled in place, manifest last.
    let out = pki::ensure(&tmp.path().join("sub/."), &PkiSpec::demo(), &EnsureOptions::default()).unwrap();
    assert!(out.created);
    assert!(tmp.path().join("sub/manifest.json").exists());
    assert!(
        !pki::ensure(&tmp.path().join("sub"), &PkiSpec::demo(), &EnsureOptions::default()).unwrap().created
    );
}

#[test]
fn a_killed_runs_staging_directory_is_swept() {
    let tmp = tempfile::tempdir().unwrap();
    let stale = tmp.path().join(".pki.partial-abc123");
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("key.pem"), "secret").unwrap();
    pki::ensure(&tmp.path().join("pki"), &PkiSpec::demo(), &EnsureOptions::default()).unwrap();
    assert!(!stale.exists());
}

#[test]
fn a_missing_pkcs12_password_file_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let options = EnsureOptions { pkcs12: Some(pki::Pkcs12Password::File(tmp.path().join("missing.txt"))) };
    let err = pki::ensure(&tmp.path().join("pki"), &PkiSpec::demo(), &options).unwrap_err();
    assert!(err.to_string().contains("missing.txt"), "{err}");
    assert!(tree(tmp.path()).is_empty(), "{:?}", tree(tmp.path()));
}

#[test]
fn a_one_ca_chain_writes_no_empty_chain_files() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = PkiSpec { chain_length: 1, ..PkiSpec::demo() };
    let out = pki::ensure(&tmp.path().join("pki"), &spec, &EnsureOptions::default()).unwrap();
    assert!(!out.dir.intermediates().exists());
    assert!(!out.dir.leaf("kms").chain.exists());
    assert_eq!(
        std::fs::read(out.dir.leaf("kms").fullchain).unwrap(),
        std::fs::read(out.dir.leaf("kms").cert).unwrap()
    );
    // And it is reused as such.
    assert!(!pki::ensure(out.dir.root(), &spec, &EnsureOptions::default()).unwrap().created);
}

#[test]
fn a_password_file_after_a_generated_password_removes_the_stale_one() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("pki");
    let generated = EnsureOptions { pkcs12: Some(pki::Pkcs12Password::Generate) };
    let out = pki::ensure(&root, &PkiSpec::demo(), &generated).unwrap();
    assert!(out.dir.pkcs12_password().exists());
    let pw = tmp.path().join("pw.txt");
    std::fs::write(&pw, "another password\n").unwrap();
    let from_file = EnsureOptions { pkcs12: Some(pki::Pkcs12Password::File(pw)) };
    let again = pki::ensure(&root, &PkiSpec::demo(), &from_file).unwrap();
    assert!(again.written.contains(&out.dir.leaf("kms").pkcs12));
    assert!(!out.dir.pkcs12_password().exists());
}
