//! Liveness and readiness. `livez` answers 200 while the process serves at all; `readyz`
//! answers 200 only when every named dependency has said it is ready (a database, Identity's
//! JWKS, …), and 503 — with each dependency's state and reason — otherwise, and from the
//! moment a graceful shutdown begins.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;

/// The readiness of a service: a set of named dependencies.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    checks: RwLock<BTreeMap<String, CheckState>>,
    shutting_down: AtomicBool,
}

/// One dependency's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CheckState {
    /// Not checked yet.
    Pending {
        /// What is awaited.
        reason: String,
    },
    /// Ready.
    Ready,
    /// Checked and not ready.
    Failing {
        /// Why.
        reason: String,
    },
}

/// A handle through which one dependency reports its state.
#[derive(Debug, Clone)]
pub struct Dependency {
    name: String,
    readiness: Readiness,
}

impl Dependency {
    /// The dependency is ready.
    pub fn ready(&self) {
        self.readiness.set(&self.name, CheckState::Ready);
    }

    /// The dependency is not ready, and why (shown on `readyz`: keep secrets out).
    pub fn failing(&self, reason: impl Into<String>) {
        self.readiness.set(&self.name, CheckState::Failing { reason: reason.into() });
    }
}

/// What `readyz` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadinessReport {
    /// `ready`, `not_ready` or `shutting_down`.
    pub status: &'static str,
    /// Every dependency and its state.
    pub checks: BTreeMap<String, CheckState>,
}

impl Readiness {
    /// A readiness with no dependencies: ready at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a dependency, pending until it reports.
    pub fn dependency(&self, name: &str) -> Dependency {
        self.set(name, CheckState::Pending { reason: "not checked yet".to_owned() });
        Dependency { name: name.to_owned(), readiness: self.clone() }
    }

    /// True when every dependency is ready and no shutdown has begun.
    pub fn is_ready(&self) -> bool {
        self.report().status == "ready"
    }

    /// The current state of everything.
    pub fn report(&self) -> ReadinessReport {
        let checks = self.inner.checks.read().unwrap_or_else(|e| e.into_inner()).clone();
        let status = if self.inner.shutting_down.load(Ordering::SeqCst) {
            "shutting_down"
        } else if checks.values().all(|c| *c == CheckState::Ready) {
            "ready"
        } else {
            "not_ready"
        };
        ReadinessReport { status, checks }
    }

    /// From now on `readyz` says `shutting_down`, so load balancers and the demo CLI stop
    /// sending new work while in-flight requests drain.
    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
    }

    fn set(&self, name: &str, state: CheckState) {
        let mut checks = self.inner.checks.write().unwrap_or_else(|e| e.into_inner());
        if checks.get(name) != Some(&state) {
            tracing::info!(dependency = name, ?state, "readiness changed");
        }
        checks.insert(name.to_owned(), state);
    }
}

/// The admin router: `GET /livez`, `GET /readyz`, `GET /metrics` (Prometheus text).
pub fn admin_router(readiness: Readiness) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::metrics::render))
        .with_state(readiness)
}

async fn livez() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "alive" }))
}

async fn readyz(State(readiness): State<Readiness>) -> impl IntoResponse {
    let report = readiness.report();
    let code = if report.status == "ready" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, axum::Extension(crate::problem::Passthrough), Json(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_dependency_is() {
        let r = Readiness::new();
        assert!(r.is_ready());
        let db = r.dependency("database");
        let jwks = r.dependency("identity_jwks");
        assert_eq!(r.report().status, "not_ready");
        db.ready();
        jwks.failing("connection refused");
        assert!(!r.is_ready());
        assert_eq!(
            r.report().checks["identity_jwks"],
            CheckState::Failing { reason: "connection refused".into() }
        );
        jwks.ready();
        assert!(r.is_ready());
        r.begin_shutdown();
        assert_eq!(r.report().status, "shutting_down");
    }
}
