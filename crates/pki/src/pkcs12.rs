//! PKCS#12 bundles (key, leaf, intermediates, root) for tools that want one file, written with
//! PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) and an HMAC-SHA256 MAC, which OpenSSL 3 reads
//! without the legacy provider.

use std::path::Path;

use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
use rand::distributions::{Alphanumeric, DistString};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretString};

use crate::PkiError;
use crate::error::io_read;
use crate::store::Password;

/// Iterations for the bundle's key derivation and MAC: well above the library's 10,000
/// default, low enough that opening a bundle stays instant.
const ITERATIONS: u32 = 100_000;

/// Most bytes read from a password file: a password is one short line, and a mistaken path
/// (`/dev/zero`) must not exhaust memory.
const MAX_PASSWORD_FILE: u64 = 4096;

/// The first line of `path`, without its line ending.
pub fn read_password_file(path: &Path) -> Result<Password, PkiError> {
    use std::io::Read;
    let mut text = zeroize::Zeroizing::new(String::new());
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PASSWORD_FILE).read_to_string(&mut text))
        .map_err(io_read(path))?;
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        return Err(PkiError::EmptyPassword { path: path.to_owned() });
    }
    Ok(SecretString::from(line.to_owned()))
}

pub(crate) fn random_password() -> Password {
    SecretString::from(Alphanumeric.sample_string(&mut rand::thread_rng(), 32))
}

pub(crate) fn opens_with(path: &Path, password: &Password) -> bool {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| {
            KeyStore::from_pkcs12(&bytes, password.expose_secret(), p12_keystore::Pkcs12ImportPolicy::Relaxed)
                .ok()
        })
        .is_some()
}

/// Builds the bundle for one leaf.
pub(crate) fn bundle(
    name: &str,
    key: &PrivateKeyDer<'_>,
    chain: &[CertificateDer<'_>],
    roots: &[CertificateDer<'_>],
    password: &Password,
) -> Result<Vec<u8>, PkiError> {
    let err = |detail: String| PkiError::Pkcs12 { leaf: name.to_owned(), detail };
    let key = PrivateKey::from_der(key.secret_der()).map_err(|e| err(e.to_string()))?;
    let certs = chain
        .iter()
        .chain(roots)
        .map(|c| Certificate::from_der(c).map_err(|e| err(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let mut local_key_id = [0u8; 20];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut local_key_id);
    let mut store = KeyStore::new();
    store.add_entry(
        name,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id.to_vec(), key, certs)),
    );
    store
        .writer(password.expose_secret())
        .encryption_iterations(ITERATIONS)
        .mac_iterations(ITERATIONS)
        .write()
        .map_err(|e| err(e.to_string()))
}
