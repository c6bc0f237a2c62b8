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
    let result = match cli.command {
        Command::Pki(args) => demo::pki_cmd::run(&demo::pki_cmd::PkiOptions {
            out: args.out,
            chain_length: args.chain_length,
            key_type: args.key_type.into(),
            domain: args.domain,
            services: args.services,
            clients: args.clients,
            pkcs12: args.pkcs12,
            pkcs12_password_file: args.pkcs12_password_file,
        })
        .map(|report| match format {
            OutputFormat::Human if !cli.global.quiet => {
                print!("{}", report.render_human(style, cli.global.verbose > 0));
            }
            OutputFormat::Human => {}
            OutputFormat::Json | OutputFormat::Structured => println!("{}", json(&report)),
        }),
    };
    match result {
        Ok(()) => ExitCode::from(Outcome::Success.exit_code()),
        Err(err) => fail("pki", err, format, style),
    }
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
