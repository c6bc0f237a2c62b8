//! Who may do what: roles, scopes and their hierarchy, in one place.
//!
//! `kms:admin` ⊃ `kms:read`, `kms:write`; `kms:write` ⊃ `kms:encrypt`, `kms:decrypt`,
//! `kms:sign`, `kms:verify`, `kms:wrap`, `kms:unwrap`. Pool management (create, rotate,
//! enable/disable) needs `kms:admin`; listing pools and public keys needs `kms:read`.

use std::collections::BTreeSet;

use crate::model::TenantId;

/// The names of scopes, roles and authentication methods are the wire's (`kms-proto`); what
/// they mean is decided here.
pub use kms_proto::{AuthMethod, Role, Scope};

/// The scopes `scope` includes, itself among them.
pub fn implied(scope: Scope) -> &'static [Scope] {
    use Scope::*;
    match scope {
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

/// The scopes a role grants to a password (Basic) user.
pub fn granted_by(role: Role) -> &'static [Scope] {
    use Scope::*;
    match role {
        Role::Admin | Role::TenantAdmin | Role::KeyManager => &[Admin],
        Role::Service => &[Read, Write],
        Role::User => &[Read, Encrypt, Decrypt, Sign, Verify],
        Role::Auditor => &[Read],
    }
}

/// Whether a caller with `roles` may create users of the database realm in its own tenant:
/// tenant admins, and admins (who hold everything a tenant admin does).
pub fn manages_users(roles: &BTreeSet<Role>) -> bool {
    roles.contains(&Role::TenantAdmin) || roles.contains(&Role::Admin)
}

/// Whether a caller with `roles` may give `role` to a user it creates: an admin any role, a
/// tenant admin any role but `admin` (so nobody gains more than its creator has).
pub fn may_grant(roles: &BTreeSet<Role>, role: Role) -> bool {
    roles.contains(&Role::Admin) || (roles.contains(&Role::TenantAdmin) && role != Role::Admin)
}

/// The scopes of permission words (`kms:encrypt`, or `kms:encrypt@pool:NAME` for one pool: an
/// API key's permissions, and the scope of a token exchanged for one) within what `roles`
/// allow: those held everywhere, and those held in one pool only. Words that name no scope of
/// ours are ignored.
pub fn permitted<'a>(
    words: impl IntoIterator<Item = &'a str>,
    roles: &BTreeSet<Role>,
) -> (Scopes, std::collections::BTreeMap<String, Scopes>) {
    let allowed = Scopes::expand(roles.iter().flat_map(|r| granted_by(*r).iter().copied()));
    let within = |granted: Vec<Scope>| {
        let granted = Scopes::expand(granted);
        Scopes::expand(granted.iter().filter(|s| allowed.has(*s)))
    };
    let mut everywhere = Vec::new();
    let mut per_pool: std::collections::BTreeMap<String, Vec<Scope>> = Default::default();
    for word in words {
        match word.split_once("@pool:") {
            None => everywhere.extend(Scope::parse(word)),
            Some((scope, pool)) => {
                if let (Some(scope), false) = (Scope::parse(scope), pool.is_empty()) {
                    per_pool.entry(pool.to_owned()).or_default().push(scope);
                }
            }
        }
    }
    (within(everywhere), per_pool.into_iter().map(|(pool, scopes)| (pool, within(scopes))).collect())
}

/// A set of scopes, closed under the hierarchy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    /// The closure of `granted` under the hierarchy.
    pub fn expand(granted: impl IntoIterator<Item = Scope>) -> Self {
        Self(granted.into_iter().flat_map(|s| implied(s).iter().copied()).collect())
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

/// The authenticated caller. The tenant comes from here and nowhere else.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The transaction a transaction token was issued for (`txn`), logged with the operation.
    pub txn: Option<String>,
    /// Scopes held in one pool only (an API key's `scope@pool:NAME` permissions), beside the
    /// `scopes` held everywhere.
    pub pool_scopes: std::collections::BTreeMap<String, Scopes>,
    /// Who acts as the subject (an API key's owner impersonating it), logged with the operation.
    pub actor: Option<String>,
}

impl Principal {
    /// A principal whose scopes come from its roles (Basic users).
    pub fn from_roles(subject: &str, tenant: TenantId, roles: BTreeSet<Role>, method: AuthMethod) -> Self {
        let scopes = Scopes::expand(roles.iter().flat_map(|r| granted_by(*r).iter().copied()));
        Self {
            subject: subject.to_owned(),
            tenant,
            roles,
            scopes,
            method,
            txn: None,
            pool_scopes: Default::default(),
            actor: None,
        }
    }

    /// As `GET /api/v1/whoami` answers.
    pub fn to_wire(&self) -> kms_proto::Principal {
        kms_proto::Principal {
            subject: self.subject.clone(),
            tenant: self.tenant.to_string(),
            roles: self.roles.clone(),
            scopes: self.scopes.iter().collect(),
            method: self.method,
            txn: self.txn.clone(),
        }
    }

    /// `Ok` when `scope` is held everywhere, otherwise the scope that is missing.
    pub fn require(&self, scope: Scope) -> Result<(), Scope> {
        if self.scopes.has(scope) { Ok(()) } else { Err(scope) }
    }

    /// `Ok` when `scope` is held everywhere or in `pool`, otherwise the scope that is missing.
    pub fn require_in(&self, scope: Scope, pool: &str) -> Result<(), Scope> {
        if self.scopes.has(scope) || self.pool_scopes.get(pool).is_some_and(|s| s.has(scope)) {
            Ok(())
        } else {
            Err(scope)
        }
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
    fn only_admins_manage_users_and_never_grant_more_than_they_hold() {
        let tenant_admin: BTreeSet<Role> = [Role::TenantAdmin].into();
        let admin: BTreeSet<Role> = [Role::Admin].into();
        assert!(manages_users(&tenant_admin) && manages_users(&admin));
        for others in [Role::KeyManager, Role::User, Role::Service, Role::Auditor] {
            assert!(!manages_users(&[others].into()), "{others:?}");
            assert!(!may_grant(&[others].into(), Role::User), "{others:?}");
            assert!(may_grant(&tenant_admin, others) && may_grant(&admin, others));
        }
        assert!(may_grant(&tenant_admin, Role::TenantAdmin));
        assert!(!may_grant(&tenant_admin, Role::Admin));
        assert!(may_grant(&admin, Role::Admin));
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
