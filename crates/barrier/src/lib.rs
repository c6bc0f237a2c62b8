//! The seal on keys at rest, shared by the KMS and Identity.
//!
//! * An **unseal key** (32 random bytes) exists only in memory. It is split into N **shares**
//!   of which any M open the barrier (Shamir over GF(256); demo 3-of-5). Shares are files —
//!   Docker secrets — never environment values.
//! * A random **root key** is stored only wrapped (AES-256-GCM) under the unseal key, in a
//!   [`SealedRoot`] the service keeps in its database.
//! * Everything else (pool keys, signing keys) is wrapped under the root key with the object's
//!   id as associated data, so a wrapped blob moved to another row does not open.
//!
//! Each share carries the barrier's id, the threshold and a verifier of the unseal key, so too
//! few, duplicated, foreign or wrong shares are refused with a precise error before anything
//! is decrypted or written.
//!
//! What it must not do: store anything (callers persist [`SealedRoot`] and wrapped blobs),
//! log or display secret material, or accept shares from the environment.

mod gf256;
mod shamir;

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

/// Everything that can go wrong with shares, the seal and wrapped data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BarrierError {
    /// Bad split parameters.
    #[error(
        "cannot split into {count} shares with threshold {threshold}: need 1 <= threshold <= shares <= 255"
    )]
    Parameters {
        /// M.
        threshold: u8,
        /// N.
        count: u8,
    },
    /// No shares at all.
    #[error("no unseal shares were given; configure the share files (unseal.share_files)")]
    NoShares,
    /// Fewer shares than the threshold.
    #[error("{given} unseal share(s) given, but the barrier needs {needed}; add share files")]
    TooFewShares {
        /// How many were given.
        given: usize,
        /// The threshold.
        needed: u8,
    },
    /// The same share twice.
    #[error("unseal share number {index} is given twice; every share must be a different one")]
    DuplicateShare {
        /// The share's number.
        index: u8,
    },
    /// Shares of two different barriers.
    #[error("the unseal shares belong to different barriers ({first} and {second}); use shares from one set")]
    MixedBarriers {
        /// One barrier.
        first: Uuid,
        /// Another.
        second: Uuid,
    },
    /// Shares disagree about the threshold or the verifier: at least one was altered.
    #[error("the unseal shares disagree about their barrier's parameters; at least one share was altered")]
    Inconsistent,
    /// The shares combine to a key that is not the barrier's.
    #[error("the unseal shares do not combine to this barrier's key: at least one share is wrong or damaged")]
    WrongShares,
    /// The shares belong to another barrier than the one sealing the store.
    #[error(
        "the unseal shares belong to barrier {shares}, but the data is sealed by barrier {sealed}; use that barrier's shares"
    )]
    ForeignBarrier {
        /// The barrier of the shares.
        shares: Uuid,
        /// The barrier of the sealed root.
        sealed: Uuid,
    },
    /// A share's text is malformed.
    #[error("not an unseal share: {reason}")]
    ShareFormat {
        /// What is wrong.
        reason: String,
    },
    /// The sealed root key is malformed or does not open.
    #[error(
        "the sealed root key does not open with this unseal key: the stored seal is damaged or was replaced"
    )]
    SealBroken,
    /// Wrapped data does not open.
    #[error(
        "wrapped data for {context:?} does not open: it was tampered with, truncated, or belongs to another object"
    )]
    Unwrap {
        /// The associated data it was opened with.
        context: String,
    },
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

pub(crate) fn random(buf: &mut [u8]) -> Result<(), BarrierError> {
    aws_lc_rs::rand::fill(buf).map_err(|_| BarrierError::Random)
}

/// Text prefix of every share.
const SHARE_PREFIX: &str = "demo-unseal-share";
/// Share format version.
const SHARE_VERSION: &str = "v1";

/// One unseal share. No `Display`: [`Share::encode`] returns the text as a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Share {
    barrier: Uuid,
    threshold: u8,
    index: u8,
    value: Zeroizing<[u8; shamir::LEN]>,
    verifier: [u8; 8],
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Share")
            .field("barrier", &self.barrier)
            .field("threshold", &self.threshold)
            .field("index", &self.index)
            .field("value", &"[REDACTED]")
            .finish()
    }
}

impl Share {
    /// The barrier this share opens.
    pub fn barrier(&self) -> Uuid {
        self.barrier
    }
    /// How many shares open the barrier.
    pub fn threshold(&self) -> u8 {
        self.threshold
    }
    /// This share's number (1..=N).
    pub fn index(&self) -> u8 {
        self.index
    }

