//! The KMS's HTTP wire types: the request and response bodies of `/api/v1` (pools and versions,
//! encrypt/decrypt with a JWE in its compact or flattened JSON form, sign/verify, wrap/unwrap,
//! data keys, whoami, public JWKs and the JWKS as served, and the problem document of every
//! error), with the names they use (algorithms, scopes, roles). The KMS serves them, and the
//! demo and the tests read and write them, so a change to the API is a change here that the
//! compiler carries to every side (the `kanidm_proto` pattern).
//!
//! Values that are base64, JOSE objects or key ids travel as `String`s: this crate describes
//! their shape (with the `utoipa` feature, [`formats`] gives the OpenAPI patterns that match the
//! KMS's decoders) but never decodes, checks or produces them.
//!
//! What it must not do: hold an HTTP client, do cryptography or decode key material, or carry
//! the KMS's domain rules (the scope hierarchy, what a role grants, pool name validation): those
//! stay in the `kms` crate. Its dependencies stay serde, serde_json and, optionally, utoipa.

#![deny(missing_docs)]

#[cfg(feature = "utoipa")]
pub mod formats;
mod names;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use names::{Algorithm, AuthMethod, Role, Scope};

/// An RFC 9457 problem document (every error), as `service_kit::Problem` writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ProblemDoc {
    /// `urn:demo:problem:<slug>`: stable, safe to match on.
    #[serde(rename = "type")]
    #[cfg_attr(
        feature = "utoipa",
        schema(pattern = "^urn:demo:problem:[a-z0-9-]+$", example = "urn:demo:problem:not-found")
    )]
    pub type_uri: String,
    /// Summary of the problem type.
    pub title: String,
    /// HTTP status, the same as the response's.
    #[cfg_attr(feature = "utoipa", schema(minimum = 400, maximum = 599))]
    pub status: u16,
    /// What went wrong with this request.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(nullable = false))]
    pub detail: Option<String>,
    /// The request path.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(nullable = false))]
    pub instance: Option<String>,
    /// Quote it when asking for help; the logs carry the same id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(nullable = false))]
    pub request_id: Option<String>,
}

/// The authenticated caller. The tenant comes from here and nowhere else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Principal {
    /// User name or token subject.
    pub subject: String,
    /// The tenant whose keys the caller works with.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::TenantId))]
    pub tenant: String,
    /// Roles.
    pub roles: BTreeSet<Role>,
    /// Effective scopes.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::Scopes))]
    pub scopes: BTreeSet<Scope>,
    /// How they authenticated.
    pub method: AuthMethod,
    /// The transaction, when a transaction token authenticated the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn: Option<String>,
}

/// `POST /api/v1/pools`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "utoipa", schema(example = json!({"name": "invoices", "algorithm": "A256GCM"})))]
pub struct CreatePool {
    /// Pool name (checked here, so a bad one is a 400 naming the rule).
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::PoolName))]
    pub name: String,
    /// `A256GCM`, `A256KW`, `ES256`, `EdDSA` or `PS256`.
    pub algorithm: Algorithm,
}

/// `POST /api/v1/users`: a user of the database realm, in the caller's own tenant.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "utoipa",
    schema(example = json!({"username": "ops-alice", "password": "correct horse battery staple", "roles": ["key-manager"]}))
)]
pub struct CreateUser {
    /// Login name, unique across every realm of the KMS.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::Username))]
    pub username: String,
    /// The password: 12 to 1024 characters, stored only as a PBKDF2-SHA256 hash.
    #[cfg_attr(feature = "utoipa", schema(min_length = 12, max_length = 1024))]
    pub password: String,
    /// At least one role, each one the caller may grant.
    #[cfg_attr(feature = "utoipa", schema(min_items = 1))]
    pub roles: Vec<Role>,
}

impl std::fmt::Debug for CreateUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUser")
            .field("username", &self.username)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// A database-realm user as the API shows it (never a password or its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct UserInfo {
    /// Login name.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::Username))]
    pub username: String,
    /// The user's tenant: the creator's.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::TenantId))]
    pub tenant: String,
    /// Roles.
    pub roles: BTreeSet<Role>,
}

