//! `demo kms|identity|all`: one plan of steps per run, on either runtime. Embedded: the
//! services started in-process on free loopback ports from the state directory (the same
//! certificates, secrets and seed files the containers use). Docker (`docker`): the compose
//! stacks brought up through the Engine API. Then the same checks and flows. Every unit of work
//! is a step of the engine, so failures are precise and dependants are skipped.
//!
//! `kms` and `identity` each add their steps to one plan over one shared context (`all` adds
//! both, the KMS configured for Identity's tokens, and `bearer`'s cross-service flows); the
//! state directory comes first and the teardown last, whatever failed in between.

mod apikeys;
mod bearer;
pub mod docker;
mod exchange;
mod federation;

pub use federation::trust_file;
pub mod id;
mod identity;
mod kms;
mod oidc;
mod postgres;
mod prod;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::engine::{Engine, EngineOptions, Observer, Phase, Plan, RunResult, Status, Step, StepError};
use crate::report::{Artifacts, Report, RuntimeChoice, ServiceReport};
use crate::runtime::Runtime;
use crate::state::State;

/// Which services a run stands up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// The KMS (Basic realm flows).
    Kms,
    /// Identity (OAuth 2.1 / OIDC flows).
    Identity,
    /// Both, the KMS accepting Identity's Bearer tokens.
    All,
}

impl Stack {
    /// The command name in reports.
    pub fn command(self) -> &'static str {
        match self {
            Self::Kms => "kms",
            Self::Identity => "identity",
            Self::All => "all",
        }
    }
}

/// `--profile`: what kind of environment a run stands up (DESIGN §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Persistent, for development, on PostgreSQL: the first link of the health chain. Docker:
    /// a `postgres` service (the official image, or one built offline from the host's packages),
    /// its data in a named volume. Embedded: a cluster of the host's PostgreSQL in the state
    /// directory, started for the run and stopped with it.
    Dev,
    /// Persistent named volumes (SQLite), demo data: the default.
    #[default]
    Demo,
    /// Ephemeral data: on Docker the services' data lives on a tmpfs (no volume is created; the
    /// data is gone when the containers are recreated or taken down, while the stack itself stays
    /// up for inspection like any other); embedded, the data directory is removed after the run.
    Ci,
    /// The production template: no demo data, no demo seed (Docker only). The run checks that
    /// the stack comes up healthy and that no demo account or client exists; no flows run.
    Prod,
}

impl Profile {
    /// The name in reports, compose file names (`compose.ci.yml`) and compose profiles.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Demo => "demo",
            Self::Ci => "ci",
            Self::Prod => "prod",
        }
    }
}

/// What a demo run was asked for: the one options value, made from the command line by
/// `crate::cli` or by a library caller with [`DemoOptions::new`].
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The services.
    pub stack: Stack,
    /// The state directory (absolute: see [`State::at`]).
    pub state: State,
    /// Start from scratch.
    pub reset: bool,
    /// Engine settings.
    pub engine: EngineOptions,
    /// How long each service may take to become ready.
    pub health_timeout: Duration,
    /// Where the services run.
    pub runtime: Runtime,
    /// Why this runtime was chosen (the report's `runtime.reason`).
    pub runtime_reason: String,
    /// The profile.
    pub profile: Profile,
    /// Docker: bring the telemetry stack up too (when its collector image can be had).
    pub telemetry: bool,
    /// Docker: the compose files to use, laid out like `deployments/` (`<dir>/all/compose.yml`);
    /// `None`: the shipped ones, written into the state directory.
    pub compose_dir: Option<PathBuf>,
    /// Docker: the `demo` binary the service image is built from; `None`: this program (right
    /// for the CLI; a test binary must name the `demo` binary, e.g. `CARGO_BIN_EXE_demo`).
    pub service_binary: Option<PathBuf>,
}

impl DemoOptions {
    /// Options for a library caller: embedded runtime, default engine settings, 30 s health
    /// timeout, the given state directory.
    pub fn new(stack: Stack, state_dir: impl AsRef<std::path::Path>) -> Self {
        Self {
            stack,
            state: State::at(state_dir.as_ref()),
            reset: false,
            engine: EngineOptions::default(),
            health_timeout: Duration::from_secs(30),
            runtime: Runtime::Embedded,
            runtime_reason: "library call".to_owned(),
            profile: Profile::Demo,
            telemetry: false,
            compose_dir: None,
            service_binary: None,
        }
    }

