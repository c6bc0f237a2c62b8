//! What the sign-in and consent page says in words: a description for each scope (the seed's
//! `scopes:` section over built-in texts for the standard OpenID Connect scopes) and the names
//! of tenants (from the tenants file), so a person reads "Encrypt data with your organisation's
//! keys" for `kms:encrypt` and "acme" rather than a UUID.

use std::collections::BTreeMap;

/// Descriptions of the standard OpenID Connect scopes (OIDC Core §5.4, §11). A seed may
/// replace them.
const STANDARD: [(&str, &str); 4] = [
    ("openid", "Confirm who you are (your user ID) to the application"),
    ("profile", "See your name and username"),
    ("email", "See your e-mail address"),
    ("offline_access", "Stay connected while you are away (a refresh token)"),
];

/// Longest scope description a seed may set (it is one line of a list on a narrow screen).
pub const MAX_DESCRIPTION: usize = 120;

/// Longest display name a seed may give a client.
pub const MAX_DISPLAY_NAME: usize = 64;

/// The page's words; empty (built-in descriptions only, tenant ids as they are) without a seed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsentText {
    /// Scope → description, from the seed.
    pub scopes: BTreeMap<String, String>,
    /// Tenant id → tenant name, from the tenants file.
    pub tenants: BTreeMap<String, String>,
}

impl ConsentText {
    /// What `scope` lets the application do, in words; `None` when nobody described it (the
    /// page then shows the raw scope name).
    pub fn describe(&self, scope: &str) -> Option<&str> {
        self.scopes
            .get(scope)
            .map(String::as_str)
            .or_else(|| STANDARD.iter().find(|(name, _)| *name == scope).map(|(_, text)| *text))
    }

    /// The tenant's name, or its id when the name is not known.
    pub fn tenant<'a>(&'a self, tenant_id: &'a str) -> &'a str {
        self.tenants.get(tenant_id).map_or(tenant_id, String::as_str)
    }
}

/// Whether `scope` is a valid scope token (RFC 6749 §3.3: printable ASCII except space, `"`
/// and `\`).
pub fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Why a text a person will read is unfit, if it is: empty, too long, or holding control or
/// bidirectional-override characters (which could make the page say something else than the
/// text reads).
pub fn text_problem(text: &str, max: usize) -> Option<String> {
    if text.trim().is_empty() {
        return Some("must not be empty".into());
    }
    if text.chars().count() > max {
        return Some(format!("must be at most {max} characters"));
    }
    if text.chars().any(|c| {
        c.is_control() || ('\u{202A}'..='\u{202E}').contains(&c) || ('\u{2066}'..='\u{2069}').contains(&c)
    }) {
        return Some("must be one line without control or bidirectional-override characters".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_descriptions_win_over_built_ins_and_unknown_scopes_have_none() {
        let mut text = ConsentText::default();
        assert_eq!(text.describe("email"), Some("See your e-mail address"));
        assert_eq!(text.describe("kms:encrypt"), None);
        text.scopes.insert("email".into(), "Your address".into());
        text.scopes.insert("kms:encrypt".into(), "Encrypt".into());
        assert_eq!(text.describe("email"), Some("Your address"));
        assert_eq!(text.describe("kms:encrypt"), Some("Encrypt"));
    }

    #[test]
    fn tenants_show_their_name_or_else_their_id() {
        let mut text = ConsentText::default();
        text.tenants.insert("0b6f".into(), "acme".into());
        assert_eq!(text.tenant("0b6f"), "acme");
        assert_eq!(text.tenant("9999"), "9999");
    }

    #[test]
    fn scope_tokens_follow_rfc_6749() {
        for good in ["openid", "kms:encrypt", "a/b#c", "~!"] {
            assert!(is_scope_token(good), "{good}");
        }
        for bad in ["", "a b", "a\"b", "a\\b", "é", "a\tb"] {
            assert!(!is_scope_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn unfit_texts_say_why() {
        assert_eq!(text_problem("Encrypt data", 20), None);
        assert!(text_problem("  ", 20).unwrap().contains("empty"));
        assert!(text_problem(&"x".repeat(21), 20).unwrap().contains("at most 20"));
        assert!(text_problem("two\nlines", 20).unwrap().contains("one line"));
        assert!(text_problem("evil\u{202E}txt", 20).unwrap().contains("bidirectional"));
        assert_eq!(text_problem("Zürich – ünïcode", 20), None);
    }
}
