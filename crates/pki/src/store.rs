//! The on-disk layout of a PKI and its idempotent materialisation: generated once, checked and
//! reused on every later run, replaced only when the caller removes it.
//!
//! ```text
//! DIR/
//!   .gitignore            "*": nothing generated is ever committed
//!   manifest.json         the spec, what was written, certificate fingerprints
//!   ca-bundle.pem         the root: what clients trust
//!   intermediates.pem     the CAs below the root, issuing CA first
//!   ca/<root|policy|issuing>/{cert.pem,key.pem}
//!   leaves/<name>/{cert.pem,key.pem,chain.pem,fullchain.pem[,bundle.p12]}
//!   pkcs12-password.txt   only when --pkcs12 generated the password
//! ```
//!
//! Files are 0600 and directories 0700. A new PKI is written into a temporary sibling
//! directory and renamed into place, so a failure leaves nothing half-written behind.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{io_read, io_write};
use crate::generate::{GeneratedPki, Issued};
use crate::load::{self, Usage};
use crate::spec::{LeafKind, PkiSpec};
use crate::{PkiError, pkcs12, tls};
use rustls_pki_types::pem::PemObject;

/// Version of the manifest layout; bumped when the layout changes incompatibly.
pub const MANIFEST_FORMAT: u32 = 1;

/// Paths inside a PKI directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiDir {
    root: PathBuf,
}

/// Paths of one leaf's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafPaths {
    /// The leaf's directory.
    pub dir: PathBuf,
    /// The leaf certificate alone.
    pub cert: PathBuf,
    /// Its private key (PKCS#8).
    pub key: PathBuf,
    /// The intermediates, issuing CA first (what a server sends after its leaf).
    pub chain: PathBuf,
    /// Leaf followed by the intermediates: what servers load.
    pub fullchain: PathBuf,
    /// PKCS#12 bundle (key, leaf, chain, root), when requested.
    pub pkcs12: PathBuf,
}

impl PkiDir {
    /// A PKI directory at `root` (nothing is read or created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `manifest.json`.
    pub fn manifest(&self) -> PathBuf {
        self.root.join("manifest.json")
    }
    /// The root certificate: what clients trust.
    pub fn ca_bundle(&self) -> PathBuf {
        self.root.join("ca-bundle.pem")
    }
    /// The intermediate CAs, issuing CA first.
    pub fn intermediates(&self) -> PathBuf {
        self.root.join("intermediates.pem")
    }
    /// A CA's directory, by display name (`Root`, `Policy 2`, `Issuing`).
    pub fn ca(&self, name: &str) -> (PathBuf, PathBuf) {
        let dir = self.root.join("ca").join(name.to_ascii_lowercase().replace(' ', "-"));
        (dir.join("cert.pem"), dir.join("key.pem"))
    }
    /// A leaf's files.
    pub fn leaf(&self, name: &str) -> LeafPaths {
        let dir = self.root.join("leaves").join(name);
        LeafPaths {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            chain: dir.join("chain.pem"),
            fullchain: dir.join("fullchain.pem"),
            pkcs12: dir.join("bundle.p12"),
            dir,
        }
    }
    /// Where a generated PKCS#12 password is kept.
    pub fn pkcs12_password(&self) -> PathBuf {
        self.root.join("pkcs12-password.txt")
    }

