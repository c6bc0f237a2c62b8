//! The HTTPS server every service runs: the application on one listener, `livez`/`readyz` on a
//! separate admin listener, both TLS 1.3 from `pki`; the cross-cutting layers (request id,
//! tracing with sensitive headers hidden, panics caught, problem+json errors, timeout, body
//! limit); graceful shutdown that stops readiness first and drains in-flight requests for a
//! bounded time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use serde::Deserialize;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::{Validate, Validator};
use crate::health::{Readiness, admin_router};
use crate::problem;
use crate::request_id::{self, RequestId};

/// The `server:` section every service config has.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The API listener (`0.0.0.0:8081`).
    pub listen: SocketAddr,
    /// The admin listener for `livez`/`readyz`.
    pub admin_listen: SocketAddr,
    /// Certificates.
    pub tls: TlsSettings,
    /// Limits and timeouts.
    #[serde(default)]
    pub limits: Limits,
}

/// Certificate files for a server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// Leaf followed by intermediates.
    pub cert_file: PathBuf,
    /// The leaf's private key.
    pub key_file: PathBuf,
    /// The CA bundle: checked against the chain at start; trusted for client certificates.
    pub ca_file: PathBuf,
    /// Client certificates on the API listener.
    #[serde(default)]
    pub client_auth: ClientAuthMode,
}

/// Client-certificate policy of the API listener (the admin listener never asks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuthMode {
    /// No client certificates.
    #[default]
    None,
    /// Accepted when presented.
    Optional,
    /// Required (mTLS).
    Required,
}

/// Request limits and timeouts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub body_bytes: usize,
    /// Longest time a request may take, end to end.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Longest time in-flight requests get to finish on shutdown.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Longest time a TLS handshake may take.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl HttpConfig {
    /// Both listeners on free loopback ports (`127.0.0.1:0`; the bound addresses are on
    /// [`RunningServer`]), TLS from the `leaf` of a materialised PKI, no client certificates,
    /// default limits: what the embedded runtime and tests start services with.
    pub fn loopback(pki: &pki::PkiDir, leaf: &str) -> Self {
        let paths = pki.leaf(leaf);
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            listen: any_port,
            admin_listen: any_port,
            tls: TlsSettings {
                cert_file: paths.fullchain,
                key_file: paths.key,
                ca_file: pki.ca_bundle(),
                client_auth: ClientAuthMode::None,
            },
            limits: Limits::default(),
        }
    }
}

impl Validate for HttpConfig {
    fn validate(&self, v: &mut Validator) {
        v.check(
            self.listen.port() == 0 || self.listen != self.admin_listen,
            "server.admin_listen",
            "must differ from server.listen: the admin listener needs its own port",
        );
        let l = &self.limits;
        v.check(
            (1..=64 * 1024 * 1024).contains(&l.body_bytes),
            "server.limits.body_bytes",
            "must be between 1 and 67108864 (64 MiB)",
        );
        for (key, d) in [
            ("server.limits.request_timeout", l.request_timeout),
            ("server.limits.shutdown_grace", l.shutdown_grace),
            ("server.limits.handshake_timeout", l.handshake_timeout),
        ] {
            v.check(!d.is_zero() && d <= Duration::from_secs(600), key, "must be between 1ms and 10m");
        }
    }
}

/// Starting or running the server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({what}); is another process using the port? (`ss -ltnp 'sport = :{}'` names it)", addr.port())]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS material is unusable.
    #[error("the TLS configuration of the {what} listener is unusable")]
    Tls {
        /// Which listener.
        what: &'static str,
        /// Why.
        #[source]
        source: pki::PkiError,
    },
    /// A listener failed while serving.
    #[error("the {what} listener failed")]
    Serve {
        /// Which listener.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A started server: its bound addresses and the means to stop it.
#[derive(Debug)]
pub struct RunningServer {
    /// The API listener's bound address (the real port when the config said 0).
    pub addr: SocketAddr,
    /// The admin listener's bound address.
    pub admin_addr: SocketAddr,
    readiness: Readiness,
    grace: Duration,
    handles: [Handle<SocketAddr>; 2],
    tasks: tokio::task::JoinSet<Result<(), ServerError>>,
}

/// Wraps `app` in the layers every service shares. Exposed so tests can exercise a router
/// without TLS.
pub fn with_common_layers(app: Router, limits: &Limits) -> Router {
    // Added innermost first: the body limit sits next to the handlers, the request id outside
    // everything so every layer (and every problem document) can see it.
    app.layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(RequestBodyLimitLayer::new(limits.body_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, limits.request_timeout))
        .layer(CatchPanicLayer::new())
        .layer(middleware::from_fn(problem::normalize))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::extract::Request| {
            let id = req.extensions().get::<RequestId>().map(|r| r.as_str().to_owned()).unwrap_or_default();
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
            header::PROXY_AUTHORIZATION,
            HeaderName::from_static("x-api-key"),
        ]))
        .layer(middleware::from_fn(request_id::layer))
        // Outermost: it must see the body before any layer replaces it, and the final response.
        .layer(middleware::from_fn(crate::unread::layer))
}

