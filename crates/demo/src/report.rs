//! The report of a `demo kms|identity|all` run: what `--output json` prints as its one
//! document, and what the human output summarises. The schema is `docs/report.schema.json`;
//! fields listed there are stable (new fields may be added; none removed or changed without a
//! new `schema_version`).

use std::path::PathBuf;

use serde::Serialize;

use crate::engine::{RunResult, Status, StepReport};
use crate::{ErrorReport, Outcome, SCHEMA_VERSION};

/// Which runtime ran the stack, and why that one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeChoice {
    /// `embedded` or `docker`.
    pub name: &'static str,
    /// Why (`--runtime embedded`, `auto: no Docker engine answered at /var/run/docker.sock`).
    pub reason: String,
}

/// A service the run brought up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceReport {
    /// `kms`, `identity`.
    pub name: String,
    /// Its base URL.
    pub url: String,
    /// `healthy`, `unhealthy` or `unknown`.
    pub health: &'static str,
}

/// Files a person or CI needs afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Artifacts {
    /// The CA bundle to trust.
    pub ca_bundle: PathBuf,
    /// The state directory.
    pub state_dir: PathBuf,
    /// Where the demo credentials are written.
    pub credentials_file: PathBuf,
}

impl Artifacts {
    /// Where a state directory keeps what a person needs afterwards.
    pub fn of(state: &crate::state::State) -> Self {
        Self {
            ca_bundle: state.ca_bundle(),
            state_dir: state.root().to_owned(),
            credentials_file: state.credentials_file(),
        }
    }
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `kms`, `identity` or `all`.
    pub command: String,
    /// The runtime.
    pub runtime: RuntimeChoice,
    /// `dev`, `demo`, `ci` or `prod`.
    pub profile: String,
    /// success / partial / failure.
    pub outcome: Outcome,
    /// 0, 1 or 2.
    pub exit_code: u8,
    /// Wall time of the run.
    pub duration_ms: u64,
    /// Every step, in run order.
    pub steps: Vec<StepReport>,
    /// One entry per failed step: what, why, what to do.
    pub errors: Vec<ErrorReport>,
    /// The services and their health.
    pub services: Vec<ServiceReport>,
    /// Files to use afterwards.
    pub artifacts: Artifacts,
    /// What the run left out or degraded and why (a missing telemetry image, a profile without
    /// flows), said plainly; empty when nothing was.
    pub notes: Vec<String>,
}

impl Report {
    /// The report of `run`.
    pub fn new(
        command: &str,
        runtime: RuntimeChoice,
        profile: &str,
        run: &RunResult,
        services: Vec<ServiceReport>,
        artifacts: Artifacts,
    ) -> Self {
        let errors = run
            .steps
            .iter()
            .filter(|s| s.status == Status::Failed)
            .filter_map(|s| {
                s.error.as_ref().map(|e| ErrorReport {
                    step: Some(s.id.clone()),
                    code: format!("demo::step::{}", s.phase_name()),
                    message: e.message.clone(),
                    causes: e.causes.clone(),
                    hint: e.hint.clone(),
                })
            })
            .collect();
        Self {
            schema_version: SCHEMA_VERSION,
            command: command.to_owned(),
            runtime,
            profile: profile.to_owned(),
            outcome: run.outcome,
            exit_code: run.outcome.exit_code(),
            duration_ms: run.duration_ms,
            steps: run.steps.clone(),
            errors,
            services,
            artifacts,
            notes: Vec::new(),
        }
    }

    /// The report of a run that could not begin (no Docker engine where one was asked for, no
    /// async runtime): no steps, the one error, exit 2. Still a whole report, so a consumer of
    /// `--output json` always has one document to read.
    pub fn failure(
        command: &str,
        runtime: RuntimeChoice,
        profile: &str,
        state: &crate::state::State,
        error: ErrorReport,
    ) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            command: command.to_owned(),
            runtime,
            profile: profile.to_owned(),
            outcome: Outcome::Failure,
            exit_code: Outcome::Failure.exit_code(),
            duration_ms: 0,
            steps: Vec::new(),
            errors: vec![error],
            services: Vec::new(),
            artifacts: Artifacts::of(state),
            notes: Vec::new(),
        }
    }

    /// The report with `notes`.
    pub fn with_notes(mut self, notes: Vec<String>) -> Self {
        self.notes = notes;
        self
    }
}
