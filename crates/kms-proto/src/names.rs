//! The names the API uses: algorithms, scopes, roles and authentication methods, as they
//! travel. What they mean to the KMS (the scope hierarchy, what a role grants, the keys behind
//! an algorithm) is the KMS's: see `kms::authz` and `kms::crypto`.

use serde::{Deserialize, Serialize};

/// What a pool's keys are and do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum Algorithm {
    /// AES-256-GCM: encrypt/decrypt (JWE `dir` + `A256GCM`) and data keys.
    #[serde(rename = "A256GCM")]
    A256Gcm,
    /// AES-256 key wrap (RFC 3394): wrap/unwrap caller key material.
    #[serde(rename = "A256KW")]
    A256Kw,
    /// ECDSA P-256 with SHA-256: sign/verify (JWS `ES256`).
    #[serde(rename = "ES256")]
    Es256,
    /// Ed25519: sign/verify (JWS `EdDSA`).
    #[serde(rename = "EdDSA")]
    EdDsa,
    /// RSA-2048 PSS with SHA-256: sign/verify (JWS `PS256`).
    #[serde(rename = "PS256")]
    Ps256,
}

impl Algorithm {
    /// Every algorithm.
    pub const ALL: [Algorithm; 5] = [Self::A256Gcm, Self::A256Kw, Self::Es256, Self::EdDsa, Self::Ps256];

    /// The JOSE name (`A256GCM`, `ES256`, …).
    pub fn jose_name(self) -> &'static str {
        match self {
            Self::A256Gcm => "A256GCM",
            Self::A256Kw => "A256KW",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Ps256 => "PS256",
        }
    }

    /// Parses a JOSE name exactly (case matters, as in JOSE).
    pub fn from_jose_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.jose_name() == name)
    }

    /// True for the signing algorithms.
    pub fn signs(self) -> bool {
        matches!(self, Self::Es256 | Self::EdDsa | Self::Ps256)
    }
}

/// A scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum Scope {
    /// Everything, including pool management.
    #[serde(rename = "kms:admin")]
    Admin,
    /// List pools, read versions and public keys.
    #[serde(rename = "kms:read")]
    Read,
    /// Every key operation.
    #[serde(rename = "kms:write")]
    Write,
    /// Encrypt and make data keys.
    #[serde(rename = "kms:encrypt")]
    Encrypt,
    /// Decrypt.
    #[serde(rename = "kms:decrypt")]
    Decrypt,
    /// Sign.
    #[serde(rename = "kms:sign")]
    Sign,
    /// Verify.
    #[serde(rename = "kms:verify")]
    Verify,
    /// Wrap key material.
    #[serde(rename = "kms:wrap")]
    Wrap,
    /// Unwrap key material.
    #[serde(rename = "kms:unwrap")]
    Unwrap,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 9] = [
        Self::Admin,
        Self::Read,
        Self::Write,
        Self::Encrypt,
        Self::Decrypt,
        Self::Sign,
        Self::Verify,
        Self::Wrap,
        Self::Unwrap,
    ];

    /// The scope's name (`kms:decrypt`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "kms:admin",
            Self::Read => "kms:read",
            Self::Write => "kms:write",
            Self::Encrypt => "kms:encrypt",
            Self::Decrypt => "kms:decrypt",
            Self::Sign => "kms:sign",
            Self::Verify => "kms:verify",
            Self::Wrap => "kms:wrap",
            Self::Unwrap => "kms:unwrap",
        }
    }

    /// Parses a scope name; unknown names (other services' scopes) are `None`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A role, as realms and tokens name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Operator of the whole KMS.
    Admin,
    /// Administers one tenant.
    TenantAdmin,
    /// Creates, rotates and disables pools.
    KeyManager,
    /// Uses keys: encrypt, decrypt, sign, verify.
    User,
    /// A machine client: every key operation.
    Service,
    /// Reads metadata and public keys only.
    Auditor,
}

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// HTTP Basic against a realm.
    Basic,
    /// A Bearer token from Identity.
    Bearer,
    /// An API key of Identity.
    #[serde(rename = "api_key")]
    ApiKey,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_serde_agrees() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).ok(), Some(serde_json::Value::from(s.as_str())));
        }
        assert_eq!(Scope::parse("openid"), None);
        assert_eq!(Scope::parse("KMS:ADMIN"), None);
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::from_jose_name(a.jose_name()), Some(a));
            assert_eq!(serde_json::to_value(a).ok(), Some(serde_json::Value::from(a.jose_name())));
        }
        assert_eq!(Algorithm::from_jose_name("es256"), None);
    }
}
