//! Throttling credential checks, shared by every service that verifies passwords or secrets:
//!
//! * attempts are counted **before** they are verified, in-flight ones included, so parallel
//!   guesses cannot exceed the limit per name and window;
//! * expensive verifications (PBKDF2) run behind a semaphore sized to the cores, so a flood of
//!   logins queues (and is refused after a bounded wait) instead of exhausting the CPU.
//!
//! Callers answer a cached success before asking the throttle, so a lockout someone else caused
//! does not shut out a client that keeps using its valid credentials.

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
        }
    }

    /// Counts an attempt for `name`, or refuses it.
    pub fn begin(&self, name: &str) -> Result<Attempt, Refused> {
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
            return Err(Refused::Locked { retry_after });
        }
        entry.in_flight += 1;
        Ok(Attempt { name: name.to_owned() })
    }

    /// Reports how a counted attempt ended.
    pub fn finish(&self, attempt: Attempt, succeeded: bool) {
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
