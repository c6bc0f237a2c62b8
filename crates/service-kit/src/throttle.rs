//! Throttling credential checks, shared by every service that verifies passwords or secrets:
//!
//! * attempts are counted **before** they are verified, in-flight ones included, so parallel
//!   guesses cannot exceed the limit per name and window;
//! * an [`Attempt`] is a guard: reported with [`Attempt::finish`], or — when the request is
//!   cancelled (the client hung up, a timeout fired) or ended for a reason that says nothing
//!   about the credentials (no verification slot, a database error) — dropped, which releases
//!   it without counting a failure. A cancelled request can never leave a name locked;
//! * expensive verifications (PBKDF2) run behind a semaphore sized to the cores, whose permit
//!   ([`LoginThrottle::slot`]) is owned, so it moves into the blocking task and is held until
//!   the hash is done even if the request is cancelled: the CPU bound holds;
//! * the table is bounded: names are capped at 256 bytes and at most 10,000 names are tracked
//!   (past that, new names are refused as busy until old windows end).
//!
//! Callers answer a cached success before asking the throttle, so a lockout someone else caused
//! does not shut out a client that keeps using its valid credentials. When the limit is filled
//! by attempts still in flight rather than by failures — a client opening many connections at
//! once with a valid secret — [`LoginThrottle::begin_or_wait`] waits for them and answers from
//! the cache their success filled, instead of refusing a legitimate burst.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why an attempt may not proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Too many recent failures (or attempts in flight) for this name.
    Locked {
        /// Seconds until the window ends.
        retry_after: u64,
    },
    /// No verification slot came free in time, or too many names are tracked.
    Busy,
}

struct Attempts {
    failures: u32,
    in_flight: u32,
    since: Instant,
}

const MAX_NAMES: usize = 10_000;
const MAX_NAME_BYTES: usize = 256;

struct Inner {
    max_failures: u32,
    window: Duration,
    wait: Duration,
    table: Mutex<HashMap<String, Attempts>>,
    verifiers: Arc<tokio::sync::Semaphore>,
    finished: tokio::sync::Notify,
}

/// The throttle.
pub struct LoginThrottle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle")
            .field("max_failures", &self.inner.max_failures)
            .field("window", &self.inner.window)
            .finish()
    }
}

/// What [`LoginThrottle::begin_or_wait`] found.
#[derive(Debug)]
pub enum Admitted<T> {
    /// The check passed while waiting (another attempt's success filled the cache).
    Ready(T),
    /// Verify, then report with [`Attempt::finish`] (or drop it: neutral).
    Attempt(Attempt),
}

/// Inside `begin`: locked by failures, or only by attempts in flight.
enum Full {
    Locked(u64),
    InFlight(u64),
    Crowded,
}

/// A counted attempt in flight. Report its result with [`Attempt::finish`]; dropping it
/// releases it without counting a failure (cancellation, busy, internal errors).
#[must_use = "report the attempt's result with Attempt::finish, or drop it to release it neutrally"]
pub struct Attempt {
    name: String,
    inner: Arc<Inner>,
    reported: bool,
}

impl std::fmt::Debug for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt").finish_non_exhaustive()
    }
}

impl Attempt {
    /// Reports how the verification ended: a failure counts toward the lockout, a success
    /// clears the name's failures.
    pub fn finish(mut self, succeeded: bool) {
        self.reported = true;
        self.inner.record(&self.name, Some(succeeded));
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.reported {
            self.inner.record(&self.name, None);
        }
    }
}

