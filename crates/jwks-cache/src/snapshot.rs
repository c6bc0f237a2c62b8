//! The last good key set on disk: written atomically (temporary file in the same directory,
//! fsync, rename) after each successful refresh, read when a provider starts.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Version of the file format.
pub(crate) const FORMAT: u32 = 1;

/// The file's contents.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Snapshot {
    pub(crate) format: u32,
    pub(crate) issuer: String,
    pub(crate) jwks_url: String,
    /// When the set was last confirmed by the issuer (Unix ms).
    pub(crate) fetched_at_ms: u64,
    /// Until when it is fresh (Unix ms).
    pub(crate) fresh_until_ms: u64,
    pub(crate) etag: Option<String>,
    pub(crate) last_modified: Option<String>,
    /// The HTTP cache policy of the stored response, for revalidation.
    pub(crate) policy: http_cache_semantics::CachePolicy,
    /// The JWK set as the issuer sent it.
    pub(crate) jwks: String,
}

/// Why a snapshot was not used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a snapshot of this crate (format {FORMAT}): {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("{path} holds keys of {issuer} from {url}, not of this provider")]
    Foreign { path: PathBuf, issuer: String, url: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Reads a snapshot, or `Ok(None)` when there is no file.
pub(crate) fn load(path: &Path, issuer: &str, jwks_url: &str) -> Result<Option<Snapshot>, SnapshotError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(SnapshotError::Read { path: path.to_path_buf(), source }),
    };
    let snap: Snapshot = serde_json::from_slice(&bytes)
        .map_err(|e| SnapshotError::Parse { path: path.to_path_buf(), detail: e.to_string() })?;
    if snap.format != FORMAT {
        return Err(SnapshotError::Parse {
            path: path.to_path_buf(),
            detail: format!("format {}", snap.format),
        });
    }
    if snap.issuer != issuer || snap.jwks_url != jwks_url {
        return Err(SnapshotError::Foreign {
            path: path.to_path_buf(),
            issuer: snap.issuer,
            url: snap.jwks_url,
        });
    }
    Ok(Some(snap))
}

/// Writes snapshots off the async threads and in order: each write runs on a blocking thread of
/// its own, so one that finishes late must not replace a newer file; a snapshot older than the
/// last one written is dropped. Shared by the key set's and the discovery document's caches.
#[derive(Debug, Clone, Default)]
pub(crate) struct OrderedWriter {
    /// `fetched_at_ms` of the last snapshot written.
    written_ms: std::sync::Arc<std::sync::Mutex<u64>>,
}

impl OrderedWriter {
    /// Writes `snap` to `path` in the background; a failure is logged as `what`'s.
    pub(crate) fn write(&self, path: PathBuf, snap: Snapshot, what: &'static str) {
        let written = self.written_ms.clone();
        tokio::task::spawn_blocking(move || {
            let mut last = written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if snap.fetched_at_ms < *last {
                return;
            }
            match store(&path, &snap) {
                Ok(()) => *last = snap.fetched_at_ms,
                Err(e) => {
                    tracing::warn!(issuer = %snap.issuer, error = %e, "cannot write the {what} snapshot")
                }
            }
        });
    }
}

/// Writes a snapshot atomically: readers see the old file or the new one, never a part.
pub(crate) fn store(path: &Path, snap: &Snapshot) -> Result<(), SnapshotError> {
    let write_err = |source| SnapshotError::Write { path: path.to_path_buf(), source };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let json = serde_json::to_vec(snap).map_err(|e| write_err(std::io::Error::other(e)))?;
    // NamedTempFile is created 0600 and removed if anything below fails.
    let mut tmp = tempfile::Builder::new().prefix(".jwks-snapshot.").tempfile_in(dir).map_err(write_err)?;
    tmp.write_all(&json).map_err(write_err)?;
    tmp.as_file().sync_all().map_err(write_err)?;
    tmp.persist(path).map_err(|e| write_err(e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        // Makes the rename durable; failure here loses durability, not correctness.
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(issuer: &str) -> Snapshot {
        let req = http::Request::get("https://h/jwks").body(()).unwrap();
        let res =
            http::Response::builder().status(200).header("cache-control", "max-age=60").body(()).unwrap();
        Snapshot {
            format: FORMAT,
            issuer: issuer.to_owned(),
            jwks_url: "https://h/jwks".to_owned(),
            fetched_at_ms: 1,
            fresh_until_ms: 2,
            etag: Some("\"v1\"".to_owned()),
            last_modified: None,
            policy: http_cache_semantics::CachePolicy::new(&req, &res),
            jwks: r#"{"keys":[]}"#.to_owned(),
        }
    }

    #[test]
    fn round_trips_and_refuses_foreign_or_damaged_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        assert!(load(&path, "i", "https://h/jwks").unwrap().is_none());
        store(&path, &sample("i")).unwrap();
        let back = load(&path, "i", "https://h/jwks").unwrap().unwrap();
        assert_eq!(back.etag.as_deref(), Some("\"v1\""));
        assert!(matches!(load(&path, "other", "https://h/jwks"), Err(SnapshotError::Foreign { .. })));
        std::fs::write(&path, b"{ half").unwrap();
        assert!(matches!(load(&path, "i", "https://h/jwks"), Err(SnapshotError::Parse { .. })));
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}
