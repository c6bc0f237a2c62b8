//! The step engine's rules, on a paused clock.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use demo::Outcome;
use demo::engine::{
    Engine, EngineOptions, Event, EventKind, Observer, Phase, Plan, Retry, Status, Step, StepError,
};
use tokio::sync::watch;

#[derive(Default)]
struct Ctx {
    log: Mutex<Vec<String>>,
    calls: AtomicU32,
}

impl Ctx {
    fn ran(&self, id: &str) {
        self.log.lock().unwrap().push(id.to_owned());
    }
}

#[derive(Default)]
struct Collect(Mutex<Vec<Event>>);

impl Observer for Collect {
    fn event(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

fn ok(id: &'static str, phase: Phase) -> Step<Ctx> {
    Step::new(id, phase, move |c: Arc<Ctx>| async move {
        c.ran(id);
        Ok(())
    })
}

fn fail(id: &'static str, phase: Phase) -> Step<Ctx> {
    Step::new(id, phase, move |c: Arc<Ctx>| async move {
        c.ran(id);
        Err(StepError::new(format!("{id} broke")).with_hint("fix it"))
    })
}

async fn run(plan: Plan<Ctx>, options: EngineOptions) -> (demo::engine::RunResult, Arc<Ctx>) {
    let ctx = Arc::new(Ctx::default());
    let (_tx, rx) = watch::channel(false);
    let result = Engine::new(options, Arc::new(())).run(plan, ctx.clone(), rx).await;
    (result, ctx)
}

fn status(result: &demo::engine::RunResult, id: &str) -> Status {
    result.steps.iter().find(|s| s.id == id).unwrap().status
}

#[tokio::test(start_paused = true)]
async fn phases_order_the_run_and_all_passed_is_success() {
    let plan = Plan::new()
        .step(ok("flow.a", Phase::Flows))
        .step(ok("pki.generate", Phase::Setup))
        .step(ok("health.kms", Phase::Health))
        .step(ok("stack.down", Phase::Teardown))
        .step(ok("stack.up", Phase::Start));
    let (result, ctx) = run(plan, EngineOptions::default()).await;
    assert_eq!(*ctx.log.lock().unwrap(), ["pki.generate", "stack.up", "health.kms", "flow.a", "stack.down"]);
    assert_eq!(result.outcome, Outcome::Success);
    assert_eq!(result.outcome.exit_code(), 0);
    assert!(result.steps.iter().all(|s| s.attempts == 1 && s.error.is_none()));
}

#[tokio::test(start_paused = true)]
async fn dependants_of_a_failure_are_skipped_and_the_rest_still_runs() {
    let plan = Plan::new()
        .step(ok("seed.kms", Phase::Seed))
        .step(fail("flow.token", Phase::Flows).after(&["seed.kms"]))
        .step(ok("flow.encrypt", Phase::Flows).after(&["flow.token"]))
        .step(ok("flow.decrypt", Phase::Flows).after(&["flow.encrypt"]))
        .step(ok("flow.other", Phase::Flows).after(&["seed.kms"]));
    let (result, ctx) = run(plan, EngineOptions::default()).await;
    assert_eq!(status(&result, "flow.token"), Status::Failed);
    assert_eq!(status(&result, "flow.encrypt"), Status::Skipped);
    assert_eq!(status(&result, "flow.decrypt"), Status::Skipped);
    assert_eq!(status(&result, "flow.other"), Status::Passed, "continue-on-error runs what still can");
    let skipped = result.steps.iter().find(|s| s.id == "flow.decrypt").unwrap();
    assert_eq!(skipped.attempts, 0);
    assert!(skipped.error.as_ref().unwrap().message.contains("depends on flow.encrypt, which was skipped"));
    let failed = result.steps.iter().find(|s| s.id == "flow.token").unwrap();
    assert_eq!(failed.error.as_ref().unwrap().hint.as_deref(), Some("fix it"));
    assert!(!ctx.log.lock().unwrap().contains(&"flow.encrypt".to_owned()), "a skipped step never runs");
    assert_eq!(result.outcome, Outcome::Partial);
    assert_eq!(result.outcome.exit_code(), 1);
}

#[tokio::test(start_paused = true)]
async fn transient_errors_are_retried_with_exponential_backoff() {
    let plan = Plan::new().step(Step::new("health.identity", Phase::Health, |c: Arc<Ctx>| async move {
        let n = c.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n < 3 { Err(StepError::transient("connection refused")) } else { Ok(()) }
    }));
    let started = tokio::time::Instant::now();
    let (result, _) = run(plan, EngineOptions::default()).await;
    assert_eq!(result.steps[0].status, Status::Passed);
    assert_eq!(result.steps[0].attempts, 3);
    // 250 ms before the second attempt, 500 ms before the third.
    assert_eq!(started.elapsed(), Duration::from_millis(750));
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried_and_retries_run_out() {
    let permanent = Plan::new().step(fail("verify.keys", Phase::Verify));
    let (result, _) = run(permanent, EngineOptions::default()).await;
    assert_eq!(result.steps[0].attempts, 1);

    let always_503 = Plan::new().step(Step::new("health.kms", Phase::Health, |_c: Arc<Ctx>| async move {
        Err(StepError::transient("503 Service Unavailable"))
    }));
    let options =
        EngineOptions { retry: Retry { retries: 2, ..Retry::default() }, ..EngineOptions::default() };
    let (result, _) = run(always_503, options).await;
    assert_eq!(result.steps[0].status, Status::Failed);
    assert_eq!(result.steps[0].attempts, 3);
    assert_eq!(result.outcome, Outcome::Failure, "nothing passed");
}

#[tokio::test(start_paused = true)]
async fn a_hung_attempt_times_out_and_is_retried() {
    let plan = Plan::new()
        .step(
            Step::new("health.db", Phase::Health, |_c: Arc<Ctx>| async move {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            })
            .timeout(Duration::from_secs(2))
            .retry(Retry {
                retries: 1,
                backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
            }),
        )
        .step(ok("seed.after", Phase::Seed));
    let (result, _) = run(plan, EngineOptions::default()).await;
    let step = &result.steps[0];
    assert_eq!((step.status, step.attempts), (Status::Failed, 2));
    assert!(step.error.as_ref().unwrap().message.contains("did not finish within 2s"), "{:?}", step.error);
}

#[tokio::test(start_paused = true)]
async fn fail_fast_skips_the_rest_but_teardown_runs() {
    let plan = Plan::new()
        .step(fail("stack.up", Phase::Start))
        .step(ok("seed.x", Phase::Seed))
        .step(ok("stack.down", Phase::Teardown));
    let options = EngineOptions { fail_fast: true, ..EngineOptions::default() };
    let (result, ctx) = run(plan, options).await;
    assert_eq!(status(&result, "seed.x"), Status::Skipped);
    let why = &result.steps.iter().find(|s| s.id == "seed.x").unwrap().error.as_ref().unwrap().message;
    assert!(why.contains("--fail-fast stopped the run after stack.up failed"), "{why}");
    assert_eq!(status(&result, "stack.down"), Status::Passed);
    assert!(ctx.log.lock().unwrap().contains(&"stack.down".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn a_critical_failure_is_a_failure_not_a_partial_run() {
    let plan =
        Plan::new().step(ok("pki.generate", Phase::Setup)).step(fail("health.kms", Phase::Health).critical());
    let (result, _) = run(plan, EngineOptions::default()).await;
    assert_eq!(result.outcome, Outcome::Failure);
    assert_eq!(result.outcome.exit_code(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_interruption_stops_the_run_and_teardown_still_runs() {
    let ctx = Arc::new(Ctx::default());
    let (tx, rx) = watch::channel(false);
    let plan = Plan::new()
        .step(Step::new("stack.up", Phase::Start, |_c: Arc<Ctx>| async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        }))
        .step(ok("seed.x", Phase::Seed))
        .step(ok("stack.down", Phase::Teardown));
    let engine = Engine::new(EngineOptions::default(), Arc::new(()));
    let run = tokio::spawn({
        let ctx = ctx.clone();
        async move { engine.run(plan, ctx, rx).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    tx.send(true).unwrap();
    let result = run.await.unwrap();
    assert!(result.interrupted);
    assert_eq!(status(&result, "stack.up"), Status::Failed);
    assert_eq!(status(&result, "seed.x"), Status::Skipped);
    assert_eq!(status(&result, "stack.down"), Status::Passed, "teardown runs after Ctrl-C");
    assert_eq!(result.outcome, Outcome::Failure);
}

#[tokio::test(start_paused = true)]
async fn unknown_dependencies_skip_and_observers_see_every_event_in_order() {
    let collect = Arc::new(Collect::default());
    let plan = Plan::new()
        .step(Step::new("health.x", Phase::Health, |c: Arc<Ctx>| async move {
            let n = c.calls.fetch_add(1, Ordering::SeqCst);
            if n == 0 { Err(StepError::transient("refused")) } else { Ok(()) }
        }))
        .step(ok("flow.y", Phase::Flows).after(&["seed.missing"]));
    let (_tx, rx) = watch::channel(false);
    let result =
        Engine::new(EngineOptions::default(), collect.clone()).run(plan, Arc::new(Ctx::default()), rx).await;
    assert!(result.steps[1].error.as_ref().unwrap().message.contains("not part of this run"));
    let kinds: Vec<(String, EventKind, u32)> =
        collect.0.lock().unwrap().iter().map(|e| (e.step.clone(), e.kind, e.attempt)).collect();
    assert_eq!(
        kinds,
        [
            ("health.x".to_owned(), EventKind::Started, 1),
            ("health.x".to_owned(), EventKind::Retrying, 1),
            ("health.x".to_owned(), EventKind::Started, 2),
            ("health.x".to_owned(), EventKind::Passed, 2),
            ("flow.y".to_owned(), EventKind::Skipped, 0),
        ]
    );
}

#[test]
fn backoff_doubles_and_is_capped() {
    let r = Retry { retries: 10, backoff: Duration::from_millis(250), max_backoff: Duration::from_secs(1) };
    assert_eq!(r.delay(1), Duration::from_millis(250));
    assert_eq!(r.delay(2), Duration::from_millis(500));
    assert_eq!(r.delay(3), Duration::from_secs(1));
    assert_eq!(r.delay(30), Duration::from_secs(1));
}

/// A step that takes `secs` seconds of (paused) time and notes when it started and ended.
fn slow(id: &'static str, phase: Phase, secs: u64) -> Step<Ctx> {
    Step::new(id, phase, move |c: Arc<Ctx>| async move {
        c.ran(&format!("{id} start"));
        tokio::time::sleep(Duration::from_secs(secs)).await;
        c.ran(&format!("{id} end"));
        Ok(())
    })
}

#[tokio::test(start_paused = true)]
async fn independent_steps_overlap_and_the_report_keeps_plan_order() {
    let started = tokio::time::Instant::now();
    let plan = Plan::new()
        .step(slow("health.x", Phase::Health, 1))
        .step(slow("verify.a", Phase::Verify, 3))
        .step(slow("verify.b", Phase::Verify, 1))
        .step(slow("verify.c", Phase::Verify, 2).after(&["verify.b"]))
        .step(slow("flow.d", Phase::Flows, 1))
        .step(slow("flow.e", Phase::Flows, 1).after(&["verify.a"]));
    let (result, ctx) = run(plan, EngineOptions::default()).await;
    // health (1 s), then: a (3 s) beside b then c (1 s + 2 s) and d (1 s); e after a (1 s).
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    let ids: Vec<&str> = result.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        ["health.x", "verify.a", "verify.b", "verify.c", "flow.d", "flow.e"],
        "plan order, not finishing order"
    );
    let log = ctx.log.lock().unwrap().clone();
    let at = |e: &str| log.iter().position(|l| l == e).unwrap();
    assert!(
        at("health.x end") < at("verify.a start"),
        "nothing is checked before the stack is healthy: {log:?}"
    );
    assert!(at("verify.b end") < at("verify.c start"), "a dependency finishes first: {log:?}");
    assert!(at("flow.d start") < at("verify.a end"), "verify and flows overlap: {log:?}");
    assert!(at("verify.a end") < at("flow.e start"), "{log:?}");
    assert_eq!(result.outcome, Outcome::Success);
}

#[tokio::test(start_paused = true)]
async fn heavy_steps_run_at_most_one_per_core_and_teardown_one_at_a_time() {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get) as u64;
    let started = tokio::time::Instant::now();
    let mut plan = Plan::new();
    for id in ["verify.h1", "verify.h2", "verify.h3", "verify.h4", "verify.h5", "verify.h6"] {
        plan = plan.step(slow(id, Phase::Verify, 1).heavy());
    }
    let plan =
        plan.step(slow("stack.down1", Phase::Teardown, 1)).step(slow("stack.down2", Phase::Teardown, 1));
    let (result, ctx) = run(plan, EngineOptions::default()).await;
    assert_eq!(result.outcome, Outcome::Success);
    // Six one-second heavy steps on `cores` cores, then two teardown steps in turn.
    assert_eq!(started.elapsed(), Duration::from_secs(6u64.div_ceil(cores) + 2));
    let log = ctx.log.lock().unwrap().clone();
    let at = |e: &str| log.iter().position(|l| l == e).unwrap();
    assert!(at("stack.down1 end") < at("stack.down2 start"), "{log:?}");
}

#[tokio::test(start_paused = true)]
async fn a_dependency_cycle_skips_its_steps_instead_of_hanging() {
    let plan = Plan::new()
        .step(ok("verify.a", Phase::Verify).after(&["verify.b"]))
        .step(ok("verify.b", Phase::Verify).after(&["verify.a"]))
        .step(ok("verify.c", Phase::Verify));
    let (result, _) = run(plan, EngineOptions::default()).await;
    assert_eq!(status(&result, "verify.c"), Status::Passed);
    for id in ["verify.a", "verify.b"] {
        assert_eq!(status(&result, id), Status::Skipped);
        let step = result.steps.iter().find(|s| s.id == id).unwrap();
        assert!(step.error.as_ref().unwrap().message.contains("cycle"), "{step:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_failure_skips_its_dependants_in_the_same_phase_and_fail_fast_stops_the_rest() {
    let plan = Plan::new()
        .step(fail("verify.a", Phase::Verify))
        .step(ok("verify.b", Phase::Verify).after(&["verify.a"]))
        .step(slow("verify.c", Phase::Verify, 1))
        .step(ok("flow.d", Phase::Flows).after(&["verify.c"]));
    let (result, _) = run(plan, EngineOptions { fail_fast: true, ..EngineOptions::default() }).await;
    assert_eq!(status(&result, "verify.a"), Status::Failed);
    assert_eq!(status(&result, "verify.b"), Status::Skipped);
    // c had started alongside a: it finishes; what had not started is skipped.
    assert_eq!(status(&result, "verify.c"), Status::Passed);
    assert_eq!(status(&result, "flow.d"), Status::Skipped);
}

#[test]
fn step_ids_have_the_reports_form() {
    use demo::engine::StepId;
    assert_eq!(StepId::new("flow.identity.code-pkce").as_str(), "flow.identity.code-pkce");
    for bad in ["health", "Health.kms", "health..kms", ".kms", "health.", "a b.c", "-x.y"] {
        assert!(std::panic::catch_unwind(|| StepId::new(bad)).is_err(), "{bad} was accepted");
    }
}
