//! Running a plan.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use super::{Phase, Retry, Status, StepError};
use crate::Outcome;

type StepFuture = Pin<Box<dyn Future<Output = Result<(), StepError>> + Send>>;
type StepFn<C> = Arc<dyn Fn(Arc<C>) -> StepFuture + Send + Sync>;

/// One step of a plan. `C` is the run's context, shared by the steps (they write their
/// results into it through interior mutability).
pub struct Step<C> {
    id: String,
    phase: Phase,
    depends_on: Vec<String>,
    timeout: Option<Duration>,
    retry: Option<Retry>,
    critical: bool,
    run: StepFn<C>,
}

impl<C> std::fmt::Debug for Step<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step").field("id", &self.id).field("phase", &self.phase).finish_non_exhaustive()
    }
}

impl<C: Send + Sync + 'static> Step<C> {
    /// A step `id` (`health.identity`) in `phase` running `f`.
    pub fn new<F, Fut>(id: &str, phase: Phase, f: F) -> Self
    where
        F: Fn(Arc<C>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), StepError>> + Send + 'static,
    {
        Self {
            id: id.to_owned(),
            phase,
            depends_on: Vec::new(),
            timeout: None,
            retry: None,
            critical: false,
            run: Arc::new(move |c| Box::pin(f(c))),
        }
    }

    /// Runs only if these steps passed.
    pub fn after(mut self, ids: &[&str]) -> Self {
        self.depends_on.extend(ids.iter().map(|s| (*s).to_owned()));
        self
    }

    /// Each attempt may take at most this long.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Overrides the engine's retry policy for this step.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Its failure makes the whole run a failure (exit 2), not a partial result.
    pub fn critical(mut self) -> Self {
        self.critical = true;
        self
    }
}

/// An ordered list of steps.
#[derive(Debug)]
pub struct Plan<C> {
    steps: Vec<Step<C>>,
}

impl<C> Default for Plan<C> {
    fn default() -> Self {
        Self { steps: Vec::new() }
    }
}

impl<C: Send + Sync + 'static> Plan<C> {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a step.
    pub fn step(mut self, step: Step<C>) -> Self {
        self.steps.push(step);
        self
    }
}

/// Engine settings (the CLI's `--fail-fast`, `--retries`, `--retry-backoff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// Stop at the first failure.
    pub fail_fast: bool,
    /// Default retry policy.
    pub retry: Retry,
    /// Default per-attempt timeout.
    pub timeout: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self { fail_fast: false, retry: Retry::default(), timeout: Duration::from_secs(60) }
    }
}

/// What happened to one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepReport {
    /// Step id.
    pub id: String,
    /// Phase.
    pub phase: Phase,
    /// How it ended.
    pub status: Status,
    /// Time spent, all attempts included.
    pub duration_ms: u64,
    /// Attempts made (0 when skipped).
    pub attempts: u32,
    /// Why it failed, or why it was skipped.
    pub error: Option<StepError>,
}

impl StepReport {
    /// The phase's name (`health`), as reports and error codes spell it.
    pub fn phase_name(&self) -> &'static str {
        match self.phase {
            Phase::Setup => "setup",
            Phase::Start => "start",
            Phase::Health => "health",
            Phase::Seed => "seed",
            Phase::Verify => "verify",
            Phase::Flows => "flows",
            Phase::Teardown => "teardown",
        }
    }
}

/// Progress, as it happens (for the spinner, or one JSON line each with `--output structured`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Step id.
    pub step: String,
    /// Phase.
    pub phase: Phase,
    /// What happened.
    pub kind: EventKind,
    /// Attempt number (from 1) for started/retrying.
    pub attempt: u32,
    /// The error, for retrying/failed/skipped.
    pub error: Option<StepError>,
    /// The step's position in the run (from 1), for progress counters.
    pub index: usize,
    /// Steps in the run.
    pub total: usize,
}

/// Kinds of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// An attempt started.
    Started,
    /// An attempt failed transiently; another follows.
    Retrying,
    /// The step passed.
    Passed,
    /// The step failed.
    Failed,
    /// The step was skipped.
    Skipped,
}

/// Receives events.
pub trait Observer: Send + Sync {
    /// Called for every event, in order.
    fn event(&self, event: &Event);

    /// Progress inside a long step (an image pull): a short line that replaces the previous
    /// one. Ignored unless the observer shows progress.
    fn progress(&self, _step: &str, _message: &str) {}
}

impl Observer for () {
    fn event(&self, _: &Event) {}
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunResult {
    /// success / partial / failure.
    pub outcome: Outcome,
    /// Every step, in the order they ran (or were skipped).
    pub steps: Vec<StepReport>,
    /// Wall time.
    pub duration_ms: u64,
    /// True when an interruption stopped the run.
    pub interrupted: bool,
}

/// Runs plans.
pub struct Engine {
    options: EngineOptions,
    observer: Arc<dyn Observer>,
    /// (position of the current step from 1, steps in the run), for events.
    progress: std::sync::Mutex<(usize, usize)>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("options", &self.options).finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine reporting to `observer`.
    pub fn new(options: EngineOptions, observer: Arc<dyn Observer>) -> Self {
        Self { options, observer, progress: std::sync::Mutex::new((0, 0)) }
    }