    /// Reads the manifest.
    pub fn read_manifest(&self) -> Result<Manifest, PkiError> {
        let path = self.manifest();
        let bytes = fs::read(&path).map_err(io_read(&path))?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| PkiError::Manifest { path: path.clone(), detail: e.to_string() })?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(PkiError::Manifest {
                path,
                detail: format!(
                    "format {} is not the supported format {MANIFEST_FORMAT}; regenerate the PKI",
                    manifest.format
                ),
            });
        }
        Ok(manifest)
    }

    /// Checks the whole directory against the manifest: the CA and leaf lists match the spec,
    /// nothing is a symlink or readable by other users, every certificate has the recorded
    /// fingerprint, is in its validity period and pairs with its key, every derived file
    /// (`ca-bundle.pem`, `intermediates.pem`, `chain.pem`, `fullchain.pem`) is byte-for-byte
    /// what generation wrote, and every leaf chains to the root. The first problem is returned.
    pub fn verify(&self, manifest: &Manifest) -> Result<(), PkiError> {
        let spec = &manifest.spec;
        spec.validate()?;
        let bad_manifest = |detail: String| PkiError::Manifest { path: self.manifest(), detail };
        let ca_names: Vec<&str> = manifest.cas.iter().map(|c| c.name.as_str()).collect();
        if ca_names != spec.ca_names() {
            return Err(bad_manifest(format!(
                "lists the CAs {ca_names:?}, but the spec has {:?}",
                spec.ca_names()
            )));
        }
        let leaf_names: Vec<&str> = manifest.leaves.iter().map(|l| l.name.as_str()).collect();
        let spec_names: Vec<&str> = spec.leaves.iter().map(|l| l.name.as_str()).collect();
        if leaf_names != spec_names {
            return Err(bad_manifest(format!(
                "lists the leaves {leaf_names:?}, but the spec has {spec_names:?}"
            )));
        }
        check_permissions(&self.root)?;

        let provider = tls::provider();
        let now = OffsetDateTime::now_utc();
        let mut ca_pems = Vec::new();
        for entry in &manifest.cas {
            let (cert, key) = self.ca(&entry.name);
            let file = load::read_certs(&cert)?;
            check_fingerprint(&file, &entry.sha256)?;
            load::check_validity(&file, now)?;
            load::certified_key(&file, &key, load::read_key(&key)?, &provider)?;
            ca_pems.push(fs::read_to_string(&cert).map_err(io_read(&cert))?);
        }
        let below_root: String = ca_pems.iter().skip(1).rev().map(String::as_str).collect();
        expect_content(&self.ca_bundle(), Some(&ca_pems[0]), "the root CA certificate")?;
        let chain = (!below_root.is_empty()).then_some(below_root.as_str());
        expect_content(&self.intermediates(), chain, "the intermediate CA certificates")?;
        let ca_bundle = load::read_certs(&self.ca_bundle())?;

        for (entry, leaf) in manifest.leaves.iter().zip(&spec.leaves) {
            let paths = self.leaf(&leaf.name);
            let cert = load::read_certs(&paths.cert)?;
            if cert.certs.len() != 1 {
                return Err(PkiError::Modified {
                    path: paths.cert,
                    expected: "exactly one certificate, the leaf",
                });
            }
            check_fingerprint(&cert, &entry.sha256)?;
            load::check_validity(&cert, now)?;
            load::certified_key(&cert, &paths.key, load::read_key(&paths.key)?, &provider)?;
            expect_content(&paths.chain, chain, "the intermediate CA certificates")?;
            let cert_pem = fs::read_to_string(&paths.cert).map_err(io_read(&paths.cert))?;
            let full = format!("{cert_pem}{below_root}");
            expect_content(&paths.fullchain, Some(&full), "the leaf followed by the intermediates")?;
            let usage = match leaf.kind {
                LeafKind::Server => Usage::Server,
                LeafKind::Client => Usage::Client,
            };
            load::verify_chain(&load::read_certs(&paths.fullchain)?, &ca_bundle, usage, &provider, now)?;
        }
        Ok(())
    }
}

/// `path` must hold exactly `expected`, or not exist when `expected` is `None`.
fn expect_content(path: &Path, expected: Option<&str>, what: &'static str) -> Result<(), PkiError> {
    match (fs::read(path), expected) {
        (Ok(actual), Some(expected)) if actual == expected.as_bytes() => Ok(()),
        (Err(e), None) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        (Err(e), Some(_)) => Err(PkiError::Read { path: path.to_owned(), source: e }),
        _ => Err(PkiError::Modified { path: path.to_owned(), expected: what }),
    }
}

/// Everything below `root` must be a regular file or directory (no symlinks) that only its
/// owner can read: keys are 0600, directories 0700.
fn check_permissions(root: &Path) -> Result<(), PkiError> {
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).map_err(io_read(&path))?;
        if meta.file_type().is_symlink() {
            return Err(PkiError::Symlink { path });
        }
        let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777;
        if mode & 0o077 != 0 {
            return Err(PkiError::Permissions { path, mode, root: root.to_owned() });
        }
        if meta.is_dir() {
            for entry in fs::read_dir(&path).map_err(io_read(&path))? {
                stack.push(entry.map_err(io_read(&path))?.path());
            }
        }
    }
    Ok(())
}

/// What `manifest.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// The PKI's id, part of every CA's common name.
    pub id: String,
    /// RFC 3339 time of generation.
    pub created_at: String,
    /// The spec it was generated from.
    pub spec: PkiSpec,
    /// CAs, root first.
    pub cas: Vec<ManifestEntry>,
    /// Leaves, in spec order.
    pub leaves: Vec<ManifestEntry>,
}