    /// The same, on `runtime`.
    pub fn on(self, runtime: Runtime) -> Self {
        Self { runtime, ..self }
    }
}

/// A stack left running after its run (`--keep-running`, integration tests): the report, the
/// endpoints, a client that trusts the demo CA, and where the credentials are. Stop it with
/// [`RunningStack::shutdown`]: embedded, the servers stop; Docker, the stack is taken down
/// (containers and networks; volumes stay unless the profile put the data on a tmpfs). Dropping
/// an embedded stack stops the servers abruptly when the async runtime ends (each test's runtime
/// does); dropping a Docker stack leaves it up for `demo down`.
#[derive(Debug)]
pub struct RunningStack {
    /// The run's report (without a teardown step: nothing was torn down).
    pub report: Report,
    /// The state directory.
    pub state: State,
    /// `https://identity.demo.local:PORT`, if Identity runs.
    pub identity_url: Option<String>,
    /// `https://kms.demo.local:PORT`, if the KMS runs.
    pub kms_url: Option<String>,
    client: Option<reqwest::Client>,
    identity: Option<::identity::service::RunningIdentity>,
    kms: Option<::kms::service::RunningKms>,
    /// Docker: the state directory and the project `shutdown` takes down.
    docker: Option<(PathBuf, String)>,
    /// Embedded dev profile: the PostgreSQL cluster (stopped after the services).
    postgres: Option<postgres::EmbeddedCluster>,
    /// Embedded `all`: the fixture issuer in the KMS's trust store.
    partner: Option<crate::fixture::FixtureIssuer>,
}

impl RunningStack {
    /// An HTTPS client that trusts only the demo CA and resolves `identity.demo.local` and
    /// `kms.demo.local` to the running services; redirects are not followed.
    pub fn client(&self) -> Option<&reqwest::Client> {
        self.client.as_ref()
    }

    /// Embedded `all`: the fixture issuer the KMS trusts (for tenant globex).
    pub fn partner(&self) -> Option<&crate::fixture::FixtureIssuer> {
        self.partner.as_ref()
    }

    /// The secret file of a seeded confidential client (`demo-confidential`, `kms-service`).
    pub fn client_secret_file(&self, client: &str) -> PathBuf {
        self.state.client_secret(client)
    }

    /// The password file of a seeded Identity user (`admin`, `user`, `service`).
    pub fn user_password_file(&self, user: &str) -> PathBuf {
        self.state.user_password(user)
    }

    /// Stops the services (the KMS first: it depends on Identity).
    pub async fn shutdown(mut self) -> Result<(), String> {
        let mut errors = Vec::new();
        if let Some(kms) = self.kms.take()
            && let Err(e) = kms.shutdown().await
        {
            errors.push(format!("the KMS did not stop cleanly: {e}"));
        }
        if let Some(identity) = self.identity.take()
            && let Err(e) = identity.shutdown().await
        {
            errors.push(format!("Identity did not stop cleanly: {e}"));
        }
        if let Some(partner) = self.partner.take() {
            partner.shutdown().await;
        }
        if let Some(cluster) = self.postgres.take() {
            let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
        }
        if let Some((root, project)) = self.docker.take()
            && let Err(e) = docker::down_stack(&root, &project).await
        {
            errors.push(format!("the Docker stack was not taken down: {e}"));
        }
        if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
    }
}

/// What every step shares.
pub(crate) struct Ctx {
    /// What the run was asked for.
    pub(crate) options: DemoOptions,
    /// What the run left out or degraded, said plainly (the report's `notes`).
    notes: std::sync::Mutex<Vec<String>>,
    /// Where long steps report progress (an image pull).
    observer: Arc<dyn Observer>,
    state: OnceLock<State>,
    kms: kms::KmsCtx,
    identity: identity::IdentityCtx,
    docker: docker::DockerCtx,
    postgres: postgres::PostgresCtx,
    partner: federation::PartnerCtx,
}

impl Ctx {
    fn state(&self) -> Result<&State, StepError> {
        self.state.get().ok_or_else(|| StepError::new("the state directory is not ready"))
    }