    /// The share as one line of text:
    /// `demo-unseal-share:v1:<barrier>:<threshold>:<index>:<value>:<verifier>:<check>`, where
    /// `check` (4 bytes of SHA-256 over the rest) catches a damaged or mistyped file.
    pub fn encode(&self) -> SecretString {
        let body = format!(
            "{SHARE_PREFIX}:{SHARE_VERSION}:{}:{}:{}:{}:{}",
            self.barrier.simple(),
            self.threshold,
            self.index,
            B64.encode(*self.value),
            hex(&self.verifier),
        );
        let check = hex(&sha256(body.as_bytes())[..4]);
        SecretString::from(format!("{body}:{check}"))
    }
}

impl FromStr for Share {
    type Err = BarrierError;

    /// Parses [`Share::encode`]'s text (surrounding whitespace ignored).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| BarrierError::ShareFormat { reason: reason.to_owned() };
        let text = text.trim();
        let parts: Vec<&str> = text.split(':').collect();
        if parts.len() != 8 || parts[0] != SHARE_PREFIX {
            return Err(bad("expected demo-unseal-share:v1:… with 8 fields"));
        }
        if parts[1] != SHARE_VERSION {
            return Err(bad("unsupported share version; this build reads v1"));
        }
        let (body, check) = text.rsplit_once(':').ok_or_else(|| bad("no checksum"))?;
        if hex(&sha256(body.as_bytes())[..4]) != check {
            return Err(bad("the checksum does not match: the share is damaged or mistyped"));
        }
        let barrier = Uuid::try_parse(parts[2]).map_err(|_| bad("the barrier id is not a UUID"))?;
        let threshold: u8 = parts[3].parse().map_err(|_| bad("the threshold is not a number 1..255"))?;
        let index: u8 = parts[4].parse().map_err(|_| bad("the share number is not a number 1..255"))?;
        if threshold == 0 || index == 0 {
            return Err(bad("threshold and share number start at 1"));
        }
        let decoded = Zeroizing::new(B64.decode(parts[5]).map_err(|_| bad("the value is not base64url"))?);
        let mut value = Zeroizing::new([0u8; shamir::LEN]);
        if decoded.len() != shamir::LEN {
            return Err(bad("the value is not 32 bytes"));
        }
        value.copy_from_slice(&decoded);
        let verifier_bytes = unhex(parts[6]).ok_or_else(|| bad("the verifier is not 8 hex bytes"))?;
        let verifier: [u8; 8] = verifier_bytes.try_into().map_err(|_| bad("the verifier is not 8 bytes"))?;
        Ok(Self { barrier, threshold, index, value, verifier })
    }
}

/// The combined unseal key, in memory only.
pub struct UnsealKey {
    barrier: Uuid,
    key: Zeroizing<[u8; shamir::LEN]>,
}

impl fmt::Debug for UnsealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnsealKey").field("barrier", &self.barrier).finish_non_exhaustive()
    }
}

impl UnsealKey {
    /// The barrier this key opens.
    pub fn barrier(&self) -> Uuid {
        self.barrier
    }
}

/// Creates a new barrier: a random unseal key split into `count` shares, `threshold` of which
/// open it. What the demo CLI does when it generates the Docker secrets.
pub fn new_shares(threshold: u8, count: u8) -> Result<Vec<Share>, BarrierError> {
    if threshold == 0 || threshold > count {
        return Err(BarrierError::Parameters { threshold, count });
    }
    let barrier = Uuid::new_v4();
    let mut key = Zeroizing::new([0u8; shamir::LEN]);
    random(key.as_mut())?;
    let verifier = verifier(barrier, &key);
    Ok(shamir::split(&key, threshold, count)?
        .into_iter()
        .map(|(index, value)| Share { barrier, threshold, index, value, verifier })
        .collect())
}

/// Combines shares into the unseal key, refusing too few, duplicated, mixed, inconsistent or
/// wrong shares. Decrypts nothing.
pub fn combine(shares: &[Share]) -> Result<UnsealKey, BarrierError> {
    let first = shares.first().ok_or(BarrierError::NoShares)?;
    for share in shares {
        if share.barrier != first.barrier {
            return Err(BarrierError::MixedBarriers { first: first.barrier, second: share.barrier });
        }
        if share.threshold != first.threshold || share.verifier != first.verifier {
            return Err(BarrierError::Inconsistent);
        }
    }
    let mut seen = [false; 256];
    for share in shares {
        if std::mem::replace(&mut seen[usize::from(share.index)], true) {
            return Err(BarrierError::DuplicateShare { index: share.index });
        }
    }
    if shares.len() < usize::from(first.threshold) {
        return Err(BarrierError::TooFewShares { given: shares.len(), needed: first.threshold });
    }
    let points: Vec<(u8, &[u8; shamir::LEN])> = shares.iter().map(|s| (s.index, &*s.value)).collect();
    let key = shamir::combine(&points);
    // Constant-time comparison of the verifier (it is derived from the secret).
    let expected = verifier(first.barrier, &key);
    if !constant_time_eq(&expected, &first.verifier) {
        return Err(BarrierError::WrongShares);
    }
    Ok(UnsealKey { barrier: first.barrier, key })
}