/// A pool with its versions, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct PoolInfo {
    /// Name.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::PoolName))]
    pub name: String,
    /// Algorithm (`A256GCM`, `ES256`, …).
    pub algorithm: Algorithm,
    /// The version new operations use: the newest enabled one.
    pub current_version: Option<u32>,
    /// Every version.
    pub versions: Vec<VersionInfo>,
    /// RFC 3339.
    pub created_at: String,
}

/// One version, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct VersionInfo {
    /// Number.
    pub version: u32,
    /// `pool/version`.
    pub kid: String,
    /// Usable.
    pub enabled: bool,
    /// RFC 3339.
    pub created_at: String,
}

/// `POST /api/v1/pools/{pool}/encrypt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "utoipa", schema(example = json!({"plaintext": "aGVsbG8gd29ybGQ="})))]
pub struct EncryptRequest {
    /// Standard base64.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::Base64))]
    pub plaintext: String,
    /// Optional additional authenticated data, standard base64; the result is then a
    /// flattened JSON JWE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(value_type = Option<formats::Base64>))]
    pub aad: Option<String>,
}

/// A JWE as the KMS writes it: compact (`dir` + `A256GCM`), or flattened JSON when it carries
/// additional authenticated data, which the compact form cannot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Jwe {
    /// The compact serialization (a string).
    Compact(String),
    /// The flattened JSON serialization (an object).
    Flattened(FlattenedJwe),
}

impl Jwe {
    /// The compact form, when it is one.
    pub fn compact(&self) -> Option<&str> {
        match self {
            Self::Compact(text) => Some(text),
            Self::Flattened(_) => None,
        }
    }
}

impl From<Jwe> for serde_json::Value {
    fn from(jwe: Jwe) -> Self {
        match jwe {
            Jwe::Compact(text) => Self::String(text),
            Jwe::Flattened(flattened) => flattened.into(),
        }
    }
}

/// A JWE in the flattened JSON serialization (RFC 7516 §7.2.2), used when the caller supplies
/// additional authenticated data, which the compact form cannot carry. The patterns in its
/// schema are those of the base64url (no padding, zero trailing bits) the parser decodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FlattenedJwe {
    /// base64url protected header (`{"alg":"dir","enc":"A256GCM","kid":"pool/version"}`).
    #[cfg_attr(
        feature = "utoipa",
        schema(
            pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{4}|[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])$"
        )
    )]
    pub protected: String,
    /// base64url IV (12 bytes).
    #[cfg_attr(feature = "utoipa", schema(pattern = "^[A-Za-z0-9_-]{16}$"))]
    pub iv: String,
    /// base64url ciphertext.
    #[cfg_attr(
        feature = "utoipa",
        schema(
            pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
        )
    )]
    pub ciphertext: String,
    /// base64url tag (16 bytes).
    #[cfg_attr(feature = "utoipa", schema(pattern = "^[A-Za-z0-9_-]{21}[AQgw]$"))]
    pub tag: String,
    /// base64url additional authenticated data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "utoipa",
        schema(
            pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
        )
    )]
    pub aad: Option<String>,
    /// Always empty for `dir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(max_length = 0))]
    pub encrypted_key: Option<String>,
}

impl From<FlattenedJwe> for serde_json::Value {
    /// The object as serde writes it (members in declaration order, absent options left out).
    fn from(jwe: FlattenedJwe) -> Self {
        let FlattenedJwe { protected, iv, ciphertext, tag, aad, encrypted_key } = jwe;
        let members = [
            ("protected", Some(protected)),
            ("iv", Some(iv)),
            ("ciphertext", Some(ciphertext)),
            ("tag", Some(tag)),
            ("aad", aad),
            ("encrypted_key", encrypted_key),
        ];
        Self::Object(
            members
                .into_iter()
                .filter_map(|(name, value)| Some((name.to_owned(), Self::String(value?))))
                .collect(),
        )
    }
}

