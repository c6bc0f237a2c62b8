//! `demo`: parse the command line, run it in the `demo` crate, exit with its code.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(demo::cli::run(demo::cli::Cli::parse()))
}