/// Binds both listeners, then serves `app` and the admin router until shut down.
pub async fn start(
    config: &HttpConfig,
    app: Router,
    readiness: Readiness,
) -> Result<RunningServer, ServerError> {
    let files = |client_auth| pki::ServerTlsFiles {
        cert_chain: config.tls.cert_file.clone(),
        key: config.tls.key_file.clone(),
        ca_bundle: Some(config.tls.ca_file.clone()),
        client_auth,
    };
    let api_auth = match config.tls.client_auth {
        ClientAuthMode::None => pki::ClientAuth::None,
        ClientAuthMode::Optional => pki::ClientAuth::Optional(config.tls.ca_file.clone()),
        ClientAuthMode::Required => pki::ClientAuth::Required(config.tls.ca_file.clone()),
    };
    let api_tls = files(api_auth).build().map_err(|source| ServerError::Tls { what: "API", source })?;
    let admin_tls =
        files(pki::ClientAuth::None).build().map_err(|source| ServerError::Tls { what: "admin", source })?;

    // Bind before spawning anything, so a taken port is an error here rather than in a task.
    let bind = |what, addr: SocketAddr| {
        std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| ServerError::Bind { what, addr, source })
    };
    let api_listener = bind("API", config.listen)?;
    let admin_listener = bind("admin", config.admin_listen)?;
    let addr = api_listener.local_addr().map_err(|source| ServerError::Bind {
        what: "API",
        addr: config.listen,
        source,
    })?;
    let admin_addr = admin_listener.local_addr().map_err(|source| ServerError::Bind {
        what: "admin",
        addr: config.admin_listen,
        source,
    })?;

    // Installed before the first request is counted (services install it earlier still: metric
    // handles taken before the recorder exists record nothing).
    let _ = crate::metrics::prometheus();
    // Outermost, so timeouts, panics and refused bodies are counted too; still per route, so
    // the route template is known.
    let api = with_common_layers(app, &config.limits).layer(middleware::from_fn(crate::metrics::record));
    let admin = with_common_layers(admin_router(readiness.clone()), &Limits::default());
    let handles = [Handle::new(), Handle::new()];
    let mut tasks = tokio::task::JoinSet::new();
    for (what, listener, tls, router, handle) in [
        ("API", api_listener, api_tls, api, handles[0].clone()),
        ("admin", admin_listener, admin_tls, admin, handles[1].clone()),
    ] {
        let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(RustlsConfig::from_config(Arc::new(tls)))
            .handshake_timeout(config.limits.handshake_timeout);
        let server = axum_server::from_tcp(listener)
            .map_err(|source| ServerError::Bind { what, addr, source })?
            .acceptor(acceptor)
            .handle(handle);
        tasks.spawn(async move {
            server
                .serve(router.into_make_service_with_connect_info::<SocketAddr>())
                .await
                .map_err(|source| ServerError::Serve { what, source })
        });
    }
    tracing::info!(%addr, %admin_addr, "listening (TLS 1.3)");
    Ok(RunningServer { addr, admin_addr, readiness, grace: config.limits.shutdown_grace, handles, tasks })
}

impl RunningServer {
    /// The readiness `readyz` reports (to add a dependency after start).
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// Graceful shutdown: `readyz` turns 503, new connections are refused, in-flight requests
    /// get the configured grace period, then whatever is left is closed.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        self.readiness.begin_shutdown();
        for handle in &self.handles {
            handle.graceful_shutdown(Some(self.grace));
        }
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            if let Ok(Err(e)) = joined {
                first_error.get_or_insert(e);
            }
        }
        tracing::info!("server stopped");
        first_error.map_or(Ok(()), Err)
    }

    /// Serves until SIGINT or SIGTERM (or a listener fails), then shuts down gracefully.
    pub async fn run_until_signal(mut self) -> Result<(), ServerError> {
        tokio::select! {
            () = shutdown_signal() => {
                tracing::info!("shutdown signal received; draining");
                self.shutdown().await
            }
            Some(joined) = self.tasks.join_next() => {
                let result = match joined {
                    Ok(r) => r,
                    Err(e) => Err(ServerError::Serve { what: "API", source: std::io::Error::other(e.to_string()) }),
                };
                let _ = self.shutdown().await;
                result
            }
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (`docker stop`), listening from the moment it is called.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    // Registered now, not at the first poll: a signal that arrives between a service saying
    // "ready" and awaiting this must still start the drain (and PID 1 in a container ignores
    // a signal it has no handler for).
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = wait(interrupt) => {},
            () = wait(terminate) => {},
        }
    }
}
