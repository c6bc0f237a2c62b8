//! `demo logs [SERVICE] [--follow] [--tail N]`: what the services wrote. On Docker, each
//! container's output as compose prints it (`kms       | …`); embedded, the log file the run kept
//! in the state directory (`STATE/logs/embedded.log`, JSON lines), filtered by the module that
//! logged (`kms::…`, `identity::…`; shared plumbing such as `service_kit` shows only without a
//! SERVICE, since either service may have written it).

use std::time::Duration;

use futures_util::StreamExt as _;

use crate::ErrorReport;
use crate::render::Printer;
use crate::state::State;

/// How often `--follow` looks for new lines in the embedded log file.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

fn error(message: String, causes: Vec<String>, hint: &str) -> ErrorReport {
    ErrorReport::command("demo::logs", message, causes, hint)
}

/// The containers of a running Docker stack.
pub(crate) async fn docker(
    stacks: &[(String, Vec<compose_engine::stack::ServiceStatus>)],
    service: Option<&str>,
    follow: bool,
    tail: Option<usize>,
    printer: &Printer,
) -> Result<(), ErrorReport> {
    let engine = compose_engine::Engine::connect(Duration::from_secs(2)).await.map_err(|e| {
        error(
            "cannot reach the Docker engine".to_owned(),
            vec![crate::error::chain(&e)],
            "is Docker running?",
        )
    })?;
    let services: Vec<&compose_engine::stack::ServiceStatus> =
        stacks.iter().flat_map(|(_, s)| s).filter(|s| service.is_none_or(|want| s.service == want)).collect();
    if services.is_empty() {
        let running: Vec<&str> = stacks.iter().flat_map(|(_, s)| s).map(|s| s.service.as_str()).collect();
        return Err(error(
            format!("no service {} runs in this state directory's Docker stack", service.unwrap_or("")),
            vec![format!("running: {}", running.join(", "))],
            "name one of the running services, or none for all",
        ));
    }
    let width = services.iter().map(|s| s.service.len()).max().unwrap_or(0);
    let streams = services.iter().map(|s| {
        let name = s.service.clone();
        compose_engine::stack::logs(&engine, &s.container, follow, tail)
            .map(move |chunk| (name.clone(), chunk))
    });
    let mut all = futures_util::stream::select_all(streams.map(Box::pin));
    loop {
        let next = tokio::select! {
            next = all.next() => next,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some((name, chunk)) = next else { return Ok(()) };
        let text = chunk.map_err(|e| {
            error(
                format!("cannot read the logs of {name}"),
                vec![crate::error::chain(&e)],
                "is the container still there? `demo status`",
            )
        })?;
        for line in text.lines().filter(|l| !l.is_empty()) {
            printer.log_line(&format!("{name:<width$} | {line}"));
        }
    }
}

/// The embedded runtime's log file.
pub(crate) async fn embedded(
    state: &State,
    service: Option<&str>,
    follow: bool,
    tail: Option<usize>,
    printer: &Printer,
) -> Result<(), ErrorReport> {
    let path = state.embedded_log();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(error(
                format!("no logs for {}", state.root().display()),
                vec![format!(
                    "no Docker stack of it runs, and no embedded run has logged to {}",
                    path.display()
                )],
                "run `demo all` (or kms, identity) with this --state-dir first",
            ));
        }
        Err(e) => {
            return Err(error(
                format!("cannot read {}", path.display()),
                vec![e.to_string()],
                "check its permissions",
            ));
        }
    };
    let keep = |line: &&str| wanted(line, service);
    let lines: Vec<&str> = text.lines().filter(keep).collect();
    let skip = tail.map_or(0, |n| lines.len().saturating_sub(n));
    for line in &lines[skip..] {
        printer.log_line(line);
    }
    if !follow {
        return Ok(());
    }
    // tail -f: read what is appended, until Ctrl-C.
    let mut seen = text.len();
    loop {
        tokio::select! {
            () = tokio::time::sleep(FOLLOW_POLL) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let Ok(bytes) = std::fs::read(&path) else { continue };
        if bytes.len() < seen {
            seen = 0; // the file was replaced (a --reset-demo): start again from its top
        }
        let fresh = String::from_utf8_lossy(&bytes[seen..]);
        let complete = fresh.rfind('\n').map_or(0, |i| i + 1);
        for line in fresh[..complete].lines().filter(keep) {
            printer.log_line(line);
        }
        seen += complete;
    }
}

/// Whether a JSON log line belongs to `service` (by the module that logged it).
fn wanted(line: &str, service: Option<&str>) -> bool {
    let Some(service) = service else { return true };
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v["target"].as_str().map(|t| t == service || t.starts_with(&format!("{service}::"))))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::wanted;

    #[test]
    fn lines_are_chosen_by_the_module_that_logged_them() {
        let kms = r#"{"level":"INFO","target":"kms::api","message":"x"}"#;
        let identity = r#"{"level":"INFO","target":"identity","message":"x"}"#;
        let shared = r#"{"level":"INFO","target":"service_kit::server","message":"x"}"#;
        assert!(wanted(kms, Some("kms")) && !wanted(kms, Some("identity")));
        assert!(wanted(identity, Some("identity")));
        assert!(!wanted(shared, Some("kms")) && wanted(shared, None));
        assert!(!wanted(r#"{"target":"kmsx::a"}"#, Some("kms")), "a prefix is not a module");
        assert!(!wanted("not json", Some("kms")) && wanted("not json", None));
    }
}
