//! Throttling credential checks, shared by every service that verifies passwords or secrets:
//!
//! * attempts are counted **before** they are verified, in-flight ones included, so parallel
//!   guesses cannot exceed the limit per name and window;
//! * expensive verifications (PBKDF2) run behind a semaphore sized to the cores, so a flood of
//!   logins queues (and is refused after a bounded wait) instead of exhausting the CPU.
//!
//! Callers answer a cached success before asking the throttle, so a lockout someone else caused
//! does not shut out a client that keeps using its valid credentials. When the limit is filled
//! by attempts still in flight rather than by failures — a client opening many connections at
//! once with a valid secret — [`LoginThrottle::begin_or_wait`] waits for them and answers from
//! the cache their success filled, instead of refusing a legitimate burst.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why an attempt may not proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Too many recent failures (or attempts in flight) for this name.
    Locked {
        /// Seconds until the window ends.
        retry_after: u64,
    },
    /// No verification slot came free in time.
    Busy,
}

struct Attempts {
    failures: u32,
    in_flight: u32,
    since: Instant,
}

/// The throttle.
pub struct LoginThrottle {
    max_failures: u32,
    window: Duration,
    wait: Duration,
    table: Mutex<HashMap<String, Attempts>>,
    verifiers: tokio::sync::Semaphore,
    finished: tokio::sync::Notify,
}

/// What [`LoginThrottle::begin_or_wait`] found.
#[derive(Debug)]
pub enum Admitted<T> {
    /// The check passed while waiting (another attempt's success filled the cache).
    Ready(T),
    /// Verify, then report with [`LoginThrottle::finish`].
    Attempt(Attempt),
}

/// Inside `begin`: locked by failures, or only by attempts in flight.
enum Full {
    Locked(u64),
    InFlight(u64),
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle")
            .field("max_failures", &self.max_failures)
            .field("window", &self.window)
            .finish()
    }
}

/// A counted attempt; report how it ended with [`LoginThrottle::finish`].
#[derive(Debug)]
#[must_use = "report the attempt's result with LoginThrottle::finish"]
pub struct Attempt {
    name: String,
}

impl LoginThrottle {
    /// At most `max_failures` failures (plus attempts in flight) per name per `window`;
    /// verifications wait at most `wait` for a slot.
    pub fn new(max_failures: u32, window: Duration, wait: Duration) -> Self {
        let slots = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self {
            max_failures: max_failures.max(1),
            window,
            wait,
            table: Mutex::new(HashMap::new()),
            verifiers: tokio::sync::Semaphore::new(slots),
            finished: tokio::sync::Notify::new(),
        }
    }

    /// Counts an attempt for `name`, or refuses it.
    pub fn begin(&self, name: &str) -> Result<Attempt, Refused> {
        self.try_begin(name).map_err(|(Full::Locked(retry_after) | Full::InFlight(retry_after))| {
            Refused::Locked { retry_after }
        })
    }

