//! `demo`: parse the command line, call the `demo` crate, map the outcome to an exit code.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command, Output};
use demo::{DemoError, Outcome, OutputFormat, Style};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match cli.global.output {
        Output::Human => OutputFormat::Human,
        Output::Json => OutputFormat::Json,
        Output::Structured => OutputFormat::Structured,
    };
    let style = Style::detect(cli.global.no_color);
    let (command, result) = match cli.command {
        Command::Serve(args) => {
            let service = match args.service {
                cli::ServiceArg::Kms => demo::serve::Service::Kms,
                cli::ServiceArg::Identity => demo::serve::Service::Identity,
            };
            ("serve", demo::serve::run_blocking(service, &args.config, args.demo))
        }
        Command::Pki(args) => ("pki", run_pki(args, format, style, cli.global.quiet, cli.global.verbose)),
        Command::Kms(args) => {
            return run_stack(demo::stack::Stack::Kms, args, format, style, cli.global.quiet);
        }
        Command::Identity(args) => {
            return run_stack(demo::stack::Stack::Identity, args, format, style, cli.global.quiet);
        }
        Command::All(args) => {
            return run_stack(demo::stack::Stack::All, args, format, style, cli.global.quiet);
        }
        Command::Status(args) => {
            let root = args.state_dir.unwrap_or_else(demo::state::State::default_root);
            return ExitCode::from(demo::run_cmd::status_blocking(&root, format));
        }
        Command::Down(args) => {
            let root = args.state_dir.unwrap_or_else(demo::state::State::default_root);
            return ExitCode::from(demo::run_cmd::down_blocking(&root, args.volumes));
        }
        Command::Healthcheck(args) => {
            // Docker's contract: 0 healthy, 1 unhealthy; usage mistakes are 2 like everywhere.
            return match demo::healthcheck::check_blocking(&args.url, &args.ca, args.timeout) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    let mut line = e.to_string();
                    let mut source = std::error::Error::source(&e);
                    while let Some(cause) = source {
                        line.push_str(&format!(": {cause}"));
                        source = cause.source();
                    }
                    eprintln!("unhealthy: {line}");
                    ExitCode::from(if e.is_usage() { 2 } else { 1 })
                }
            };
        }
    };
    match result {
        Ok(()) => ExitCode::from(Outcome::Success.exit_code()),
        Err(err) => fail(command, err, format, style),
    }
}

fn run_stack(
    stack: demo::stack::Stack,
    args: cli::RunArgs,
    format: OutputFormat,
    style: Style,
    quiet: bool,
) -> ExitCode {
    let options = demo::run_cmd::RunCmdOptions {
        stack,
        runtime: match args.runtime {
            cli::RuntimeKind::Auto => demo::run_cmd::RuntimeArg::Auto,
            cli::RuntimeKind::Embedded => demo::run_cmd::RuntimeArg::Embedded,
            cli::RuntimeKind::Docker => demo::run_cmd::RuntimeArg::Docker,
        },
        state_dir: args.state_dir.unwrap_or_else(demo::state::State::default_root),
        reset: args.reset_demo,
        engine: demo::engine::EngineOptions {
            fail_fast: args.fail_fast,
            retry: demo::engine::Retry {
                retries: args.retries,
                backoff: args.retry_backoff,
                ..demo::engine::Retry::default()
            },
            ..demo::engine::EngineOptions::default()
        },
        health_timeout: args.health_timeout,
        format,
        style,
        quiet,
        keep_running: args.keep_running,
        profile: match args.profile {
            cli::ProfileArg::Dev => demo::stack::Profile::Dev,
            cli::ProfileArg::Demo => demo::stack::Profile::Demo,
            cli::ProfileArg::Ci => demo::stack::Profile::Ci,
            cli::ProfileArg::Prod => demo::stack::Profile::Prod,
        },
        telemetry: !args.no_telemetry,
        compose_dir: args.compose_dir,
    };
    ExitCode::from(demo::run_cmd::run_blocking(options))
}

fn run_pki(
    args: cli::PkiArgs,
    format: OutputFormat,
    style: Style,
    quiet: bool,
    verbose: u8,
) -> Result<(), DemoError> {
    let report = demo::pki_cmd::run(&demo::pki_cmd::PkiOptions {
        out: args.out,
        chain_length: args.chain_length,
        key_type: args.key_type.into(),
        domain: args.domain,
        services: args.services,
        clients: args.clients,
        pkcs12: args.pkcs12,
        pkcs12_password_file: args.pkcs12_password_file,
    })?;
    match format {
        OutputFormat::Human if !quiet => print!("{}", report.render_human(style, verbose > 0)),
        OutputFormat::Human => {}
        OutputFormat::Json | OutputFormat::Structured => println!("{}", json(&report)),
    }
    Ok(())
}

fn fail(command: &str, err: DemoError, format: OutputFormat, style: Style) -> ExitCode {
    match format {
        OutputFormat::Human => {
            let color = style.color();
            let _ = miette::set_hook(Box::new(move |_| {
                Box::new(miette::MietteHandlerOpts::new().color(color).build())
            }));
            eprintln!("{:?}", miette::Report::new(err));
        }
        OutputFormat::Json | OutputFormat::Structured => {
            let doc = serde_json::json!({
                "schema_version": demo::SCHEMA_VERSION,
                "command": command,
                "outcome": Outcome::Failure,
                "exit_code": Outcome::Failure.exit_code(),
                "errors": [err.report(None)],
            });
            println!("{doc}");
        }
    }
    ExitCode::from(Outcome::Failure.exit_code())
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value)
        .unwrap_or_else(|e| format!("{{\"error\":\"report not serialisable: {e}\"}}"))
}
