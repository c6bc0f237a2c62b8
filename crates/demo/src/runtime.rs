//! Where a demo's services run, behind one trait: `embedded` (in-process on loopback) and
//! `docker` (compose stacks through the Engine API); both run the plans of the `stack` module.
//! `--runtime auto` picks docker when an engine answers a short probe, else embedded, and the
//! report says which and why.

use std::sync::Arc;

use tokio::sync::watch;

use crate::engine::Observer;
use crate::report::Report;
use crate::stack::{DemoOptions, RunningStack};

/// A place to run a demo stack.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync + std::fmt::Debug {
    /// `embedded` or `docker` (the report's `runtime.name`).
    fn name(&self) -> &'static str;

    /// Runs the plan, tears the stack down, returns the report.
    async fn run(
        &self,
        options: DemoOptions,
        observer: Arc<dyn Observer>,
        interrupt: watch::Receiver<bool>,
    ) -> Report;

    /// Runs the plan and leaves the stack up (`--keep-running`, integration tests).
    async fn start(
        &self,
        options: DemoOptions,
        observer: Arc<dyn Observer>,
        interrupt: watch::Receiver<bool>,
    ) -> RunningStack;
}

/// The services in this process, on free loopback ports.
#[derive(Debug, Clone, Copy, Default)]
pub struct Embedded;

#[async_trait::async_trait]
impl Runtime for Embedded {
    fn name(&self) -> &'static str {
        "embedded"
    }

    async fn run(
        &self,
        options: DemoOptions,
        observer: Arc<dyn Observer>,
        interrupt: watch::Receiver<bool>,
    ) -> Report {
        crate::stack::run(options, observer, interrupt).await
    }

    async fn start(
        &self,
        options: DemoOptions,
        observer: Arc<dyn Observer>,
        interrupt: watch::Receiver<bool>,
    ) -> RunningStack {
        crate::stack::start(options, observer, interrupt).await
    }
}

/// Compose stacks through the Docker Engine API (`compose-engine`); the stack stays up after the
/// run and `demo down` removes it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Docker;

#[async_trait::async_trait]
impl Runtime for Docker {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn run(
        &self,
        mut options: DemoOptions,
        observer: Arc<dyn Observer>,
        interrupt: watch::Receiver<bool>,
    ) -> Report {
        options.docker = true;
        crate::stack::run(options, observer, interrupt).await
    }

    async fn start(
        &self,
        mut options: DemoOptions,
        observer: Arc<dyn Observer>,
        interrupt: watch::Receiver<bool>,
    ) -> RunningStack {
        options.docker = true;
        crate::stack::start(options, observer, interrupt).await
    }
}
