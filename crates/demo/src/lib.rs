//! The demo orchestration library: what the `demo` CLI does, as a Rust API that integration
//! tests call directly — the command line's types and their one conversion ([`cli`]), the step
//! engine ([`engine`]), one plan of checks and flows on either runtime ([`stack`],
//! [`runtime`]), the state directory ([`state`]), reports ([`report`]) and everything written
//! for a person or CI ([`render`]).
//!
//! What it must not do: parse the process's arguments itself (`cmd/demo` calls
//! `Cli::parse()`), print anywhere but [`render`] (and `demo healthcheck`'s one line), or exit
//! the process.

pub mod cli;
pub mod engine;
pub mod error;
pub mod fixture;
pub mod healthcheck;
pub mod logs;
pub mod output;
pub mod pki_cmd;
pub mod ports;
pub mod render;
pub mod report;
pub mod run_cmd;
pub mod runtime;
pub mod serve;
pub mod stack;
pub mod state;

pub use error::{DemoError, ErrorReport};
pub use output::{OutputFormat, Style};

/// Version of the JSON documents printed with `--output json`. Bumped only when a field is
/// removed or changes meaning; new fields may appear at any time.
pub const SCHEMA_VERSION: u32 = 1;

/// How a command ended, and the process exit code it maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Everything passed: exit 0.
    Success,
    /// The run completed but some steps failed: exit 1.
    Partial,
    /// Bad arguments or configuration, or nothing useful ran: exit 2.
    Failure,
}

impl Outcome {
    /// The process exit code: 0, 1 or 2.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Partial => 1,
            Self::Failure => 2,
        }
    }
}
