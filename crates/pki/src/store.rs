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

    /// Checks every file the manifest lists: parses, dates, fingerprints, key pairs and each
    /// leaf's chain to the root. The first problem found is returned.
    pub fn verify(&self, manifest: &Manifest) -> Result<(), PkiError> {
        let provider = tls::provider();
        let now = OffsetDateTime::now_utc();
        let ca_bundle = load::read_certs(&self.ca_bundle())?;
        load::check_validity(&ca_bundle, now)?;
        for entry in &manifest.cas {
            let (cert, key) = self.ca(&entry.name);
            let file = load::read_certs(&cert)?;
            load::check_validity(&file, now)?;
            check_fingerprint(&file, &entry.sha256)?;
            load::certified_key(&file, &key, load::read_key(&key)?, &provider)?;
        }
        for (entry, spec) in manifest.leaves.iter().zip(&manifest.spec.leaves) {
            let paths = self.leaf(&entry.name);
            let full = load::read_certs(&paths.fullchain)?;
            load::check_validity(&full, now)?;
            check_fingerprint(&full, &entry.sha256)?;
            load::certified_key(&full, &paths.key, load::read_key(&paths.key)?, &provider)?;
            let usage = match spec.kind {
                LeafKind::Server => Usage::Server,
                LeafKind::Client => Usage::Client,
            };
            load::verify_chain(&full, &ca_bundle, usage, &provider, now)?;
        }
        Ok(())
    }
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
/// missing or empty, otherwise checks the existing one (same spec, every file valid) and reuses
/// it. A directory holding something else is refused, never overwritten.
pub fn ensure(root: &Path, spec: &PkiSpec, options: &EnsureOptions) -> Result<Materialized, PkiError> {
    spec.validate()?;
    let dir = PkiDir::new(root);
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
            Some(password) => write_pkcs12_bundles(&dir, &manifest, password, false)?,
            None => Vec::new(),
        };
        return Ok(Materialized { dir, created: false, manifest, written });
    }
    if is_non_empty_dir(root)? {
        return Err(PkiError::ForeignDir { path: root.to_owned() });
    }

    let pki = GeneratedPki::generate(spec)?;
    let manifest = write_new(root, &pki)?;
    let mut written = list_files(root)?;
    if let Some(password) = &options.pkcs12 {
        written.extend(write_pkcs12_bundles(&dir, &manifest, password, true)?);
    }
    written.sort();
    Ok(Materialized { dir, created: true, manifest, written })
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

/// Writes a freshly generated PKI into a temporary sibling of `root`, then renames it into
/// place.
fn write_new(root: &Path, pki: &GeneratedPki) -> Result<Manifest, PkiError> {
    let out_dir_err = |source| PkiError::OutDir { path: root.to_owned(), source };
    let parent = match root.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&parent).map_err(out_dir_err)?;
    let file_name =
        root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "pki".to_owned());
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{file_name}.partial-"))
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir_in(&parent)
        .map_err(out_dir_err)?;
    let stage = PkiDir::new(staging.path());

    write_file(&stage.root.join(".gitignore"), b"# Generated key material: never commit it.\n*\n")?;
    write_file(&stage.ca_bundle(), pki.cas[0].cert_pem.as_bytes())?;
    let below_root: String = pki.cas.iter().skip(1).rev().map(|c| c.cert_pem.as_str()).collect();
    write_file(&stage.intermediates(), below_root.as_bytes())?;

    let mut cas = Vec::new();
    for ca in &pki.cas {
        let (cert, key) = stage.ca(&ca.name);
        write_pair(&cert, &key, ca)?;
        cas.push(entry(ca)?);
    }
    let mut leaves = Vec::new();
    for leaf in &pki.leaves {
        let paths = stage.leaf(&leaf.name);
        write_pair(&paths.cert, &paths.key, leaf)?;
        write_file(&paths.chain, below_root.as_bytes())?;
        write_file(&paths.fullchain, format!("{}{below_root}", leaf.cert_pem).as_bytes())?;
        let mut e = entry(leaf)?;
        // The manifest fingerprints the leaf itself; fullchain.pem starts with it.
        e.sha256 = hex::encode(Sha256::digest(&leaf.cert_der));
        leaves.push(e);
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

    // rename(2) replaces an empty directory, so `--out` may name one the user made.
    fs::rename(staging.path(), root).map_err(out_dir_err)?;
    let _ = staging.keep();
    if let Ok(dir) = fs::File::open(&parent) {
        let _ = dir.sync_all();
    }
    Ok(manifest)
}

fn entry(issued: &Issued) -> Result<ManifestEntry, PkiError> {
    let not_after = x509_parser::parse_x509_certificate(&issued.cert_der)
        .map(|(_, c)| c.validity().not_after.to_datetime().format(&Rfc3339).unwrap_or_default())
        .unwrap_or_default();
    Ok(ManifestEntry {
        name: issued.name.clone(),
        sha256: hex::encode(Sha256::digest(&issued.cert_der)),
        not_after,
    })
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

fn write_pkcs12_bundles(
    dir: &PkiDir,
    manifest: &Manifest,
    password: &Pkcs12Password,
    fresh: bool,
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
    for leaf in &manifest.leaves {
        let paths = dir.leaf(&leaf.name);
        // Bundles are derived from the PEM files: rewrite any that are missing or that the
        // password no longer opens.
        if !fresh && paths.pkcs12.exists() && pkcs12::opens_with(&paths.pkcs12, &secret) {
            continue;
        }
        let full = load::read_certs(&paths.fullchain)?;
        let key = load::read_key(&paths.key)?;
        let bytes = pkcs12::bundle(&leaf.name, &key, &full.certs, &ca_bundle.certs, &secret)?;
        replace_file(&paths.pkcs12, &bytes)?;
        written.push(paths.pkcs12);
    }
    Ok(written)
}

/// A PKCS#12 password kept in memory only as long as needed.
pub(crate) type Password = SecretString;
