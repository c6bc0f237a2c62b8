//! `demo kms|identity|all`, `demo status` and `demo down`: picks the runtime, runs the plan and
//! hands what happened to the [`Printer`] — this module decides, the printer writes.

use std::time::Duration;

use crate::cli::RunRequest;
use crate::render::Printer;
use crate::report::{Report, RuntimeChoice};
use crate::runtime::Runtime;
use crate::state::State;
use crate::{ErrorReport, Outcome};

/// `--runtime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeArg {
    /// Docker if an engine answers, else embedded.
    Auto,
    /// In-process on loopback.
    Embedded,
    /// Compose stacks through the Docker API.
    Docker,
}

/// How long `--runtime auto|docker` waits for a Docker engine to answer.
const DOCKER_PROBE: Duration = Duration::from_secs(2);

/// Runs and returns the exit code. A run that cannot begin still prints one whole report.
pub fn run_blocking(request: RunRequest, printer: &Printer) -> u8 {
    let RunRequest { mut options, runtime: asked, keep_running } = request;
    let cannot_begin = |runtime: Runtime, reason: &str, error: ErrorReport| {
        let report = Report::failure(
            options.stack.command(),
            RuntimeChoice { name: runtime.name(), reason: reason.to_owned() },
            options.profile.name(),
            &options.state,
            error,
        );
        printer.report(&report);
        report.exit_code
    };
    let async_runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            let error = no_async_runtime(&e);
            return cannot_begin(Runtime::Embedded, "the async runtime did not start", error);
        }
    };
    // Docker when asked for, or for auto when an engine answers; else embedded, saying why.
    let probe = || async_runtime.block_on(compose_engine::Engine::connect(DOCKER_PROBE));
    let (runtime, reason) = match asked {
        RuntimeArg::Embedded => (Runtime::Embedded, "--runtime embedded".to_owned()),
        RuntimeArg::Docker => match probe() {
            Ok(_) => (Runtime::Docker, "--runtime docker".to_owned()),
            Err(e) => {
                let error = ErrorReport::command(
                    "demo::docker",
                    "--runtime docker was asked for, but no Docker engine answered",
                    crate::engine::StepError::of(&e).causes_with_message(),
                    "start the Docker engine (or point DOCKER_HOST at one), or run with --runtime embedded",
                );
                return cannot_begin(Runtime::Docker, "--runtime docker", error);
            }
        },
        RuntimeArg::Auto => match probe() {
            Ok(_) => (Runtime::Docker, "--runtime auto: a Docker engine answered".to_owned()),
            Err(compose_engine::EngineError::Unreachable { socket, .. }) => (
                Runtime::Embedded,
                format!("--runtime auto: no Docker engine answered on {socket}, so embedded"),
            ),
            Err(e) => (Runtime::Embedded, format!("--runtime auto: {e}, so embedded")),
        },
    };
    options.runtime = runtime;
    options.runtime_reason = reason;
    if runtime == Runtime::Embedded {
        keep_embedded_logs(&options.state);
    }
    let observer = printer.observer();
    async_runtime.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = tx.send(true);
            }
        });
        if !keep_running {
            let report = crate::stack::run(options, observer, rx).await;
            printer.report(&report);
            return report.exit_code;
        }
        let stack = crate::stack::start(options, observer, rx.clone()).await;
        printer.report(&stack.report);
        let code = stack.report.exit_code;
        if !*rx.borrow() {
            printer.keep_running(&stack);
            // Until Ctrl-C (or SIGTERM-less environments: the process is killed).
            let _ = tokio::signal::ctrl_c().await;
        }
        printer.line("stopping the stack…");
        if let Err(e) = stack.shutdown().await {
            printer.line(&format!("error: {e}"));
            return Outcome::Failure.exit_code();
        }
        code
    })
}

fn no_async_runtime(e: &std::io::Error) -> ErrorReport {
    ErrorReport::command(
        "demo::runtime",
        "cannot start the async runtime",
        vec![e.to_string()],
        "the system refused threads or file descriptors: check `ulimit -n` and `ulimit -u`",
    )
}

/// A runtime for a short command, or the error a person reads.
fn current_thread(printer: &Printer) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => Some(runtime),
        Err(e) => {
            printer.error_report(&no_async_runtime(&e));
            None
        }
    }
}

/// `demo down`: removes the Docker stacks of a state directory; 0 done, 2 failed.
pub fn down_blocking(state: &State, volumes: bool, printer: &Printer) -> u8 {
    let Some(runtime) = current_thread(printer) else { return Outcome::Failure.exit_code() };
    match runtime.block_on(crate::stack::docker::down(state.root(), volumes)) {
        Ok(removed) => {
            printer.down(state, &removed);
            Outcome::Success.exit_code()
        }
        Err(e) => {
            printer.error_report(&ErrorReport::command(
                "demo::docker",
                format!("cannot remove the Docker stacks of {}", state.root().display()),
                vec![e],
                "is Docker running? `docker compose ls` lists the stacks",
            ));
            Outcome::Failure.exit_code()
        }
    }
}

/// `demo status`: what runs for a state directory (human or one JSON document); 0, or 2 when
/// Docker cannot be asked.
pub fn status_blocking(state: &State, printer: &Printer) -> u8 {
    let Some(runtime) = current_thread(printer) else { return Outcome::Failure.exit_code() };
    match runtime.block_on(crate::stack::docker::status(state.root())) {
        Ok(stacks) => {
            printer.status(state, &stacks);
            Outcome::Success.exit_code()
        }
        Err(e) => {
            printer.error_report(&ErrorReport::command(
                "demo::docker",
                format!("cannot ask Docker what runs for {}", state.root().display()),
                vec![e],
                "start the Docker engine (or point DOCKER_HOST at one)",
            ));
            Outcome::Failure.exit_code()
        }
    }
}

/// The embedded services log into the state directory (`demo logs` reads them): they run in
/// this process, whose terminal belongs to the progress and the report. The file is opened at
/// the first line, after `state.prepare` has made (or reset) the directory.
fn keep_embedded_logs(state: &State) {
    service_kit::telemetry::init_tracing_to_file(state.embedded_log());
}

/// `demo logs`: the services' output — a Docker stack's containers as compose prints them
/// (`service | line`), else the embedded runtime's log file; 0, or 2 when there is nothing to
/// show or Docker fails.
pub fn logs_blocking(
    state: &State,
    service: Option<&str>,
    follow: bool,
    tail: Option<usize>,
    printer: &Printer,
) -> u8 {
    let Some(runtime) = current_thread(printer) else { return Outcome::Failure.exit_code() };
    let result = runtime.block_on(async {
        let stacks = crate::stack::docker::status(state.root()).await.unwrap_or_default();
        if stacks.is_empty() {
            crate::logs::embedded(state, service, follow, tail, printer).await
        } else {
            crate::logs::docker(&stacks, service, follow, tail, printer).await
        }
    });
    match result {
        Ok(()) => Outcome::Success.exit_code(),
        Err(error) => {
            printer.error_report(&error);
            Outcome::Failure.exit_code()
        }
    }
}
