//! What to generate: the chain's shape, the key type, and the leaves.

use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::PkiError;

/// Most CAs a chain may have. Deeper chains buy nothing for a demo and every extra level is
/// another signature to check on each handshake.
pub const MAX_CHAIN_LENGTH: u8 = 5;
/// The default chain: Root → Policy → Issuing.
pub const DEFAULT_CHAIN_LENGTH: u8 = 3;
/// The default DNS domain of the services (`kms.demo.local`, …).
pub const DEFAULT_DOMAIN: &str = "demo.local";

/// The key algorithm of every certificate in the PKI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256 (the default).
    #[default]
    P256,
    /// ECDSA on P-384 with SHA-384.
    P384,
    /// RSA 2048 with PKCS#1 v1.5 SHA-256 signatures.
    Rsa2048,
    /// RSA 3072 with PKCS#1 v1.5 SHA-256 signatures.
    Rsa3072,
}

impl KeyType {
    /// Every key type, in the order `--help` lists them.
    pub const ALL: [KeyType; 4] = [Self::P256, Self::P384, Self::Rsa2048, Self::Rsa3072];

    /// The name used on the command line and in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::P256 => "p256",
            Self::P384 => "p384",
            Self::Rsa2048 => "rsa2048",
            Self::Rsa3072 => "rsa3072",
        }
    }
}

impl std::fmt::Display for KeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown key type {s:?}; expected one of p256, p384, rsa2048, rsa3072"))
    }
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeafKind {
    /// A service: EKU serverAuth and clientAuth (services also call each other over mTLS).
    Server,
    /// A client identity for mTLS: EKU clientAuth only.
    Client,
}

/// One leaf certificate to issue from the issuing CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafSpec {
    /// Directory name under `leaves/` and the handle callers use (`kms`, `identity`, `demo-cli`).
    pub name: String,
    /// Server or client.
    pub kind: LeafKind,
    /// The subject CN: an FQDN for servers (`kms.demo.local`).
    pub common_name: String,
    /// DNS SANs (the CN is always included first for servers).
    pub dns_names: Vec<String>,
    /// IP SANs.
    pub ip_addresses: Vec<IpAddr>,
}

impl LeafSpec {
    /// A service leaf: CN `{name}.{domain}`, SANs for that FQDN, the compose service name,
    /// `localhost`, `127.0.0.1` and `::1`.
    pub fn server(name: &str, domain: &str) -> Self {
        let fqdn = format!("{name}.{domain}");
        Self {
            name: name.to_owned(),
            kind: LeafKind::Server,
            dns_names: vec![fqdn.clone(), name.to_owned(), "localhost".to_owned()],
            common_name: fqdn,
            ip_addresses: vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1])],
        }
    }

    /// A client leaf for mTLS: CN `{name}.{domain}`, no IP SANs.
    pub fn client(name: &str, domain: &str) -> Self {
        let fqdn = format!("{name}.{domain}");
        Self {
            name: name.to_owned(),
            kind: LeafKind::Client,
            dns_names: vec![fqdn.clone()],
            common_name: fqdn,
            ip_addresses: Vec::new(),
        }
    }
}

/// Validity periods, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validity {
    /// The root CA.
    pub root_days: u32,
    /// Intermediate CAs (policy, issuing).
    pub intermediate_days: u32,
    /// Leaves. 200 days follows the CA/Browser Forum's ceiling for public server certificates
    /// from March 2026 (ballot SC-081); private roots are not bound by it, but short is good.
    pub leaf_days: u32,
}

impl Default for Validity {
    fn default() -> Self {
        Self { root_days: 3650, intermediate_days: 1825, leaf_days: 200 }
    }
}

/// Everything that decides what the PKI looks like. Two runs with equal specs may reuse each
/// other's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PkiSpec {
    /// Number of CAs, root included (1..=[`MAX_CHAIN_LENGTH`]).
    pub chain_length: u8,
    /// Key algorithm for every certificate.
    pub key_type: KeyType,
    /// Organisation written into every subject.
    pub organization: String,
    /// Validity periods.
    pub validity: Validity,
    /// The leaves to issue.
    pub leaves: Vec<LeafSpec>,
}

impl PkiSpec {
    /// The demo's PKI: a 3-CA chain, P-256, server leaves for `kms` and `identity` and a client
    /// leaf for the CLI, all under [`DEFAULT_DOMAIN`].
    pub fn demo() -> Self {
        Self::for_services(DEFAULT_DOMAIN, &["kms", "identity"], &["demo-cli"])
    }

    /// A PKI with server leaves for `services` and client leaves for `clients` under `domain`.
    pub fn for_services(domain: &str, services: &[&str], clients: &[&str]) -> Self {
        let mut leaves: Vec<LeafSpec> = services.iter().map(|s| LeafSpec::server(s, domain)).collect();
        leaves.extend(clients.iter().map(|c| LeafSpec::client(c, domain)));
        Self {
            chain_length: DEFAULT_CHAIN_LENGTH,
            key_type: KeyType::P256,
            organization: "Demo Security Services".to_owned(),
            validity: Validity::default(),
            leaves,
        }
    }