    /// Runs `plan` with `context`. When `interrupt` turns true, steps not yet started are
    /// skipped (teardown still runs) and the running attempt is abandoned.
    pub async fn run<C: Send + Sync + 'static>(
        &self,
        plan: Plan<C>,
        context: Arc<C>,
        mut interrupt: watch::Receiver<bool>,
    ) -> RunResult {
        let started = Instant::now();
        let mut steps = plan.steps;
        // Stable: plan order within a phase.
        steps.sort_by_key(|s| s.phase);
        let mut status: HashMap<String, Status> = HashMap::new();
        let mut reports = Vec::new();
        let mut stop: Option<String> = None;
        let mut critical_failed = false;

        for (position, step) in steps.iter().enumerate() {
            *self.progress.lock().unwrap_or_else(|e| e.into_inner()) = (position + 1, steps.len());
            let teardown = step.phase == Phase::Teardown;
            if *interrupt.borrow() && stop.is_none() {
                stop = Some("interrupted".to_owned());
            }
            let blocked =
                step.depends_on.iter().find(|d| status.get(*d) != Some(&Status::Passed)).map(
                    |d| match status.get(d) {
                        Some(Status::Failed) => format!("skipped: depends on {d}, which failed"),
                        Some(_) => format!("skipped: depends on {d}, which was skipped"),
                        None => format!("skipped: depends on {d}, which is not part of this run"),
                    },
                );
            let reason = match (&stop, teardown) {
                (Some(why), false) => Some(format!("skipped: {why}")),
                _ => blocked,
            };
            if let Some(reason) = reason {
                let error = StepError::new(reason);
                self.emit(step, EventKind::Skipped, 0, Some(error.clone()));
                status.insert(step.id.clone(), Status::Skipped);
                reports.push(StepReport {
                    id: step.id.clone(),
                    phase: step.phase,
                    status: Status::Skipped,
                    duration_ms: 0,
                    attempts: 0,
                    error: Some(error),
                });
                continue;
            }
            let report = self.run_step(step, &context, &mut interrupt).await;
            if report.status == Status::Failed {
                critical_failed |= step.critical;
                if self.options.fail_fast && stop.is_none() {
                    stop = Some(format!("--fail-fast stopped the run after {} failed", step.id));
                }
            }
            status.insert(step.id.clone(), report.status);
            reports.push(report);
        }

        let passed = reports.iter().filter(|r| r.status == Status::Passed).count();
        let all_passed = passed == reports.len();
        let interrupted = stop.as_deref() == Some("interrupted") || *interrupt.borrow();
        let outcome = if interrupted || critical_failed || passed == 0 {
            Outcome::Failure
        } else if all_passed {
            Outcome::Success
        } else {
            Outcome::Partial
        };
        RunResult { outcome, steps: reports, duration_ms: millis(started.elapsed()), interrupted }
    }

    async fn run_step<C: Send + Sync + 'static>(
        &self,
        step: &Step<C>,
        context: &Arc<C>,
        interrupt: &mut watch::Receiver<bool>,
    ) -> StepReport {
        let started = Instant::now();
        let retry = step.retry.unwrap_or(self.options.retry);
        let timeout = step.timeout.unwrap_or(self.options.timeout);
        let mut attempt = 0;
        let error = loop {
            attempt += 1;
            self.emit(step, EventKind::Started, attempt, None);
            let future = (step.run)(context.clone());
            let result = tokio::select! {
                r = tokio::time::timeout(timeout, future) => match r {
                    Ok(r) => r,
                    Err(_) => Err(StepError::transient(format!("{} did not finish within {}", step.id, humanize(timeout)))),
                },
                _ = wait_true(interrupt), if step.phase != Phase::Teardown => {
                    Err(StepError::new(format!("{} was interrupted", step.id)))
                }
            };
            match result {
                Ok(()) => break None,
                Err(e) if e.transient && attempt <= retry.retries && !*interrupt.borrow() => {
                    self.emit(step, EventKind::Retrying, attempt, Some(e));
                    tokio::time::sleep(retry.delay(attempt)).await;
                }
                Err(e) => break Some(e),
            }
        };
        let status = if error.is_none() { Status::Passed } else { Status::Failed };
        let kind = if error.is_none() { EventKind::Passed } else { EventKind::Failed };
        self.emit(step, kind, attempt, error.clone());
        StepReport {
            id: step.id.clone(),
            phase: step.phase,
            status,
            duration_ms: millis(started.elapsed()),
            attempts: attempt,
            error,
        }
    }

    fn emit<C>(&self, step: &Step<C>, kind: EventKind, attempt: u32, error: Option<StepError>) {
        let (index, total) = *self.progress.lock().unwrap_or_else(|e| e.into_inner());
        self.observer.event(&Event {
            step: step.id.clone(),
            phase: step.phase,
            kind,
            attempt,
            error,
            index,
            total,
        });
    }
}

async fn wait_true(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        // The sender is gone: no interruption can come.
        std::future::pending::<()>().await;
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn humanize(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
