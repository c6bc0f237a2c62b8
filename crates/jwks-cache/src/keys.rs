//! JWK sets parsed into verifier keys, once per fetch.
//!
//! A key set is refused as a whole only when it is not a JWK set at all or has too many keys;
//! individual keys that cannot verify signatures here (symmetric, encryption-only, unsupported
//! type or curve, invalid point, short RSA modulus, no `kid`) are skipped and recorded.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::signature::{self as lc, ParsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (bounds verification cost).
pub const MAX_RSA_BITS: usize = 8192;
/// Longest `kid` kept, in bytes.
pub const MAX_KID_BYTES: usize = 256;

/// What kind of public key a [`VerifierKey`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyKind {
    /// ECDSA on P-256 (verifies ES256).
    EcP256,
    /// ECDSA on P-384 (verifies ES384).
    EcP384,
    /// RSA with a modulus of this many bits (verifies RS*/PS*).
    Rsa {
        /// Modulus size.
        bits: usize,
    },
    /// Ed25519 (verifies EdDSA).
    Ed25519,
}

impl KeyKind {
    /// Whether a key of this kind can verify `alg` at all.
    pub fn supports(self, alg: Algorithm) -> bool {
        matches!(
            (self, alg),
            (Self::EcP256, Algorithm::ES256)
                | (Self::EcP384, Algorithm::ES384)
                | (Self::Ed25519, Algorithm::EdDSA)
                | (
                    Self::Rsa { .. },
                    Algorithm::RS256
                        | Algorithm::RS384
                        | Algorithm::RS512
                        | Algorithm::PS256
                        | Algorithm::PS384
                        | Algorithm::PS512
                )
        )
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EcP256 => f.write_str("EC P-256"),
            Self::EcP384 => f.write_str("EC P-384"),
            Self::Rsa { bits } => write!(f, "RSA-{bits}"),
            Self::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// One public key ready to verify signatures: parsed and checked once, when its set was
/// fetched, never per token.
#[derive(Clone)]
pub struct VerifierKey {
    kid: String,
    kind: KeyKind,
    alg: Option<Algorithm>,
    decoding: DecodingKey,
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish()
    }
}

impl VerifierKey {
    /// The key's id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// What kind of key it is.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The algorithm the JWK names (`alg`), if it names one.
    pub fn alg(&self) -> Option<Algorithm> {
        self.alg
    }

    /// The key for `jsonwebtoken`'s verifiers.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// Whether this key may verify a token whose header says `alg`: the key's kind must
    /// support it and, when the JWK names an algorithm, it must be that one.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.kind.supports(alg) && self.alg.is_none_or(|own| own == alg)
    }

    /// Verifies `signature` over `message` with `alg`, which must be accepted by
    /// [`accepts`](Self::accepts). Returns `false` for any failure.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        if !self.accepts(alg) {
            return false;
        }
        // The provider is named explicitly rather than taken from jsonwebtoken's process-wide
        // default, so a second crypto backend elsewhere in the process cannot make it panic.
        let provider = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
        match (provider.verifier_factory)(&alg, &self.decoding) {
            Ok(verifier) => verifier.verify(message, &signature.to_vec()).is_ok(),
            Err(_) => false,
        }
    }
}

/// Why a JWK was left out of a [`KeySet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// The key's `kid`, if it had a short string one.
    pub kid: Option<String>,
    /// Why it was skipped.
    pub reason: String,
}

/// The usable signature-verification keys of one issuer, by `kid`.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, Arc<VerifierKey>>,
    order: Vec<String>,
    skipped: Vec<SkippedKey>,
}

/// Why a body is not an acceptable JWK set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// More keys than the limit.
    #[error("the set lists {count} keys, more than the limit")]
    TooManyKeys {
        /// Keys in the set.
        count: usize,
    },
    /// Not a JSON object with a `keys` array.
    #[error("not a JWK set: {0}")]
    Invalid(String),
}