/// The result of an encryption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct EncryptResponse {
    /// `pool/version`.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::Kid))]
    pub kid: String,
    /// Compact JWE (a string), or flattened JSON JWE (an object) when AAD was given.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::Jwe))]
    pub jwe: Jwe,
}

/// `POST /api/v1/decrypt`.
// The server takes `jwe` as any JSON value, so that its JOSE parser, not the JSON layer, judges
// a string or an object and names what is wrong with it (400 `invalid-jose`; anything else is a
// 400 too). Clients build it from a `Jwe` with `DecryptRequest::from`. (A `//` comment: doc
// comments become the OpenAPI description.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DecryptRequest {
    /// A compact JWE string or a flattened JSON JWE object.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::Jwe))]
    pub jwe: serde_json::Value,
}

impl From<Jwe> for DecryptRequest {
    fn from(jwe: Jwe) -> Self {
        Self { jwe: jwe.into() }
    }
}

/// `{kid, plaintext}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct DecryptResponse {
    /// `pool/version` that decrypted it.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::Kid))]
    pub kid: String,
    /// Standard base64.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::Base64))]
    pub plaintext: String,
}

/// A data key: use `plaintext` now, store `ciphertext` beside the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct DataKeyResponse {
    /// `pool/version`.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::Kid))]
    pub kid: String,
    /// 32 random bytes, standard base64.
    #[cfg_attr(feature = "utoipa", schema(pattern = "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$"))]
    pub plaintext: String,
    /// The same key as a compact JWE under the pool.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::CompactJwe))]
    pub ciphertext: String,
}

/// `POST /api/v1/pools/{pool}/sign`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "utoipa", schema(example = json!({"payload": "aGVsbG8gd29ybGQ="})))]
pub struct SignRequest {
    /// Standard base64.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::Base64))]
    pub payload: String,
}

/// `{kid, jws}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct SignResponse {
    /// `pool/version`.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::Kid))]
    pub kid: String,
    /// Compact JWS.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::CompactJws))]
    pub jws: String,
}

/// `POST /api/v1/verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// A compact JWS.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::CompactJws))]
    pub jws: String,
}

/// `{kid, valid}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct VerifyResponse {
    /// The version the JWS named.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::Kid))]
    pub kid: String,
    /// Whether the signature verifies.
    pub valid: bool,
}

/// `POST /api/v1/pools/{pool}/wrap`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "utoipa", schema(example = json!({"key": "AAECAwQFBgcICQoLDA0ODw=="})))]
pub struct WrapRequest {
    /// The key material to wrap, standard base64 (16 to 4096 bytes, a multiple of 8).
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::KeyMaterial))]
    pub key: String,
}

/// `{kid, wrapped}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct WrapResponse {
    /// `pool/version`; give it back to unwrap.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::Kid))]
    pub kid: String,
    /// RFC 3394 output, standard base64.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::WrappedKey))]
    pub wrapped: String,
}

/// `POST /api/v1/unwrap`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "utoipa",
    schema(example = json!({"kid": "key-wrapping/1", "wrapped": "H0jYvyNZ35mkMc4oijYqtvsMd3GU1PUV"}))
)]
pub struct UnwrapRequest {
    /// `pool/version` of the wrapping key.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::Kid))]
    pub kid: String,
    /// RFC 3394 output, standard base64.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::WrappedKey))]
    pub wrapped: String,
}

/// `{key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct UnwrapResponse {
    /// The key material, standard base64.
    #[cfg_attr(feature = "utoipa", schema(value_type = formats::KeyMaterial))]
    pub key: String,
}