    /// Like [`begin`](Self::begin), but while the limit is filled only by attempts in flight,
    /// waits (at most the slot wait) for them to finish, asking `ready` — typically a cache
    /// lookup — after each. Failures still lock at once.
    pub async fn begin_or_wait<T>(
        &self,
        name: &str,
        mut ready: impl FnMut() -> Option<T>,
    ) -> Result<Admitted<T>, Refused> {
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            // Registered before the check, so a finish between check and wait is not missed.
            let finished = self.finished.notified();
            if let Some(value) = ready() {
                return Ok(Admitted::Ready(value));
            }
            match self.try_begin(name) {
                Ok(attempt) => return Ok(Admitted::Attempt(attempt)),
                Err(Full::Locked(retry_after)) => return Err(Refused::Locked { retry_after }),
                Err(Full::InFlight(retry_after)) => {
                    if tokio::time::timeout_at(deadline, finished).await.is_err() {
                        return Err(Refused::Locked { retry_after });
                    }
                }
            }
        }
    }

    fn try_begin(&self, name: &str) -> Result<Attempt, Full> {
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        // Bound the table against floods of invented names.
        if table.len() > 10_000 {
            let window = self.window;
            table.retain(|_, a| a.in_flight > 0 || now.duration_since(a.since) < window);
        }
        let entry =
            table.entry(name.to_owned()).or_insert(Attempts { failures: 0, in_flight: 0, since: now });
        if now.duration_since(entry.since) >= self.window {
            entry.failures = 0;
            entry.since = now;
        }
        if entry.failures + entry.in_flight >= self.max_failures {
            let retry_after = self.window.saturating_sub(now.duration_since(entry.since)).as_secs().max(1);
            return Err(if entry.failures >= self.max_failures {
                Full::Locked(retry_after)
            } else {
                Full::InFlight(retry_after)
            });
        }
        entry.in_flight += 1;
        Ok(Attempt { name: name.to_owned() })
    }

    /// Reports how a counted attempt ended.
    pub fn finish(&self, attempt: Attempt, succeeded: bool) {
        self.record(attempt, succeeded);
        self.finished.notify_waiters();
    }

    fn record(&self, attempt: Attempt, succeeded: bool) {
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = table.get_mut(&attempt.name) {
            entry.in_flight = entry.in_flight.saturating_sub(1);
            if succeeded {
                entry.failures = 0;
            } else {
                if now.duration_since(entry.since) >= self.window {
                    entry.failures = 0;
                    entry.since = now;
                }
                entry.failures += 1;
            }
        }
    }

    /// Waits for a verification slot; hold the permit while hashing.
    pub async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, Refused> {
        tokio::time::timeout(self.wait, self.verifiers.acquire())
            .await
            .map_err(|_| Refused::Busy)?
            .map_err(|_| Refused::Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_attempts_count_and_success_resets() {
        let t = LoginThrottle::new(2, Duration::from_secs(60), Duration::from_secs(1));
        let a = t.begin("x").unwrap();
        let b = t.begin("x").unwrap();
        assert!(matches!(t.begin("x"), Err(Refused::Locked { .. })), "two in flight fill the limit");
        assert!(t.begin("y").is_ok(), "names are separate");
        t.finish(a, true);
        t.finish(b, false);
        let c = t.begin("x").unwrap();
        t.finish(c, false);
        assert!(matches!(t.begin("x"), Err(Refused::Locked { .. })), "two failures lock");
    }

    #[tokio::test]
    async fn a_burst_waits_for_the_attempts_in_flight_instead_of_being_refused() {
        let t = std::sync::Arc::new(LoginThrottle::new(1, Duration::from_secs(60), Duration::from_secs(5)));
        let verified = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let first = match t.begin_or_wait("x", || None::<()>).await.unwrap() {
            Admitted::Attempt(a) => a,
            Admitted::Ready(()) => panic!("nothing is cached yet"),
        };
        let waiter = {
            let (t, verified) = (t.clone(), verified.clone());
            tokio::spawn(async move {
                t.begin_or_wait("x", || verified.load(std::sync::atomic::Ordering::SeqCst).then_some(()))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "the second attempt waits for the first");
        verified.store(true, std::sync::atomic::Ordering::SeqCst);
        t.finish(first, true);
        assert!(matches!(waiter.await.unwrap(), Ok(Admitted::Ready(()))));
    }

    #[tokio::test]
    async fn failures_still_lock_at_once_and_waiting_is_bounded() {
        let t = LoginThrottle::new(1, Duration::from_secs(60), Duration::from_millis(50));
        let a = t.begin("x").unwrap();
        // In flight, never finished: the waiter gives up after the bounded wait.
        assert!(matches!(t.begin_or_wait("x", || None::<()>).await, Err(Refused::Locked { .. })));
        t.finish(a, false);
        let started = std::time::Instant::now();
        assert!(matches!(t.begin_or_wait("x", || None::<()>).await, Err(Refused::Locked { .. })));
        assert!(started.elapsed() < Duration::from_millis(40), "a failure lock answers without waiting");
    }

    #[test]
    fn the_window_expires() {
        let t = LoginThrottle::new(1, Duration::from_millis(20), Duration::from_secs(1));
        let a = t.begin("x").unwrap();
        t.finish(a, false);
        assert!(t.begin("x").is_err());
        std::thread::sleep(Duration::from_millis(30));
        assert!(t.begin("x").is_ok());
    }
}
