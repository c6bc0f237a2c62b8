//! Reading certificates and keys back from disk, with errors that say which file is wrong and
//! how: not PEM, not a certificate, expired, key from another run, chain broken.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::PkiError;
use crate::error::io_read;

/// What a certificate must be good for when its chain is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// EKU serverAuth.
    Server,
    /// EKU clientAuth.
    Client,
}

/// Certificates read from one PEM file, in file order.
#[derive(Debug, Clone)]
pub struct CertFile {
    /// Where they came from.
    pub path: PathBuf,
    /// The certificates, in file order.
    pub certs: Vec<CertificateDer<'static>>,
}

/// Reads every `CERTIFICATE` block of a PEM file, checking that each parses as X.509.
pub fn read_certs(path: &Path) -> Result<CertFile, PkiError> {
    let bytes = std::fs::read(path).map_err(io_read(path))?;
    let mut certs = Vec::new();
    for (index, item) in PemObject::pem_slice_iter(&bytes).enumerate() {
        let (kind, der): (SectionKind, Vec<u8>) = item.map_err(|e| PkiError::BadCertificate {
            path: path.to_owned(),
            index: index + 1,
            detail: pem_problem(&e),
        })?;
        if kind != SectionKind::Certificate {
            continue;
        }
        X509Certificate::from_der(&der).map_err(|e| PkiError::BadCertificate {
            path: path.to_owned(),
            index: index + 1,
            detail: e.to_string(),
        })?;
        certs.push(CertificateDer::from(der));
    }
    if certs.is_empty() {
        return Err(PkiError::NotPem { path: path.to_owned(), expected: "CERTIFICATE" });
    }
    Ok(CertFile { path: path.to_owned(), certs })
}

/// Reads the first private key (PKCS#8, SEC1 or PKCS#1) of a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    let bytes = std::fs::read(path).map_err(io_read(path))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            PkiError::NotPem { path: path.to_owned(), expected: "PRIVATE KEY" }
        }
        other => PkiError::BadKey { path: path.to_owned(), detail: pem_problem(&other) },
    })
}

/// A PEM parse error in words (the library's own messages print markers as byte arrays).
fn pem_problem(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { .. } => "a PEM block has no END line: the file is truncated".to_owned(),
        E::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed".to_owned(),
        E::Base64Decode(detail) => format!("a PEM block is not valid base64 ({detail})"),
        E::Io(io) => format!("read error: {io}"),
        other => format!("malformed PEM ({other:?})"),
    }
}

/// Checks every certificate of the file against the clock.
pub fn check_validity(file: &CertFile, now: OffsetDateTime) -> Result<(), PkiError> {
    for (index, der) in file.certs.iter().enumerate() {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| PkiError::BadCertificate {
            path: file.path.clone(),
            index: index + 1,
            detail: e.to_string(),
        })?;
        let validity = cert.validity();
        let subject = cert.subject().to_string();
        if now > validity.not_after.to_datetime() {
            return Err(PkiError::Expired {
                path: file.path.clone(),
                subject,
                not_after: validity.not_after.to_string(),
            });
        }
        if now < validity.not_before.to_datetime() {
            return Err(PkiError::NotYetValid {
                path: file.path.clone(),
                subject,
                not_before: validity.not_before.to_string(),
            });
        }
    }
    Ok(())
}

/// Loads `key` with the provider and checks that it is the key of the first certificate.
pub fn certified_key(
    chain: &CertFile,
    key_path: &Path,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, PkiError> {
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| PkiError::BadKey { path: key_path.to_owned(), detail: e.to_string() })?;
    let certified = CertifiedKey::new(chain.certs.clone(), signing);
    match certified.keys_match() {
        Ok(()) => Ok(Arc::new(certified)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(PkiError::KeyMismatch { cert: chain.path.clone(), key: key_path.to_owned() })
        }
        Err(e) => Err(PkiError::BadKey { path: key_path.to_owned(), detail: e.to_string() }),
    }
}

/// Verifies that the first certificate of `chain` (followed by its intermediates) leads to one
/// of the roots in `ca` and is good for `usage`, at `now`. Names are not checked here: the
/// TLS handshake does that.
pub fn verify_chain(
    chain: &CertFile,
    ca: &CertFile,
    usage: Usage,
    provider: &CryptoProvider,
    now: OffsetDateTime,
) -> Result<(), PkiError> {
    let broken =
        |detail: String| PkiError::ChainBroken { path: chain.path.clone(), ca: ca.path.clone(), detail };
    let anchors = ca
        .certs
        .iter()
        .map(|c| webpki::anchor_from_trusted_cert(c).map(|a| a.to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| broken(format!("the CA file holds a certificate that cannot be a trust anchor: {e}")))?;
    let Some((leaf, intermediates)) = chain.certs.split_first() else {
        return Err(PkiError::NotPem { path: chain.path.clone(), expected: "CERTIFICATE" });
    };
    let end_entity = webpki::EndEntityCert::try_from(leaf).map_err(|e| broken(e.to_string()))?;
    let seconds = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds));
    let eku = match usage {
        Usage::Server => webpki::KeyUsage::server_auth(),
        Usage::Client => webpki::KeyUsage::client_auth(),
    };
    end_entity
        .verify_for_usage(
            provider.signature_verification_algorithms.all,
            &anchors,
            intermediates,
            time,
            eku,
            None,
            None,
        )
        .map(|_| ())
        .map_err(|e| {
            broken(match e {
                webpki::Error::UnknownIssuer => {
                    "no path to the CA: the certificate was issued by another CA (wrong CA bundle, or files from different runs)".to_owned()
                }
                webpki::Error::RequiredEkuNotFoundContext(_) => {
                    format!("the certificate is not allowed for {usage:?} use (extended key usage)")
                }
                webpki::Error::InvalidSignatureForPublicKey => {
                    "a signature in the chain does not match its issuer's key: the files come from different runs".to_owned()
                }
                other => other.to_string(),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(contents: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(contents).unwrap();
        f
    }

    #[test]
    fn empty_and_non_pem_files_say_so() {
        let f = file_with(b"hello, not a certificate\n");
        let err = read_certs(f.path()).unwrap_err();
        assert!(matches!(err, PkiError::NotPem { .. }), "{err}");
        assert!(err.to_string().contains(&f.path().display().to_string()));
        let err = read_key(f.path()).unwrap_err();
        assert!(matches!(err, PkiError::NotPem { .. }), "{err}");
    }

    #[test]
    fn a_pem_block_that_is_not_a_certificate_names_its_index() {
        let f = file_with(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        let err = read_certs(f.path()).unwrap_err();
        assert!(matches!(err, PkiError::BadCertificate { index: 1, .. }), "{err}");
    }

    #[test]
    fn a_truncated_file_says_so_in_words() {
        let f = file_with(b"-----BEGIN CERTIFICATE-----\nMIIB\n");
        let err = read_certs(f.path()).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        assert!(!err.to_string().contains("[45, 45"), "{err}");
    }

    #[test]
    fn missing_files_name_the_path() {
        let err = read_certs(Path::new("/nonexistent/cert.pem")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
    }
}
