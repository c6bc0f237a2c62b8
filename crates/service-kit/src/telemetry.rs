//! Logging set-up: `tracing` to stderr, human-readable or one JSON object per line, filtered by
//! `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For a person at a terminal.
    #[default]
    Pretty,
    /// One JSON object per line, for collectors.
    Json,
}

/// Installs the global subscriber. A second call is a no-op (tests start many servers).
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Installs the global subscriber writing one JSON object per line (with each event's `target`,
/// the module that logged it) to the file at `path`, appending (0600; its directory is made
/// when the first line is written, not before: the embedded runtime keeps its services' logs in
/// a state directory that may not exist yet). A no-op when a subscriber is already installed.
/// Lines that cannot be written are dropped: logging never fails a request.
pub fn init_tracing_to_file(path: std::path::PathBuf) {
    let file = std::sync::Arc::new(LazyFile { path, file: std::sync::Mutex::new(None) });
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || LazyWriter(file.clone()))
        .with_ansi(false)
        .json()
        .flatten_event(true)
        .try_init();
}

/// A log file opened on first use.
struct LazyFile {
    path: std::path::PathBuf,
    file: std::sync::Mutex<Option<std::fs::File>>,
}

/// One event's writer onto the shared [`LazyFile`].
struct LazyWriter(std::sync::Arc<LazyFile>);

impl std::io::Write for LazyWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = self.0.file.lock().map_err(|_| std::io::Error::other("log file lock poisoned"))?;
        if file.is_none() {
            if let Some(dir) = self.0.path.parent() {
                use std::os::unix::fs::DirBuilderExt as _;
                std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
            }
            *file =
                Some(std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&self.0.path)?);
        }
        match file.as_mut() {
            Some(f) => f.write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
