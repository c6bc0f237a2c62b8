//! Key material and the primitive operations on it, all through aws-lc-rs.
//!
//! Private material is kept as bytes — a raw 32-byte key for AES, PKCS#8 for the rest — so it
//! can be wrapped by the barrier and stored; [`KeyMaterial`] never shows it in `Debug`.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrap};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey};
use zeroize::Zeroizing;

/// What a pool's keys are and do: the names are the wire's, so the type lives in `kms-proto`.
pub use kms_proto::Algorithm;

/// A crypto operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The operation does not fit the key's algorithm.
    #[error("a {key} key cannot {operation}")]
    WrongAlgorithm {
        /// The key's algorithm.
        key: &'static str,
        /// What was asked.
        operation: &'static str,
    },
    /// Decryption or unwrapping failed: wrong key, tampered or truncated input.
    #[error(
        "the ciphertext does not decrypt under this key: it was tampered with, truncated, or made with another key"
    )]
    Decrypt,
    /// A signature did not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// Input of the wrong size.
    #[error("invalid input: {0}")]
    Input(&'static str),
    /// Stored key material does not parse (a bug or corruption, never the caller's input).
    #[error("stored key material is unusable")]
    Material,
    /// The random number generator or the library failed.
    #[error("the crypto library failed")]
    Library,
}

