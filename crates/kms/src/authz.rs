//! Who may do what: roles, scopes and their hierarchy, in one place.
//!
//! `kms:admin` ⊃ `kms:read`, `kms:write`; `kms:write` ⊃ `kms:encrypt`, `kms:decrypt`,
//! `kms:sign`, `kms:verify`, `kms:wrap`, `kms:unwrap`. Pool management (create, rotate,
//! enable/disable) needs `kms:admin`; listing pools and public keys needs `kms:read`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::model::TenantId;

/// A scope.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
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

    /// The scopes this one includes, itself among them.
    pub fn implied(self) -> &'static [Scope] {
        use Scope::*;
        match self {
            Admin => &[Admin, Read, Write, Encrypt, Decrypt, Sign, Verify, Wrap, Unwrap],
            Write => &[Write, Encrypt, Decrypt, Sign, Verify, Wrap, Unwrap],
            Read => &[Read],
            Encrypt => &[Encrypt],
            Decrypt => &[Decrypt],
            Sign => &[Sign],
            Verify => &[Verify],
            Wrap => &[Wrap],
            Unwrap => &[Unwrap],
        }
    }
}

/// A role, as realms and tokens name them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
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

impl Role {
    /// The scopes a role grants to a password (Basic) user.
    pub fn scopes(self) -> &'static [Scope] {
        use Scope::*;
        match self {
            Role::Admin | Role::TenantAdmin | Role::KeyManager => &[Admin],
            Role::Service => &[Read, Write],
            Role::User => &[Read, Encrypt, Decrypt, Sign, Verify],
            Role::Auditor => &[Read],
        }
    }
}

/// A set of scopes, closed under the hierarchy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(value_type = Vec<Scope>)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    /// The closure of `granted` under the hierarchy.
    pub fn expand(granted: impl IntoIterator<Item = Scope>) -> Self {
        Self(granted.into_iter().flat_map(|s| s.implied().iter().copied()).collect())
    }

    /// True when `scope` is held.
    pub fn has(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    /// The held scopes, sorted.
    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// HTTP Basic against a realm.
    Basic,
    /// A Bearer token from Identity.
    Bearer,
}

/// The authenticated caller. The tenant comes from here and nowhere else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Principal {
    /// User name or token subject.
    pub subject: String,
    /// The tenant whose keys the caller works with.
    pub tenant: TenantId,
    /// Roles.
    pub roles: BTreeSet<Role>,
    /// Effective scopes.
    pub scopes: Scopes,
    /// How they authenticated.
    pub method: AuthMethod,
}

impl Principal {
    /// A principal whose scopes come from its roles (Basic users).
    pub fn from_roles(subject: &str, tenant: TenantId, roles: BTreeSet<Role>, method: AuthMethod) -> Self {
        let scopes = Scopes::expand(roles.iter().flat_map(|r| r.scopes().iter().copied()));
        Self { subject: subject.to_owned(), tenant, roles, scopes, method }
    }

    /// `Ok` when `scope` is held, otherwise the scope that is missing.
    pub fn require(&self, scope: Scope) -> Result<(), Scope> {
        if self.scopes.has(scope) { Ok(()) } else { Err(scope) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchy() {
        let admin = Scopes::expand([Scope::Admin]);
        assert!(Scope::ALL.iter().all(|s| admin.has(*s)));
        let write = Scopes::expand([Scope::Write]);
        assert!(write.has(Scope::Unwrap) && write.has(Scope::Sign));
        assert!(!write.has(Scope::Read) && !write.has(Scope::Admin));
        let decrypt = Scopes::expand([Scope::Decrypt]);
        assert!(decrypt.has(Scope::Decrypt) && !decrypt.has(Scope::Encrypt));
    }

    #[test]
    fn roles_grant_what_they_should() {
        let t = TenantId::random();
        let user = Principal::from_roles("u", t, [Role::User].into(), AuthMethod::Basic);
        assert!(user.require(Scope::Decrypt).is_ok());
        assert_eq!(user.require(Scope::Unwrap), Err(Scope::Unwrap));
        assert_eq!(user.require(Scope::Admin), Err(Scope::Admin));
        let auditor = Principal::from_roles("a", t, [Role::Auditor].into(), AuthMethod::Basic);
        assert!(auditor.require(Scope::Read).is_ok() && auditor.require(Scope::Encrypt).is_err());
        let manager = Principal::from_roles("m", t, [Role::KeyManager].into(), AuthMethod::Basic);
        assert!(manager.require(Scope::Admin).is_ok());
    }

    #[test]
    fn scope_names_round_trip_and_foreign_scopes_are_ignored() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        assert_eq!(Scope::parse("openid"), None);
        assert_eq!(Scope::parse("KMS:ADMIN"), None);
    }
}
