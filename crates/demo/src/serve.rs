//! `demo serve kms|identity --config FILE`: the services themselves, as the container images
//! run them. Blocks until SIGINT or SIGTERM, then drains and exits.

use std::path::Path;

use crate::DemoError;

/// The services `demo serve` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The KMS.
    Kms,
    /// The OAuth 2.1 / OpenID Connect provider.
    Identity,
}

/// Builds a multi-threaded runtime and runs `service` on it: what `main` calls.
pub fn run_blocking(service: Service, config: &Path, demo: bool) -> Result<(), DemoError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| DemoError::serve(service.name(), e))?;
    runtime.block_on(run(service, config, demo))
}

impl Service {
    /// The service's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kms => "kms",
            Self::Identity => "identity",
        }
    }
}

/// Runs `service` with the configuration at `config` until a shutdown signal; `demo` applies
/// the demo seed first.
pub async fn run(service: Service, config: &Path, demo: bool) -> Result<(), DemoError> {
    match service {
        Service::Kms => kms::service::run(config, kms::service::StartOptions { demo })
            .await
            .map_err(|e| DemoError::serve("kms", e)),
        Service::Identity => identity::service::run(config, identity::service::StartOptions { demo })
            .await
            .map_err(|e| DemoError::serve("identity", e)),
    }
}