/// Private (or secret) key material of one key version.
#[derive(Clone)]
pub struct KeyMaterial {
    algorithm: Algorithm,
    bytes: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl KeyMaterial {
    /// Generates a new key.
    pub fn generate(algorithm: Algorithm) -> Result<Self, CryptoError> {
        let bytes = match algorithm {
            Algorithm::A256Gcm | Algorithm::A256Kw => random_bytes(32)?,
            Algorithm::Es256 => {
                let key = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| CryptoError::Library)?;
                Zeroizing::new(key.to_pkcs8v1().map_err(|_| CryptoError::Library)?.as_ref().to_vec())
            }
            Algorithm::EdDsa => {
                let key = Ed25519KeyPair::generate().map_err(|_| CryptoError::Library)?;
                Zeroizing::new(key.to_pkcs8().map_err(|_| CryptoError::Library)?.as_ref().to_vec())
            }
            Algorithm::Ps256 => {
                let key = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| CryptoError::Library)?;
                let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key)
                    .map_err(|_| CryptoError::Library)?;
                Zeroizing::new(der.as_ref().to_vec())
            }
        };
        Ok(Self { algorithm, bytes })
    }

    /// Rebuilds material from stored bytes (after the barrier unwrapped them), checking that
    /// they parse for the algorithm.
    pub fn from_bytes(algorithm: Algorithm, bytes: Zeroizing<Vec<u8>>) -> Result<Self, CryptoError> {
        let material = Self { algorithm, bytes };
        match algorithm {
            Algorithm::A256Gcm | Algorithm::A256Kw if material.bytes.len() != 32 => {
                return Err(CryptoError::Material);
            }
            Algorithm::A256Gcm | Algorithm::A256Kw => {}
            _ => {
                material.public_key()?;
            }
        }
        Ok(material)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The bytes to wrap and store. Handle as a secret.
    pub fn secret_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// AES-256-GCM with a fresh random 96-bit nonce: (nonce, ciphertext ‖ tag).
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<([u8; NONCE_LEN], Vec<u8>), CryptoError> {
        let key = self.aes_gcm("encrypt")?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| CryptoError::Library)?;
        let mut in_out = plaintext.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut in_out)
            .map_err(|_| CryptoError::Library)?;
        Ok((nonce, in_out))
    }

    /// AES-256-GCM decryption of ciphertext ‖ tag.
    pub fn decrypt(
        &self,
        nonce: &[u8],
        ciphertext_and_tag: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let key = self.aes_gcm("decrypt")?;
        let nonce: [u8; NONCE_LEN] =
            nonce.try_into().map_err(|_| CryptoError::Input("the IV must be 12 bytes"))?;
        if ciphertext_and_tag.len() < AES_256_GCM.tag_len() {
            return Err(CryptoError::Decrypt);
        }
        let mut in_out = Zeroizing::new(ciphertext_and_tag.to_vec());
        let len = key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut in_out)
            .map_err(|_| CryptoError::Decrypt)?
            .len();
        in_out.truncate(len);
        Ok(in_out)
    }

    fn aes_gcm(&self, operation: &'static str) -> Result<LessSafeKey, CryptoError> {
        if self.algorithm != Algorithm::A256Gcm {
            return Err(CryptoError::WrongAlgorithm { key: self.algorithm.jose_name(), operation });
        }
        let unbound = UnboundKey::new(&AES_256_GCM, &self.bytes).map_err(|_| CryptoError::Material)?;
        Ok(LessSafeKey::new(unbound))
    }

    /// RFC 3394 AES key wrap of `key_material` (16 to 4096 bytes, a multiple of 8).
    pub fn wrap(&self, key_material: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let kek = self.kek("wrap")?;
        if key_material.len() < 16 || !key_material.len().is_multiple_of(8) || key_material.len() > 4096 {
            return Err(CryptoError::Input("key material to wrap must be 16 to 4096 bytes, a multiple of 8"));
        }
        let mut out = vec![0u8; key_material.len() + 8];
        let len = kek.wrap(key_material, &mut out).map_err(|_| CryptoError::Library)?.len();
        out.truncate(len);
        Ok(out)
    }

    /// RFC 3394 AES key unwrap.
    pub fn unwrap(&self, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let kek = self.kek("unwrap")?;
        if wrapped.len() < 24 || !wrapped.len().is_multiple_of(8) || wrapped.len() > 4104 {
            return Err(CryptoError::Decrypt);
        }
        let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
        let len = kek.unwrap(wrapped, &mut out).map_err(|_| CryptoError::Decrypt)?.len();
        out.truncate(len);
        Ok(out)
    }

    fn kek(&self, operation: &'static str) -> Result<AesKek, CryptoError> {
        if self.algorithm != Algorithm::A256Kw {
            return Err(CryptoError::WrongAlgorithm { key: self.algorithm.jose_name(), operation });
        }
        AesKek::new(&AES_256, &self.bytes).map_err(|_| CryptoError::Material)
    }

    /// Signs `message`: ES256 as r ‖ s (64 bytes, the JWS form), EdDSA 64 bytes, PS256 256 bytes.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let rng = SystemRandom::new();
        match self.algorithm {
            Algorithm::Es256 => {
                let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &self.bytes)
                    .map_err(|_| CryptoError::Material)?;
                Ok(key.sign(&rng, message).map_err(|_| CryptoError::Library)?.as_ref().to_vec())
            }
            Algorithm::EdDsa => {
                let key = Ed25519KeyPair::from_pkcs8(&self.bytes).map_err(|_| CryptoError::Material)?;
                Ok(key.sign(message).as_ref().to_vec())
            }
            Algorithm::Ps256 => {
                let key = RsaKeyPair::from_pkcs8(&self.bytes).map_err(|_| CryptoError::Material)?;
                let mut sig = vec![0u8; key.public_modulus_len()];
                key.sign(&signature::RSA_PSS_SHA256, &rng, message, &mut sig)
                    .map_err(|_| CryptoError::Library)?;
                Ok(sig)
            }
            other => Err(CryptoError::WrongAlgorithm { key: other.jose_name(), operation: "sign" }),
        }
    }

    /// The public key of a signing key.
    pub fn public_key(&self) -> Result<PublicKey, CryptoError> {
        match self.algorithm {
            Algorithm::Es256 => {
                let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &self.bytes)
                    .map_err(|_| CryptoError::Material)?;
                Ok(PublicKey::Es256(key.public_key().as_ref().to_vec()))
            }
            Algorithm::EdDsa => {
                let key = Ed25519KeyPair::from_pkcs8(&self.bytes).map_err(|_| CryptoError::Material)?;
                Ok(PublicKey::EdDsa(key.public_key().as_ref().to_vec()))
            }
            Algorithm::Ps256 => {
                let key = RsaKeyPair::from_pkcs8(&self.bytes).map_err(|_| CryptoError::Material)?;
                let parts = PublicKeyComponents::<Vec<u8>>::from(key.public_key());
                Ok(PublicKey::Ps256 { n: parts.n, e: parts.e })
            }
            other => {
                Err(CryptoError::WrongAlgorithm { key: other.jose_name(), operation: "have a public key" })
            }
        }
    }
}

/// A verification key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Uncompressed SEC1 point (0x04 ‖ x ‖ y).
    Es256(Vec<u8>),
    /// 32-byte Ed25519 public key.
    EdDsa(Vec<u8>),
    /// RSA modulus and exponent, big-endian.
    Ps256 {
        /// Modulus.
        n: Vec<u8>,
        /// Exponent.
        e: Vec<u8>,
    },
}

impl PublicKey {
    /// The algorithm it verifies.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::Es256(_) => Algorithm::Es256,
            Self::EdDsa(_) => Algorithm::EdDsa,
            Self::Ps256 { .. } => Algorithm::Ps256,
        }
    }

    /// Verifies `signature` over `message`. Malformed signatures (wrong length, r = s = 0,
    /// out-of-range values) are plain verification failures.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        let result = match self {
            Self::Es256(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).verify(message, sig)
            }
            Self::EdDsa(key) => UnparsedPublicKey::new(&signature::ED25519, key).verify(message, sig),
            Self::Ps256 { n, e } => PublicKeyComponents { n: n.as_slice(), e: e.as_slice() }.verify(
                &signature::RSA_PSS_2048_8192_SHA256,
                message,
                sig,
            ),
        };
        result.map_err(|_| CryptoError::BadSignature)
    }
}

