//! Everything the CLI writes, in one place: the report (human, JSON, structured), progress,
//! the commands' own output, and errors. stdout carries data (the report, `--output json`),
//! stderr progress and messages. Colour only on a terminal, never with `NO_COLOR`, `CI` or
//! `--no-color` (see [`Style`]); written through anstream, so a Windows console shows it too. Every error and hint a person reads is drawn by miette, one
//! style for all: a report's `errors[]`, a failed command, a command that could not begin.
//! Nothing else in the library prints.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Event, EventKind, Observer};
use crate::report::Report;
use crate::state::State;
use crate::{DemoError, ErrorReport, Outcome, OutputFormat, Style};

/// Writes what the CLI shows, in the format and style asked for.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    format: OutputFormat,
    style: Style,
    quiet: bool,
    verbose: u8,
}

impl Printer {
    /// A printer for `--output`, the colour decision, `-q` and `-v`.
    pub fn new(format: OutputFormat, style: Style, quiet: bool, verbose: u8) -> Self {
        Self { format, style, quiet, verbose }
    }

    /// The report of a run: one JSON document, the structured closing event, or the summary.
    pub fn report(&self, report: &Report) {
        match self.format {
            OutputFormat::Json => out(&json(report)),
            OutputFormat::Structured => {
                out(&serde_json::json!({"event": "report", "report": report}).to_string())
            }
            OutputFormat::Human => {
                let summary = summary(report, self.style, self.quiet);
                let _ = write!(anstream::stdout(), "{summary}");
                for error in &report.errors {
                    err(&self.diagnostic(error));
                }
                if !self.quiet {
                    let _ = write!(anstream::stdout(), "{}", artifacts(report, self.style));
                }
            }
        }
    }

    /// Where a run's progress goes: a spinner and step lines on stderr for a person, one JSON
    /// line per event on stdout with `--output structured`, nowhere for `--output json`.
    pub fn observer(&self) -> Arc<dyn Observer> {
        match self.format {
            OutputFormat::Human if !self.quiet => Arc::new(HumanProgress::new(self.style)),
            OutputFormat::Structured => Arc::new(JsonLines),
            _ => Arc::new(()),
        }
    }

    /// `demo pki`'s report.
    pub fn pki(&self, report: &crate::pki_cmd::PkiReport) {
        match self.format {
            OutputFormat::Human if !self.quiet => {
                let _ = write!(anstream::stdout(), "{}", report.render_human(self.style, self.verbose > 0));
            }
            OutputFormat::Human => {}
            OutputFormat::Json | OutputFormat::Structured => out(&json(report)),
        }
    }

    /// A command that failed as a whole (`demo pki`, `demo serve`): the error in the format
    /// asked for; returns the exit code (2).
    pub fn failure(&self, command: &str, error: &DemoError) -> u8 {
        let code = Outcome::Failure.exit_code();
        match self.format {
            OutputFormat::Human => err(&self.diagnostic(&error.report(None))),
            OutputFormat::Json | OutputFormat::Structured => out(&json(&serde_json::json!({
                "schema_version": crate::SCHEMA_VERSION,
                "command": command,
                "outcome": Outcome::Failure,
                "exit_code": code,
                "errors": [error.report(None)],
            }))),
        }
        code
    }

    /// An error of a command without a report of its own (`demo status`, `demo down`).
    pub fn error_report(&self, error: &ErrorReport) {
        match self.format {
            OutputFormat::Human => err(&self.diagnostic(error)),
            OutputFormat::Json | OutputFormat::Structured => {
                out(&json(&serde_json::json!({ "errors": [error] })))
            }
        }
    }

    /// One line of a service's log (`demo logs`), on stdout: it is the data asked for.
    pub fn log_line(&self, line: &str) {
        out(line);
    }

    /// A message for a person on stderr (`stopping the stack…`).
    pub fn line(&self, text: &str) {
        err(text);
    }

    /// `demo status`: the stacks of a state directory and their services.
    pub fn status(&self, state: &State, stacks: &[(String, Vec<compose_engine::stack::ServiceStatus>)]) {
        match self.format {
            OutputFormat::Human => {
                let mut text = String::new();
                if stacks.is_empty() {
                    text.push_str(&format!("no Docker stack runs for {}\n", state.root().display()));
                }
                for (project, services) in stacks {
                    text.push_str(&format!("{}\n", self.style.strong(project)));
                    for s in services {
                        text.push_str(&format!(
                            "  {:<10} {:<28} {}\n",
                            s.service,
                            s.status,
                            s.ports.join(", ")
                        ));
                    }
                }
                let _ = write!(anstream::stdout(), "{text}");
            }
            _ => {
                let doc: Vec<serde_json::Value> = stacks
                    .iter()
                    .map(
                        |(project, services)| serde_json::json!({ "project": project, "services": services }),
                    )
                    .collect();
                out(&serde_json::json!({ "state_dir": state.root(), "stacks": doc }).to_string());
            }
        }
    }

