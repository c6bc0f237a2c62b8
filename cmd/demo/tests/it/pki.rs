//! `demo pki`: output snapshots, exit codes, bad arguments.

use crate::demo;

fn filters(dir: &std::path::Path) -> Vec<(String, String)> {
    vec![
        (regex_escape(&dir.display().to_string()), "[DIR]".to_owned()),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ".to_owned(), "[TIME]".to_owned()),
    ]
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '/' { c.to_string() } else { format!("\\{c}") })
        .collect()
}

fn with_filters(dir: &std::path::Path, f: impl FnOnce()) {
    let mut settings = insta::Settings::clone_current();
    for (re, with) in filters(dir) {
        settings.add_filter(&re, with);
    }
    settings.bind(f);
}

#[test]
fn human_output_first_and_second_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pki");
    let first = demo().args(["pki", "--out"]).arg(&out).assert().success();
    let second = demo().args(["pki", "--no-color", "--out"]).arg(&out).assert().success();
    with_filters(tmp.path(), || {
        insta::assert_snapshot!("pki_first_run", String::from_utf8_lossy(&first.get_output().stdout));
        insta::assert_snapshot!("pki_second_run", String::from_utf8_lossy(&second.get_output().stdout));
    });
    assert!(first.get_output().stderr.is_empty());
}

#[test]
fn json_output_is_one_document() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pki");
    let run = demo()
        .args(["pki", "--output", "json", "--key-type", "p384", "--chain-length", "2", "--pkcs12", "--out"])
        .arg(&out)
        .assert()
        .success();
    let doc: serde_json::Value = serde_json::from_slice(&run.get_output().stdout).unwrap();
    assert_eq!(doc["outcome"], "success");
    assert_eq!(doc["key_type"], "p384");
    assert_eq!(doc["cas"].as_array().unwrap().len(), 2);
    assert!(out.join("leaves/kms/bundle.p12").exists());
    assert!(out.join("pkcs12-password.txt").exists());
    with_filters(tmp.path(), || {
        insta::assert_json_snapshot!("pki_json", doc, {".written" => "[files]"});
    });
}

#[test]
fn quiet_prints_nothing_on_success() {
    let tmp = tempfile::tempdir().unwrap();
    demo().args(["pki", "-q", "--out"]).arg(tmp.path().join("p")).assert().success().stdout("").stderr("");
}

#[test]
fn bad_arguments_exit_2_with_a_clap_message() {
    for args in [
        &["pki", "--out", "x", "--chain-length", "0"][..],
        &["pki", "--out", "x", "--chain-length", "10"],
        &["pki", "--out", "x", "--key-type", "dsa"],
        &["pki"],
        &["pki", "--out", "x", "--pkcs12-password-file", "pw"],
        &["frobnicate"],
    ] {
        let run = demo().args(args).assert().code(2);
        let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
        assert!(stderr.contains("error:"), "{args:?}: {stderr}");
        assert!(run.get_output().stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn an_unwritable_out_dir_exits_2_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, "").unwrap();
    let run = demo().args(["pki", "--out"]).arg(file.join("pki")).assert().code(2);
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    assert!(stderr.contains("plain-file/pki"), "{stderr}");
    assert!(stderr.contains("Not a directory"), "{stderr}");
    assert!(stderr.contains("help:"), "{stderr}");
    assert!(run.get_output().stdout.is_empty());
}

#[test]
fn json_failures_are_one_document_on_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("mine.txt"), "").unwrap();
    let run = demo().args(["pki", "--output", "json", "--out"]).arg(tmp.path()).assert().code(2);
    let doc: serde_json::Value = serde_json::from_slice(&run.get_output().stdout).unwrap();
    assert_eq!(doc["outcome"], "failure");
    assert_eq!(doc["exit_code"], 2);
    assert_eq!(doc["errors"][0]["code"], "demo::pki");
    assert!(doc["errors"][0]["causes"][0].as_str().unwrap().contains("not a PKI directory"));
}

#[test]
fn a_damaged_pki_is_reported_with_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pki");
    demo().args(["pki", "-q", "--out"]).arg(&out).assert().success();
    std::fs::write(out.join("leaves/identity/key.pem"), "garbage").unwrap();
    let run = demo().args(["pki", "--out"]).arg(&out).assert().code(2);
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    assert!(stderr.contains("leaves/identity/key.pem"), "{stderr}");
}
