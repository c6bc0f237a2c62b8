//! The step engine behind `demo kms|identity|all`: named steps in phases, with dependencies,
//! timeouts and retries, run in order and reported one by one.
//!
//! Rules, each of them tested:
//! * Steps run phase by phase (setup, start, health, then seed, verify and flows together,
//!   teardown; see [`Phase::group`]). Within a group, every step whose dependencies have passed
//!   runs at once — independent checks overlap — with at most one CPU-heavy step per core;
//!   teardown runs one step at a time in plan order. The report lists steps in plan order
//!   whatever the timing.
//! * A step whose dependency did not pass is **skipped** with the reason — never run, never
//!   passed.
//! * A failing step is retried only when its error is transient (connection refused, 503),
//!   with exponential backoff; anything else fails at once.
//! * Continue-on-error by default: every step that can still run, runs. With fail-fast the
//!   first failure skips the rest. An interruption (Ctrl-C) skips what has not started.
//!   Teardown steps run in every case.
//! * Outcome: every step passed → success (exit 0); a *critical* step failed (the stack never
//!   came up, a service never became healthy) or nothing passed → failure (2); otherwise
//!   partial (1).

mod run;

pub use run::{Engine, EngineOptions, Event, EventKind, Observer, Plan, RunResult, Step, StepReport};

use std::time::Duration;

use serde::Serialize;

/// A step's id (`health.identity`): lower-case words separated by dots, at least two. Ids are
/// constants (`crate::stack::id`), so a dependency on a step that does not exist is a compile
/// error rather than a skipped step at run time; [`StepId::new`] checks the form, at compile
/// time in a `const`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepId(&'static str);

impl StepId {
    /// `id`, which must match `^[a-z0-9]+(\.[a-z0-9_-]+)+$` (the report schema's pattern).
    ///
    /// # Panics
    /// When `id` does not: in a `const`, that is a compile error.
    pub const fn new(id: &'static str) -> Self {
        assert!(Self::valid(id.as_bytes()), "a step id is lower-case words separated by dots");
        Self(id)
    }

    const fn valid(b: &[u8]) -> bool {
        let (mut i, mut dots, mut run) = (0, 0, 0);
        while i < b.len() {
            let c = b[i];
            if c == b'.' {
                if run == 0 {
                    return false;
                }
                dots += 1;
                run = 0;
            } else if c.is_ascii_lowercase() || c.is_ascii_digit() || (dots > 0 && (c == b'_' || c == b'-')) {
                run += 1;
            } else {
                return false;
            }
            i += 1;
        }
        dots > 0 && run > 0
    }

    /// The id as the report spells it.
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl From<&'static str> for StepId {
    fn from(id: &'static str) -> Self {
        Self::new(id)
    }
}

impl std::fmt::Display for StepId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// The phases, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// PKI, secrets, state directory.
    Setup,
    /// Bringing services up.
    Start,
    /// Waiting on the health chain.
    Health,
    /// Seeding accounts and keys.
    Seed,
    /// Checking that what was seeded exists and works.
    Verify,
    /// The end-to-end flows.
    Flows,
    /// Taking things down (always runs).
    Teardown,
}

impl Phase {
    /// Phases of one group overlap (their steps are ordered by their dependencies alone); the
    /// groups run one after another. Seed, verify and flows are one group: checks and flows
    /// that do not depend on each other run at once. Setup, start, health and teardown are each
    /// a group of their own: nothing checks a stack before it is healthy, nothing stops it
    /// before the checks are done.
    pub fn group(self) -> u8 {
        match self {
            Self::Setup => 0,
            Self::Start => 1,
            Self::Health => 2,
            Self::Seed | Self::Verify | Self::Flows => 3,
            Self::Teardown => 4,
        }
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It ran and succeeded.
    Passed,
    /// It ran and failed (after any retries).
    Failed,
    /// It did not run: a dependency did not pass, fail-fast stopped the run, or it was
    /// interrupted.
    Skipped,
}

/// Why a step failed: what failed, the cause chain, a hint, and whether retrying may help.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepError {
    /// What failed.
    pub message: String,
    /// Why, outermost first.
    pub causes: Vec<String>,
    /// What to do about it.
    pub hint: Option<String>,
    /// A transient error (connection refused, 503, timeout of one attempt) may be retried.
    #[serde(skip)]
    pub transient: bool,
}

impl StepError {
    /// A permanent failure.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), causes: Vec::new(), hint: None, transient: false }
    }

    /// A failure that a retry may cure.
    pub fn transient(message: impl Into<String>) -> Self {
        Self { transient: true, ..Self::new(message) }
    }

    /// From an error and its source chain.
    pub fn from_error(message: impl Into<String>, error: &(dyn std::error::Error + 'static)) -> Self {
        let mut causes = vec![error.to_string()];
        let mut source = error.source();
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        Self { message: message.into(), causes, hint: None, transient: false }
    }

    /// An error as it stands: its own message, and its sources as the causes (an engine's
    /// refusal keeps the engine's words).
    pub fn of(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut causes = Vec::new();
        let mut source = error.source();
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        Self { message: error.to_string(), causes, hint: None, transient: false }
    }

    /// The message followed by the causes: the whole chain, outermost first.
    pub fn causes_with_message(self) -> Vec<String> {
        std::iter::once(self.message).chain(self.causes).collect()
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Retry policy of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts after the first.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self { retries: 3, backoff: Duration::from_millis(250), max_backoff: Duration::from_secs(5) }
    }
}

impl Retry {
    /// The wait before retry number `n` (1-based): backoff × 2^(n−1), capped.
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1));
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}
