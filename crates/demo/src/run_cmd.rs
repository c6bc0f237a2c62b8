//! `demo kms|identity|all`: picks the runtime, runs the plan, renders progress and the report,
//! and returns the exit code.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::{EngineOptions, Event, EventKind, Observer};
use crate::report::Report;
use crate::{OutputFormat, Style};

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

/// What `demo kms|identity` was asked for.
#[derive(Debug, Clone)]
pub struct RunCmdOptions {
    /// Which services.
    pub stack: crate::stack::Stack,
    /// Runtime.
    pub runtime: RuntimeArg,
    /// State directory.
    pub state_dir: PathBuf,
    /// Start from scratch.
    pub reset: bool,
    /// Engine settings.
    pub engine: EngineOptions,
    /// Health timeout.
    pub health_timeout: Duration,
    /// Output format.
    pub format: OutputFormat,
    /// Colours.
    pub style: Style,
    /// Fewer words.
    pub quiet: bool,
    /// Leave the stack up after the report, until Ctrl-C.
    pub keep_running: bool,
    /// `--profile`.
    pub profile: crate::stack::Profile,
    /// Docker: start the telemetry collector when its image can be had.
    pub telemetry: bool,
    /// Docker: compose files to use instead of the shipped ones.
    pub compose_dir: Option<PathBuf>,
}

/// How long `--runtime auto|docker` waits for a Docker engine to answer.
const DOCKER_PROBE: Duration = Duration::from_secs(2);

/// Runs and returns the exit code.
pub fn run_blocking(mut options: RunCmdOptions) -> u8 {
    options.state_dir = crate::state::State::absolute(&options.state_dir);
    // A run that cannot begin still prints one whole report (CI parses stdout).
    let cannot_begin = |runtime: &'static str, reason: String, error: crate::ErrorReport| {
        let report = Report::failure(
            options.stack.command(),
            crate::report::RuntimeChoice { name: runtime, reason },
            options.profile.name(),
            &crate::state::State::at(&options.state_dir),
            error,
        );
        print_report(&report, &options);
        report.exit_code
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            let error = crate::ErrorReport {
                step: None,
                code: "demo::runtime".to_owned(),
                message: "cannot start the async runtime".to_owned(),
                causes: vec![e.to_string()],
                hint: Some(
                    "the system refused threads or file descriptors: check `ulimit -n` and `ulimit -u`"
                        .to_owned(),
                ),
            };
            return cannot_begin("embedded", "the async runtime did not start".to_owned(), error);
        }
    };
    // Docker when asked for, or for auto when an engine answers; else embedded, saying why.
    let probe = || runtime.block_on(compose_engine::Engine::connect(DOCKER_PROBE));
    let (docker, reason) = match options.runtime {
        RuntimeArg::Embedded => (false, "--runtime embedded".to_owned()),
        RuntimeArg::Docker => match probe() {
            Ok(_) => (true, "--runtime docker".to_owned()),
            Err(e) => {
                let error = crate::ErrorReport {
                    step: None,
                    code: "demo::docker".to_owned(),
                    message: "--runtime docker was asked for, but no Docker engine answered".to_owned(),
                    causes: crate::engine::StepError::of(&e).causes_with_message(),
                    hint: Some(
                        "start the Docker engine (or point DOCKER_HOST at one), or run with --runtime embedded"
                            .to_owned(),
                    ),
                };
                return cannot_begin("docker", "--runtime docker".to_owned(), error);
            }
        },
        RuntimeArg::Auto => match probe() {
            Ok(_) => (true, "--runtime auto: a Docker engine answered".to_owned()),
            Err(compose_engine::EngineError::Unreachable { socket, .. }) => {
                (false, format!("--runtime auto: no Docker engine answered on {socket}, so embedded"))
            }
            Err(e) => (false, format!("--runtime auto: {e}, so embedded")),
        },
    };
    let observer: Arc<dyn Observer> = match options.format {
        OutputFormat::Human if !options.quiet => Arc::new(HumanProgress::new(options.style)),
        OutputFormat::Structured => Arc::new(JsonLines),
        _ => Arc::new(()),
    };
    let demo_options = crate::stack::DemoOptions {
        stack: options.stack,
        state_dir: options.state_dir.clone(),
        reset: options.reset,
        engine: options.engine,
        health_timeout: options.health_timeout,
        runtime_reason: reason,
        docker,
        profile: options.profile,
        telemetry: options.telemetry,
        compose_dir: options.compose_dir.clone(),
        service_binary: None,
    };
    runtime.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = tx.send(true);
            }
        });
        let chosen: Box<dyn crate::runtime::Runtime> =
            if docker { Box::new(crate::runtime::Docker) } else { Box::new(crate::runtime::Embedded) };
        if !options.keep_running {
            let report = chosen.run(demo_options, observer, rx).await;
            print_report(&report, &options);
            return report.exit_code;
        }
        let stack = chosen.start(demo_options, observer, rx.clone()).await;
        print_report(&stack.report, &options);
        let code = stack.report.exit_code;
        if !*rx.borrow() {
            eprintln!("{}", keep_running_banner(&stack));
            // Until Ctrl-C (or SIGTERM-less environments: the process is killed).
            let _ = tokio::signal::ctrl_c().await;
        }
        eprintln!("stopping the stack…");
        if let Err(e) = stack.shutdown().await {
            eprintln!("error: {e}");
            return 2;
        }
        code
    })
}

