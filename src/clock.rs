//! The wall clock of token times (`exp`, `nbf`, `iat`, introspection TTLs),
//! as a handle: [`Clock::system`] in the gateway, [`Clock::manual`] in tests,
//! which step it instead of sleeping until a token or cache entry expires.
//! A leaf module.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, from the system or from a test.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// `None`: the system clock. `Some`: microseconds since the epoch, set
    /// by the test that holds the clock.
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that stands at `unix_s` until [`Clock::advance`] moves it.
    pub fn manual(unix_s: f64) -> Clock {
        Clock {
            manual: Some(Arc::new(AtomicU64::new((unix_s * 1e6) as u64))),
        }
    }

    /// Seconds since the epoch.
    pub fn now(&self) -> f64 {
        match &self.manual {
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            Some(micros) => micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }

    /// Microseconds since the epoch, exact for a manual clock.
    pub fn now_micros(&self) -> u64 {
        match &self.manual {
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64),
            Some(micros) => micros.load(Ordering::Relaxed),
        }
    }

    /// Moves a manual clock forward; the system clock moves by itself.
    pub fn advance(&self, by: Duration) {
        if let Some(micros) = &self.manual {
            micros.fetch_add(by.as_micros() as u64, Ordering::Relaxed);
        }
    }

    /// The time left until `deadline` (epoch seconds), zero once it passed.
    pub fn until(&self, deadline: f64) -> Duration {
        Duration::from_secs_f64((deadline - self.now()).clamp(0.0, 365.0 * 86_400.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let clock = Clock::manual(1_000.0);
        let shared = clock.clone();
        assert_eq!(clock.now(), 1_000.0);
        shared.advance(Duration::from_millis(1_500));
        assert_eq!(clock.now(), 1_001.5);
        assert_eq!(clock.now_micros(), 1_001_500_000);
        assert_eq!(clock.until(1_003.5), Duration::from_secs(2));
        assert_eq!(clock.until(900.0), Duration::ZERO);
    }

    #[test]
    fn system_clock_is_near_now_and_ignores_advance() {
        let clock = Clock::system();
        let before = clock.now();
        clock.advance(Duration::from_secs(3_600));
        assert!(clock.now() - before < 60.0);
        assert!(before > 1.7e9);
    }
}