/// One certificate in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Display name of a CA, or the leaf's name.
    pub name: String,
    /// Hex SHA-256 of the certificate's DER.
    pub sha256: String,
    /// RFC 3339 end of validity.
    pub not_after: String,
}

/// How the PKCS#12 bundles get their password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pkcs12Password {
    /// The first line of this file.
    File(PathBuf),
    /// A random password, written to `pkcs12-password.txt` in the PKI directory.
    Generate,
}

/// Options for [`ensure`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnsureOptions {
    /// Also write a PKCS#12 bundle per leaf.
    pub pkcs12: Option<Pkcs12Password>,
}

/// The result of [`ensure`].
#[derive(Debug, Clone)]
pub struct Materialized {
    /// Where the PKI is.
    pub dir: PkiDir,
    /// True when this call generated the PKI, false when it reused one.
    pub created: bool,
    /// The manifest.
    pub manifest: Manifest,
    /// Files this call wrote (all of them on creation; PKCS#12 bundles added on reuse).
    pub written: Vec<PathBuf>,
}

/// Makes sure a PKI for `spec` exists at `root`: generates and writes it if the directory is
/// missing or empty, otherwise checks the existing one (same spec, every file intact, see
/// [`PkiDir::verify`]) and reuses it. A directory holding something else is refused, never
/// overwritten.
pub fn ensure(root: &Path, spec: &PkiSpec, options: &EnsureOptions) -> Result<Materialized, PkiError> {
    spec.validate()?;
    check_out_path(root)?;
    let dir = PkiDir::new(root);
    sweep_stale_staging(root);
    if dir.manifest().exists() {
        let manifest = dir.read_manifest()?;
        if manifest.spec != *spec {
            return Err(PkiError::SpecMismatch {
                path: root.to_owned(),
                detail: describe_difference(&manifest.spec, spec),
            });
        }
        dir.verify(&manifest)?;
        let written = match &options.pkcs12 {
            Some(password) => pkcs12_on_reuse(&dir, spec, password)?,
            None => Vec::new(),
        };
        return Ok(Materialized { dir, created: false, manifest, written });
    }
    if is_non_empty_dir(root)? {
        return Err(PkiError::ForeignDir { path: root.to_owned() });
    }

    // Everything that can fail on input is checked before anything is generated or written.
    let pkcs12 = match &options.pkcs12 {
        None => None,
        Some(Pkcs12Password::File(path)) => Some((pkcs12::read_password_file(path)?, false)),
        Some(Pkcs12Password::Generate) => Some((pkcs12::random_password(), true)),
    };
    let pki = GeneratedPki::generate(spec)?;
    let manifest = write_new(root, &pki, pkcs12.as_ref())?;
    let mut written = list_files(root)?;
    written.sort();
    Ok(Materialized { dir, created: true, manifest, written })
}

/// The output path must name a directory (not end in `.` or `..`) and must not be a symlink.
fn check_out_path(root: &Path) -> Result<(), PkiError> {
    let bad = |reason: &str| PkiError::OutPath { path: root.to_owned(), reason: reason.to_owned() };
    if root.file_name().is_none() {
        return Err(bad("the path must end in a directory name, not '.' or '..'"));
    }
    match fs::symlink_metadata(root) {
        Ok(meta) if meta.file_type().is_symlink() => {
            Err(bad("it is a symbolic link; give the real directory instead"))
        }
        Ok(meta) if !meta.is_dir() => Err(bad("it exists and is not a directory")),
        _ => Ok(()),
    }
}

fn staging_prefix(root: &Path) -> String {
    let name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "pki".to_owned());
    format!(".{name}.partial-")
}

