//! JOSE encodings of the KMS's results: JWE (`dir` + `A256GCM`, compact, or flattened JSON when
//! the caller adds AAD), JWS compact (`ES256`, `EdDSA`, `PS256`) and public JWKs.
//!
//! Parsing is strict and never trusts a header to choose an algorithm: the `kid` selects a key
//! version, and the header's `alg`/`enc` must equal what that version is. Headers are parsed
//! into structs that refuse unknown and duplicate members, so `crit`, `zip`, `jku`, `jwk`,
//! `x5u`, `x5c` and `b64` are rejected rather than ignored.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use kms_proto::Jwk;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{Algorithm, CryptoError, KeyMaterial, PublicKey};

/// Longest JOSE object accepted, in bytes (the HTTP layer's body limit is lower still).
pub const MAX_LEN: usize = 4 * 1024 * 1024;

/// A JOSE object could not be produced or consumed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoseError {
    /// Structurally wrong: parts, base64, JSON.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// JWE, JWS, header, kid.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A header names an algorithm we do not do here.
    #[error("unsupported {field} {value:?}: this key does {expected}")]
    Algorithm {
        /// `alg` or `enc`.
        field: &'static str,
        /// What the header says.
        value: String,
        /// What the key does.
        expected: &'static str,
    },
    /// The cryptographic check failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

fn malformed(what: &'static str, reason: impl Into<String>) -> JoseError {
    JoseError::Malformed { what, reason: reason.into() }
}

/// A key id: pool name and version, written `pool/version` (`payments/3`). The tenant never
/// appears: it comes from the caller's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Kid {
    /// Pool name.
    pub pool: String,
    /// Version, from 1.
    pub version: u32,
}

impl Kid {
    /// A kid for `pool` version `version`.
    pub fn new(pool: impl Into<String>, version: u32) -> Self {
        Self { pool: pool.into(), version }
    }

    /// Parses `pool/version`.
    pub fn parse(text: &str) -> Result<Self, JoseError> {
        let (pool, version) =
            text.split_once('/').ok_or_else(|| malformed("kid", "expected pool/version"))?;
        if !valid_pool_name(pool) {
            return Err(malformed("kid", "the pool name must be 1 to 64 of a-z, 0-9, '-', '_'"));
        }
        // Digits only: `u32::from_str` also takes a leading '+', which would make kids
        // non-canonical (`p/+1` and `p/1` naming one version).
        let version: u32 = Some(version)
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && !v.starts_with('0'))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| malformed("kid", "the version must be a whole number from 1"))?;
        Ok(Self { pool: pool.to_owned(), version })
    }
}

impl std::fmt::Display for Kid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.pool, self.version)
    }
}

