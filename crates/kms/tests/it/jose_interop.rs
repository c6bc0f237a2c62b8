//! Interoperability with an independent JOSE implementation (Python jwcrypto): it decrypts our
//! JWEs and verifies our JWSs; we decrypt and verify its.

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine as _;
use kms::crypto::{Algorithm, KeyMaterial};
use kms::jose::{self, Kid, ParsedJwe, ParsedJws};

/// True when python3 with jwcrypto is available; loud skip otherwise, failure under CI.
fn have_jwcrypto() -> bool {
    test_support::oracle::python("jwcrypto", "python3 with jwcrypto")
}

#[test]
fn jwcrypto_reads_ours_and_we_read_its() {
    if !have_jwcrypto() {
        return;
    }
    let aes = KeyMaterial::generate(Algorithm::A256Gcm).unwrap();
    let kid = Kid::new("p", 1);
    let compact = jose::encrypt_compact(&aes, &kid, b"compact secret").unwrap();
    let json =
        serde_json::to_string(&jose::encrypt_json(&aes, &kid, b"json secret", b"order-7").unwrap()).unwrap();
    let mut jwss = Vec::new();
    let mut signers = Vec::new();
    for algorithm in [Algorithm::Es256, Algorithm::EdDsa, Algorithm::Ps256] {
        let key = KeyMaterial::generate(algorithm).unwrap();
        let kid = Kid::new("signing", 2);
        let jws = jose::sign_compact(&key, &kid, format!("signed with {}", algorithm.jose_name()).as_bytes())
            .unwrap();
        jwss.push(serde_json::json!({"jws": jws, "jwk": jose::public_jwk(&key.public_key().unwrap(), &kid)}));
        signers.push(key);
    }
    let request = serde_json::json!({
        "oct": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(aes.secret_bytes()),
        "jwes": [compact, json],
        "jwss": jwss,
    });

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/interop.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(request.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "jwcrypto failed: {}", String::from_utf8_lossy(&out.stderr));
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    // Theirs decrypted ours.
    assert_eq!(reply["plaintexts"], serde_json::json!(["compact secret", "json secret"]));
    assert_eq!(
        reply["payloads"],
        serde_json::json!(["signed with ES256", "signed with EdDSA", "signed with PS256"])
    );

    // We decrypt theirs.
    let theirs = ParsedJwe::parse(reply["their_jwe"].as_str().unwrap()).unwrap();
    assert_eq!(theirs.kid(), &kid);
    assert_eq!(&*theirs.decrypt(&aes).unwrap(), b"from python");

    // We verify theirs, with the algorithm pinned by the key.
    for item in reply["their_jws"].as_array().unwrap() {
        let public = jose::public_key_from_jwk(&item["jwk"]).unwrap();
        let parsed = ParsedJws::parse(item["jws"].as_str().unwrap()).unwrap();
        parsed.verify(&public).unwrap_or_else(|e| panic!("{}: {e}", item["alg"]));
        assert_eq!(parsed.payload(), b"signed by python");
    }
}
