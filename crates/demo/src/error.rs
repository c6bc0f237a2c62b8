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

    /// A service could not start, or stopped with an error.
    #[error("the {service} service failed")]
    #[diagnostic(code(demo::serve))]
    Serve {
        /// Which service.
        service: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
        /// What to do about it.
        #[help]
        hint: Option<String>,
    },
}

impl DemoError {
    pub(crate) fn serve(
        service: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        let hint = Some(database_hint(&source).map_or_else(
            || format!(
                "check the configuration file and the files it names; run with RUST_LOG=debug for more about the {service} start"
            ),
            str::to_owned,
        ));
        Self::Serve { service, source: Box::new(source), hint }
    }

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

/// An error and its causes on one line (`what: why: why`), for messages that are plain text.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
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

impl ErrorReport {
    /// An error of the command itself rather than of a step (no Docker engine, nothing to show):
    /// its stable `code`, what failed, why, and what to do.
    pub fn command(code: &str, message: impl Into<String>, causes: Vec<String>, hint: &str) -> Self {
        Self {
            step: None,
            code: code.to_owned(),
            message: message.into(),
            causes,
            hint: Some(hint.to_owned()),
        }
    }
}

/// A hint for the database refusals a start meets before it writes anything (the password,
/// the server, the database, a newer schema), found anywhere in `e`'s cause chain. Those
/// errors' own messages say what is wrong; the hint adds that nothing was changed and what to
/// run next.
fn database_hint(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    use service_kit::db::{SchemaTooNew, SealedOpenError};
    use service_kit::postgres::PostgresError;
    let postgres = |e: &PostgresError| match e {
        PostgresError::Auth { .. } => Some(
            "nothing was written; put the role's password, alone, in the file storage.postgres.password_file names",
        ),
        PostgresError::Unreachable { .. } => Some(
            "nothing was written; check that PostgreSQL runs and takes TCP connections there (pg_isready -h HOST -p PORT)",
        ),
        PostgresError::NoDatabase { .. } => {
            Some("nothing was written; create the database for the role (createdb -O ROLE NAME)")
        }
        _ => None,
    };
    let too_new = "nothing was written: the database stays as the newer release left it";
    let mut next = Some(e);
    while let Some(e) = next {
        // `#[error(transparent)]` variants forward `source()`, so the inner error is never a
        // link of the chain itself: look inside the wrapper.
        let found = match e.downcast_ref::<SealedOpenError>() {
            Some(SealedOpenError::Postgres(p)) => postgres(p),
            Some(SealedOpenError::SchemaTooNew(_)) => Some(too_new),
            _ => e
                .downcast_ref::<PostgresError>()
                .and_then(postgres)
                .or_else(|| e.downcast_ref::<SchemaTooNew>().map(|_| too_new)),
        };
        if found.is_some() {
            return found;
        }
        next = e.source();
    }
    None
}

fn pki_hint(e: &PkiError) -> Option<String> {
    use std::io::ErrorKind;
    let hint = match e {
        PkiError::SpecMismatch { path, .. } | PkiError::ForeignDir { path } => format!(
            "choose another --out directory, or remove {} to start again",
            path.display()
        ),
        PkiError::OutDir { source, .. } => match source.kind() {
            ErrorKind::PermissionDenied => "you may not write there: choose a directory you own".to_owned(),
            ErrorKind::NotADirectory => "a part of the path is a file, not a directory".to_owned(),
            ErrorKind::ReadOnlyFilesystem => "that file system is read-only".to_owned(),
            ErrorKind::StorageFull => "the disk is full".to_owned(),
            _ => "check that the directory can be created and written".to_owned(),
        },
        PkiError::OutPath { .. } => "pass --out the plain path of a new or empty directory".to_owned(),
        PkiError::InvalidName { .. } | PkiError::DuplicateLeaf { .. } => {
            "check the --domain, --service and --client values".to_owned()
        }
        PkiError::Permissions { .. } => "or remove the directory and let the next run regenerate it".to_owned(),
        PkiError::Expired { .. }
        | PkiError::KeyMismatch { .. }
        | PkiError::ChainBroken { .. }
        | PkiError::BadCertificate { .. }
        | PkiError::BadKey { .. }
        | PkiError::NotPem { .. }
        | PkiError::Manifest { .. }
        | PkiError::Modified { .. }
        | PkiError::Symlink { .. } => {
            "the generated files were changed or damaged; remove the PKI directory and run again to regenerate it"
                .to_owned()
        }
        PkiError::Read { .. } => "check that the file exists and is readable".to_owned(),
        PkiError::NotYetValid { .. } => "check the system clock".to_owned(),
        PkiError::EmptyPassword { .. } => "write the password on the first line of the file".to_owned(),
        _ => return None,
    };
    Some(hint)
}
