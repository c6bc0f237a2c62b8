//! The errors a person reads: each has a stable code, the cause chain and a hint.

use miette::Diagnostic;
use pki::PkiError;
use serde::Serialize;

/// What can stop a demo command. Codes (`demo::pki::…`) are stable: scripts and docs may rely
/// on them.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[non_exhaustive]
pub enum DemoError {
    /// Generating, checking or loading the PKI failed.
    #[error("the PKI in {dir} could not be {action}")]
    #[diagnostic(code(demo::pki))]
    Pki {
        /// The PKI directory.
        dir: std::path::PathBuf,
        /// What was being done ("created", "reused").
        action: &'static str,
        /// The cause (boxed: PKI errors carry paths and are large).
        #[source]
        source: Box<PkiError>,
        /// What to do about it.
        #[help]
        hint: Option<String>,
    },
}

impl DemoError {
    pub(crate) fn pki(dir: &std::path::Path, action: &'static str, source: PkiError) -> Self {
        let hint = pki_hint(&source);
        Self::Pki { dir: dir.to_owned(), action, source: Box::new(source), hint }
    }

    /// The stable code of this error.
    pub fn code(&self) -> String {
        self.diagnostic_code().unwrap_or_else(|| "demo::error".to_owned())
    }

    fn diagnostic_code(&self) -> Option<String> {
        Diagnostic::code(self).map(|c| c.to_string())
    }

    /// The error as the JSON report's `errors[]` entry.
    pub fn report(&self, step: Option<&str>) -> ErrorReport {
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        ErrorReport {
            step: step.map(str::to_owned),
            code: self.code(),
            message: self.to_string(),
            causes,
            hint: Diagnostic::help(self).map(|h| h.to_string()),
        }
    }
}

/// One entry of a report's `errors[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorReport {
    /// The step that failed, when the error belongs to one.
    pub step: Option<String>,
    /// Stable error code.
    pub code: String,
    /// What failed.
    pub message: String,
    /// Why, outermost first.
    pub causes: Vec<String>,
    /// What to do about it.
    pub hint: Option<String>,
}

fn pki_hint(e: &PkiError) -> Option<String> {
    let hint = match e {
        PkiError::SpecMismatch { .. } | PkiError::ForeignDir { .. } => {
            "choose another --out directory, or remove this one to start again"
        }
        PkiError::OutDir { .. } | PkiError::Write { .. } => {
            "check that the parent directory exists and is writable"
        }
        PkiError::Expired { .. }
        | PkiError::KeyMismatch { .. }
        | PkiError::ChainBroken { .. }
        | PkiError::BadCertificate { .. }
        | PkiError::BadKey { .. }
        | PkiError::NotPem { .. }
        | PkiError::Manifest { .. } => {
            "the generated files were changed or damaged; remove the directory (or run with --reset-demo) to regenerate them"
        }
        PkiError::NotYetValid { .. } => "check the system clock",
        PkiError::EmptyPassword { .. } => "write the password on the first line of the file",
        _ => return None,
    };
    Some(hint.to_owned())
}
