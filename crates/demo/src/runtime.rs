//! Where a demo's services run: `embedded` (in-process on loopback) or `docker` (compose stacks
//! through the Engine API). The runtime is what differs between the two — how the stack is
//! prepared, started, found healthy and stopped; the checks and flows that follow are one plan
//! for both (`crate::stack`). `--runtime auto` picks docker when an engine answers a short probe,
//! else embedded, and the report says which and why.

use std::time::Duration;

use crate::engine::{Plan, StepError};
use crate::stack::{Ctx, Profile, Stack};

/// A place to run a demo stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Runtime {
    /// The services in this process, on loopback (`demo serve` in a task instead of a container).
    #[default]
    Embedded,
    /// Compose stacks through the Docker Engine API; the stack stays up after the run
    /// (`demo down` removes it).
    Docker,
}

impl Runtime {
    /// `embedded` or `docker` (the report's `runtime.name`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Docker => "docker",
        }
    }

    /// Before the state directory is touched: what this runtime refuses, and its locks.
    pub(crate) fn prepare(self, c: &Ctx) -> Result<(), StepError> {
        match self {
            Self::Embedded if c.options.profile == Profile::Prod => Err(StepError::new(
                "the prod profile exists only as compose files (deployments/*/compose.prod.yml)",
            )
            .with_hint("run it with --runtime docker, or choose --profile demo or ci")),
            Self::Embedded => Ok(()),
            Self::Docker => crate::stack::docker::prepare(c),
        }
    }

    /// The steps that bring `stack` up and wait for its health chain (the dev profile's
    /// database, then Identity, then the KMS).
    pub(crate) fn start(
        self,
        plan: Plan<Ctx>,
        stack: Stack,
        health_timeout: Duration,
        profile: Profile,
    ) -> Plan<Ctx> {
        match self {
            Self::Embedded => {
                crate::stack::embedded_start(plan, stack, health_timeout, profile == Profile::Dev)
            }
            Self::Docker => crate::stack::docker::steps(plan, stack, health_timeout, profile),
        }
    }

    /// The teardown: embedded, the services stop when the caller does not keep them (`stop`);
    /// Docker, a start that failed or was interrupted is rolled back, and a stack that came up
    /// stays up for the next run.
    pub(crate) fn teardown(self, plan: Plan<Ctx>, stop: bool, profile: Profile) -> Plan<Ctx> {
        match self {
            Self::Embedded if stop => plan.step(crate::stack::teardown_step(profile == Profile::Ci)),
            Self::Embedded => plan,
            Self::Docker => plan.step(crate::stack::docker::rollback_step()),
        }
    }
}