    fn note(&self, note: impl Into<String>) {
        if let Ok(mut notes) = self.notes.lock() {
            notes.push(note.into());
        }
    }
}

/// Runs a demo, tears it down (embedded; a Docker stack stays up), and returns the report.
pub async fn run(
    options: DemoOptions,
    observer: Arc<dyn Observer>,
    interrupt: watch::Receiver<bool>,
) -> Report {
    execute(options, observer, interrupt, true).await.report
}

/// Runs a demo and leaves the services running (`--keep-running`, and the library API for
/// integration tests). Independent state directories never collide: ports are chosen free
/// where the design's are taken, and Docker projects are named for their state directory.
pub async fn start(
    options: DemoOptions,
    observer: Arc<dyn Observer>,
    interrupt: watch::Receiver<bool>,
) -> RunningStack {
    execute(options, observer, interrupt, false).await
}

async fn execute(
    options: DemoOptions,
    observer: Arc<dyn Observer>,
    interrupt: watch::Receiver<bool>,
    teardown: bool,
) -> RunningStack {
    let ctx = Arc::new(Ctx {
        options: options.clone(),
        notes: std::sync::Mutex::default(),
        observer: observer.clone(),
        state: OnceLock::new(),
        kms: kms::KmsCtx::default(),
        identity: identity::IdentityCtx::default(),
        docker: docker::DockerCtx::default(),
        postgres: postgres::PostgresCtx::default(),
        partner: federation::PartnerCtx::default(),
    });
    // One plan for both runtimes: the runtime starts the stack and takes it down; the checks
    // and flows in between are the same.
    let plan = Plan::new().step(state_step());
    let plan = options.runtime.start(plan, options.stack, options.health_timeout, options.profile);
    let plan = if options.profile == Profile::Prod {
        ctx.note("profile prod: no demo data, so no seed checks and no flows; the run checks that the stack is healthy and that no demo account or client exists");
        prod::checks(plan, options.stack)
    } else {
        checks(plan, options.stack)
    };
    let plan = options.runtime.teardown(plan, teardown, options.profile);
    let engine = Engine::new(options.engine, observer);
    let result: RunResult = engine.run(plan, ctx.clone(), interrupt).await;
    let state = ctx.state.get().cloned().unwrap_or_else(|| options.state.clone());
    let healthy = |id: &str| {
        if result.steps.iter().any(|s| s.id == id && s.status == Status::Passed) {
            "healthy"
        } else {
            "unhealthy"
        }
    };
    let identity_url = ctx.identity.api.get().map(|a| format!("https://identity.demo.local:{}", a.port()));
    let kms_url = ctx.kms.api.get().map(|a| format!("https://kms.demo.local:{}", a.port()));
    let mut services = Vec::new();
    if let Some(url) = &identity_url {
        services.push(ServiceReport {
            name: "identity".into(),
            url: url.clone(),
            health: healthy("health.identity"),
        });
    }
    if let Some(url) = &kms_url {
        services.push(ServiceReport { name: "kms".into(), url: url.clone(), health: healthy("health.kms") });
    }
    let report = Report::new(
        options.stack.command(),
        RuntimeChoice { name: options.runtime.name(), reason: options.runtime_reason },
        options.profile.name(),
        &result,
        services,
        Artifacts::of(&state),
    )
    .with_notes(ctx.notes.lock().map(|n| n.clone()).unwrap_or_default());
    // Only a stack left running needs a client (a plain run has torn everything down).
    let client = if teardown { None } else { stack_client(&ctx, &state) };
    // Only a stack that came up is this caller's to take down (a failed start was rolled back).
    let docker = ctx
        .docker
        .project
        .get()
        .filter(|_| !teardown && ctx.docker.up_done.load(std::sync::atomic::Ordering::SeqCst))
        .map(|p| (state.root().to_owned(), p.name.clone()));
    RunningStack {
        report,
        state,
        identity_url,
        kms_url,
        client,
        identity: ctx.identity.running.lock().await.take(),
        kms: ctx.kms.running.lock().await.take(),
        docker,
        postgres: ctx.postgres.cluster.lock().ok().and_then(|mut slot| slot.take()),
        partner: ctx.partner.take().await,
    }
}