/// Pool names: 1 to 64 of `a-z 0-9 - _`.
pub fn valid_pool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JweHeader {
    alg: String,
    enc: String,
    kid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cty: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JwsHeader {
    alg: String,
    kid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cty: Option<String>,
}

/// A JWE in the flattened JSON serialization (RFC 7516 §7.2.2): a wire type of `kms-proto`.
pub use kms_proto::FlattenedJwe;

/// Encrypts to a compact JWE (`dir`, `A256GCM`, `kid`).
pub fn encrypt_compact(key: &KeyMaterial, kid: &Kid, plaintext: &[u8]) -> Result<String, JoseError> {
    let protected = protected_jwe_header(kid)?;
    let (iv, ct) = key.encrypt(plaintext, protected.as_bytes())?;
    let (ciphertext, tag) = ct.split_at(ct.len() - 16);
    Ok(format!("{protected}..{}.{}.{}", B64.encode(iv), B64.encode(ciphertext), B64.encode(tag)))
}

/// Encrypts to a flattened JSON JWE with `aad` authenticated alongside the header.
pub fn encrypt_json(
    key: &KeyMaterial,
    kid: &Kid,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<FlattenedJwe, JoseError> {
    let protected = protected_jwe_header(kid)?;
    let aad_b64 = B64.encode(aad);
    let full_aad = format!("{protected}.{aad_b64}");
    let (iv, ct) = key.encrypt(plaintext, full_aad.as_bytes())?;
    let (ciphertext, tag) = ct.split_at(ct.len() - 16);
    Ok(FlattenedJwe {
        protected,
        iv: B64.encode(iv),
        ciphertext: B64.encode(ciphertext),
        tag: B64.encode(tag),
        aad: Some(aad_b64),
        encrypted_key: None,
    })
}

fn protected_jwe_header(kid: &Kid) -> Result<String, JoseError> {
    let header =
        JweHeader { alg: "dir".into(), enc: "A256GCM".into(), kid: kid.to_string(), typ: None, cty: None };
    let json = serde_json::to_vec(&header).map_err(|e| malformed("header", e.to_string()))?;
    Ok(B64.encode(json))
}

/// A parsed JWE, ready to decrypt once its `kid`'s key is found.
#[derive(Debug, Clone)]
pub struct ParsedJwe {
    kid: Kid,
    aad: Vec<u8>,
    iv: Vec<u8>,
    ciphertext_and_tag: Vec<u8>,
}

impl ParsedJwe {
    /// Parses a compact JWE or a flattened JSON JWE (a string starting with `{`).
    pub fn parse(input: &str) -> Result<Self, JoseError> {
        let input = input.trim();
        if input.len() > MAX_LEN {
            return Err(malformed("JWE", "too large"));
        }
        let (protected, iv, ciphertext, tag, encrypted_key, aad) = if input.starts_with('{') {
            let json: FlattenedJwe = serde_json::from_str(input)
                .map_err(|e| malformed("JWE", format!("not a flattened JSON JWE: {e}")))?;
            let aad = match &json.aad {
                Some(aad) => {
                    decode("JWE aad", aad)?;
                    format!("{}.{aad}", json.protected)
                }
                None => json.protected.clone(),
            };
            (json.protected, json.iv, json.ciphertext, json.tag, json.encrypted_key.unwrap_or_default(), aad)
        } else {
            let parts: Vec<&str> = input.split('.').collect();
            if parts.len() != 5 {
                return Err(malformed("JWE", format!("a compact JWE has 5 parts, this has {}", parts.len())));
            }
            let p = |i: usize| parts[i].to_owned();
            (p(0), p(2), p(3), p(4), p(1), p(0))
        };
        let header: JweHeader = parse_header("JWE", &protected)?;
        if header.alg != "dir" {
            return Err(JoseError::Algorithm { field: "alg", value: header.alg, expected: "dir" });
        }
        if header.enc != "A256GCM" {
            return Err(JoseError::Algorithm { field: "enc", value: header.enc, expected: "A256GCM" });
        }
        if !encrypted_key.is_empty() {
            return Err(malformed("JWE", "alg dir has an empty encrypted key part"));
        }
        let iv = decode("JWE IV", &iv)?;
        if iv.len() != 12 {
            return Err(malformed("JWE", "the IV must be 12 bytes"));
        }
        let tag = decode("JWE tag", &tag)?;
        if tag.len() != 16 {
            return Err(malformed("JWE", "the authentication tag must be 16 bytes"));
        }
        let mut ciphertext_and_tag = decode("JWE ciphertext", &ciphertext)?;
        ciphertext_and_tag.extend_from_slice(&tag);
        Ok(Self { kid: Kid::parse(&header.kid)?, aad: aad.into_bytes(), iv, ciphertext_and_tag })
    }

    /// The key version it names.
    pub fn kid(&self) -> &Kid {
        &self.kid
    }

    /// Decrypts with the key the `kid` named.
    pub fn decrypt(&self, key: &KeyMaterial) -> Result<Zeroizing<Vec<u8>>, JoseError> {
        if key.algorithm() != Algorithm::A256Gcm {
            return Err(JoseError::Algorithm {
                field: "enc",
                value: "A256GCM".into(),
                expected: key.algorithm().jose_name(),
            });
        }
        Ok(key.decrypt(&self.iv, &self.ciphertext_and_tag, &self.aad)?)
    }
}

/// Signs `payload` into a compact JWS with the key's algorithm and `kid`.
pub fn sign_compact(key: &KeyMaterial, kid: &Kid, payload: &[u8]) -> Result<String, JoseError> {
    let header =
        JwsHeader { alg: key.algorithm().jose_name().into(), kid: kid.to_string(), typ: None, cty: None };
    let header = B64.encode(serde_json::to_vec(&header).map_err(|e| malformed("header", e.to_string()))?);
    let signing_input = format!("{header}.{}", B64.encode(payload));
    let signature = key.sign(signing_input.as_bytes())?;
    Ok(format!("{signing_input}.{}", B64.encode(signature)))
}

/// A parsed compact JWS.
#[derive(Debug, Clone)]
pub struct ParsedJws {
    kid: Kid,
    alg: String,
    signing_input: String,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl ParsedJws {
    /// Parses a compact JWS.
    pub fn parse(input: &str) -> Result<Self, JoseError> {
        let input = input.trim();
        if input.len() > MAX_LEN {
            return Err(malformed("JWS", "too large"));
        }
        let parts: Vec<&str> = input.split('.').collect();
        if parts.len() != 3 {
            return Err(malformed("JWS", format!("a compact JWS has 3 parts, this has {}", parts.len())));
        }
        let header: JwsHeader = parse_header("JWS", parts[0])?;
        let payload = decode("JWS payload", parts[1])?;
        let signature = decode("JWS signature", parts[2])?;
        Ok(Self {
            kid: Kid::parse(&header.kid)?,
            alg: header.alg,
            signing_input: format!("{}.{}", parts[0], parts[1]),
            payload,
            signature,
        })
    }

    /// The key version it names.
    pub fn kid(&self) -> &Kid {
        &self.kid
    }

    /// The payload (unverified until [`ParsedJws::verify`] succeeds).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Verifies with the public key of the version the `kid` named; the header's `alg` must be
    /// exactly that key's algorithm.
    pub fn verify(&self, key: &PublicKey) -> Result<(), JoseError> {
        let expected = key.algorithm().jose_name();
        if self.alg != expected {
            return Err(JoseError::Algorithm { field: "alg", value: self.alg.clone(), expected });
        }
        Ok(key.verify(self.signing_input.as_bytes(), &self.signature)?)
    }
}

/// The public JWK of a signing key version.
pub fn public_jwk(key: &PublicKey, kid: &Kid) -> Jwk {
    let jwk = |kty: &str, crv: Option<&str>| Jwk {
        kty: kty.to_owned(),
        crv: crv.map(str::to_owned),
        x: None,
        y: None,
        n: None,
        e: None,
        kid: kid.to_string(),
        alg: key.algorithm().jose_name().to_owned(),
        use_: "sig".to_owned(),
    };
    match key {
        PublicKey::Es256(point) => {
            let (x, y) = point.get(1..).unwrap_or_default().split_at(point.len().saturating_sub(1) / 2);
            Jwk { x: Some(B64.encode(x)), y: Some(B64.encode(y)), ..jwk("EC", Some("P-256")) }
        }
        PublicKey::EdDsa(x) => Jwk { x: Some(B64.encode(x)), ..jwk("OKP", Some("Ed25519")) },
        PublicKey::Ps256 { n, e } => {
            Jwk { n: Some(B64.encode(n)), e: Some(B64.encode(e)), ..jwk("RSA", None) }
        }
    }
}

/// Reads a public JWK (EC P-256, OKP Ed25519 or RSA) into a verification key. Private members
/// (`d`, `p`, `q`, …) are refused: a public key must not arrive with its private half.
pub fn public_key_from_jwk(jwk: &serde_json::Value) -> Result<PublicKey, JoseError> {
    let field = |name: &str| -> Result<Vec<u8>, JoseError> {
        let text =
            jwk.get(name).and_then(|v| v.as_str()).ok_or_else(|| malformed("JWK", format!("no {name:?}")))?;
        decode("JWK member", text)
    };
    if ["d", "p", "q", "dp", "dq", "qi", "k"].iter().any(|m| jwk.get(m).is_some()) {
        return Err(malformed("JWK", "holds private key members; send the public key only"));
    }
    let kty = jwk.get("kty").and_then(|v| v.as_str()).unwrap_or("");
    let crv = jwk.get("crv").and_then(|v| v.as_str()).unwrap_or("");
    match (kty, crv) {
        ("EC", "P-256") => {
            let (x, y) = (field("x")?, field("y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err(malformed("JWK", "P-256 coordinates are 32 bytes each"));
            }
            let mut point = vec![4u8];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            Ok(PublicKey::Es256(point))
        }
        ("OKP", "Ed25519") => {
            let x = field("x")?;
            if x.len() != 32 {
                return Err(malformed("JWK", "an Ed25519 key is 32 bytes"));
            }
            Ok(PublicKey::EdDsa(x))
        }
        ("RSA", _) => {
            let n = field("n")?;
            if !(256..=512).contains(&n.len()) {
                return Err(malformed("JWK", "RSA keys are 2048 to 4096 bits"));
            }
            Ok(PublicKey::Ps256 { n, e: field("e")? })
        }
        _ => Err(malformed(
            "JWK",
            format!("unsupported key type {kty:?} {crv:?}; expected EC P-256, OKP Ed25519 or RSA"),
        )),
    }
}

fn parse_header<T: serde::de::DeserializeOwned>(what: &'static str, b64: &str) -> Result<T, JoseError> {
    let bytes = decode("protected header", b64)?;
    serde_json::from_slice(&bytes).map_err(|e| malformed(what, format!("bad protected header: {e}")))
}

/// Strict base64url: no padding, no other alphabet, no whitespace.
fn decode(what: &'static str, text: &str) -> Result<Vec<u8>, JoseError> {
    B64.decode(text).map_err(|_| malformed(what, "not base64url without padding"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aes() -> KeyMaterial {
        KeyMaterial::generate(Algorithm::A256Gcm).unwrap()
    }

    #[test]
    fn kid_round_trip_and_refusals() {
        assert_eq!(Kid::parse("payments/3").unwrap(), Kid::new("payments", 3));
        assert_eq!(Kid::new("a-b_c", 12).to_string(), "a-b_c/12");
        for bad in [
            "",
            "payments",
            "payments/0",
            "payments/01",
            "Payments/1",
            "../1",
            "a/b",
            "p/1/2",
            "p/-1",
            "p/99999999999",
        ] {
            assert!(Kid::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn jwe_compact_round_trip() {
        let key = aes();
        let jwe = encrypt_compact(&key, &Kid::new("p", 1), b"secret").unwrap();
        assert_eq!(jwe.split('.').count(), 5);
        assert!(jwe.contains(".."), "dir has an empty encrypted key");
        let parsed = ParsedJwe::parse(&jwe).unwrap();
        assert_eq!(parsed.kid(), &Kid::new("p", 1));
        assert_eq!(&*parsed.decrypt(&key).unwrap(), b"secret");
    }

    #[test]
    fn jwe_json_binds_the_aad() {
        let key = aes();
        let jwe = encrypt_json(&key, &Kid::new("p", 2), b"secret", b"order-42").unwrap();
        let text = serde_json::to_string(&jwe).unwrap();
        assert_eq!(&*ParsedJwe::parse(&text).unwrap().decrypt(&key).unwrap(), b"secret");
        let mut other = jwe.clone();
        other.aad = Some(B64.encode(b"order-43"));
        let text = serde_json::to_string(&other).unwrap();
        assert!(matches!(
            ParsedJwe::parse(&text).unwrap().decrypt(&key),
            Err(JoseError::Crypto(CryptoError::Decrypt))
        ));
    }

    #[test]
    fn tampered_or_truncated_jwe_never_decrypts() {
        let key = aes();
        let jwe = encrypt_compact(&key, &Kid::new("p", 1), b"secret message").unwrap();
        let parts: Vec<&str> = jwe.split('.').collect();
        // Flip the header's kid (still parses, but the header is authenticated).
        let header = B64.encode(br#"{"alg":"dir","enc":"A256GCM","kid":"p/2"}"#);
        let swapped = format!("{header}..{}.{}.{}", parts[2], parts[3], parts[4]);
        assert!(ParsedJwe::parse(&swapped).unwrap().decrypt(&key).is_err());
        // Truncated ciphertext, a replaced tag, a short IV.
        let short_ct = format!("{}..{}.{}.{}", parts[0], parts[2], &parts[3][..4], parts[4]);
        assert!(ParsedJwe::parse(&short_ct).unwrap().decrypt(&key).is_err());
        let zero_tag = format!("{}..{}.{}.{}", parts[0], parts[2], parts[3], B64.encode([0u8; 16]));
        assert!(ParsedJwe::parse(&zero_tag).unwrap().decrypt(&key).is_err());
        let short_iv = format!("{}..{}.{}.{}", parts[0], B64.encode([0u8; 8]), parts[3], parts[4]);
        assert!(matches!(ParsedJwe::parse(&short_iv), Err(JoseError::Malformed { .. })));
    }

    #[test]
    fn hostile_jwe_headers_are_refused() {
        let rest = "..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA";
        for (header, why) in [
            (r#"{"alg":"RSA1_5","enc":"A256GCM","kid":"p/1"}"#, "alg"),
            (r#"{"alg":"dir","enc":"A128CBC-HS256","kid":"p/1"}"#, "enc"),
            (r#"{"alg":"dir","enc":"A256GCM","kid":"p/1","zip":"DEF"}"#, "zip"),
            (r#"{"alg":"dir","enc":"A256GCM","kid":"p/1","crit":["exp"]}"#, "crit"),
            (r#"{"alg":"dir","enc":"A256GCM","kid":"p/1","jku":"https://evil"}"#, "jku"),
            (r#"{"alg":"dir","alg":"dir","enc":"A256GCM","kid":"p/1"}"#, "duplicate"),
            (r#"{"alg":"dir","enc":"A256GCM","kid":"../../etc/1"}"#, "kid"),
            (r#"{"alg":"dir","enc":"A256GCM"}"#, "no kid"),
            (r#"["not","an","object"]"#, "array"),
        ] {
            let jwe = format!("{}{rest}", B64.encode(header));
            assert!(ParsedJwe::parse(&jwe).is_err(), "{why}");
        }
        for junk in ["", "a.b.c", "a.b.c.d.e.f", "!!!..a.b.c", "eyJhbGciOiJkaXIifQ==..a.b.c"] {
            assert!(ParsedJwe::parse(junk).is_err(), "{junk:?}");
        }
        assert!(ParsedJwe::parse(r#"{"protected":"x"}"#).is_err());
    }

    #[test]
    fn jws_round_trip_for_every_signing_algorithm() {
        for algorithm in [Algorithm::Es256, Algorithm::EdDsa, Algorithm::Ps256] {
            let key = KeyMaterial::generate(algorithm).unwrap();
            let jws = sign_compact(&key, &Kid::new("signing", 1), b"{\"hello\":1}").unwrap();
            let parsed = ParsedJws::parse(&jws).unwrap();
            assert_eq!(parsed.payload(), b"{\"hello\":1}");
            parsed.verify(&key.public_key().unwrap()).unwrap();
            let other = KeyMaterial::generate(algorithm).unwrap();
            assert!(parsed.verify(&other.public_key().unwrap()).is_err());
        }
    }

    #[test]
    fn jws_alg_must_equal_the_keys() {
        let key = KeyMaterial::generate(Algorithm::Es256).unwrap();
        let public = key.public_key().unwrap();
        let jws = sign_compact(&key, &Kid::new("s", 1), b"x").unwrap();
        let parts: Vec<&str> = jws.split('.').collect();
        for alg in ["none", "HS256", "ES384", "PS256", "es256"] {
            let header = B64.encode(format!(r#"{{"alg":"{alg}","kid":"s/1"}}"#));
            let forged = format!("{header}.{}.{}", parts[1], parts[2]);
            let err = ParsedJws::parse(&forged).unwrap().verify(&public).unwrap_err();
            assert!(matches!(err, JoseError::Algorithm { .. }), "{alg}: {err}");
        }
        let none = format!("{}.{}.", B64.encode(r#"{"alg":"none","kid":"s/1"}"#), parts[1]);
        assert!(ParsedJws::parse(&none).unwrap().verify(&public).is_err());
        let embedded = B64.encode(r#"{"alg":"ES256","kid":"s/1","jwk":{"kty":"EC"}}"#);
        assert!(ParsedJws::parse(&format!("{embedded}.{}.{}", parts[1], parts[2])).is_err());
        // r = s = 0.
        let zero = format!("{}.{}.{}", parts[0], parts[1], B64.encode([0u8; 64]));
        assert!(ParsedJws::parse(&zero).unwrap().verify(&public).is_err());
    }

    #[test]
    fn jwk_import_round_trips_and_refuses_private_members() {
        for algorithm in [Algorithm::Es256, Algorithm::EdDsa, Algorithm::Ps256] {
            let public = KeyMaterial::generate(algorithm).unwrap().public_key().unwrap();
            let jwk = serde_json::to_value(public_jwk(&public, &Kid::new("s", 1))).unwrap();
            assert_eq!(public_key_from_jwk(&jwk).unwrap(), public);
            let mut private = jwk.clone();
            private["d"] = "AAAA".into();
            assert!(public_key_from_jwk(&private).is_err());
        }
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}),
            serde_json::json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
            serde_json::json!({"kty": "oct", "k": "AAAA"}),
            serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
        ] {
            assert!(public_key_from_jwk(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn public_jwks_have_the_right_shape() {
        let ec = KeyMaterial::generate(Algorithm::Es256).unwrap().public_key().unwrap();
        let jwk = serde_json::to_value(public_jwk(&ec, &Kid::new("s", 1))).unwrap();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(B64.decode(jwk["x"].as_str().unwrap()).unwrap().len(), 32);
        assert_eq!(B64.decode(jwk["y"].as_str().unwrap()).unwrap().len(), 32);
        assert_eq!(jwk["kid"], "s/1");
        let rsa = KeyMaterial::generate(Algorithm::Ps256).unwrap().public_key().unwrap();
        let jwk = serde_json::to_value(public_jwk(&rsa, &Kid::new("s", 2))).unwrap();
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(B64.decode(jwk["n"].as_str().unwrap()).unwrap().len(), 256);
        assert!(jwk.get("d").is_none());
    }
}