impl KeySet {
    /// Parses a JWK set (`{"keys": [...]}`), refusing more than `max_keys` entries and skipping
    /// (not failing on) keys that cannot be used to verify signatures here.
    pub fn from_jwks_json(body: &[u8], max_keys: usize) -> Result<Self, JwksError> {
        let doc: Value = serde_json::from_slice(body).map_err(|e| {
            JwksError::Invalid(format!("not JSON (line {}, column {})", e.line(), e.column()))
        })?;
        let Some(entries) = doc.get("keys") else {
            return Err(JwksError::Invalid("no `keys` member".to_owned()));
        };
        let Some(entries) = entries.as_array() else {
            return Err(JwksError::Invalid("`keys` is not an array".to_owned()));
        };
        if entries.len() > max_keys {
            return Err(JwksError::TooManyKeys { count: entries.len() });
        }
        let mut set = Self::default();
        for entry in entries {
            let kid = entry
                .get("kid")
                .and_then(Value::as_str)
                .filter(|k| k.len() <= MAX_KID_BYTES)
                .map(str::to_owned);
            match parse_jwk(entry) {
                Ok(key) if set.keys.contains_key(&key.kid) => set.skipped.push(SkippedKey {
                    kid,
                    reason: "another key in the set has the same kid (the first one is kept)".to_owned(),
                }),
                Ok(key) => {
                    set.order.push(key.kid.clone());
                    set.keys.insert(key.kid.clone(), Arc::new(key));
                }
                Err(reason) => set.skipped.push(SkippedKey { kid, reason }),
            }
        }
        Ok(set)
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&Arc<VerifierKey>> {
        self.keys.get(kid)
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The usable keys' ids, in the order the issuer listed them.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// The keys that were left out, and why.
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }
}

fn parse_jwk(jwk: &Value) -> Result<VerifierKey, String> {
    let Some(obj) = jwk.as_object() else {
        return Err("not a JSON object".to_owned());
    };
    let str_member = |name: &str| -> Result<Option<&str>, String> {
        match obj.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(format!("`{name}` is not a string")),
        }
    };
    let kid = match str_member("kid")? {
        None | Some("") => {
            return Err(
                "no kid (tokens name their key by kid, so a key without one is unreachable)".to_owned()
            );
        }
        Some(k) if k.len() > MAX_KID_BYTES => return Err(format!("kid longer than {MAX_KID_BYTES} bytes")),
        Some(k) => k.to_owned(),
    };
    if let Some(usage) = str_member("use")?
        && usage != "sig"
    {
        return Err(format!("use is {usage:?}, not \"sig\""));
    }
    if let Some(ops) = obj.get("key_ops") {
        let verifies = ops.as_array().is_some_and(|ops| ops.iter().any(|op| op == "verify"));
        if !verifies {
            return Err("key_ops does not include \"verify\"".to_owned());
        }
    }
    for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        if obj.contains_key(private) {
            return Err(format!(
                "carries private or symmetric key material (`{private}`); only public keys are used"
            ));
        }
    }
    let alg = match str_member("alg")? {
        None => None,
        Some(name) => match name.parse::<Algorithm>() {
            Ok(a) if a.family() == jsonwebtoken::AlgorithmFamily::Hmac => {
                return Err(format!("alg {name} is symmetric"));
            }
            Ok(a) => Some(a),
            Err(_) => return Err(format!("alg {name:?} is not supported")),
        },
    };
    let b64 = |name: &str| -> Result<Vec<u8>, String> {
        let text = str_member(name)?.ok_or_else(|| format!("no `{name}`"))?;
        URL_SAFE_NO_PAD.decode(text).map_err(|_| format!("`{name}` is not base64url without padding"))
    };
    let (kind, decoding) = match str_member("kty")? {
        Some("EC") => {
            let (kind, size, algorithm): (_, _, &'static dyn lc::VerificationAlgorithm) =
                match str_member("crv")? {
                    Some("P-256") => (KeyKind::EcP256, 32, &lc::ECDSA_P256_SHA256_FIXED),
                    Some("P-384") => (KeyKind::EcP384, 48, &lc::ECDSA_P384_SHA384_FIXED),
                    Some(other) => return Err(format!("EC curve {other:?} is not supported")),
                    None => return Err("EC key without crv".to_owned()),
                };
            let (x, y) = (b64("x")?, b64("y")?);
            if x.len() != size || y.len() != size {
                return Err(format!("EC coordinates are not {size} bytes each"));
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            ParsedPublicKey::new(algorithm, &point).map_err(|_| "EC point is not on the curve".to_owned())?;
            (kind, DecodingKey::from_ec_der(&point))
        }
        Some("RSA") => {
            let (n, e) = (b64("n")?, b64("e")?);
            let n_trimmed = n.iter().skip_while(|b| **b == 0).count();
            let bits = n_trimmed * 8;
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                return Err(format!("RSA modulus of {bits} bits is outside {MIN_RSA_BITS}..={MAX_RSA_BITS}"));
            }
            if e.is_empty() || e.len() > 8 || e.last().is_none_or(|b| b % 2 == 0) {
                return Err("RSA exponent is not a small odd number".to_owned());
            }
            (KeyKind::Rsa { bits }, DecodingKey::from_rsa_raw_components(&n, &e))
        }
        Some("OKP") => {
            if str_member("crv")? != Some("Ed25519") {
                return Err("OKP key on a curve other than Ed25519".to_owned());
            }
            let x = b64("x")?;
            ParsedPublicKey::new(&lc::ED25519, &x)
                .map_err(|_| "Ed25519 key is not 32 valid bytes".to_owned())?;
            (KeyKind::Ed25519, DecodingKey::from_ed_der(&x))
        }
        Some("oct") => return Err("symmetric key (kty oct) in a public key set".to_owned()),
        Some(other) => return Err(format!("key type {other:?} is not supported")),
        None => return Err("no kty".to_owned()),
    };
    if let Some(alg) = alg
        && !kind.supports(alg)
    {
        return Err(format!("alg {alg:?} does not fit a {kind} key"));
    }
    Ok(VerifierKey { kid, kind, alg, decoding })
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use serde_json::json;

    use super::*;

    fn p256() -> (EcdsaKeyPair, Value) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        });
        (pair, jwk)
    }

    fn with_kid(mut jwk: Value, kid: &str) -> Value {
        jwk["kid"] = json!(kid);
        jwk
    }

    #[test]
    fn usable_keys_are_kept_and_the_rest_skipped_not_fatal() {
        let (_, good) = p256();
        let (_, enc) = p256();
        let mut enc = with_kid(enc, "enc");
        enc["use"] = json!("enc");
        let (_, p521) = p256();
        let mut p521 = with_kid(p521, "p521");
        p521["crv"] = json!("P-521");
        let (_, off_curve) = p256();
        let mut off_curve = with_kid(off_curve, "off");
        off_curve["y"] = off_curve["x"].clone();
        let (_, wrong_alg) = p256();
        let mut wrong_alg = with_kid(wrong_alg, "rs-on-ec");
        wrong_alg["alg"] = json!("RS256");
        let (_, no_kid) = p256();
        let body = json!({"keys": [
            with_kid(good.clone(), "good"),
            enc,
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "short", "n": URL_SAFE_NO_PAD.encode([0xc5u8; 128]), "e": "AQAB"},
            p521,
            off_curve,
            wrong_alg,
            no_kid,
            {"kty": "XYZ", "kid": "future"},
            "not an object",
            with_kid(good, "good"),
        ]});
        let set = KeySet::from_jwks_json(body.to_string().as_bytes(), 100).unwrap();
        assert_eq!(set.kids().collect::<Vec<_>>(), ["good"]);
        assert_eq!(set.skipped().len(), 10, "{:#?}", set.skipped());
        let reasons: Vec<_> = set.skipped().iter().map(|s| s.reason.as_str()).collect();
        assert!(reasons.iter().any(|r| r.contains("same kid")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("not on the curve")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("RSA modulus of 1024 bits")), "{reasons:?}");
    }

    #[test]
    fn the_set_as_a_whole_is_refused_only_when_malformed_or_too_big() {
        assert!(matches!(KeySet::from_jwks_json(b"nope", 10), Err(JwksError::Invalid(_))));
        assert!(matches!(KeySet::from_jwks_json(b"{}", 10), Err(JwksError::Invalid(_))));
        assert!(matches!(KeySet::from_jwks_json(br#"{"keys":{}}"#, 10), Err(JwksError::Invalid(_))));
        let many = json!({"keys": vec![json!({}); 11]});
        assert_eq!(
            KeySet::from_jwks_json(many.to_string().as_bytes(), 10).unwrap_err(),
            JwksError::TooManyKeys { count: 11 }
        );
        let empty = KeySet::from_jwks_json(br#"{"keys":[]}"#, 10).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn keys_verify_only_their_own_algorithm() {
        let (pair, jwk) = p256();
        let set =
            KeySet::from_jwks_json(json!({"keys": [with_kid(jwk, "k")]}).to_string().as_bytes(), 10).unwrap();
        let key = set.get("k").unwrap();
        assert_eq!(key.kind(), KeyKind::EcP256);
        let sig = pair.sign(&SystemRandom::new(), b"message").unwrap();
        assert!(key.verify(Algorithm::ES256, b"message", sig.as_ref()));
        assert!(!key.verify(Algorithm::ES256, b"messagf", sig.as_ref()));
        assert!(!key.verify(Algorithm::ES384, b"message", sig.as_ref()));
        assert!(!key.verify(Algorithm::HS256, b"message", sig.as_ref()));
        assert!(!key.verify(Algorithm::ES256, b"message", &[0u8; 64]), "r = s = 0 never verifies");
        assert!(!key.accepts(Algorithm::RS256));
        assert!(format!("{key:?}").contains("EcP256"));
    }
}
