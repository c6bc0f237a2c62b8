//! The command line: clap types, their one conversion into the library's options, and the
//! dispatch to the commands. `cmd/demo` parses (`Cli::parse()`) and calls [`run`]; nothing else
//! of the binary is worth testing.

use std::path::PathBuf;

use clap::{Args, CommandFactory as _, Parser, Subcommand, ValueEnum};

use crate::engine::{EngineOptions, Retry};
use crate::render::Printer;
use crate::run_cmd::RuntimeArg;
use crate::stack::{DemoOptions, Profile, Stack};
use crate::state::State;

/// Stands the demo security services up and proves they work.
#[derive(Debug, Parser)]
#[command(name = "demo", version, about, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: Global,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// What to print on stdout: text for a person, one JSON document, or one JSON event per line.
    #[arg(long, value_enum, default_value_t = Output::Human, global = true)]
    pub output: Output,
    /// Never colour the output (also off with NO_COLOR, CI, or when stdout is not a terminal).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Say more (repeat for more still).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Say only what went wrong.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Human,
    Json,
    Structured,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stand the KMS up, seed it, check it and run its flows.
    Kms(RunArgs),
    /// Stand Identity up, seed it, check it and run its OAuth / OpenID Connect flows.
    Identity(RunArgs),
    /// Both services, the KMS accepting Identity's tokens: every flow of the design.
    All(RunArgs),
    /// Remove the Docker stack of a state directory: containers and networks, and volumes with --volumes
    Down(DownArgs),
    /// Show the Docker stack of a state directory: services, health, published ports
    Status(StatusArgs),
    /// Show what the services wrote: a Docker stack's containers (as compose prints them), or
    /// the embedded runtime's log file
    Logs(LogsArgs),
    /// Write the CA chain and the certificates of every demo service and client.
    Pki(PkiArgs),
    /// Run a service (what the container images run).
    Serve(ServeArgs),
    /// Probe an HTTPS health endpoint: exit 0 when it answers 2xx, 1 otherwise.
    Healthcheck(HealthcheckArgs),
    /// Print a shell completion script (source it, or install it where your shell looks).
    Completions(CompletionsArgs),
    /// Print the manual page (roff): `demo man > demo.1 && man ./demo.1`.
    Man,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `--state-dir`, declared once for every command that takes it.
