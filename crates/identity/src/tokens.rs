//! Access tokens in the RFC 9068 shape, and checking our own tokens (introspection, revocation).

use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};

use crate::signing::SigningKeys;

/// The `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// RFC 9068 claims plus the tenant and roles the KMS authorizes with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user, or the client for `client_credentials`.
    pub sub: String,
    /// Audience: the resource server.
    pub aud: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Unique id (revocation key).
    pub jti: String,
    /// The client it was issued to.
    pub client_id: String,
    /// Space-separated scopes.
    pub scope: String,
    /// The tenant.
    pub tenant_id: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Who acts for the subject (RFC 8693 §4.1): set on tokens from a token exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Act>,
}

/// The `act` claim (RFC 8693 §4.1): the current actor, and the actor before it, nested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Act {
    /// The actor (a client id, or a user for a user's own delegation).
    pub sub: String,
    /// The actor before (a chain of exchanges).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Act>>,
}

impl Act {
    /// `actor` acting now, after whoever `before` names.
    pub fn chain(actor: &str, before: Option<&Act>) -> Self {
        Self { sub: actor.to_owned(), act: before.map(|a| Box::new(a.clone())) }
    }

    /// How many actors the chain names.
    pub fn depth(&self) -> usize {
        1 + self.act.as_ref().map_or(0, |a| a.depth())
    }
}

/// Checks a JWT we signed: the header's `kid` must name a published key, the algorithm is
/// pinned to ES256 (whatever the header says), `typ` must be `typ`, the issuer ours; the
/// audience is checked when one is given, expiry (with no leeway: our own tokens, our own
/// clock) when `expiry` is true; `required` lists the claims that must be present.
fn verify_ours<T: serde::de::DeserializeOwned>(
    keys: &SigningKeys,
    issuer: &str,
    token: &str,
    typ: &str,
    audience: Option<&str>,
    expiry: bool,
    required: &[&str],
) -> Option<T> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    if header.alg != Algorithm::ES256 || header.typ.as_deref() != Some(typ) {
        return None;
    }
    let key = keys.decoding_key(header.kid.as_deref()?)?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[issuer]);
    match audience {
        Some(aud) => validation.set_audience(&[aud]),
        None => validation.validate_aud = false,
    }
    validation.validate_exp = expiry;
    validation.leeway = 0;
    validation.set_required_spec_claims(required);
    jsonwebtoken::decode::<T>(token, &key, &validation).ok().map(|d| d.claims)
}

/// The `typ` of transaction tokens (draft-ietf-oauth-transaction-tokens).
pub const TXN_TOKEN_TYP: &str = "txntoken+jwt";

/// A transaction token's claims: who the transaction is for (`sub`, `tenant_id`, `roles`), what
/// it may do (`scope`), its id (`txn`, the same for every token of one transaction), what it is
/// about (`tctx`) and who asked (`rctx`), audience the trust domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnClaims {
    /// Issuer.
    pub iss: String,
    /// Audience: the trust domain.
    pub aud: String,
    /// Issued at.
    pub iat: i64,
    /// Expiry.
    pub exp: i64,
    /// The transaction's id.
    pub txn: String,
    /// The subject.
    pub sub: String,
    /// Space-separated scopes.
    pub scope: String,
    /// The subject's tenant.
    pub tenant_id: String,
    /// The subject's roles.
    pub roles: Vec<String>,
    /// Transaction context: what the transaction is about (set by the first requester).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub tctx: serde_json::Map<String, serde_json::Value>,
    /// Requester context: the workload that asked and its address.
    pub rctx: Rctx,
    /// The actors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Act>,
}

/// `rctx`: the requester context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rctx {
    /// The requesting workload (its client id).
    pub req_wl: String,
    /// Its network address, as Identity saw it.
    pub req_ip: String,
}

/// Checks one of our transaction tokens for the trust domain `audience`: `typ`, algorithm,
/// issuer, audience and expiry, with no leeway.
pub fn verify_txn(keys: &SigningKeys, issuer: &str, audience: &str, token: &str) -> Option<TxnClaims> {
    verify_ours(
        keys,
        issuer,
        token,
        TXN_TOKEN_TYP,
        Some(audience),
        true,
        &["exp", "iat", "iss", "sub", "aud"],
    )
}

