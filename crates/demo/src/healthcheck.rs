//! `demo healthcheck URL --ca FILE`: the container health probe (the images have no curl).
//! HTTPS only, TLS 1.3, our CA only; healthy when the answer is 2xx within the timeout.

use std::path::Path;
use std::time::Duration;

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HealthcheckError {
    /// Not an https URL: a usage error.
    #[error("{0:?} is not an https:// URL; the services speak TLS only")]
    NotHttps(String),
    /// The CA bundle is unusable: a usage error.
    #[error("the CA bundle is unusable")]
    Ca(#[source] pki::PkiError),
    /// No answer (connection refused, TLS failure, timeout).
    #[error("no answer from {url}: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why, with the cause chain.
        reason: String,
    },
    /// An answer that is not 2xx.
    #[error("{url} answered {status}: {body}")]
    Unhealthy {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// The start of the body (readyz says which dependency is not ready).
        body: String,
    },
}

impl HealthcheckError {
    /// True for mistakes in the command line (exit 2) rather than an unhealthy service (1).
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::NotHttps(_) | Self::Ca(_))
    }
}

/// Probes `url`, trusting only the CA bundle at `ca`.
pub async fn check(url: &str, ca: &Path, timeout: Duration) -> Result<(), HealthcheckError> {
    if !url.starts_with("https://") {
        return Err(HealthcheckError::NotHttps(url.to_owned()));
    }
    let tls = pki::ClientTlsFiles::trusting(ca).build().map_err(HealthcheckError::Ca)?;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        .build()
        .map_err(|e| HealthcheckError::Unreachable { url: url.to_owned(), reason: e.to_string() })?;
    let response = client.get(url).send().await.map_err(|e| {
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            reason.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        HealthcheckError::Unreachable { url: url.to_owned(), reason }
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    Err(HealthcheckError::Unhealthy { url: url.to_owned(), status: status.as_u16(), body })
}

/// Builds a small runtime and probes: what `main` calls.
/// `demo healthcheck`: probes and returns Docker's exit code — 0 healthy, 1 unhealthy (one line
/// on stderr saying why), 2 for a usage mistake.
pub fn run_blocking(url: &str, ca: &Path, timeout: Duration) -> u8 {
    match check_blocking(url, ca, timeout) {
        Ok(()) => 0,
        Err(e) => {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "unhealthy: {}", crate::error::chain(&e));
            if e.is_usage() { 2 } else { 1 }
        }
    }
}

/// Probes once, on a runtime of its own.
pub fn check_blocking(url: &str, ca: &Path, timeout: Duration) -> Result<(), HealthcheckError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| HealthcheckError::Unreachable { url: url.to_owned(), reason: e.to_string() })?;
    runtime.block_on(check(url, ca, timeout))
}
