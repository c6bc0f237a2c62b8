//! Password hashing: PBKDF2-HMAC-SHA256, 600,000 iterations (OWASP's 2023 figure), 32-byte
//! random salt, 32-byte output, stored as PHC strings:
//! `$pbkdf2-sha256$i=600000,l=32$<salt>$<hash>`.
//!
//! The PHC strings are read and written with RustCrypto's `password-hash`/`pbkdf2` types; the
//! derivation itself runs in aws-lc-rs (already linked for TLS), whose SHA-256 uses the CPU's
//! SHA extensions — several times faster than the portable implementation at the same
//! 600,000 rounds — and whose `verify` compares in constant time. A test checks both
//! implementations derive the same bytes.

use pbkdf2::password_hash::{PasswordHash, SaltString};
use pbkdf2::{Algorithm, Params};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

/// PBKDF2 rounds for new hashes, and the least a stored hash may have.
pub const ITERATIONS: u32 = 600_000;
/// Salt length in bytes for new hashes.
pub const SALT_LEN: usize = 32;
/// Least salt a stored hash may have, in bytes (NIST SP 800-132 asks for 16).
pub const MIN_SALT_LEN: usize = 16;

/// A stored hash is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordError {
    /// Not a PHC string we can read.
    #[error("not a PHC password hash ({detail}); expected $pbkdf2-sha256$i=600000,l=32$<salt>$<hash>")]
    Malformed {
        /// What is wrong.
        detail: String,
    },
    /// A PHC string, but weaker than policy allows.
    #[error("the password hash is too weak: {detail}; rehash it with `demo hash-password`")]
    Weak {
        /// What is weak.
        detail: String,
    },
    /// Hashing failed (should not happen with valid parameters).
    #[error("hashing failed: {detail}")]
    Hash {
        /// What failed.
        detail: String,
    },
}

/// A parsed, policy-checked PHC hash, ready to verify against.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHashString(String);

impl std::fmt::Debug for PasswordHashString {
    // The hash is not the password, but it is what an offline attack starts from.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHashString([REDACTED])")
    }
}

impl PasswordHashString {
    /// Parses a stored hash and checks it against policy: pbkdf2-sha256, at least
    /// [`ITERATIONS`] rounds, at least [`MIN_SALT_LEN`] bytes of salt.
    pub fn parse(phc: &str) -> Result<Self, PasswordError> {
        let parsed =
            PasswordHash::new(phc).map_err(|e| PasswordError::Malformed { detail: e.to_string() })?;
        if parsed.algorithm != Algorithm::Pbkdf2Sha256.ident() {
            return Err(PasswordError::Weak {
                detail: format!("algorithm {} instead of pbkdf2-sha256", parsed.algorithm),
            });
        }
        let params =
            Params::try_from(&parsed).map_err(|e| PasswordError::Malformed { detail: e.to_string() })?;
        if params.rounds < ITERATIONS {
            return Err(PasswordError::Weak {
                detail: format!("{} iterations, policy requires {ITERATIONS}", params.rounds),
            });
        }
        let salt_len = parsed.salt.map(|s| s.len() * 3 / 4).unwrap_or(0);
        if salt_len < MIN_SALT_LEN {
            return Err(PasswordError::Weak {
                detail: format!("{salt_len}-byte salt, policy requires {MIN_SALT_LEN}"),
            });
        }
        if parsed.hash.is_none() {
            return Err(PasswordError::Malformed { detail: "no hash part".to_owned() });
        }
        Ok(Self(phc.to_owned()))
    }

    /// The PHC string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `password` matches. Constant-time in the comparison; the cost is dominated
    /// by the 600,000 PBKDF2 rounds.
    pub fn verify(&self, password: &SecretString) -> bool {
        let Ok(parsed) = PasswordHash::new(&self.0) else { return false };
        let Ok(params) = Params::try_from(&parsed) else { return false };
        let (Some(salt), Some(hash)) = (parsed.salt, parsed.hash) else { return false };
        let mut salt_buf = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_buf) else { return false };
        let Some(rounds) = std::num::NonZeroU32::new(params.rounds) else { return false };
        aws_lc_rs::pbkdf2::verify(
            aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
            rounds,
            salt,
            password.expose_secret().as_bytes(),
            hash.as_bytes(),
        )
        .is_ok()
    }
}

/// Hashes `password` with a fresh random salt.
pub fn hash_password(password: &SecretString) -> Result<PasswordHashString, PasswordError> {
    hash_with_rounds(password, ITERATIONS)
}

