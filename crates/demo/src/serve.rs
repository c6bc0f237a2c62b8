//! `demo serve kms|identity --config FILE` and `demo serve partner --dir DIR`: the services
//! themselves, as the container images run them. Blocks until SIGINT or SIGTERM, then drains
//! and exits.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::DemoError;

/// The services `demo serve` can run, with what each needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// The KMS, from its configuration file; `demo` applies the demo seed first.
    Kms {
        /// The configuration file.
        config: PathBuf,
        /// Apply the demo seed.
        demo: bool,
    },
    /// The OAuth 2.1 / OpenID Connect provider, likewise.
    Identity {
        /// The configuration file.
        config: PathBuf,
        /// Apply the demo seed.
        demo: bool,
    },
    /// The fixture issuer ([`crate::fixture`]) from its directory.
    Partner {
        /// Its PKI and signing key.
        dir: PathBuf,
        /// Its API.
        listen: SocketAddr,
        /// Its admin port.
        admin_listen: SocketAddr,
    },
}

/// Builds a multi-threaded runtime and runs `service` on it: what `main` calls.
pub fn run_blocking(service: Service) -> Result<(), DemoError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| DemoError::serve(service.name(), e))?;
    runtime.block_on(run(service))
}

impl Service {
    /// The service's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Kms { .. } => "kms",
            Self::Identity { .. } => "identity",
            Self::Partner { .. } => "partner",
        }
    }
}

/// Runs `service` until a shutdown signal.
pub async fn run(service: Service) -> Result<(), DemoError> {
    match service {
        Service::Kms { config, demo } => kms::service::run(&config, kms::service::StartOptions { demo })
            .await
            .map_err(|e| DemoError::serve("kms", e)),
        Service::Identity { config, demo } => {
            identity::service::run(&config, identity::service::StartOptions { demo })
                .await
                .map_err(|e| DemoError::serve("identity", e))
        }
        Service::Partner { dir, listen, admin_listen } => {
            service_kit::telemetry::init_tracing(service_kit::telemetry::LogFormat::Json);
            let partner = crate::fixture::FixtureIssuer::serve(&dir, listen, admin_listen)
                .await
                .map_err(|e| DemoError::serve("partner", e))?;
            tracing::info!(issuer = partner.issuer(), addr = %partner.addr(), "the fixture issuer is serving");
            partner.run_until_signal().await;
            Ok(())
        }
    }
}