/// Test hook: `DEMO_TEST_HOOK_NEVER_READY=kms` (or `identity`) makes that service's `readyz`
/// report a dependency that never becomes ready, so tests can watch the health step time out.
/// Named loudly so nobody sets it by accident; it changes nothing else.
pub const NEVER_READY_HOOK: &str = "DEMO_TEST_HOOK_NEVER_READY";

fn apply_never_ready_hook(service: &str, server: &service_kit::RunningServer) {
    if std::env::var(NEVER_READY_HOOK).is_ok_and(|v| v == service) {
        server
            .readiness()
            .dependency("test_hook_never_ready")
            .failing(format!("{NEVER_READY_HOOK}={service} is set"));
    }
}

/// Polls a service's `readyz` over HTTPS (trusting only the demo CA) until it answers 200 or
/// `timeout` has passed in all; then fails naming the service, the last answer (readyz names
/// the dependency that is not ready) and a hint.
async fn wait_ready(
    service: &str,
    admin: std::net::SocketAddr,
    ca: &std::path::Path,
    timeout: Duration,
) -> Result<(), StepError> {
    let url = format!("https://localhost:{}/readyz", admin.port());
    let deadline = tokio::time::Instant::now() + timeout;
    // Short at first: an in-process service is usually ready within milliseconds.
    let mut wait = Duration::from_millis(10);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        // At least 250 ms per check, so the last answer is a real one, not a timeout of ours.
        let error = match crate::healthcheck::check(
            &url,
            ca,
            left.clamp(Duration::from_millis(250), Duration::from_secs(2)),
        )
        .await
        {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if tokio::time::Instant::now() + wait >= deadline {
            return Err(StepError::from_error(
                format!("{service} did not become ready within {timeout:?}"),
                &error,
            )
            .with_hint(format!(
                "readyz names the dependency that is not ready; see {service}'s log lines above, \
                     or allow more time with --health-timeout"
            )));
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(500));
    }
}

/// The hint for a service that would not start from the state directory.
const START_HINT: &str =
    "fix or remove the file named above, or run with --reset-demo to regenerate the whole environment";

/// An HTTPS client trusting the demo CA, resolving the services' names to where they run.
fn stack_client(ctx: &Ctx, state: &State) -> Option<reqwest::Client> {
    let mut client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if let Some(addr) = ctx.identity.api.get() {
        client = client.resolve("identity.demo.local", *addr);
    }
    if let Some(addr) = ctx.kms.api.get() {
        client = client.resolve("kms.demo.local", *addr);
    }
    let tls = pki::client_config_for(&pki::PkiDir::new(state.pki_dir()), None).ok()?;
    client.tls_backend_preconfigured(tls).build().ok()
}

/// The HTTPS client the steps use for one service: trusts only the demo CA, resolves `host` to
/// where the service listens, follows no redirects, gives up after 10 s.
pub(crate) fn service_client(
    state: &State,
    host: &str,
    addr: std::net::SocketAddr,
) -> Result<reqwest::Client, StepError> {
    let tls = pki::client_config_for(&pki::PkiDir::new(state.pki_dir()), None)
        .map_err(|e| StepError::from_error("cannot trust the demo CA", &e))?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .resolve(host, addr)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| StepError::from_error("cannot build the HTTPS client", &e))
}

fn state_step() -> Step<Ctx> {
    Step::new(id::STATE_PREPARE, Phase::Setup, move |c: Arc<Ctx>| async move {
        c.options.runtime.prepare(&c)?;
        let root = c.options.state.root();
        if c.options.reset {
            State::reset(root)
                .map_err(|e| StepError::from_error("cannot reset the demo", &e).with_hint(e.hint(root)))?;
        }
        let state = State::ensure(root, &pki::PkiSpec::demo()).map_err(|e| {
            StepError::from_error("cannot prepare the state directory", &e).with_hint(e.hint(root))
        })?;
        write_credentials(&state)
            .map_err(|e| StepError::from_error("cannot write the credentials file", &e))?;
        let _ = c.state.set(state);
        Ok(())
    })
    .critical()
}

