//! Issuing the chain and the leaves in memory. Nothing here touches the disk; [`crate::store`]
//! writes what this produces.

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use secrecy::SecretString;
use time::{Duration, OffsetDateTime};

use crate::PkiError;
use crate::spec::{KeyType, LeafKind, LeafSpec, PkiSpec};

/// Certificates start a few minutes in the past so that a peer whose clock lags a little does
/// not see them as not yet valid.
const BACKDATE: Duration = Duration::minutes(5);

/// A certificate with its private key, as PEM.
pub struct Issued {
    /// Display name (`Root`, `Issuing`, or the leaf's name).
    pub name: String,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate, DER.
    pub cert_der: CertificateDer<'static>,
    /// The PKCS#8 private key, PEM.
    pub key_pem: SecretString,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("name", &self.name)
            .field("key_pem", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// A whole PKI in memory: the CAs (root first) and the leaves, in spec order.
#[derive(Debug)]
pub struct GeneratedPki {
    /// The spec it was generated from.
    pub spec: PkiSpec,
    /// A short random id, part of every CA's name.
    pub id: String,
    /// When it was generated.
    pub created_at: OffsetDateTime,
    /// CAs, root first, issuing CA last.
    pub cas: Vec<Issued>,
    /// Leaves, in the spec's order.
    pub leaves: Vec<Issued>,
}

impl GeneratedPki {
    /// Generates everything the spec asks for, valid from now.
    pub fn generate(spec: &PkiSpec) -> Result<Self, PkiError> {
        Self::generate_at(spec, OffsetDateTime::now_utc())
    }

    /// Generates as if the clock read `now`; tests use it to make expired certificates.
    pub fn generate_at(spec: &PkiSpec, now: OffsetDateTime) -> Result<Self, PkiError> {
        spec.validate()?;
        let names = spec.ca_names();
        // Every PKI gets its own CA names: two demo runs never produce look-alike issuers, so a
        // certificate from another run fails as "unknown issuer" rather than "bad signature".
        let pki_id = {
            let mut id = [0u8; 4];
            rand::thread_rng().fill_bytes(&mut id);
            hex::encode(id)
        };
        let len = names.len();
        let mut cas = Vec::with_capacity(len);
        // The issuer of the next certificate: its params (for the subject and key id) and key.
        let mut issuer: Option<(Issuer<'static, KeyPair>, OffsetDateTime)> = None;

        for (depth, name) in names.iter().enumerate() {
            let key = new_key(spec.key_type, name)?;
            let days = if depth == 0 { spec.validity.root_days } else { spec.validity.intermediate_days };
            let mut params = CertificateParams::default();
            params.distinguished_name = subject(&spec.organization, &format!("Demo {name} CA {pki_id}"));
            // pathLenConstraint: how many CAs may still follow below this one.
            let path_len = u8::try_from(len - 1 - depth).unwrap_or(u8::MAX);
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            params.serial_number = Some(random_serial());
            params.not_before = now - BACKDATE;
            params.not_after = now + Duration::days(i64::from(days));
            params.use_authority_key_identifier_extension = depth > 0;
            if let Some((_, issuer_not_after)) = &issuer {
                params.not_after = params.not_after.min(*issuer_not_after);
            }

            let what = format!("the {name} CA certificate");
            let cert = match &issuer {
                None => params.self_signed(&key),
                Some((iss, _)) => params.signed_by(&key, iss),
            }
            .map_err(|source| PkiError::Generate { what, source })?;

            cas.push(Issued {
                name: name.clone(),
                cert_pem: cert.pem(),
                cert_der: cert.der().clone(),
                key_pem: SecretString::from(key.serialize_pem()),
            });
            let not_after = params.not_after;
            issuer = Some((Issuer::new(params, key), not_after));
        }

        let (issuing, issuing_not_after) = match issuer {
            Some(i) => i,
            // validate() guarantees at least one CA.
            None => return Err(PkiError::ChainLength { got: 0, max: crate::spec::MAX_CHAIN_LENGTH }),
        };
        let leaves = spec
            .leaves
            .iter()
            .map(|leaf| issue_leaf(spec, leaf, &issuing, now, issuing_not_after))
            .collect::<Result<Vec<_>, _>>()?;

        Ok(Self { spec: spec.clone(), id: pki_id, created_at: now, cas, leaves })
    }
}

fn issue_leaf(
    spec: &PkiSpec,
    leaf: &LeafSpec,
    issuer: &Issuer<'_, KeyPair>,
    now: OffsetDateTime,
    issuer_not_after: OffsetDateTime,
) -> Result<Issued, PkiError> {
    let key = new_key(spec.key_type, &leaf.name)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(&spec.organization, &leaf.common_name);
    params.is_ca = IsCa::ExplicitNoCa;
    // TLS 1.3 has no RSA key transport, so even RSA leaves need only digitalSignature.
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match leaf.kind {
        LeafKind::Server => vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
        LeafKind::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    let mut sans = Vec::new();
    let mut dns: Vec<&String> = Vec::new();
    for name in std::iter::once(&leaf.common_name).chain(&leaf.dns_names) {
        if !dns.contains(&name) {
            dns.push(name);
        }
    }
    for name in dns {
        let ia5 = name.clone().try_into().map_err(|source| PkiError::Generate {
            what: format!("the DNS name {name:?} of leaf {}", leaf.name),
            source,
        })?;
        sans.push(SanType::DnsName(ia5));
    }
    sans.extend(leaf.ip_addresses.iter().copied().map(SanType::IpAddress));
    params.subject_alt_names = sans;
    params.serial_number = Some(random_serial());
    params.not_before = now - BACKDATE;
    params.not_after = (now + Duration::days(i64::from(spec.validity.leaf_days))).min(issuer_not_after);
    params.use_authority_key_identifier_extension = true;

    let cert = params.signed_by(&key, issuer).map_err(|source| PkiError::Generate {
        what: format!("the certificate of leaf {}", leaf.name),
        source,
    })?;
    Ok(Issued {
        name: leaf.name.clone(),
        cert_pem: cert.pem(),
        cert_der: cert.der().clone(),
        key_pem: SecretString::from(key.serialize_pem()),
    })
}

fn new_key(key_type: KeyType, owner: &str) -> Result<KeyPair, PkiError> {
    let key = match key_type {
        KeyType::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyType::P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyType::Rsa2048 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048),
        KeyType::Rsa3072 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_3072),
    };
    key.map_err(|source| PkiError::Generate { what: format!("a {key_type} key for {owner}"), source })
}

fn subject(org: &str, cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, org);
    dn.push(DnType::CommonName, cn);
    dn
}

/// 16 random bytes, positive and without a leading zero byte so the DER INTEGER is minimal
/// (RFC 5280 §4.1.2.2: positive, at most 20 octets, unpredictable).
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::*;

