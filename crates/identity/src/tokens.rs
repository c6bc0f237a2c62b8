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
}

/// Checks one of our access tokens: the header's `kid` must name a published key, the
/// algorithm is pinned to ES256 (whatever the header says), `typ` must be `at+jwt`, issuer and
/// expiry must hold. The audience is not checked here: introspection answers for any.
pub fn verify_own(keys: &SigningKeys, issuer: &str, token: &str) -> Option<AccessClaims> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    if header.alg != Algorithm::ES256 || header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
        return None;
    }
    let key = keys.decoding_key(header.kid.as_deref()?)?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[issuer]);
    validation.validate_aud = false;
    validation.leeway = 30;
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
    jsonwebtoken::decode::<AccessClaims>(token, &key, &validation).ok().map(|d| d.claims)
}
