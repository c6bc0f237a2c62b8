//! The demo's public-key infrastructure: CA chains (Root → Policy → Issuing by default), server
//! and client leaves, PEM and PKCS#12 output, idempotent materialisation into a state directory,
//! and rustls configurations that speak TLS 1.3 only and trust our CA only.
//!
//! What it must not do: link OpenSSL (aws-lc-rs does the crypto), issue self-signed leaves,
//! overwrite a directory it did not write, or leave half-written files behind on failure.
//!
//! ```no_run
//! let spec = pki::PkiSpec::demo();
//! let pki = pki::ensure(std::path::Path::new("state/pki"), &spec, &Default::default())?;
//! let server = pki::server_config_for(&pki.dir, "kms", pki::ClientAuth::None)?;
//! let client = pki::client_config_for(&pki.dir, None)?;
//! # Ok::<(), pki::PkiError>(())
//! ```

mod error;
mod generate;
pub mod load;
mod pkcs12;
mod spec;
mod store;
mod tls;

pub use error::PkiError;
pub use generate::{GeneratedPki, Issued};
pub use pkcs12::read_password_file;
pub use spec::{
    DEFAULT_CHAIN_LENGTH, DEFAULT_DOMAIN, KeyType, LeafKind, LeafSpec, MAX_CHAIN_LENGTH, PkiSpec, Validity,
};
pub use store::{
    EnsureOptions, LeafPaths, MANIFEST_FORMAT, Manifest, ManifestEntry, Materialized, Pkcs12Password, PkiDir,
    ensure,
};
pub use tls::{
    ClientAuth, ClientTlsFiles, PROTOCOL_VERSIONS, ServerTlsFiles, client_config_for, provider,
    server_config_for,
};