fn key(name: &str) -> String {
    let mut end = name.len().min(MAX_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

impl Inner {
    /// `Some(ok)`: a verification result; `None`: released without a verdict.
    fn record(&self, name: &str, outcome: Option<bool>) {
        let now = Instant::now();
        {
            let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = table.get_mut(name) {
                entry.in_flight = entry.in_flight.saturating_sub(1);
                match outcome {
                    Some(true) => entry.failures = 0,
                    Some(false) => {
                        if now.duration_since(entry.since) >= self.window {
                            entry.failures = 0;
                            entry.since = now;
                        }
                        entry.failures += 1;
                    }
                    None => {}
                }
            }
        }
        self.finished.notify_waiters();
    }
}

impl LoginThrottle {
    /// At most `max_failures` failures (plus attempts in flight) per name per `window`;
    /// verifications wait at most `wait` for a slot.
    pub fn new(max_failures: u32, window: Duration, wait: Duration) -> Self {
        let slots = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self {
            inner: Arc::new(Inner {
                max_failures: max_failures.max(1),
                window,
                wait,
                table: Mutex::new(HashMap::new()),
                verifiers: Arc::new(tokio::sync::Semaphore::new(slots)),
                finished: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Counts an attempt for `name`, or refuses it.
    pub fn begin(&self, name: &str) -> Result<Attempt, Refused> {
        self.try_begin(name).map_err(|full| match full {
            Full::Locked(retry_after) | Full::InFlight(retry_after) => Refused::Locked { retry_after },
            Full::Crowded => Refused::Busy,
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
        let deadline = tokio::time::Instant::now() + self.inner.wait;
        loop {
            // Registered before the check, so a finish between check and wait is not missed.
            let finished = self.inner.finished.notified();
            if let Some(value) = ready() {
                return Ok(Admitted::Ready(value));
            }
            match self.try_begin(name) {
                Ok(attempt) => return Ok(Admitted::Attempt(attempt)),
                Err(Full::Locked(retry_after)) => return Err(Refused::Locked { retry_after }),
                Err(Full::Crowded) => return Err(Refused::Busy),
                Err(Full::InFlight(retry_after)) => {
                    if tokio::time::timeout_at(deadline, finished).await.is_err() {
                        return Err(Refused::Locked { retry_after });
                    }
                }
            }
        }
    }

    fn try_begin(&self, name: &str) -> Result<Attempt, Full> {
        let inner = &self.inner;
        let name = key(name);
        let now = Instant::now();
        let mut table = inner.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.len() >= MAX_NAMES && !table.contains_key(&name) {
            let window = inner.window;
            table.retain(|_, a| a.in_flight > 0 || now.duration_since(a.since) < window);
            if table.len() >= MAX_NAMES {
                return Err(Full::Crowded);
            }
        }
        let entry = table.entry(name.clone()).or_insert(Attempts { failures: 0, in_flight: 0, since: now });
        if now.duration_since(entry.since) >= inner.window {
            entry.failures = 0;
            entry.since = now;
        }
        if entry.failures + entry.in_flight >= inner.max_failures {
            let retry_after = inner.window.saturating_sub(now.duration_since(entry.since)).as_secs().max(1);
            return Err(if entry.failures >= inner.max_failures {
                Full::Locked(retry_after)
            } else {
                Full::InFlight(retry_after)
            });
        }
        entry.in_flight += 1;
        Ok(Attempt { name, inner: inner.clone(), reported: false })
    }

    /// Reports how a counted attempt ended (the same as [`Attempt::finish`]).
    pub fn finish(&self, attempt: Attempt, succeeded: bool) {
        attempt.finish(succeeded);
    }

    /// Waits for a verification slot. The permit is owned: move it into the blocking task that
    /// hashes, so it is held until the hash is done even if the request is cancelled.
    pub async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Refused> {
        tokio::time::timeout(self.inner.wait, self.inner.verifiers.clone().acquire_owned())
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

    #[test]
    fn a_dropped_attempt_releases_its_place_without_counting_a_failure() {
        let t = LoginThrottle::new(2, Duration::from_secs(60), Duration::from_secs(1));
        for _ in 0..10 {
            // A cancelled request: the attempt is dropped mid-verification.
            drop(t.begin("x").unwrap());
        }
        let a = t.begin("x").expect("cancelled attempts leave nothing in flight");
        let b = t.begin("x").unwrap();
        a.finish(false);
        drop(b);
        assert!(t.begin("x").is_ok(), "one failure and one neutral release: not locked");
    }

    #[test]
    fn long_names_share_one_bounded_key() {
        let t = LoginThrottle::new(1, Duration::from_secs(60), Duration::from_secs(1));
        let long = "é".repeat(1000);
        t.begin(&long).unwrap().finish(false);
        assert!(t.begin(&format!("{long}suffix")).is_err(), "only the first 256 bytes are the key");
        assert!(t.inner.table.lock().unwrap().keys().all(|k| k.len() <= MAX_NAME_BYTES));
    }

    #[tokio::test]
    async fn the_slot_permit_outlives_a_cancelled_request() {
        let t = LoginThrottle::new(5, Duration::from_secs(60), Duration::from_millis(10));
        let slots = t.inner.verifiers.available_permits();
        let mut permits = Vec::new();
        for _ in 0..slots {
            permits.push(t.slot().await.unwrap());
        }
        // Every permit is held (as by blocking tasks still hashing): the next waits, then is busy.
        assert!(matches!(t.slot().await, Err(Refused::Busy)));
        drop(permits);
        assert!(t.slot().await.is_ok());
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
        // Let the waiter reach its wait (it cannot finish: nothing is verified yet).
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished(), "the second attempt waits for the first");
        verified.store(true, std::sync::atomic::Ordering::SeqCst);
        first.finish(true);
        assert!(matches!(waiter.await.unwrap(), Ok(Admitted::Ready(()))));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_still_lock_at_once_and_waiting_is_bounded() {
        let t = LoginThrottle::new(1, Duration::from_secs(60), Duration::from_millis(50));
        let a = t.begin("x").unwrap();
        // In flight, never finished: the waiter gives up after the bounded wait.
        let started = tokio::time::Instant::now();
        assert!(matches!(t.begin_or_wait("x", || None::<()>).await, Err(Refused::Locked { .. })));
        assert_eq!(started.elapsed(), Duration::from_millis(50), "waited exactly the bound (paused clock)");
        a.finish(false);
        let started = tokio::time::Instant::now();
        assert!(matches!(t.begin_or_wait("x", || None::<()>).await, Err(Refused::Locked { .. })));
        assert_eq!(started.elapsed(), Duration::ZERO, "a failure lock answers without waiting");
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