/// The public JWK of a signing key version (RFC 7517), as the KMS serves it: `kty`, the
/// key's own members (`crv`, `x`, `y` for EC and OKP; `n`, `e` for RSA), `kid`, `alg`, `use`.
/// The OpenAPI document's `Jwk` schema names each key type's members exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `EC`, `OKP` or `RSA`.
    pub kty: String,
    /// `P-256` (EC) or `Ed25519` (OKP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC and OKP: the x coordinate or public key, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC: the y coordinate, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA: the modulus, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA: the public exponent, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// `pool/version`.
    pub kid: String,
    /// `ES256`, `EdDSA` or `PS256`.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
}

/// A JWK Set: every enabled version of every signing pool of the tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The public keys.
    pub keys: Vec<Jwk>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn a_jwe_reads_and_writes_both_forms_and_becomes_a_decrypt_request() {
        let compact: Jwe = serde_json::from_value(json!("h..iv.ct.tag")).unwrap();
        assert_eq!(compact.compact(), Some("h..iv.ct.tag"));
        let object = json!({"protected": "h", "iv": "i", "ciphertext": "c", "tag": "t", "aad": "a"});
        let flattened: Jwe = serde_json::from_value(object.clone()).unwrap();
        assert!(matches!(&flattened, Jwe::Flattened(f) if f.aad.as_deref() == Some("a")));
        assert_eq!(flattened.compact(), None);
        // The hand-written conversion is what serde writes.
        assert_eq!(serde_json::to_value(&flattened).unwrap(), object);
        assert_eq!(DecryptRequest::from(flattened).jwe, object);
        assert_eq!(DecryptRequest::from(compact).jwe, json!("h..iv.ct.tag"));
        // Unknown members and other JSON types are not a JWE.
        assert!(
            serde_json::from_value::<Jwe>(
                json!({"protected": "h", "iv": "i", "ciphertext": "c", "tag": "t", "x": 1})
            )
            .is_err()
        );
        assert!(serde_json::from_value::<Jwe>(json!(42)).is_err());
    }

    #[test]
    fn requests_refuse_unknown_members_and_leave_out_absent_options() {
        let body = serde_json::to_value(EncryptRequest { plaintext: "eA==".into(), aad: None }).unwrap();
        assert_eq!(body, json!({"plaintext": "eA=="}));
        assert!(serde_json::from_value::<EncryptRequest>(json!({"plaintext": "eA==", "extra": 1})).is_err());
        assert!(serde_json::from_value::<CreatePool>(json!({"name": "p", "algorithm": "ROT13"})).is_err());
    }

    #[test]
    fn a_new_users_password_never_shows_in_debug() {
        let body: CreateUser = serde_json::from_value(
            json!({"username": "u", "password": "hunter2-hunter2", "roles": ["user"]}),
        )
        .unwrap();
        let shown = format!("{body:?}");
        assert!(shown.contains("\"u\"") && !shown.contains("hunter2"), "{shown}");
        assert!(
            serde_json::from_value::<CreateUser>(
                json!({"username": "u", "password": "p", "roles": [], "tenant": "x"})
            )
            .is_err(),
            "the tenant is never the client's to choose"
        );
    }

    #[test]
    fn jwks_and_problems_read_as_served() {
        let jwks: Jwks = serde_json::from_value(json!({"keys": [
            {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "s/1", "alg": "ES256", "use": "sig"},
            {"kty": "RSA", "n": "AA", "e": "AQAB", "kid": "s/2", "alg": "PS256", "use": "sig"}
        ]}))
        .unwrap();
        assert_eq!(jwks.keys[1].e.as_deref(), Some("AQAB"));
        let rsa = serde_json::to_string(&jwks.keys[1]).unwrap();
        assert_eq!(rsa, r#"{"kty":"RSA","n":"AA","e":"AQAB","kid":"s/2","alg":"PS256","use":"sig"}"#);
        let problem: ProblemDoc = serde_json::from_value(json!({
            "type": "urn:demo:problem:forbidden", "title": "Not allowed", "status": 403, "detail": "no"
        }))
        .unwrap();
        assert_eq!((problem.status, problem.detail.as_deref(), problem.instance), (403, Some("no"), None));
    }
}