    /// The leaf called `name`, if the spec has one.
    pub fn leaf(&self, name: &str) -> Option<&LeafSpec> {
        self.leaves.iter().find(|l| l.name == name)
    }

    /// Checks the spec before anything is generated or written.
    pub fn validate(&self) -> Result<(), PkiError> {
        if !(1..=MAX_CHAIN_LENGTH).contains(&self.chain_length) {
            return Err(PkiError::ChainLength { got: self.chain_length, max: MAX_CHAIN_LENGTH });
        }
        let v = &self.validity;
        for (what, days) in
            [("the root CA", v.root_days), ("intermediate CAs", v.intermediate_days), ("leaves", v.leaf_days)]
        {
            if days == 0 {
                return Err(PkiError::Validity { what });
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for leaf in &self.leaves {
            check_leaf_name(&leaf.name)?;
            if !seen.insert(leaf.name.as_str()) {
                return Err(PkiError::DuplicateLeaf { name: leaf.name.clone() });
            }
            for dns in std::iter::once(&leaf.common_name).chain(&leaf.dns_names) {
                check_dns_name(dns)?;
            }
            if leaf.common_name.len() > 64 {
                return Err(PkiError::InvalidName {
                    what: "a common name",
                    name: leaf.common_name.clone(),
                    reason: "RFC 5280 limits a CN to 64 characters; use a shorter --domain or name"
                        .to_owned(),
                });
            }
        }
        Ok(())
    }

    /// The display names of the CAs, root first: Root, Policy…, Issuing.
    pub fn ca_names(&self) -> Vec<String> {
        ca_names(self.chain_length)
    }
}

pub(crate) fn ca_names(len: u8) -> Vec<String> {
    let len = usize::from(len);
    (0..len)
        .map(|i| match (i, len) {
            (0, _) => "Root".to_owned(),
            (i, len) if i + 1 == len => "Issuing".to_owned(),
            (1, _) => "Policy".to_owned(),
            (i, _) => format!("Policy {i}"),
        })
        .collect()
}

/// Leaf names become directory names: keep them boring.
fn check_leaf_name(name: &str) -> Result<(), PkiError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(PkiError::InvalidName {
            what: "a leaf",
            name: name.to_owned(),
            reason: "use 1 to 63 lowercase letters, digits and '-', not starting with '-'".to_owned(),
        })
    }
}

fn check_dns_name(name: &str) -> Result<(), PkiError> {
    let bad = |reason: &str| PkiError::InvalidName {
        what: "a DNS name",
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name.is_empty() || name.len() > 253 {
        return Err(bad("a DNS name has 1 to 253 characters"));
    }
    for label in name.split('.') {
        let valid = !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            return Err(bad("each label needs 1 to 63 letters, digits or inner '-'"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_names_follow_the_chain_shape() {
        assert_eq!(ca_names(1), ["Root"]);
        assert_eq!(ca_names(2), ["Root", "Issuing"]);
        assert_eq!(ca_names(3), ["Root", "Policy", "Issuing"]);
        assert_eq!(ca_names(5), ["Root", "Policy", "Policy 2", "Policy 3", "Issuing"]);
    }

    #[test]
    fn chain_length_zero_and_ten_are_refused() {
        for len in [0, 6, 10] {
            let spec = PkiSpec { chain_length: len, ..PkiSpec::demo() };
            let err = spec.validate().unwrap_err();
            assert!(matches!(err, PkiError::ChainLength { got, .. } if got == len), "{err}");
            assert!(err.to_string().contains("1 to 5"), "{err}");
        }
    }

    #[test]
    fn bad_names_are_refused() {
        let mut spec = PkiSpec::demo();
        spec.leaves.push(LeafSpec::server("../etc", "demo.local"));
        assert!(matches!(spec.validate(), Err(PkiError::InvalidName { .. })));

        let mut spec = PkiSpec::demo();
        spec.leaves.push(LeafSpec::server("kms", "demo.local"));
        assert!(matches!(spec.validate(), Err(PkiError::DuplicateLeaf { .. })));

        let spec = PkiSpec::for_services("bad_domain..", &["kms"], &[]);
        assert!(matches!(spec.validate(), Err(PkiError::InvalidName { .. })));

        let long = format!("{}.example", "a".repeat(60));
        let err = PkiSpec::for_services(&long, &["kms"], &[]).validate().unwrap_err();
        assert!(err.to_string().contains("64 characters"), "{err}");
    }

    #[test]
    fn key_types_parse_case_insensitively() {
        assert_eq!("P384".parse::<KeyType>(), Ok(KeyType::P384));
        assert!("dsa".parse::<KeyType>().unwrap_err().contains("p256"));
    }

    #[test]
    fn server_leaves_carry_every_name_compose_and_loopback_need() {
        let leaf = LeafSpec::server("kms", "demo.local");
        assert_eq!(leaf.common_name, "kms.demo.local");
        assert_eq!(leaf.dns_names, ["kms.demo.local", "kms", "localhost"]);
        assert_eq!(leaf.ip_addresses.len(), 2);
    }
}
