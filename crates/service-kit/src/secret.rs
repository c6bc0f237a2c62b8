//! Secrets: values that must never reach a log, an error message or a debugger's output.
//!
//! We use the `secrecy` crate's types rather than our own: `SecretString`/`SecretBox` redact
//! in `Debug`, have no `Display` at all (so `{}` cannot print one by accident), zeroise on drop
//! and make every read explicit through `expose_secret()`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub use secrecy::{ExposeSecret, SecretBox, SecretSlice, SecretString};

/// Reading a secret file failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretFileError {
    /// The file could not be read.
    #[error(
        "cannot read the secret file {path}; secrets come only from files (Docker secrets under /run/secrets)"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("the secret file {path} is empty; write the secret on its first line")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Reads a secret from a file: the whole content without its trailing newline. Warns (without
/// the value) when the file is readable by group or others.
pub fn read_secret_file(path: &Path) -> Result<SecretString, SecretFileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| SecretFileError::Read { path: path.to_owned(), source })?;
    warn_if_shared(path);
    let value = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
    if value.is_empty() {
        return Err(SecretFileError::Empty { path: path.to_owned() });
    }
    Ok(SecretString::from(value.to_owned()))
}

/// Reads a binary secret (for example an unseal share) from a file, verbatim.
pub fn read_secret_bytes(path: &Path) -> Result<SecretSlice<u8>, SecretFileError> {
    let bytes =
        std::fs::read(path).map_err(|source| SecretFileError::Read { path: path.to_owned(), source })?;
    warn_if_shared(path);
    if bytes.is_empty() {
        return Err(SecretFileError::Empty { path: path.to_owned() });
    }
    Ok(SecretSlice::from(bytes))
}

fn warn_if_shared(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        // Docker mounts file secrets read-only; under /run/secrets group/other bits are normal.
        if mode & 0o077 != 0 && !path.starts_with("/run/secrets") {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "secret file is readable by other users; chmod 600 it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), "hunter2\n").unwrap();
        let secret = read_secret_file(tmp.path()).unwrap();
        assert_eq!(secret.expose_secret(), "hunter2");
        let shown = format!("{secret:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
    }

    #[test]
    fn empty_and_missing_files_are_errors_that_name_the_file() {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), "\n").unwrap();
        let err = read_secret_file(tmp.path()).unwrap_err();
        assert!(err.to_string().contains(&tmp.path().display().to_string()), "{err}");
        let err = read_secret_file(Path::new("/nonexistent/secret")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/secret"), "{err}");
        assert!(read_secret_bytes(tmp.path()).is_ok(), "a newline is a byte");
    }
}

/// An unseal share file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the unseal share file {path}")]
pub struct ShareFileError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Reads and parses unseal share files (Docker secrets), in order.
pub fn read_share_files(paths: &[PathBuf]) -> Result<Vec<barrier::Share>, ShareFileError> {
    paths
        .iter()
        .map(|path| {
            let text = read_secret_file(path)
                .map_err(|e| ShareFileError { path: path.clone(), source: Box::new(e) })?;
            text.expose_secret()
                .parse::<barrier::Share>()
                .map_err(|e| ShareFileError { path: path.clone(), source: Box::new(e) })
        })
        .collect()
}