fn hash_with_rounds(password: &SecretString, rounds: u32) -> Result<PasswordHashString, PasswordError> {
    let mut salt_bytes = [0u8; SALT_LEN];
    rand::thread_rng().fill_bytes(&mut salt_bytes);
    let hash_err = |e: pbkdf2::password_hash::Error| PasswordError::Hash { detail: e.to_string() };
    let salt = SaltString::encode_b64(&salt_bytes).map_err(hash_err)?;
    let iterations =
        std::num::NonZeroU32::new(rounds).ok_or(PasswordError::Hash { detail: "zero rounds".into() })?;
    let mut derived = zeroize::Zeroizing::new([0u8; 32]);
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt_bytes,
        password.expose_secret().as_bytes(),
        derived.as_mut(),
    );
    let phc = PasswordHash {
        algorithm: Algorithm::Pbkdf2Sha256.ident(),
        version: None,
        params: Params { rounds, output_length: 32 }.try_into().map_err(hash_err)?,
        salt: Some(salt.as_salt()),
        hash: Some(pbkdf2::password_hash::Output::new(derived.as_ref()).map_err(hash_err)?),
    };
    Ok(PasswordHashString(phc.to_string()))
}

/// Burns the same time as a real verification. Call it when the user does not exist, so a
/// login's timing does not reveal which user names are real.
pub fn dummy_verify(password: &SecretString) {
    static DUMMY: std::sync::OnceLock<Option<PasswordHashString>> = std::sync::OnceLock::new();
    if let Some(hash) = DUMMY.get_or_init(|| hash_password(&SecretString::from("dummy".to_owned())).ok()) {
        let _ = hash.verify(password);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pbkdf2::Pbkdf2;
    use pbkdf2::password_hash::{PasswordHasher, PasswordVerifier};

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn hash_then_verify() {
        let hash = hash_password(&secret("correct horse")).unwrap();
        assert!(hash.as_str().starts_with("$pbkdf2-sha256$i=600000,l=32$"), "{}", hash.as_str());
        assert!(hash.verify(&secret("correct horse")));
        assert!(!hash.verify(&secret("correct horse ")));
        assert!(!hash.verify(&secret("")));
        // Salts are random: the same password hashes differently.
        assert_ne!(hash, hash_password(&secret("correct horse")).unwrap());
        // And the stored string parses back under policy.
        assert_eq!(PasswordHashString::parse(hash.as_str()).unwrap(), hash);
    }

    #[test]
    fn known_answer_from_rfc_7914_style_vector() {
        // PBKDF2-HMAC-SHA256("password", "salt", 1 round, 32 bytes), a published test vector
        // (RFC 7914 §11 lists the 1-round/64-byte one; this is its first 32 bytes).
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"password", b"salt", 1, &mut out);
        assert_eq!(hex::encode(out), "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b");
    }

    #[test]
    fn aws_lc_and_rustcrypto_agree() {
        // Hashed here (aws-lc-rs), verified by the RustCrypto implementation, and the reverse.
        let ours = hash_with_rounds(&secret("cross-check"), 1000).unwrap();
        let parsed = PasswordHash::new(ours.as_str()).unwrap();
        assert!(Pbkdf2.verify_password(b"cross-check", &parsed).is_ok());
        assert!(Pbkdf2.verify_password(b"cross-chec", &parsed).is_err());
        let salt = SaltString::encode_b64(&[9u8; 32]).unwrap();
        let theirs = Pbkdf2
            .hash_password_customized(
                b"other way",
                Some(Algorithm::Pbkdf2Sha256.ident()),
                None,
                Params { rounds: 1000, output_length: 32 },
                &salt,
            )
            .unwrap()
            .to_string();
        assert!(PasswordHashString(theirs.clone()).verify(&secret("other way")));
        assert!(!PasswordHashString(theirs).verify(&secret("other wax")));
    }

    #[test]
    fn weak_or_foreign_hashes_are_refused_at_parse() {
        let weak = hash_with_rounds(&secret("pw"), 1000).unwrap();
        let err = PasswordHashString::parse(weak.as_str()).unwrap_err();
        assert!(matches!(err, PasswordError::Weak { .. }), "{err}");
        assert!(err.to_string().contains("1000 iterations"), "{err}");

        for bad in ["", "plaintext", "$pbkdf2-sha256$", "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"] {
            assert!(PasswordHashString::parse(bad).is_err(), "{bad}");
        }
        let short_salt =
            "$pbkdf2-sha256$i=600000,l=32$c2FsdHNhbHQ$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY";
        assert!(matches!(PasswordHashString::parse(short_salt), Err(PasswordError::Weak { .. })));
    }

    #[test]
    fn debug_redacts_the_hash() {
        let hash = hash_password(&secret("pw")).unwrap();
        assert!(!format!("{hash:?}").contains("pbkdf2"));
    }
}