/// Embedded: Identity and the KMS started in this process from the state directory, each on
/// its port, then the health chain Identity → KMS.
///
/// With `dev`, PostgreSQL first: the chain is database → Identity → KMS.
pub(crate) fn embedded_start(
    plan: Plan<Ctx>,
    stack: Stack,
    health_timeout: Duration,
    dev: bool,
) -> Plan<Ctx> {
    let plan = if dev { postgres::embedded_steps(plan, health_timeout) } else { plan };
    match stack {
        Stack::Kms => kms::start(plan, health_timeout, false, dev),
        Stack::Identity => identity::start(plan, health_timeout, dev),
        Stack::All => federation::embedded(kms::start(
            identity::start(plan, health_timeout, dev),
            health_timeout,
            true,
            dev,
        )),
    }
}

/// The checks and flows of `stack`, whichever runtime started it.
fn checks(plan: Plan<Ctx>, stack: Stack) -> Plan<Ctx> {
    match stack {
        Stack::Kms => kms::checks(plan, false),
        Stack::Identity => identity::checks(plan),
        Stack::All => apikeys::flows(kms::checks(identity::checks(plan), true)),
    }
}

/// Stops what the run started (Identity last: the KMS depends on it); with `ephemeral` (the ci
/// profile) also removes the services' data.
pub(crate) fn teardown_step(ephemeral: bool) -> Step<Ctx> {
    Step::new(id::STACK_DOWN, Phase::Teardown, move |c: Arc<Ctx>| async move {
        // Both at once: nothing is in flight any more, so the KMS no longer needs Identity.
        let kms = c.kms.running.lock().await.take();
        let identity = c.identity.running.lock().await.take();
        let (kms, identity) = tokio::join!(
            async move { if let Some(k) = kms { k.shutdown().await.map_err(|e| e.to_string()) } else { Ok(()) } },
            async move {
                if let Some(i) = identity { i.shutdown().await.map_err(|e| e.to_string()) } else { Ok(()) }
            },
        );
        kms.map_err(|e| StepError { causes: vec![e], ..StepError::new("the KMS did not stop cleanly") })?;
        identity
            .map_err(|e| StepError { causes: vec![e], ..StepError::new("Identity did not stop cleanly") })?;
        c.partner.stop().await;
        // The database last (dropping the cluster stops it).
        let cluster = c.postgres.cluster.lock().ok().and_then(|mut slot| slot.take());
        if let Some(cluster) = cluster {
            tokio::task::spawn_blocking(move || drop(cluster))
                .await
                .map_err(|e| StepError::new(format!("stopping PostgreSQL was interrupted: {e}")))?;
        }
        if ephemeral {
            let data = c.state()?.data_dir();
            match std::fs::remove_dir_all(&data) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(StepError::from_error(format!("cannot remove {}", data.display()), &e));
                }
            }
        }
        Ok(())
    })
}

/// `credentials.md`: where to find every demo credential. Identity's passwords and secrets are
/// random per environment, so the file names their files rather than copying them.
fn write_credentials(state: &State) -> std::io::Result<()> {
    let mut users = String::new();
    for user in crate::state::USERS {
        users.push_str(&format!("| {user} | `{}` |\n", state.user_password(user).display()));
    }
    let mut clients = String::new();
    for client in crate::state::CLIENTS {
        clients.push_str(&format!("| {client} | `{}` |\n", state.client_secret(client).display()));
    }
    std::fs::write(
        state.credentials_file(),
        format!(
            "# Demo credentials\n\n\
             KMS demo accounts (HTTP Basic, database realm; predictable on purpose: a demo):\n\n\
             | account | password | tenant | role |\n|---|---|---|---|\n\
             | acme-admin | acme-admin-demo | acme | tenant-admin |\n\
             | acme-app | acme-app-demo | acme | service |\n\
             | acme-user | acme-user-demo | acme | user |\n\
             | acme-auditor | acme-auditor-demo | acme | auditor |\n\
             | globex-user | globex-user-demo | globex | user |\n\n\
             Identity users (sign in at /authorize; random passwords, one file each):\n\n\
             | user | password file |\n|---|---|\n{users}\n\
             Identity confidential clients (the public client `demo-spa` has no secret; `demo-gateway` \
             is the token-exchange actor):\n\n\
             | client | secret file |\n|---|---|\n{clients}\n\
             Trust only {}\n",
            state.ca_bundle().display()
        ),
    )
}
