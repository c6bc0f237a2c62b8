//! Running a plan.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;

use super::{Phase, Retry, Status, StepError, StepId};
use crate::Outcome;

type StepFuture = Pin<Box<dyn Future<Output = Result<(), StepError>> + Send>>;
type StepFn<C> = Arc<dyn Fn(Arc<C>) -> StepFuture + Send + Sync>;

/// One step of a plan. `C` is the run's context, shared by the steps (they write their
/// results into it through interior mutability).
pub struct Step<C> {
    id: StepId,
    phase: Phase,
    depends_on: Vec<StepId>,
    timeout: Option<Duration>,
    retry: Option<Retry>,
    critical: bool,
    heavy: bool,
    verifies: Option<&'static str>,
    run: StepFn<C>,
}

impl<C> std::fmt::Debug for Step<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step").field("id", &self.id).field("phase", &self.phase).finish_non_exhaustive()
    }
}

impl<C: Send + Sync + 'static> Step<C> {
    /// A step `id` (`health.identity`) in `phase` running `f`.
    pub fn new<F, Fut>(id: impl Into<StepId>, phase: Phase, f: F) -> Self
    where
        F: Fn(Arc<C>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), StepError>> + Send + 'static,
    {
        Self {
            id: id.into(),
            phase,
            depends_on: Vec::new(),
            timeout: None,
            retry: None,
            critical: false,
            heavy: false,
            verifies: None,
            run: Arc::new(move |c| Box::pin(f(c))),
        }
    }

    /// Runs only if these steps passed (and, in the same phase, after they finished).
    pub fn after<I: Into<StepId> + Copy>(mut self, ids: &[I]) -> Self {
        self.depends_on.extend(ids.iter().map(|s| (*s).into()));
        self
    }

    /// What the step checks when it passes, for the report (`ID token signature via JWKS,
    /// iss, aud, exp, nonce`): a reader of the JSON knows what passed, not only that it did.
    pub fn verifies(mut self, what: &'static str) -> Self {
        self.verifies = Some(what);
        self
    }

    /// The step costs CPU in this process (password hashing by in-process services): at most
    /// as many heavy steps run at once as there are cores.
    pub fn heavy(mut self) -> Self {
        self.heavy = true;
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
    /// What the step checks; what was proven when it passed.
    pub verified: Option<&'static str>,
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
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("options", &self.options).finish_non_exhaustive()
    }
}

/// The run's bookkeeping, shared by the phases.
struct Ledger {
    status: HashMap<StepId, Status>,
    /// By position in the sorted plan: the report stays in plan order, however steps overlap.
    reports: Vec<Option<StepReport>>,
    stop: Option<String>,
    critical_failed: bool,
}

impl Engine {
    /// An engine reporting to `observer`.
    pub fn new(options: EngineOptions, observer: Arc<dyn Observer>) -> Self {
        Self { options, observer }
    }