fn random_bytes(n: usize) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let mut bytes = Zeroizing::new(vec![0u8; n]);
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| CryptoError::Library)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_round_trips_through_stored_bytes() {
        for algorithm in Algorithm::ALL {
            let key = KeyMaterial::generate(algorithm).unwrap();
            let again =
                KeyMaterial::from_bytes(algorithm, Zeroizing::new(key.secret_bytes().to_vec())).unwrap();
            assert_eq!(again.secret_bytes(), key.secret_bytes());
            assert!(!format!("{key:?}").contains(&format!("{:?}", &key.secret_bytes()[..4])));
        }
    }

    #[test]
    fn aes_gcm_round_trip_and_tamper() {
        let key = KeyMaterial::generate(Algorithm::A256Gcm).unwrap();
        let (nonce, ct) = key.encrypt(b"hello", b"aad").unwrap();
        assert_eq!(&*key.decrypt(&nonce, &ct, b"aad").unwrap(), b"hello");
        assert_eq!(key.decrypt(&nonce, &ct, b"other").unwrap_err(), CryptoError::Decrypt);
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert_eq!(key.decrypt(&nonce, &bad, b"aad").unwrap_err(), CryptoError::Decrypt);
        assert_eq!(key.decrypt(&nonce, &ct[..3], b"aad").unwrap_err(), CryptoError::Decrypt);
        assert!(matches!(key.decrypt(&nonce[..5], &ct, b"aad"), Err(CryptoError::Input(_))));
        let other = KeyMaterial::generate(Algorithm::A256Gcm).unwrap();
        assert_eq!(other.decrypt(&nonce, &ct, b"aad").unwrap_err(), CryptoError::Decrypt);
    }

    #[test]
    fn signatures_verify_and_fail_on_change() {
        for algorithm in [Algorithm::Es256, Algorithm::EdDsa, Algorithm::Ps256] {
            let key = KeyMaterial::generate(algorithm).unwrap();
            let sig = key.sign(b"message").unwrap();
            let public = key.public_key().unwrap();
            public.verify(b"message", &sig).unwrap();
            assert_eq!(public.verify(b"messagf", &sig).unwrap_err(), CryptoError::BadSignature);
            assert_eq!(public.verify(b"message", &sig[1..]).unwrap_err(), CryptoError::BadSignature);
            assert_eq!(public.verify(b"message", &[]).unwrap_err(), CryptoError::BadSignature);
        }
        // ECDSA r = s = 0 (CVE-2022-21449, "psychic signatures") must not verify.
        let key = KeyMaterial::generate(Algorithm::Es256).unwrap();
        assert!(key.public_key().unwrap().verify(b"anything", &[0u8; 64]).is_err());
    }

    #[test]
    fn key_wrap_round_trip_and_bad_input() {
        let kek = KeyMaterial::generate(Algorithm::A256Kw).unwrap();
        let wrapped = kek.wrap(&[7u8; 32]).unwrap();
        assert_eq!(wrapped.len(), 40);
        assert_eq!(&*kek.unwrap(&wrapped).unwrap(), &[7u8; 32]);
        let mut bad = wrapped.clone();
        bad[10] ^= 1;
        assert_eq!(kek.unwrap(&bad).unwrap_err(), CryptoError::Decrypt);
        assert!(kek.wrap(&[1u8; 15]).is_err());
        assert!(kek.unwrap(&wrapped[..7]).is_err());
    }

    #[test]
    fn operations_refuse_the_wrong_key_kind() {
        let aes = KeyMaterial::generate(Algorithm::A256Gcm).unwrap();
        assert!(matches!(aes.sign(b"x"), Err(CryptoError::WrongAlgorithm { .. })));
        assert!(matches!(aes.wrap(&[0u8; 16]), Err(CryptoError::WrongAlgorithm { .. })));
        let ec = KeyMaterial::generate(Algorithm::Es256).unwrap();
        assert!(matches!(ec.encrypt(b"x", b""), Err(CryptoError::WrongAlgorithm { .. })));
        assert!(KeyMaterial::from_bytes(Algorithm::Es256, Zeroizing::new(vec![1, 2, 3])).is_err());
        assert!(KeyMaterial::from_bytes(Algorithm::A256Gcm, Zeroizing::new(vec![0; 16])).is_err());
    }
}