/// The root key as stored: wrapped under the unseal key. Persist it as JSON (or its fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedRoot {
    /// Format version (1).
    pub format: u32,
    /// The barrier whose unseal key wraps it.
    pub barrier: Uuid,
    /// Wrapped root key: base64url(nonce ‖ ciphertext ‖ tag).
    pub wrapped: String,
}

impl SealedRoot {
    /// Generates a new root key and seals it under `key`. Called once, on first start.
    pub fn create(key: &UnsealKey) -> Result<(Self, RootKey), BarrierError> {
        let mut root = Zeroizing::new([0u8; shamir::LEN]);
        random(root.as_mut())?;
        let wrapped = seal(&*key.key, &root_aad(key.barrier), &*root)?;
        let sealed = Self { format: 1, barrier: key.barrier, wrapped: B64.encode(wrapped) };
        Ok((sealed, RootKey::new(&root)?))
    }

    /// Opens the root key with `key`.
    pub fn open(&self, key: &UnsealKey) -> Result<RootKey, BarrierError> {
        if self.barrier != key.barrier {
            return Err(BarrierError::ForeignBarrier { shares: key.barrier, sealed: self.barrier });
        }
        let wrapped = B64.decode(&self.wrapped).map_err(|_| BarrierError::SealBroken)?;
        let root =
            open(&*key.key, &root_aad(self.barrier), &wrapped).map_err(|_| BarrierError::SealBroken)?;
        let root: Zeroizing<[u8; shamir::LEN]> =
            Zeroizing::new(root.as_slice().try_into().map_err(|_| BarrierError::SealBroken)?);
        RootKey::new(&root)
    }
}

/// Opens the sealed root key a service stored as JSON (`existing`), or on first start creates
/// one and returns its JSON for the caller to store. The caller persists; this stores nothing.
pub fn open_or_create(
    key: &UnsealKey,
    existing: Option<&str>,
) -> Result<(RootKey, Option<String>), BarrierError> {
    match existing {
        Some(json) => {
            let sealed: SealedRoot = serde_json::from_str(json).map_err(|_| BarrierError::SealBroken)?;
            Ok((sealed.open(key)?, None))
        }
        None => {
            let (sealed, root) = SealedRoot::create(key)?;
            let json = serde_json::to_string(&sealed).map_err(|_| BarrierError::SealBroken)?;
            Ok((root, Some(json)))
        }
    }
}

/// The unsealed root key: wraps and unwraps everything else. Never leaves memory.
pub struct RootKey {
    key: LessSafeKey,
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey([REDACTED])")
    }
}

impl RootKey {
    fn new(bytes: &[u8; shamir::LEN]) -> Result<Self, BarrierError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| BarrierError::Random)?;
        Ok(Self { key: LessSafeKey::new(unbound) })
    }

    /// Encrypts `plaintext` bound to `context` (the object's id: tenant, pool, version), which
    /// must be given again to unwrap. Output: nonce ‖ ciphertext ‖ tag. Random 96-bit nonces:
    /// keep well under 2^32 wraps per root key.
    pub fn wrap(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, BarrierError> {
        seal_with(&self.key, context.as_bytes(), plaintext)
    }

    /// Decrypts what [`RootKey::wrap`] produced for the same `context`.
    pub fn unwrap(&self, context: &str, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, BarrierError> {
        open_with(&self.key, context.as_bytes(), wrapped)
            .map_err(|_| BarrierError::Unwrap { context: context.to_owned() })
    }
}

fn root_aad(barrier: Uuid) -> Vec<u8> {
    format!("demo-barrier-root:v1:{barrier}").into_bytes()
}

fn seal(key: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, BarrierError> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| BarrierError::Random)?);
    seal_with(&key, aad, plaintext)
}

fn seal_with(key: &LessSafeKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, BarrierError> {
    let mut nonce = [0u8; NONCE_LEN];
    random(&mut nonce)?;
    let mut in_out = plaintext.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut in_out)
        .map_err(|_| BarrierError::Random)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&in_out);
    in_out.iter_mut().for_each(|b| *b = 0);
    Ok(out)
}

fn open(key: &[u8], aad: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, ()> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| ())?);
    open_with(&key, aad, wrapped)
}

fn open_with(key: &LessSafeKey, aad: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, ()> {
    if wrapped.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return Err(());
    }
    let (nonce, body) = wrapped.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| ())?;
    let mut in_out = Zeroizing::new(body.to_vec());
    let len = key
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut in_out)
        .map_err(|_| ())?
        .len();
    in_out.truncate(len);
    Ok(in_out)
}

fn verifier(barrier: Uuid, key: &[u8; shamir::LEN]) -> [u8; 8] {
    let mut input = Zeroizing::new(format!("demo-barrier-verifier:v1:{barrier}:").into_bytes());
    input.extend_from_slice(key);
    let digest = sha256(&input);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}