    /// Runs `plan` with `context`. Phases run one after another; within a phase every step
    /// whose dependencies have passed runs at once (heavy steps at most one per core; teardown
    /// one at a time, in plan order). When `interrupt` turns true, steps not yet started are
    /// skipped (teardown still runs) and running attempts are abandoned.
    pub async fn run<C: Send + Sync + 'static>(
        &self,
        plan: Plan<C>,
        context: Arc<C>,
        interrupt: watch::Receiver<bool>,
    ) -> RunResult {
        let started = Instant::now();
        let mut steps = plan.steps;
        // Stable: plan order within a phase.
        steps.sort_by_key(|s| s.phase);
        let mut ledger = Ledger {
            status: HashMap::new(),
            reports: vec![None; steps.len()],
            stop: None,
            critical_failed: false,
        };
        let mut first = 0;
        while first < steps.len() {
            let group = steps[first].phase.group();
            let end = first + steps[first..].iter().take_while(|s| s.phase.group() == group).count();
            self.run_phase(&steps, first..end, &context, &interrupt, &mut ledger).await;
            first = end;
        }
        let reports: Vec<StepReport> = ledger.reports.into_iter().flatten().collect();
        let passed = reports.iter().filter(|r| r.status == Status::Passed).count();
        let all_passed = passed == reports.len();
        let interrupted = ledger.stop.as_deref() == Some("interrupted") || *interrupt.borrow();
        let outcome = if interrupted || ledger.critical_failed || passed == 0 {
            Outcome::Failure
        } else if all_passed {
            Outcome::Success
        } else {
            Outcome::Partial
        };
        RunResult { outcome, steps: reports, duration_ms: millis(started.elapsed()), interrupted }
    }

    /// Runs the steps at `range` (one group of phases) as their dependencies allow.
    async fn run_phase<C: Send + Sync + 'static>(
        &self,
        steps: &[Step<C>],
        range: std::ops::Range<usize>,
        context: &Arc<C>,
        interrupt: &watch::Receiver<bool>,
        ledger: &mut Ledger,
    ) {
        let total = steps.len();
        let in_phase = |id: &StepId| steps[range.clone()].iter().any(|s| s.id == *id);
        let heavy_limit = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let mut pending: Vec<usize> = range.clone().collect();
        let mut running = FuturesUnordered::new();
        let mut heavy_running = 0;
        loop {
            let mut k = 0;
            while k < pending.len() {
                let position = pending[k];
                let step = &steps[position];
                let teardown = step.phase == Phase::Teardown;
                if teardown && !running.is_empty() {
                    break; // teardown runs one step at a time, in plan order
                }
                if *interrupt.borrow() && ledger.stop.is_none() {
                    ledger.stop = Some("interrupted".to_owned());
                }
                let waiting = step.depends_on.iter().any(|d| in_phase(d) && !ledger.status.contains_key(d));
                let blocked = || {
                    step.depends_on.iter().find(|d| ledger.status.get(*d) != Some(&Status::Passed)).map(|d| {
                        match ledger.status.get(d) {
                            Some(Status::Failed) => format!("skipped: depends on {d}, which failed"),
                            Some(_) => format!("skipped: depends on {d}, which was skipped"),
                            None => format!("skipped: depends on {d}, which is not part of this run"),
                        }
                    })
                };
                let reason = match (&ledger.stop, teardown) {
                    (Some(why), false) => Some(format!("skipped: {why}")),
                    _ if waiting => {
                        k += 1;
                        continue;
                    }
                    _ => blocked(),
                };
                if let Some(reason) = reason {
                    self.skip(step, position, total, reason, ledger);
                    pending.remove(k);
                    continue;
                }
                if step.heavy && heavy_running >= heavy_limit {
                    k += 1;
                    continue;
                }
                pending.remove(k);
                heavy_running += usize::from(step.heavy);
                let mut interrupt = interrupt.clone();
                running.push(async move {
                    (position, self.run_step(step, context, &mut interrupt, position, total).await)
                });
                if teardown {
                    break;
                }
            }
            let Some((position, report)) = running.next().await else {
                // Nothing runs and nothing can start: what is left waits on itself (a cycle).
                for position in pending.drain(..) {
                    let reason = "skipped: its dependencies form a cycle".to_owned();
                    self.skip(&steps[position], position, total, reason, ledger);
                }
                return;
            };
            let step = &steps[position];
            heavy_running -= usize::from(step.heavy);
            if report.status == Status::Failed {
                ledger.critical_failed |= step.critical;
                if self.options.fail_fast && ledger.stop.is_none() {
                    ledger.stop = Some(format!("--fail-fast stopped the run after {} failed", step.id));
                }
            }
            ledger.status.insert(step.id, report.status);
            ledger.reports[position] = Some(report);
        }
    }

    /// Records `step` as skipped, saying why.
    fn skip<C>(&self, step: &Step<C>, position: usize, total: usize, reason: String, ledger: &mut Ledger) {
        let error = StepError::new(reason);
        self.emit(step, EventKind::Skipped, 0, Some(error.clone()), position, total);
        ledger.status.insert(step.id, Status::Skipped);
        ledger.reports[position] = Some(StepReport {
            id: step.id.to_string(),
            phase: step.phase,
            status: Status::Skipped,
            duration_ms: 0,
            attempts: 0,
            error: Some(error),
            verified: step.verifies,
        });
    }

    async fn run_step<C: Send + Sync + 'static>(
        &self,
        step: &Step<C>,
        context: &Arc<C>,
        interrupt: &mut watch::Receiver<bool>,
        position: usize,
        total: usize,
    ) -> StepReport {
        let started = Instant::now();
        let retry = step.retry.unwrap_or(self.options.retry);
        let timeout = step.timeout.unwrap_or(self.options.timeout);
        let mut attempt = 0;
        let error = loop {
            attempt += 1;
            self.emit(step, EventKind::Started, attempt, None, position, total);
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
                    self.emit(step, EventKind::Retrying, attempt, Some(e), position, total);
                    tokio::time::sleep(retry.delay(attempt)).await;
                }
                Err(e) => break Some(e),
            }
        };
        let status = if error.is_none() { Status::Passed } else { Status::Failed };
        let kind = if error.is_none() { EventKind::Passed } else { EventKind::Failed };
        self.emit(step, kind, attempt, error.clone(), position, total);
        StepReport {
            id: step.id.to_string(),
            phase: step.phase,
            status,
            duration_ms: millis(started.elapsed()),
            attempts: attempt,
            error,
            verified: step.verifies,
        }
    }

    fn emit<C>(
        &self,
        step: &Step<C>,
        kind: EventKind,
        attempt: u32,
        error: Option<StepError>,
        position: usize,
        total: usize,
    ) {
        self.observer.event(&Event {
            step: step.id.to_string(),
            phase: step.phase,
            kind,
            attempt,
            error,
            index: position + 1,
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
