//! `demo kms|identity|all` on the embedded runtime: the services started in-process on free
//! loopback ports from the state directory (the same certificates, secrets and seed files the
//! containers use), checked, and exercised. Every unit of work is a step of the engine, so
//! failures are precise and dependants are skipped.
//!
//! `kms` and `identity` each add their steps to one plan over one shared context (`all` adds
//! both, the KMS configured for Identity's tokens, and `bearer`'s cross-service flows); the
//! state directory comes first and the teardown last, whatever failed in between.

mod bearer;
mod identity;
mod kms;
mod oidc;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::engine::{Engine, EngineOptions, Observer, Phase, Plan, RunResult, Status, Step, StepError};
use crate::report::{Artifacts, Report, RuntimeChoice, ServiceReport};
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

/// What a demo run was asked for.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The services.
    pub stack: Stack,
    /// The state directory.
    pub state_dir: PathBuf,
    /// Start from scratch.
    pub reset: bool,
    /// Engine settings.
    pub engine: EngineOptions,
    /// How long each service may take to become ready.
    pub health_timeout: Duration,
    /// Why the embedded runtime was chosen.
    pub runtime_reason: String,
}

/// What every step shares.
#[derive(Default)]
pub(crate) struct Ctx {
    state_dir: PathBuf,
    reset: bool,
    state: OnceLock<State>,
    kms: kms::KmsCtx,
    identity: identity::IdentityCtx,
}

impl Ctx {
    fn state(&self) -> Result<&State, StepError> {
        self.state.get().ok_or_else(|| StepError::new("the state directory is not ready"))
    }
}

/// Runs a demo on the embedded runtime and returns the report.
pub async fn run(
    options: DemoOptions,
    observer: Arc<dyn Observer>,
    interrupt: watch::Receiver<bool>,
) -> Report {
    let ctx = Arc::new(Ctx { state_dir: options.state_dir.clone(), reset: options.reset, ..Ctx::default() });
    let mut plan = Plan::new().step(state_step());
    plan = match options.stack {
        Stack::Kms => kms::steps(plan, options.health_timeout, false),
        Stack::Identity => identity::steps(plan, options.health_timeout),
        Stack::All => kms::steps(identity::steps(plan, options.health_timeout), options.health_timeout, true),
    };
    let plan = plan.step(teardown_step());
    let engine = Engine::new(options.engine, observer);
    let result: RunResult = engine.run(plan, ctx.clone(), interrupt).await;
    let state = ctx.state.get().cloned().unwrap_or_else(|| State::at(&options.state_dir));
    let healthy = |id: &str| {
        if result.steps.iter().any(|s| s.id == id && s.status == Status::Passed) {
            "healthy"
        } else {
            "unhealthy"
        }
    };
    let mut services = Vec::new();
    if let Some(addr) = ctx.identity.api.get() {
        services.push(ServiceReport {
            name: "identity".into(),
            url: format!("https://identity.demo.local:{}", addr.port()),
            health: healthy("health.identity"),
        });
    }
    if let Some(addr) = ctx.kms.api.get() {
        services.push(ServiceReport {
            name: "kms".into(),
            url: format!("https://kms.demo.local:{}", addr.port()),
            health: healthy("health.kms"),
        });
    }
    Report::new(
        options.stack.command(),
        RuntimeChoice { name: "embedded", reason: options.runtime_reason },
        "demo",
        &result,
        services,
        Artifacts {
            ca_bundle: state.pki_dir().join("ca-bundle.pem"),
            state_dir: state.root().to_owned(),
            credentials_file: state.root().join("credentials.md"),
        },
    )
}

fn state_step() -> Step<Ctx> {
    Step::new("state.prepare", Phase::Setup, |c: Arc<Ctx>| async move {
        if c.reset {
            State::reset(&c.state_dir).map_err(|e| StepError::from_error("cannot reset the demo", &e))?;
        }
        let state = State::ensure(&c.state_dir, &pki::PkiSpec::demo()).map_err(|e| {
            StepError::from_error("cannot prepare the state directory", &e)
                .with_hint("choose another --state-dir, or run with --reset-demo to start from scratch")
        })?;
        write_credentials(&state)
            .map_err(|e| StepError::from_error("cannot write the credentials file", &e))?;
        let _ = c.state.set(state);
        Ok(())
    })
    .critical()
}

/// Stops what the run started (Identity last: the KMS depends on it).
fn teardown_step() -> Step<Ctx> {
    Step::new("stack.down", Phase::Teardown, |c: Arc<Ctx>| async move {
        if let Some(running) = c.kms.running.lock().await.take() {
            running
                .shutdown()
                .await
                .map_err(|e| StepError::from_error("the KMS did not stop cleanly", &e))?;
        }
        if let Some(running) = c.identity.running.lock().await.take() {
            running
                .shutdown()
                .await
                .map_err(|e| StepError::from_error("Identity did not stop cleanly", &e))?;
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
        state.root().join("credentials.md"),
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
             Identity confidential clients (the public client `demo-spa` has no secret):\n\n\
             | client | secret file |\n|---|---|\n{clients}\n\
             Trust only {}\n",
            state.pki_dir().join("ca-bundle.pem").display()
        ),
    )
}
