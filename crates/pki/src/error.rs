//! The one error type of the crate. Every variant names the file or input that failed and, in
//! its message, what to do about it.

use std::path::PathBuf;

/// Everything that can go wrong while generating, storing or loading PKI material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    #[error(
        "chain length {got} is out of range: a chain has 1 to {max} CAs (root included); the default is 3"
    )]
    ChainLength { got: u8, max: u8 },

    #[error("invalid name {name:?} for {what}: {reason}")]
    InvalidName { what: &'static str, name: String, reason: String },

    #[error("leaf name {name:?} is used twice; every leaf needs its own name")]
    DuplicateLeaf { name: String },

    #[error("validity for {what} must be at least one day")]
    Validity { what: &'static str },

    #[error("generating {what} failed")]
    Generate {
        what: String,
        #[source]
        source: rcgen::Error,
    },

    #[error("cannot use {path} as the output directory: {reason}")]
    OutPath { path: PathBuf, reason: String },

    #[error("{path} was changed after it was generated: it no longer holds {expected}")]
    Modified { path: PathBuf, expected: &'static str },

    #[error("{path} is a symbolic link; a PKI directory holds only regular files and directories")]
    Symlink { path: PathBuf },

    #[error(
        "{path} is accessible to other users (mode {mode:o}); private keys must be 0600 and directories 0700: run `chmod -R go-rwx {root}`"
    )]
    Permissions { path: PathBuf, mode: u32, root: PathBuf },

    #[error("cannot use {path} as the output directory")]
    OutDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{path} already exists and is not a PKI directory this tool wrote (no manifest.json); refusing to write into it, choose an empty or new directory"
    )]
    ForeignDir { path: PathBuf },

    #[error(
        "{path} holds a PKI made with different settings ({detail}); remove the directory (or run with --reset-demo) to regenerate it"
    )]
    SpecMismatch { path: PathBuf, detail: String },

    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path} is not valid: {detail}")]
    Manifest { path: PathBuf, detail: String },

    #[error("{path} holds no PEM {expected} block; is it the right file, and is it PEM rather than DER?")]
    NotPem { path: PathBuf, expected: &'static str },

    #[error("{path}: PEM block {index} is not a valid X.509 certificate ({detail}); regenerate the file")]
    BadCertificate { path: PathBuf, index: usize, detail: String },

    #[error("{path}: the private key cannot be used ({detail}); regenerate the file")]
    BadKey { path: PathBuf, detail: String },

    #[error(
        "{path}: certificate {subject:?} expired at {not_after}; regenerate the PKI (demo --reset-demo, or remove the directory)"
    )]
    Expired { path: PathBuf, subject: String, not_after: String },

    #[error("{path}: certificate {subject:?} is not valid before {not_before}; check the system clock")]
    NotYetValid { path: PathBuf, subject: String, not_before: String },

    #[error(
        "the private key in {key} does not belong to the certificate in {cert}; the two files come from different runs, regenerate them together"
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },

    #[error("{path}: the certificate does not chain to the CA in {ca}: {detail}")]
    ChainBroken { path: PathBuf, ca: PathBuf, detail: String },

    #[error("building the TLS configuration failed: {detail}")]
    Tls { detail: String },

    #[error("reading the system trust store failed: {detail}")]
    SystemRoots { detail: String },

    #[error("writing PKCS#12 for {leaf} failed: {detail}")]
    Pkcs12 { leaf: String, detail: String },

    #[error("the PKCS#12 password file {path} is empty; put the password on its first line")]
    EmptyPassword { path: PathBuf },
}

pub(crate) fn io_read(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> PkiError {
    let path = path.into();
    move |source| PkiError::Read { path, source }
}

pub(crate) fn io_write(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> PkiError {
    let path = path.into();
    move |source| PkiError::Write { path, source }
}