/// Checks one of our ID tokens as a subject token: signature, `typ`, issuer and expiry (no
/// leeway); its audience is the client it was issued to.
pub fn verify_id_token(keys: &SigningKeys, issuer: &str, token: &str) -> Option<IdClaims> {
    verify_ours(keys, issuer, token, ID_TOKEN_TYP, None, true, &["exp", "iat", "iss", "sub", "aud"])
}

/// Checks one of our access tokens: the header's `kid` must name a published key, the
/// algorithm is pinned to ES256 (whatever the header says), `typ` must be `at+jwt`, issuer and
/// expiry must hold. The audience is not checked here: introspection answers for any.
pub fn verify_own(keys: &SigningKeys, issuer: &str, token: &str) -> Option<AccessClaims> {
    // The audience is not checked: introspection answers for any.
    verify_ours(keys, issuer, token, ACCESS_TOKEN_TYP, None, true, &["exp", "iat", "iss", "sub"])
}

/// The `typ` of ID tokens.
pub const ID_TOKEN_TYP: &str = "JWT";

/// OpenID Connect ID token claims (Core §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    /// Issuer.
    pub iss: String,
    /// The user.
    pub sub: String,
    /// The client.
    pub aud: String,
    /// Authorized party: the client (one audience).
    pub azp: String,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// When the user typed their password.
    pub auth_time: i64,
    /// The authorization request's nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Left half of SHA-256 of the access token (Core §3.1.3.6).
    pub at_hash: String,
}

/// OIDC `at_hash` for ES256: base64url of the left half of SHA-256 over the token's ASCII.
pub fn at_hash(access_token: &str) -> String {
    use base64::Engine as _;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
}

/// Checks an ID token we issued, as an `id_token_hint`: signature, issuer and `typ`; expiry is
/// not checked (the hint of a session that outlived its ID token still names who signs out).
pub fn verify_id_token_hint(keys: &SigningKeys, issuer: &str, token: &str) -> Option<IdClaims> {
    verify_ours(keys, issuer, token, ID_TOKEN_TYP, None, false, &["iss", "sub", "aud"])
}

/// A new opaque secret (authorization code, refresh token, session id): 256 random bits,
/// base64url. Returns the value and the hash that is stored.
pub fn opaque() -> Result<(String, String), crate::signing::SigningError> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| crate::signing::SigningError::Key("the random generator failed".into()))?;
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = opaque_hash(&value);
    Ok((value, hash))
}

/// The stored form of an opaque secret: hex SHA-256. Lookups by this hash leak nothing useful
/// through timing (the attacker does not control the hash's bytes).
pub fn opaque_hash(value: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes()))
}

/// PKCE S256 (RFC 7636 §4.6): whether `BASE64URL(SHA256(verifier)) == challenge`, compared in
/// constant time. A verifier outside the RFC's 43–128 unreserved characters never matches.
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    use base64::Engine as _;
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !well_formed {
        return false;
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
    aws_lc_rs::constant_time::verify_slices_are_equal(computed.as_bytes(), challenge.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_the_rfc_7636_appendix_b_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(pkce_s256_matches(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!pkce_s256_matches(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"));
        // The plain method's "challenge == verifier" never passes.
        assert!(!pkce_s256_matches(verifier, verifier));
        assert!(!pkce_s256_matches("short", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!pkce_s256_matches(&"a".repeat(129), "x"));
        assert!(!pkce_s256_matches(&format!("{verifier}!"), "x"));
    }

    #[test]
    fn at_hash_is_the_left_half_of_sha256() {
        // Expected value computed independently with Python's hashlib:
        // urlsafe_b64encode(sha256(token).digest()[:16]) without padding.
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNOQuL8W1lEMc9iqo0JGNGdVNQ2x3Q46OkuLl2eVN"),
            "TnJWBb6n0KjW8v9Fqs3r3g"
        );
    }

    #[test]
    fn opaque_values_are_unique_and_hashed() {
        let (a, ha) = opaque().unwrap();
        let (b, _) = opaque().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(ha, opaque_hash(&a));
        assert_eq!(ha.len(), 64);
    }
}