/// Removes staging directories that a killed run left beside `root`. They hold private keys.
fn sweep_stale_staging(root: &Path) {
    let parent = parent_of(root);
    let prefix = staging_prefix(root);
    let Ok(entries) = fs::read_dir(&parent) else { return };
    for entry in entries.flatten() {
        let stale = entry.file_name().to_string_lossy().starts_with(&prefix)
            && entry.file_type().is_ok_and(|t| t.is_dir());
        if stale {
            tracing::warn!(path = %entry.path().display(), "removing a half-written PKI left by an interrupted run");
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn parent_of(root: &Path) -> PathBuf {
    match root.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn describe_difference(old: &PkiSpec, new: &PkiSpec) -> String {
    let mut diffs = Vec::new();
    if old.chain_length != new.chain_length {
        diffs.push(format!("chain length {} there, {} asked", old.chain_length, new.chain_length));
    }
    if old.key_type != new.key_type {
        diffs.push(format!("key type {} there, {} asked", old.key_type, new.key_type));
    }
    if old.leaves != new.leaves {
        let names =
            |s: &PkiSpec| s.leaves.iter().map(|l| l.common_name.as_str()).collect::<Vec<_>>().join(", ");
        diffs.push(format!("leaves [{}] there, [{}] asked", names(old), names(new)));
    }
    if old.validity != new.validity || old.organization != new.organization {
        diffs.push("validity or organisation differ".to_owned());
    }
    diffs.join("; ")
}

fn is_non_empty_dir(path: &Path) -> Result<bool, PkiError> {
    match fs::read_dir(path) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            Err(PkiError::OutDir { path: path.to_owned(), source: e })
        }
        Err(source) => Err(PkiError::OutDir { path: path.to_owned(), source }),
    }
}

/// Writes a freshly generated PKI into a temporary sibling of `root`, then moves it into place:
/// a rename of the whole directory when `root` does not exist, otherwise (an empty directory,
/// perhaps a mount point) entry by entry with `manifest.json` last, so a PKI without a manifest
/// is never taken for a complete one.
fn write_new(
    root: &Path,
    pki: &GeneratedPki,
    pkcs12: Option<&(Password, bool)>,
) -> Result<Manifest, PkiError> {
    let out_dir_err = |source| PkiError::OutDir { path: root.to_owned(), source };
    let parent = parent_of(root);
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&parent).map_err(out_dir_err)?;
    let staging = tempfile::Builder::new()
        .prefix(&staging_prefix(root))
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir_in(&parent)
        .map_err(out_dir_err)?;
    let stage = PkiDir::new(staging.path());

    write_file(&stage.root.join(".gitignore"), b"# Generated key material: never commit it.\n*\n")?;
    write_file(&stage.ca_bundle(), pki.cas[0].cert_pem.as_bytes())?;
    let below_root: String = pki.cas.iter().skip(1).rev().map(|c| c.cert_pem.as_str()).collect();
    if !below_root.is_empty() {
        write_file(&stage.intermediates(), below_root.as_bytes())?;
    }

    let mut cas = Vec::new();
    for ca in &pki.cas {
        let (cert, key) = stage.ca(&ca.name);
        write_pair(&cert, &key, ca)?;
        cas.push(entry(ca));
    }
    let intermediates_der: Vec<_> = pki.cas.iter().skip(1).rev().map(|c| c.cert_der.clone()).collect();
    let mut leaves = Vec::new();
    for leaf in &pki.leaves {
        let paths = stage.leaf(&leaf.name);
        write_pair(&paths.cert, &paths.key, leaf)?;
        if !below_root.is_empty() {
            write_file(&paths.chain, below_root.as_bytes())?;
        }
        write_file(&paths.fullchain, format!("{}{below_root}", leaf.cert_pem).as_bytes())?;
        if let Some((password, _)) = pkcs12 {
            let key =
                rustls_pki_types::PrivateKeyDer::from_pem_slice(leaf.key_pem.expose_secret().as_bytes())
                    .map_err(|e| PkiError::Pkcs12 { leaf: leaf.name.clone(), detail: e.to_string() })?;
            let mut chain = vec![leaf.cert_der.clone()];
            chain.extend(intermediates_der.iter().cloned());
            let bytes = pkcs12::bundle(&leaf.name, &key, &chain, &[pki.cas[0].cert_der.clone()], password)?;
            write_file(&paths.pkcs12, &bytes)?;
        }
        leaves.push(entry(leaf));
    }
    if let Some((password, true)) = pkcs12 {
        write_file(&stage.pkcs12_password(), format!("{}\n", password.expose_secret()).as_bytes())?;
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        id: pki.id.clone(),
        created_at: pki.created_at.format(&Rfc3339).unwrap_or_default(),
        spec: pki.spec.clone(),
        cas,
        leaves,
    };
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| PkiError::Manifest { path: stage.manifest(), detail: e.to_string() })?;
    write_file(&stage.manifest(), &json)?;

    if root.exists() {
        fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(out_dir_err)?;
        let mut names: Vec<_> = fs::read_dir(staging.path())
            .map_err(out_dir_err)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(out_dir_err)?;
        // The manifest marks the PKI complete: it moves last.
        names.sort_by_key(|n| n == "manifest.json");
        for name in names {
            fs::rename(staging.path().join(&name), root.join(&name)).map_err(out_dir_err)?;
        }
    } else {
        fs::rename(staging.path(), root).map_err(out_dir_err)?;
        let _ = staging.keep();
    }
    if let Ok(dir) = fs::File::open(&parent) {
        let _ = dir.sync_all();
    }
    Ok(manifest)
}

