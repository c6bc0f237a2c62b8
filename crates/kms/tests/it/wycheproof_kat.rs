//! Known-answer tests: Google's Wycheproof vectors through *our* crypto layer (`KeyMaterial`,
//! `PublicKey`), not through aws-lc-rs directly, so a mistake in how we call the library shows.
//! `acceptable` vectors may go either way; every `valid` must pass and every `invalid` fail.

use kms::crypto::{Algorithm, KeyMaterial, PublicKey};
use wycheproof::TestResult;
use zeroize::Zeroizing;

fn expect(result: &TestResult, ok: bool, what: &str) {
    match result {
        TestResult::Valid => assert!(ok, "{what}: valid vector rejected"),
        TestResult::Invalid => assert!(!ok, "{what}: invalid vector accepted"),
        _ => {}
    }
}

fn strip_zeros(bytes: &[u8]) -> Vec<u8> {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[first..].to_vec()
}

#[test]
fn aes_256_gcm() {
    let set = wycheproof::aead::TestSet::load(wycheproof::aead::TestName::AesGcm).unwrap();
    let mut ran = 0;
    for group in set.test_groups.iter().filter(|g| g.key_size == 256 && g.tag_size == 128) {
        for t in &group.tests {
            let key = KeyMaterial::from_bytes(Algorithm::A256Gcm, Zeroizing::new(t.key.to_vec())).unwrap();
            let mut ct = t.ct.to_vec();
            ct.extend_from_slice(&t.tag);
            let out = key.decrypt(&t.nonce, &ct, &t.aad);
            if group.nonce_size != 96 {
                // JWE A256GCM uses 96-bit IVs only (RFC 7518 §5.3): anything else is refused.
                assert!(
                    out.is_err(),
                    "AES-GCM tc {}: a {}-bit IV must be refused",
                    t.tc_id,
                    group.nonce_size
                );
                continue;
            }
            let ok = out.as_ref().is_ok_and(|pt| pt.as_slice() == t.pt.as_slice());
            expect(&t.result, ok, &format!("AES-GCM tc {} ({})", t.tc_id, t.comment));
            ran += 1;
        }
    }
    assert!(ran > 50, "only {ran} AES-GCM vectors ran");
}

#[test]
fn aes_256_key_wrap() {
    let set = wycheproof::keywrap::TestSet::load(wycheproof::keywrap::TestName::AesKeyWrap).unwrap();
    let mut ran = 0;
    for group in set.test_groups.iter().filter(|g| g.key_size == 256) {
        for t in &group.tests {
            let kek = KeyMaterial::from_bytes(Algorithm::A256Kw, Zeroizing::new(t.key.to_vec())).unwrap();
            let unwrapped = kek.unwrap(&t.ct);
            let ok = unwrapped.as_ref().is_ok_and(|pt| pt.as_slice() == t.pt.as_slice());
            expect(&t.result, ok, &format!("AES-KW tc {} ({})", t.tc_id, t.comment));
            if matches!(t.result, TestResult::Valid) {
                assert_eq!(kek.wrap(&t.pt).unwrap(), t.ct.to_vec(), "AES-KW wrap tc {}", t.tc_id);
            }
            ran += 1;
        }
    }
    assert!(ran > 20, "only {ran} AES-KW vectors ran");
}

#[test]
fn ecdsa_p256_sha256_p1363() {
    let name = wycheproof::ecdsa::TestName::EcdsaSecp256r1Sha256P1363;
    let set = wycheproof::ecdsa::TestSet::load(name).unwrap();
    let mut ran = 0;
    let mut zero_sig_seen = false;
    for group in &set.test_groups {
        let key = PublicKey::Es256(group.key.key.to_vec());
        for t in &group.tests {
            let ok = key.verify(&t.msg, &t.sig).is_ok();
            expect(&t.result, ok, &format!("ECDSA tc {} ({})", t.tc_id, t.comment));
            zero_sig_seen |= !t.sig.is_empty() && t.sig.iter().all(|b| *b == 0);
            ran += 1;
        }
    }
    assert!(ran > 100, "only {ran} ECDSA vectors ran");
    assert!(zero_sig_seen, "the set should include r = s = 0");
}

#[test]
fn ed25519() {
    let set = wycheproof::eddsa::TestSet::load(wycheproof::eddsa::TestName::Ed25519).unwrap();
    let mut ran = 0;
    for group in &set.test_groups {
        let key = PublicKey::EdDsa(group.key.pk.to_vec());
        for t in &group.tests {
            let ok = key.verify(&t.msg, &t.sig).is_ok();
            expect(&t.result, ok, &format!("Ed25519 tc {} ({})", t.tc_id, t.comment));
            ran += 1;
        }
    }
    assert!(ran > 50, "only {ran} Ed25519 vectors ran");
}

#[test]
fn rsa_pss_2048_sha256_salt32() {
    let name = wycheproof::rsa_pss_verify::TestName::RsaPss2048Sha256Mgf1SaltLen32;
    let set = wycheproof::rsa_pss_verify::TestSet::load(name).unwrap();
    let mut ran = 0;
    for group in &set.test_groups {
        let key = PublicKey::Ps256 { n: strip_zeros(&group.key.n), e: strip_zeros(&group.key.e) };
        for t in &group.tests {
            let ok = key.verify(&t.msg, &t.sig).is_ok();
            expect(&t.result, ok, &format!("RSA-PSS tc {} ({})", t.tc_id, t.comment));
            ran += 1;
        }
    }
    assert!(ran > 20, "only {ran} RSA-PSS vectors ran");
}