/// Builds the async runtime, or says why it cannot (the caller exits 2).
fn async_runtime(mut builder: tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    builder.enable_all().build().map_err(|e| eprintln!("error: cannot start the async runtime: {e}")).ok()
}

/// `demo down`: removes the Docker stacks of a state directory; 0 done, 2 failed.
pub fn down_blocking(state_root: &std::path::Path, volumes: bool) -> u8 {
    let state_root = &crate::state::State::absolute(state_root);
    let Some(runtime) = async_runtime(tokio::runtime::Builder::new_current_thread()) else { return 2 };
    match runtime.block_on(crate::stack::docker::down(state_root, volumes)) {
        Ok(projects) => {
            eprint!("{}", render_down(state_root, &projects));
            0
        }
        Err(e) => {
            eprintln!("error: {e}\n  hint: is Docker running? `docker compose ls` lists the stacks");
            2
        }
    }
}

/// What `demo down` says: each project that had something, and what it removed.
fn render_down(
    state_root: &std::path::Path,
    projects: &[(String, compose_engine::stack::Removed)],
) -> String {
    if projects.is_empty() {
        return format!("nothing to remove: no Docker stack of {} exists\n", state_root.display());
    }
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let mut out = format!("removed the Docker stacks of {}:\n", state_root.display());
    for (project, r) in projects {
        out.push_str(&format!(
            "  {project}: {}, {}, {}\n",
            plural(r.containers, "container"),
            plural(r.networks, "network"),
            plural(r.volumes, "volume")
        ));
    }
    out
}

/// `demo status`: what runs for a state directory (human or one JSON document); 0, or 2 when
/// Docker cannot be asked.
pub fn status_blocking(state_root: &std::path::Path, format: OutputFormat) -> u8 {
    let state_root = &crate::state::State::absolute(state_root);
    let Some(runtime) = async_runtime(tokio::runtime::Builder::new_current_thread()) else { return 2 };
    let stacks = match runtime.block_on(crate::stack::docker::status(state_root)) {
        Ok(stacks) => stacks,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    match format {
        OutputFormat::Human => {
            if stacks.is_empty() {
                println!("no Docker stack runs for {}", state_root.display());
            }
            for (project, services) in &stacks {
                println!("{project}");
                for s in services {
                    println!("  {:<10} {:<28} {}", s.service, s.status, s.ports.join(", "));
                }
            }
        }
        _ => {
            let doc: Vec<serde_json::Value> = stacks
                .iter()
                .map(|(project, services)| serde_json::json!({ "project": project, "services": services }))
                .collect();
            println!("{}", serde_json::json!({ "state_dir": state_root, "stacks": doc }));
        }
    }
    0
}

fn print_report(report: &Report, options: &RunCmdOptions) {
    match options.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(report).unwrap_or_default()),
        OutputFormat::Structured => println!("{}", serde_json::json!({"event": "report", "report": report})),
        OutputFormat::Human => print!("{}", render_summary(report, options.style, options.quiet)),
    }
}

/// What a person needs to use the stack that `--keep-running` left up.
fn keep_running_banner(stack: &crate::stack::RunningStack) -> String {
    let mut out = String::from("\nThe stack keeps running until Ctrl-C.\n");
    let ports = [&stack.identity_url, &stack.kms_url];
    if ports.iter().any(|u| u.is_some()) {
        out.push_str("  Browsers need: 127.0.0.1 identity.demo.local kms.demo.local (in /etc/hosts)\n");
        out.push_str(&format!(
            "  and to trust {} (or curl --cacert it)\n",
            stack.state.ca_bundle().display()
        ));
    }
    if let Some(url) = &stack.identity_url {
        out.push_str(&format!("  Identity     {url}/.well-known/openid-configuration\n"));
    }
    if let Some(url) = &stack.kms_url {
        out.push_str(&format!("  KMS          {url}/docs/ (Swagger UI; Basic accounts in credentials.md)\n"));
    }
    out.push_str(&format!("  credentials  {}\n", stack.state.credentials_file().display()));
    out
}

/// Progress for a person: one line per finished step on stderr; on a terminal with colour
/// allowed, also a spinner with a step counter and the running step (indicatif), cleared at
/// the end so the summary stands alone.
struct HumanProgress {
    style: Style,
    spinner: Option<indicatif::ProgressBar>,
    /// Steps finished so far: steps of a phase overlap, so positions do not count progress.
    finished: std::sync::atomic::AtomicU64,
    /// The next position (from 1) to print, and finished steps' lines waiting for it.
    order: std::sync::Mutex<(usize, std::collections::BTreeMap<usize, String>)>,
}