    fn parse(der: &[u8]) -> X509Certificate<'_> {
        X509Certificate::from_der(der).unwrap().1
    }

    #[test]
    fn chain_has_path_lengths_key_usage_and_key_ids() {
        let pki = GeneratedPki::generate(&PkiSpec::demo()).unwrap();
        assert_eq!(pki.cas.len(), 3);
        for (depth, ca) in pki.cas.iter().enumerate() {
            let cert = parse(&ca.cert_der);
            let bc = cert.basic_constraints().unwrap().unwrap();
            assert!(bc.critical);
            assert!(bc.value.ca);
            assert_eq!(bc.value.path_len_constraint, Some(2 - depth as u32));
            let ku = cert.key_usage().unwrap().unwrap().value;
            assert!(ku.key_cert_sign() && ku.crl_sign());
            assert!(
                cert.get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
                    .unwrap()
                    .is_some()
            );
            assert_eq!(
                cert.get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER)
                    .unwrap()
                    .is_some(),
                depth > 0
            );
        }
        let root = parse(&pki.cas[0].cert_der);
        assert_eq!(root.subject(), root.issuer());
    }

    #[test]
    fn leaves_are_never_self_signed_and_carry_eku_and_sans() {
        let pki = GeneratedPki::generate(&PkiSpec::demo()).unwrap();
        let issuing = parse(&pki.cas[2].cert_der);
        for leaf in &pki.leaves {
            let cert = parse(&leaf.cert_der);
            assert_ne!(cert.subject(), cert.issuer());
            assert_eq!(cert.issuer(), issuing.subject());
            assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
            let eku = cert.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.client_auth);
            assert_eq!(eku.server_auth, leaf.name != "demo-cli");
            assert!(cert.validity().not_after <= issuing.validity().not_after);
        }
        let kms = parse(&pki.leaves[0].cert_der);
        let san = kms.subject_alternative_name().unwrap().unwrap().value;
        let names = &san.general_names;
        assert!(names.contains(&GeneralName::DNSName("kms.demo.local")), "{names:?}");
        assert!(names.contains(&GeneralName::DNSName("kms")), "{names:?}");
        assert!(names.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])), "{names:?}");
        let v6_loopback = std::net::Ipv6Addr::LOCALHOST.octets();
        assert!(names.contains(&GeneralName::IPAddress(&v6_loopback)), "{names:?}");
    }

    #[test]
    fn serials_are_unique_and_positive() {
        let a = random_serial().to_bytes();
        let b = random_serial().to_bytes();
        assert_ne!(a, b);
        assert!(a[0] & 0x80 == 0 && a[0] != 0);
    }

    #[test]
    fn every_key_type_generates() {
        for key_type in KeyType::ALL {
            let spec =
                PkiSpec { chain_length: 1, key_type, ..PkiSpec::for_services("demo.local", &["kms"], &[]) };
            let pki = GeneratedPki::generate(&spec).unwrap();
            assert_eq!(pki.cas.len(), 1);
            assert_eq!(pki.leaves.len(), 1);
        }
    }
}