fn entry(issued: &Issued) -> ManifestEntry {
    let not_after = x509_parser::parse_x509_certificate(&issued.cert_der)
        .map(|(_, c)| c.validity().not_after.to_datetime().format(&Rfc3339).unwrap_or_default())
        .unwrap_or_default();
    ManifestEntry {
        name: issued.name.clone(),
        sha256: hex::encode(Sha256::digest(&issued.cert_der)),
        not_after,
    }
}

fn write_pair(cert: &Path, key: &Path, issued: &Issued) -> Result<(), PkiError> {
    write_file(cert, issued.cert_pem.as_bytes())?;
    write_file(key, issued.key_pem.expose_secret().as_bytes())
}

fn check_fingerprint(file: &load::CertFile, expected: &str) -> Result<(), PkiError> {
    let actual = file.certs.first().map(|c| hex::encode(Sha256::digest(c))).unwrap_or_default();
    if actual == expected {
        Ok(())
    } else {
        Err(PkiError::Manifest {
            path: file.path.clone(),
            detail:
                "the certificate is not the one manifest.json records (replaced by hand?); regenerate the PKI"
                    .to_owned(),
        })
    }
}

/// Creates `path` (and its parent directories, 0700) with mode 0600; never overwrites.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    if let Some(parent) = path.parent() {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(parent).map_err(io_write(parent))?;
    }
    let mut file =
        fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io_write(path))?;
    file.write_all(bytes).map_err(io_write(path))?;
    file.sync_all().map_err(io_write(path))
}

/// Replaces `path` atomically: writes a temporary sibling (0600) and renames it over.
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    let tmp = path.with_extension("partial");
    let _ = fs::remove_file(&tmp);
    write_file(&tmp, bytes)?;
    fs::rename(&tmp, path).map_err(io_write(path))
}

fn list_files(root: &Path) -> Result<Vec<PathBuf>, PkiError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(io_read(&dir))? {
            let path = entry.map_err(io_read(&dir))?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    Ok(out)
}

/// `--pkcs12` on an existing PKI: bundles are derived from the PEM files, so any that are
/// missing, or that the password no longer opens, are (re)written.
fn pkcs12_on_reuse(
    dir: &PkiDir,
    spec: &PkiSpec,
    password: &Pkcs12Password,
) -> Result<Vec<PathBuf>, PkiError> {
    let mut written = Vec::new();
    let secret = match password {
        Pkcs12Password::File(path) => pkcs12::read_password_file(path)?,
        Pkcs12Password::Generate => {
            let path = dir.pkcs12_password();
            if path.exists() {
                pkcs12::read_password_file(&path)?
            } else {
                let generated = pkcs12::random_password();
                write_file(&path, format!("{}\n", generated.expose_secret()).as_bytes())?;
                written.push(path);
                generated
            }
        }
    };
    let ca_bundle = load::read_certs(&dir.ca_bundle())?;
    for leaf in &spec.leaves {
        let paths = dir.leaf(&leaf.name);
        if paths.pkcs12.exists() && pkcs12::opens_with(&paths.pkcs12, &secret) {
            continue;
        }
        let full = load::read_certs(&paths.fullchain)?;
        let key = load::read_key(&paths.key)?;
        let bytes = pkcs12::bundle(&leaf.name, &key, &full.certs, &ca_bundle.certs, &secret)?;
        replace_file(&paths.pkcs12, &bytes)?;
        written.push(paths.pkcs12);
    }
    // A generated password left from an earlier run no longer opens bundles rewritten under a
    // password file: remove it rather than leave a wrong password lying about.
    if matches!(password, Pkcs12Password::File(_)) && !written.is_empty() {
        let stale = dir.pkcs12_password();
        if stale.exists() {
            fs::remove_file(&stale).map_err(io_write(&stale))?;
        }
    }
    Ok(written)
}

/// A PKCS#12 password kept in memory only as long as needed.
pub(crate) type Password = SecretString;
