//! OpenSSL as the independent judge: `verify -x509_strict`, `s_client -tls1_3` / `-tls1_2`,
//! and `pkcs12`.

use std::path::Path;
use std::process::{Command, Output};

use pki::{ClientAuth, EnsureOptions, KeyType, Pkcs12Password, PkiSpec};

use crate::{have_tool, tls::serve};

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl").args(args).stdin(std::process::Stdio::null()).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn verify_all_leaves(dir: &pki::PkiDir, spec: &PkiSpec) {
    let ca = dir.ca_bundle();
    let inter = dir.intermediates();
    for leaf in &spec.leaves {
        let purpose = match leaf.kind {
            pki::LeafKind::Server => "sslserver",
            pki::LeafKind::Client => "sslclient",
        };
        let cert = dir.leaf(&leaf.name).cert;
        let mut args = vec!["verify", "-x509_strict", "-purpose", purpose, "-CAfile"];
        let ca = ca.to_str().unwrap();
        args.push(ca);
        let inter = inter.to_str().unwrap();
        if spec.chain_length > 1 {
            args.extend(["-untrusted", inter]);
        }
        let cert = cert.to_str().unwrap();
        args.push(cert);
        let out = openssl(&args);
        assert!(out.status.success(), "{} / {spec:?}: {}", leaf.name, text(&out));
        assert!(text(&out).contains(": OK"), "{}", text(&out));
    }
}

#[test]
fn openssl_strictly_verifies_every_leaf_for_every_key_type_and_chain_length() {
    if !have_tool("openssl") {
        return;
    }
    for (key_type, chain_length) in [
        (KeyType::P256, 3),
        (KeyType::P384, 1),
        (KeyType::Rsa2048, 2),
        (KeyType::Rsa3072, 5),
        (KeyType::P256, 4),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let spec = PkiSpec { key_type, chain_length, ..PkiSpec::demo() };
        let out = pki::ensure(&tmp.path().join("pki"), &spec, &EnsureOptions::default()).unwrap();
        verify_all_leaves(&out.dir, &spec);
    }
}

#[test]
fn openssl_rejects_a_leaf_against_a_foreign_root() {
    if !have_tool("openssl") {
        return;
    }
    let (_a, a) = crate::demo_pki();
    let (_b, b) = crate::demo_pki();
    let out = openssl(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        b.dir.ca_bundle().to_str().unwrap(),
        "-untrusted",
        a.dir.intermediates().to_str().unwrap(),
        a.dir.leaf("kms").cert.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{}", text(&out));
}

fn s_client(addr: std::net::SocketAddr, version: &str, ca: &Path, extra: &[&str]) -> Output {
    let connect = addr.to_string();
    let mut args = vec![
        "s_client",
        "-connect",
        &connect,
        version,
        "-CAfile",
        ca.to_str().unwrap(),
        "-verify_return_error",
        "-verify_hostname",
        "kms.demo.local",
        "-servername",
        "kms.demo.local",
    ];
    args.extend(extra);
    openssl(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s_client_verifies_tls13_and_is_refused_tls12() {
    if !have_tool("openssl") {
        return;
    }
    let (_tmp, out) = crate::demo_pki();
    let addr = serve(pki::server_config_for(&out.dir, "kms", ClientAuth::None).unwrap()).await;
    let ca = out.dir.ca_bundle();

    let ca2 = ca.clone();
    let ok = tokio::task::spawn_blocking(move || s_client(addr, "-tls1_3", &ca2, &[])).await.unwrap();
    let t = text(&ok);
    assert!(ok.status.success(), "{t}");
    assert!(t.contains("Verify return code: 0 (ok)"), "{t}");
    assert!(t.contains("TLSv1.3"), "{t}");

    let refused = tokio::task::spawn_blocking(move || s_client(addr, "-tls1_2", &ca, &[])).await.unwrap();
    let t = text(&refused);
    assert!(!refused.status.success(), "TLS 1.2 must be refused: {t}");
    assert!(t.contains("alert protocol version"), "{t}");
    assert!(t.contains("no peer certificate available"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s_client_needs_a_client_certificate_under_mtls() {
    if !have_tool("openssl") {
        return;
    }
    let (_tmp, out) = crate::demo_pki();
    let server = pki::server_config_for(&out.dir, "kms", ClientAuth::Required(out.dir.ca_bundle())).unwrap();
    let addr = serve(server).await;
    let ca = out.dir.ca_bundle();
    let leaf = out.dir.leaf("demo-cli");
    let (cert, chain, key) = (
        leaf.cert.to_str().unwrap().to_owned(),
        leaf.chain.to_str().unwrap().to_owned(),
        leaf.key.to_str().unwrap().to_owned(),
    );

    let ca2 = ca.clone();
    let ok = tokio::task::spawn_blocking(move || {
        s_client(addr, "-tls1_3", &ca2, &["-ign_eof", "-cert", &cert, "-cert_chain", &chain, "-key", &key])
    })
    .await
    .unwrap();
    // The server greets an authenticated client; an anonymous one gets an alert instead.
    assert!(text(&ok).contains("hello"), "{}", text(&ok));
    let anon =
        tokio::task::spawn_blocking(move || s_client(addr, "-tls1_3", &ca, &["-ign_eof"])).await.unwrap();
    assert!(!text(&anon).contains("hello"), "{}", text(&anon));
    assert!(text(&anon).contains("alert"), "{}", text(&anon));
}

#[test]
fn openssl_opens_the_pkcs12_bundles() {
    if !have_tool("openssl") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pw = tmp.path().join("pw.txt");
    std::fs::write(&pw, "correct horse battery staple\n").unwrap();
    let options = EnsureOptions { pkcs12: Some(Pkcs12Password::File(pw.clone())) };
    let out = pki::ensure(&tmp.path().join("pki"), &PkiSpec::demo(), &options).unwrap();
    let p12 = out.dir.leaf("kms").pkcs12;
    assert!(out.written.contains(&p12));
    let passin = format!("file:{}", pw.display());
    let res = openssl(&["pkcs12", "-in", p12.to_str().unwrap(), "-passin", &passin, "-nodes", "-info"]);
    let t = text(&res);
    assert!(res.status.success(), "{t}");
    assert!(t.contains("subject=") && t.contains("kms.demo.local"), "{t}");
    assert!(t.contains("BEGIN PRIVATE KEY"), "{t}");

    let bad = tmp.path().join("bad.txt");
    std::fs::write(&bad, "wrong\n").unwrap();
    let res = openssl(&[
        "pkcs12",
        "-in",
        p12.to_str().unwrap(),
        "-passin",
        &format!("file:{}", bad.display()),
        "-nokeys",
    ]);
    assert!(!res.status.success());

    // Asking again with a generated password rewrites the bundles under the new password.
    let again = pki::ensure(
        out.dir.root(),
        &PkiSpec::demo(),
        &EnsureOptions { pkcs12: Some(Pkcs12Password::Generate) },
    )
    .unwrap();
    assert!(again.written.contains(&out.dir.pkcs12_password()));
    let passin = format!("file:{}", out.dir.pkcs12_password().display());
    let res = openssl(&["pkcs12", "-in", p12.to_str().unwrap(), "-passin", &passin, "-nokeys"]);
    assert!(res.status.success(), "{}", text(&res));
}

#[test]
fn an_empty_password_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let pw = tmp.path().join("pw.txt");
    std::fs::write(&pw, "\n").unwrap();
    let options = EnsureOptions { pkcs12: Some(Pkcs12Password::File(pw)) };
    let err = pki::ensure(&tmp.path().join("pki"), &PkiSpec::demo(), &options).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}