impl HumanProgress {
    fn new(style: Style) -> Self {
        use std::io::IsTerminal as _;
        // Same rule as colour (NO_COLOR, CI, --no-color, not a terminal), checked on stderr too.
        let spinner = (style.color() && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
            if let Ok(template) = indicatif::ProgressStyle::with_template("{spinner} [{pos}/{len}] {msg}") {
                bar.set_style(template);
            }
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Self {
            style,
            spinner,
            finished: std::sync::atomic::AtomicU64::new(0),
            order: std::sync::Mutex::new((1, std::collections::BTreeMap::new())),
        }
    }
}

impl Drop for HumanProgress {
    fn drop(&mut self) {
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
    }
}

impl Observer for HumanProgress {
    fn progress(&self, step: &str, message: &str) {
        if let Some(bar) = &self.spinner {
            bar.set_message(format!("{step}: {message}"));
        }
    }

    fn event(&self, e: &Event) {
        let line = match e.kind {
            EventKind::Retrying => {
                let why = e.error.as_ref().map(|x| x.message.as_str()).unwrap_or("");
                format!(
                    "  {} {} (attempt {} failed: {why}; retrying)",
                    self.style.dim("↻"),
                    e.step,
                    e.attempt
                )
            }
            EventKind::Started => {
                if let Some(bar) = &self.spinner {
                    bar.set_length(e.total as u64);
                    bar.set_message(format!("{:?}: {}", e.phase, e.step).to_lowercase());
                }
                return;
            }
            EventKind::Passed => format!("  {} {}", self.style.good("✓"), e.step),
            EventKind::Failed => {
                let why = e.error.as_ref().map(|x| x.message.as_str()).unwrap_or("");
                format!("  {} {}: {why}", self.style.strong("✗"), e.step)
            }
            EventKind::Skipped => {
                let why = e.error.as_ref().map(|x| x.message.as_str()).unwrap_or("");
                format!("  {} {} ({why})", self.style.dim("-"), e.step)
            }
        };
        // Steps of a phase overlap; their lines come out in plan order all the same (a line
        // waits for the steps before it), so the progress reads like the report.
        let lines: Vec<String> = if e.kind == EventKind::Retrying {
            vec![line]
        } else {
            let Ok(mut order) = self.order.lock() else { return };
            let (next, waiting) = &mut *order;
            waiting.insert(e.index, line);
            let mut ready = Vec::new();
            while let Some(line) = waiting.remove(next) {
                ready.push(line);
                *next += 1;
            }
            ready
        };
        let done = u64::from(e.kind != EventKind::Retrying);
        let finished = self.finished.fetch_add(done, std::sync::atomic::Ordering::Relaxed) + done;
        for line in lines {
            match &self.spinner {
                Some(bar) => {
                    bar.set_position(finished);
                    bar.println(line);
                }
                None => {
                    let _ = writeln!(std::io::stderr(), "{line}");
                }
            }
        }
    }
}

struct JsonLines;

impl Observer for JsonLines {
    fn progress(&self, step: &str, message: &str) {
        println!("{}", serde_json::json!({"event": "progress", "step": step, "message": message}));
    }

    fn event(&self, e: &Event) {
        println!("{}", serde_json::json!({"event": "step", "step": e}));
    }
}

/// The end-of-run summary for a person.
pub fn render_summary(report: &Report, style: Style, quiet: bool) -> String {
    let count = |s: crate::engine::Status| report.steps.iter().filter(|x| x.status == s).count();
    let (passed, failed, skipped) = (
        count(crate::engine::Status::Passed),
        count(crate::engine::Status::Failed),
        count(crate::engine::Status::Skipped),
    );
    let mut out = String::new();
    if !quiet || failed > 0 {
        let verdict = match report.exit_code {
            0 => style.good("all passed"),
            1 => style.strong("partial"),
            _ => style.strong("failed"),
        };
        out.push_str(&format!(
            "demo {} ({} runtime): {verdict} — {passed} passed, {failed} failed, {skipped} skipped in {:.1}s\n",
            report.command,
            report.runtime.name,
            report.duration_ms as f64 / 1000.0
        ));
    }
    for e in &report.errors {
        out.push_str(&format!("\n  × {}: {}\n", e.step.as_deref().unwrap_or("run"), e.message));
        for cause in &e.causes {
            out.push_str(&format!("    ╰─▶ {cause}\n"));
        }
        if let Some(hint) = &e.hint {
            out.push_str(&format!("    help: {hint}\n"));
        }
    }
    if !quiet {
        for note in &report.notes {
            out.push_str(&format!("\n  {} {note}\n", style.dim("note:")));
        }
        out.push('\n');
        for s in &report.services {
            out.push_str(&format!("  {:<12} {} ({})\n", s.name, s.url, s.health));
        }
        out.push_str(&format!("  {:<12} {}\n", "CA bundle", report.artifacts.ca_bundle.display()));
        out.push_str(&format!("  {:<12} {}\n", "credentials", report.artifacts.credentials_file.display()));
        out.push_str(&format!("  {:<12} {}\n", "state", report.artifacts.state_dir.display()));
    }
    out
}
