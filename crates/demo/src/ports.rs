//! The services' ports: the design's fixed ports (KMS 8081, Identity 8082) when they are free,
//! else one free port — and, on Docker, the same port inside the container as on the host, so
//! every URL a service advertises (the issuer, discovery's endpoints) answers from the host and
//! from inside the stack alike, and `iss` never differs between a container and the host.
//!
//! Choosing is racy across processes (two runs may both see 8082 free), so a run that wants a
//! fixed port first takes an advisory lock on `$TMPDIR/demo-security-port-<port>.lock` and holds
//! it until the port is bound (embedded) or published by a container (Docker). A run that finds
//! the lock held takes a free port instead. The lock file is opened for append and never
//! written, so a planted file or symlink changes nothing; where it cannot be opened (another
//! user's file), the run goes on without it.

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};

/// The KMS's API port of the design (DESIGN §4).
pub const KMS_PORT: u16 = 8081;
/// Identity's API port of the design.
pub const IDENTITY_PORT: u16 = 8082;

/// A port chosen for a service, with the lock that keeps other demo runs off it until the
/// service listens on it.
#[derive(Debug)]
pub(crate) struct Claim {
    /// The port.
    pub port: u16,
    _lock: Option<File>,
}

/// `preferred` when no other demo run claims it and it can be bound on loopback now; else a
/// free port chosen by the system.
pub(crate) fn claim(preferred: u16) -> std::io::Result<Claim> {
    if let Some(lock) = lock(preferred)
        && TcpListener::bind((Ipv4Addr::LOCALHOST, preferred)).is_ok()
    {
        return Ok(Claim { port: preferred, _lock: Some(lock) });
    }
    free()
}

/// A port that `preferred` failed for and nobody else holds: the system's choice.
pub(crate) fn free() -> std::io::Result<Claim> {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
    Ok(Claim { port, _lock: None })
}

/// A port already decided (a Docker stack's, kept in its state directory): locked when the lock
/// can be had, so a run choosing afresh keeps off it while this one starts its containers.
pub(crate) fn keep(port: u16) -> Claim {
    Claim { port, _lock: lock(port) }
}

/// The advisory lock of `port`, if no other process holds it.
fn lock(port: u16) -> Option<File> {
    let path = std::env::temp_dir().join(format!("demo-security-port-{port}.lock"));
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path).ok()?;
    file.try_lock().ok().map(|()| file)
}

/// Starts a service on `preferred` when free, else on a free port: `start` gets the port to
/// listen on (and to name in the URLs it advertises). When another process binds `preferred`
/// between the check and the start, it runs once more on a free port.
pub(crate) async fn start_on<T, E, F, Fut>(preferred: u16, mut start: F) -> Result<T, StartError<E>>
where
    E: std::error::Error + 'static,
    F: FnMut(u16) -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut claim = claim(preferred).map_err(StartError::NoPort)?;
    loop {
        match start(claim.port).await {
            Ok(running) => return Ok(running),
            Err(e) if claim.port == preferred && in_use(&e) => claim = free().map_err(StartError::NoPort)?,
            Err(e) => return Err(StartError::Start(e)),
        }
    }
}

/// Why [`start_on`] failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError<E: std::error::Error + 'static> {
    /// No free port could be had.
    #[error("cannot find a free local port")]
    NoPort(#[source] std::io::Error),
    /// The service did not start.
    #[error(transparent)]
    Start(E),
}

/// Whether `error` (or one of its causes) says an address was in use: the embedded runtime then
/// tries again on a free port.
pub(crate) fn in_use(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::AddrInUse) {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_held_port_is_not_claimed_twice() {
        // Hold a port the way a running service does; a claim for it must choose another.
        let held = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        let other = claim(port).unwrap();
        assert_ne!(other.port, port);
        // A lock held by another claim (another run choosing at the same moment) counts too.
        drop(held);
        let first = claim(port).unwrap();
        assert_eq!(first.port, port, "a free port is taken as preferred");
        let second = claim(port).unwrap();
        assert_ne!(second.port, port, "the first claim's lock keeps the second off it");
        drop(first);
        assert_eq!(claim(port).unwrap().port, port, "released with the claim");
    }

    #[test]
    fn address_in_use_is_found_in_the_cause_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::from(std::io::ErrorKind::AddrInUse));
        assert!(in_use(&e));
        let e = Outer(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(!in_use(&e));
    }
}