    /// `demo down`: each project that had something, and what was removed.
    pub fn down(&self, state: &State, removed: &[(String, compose_engine::stack::Removed)]) {
        if self.format != OutputFormat::Human {
            let doc: Vec<serde_json::Value> = removed
                .iter()
                .map(|(project, r)| {
                    serde_json::json!({
                        "project": project,
                        "containers": r.containers,
                        "networks": r.networks,
                        "volumes": r.volumes,
                    })
                })
                .collect();
            out(&serde_json::json!({ "state_dir": state.root(), "removed": doc }).to_string());
            return;
        }
        if removed.is_empty() {
            err(&format!("nothing to remove: no Docker stack of {} exists", state.root().display()));
            return;
        }
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        let mut text = format!("removed the Docker stacks of {}:", state.root().display());
        for (project, r) in removed {
            text.push_str(&format!(
                "\n  {project}: {}, {}, {}",
                plural(r.containers, "container"),
                plural(r.networks, "network"),
                plural(r.volumes, "volume")
            ));
        }
        err(&text);
    }

    /// What a person needs to use the stack that `--keep-running` left up.
    pub fn keep_running(&self, stack: &crate::stack::RunningStack) {
        let mut text = String::from("\nThe stack keeps running until Ctrl-C.\n");
        if stack.identity_url.is_some() || stack.kms_url.is_some() {
            text.push_str("  Browsers need: 127.0.0.1 identity.demo.local kms.demo.local (in /etc/hosts)\n");
            text.push_str(&format!(
                "  and to trust {} (or curl --cacert it)\n",
                stack.state.ca_bundle().display()
            ));
        }
        if let Some(url) = &stack.identity_url {
            text.push_str(&format!("  Identity     {url}/.well-known/openid-configuration\n"));
        }
        if let Some(url) = &stack.kms_url {
            text.push_str(&format!(
                "  KMS          {url}/docs/ (Swagger UI; Basic accounts in credentials.md)\n"
            ));
        }
        if let Some(partner) = stack.partner() {
            text.push_str(&format!(
                "  partner      {}/.well-known/openid-configuration (fixture issuer in the KMS's trust store {}; its own CA {})\n",
                partner.issuer(),
                crate::stack::trust_file(&stack.state).display(),
                partner.ca_bundle().display()
            ));
        }
        text.push_str(&format!("  credentials  {}", stack.state.credentials_file().display()));
        err(&text);
    }

    /// An error as miette draws it: the code, the message, the causes as a chain, the hint.
    fn diagnostic(&self, error: &ErrorReport) -> String {
        let handler = if self.style.color() {
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode())
        } else {
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        };
        let mut text = String::new();
        match handler.render_report(&mut text, &Shown::new(error)) {
            Ok(()) => text.trim_end().to_owned(),
            // The plain form, should the renderer fail.
            Err(_) => format!("error: {}", error.message),
        }
    }
}

/// An [`ErrorReport`] as a miette diagnostic: its causes become the source chain.
#[derive(Debug)]
struct Shown {
    code: String,
    step: Option<String>,
    message: String,
    help: Option<String>,
    cause: Option<Box<Cause>>,
}

#[derive(Debug)]
struct Cause {
    message: String,
    next: Option<Box<Cause>>,
}

impl Shown {
    fn new(e: &ErrorReport) -> Self {
        let cause = e
            .causes
            .iter()
            .rev()
            .fold(None, |next, message| Some(Box::new(Cause { message: message.clone(), next })));
        Self {
            code: e.code.clone(),
            step: e.step.clone(),
            message: e.message.clone(),
            help: e.hint.clone(),
            cause,
        }
    }
}

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.step {
            Some(step) => write!(f, "{step}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Shown {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_deref().map(|c| c as _)
    }
}

impl miette::Diagnostic for Shown {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(&self.code))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.next.as_deref().map(|c| c as _)
    }
}

fn out(text: &str) {
    let _ = writeln!(anstream::stdout(), "{text}");
}

fn err(text: &str) {
    let _ = writeln!(anstream::stderr(), "{text}");
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value)
        .unwrap_or_else(|e| format!("{{\"error\":\"report not serialisable: {e}\"}}"))
}

/// The end-of-run verdict for a person: one line, and nothing when quiet and all passed. The
/// errors follow it on stderr, drawn by miette.
pub fn summary(report: &Report, style: Style, quiet: bool) -> String {
    let count = |s: crate::engine::Status| report.steps.iter().filter(|x| x.status == s).count();
    let (passed, failed, skipped) = (
        count(crate::engine::Status::Passed),
        count(crate::engine::Status::Failed),
        count(crate::engine::Status::Skipped),
    );
    if quiet && report.exit_code == 0 {
        return String::new();
    }
    let verdict = match report.exit_code {
        0 => style.good("all passed"),
        1 => style.strong("partial"),
        _ => style.strong("failed"),
    };
    format!(
        "demo {} ({} runtime): {verdict} — {passed} passed, {failed} failed, {skipped} skipped in {:.1}s\n",
        report.command,
        report.runtime.name,
        report.duration_ms as f64 / 1000.0
    )
}

/// The notes, the services and the files to use afterwards.
fn artifacts(report: &Report, style: Style) -> String {
    let mut out = String::new();
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
                    let _ = writeln!(anstream::stderr(), "{line}");
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