#[derive(Debug, Args)]
pub struct StateDir {
    /// The state directory (certificates, secrets, data, a Docker stack's ports and lock);
    /// default under the user's data dir.
    #[arg(long = "state-dir", value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

impl StateDir {
    /// The directory asked for, or the default location; absolute from here on.
    pub fn state(self) -> State {
        State::at(&self.dir.unwrap_or_else(State::default_root))
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub state: StateDir,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only this service (kms, identity, otel-collector); default: all.
    pub service: Option<String>,
    /// Keep printing what is written, until Ctrl-C.
    #[arg(short, long)]
    pub follow: bool,
    /// Start with the last N lines (of each container on Docker).
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    #[command(flatten)]
    pub state: StateDir,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Remove the named volumes (the services' data) too.
    #[arg(long)]
    pub volumes: bool,
    #[command(flatten)]
    pub state: StateDir,
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The endpoint, e.g. https://kms:9081/readyz.
    pub url: String,
    /// The only CA bundle to trust.
    #[arg(long, value_name = "FILE")]
    pub ca: PathBuf,
    /// How long to wait for an answer.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Where the services run: docker if an engine answers, else embedded (in-process).
    #[arg(long, value_enum, default_value_t = RuntimeKind::Auto)]
    pub runtime: RuntimeKind,
    /// The environment: demo (persistent, demo data), ci (ephemeral data), dev (persistent, on
    /// PostgreSQL: a throwaway cluster from the host's binaries when embedded, a postgres service
    /// on Docker), prod (docker only: the production template, no demo data, no flows).
    #[arg(long, value_enum, default_value_t = ProfileArg::Demo)]
    pub profile: ProfileArg,
    /// Docker: do not start the telemetry collector (the telemetry network is still created).
    #[arg(long)]
    pub no_telemetry: bool,
    /// Docker: use the compose files under DIR (laid out like deployments/: DIR/all/compose.yml,
    /// DIR/telemetry/compose.yml, …) instead of the shipped ones.
    #[arg(long, value_name = "DIR")]
    pub compose_dir: Option<PathBuf>,
    #[command(flatten)]
    pub state: StateDir,
    /// Remove the previous environment (data, secrets, tenant ids, certificates) first.
    #[arg(long)]
    pub reset_demo: bool,
    /// Stop at the first failed step.
    #[arg(long, conflicts_with = "continue_on_error")]
    pub fail_fast: bool,
    /// Run every step that can still run (the default).
    #[arg(long)]
    pub continue_on_error: bool,
    /// Retries for transient errors (connection refused, 503).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = humantime::parse_duration)]
    pub retry_backoff: std::time::Duration,
    /// How long a service may take to become ready.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub health_timeout: std::time::Duration,
    /// After the report, keep the services running until Ctrl-C (to try the login page and
    /// the Swagger UI); prints how to reach them.
    #[arg(long)]
    pub keep_running: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    Dev,
    Demo,
    Ci,
    Prod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    Auto,
    Embedded,
    Docker,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The service to run.
    #[arg(value_enum)]
    pub service: ServiceArg,
    /// Its configuration file (YAML; keys can be overridden with KMS__… or IDENTITY__… variables).
    /// Required for kms and identity.
    #[arg(long, value_name = "FILE", required_if_eq_any = [("service", "kms"), ("service", "identity")])]
    pub config: Option<PathBuf>,
    /// Apply the demo seed named in the configuration (tenants, pools, key versions) first.
    #[arg(long)]
    pub demo: bool,
    /// partner: the fixture issuer's directory (its PKI and signing key, made there on first use).
    #[arg(long, value_name = "DIR", required_if_eq("service", "partner"))]
    pub dir: Option<PathBuf>,
    /// partner: where its API listens; its issuer is https://partner.demo.local:<this port>.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8443")]
    pub listen: std::net::SocketAddr,
    /// partner: where its admin port (readyz, livez) listens.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:9443")]
    pub admin_listen: std::net::SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServiceArg {
    Kms,
    Identity,
    /// The fixture issuer: a partner's token issuer (discovery document and JWKS) for
    /// federation tests; `demo all --runtime docker` runs it in a container.
    Partner,
}

#[derive(Debug, Args)]
pub struct PkiArgs {
    /// Directory to write; reused (after checking every file) if it already holds this PKI.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of CAs, root included: 1 is Root → leaf, 3 is Root → Policy → Issuing → leaf.
    #[arg(long, value_name = "N", default_value_t = pki::DEFAULT_CHAIN_LENGTH,
          value_parser = clap::value_parser!(u8).range(1..=i64::from(pki::MAX_CHAIN_LENGTH)))]
    pub chain_length: u8,
    /// Key algorithm of every certificate.
    #[arg(long, value_enum, default_value_t = KeyTypeArg::P256)]
    pub key_type: KeyTypeArg,
    /// DNS domain of the services' names (kms.<domain>, identity.<domain>).
    #[arg(long, value_name = "DOMAIN", default_value = pki::DEFAULT_DOMAIN)]
    pub domain: String,
    /// A service to issue a server certificate for (repeatable).
    #[arg(long = "service", value_name = "NAME", default_values = ["kms", "identity"])]
    pub services: Vec<String>,
    /// A client to issue an mTLS client certificate for (repeatable).
    #[arg(long = "client", value_name = "NAME", default_values = ["demo-cli"])]
    pub clients: Vec<String>,
    /// Also write a PKCS#12 bundle (key, leaf, chain, root) per leaf.
    #[arg(long)]
    pub pkcs12: bool,
    /// File whose first line is the PKCS#12 password; without it a random one is written to
    /// DIR/pkcs12-password.txt.
    #[arg(long, value_name = "FILE", requires = "pkcs12")]
    pub pkcs12_password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyTypeArg {
    P256,
    P384,
    Rsa2048,
    Rsa3072,
}

impl From<KeyTypeArg> for pki::KeyType {
    fn from(k: KeyTypeArg) -> Self {
        match k {
            KeyTypeArg::P256 => Self::P256,
            KeyTypeArg::P384 => Self::P384,
            KeyTypeArg::Rsa2048 => Self::Rsa2048,
            KeyTypeArg::Rsa3072 => Self::Rsa3072,
        }
    }
}

/// Runs the command `cli` names and returns the process exit code: 0 success, 1 partial (some
/// steps failed), 2 failure (usage, environment, a service never healthy).
pub fn run(cli: Cli) -> u8 {
    let printer = Printer::new(
        match cli.global.output {
            Output::Human => crate::OutputFormat::Human,
            Output::Json => crate::OutputFormat::Json,
            Output::Structured => crate::OutputFormat::Structured,
        },
        crate::Style::detect(cli.global.no_color),
        cli.global.quiet,
        cli.global.verbose,
    );
    let result = match cli.command {
        Command::Kms(args) => return crate::run_cmd::run_blocking(args.into_run(Stack::Kms), &printer),
        Command::Identity(args) => {
            return crate::run_cmd::run_blocking(args.into_run(Stack::Identity), &printer);
        }
        Command::All(args) => return crate::run_cmd::run_blocking(args.into_run(Stack::All), &printer),
        Command::Status(args) => return crate::run_cmd::status_blocking(&args.state.state(), &printer),
        Command::Logs(args) => {
            return crate::run_cmd::logs_blocking(
                &args.state.state(),
                args.service.as_deref(),
                args.follow,
                args.tail,
                &printer,
            );
        }
        Command::Down(args) => {
            return crate::run_cmd::down_blocking(&args.state.state(), args.volumes, &printer);
        }
        Command::Healthcheck(args) => {
            return crate::healthcheck::run_blocking(&args.url, &args.ca, args.timeout);
        }
        Command::Completions(args) => {
            clap_complete::generate(args.shell, &mut Cli::command(), "demo", &mut std::io::stdout());
            return 0;
        }
        Command::Man => {
            return match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => 0,
                Err(e) => {
                    printer.line(&format!("error: cannot write the manual page: {e}"));
                    2
                }
            };
        }
        Command::Serve(args) => {
            let service = match (args.service, args.config, args.dir) {
                (ServiceArg::Kms, Some(config), _) => crate::serve::Service::Kms { config, demo: args.demo },
                (ServiceArg::Identity, Some(config), _) => {
                    crate::serve::Service::Identity { config, demo: args.demo }
                }
                (ServiceArg::Partner, _, Some(dir)) => crate::serve::Service::Partner {
                    dir,
                    listen: args.listen,
                    admin_listen: args.admin_listen,
                },
                // clap requires --config for kms and identity, --dir for partner: not reached.
                (service, ..) => {
                    let missing = if service == ServiceArg::Partner { "--dir" } else { "--config" };
                    printer.line(&format!("error: demo serve needs {missing} for this service"));
                    return 2;
                }
            };
            ("serve", crate::serve::run_blocking(service))
        }
        Command::Pki(args) => ("pki", crate::pki_cmd::run(&args.into()).map(|report| printer.pki(&report))),
    };
    match result {
        (_, Ok(())) => crate::Outcome::Success.exit_code(),
        (command, Err(err)) => printer.failure(command, &err),
    }
}

/// What `demo kms|identity|all` was asked for: the library's options and how to run them.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The run itself (its runtime is decided by [`RunRequest::runtime`]).
    pub options: DemoOptions,
    /// `--runtime`.
    pub runtime: RuntimeArg,
    /// `--keep-running`.
    pub keep_running: bool,
}

impl RunArgs {
    /// The one conversion from the command line to the library's options.
    pub fn into_run(self, stack: Stack) -> RunRequest {
        let options = DemoOptions {
            reset: self.reset_demo,
            engine: EngineOptions {
                fail_fast: self.fail_fast,
                retry: Retry { retries: self.retries, backoff: self.retry_backoff, ..Retry::default() },
                ..EngineOptions::default()
            },
            health_timeout: self.health_timeout,
            profile: match self.profile {
                ProfileArg::Dev => Profile::Dev,
                ProfileArg::Demo => Profile::Demo,
                ProfileArg::Ci => Profile::Ci,
                ProfileArg::Prod => Profile::Prod,
            },
            telemetry: !self.no_telemetry,
            compose_dir: self.compose_dir,
            ..DemoOptions::new(stack, self.state.state().root())
        };
        let runtime = match self.runtime {
            RuntimeKind::Auto => RuntimeArg::Auto,
            RuntimeKind::Embedded => RuntimeArg::Embedded,
            RuntimeKind::Docker => RuntimeArg::Docker,
        };
        RunRequest { options, runtime, keep_running: self.keep_running }
    }
}

impl From<PkiArgs> for crate::pki_cmd::PkiOptions {
    fn from(args: PkiArgs) -> Self {
        Self {
            out: args.out,
            chain_length: args.chain_length,
            key_type: args.key_type.into(),
            domain: args.domain,
            services: args.services,
            clients: args.clients,
            pkcs12: args.pkcs12,
            pkcs12_password_file: args.pkcs12_password_file,
        }
    }
}
