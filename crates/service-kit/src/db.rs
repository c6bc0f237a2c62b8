//! What both database engines share: the names a tenant's data lives under (a PostgreSQL schema
//! and role, a SQLite file), derived only from the canonical form of the tenant's UUID; the
//! schema-version check that refuses a database written by a newer binary; and the error of
//! opening a sealed database.

use std::fmt;

/// A tenant id in its one canonical text form (lowercase, hyphenated, 36 characters), the only
/// input from which a schema, role or file name is ever made.
///
/// Deliberately stricter than `uuid::Uuid::parse_str` (which also takes braces, URNs, upper
/// case and the simple form): one tenant must have exactly one name.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TenantKey([u8; 32]);

/// Text that is not a canonical tenant UUID.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a canonical tenant id (lowercase hyphenated UUID): {0:?}")]
pub struct NotATenantId(pub String);

impl TenantKey {
    /// Parses the canonical form only: `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lowercase hex.
    pub fn parse(text: &str) -> Result<Self, NotATenantId> {
        let bad = || NotATenantId(text.chars().take(64).collect());
        let bytes = text.as_bytes();
        if bytes.len() != 36 {
            return Err(bad());
        }
        let mut hex = [0u8; 32];
        let mut n = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if b != b'-' {
                    return Err(bad());
                }
            } else if b.is_ascii_digit() || (b'a'..=b'f').contains(&b) {
                hex[n] = b;
                n += 1;
            } else {
                return Err(bad());
            }
        }
        Ok(Self(hex))
    }

    /// The 32 hex digits.
    pub fn hex(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The canonical text form again (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`).
    pub fn canonical(&self) -> String {
        let h = self.hex();
        format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
    }

    /// The PostgreSQL schema holding this tenant's tables: `tenant_<32 hex>`.
    pub fn schema(&self) -> String {
        format!("tenant_{}", self.hex())
    }

    /// The PostgreSQL role that alone may use that schema, within `database` (roles are
    /// cluster-wide, so the database's name is part of it): `<database>_t<32 hex>`.
    pub fn role(&self, database: &Ident) -> String {
        format!("{}_t{}", database.0, self.hex())
    }

    /// The SQLite file holding this tenant's tables: `<32 hex>.db`.
    pub fn file_name(&self) -> String {
        format!("{}.db", self.hex())
    }
}

impl fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantKey({})", self.hex())
    }
}

/// A plain SQL identifier (lowercase ASCII letters, digits, `_`; starting with a letter or `_`;
/// at most 30 characters so that names built from it stay within PostgreSQL's 63), safe to
/// write into SQL text unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident(String);

/// Text that is not a plain identifier.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{0:?} is not a plain identifier (lowercase letters, digits and _, at most 30, not starting with a digit)"
)]
pub struct NotAnIdent(pub String);

impl Ident {
    /// Checks `text`.
    pub fn new(text: &str) -> Result<Self, NotAnIdent> {
        let ok = !text.is_empty()
            && text.len() <= 30
            && text.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok { Ok(Self(text.to_owned())) } else { Err(NotAnIdent(text.chars().take(64).collect())) }
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The newest migration a database has applied is one this binary does not know.
#[derive(Debug, thiserror::Error)]
#[error(
    "the database's schema is version {found}, newer than this binary knows (up to {known}): it was written by a newer release; run that release (or newer), or restore a backup made for this one"
)]
pub struct SchemaTooNew {
    /// The newest applied migration.
    pub found: i64,
    /// The newest migration of this binary.
    pub known: i64,
}

/// Refuses `applied` (the newest migration version the database records) when it is newer than
/// every migration of `migrator`.
pub fn check_schema_version(
    applied: Option<i64>,
    migrator: &sqlx::migrate::Migrator,
) -> Result<(), SchemaTooNew> {
    let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    match applied {
        Some(found) if found > known => Err(SchemaTooNew { found, known }),
        _ => Ok(()),
    }
}

/// Opening a sealed database (either engine) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealedOpenError {
    /// The shares are wrong, too few, or do not open the stored seal.
    #[error("cannot unseal")]
    Unseal(#[source] barrier::BarrierError),
    /// The database holds data but no seal: never re-seal it with whatever shares were given.
    #[error(
        "the database holds data but no seal: it is damaged or was altered; restore it from a backup or reset the demo"
    )]
    SealMissing,
    /// The database was written by a newer binary.
    #[error(transparent)]
    SchemaTooNew(#[from] SchemaTooNew),
    /// Opening, migrating or reading the SQLite database failed.
    #[error(transparent)]
    Sqlite(#[from] crate::sqlite::SqliteError),
    /// Connecting to, migrating or reading the PostgreSQL database failed.
    #[error(transparent)]
    Postgres(#[from] crate::postgres::PostgresError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_canonical_uuid_names_a_tenant() {
        let key = TenantKey::parse("0b7e6f1c-3d2a-4c5b-9e8f-0123456789ab").unwrap();
        assert_eq!(key.canonical(), "0b7e6f1c-3d2a-4c5b-9e8f-0123456789ab");
        assert_eq!(key.schema(), "tenant_0b7e6f1c3d2a4c5b9e8f0123456789ab");
        assert_eq!(key.file_name(), "0b7e6f1c3d2a4c5b9e8f0123456789ab.db");
        assert_eq!(key.role(&Ident::new("kms").unwrap()), "kms_t0b7e6f1c3d2a4c5b9e8f0123456789ab");
        let hostile = [
            "",
            "0B7E6F1C-3D2A-4C5B-9E8F-0123456789AB",
            "{0b7e6f1c-3d2a-4c5b-9e8f-0123456789ab}",
            "urn:uuid:0b7e6f1c-3d2a-4c5b-9e8f-0123456789ab",
            "0b7e6f1c3d2a4c5b9e8f0123456789ab",
            "0b7e6f1c-3d2a-4c5b-9e8f-0123456789a",
            "0b7e6f1c-3d2a-4c5b-9e8f-0123456789abc",
            "0b7e6f1c-3d2a-4c5b-9e8f-0123456789a;",
            "0b7e6f1c-3d2a-4c5b-9e8f_0123456789ab",
            "x\"; DROP SCHEMA public CASCADE; --",
            "../../../../etc/passwd.................",
            "0b7e6f1c-3d2a-4c5b-9e8f-01234567\u{0}9ab",
            "0b7e6f1c-3d2a-4c5b-9e8f-0123456789\u{e9}",
            "0b7e6f1c/3d2a/4c5b/9e8f/0123456789ab",
            "g0000000-0000-0000-0000-000000000000",
        ];
        for text in hostile {
            assert!(TenantKey::parse(text).is_err(), "{text:?} must be refused");
        }
    }

    #[test]
    fn identifiers_are_plain() {
        for ok in ["kms", "identity", "_x", "db_2"] {
            assert!(Ident::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Kms", "k-ms", "2db", "kms;", "a b", "\"kms\"", &"a".repeat(31)] {
            assert!(Ident::new(bad).is_err(), "{bad}");
        }
    }
}
