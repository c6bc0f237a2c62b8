//! Token signing keys: ES256, generated at first start, stored sealed by the barrier's root key.
//!
//! Rotation follows the life cycle relying parties need: a **next** key is published in the
//! JWKS before it signs anything (so caches already hold it when it starts signing); rotation
//! makes it **current** and retires the old current key, which stays published until every
//! token it signed has expired. Key ids are RFC 7638 JWK thumbprints. Replicas sharing one
//! database reload the keys periodically (`spawn_reload`), so a rotation at one reaches the
//! others within that bound.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use barrier::RootKey;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{DecodingKey, EncodingKey};
use zeroize::Zeroizing;

use crate::store::{KeyState, Store, StoreError, StoredKey, now};

/// A signing-key operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigningError {
    /// Storage failed.
    #[error("the key store failed")]
    Store(#[from] StoreError),
    /// The crypto library failed, or a stored key does not unwrap or parse.
    #[error("signing key material is unusable: {0}")]
    Key(String),
}

struct Loaded {
    kid: String,
    encoding: EncodingKey,
}

#[derive(Default)]
struct KeySet {
    current: Option<Arc<Loaded>>,
    jwks: Vec<serde_json::Value>,
    decoding: HashMap<String, Arc<DecodingKey>>,
}

/// The signing keys, loaded and unwrapped.
pub struct SigningKeys {
    store: Arc<dyn Store>,
    root: Arc<RootKey>,
    set: RwLock<KeySet>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKeys")
    }
}

fn context(kid: &str) -> String {
    format!("identity:signing-key:v1:{kid}")
}

impl SigningKeys {
    /// Loads the keys, creating a current and a next key on first start. Instances starting
    /// at once on one database agree: the database keeps one key per stage
    /// (`Store::insert_key` writes nothing when the stage is taken), and every instance loads
    /// what the database holds after its own attempts.
    pub async fn load_or_init(store: Arc<dyn Store>, root: Arc<RootKey>) -> Result<Self, SigningError> {
        let keys = Self { store, root, set: RwLock::new(KeySet::default()) };
        let stored = keys.store.keys().await?;
        for state in [KeyState::Current, KeyState::Next] {
            if !stored.iter().any(|k| k.state == state)
                && !keys.store.insert_key(&keys.generate(state)?).await?
            {
                tracing::info!(stage = ?state, "another instance created this signing key first; using its key");
            }
        }
        keys.reload().await?;
        Ok(keys)
    }

    /// Rotation: next → current, current → retired (published for `retire_after` more
    /// seconds, the longest lifetime of a token it signed), a new next. Retired keys past their
    /// time are deleted. The stages move in the order the database's one-key-per-stage rule
    /// allows: retire, promote, then add. (Rotation is an operator's act at one instance; the
    /// others pick it up when they reload.)
    pub async fn rotate(&self, retire_after: i64) -> Result<(), SigningError> {
        let stored = self.store.keys().await?;
        let now = now();
        for key in stored.iter().filter(|k| k.state == KeyState::Current) {
            self.store.set_key_state(&key.kid, KeyState::Retired, Some(now + retire_after)).await?;
        }
        for key in stored.iter().filter(|k| k.state == KeyState::Next) {
            self.store.set_key_state(&key.kid, KeyState::Current, None).await?;
        }
        for key in &stored {
            if key.state == KeyState::Retired && key.retire_after.is_some_and(|t| t < now) {
                self.store.delete_key(&key.kid).await?;
            }
        }
        self.store.insert_key(&self.generate(KeyState::Next)?).await?;
        self.reload().await?;
        tracing::info!("signing keys rotated");
        Ok(())
    }

    /// Reloads the keys from the store every `every`, so that a rotation made at another
    /// replica reaches this one within that bound. A failed reload (the database away) keeps
    /// the keys loaded and is logged. Runs until the task is aborted.
    pub fn spawn_reload(keys: Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is immediate, and the keys were just loaded.
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = keys.reload().await {
                    tracing::warn!(error = %e, "reloading the signing keys failed; keeping the loaded ones");
                }
            }
        })
    }

    /// Reads the keys from the store into memory.
    pub async fn reload(&self) -> Result<(), SigningError> {
        let now = now();
        let mut set = KeySet::default();
        for key in self.store.keys().await? {
            if key.state == KeyState::Retired && key.retire_after.is_some_and(|t| t < now) {
                continue;
            }
            let jwk: serde_json::Value =
                serde_json::from_str(&key.public_jwk).map_err(|e| SigningError::Key(e.to_string()))?;
            let (x, y) = (jwk["x"].as_str().unwrap_or_default(), jwk["y"].as_str().unwrap_or_default());
            let decoding =
                DecodingKey::from_ec_components(x, y).map_err(|e| SigningError::Key(e.to_string()))?;
            set.decoding.insert(key.kid.clone(), Arc::new(decoding));
            set.jwks.push(jwk);
            if key.state == KeyState::Current {
                let der = self
                    .root
                    .unwrap(&context(&key.kid), &key.wrapped_private)
                    .map_err(|e| SigningError::Key(format!("{}: {e}", key.kid)))?;
                set.current =
                    Some(Arc::new(Loaded { kid: key.kid.clone(), encoding: EncodingKey::from_ec_der(&der) }));
            }
        }
        if set.current.is_none() {
            return Err(SigningError::Key("no current signing key".into()));
        }
        *self.set.write().unwrap_or_else(|e| e.into_inner()) = set;
        Ok(())
    }

    /// The JWKS: next, current and not-yet-expired retired keys.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": self.set.read().unwrap_or_else(|e| e.into_inner()).jwks })
    }

    /// Signs claims as a JWT with the current key; `typ` goes into the header.
    pub fn sign<T: serde::Serialize>(&self, typ: &str, claims: &T) -> Result<String, SigningError> {
        let current = self.set.read().unwrap_or_else(|e| e.into_inner()).current.clone();
        let current = current.ok_or_else(|| SigningError::Key("no current signing key".into()))?;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.typ = Some(typ.to_owned());
        header.kid = Some(current.kid.clone());
        jsonwebtoken::encode(&header, claims, &current.encoding).map_err(|e| SigningError::Key(e.to_string()))
    }

    /// The verification key for `kid`, if it is published.
    pub fn decoding_key(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        self.set.read().unwrap_or_else(|e| e.into_inner()).decoding.get(kid).cloned()
    }

    /// The kid that signs now.
    pub fn current_kid(&self) -> Option<String> {
        self.set.read().unwrap_or_else(|e| e.into_inner()).current.as_ref().map(|c| c.kid.clone())
    }

    fn generate(&self, state: KeyState) -> Result<StoredKey, SigningError> {
        let pair = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| SigningError::Key("key generation failed".into()))?;
        let der = Zeroizing::new(
            pair.to_pkcs8v1()
                .map_err(|_| SigningError::Key("PKCS#8 encoding failed".into()))?
                .as_ref()
                .to_vec(),
        );
        let point = pair.public_key().as_ref();
        let (x, y) = (B64.encode(&point[1..33]), B64.encode(&point[33..65]));
        // RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = B64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()));
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"});
        let wrapped = self.root.wrap(&context(&kid), &der).map_err(|e| SigningError::Key(e.to_string()))?;
        Ok(StoredKey {
            kid,
            state,
            wrapped_private: wrapped,
            public_jwk: jwk.to_string(),
            created_at: now(),
            retire_after: None,
        })
    }
}
