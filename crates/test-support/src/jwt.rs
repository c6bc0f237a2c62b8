//! An ES256 signing key of a fixture issuer: its JWK and JWKS, and JWTs with any header and
//! claims (including ones a real issuer would never sign: tests need those too).

use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

/// A P-256 key with its `kid`.
#[derive(Debug)]
pub struct Signer {
    pair: EcdsaKeyPair,
    /// Its key id.
    pub kid: String,
}

impl Signer {
    /// A fresh key named `kid`.
    pub fn new(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
            .unwrap_or_else(|e| panic!("cannot make a P-256 key: {e}"));
        Self { pair, kid: kid.to_owned() }
    }

    /// Its public JWK.
    pub fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
        })
    }

    /// A JWKS of this key alone.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk()] })
    }

    /// `header.claims.signature` with the header as given.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sig = self.pair.sign(&rng, input.as_bytes()).unwrap_or_else(|e| panic!("cannot sign: {e}"));
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }

    /// An ES256 token of type `typ` with this key's `kid`.
    pub fn token(&self, typ: &str, claims: &Value) -> String {
        self.sign(&json!({"alg": "ES256", "typ": typ, "kid": self.kid}), claims)
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
