//! Where a demo's services run, behind one trait: `embedded` (in-process on loopback, this
//! crate's `embedded` module) today; `docker` (compose stacks through the Engine API) implements
//! the same trait when it lands. `--runtime auto` picks docker when an engine answers a short
//! probe and the runtime exists, else embedded, and the report says which and why.

use std::sync::Arc;

use tokio::sync::watch;

use crate::embedded::{DemoOptions, RunningStack};
use crate::engine::Observer;
use crate::report::Report;

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
        crate::embedded::run(options, observer, interrupt).await
    }

    async fn start(
        &self,
        options: DemoOptions,
        observer: Arc<dyn Observer>,
        interrupt: watch::Receiver<bool>,
    ) -> RunningStack {
        crate::embedded::start(options, observer, interrupt).await
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
        crate::embedded::run(options, observer, interrupt).await
    }

    async fn start(
        &self,
        mut options: DemoOptions,
        observer: Arc<dyn Observer>,
        interrupt: watch::Receiver<bool>,
    ) -> RunningStack {
        options.docker = true;
        crate::embedded::start(options, observer, interrupt).await
    }
}
