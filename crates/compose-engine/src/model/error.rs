//! The one error type of the compose model: every variant names the file, the path in the
//! document (`services.kms.healthcheck.test`) and, where the file is ours to read, the line.

use std::fmt;
use std::path::PathBuf;

/// Where in which file: `deployments/kms/compose.yml:12: services.kms.image`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The compose (or `.env`) file.
    pub file: PathBuf,
    /// 1-based line, when it could be found.
    pub line: Option<usize>,
    /// Dotted path in the document (`services.kms.ports[0]`); empty for the whole document.
    pub path: String,
}

impl Location {
    /// The whole of `file`.
    pub(crate) fn file(file: impl Into<PathBuf>, line: Option<usize>) -> Box<Self> {
        Box::new(Self { file: file.into(), line, path: String::new() })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": `{}`", self.path)?;
        }
        Ok(())
    }
}

/// Loading a compose project failed (the location is boxed: errors are rare, `Result`s are
/// everywhere). Messages read `file:line: `path`: what\nhint: what to do`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A file could not be read.
    #[error(
        "{at}: cannot read the file\nhint: check the path (relative paths in `include:` are resolved against the including file)"
    )]
    Read {
        /// The file (the path is where it was named, when it was named in another file).
        at: Box<Location>,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not YAML.
    #[error("{}:{line}:{column}: not valid YAML: {message}\nhint: fix the syntax at that line", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A key, a value or a shape the model does not accept (unknown keys included).
    #[error("{at}: {message}\nhint: {hint}")]
    Invalid {
        /// Where.
        at: Box<Location>,
        /// What is wrong.
        message: String,
        /// What to do.
        hint: String,
    },
    /// A compose feature this model does not implement.
    #[error("{at}: {feature} is not supported\nhint: {hint}")]
    Unsupported {
        /// Where.
        at: Box<Location>,
        /// The feature (`extends with a file outside ...`).
        feature: String,
        /// What to do instead.
        hint: String,
    },
    /// `${VAR}` with no value and no default.
    #[error(
        "{at}: variable `{var}` is not set and has no default\nhint: pass {var} in the environment, add it to `.env`, or write `${{{var}:-default}}` (compose would substitute an empty string; this model refuses)"
    )]
    MissingVariable {
        /// Where.
        at: Box<Location>,
        /// The variable.
        var: String,
    },
    /// `${VAR:?message}` with VAR unset (or empty), or a malformed `$` expression.
    #[error("{at}: {message}\nhint: {hint}")]
    Interpolation {
        /// Where.
        at: Box<Location>,
        /// The variable, when there is one.
        var: Option<String>,
        /// What is wrong (the file's own message for `${VAR?message}`).
        message: String,
        /// What to do.
        hint: String,
    },
    /// A healthcheck needs a shell the image does not have.
    #[error(
        "{at}: service `{service}` has a shell healthcheck (CMD-SHELL or a string); images FROM scratch have no /bin/sh, so only the exec form is supported\nhint: use the exec form: test: [\"CMD\", \"/app\", \"healthcheck\", ...]"
    )]
    ShellHealthcheck {
        /// Where (`services.NAME.healthcheck.test`).
        at: Box<Location>,
        /// The service.
        service: String,
    },
    /// `include:` (or `extends:`) comes back to a file already being loaded.
    #[error("{at}: include cycle: {}\nhint: remove one of these includes", chain.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" -> "))]
    IncludeCycle {
        /// The `include` entry that closes the cycle.
        at: Box<Location>,
        /// The files, from the first to the one included again.
        chain: Vec<PathBuf>,
    },
    /// An included file and the including file (or two included files) define the same
    /// resource differently.
    #[error("{at}: {kind} `{name}` is also defined, differently, in {}\nhint: define it in one file only (identical definitions are allowed)", other.display())]
    Conflict {
        /// Where it is defined (again).
        at: Box<Location>,
        /// `service`, `network`, `volume` or `secret`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The other file that defines it.
        other: PathBuf,
    },
    /// `depends_on` names a service that exists but is not enabled by the active profiles.
    #[error("{at}: service `{service}` depends on `{dependency}`, which is disabled (its profiles: {}; active: {})\nhint: activate one of its profiles, or give `{service}` the same profiles", profiles.join(", "), if active.is_empty() { "none".to_owned() } else { active.join(", ") })]
    DisabledDependency {
        /// Where (`services.NAME.depends_on.DEP`).
        at: Box<Location>,
        /// The enabled service.
        service: String,
        /// The disabled one.
        dependency: String,
        /// The dependency's profiles.
        profiles: Vec<String>,
        /// The active profiles.
        active: Vec<String>,
    },
    /// `depends_on` goes round in a circle.
    #[error("{at}: dependency cycle: {}\nhint: remove one of these depends_on entries", cycle.join(" -> "))]
    DependencyCycle {
        /// Where (the `depends_on` of the first service of the cycle).
        at: Box<Location>,
        /// The services, the first repeated at the end.
        cycle: Vec<String>,
    },
}

impl ModelError {
    /// Where the error is, when it has one location (not for [`ModelError::Syntax`]).
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Read { at, .. }
            | Self::Invalid { at, .. }
            | Self::Unsupported { at, .. }
            | Self::MissingVariable { at, .. }
            | Self::Interpolation { at, .. }
            | Self::ShellHealthcheck { at, .. }
            | Self::IncludeCycle { at, .. }
            | Self::Conflict { at, .. }
            | Self::DisabledDependency { at, .. }
            | Self::DependencyCycle { at, .. } => Some(at),
            Self::Syntax { .. } => None,
        }
    }
}
