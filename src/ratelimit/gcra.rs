//! The generic cell rate algorithm (GCRA; ITU-T I.371 "virtual scheduling",
//! the leaky bucket as a meter), as pure arithmetic on nanoseconds. A limit
//! of `requests` per `window` spaces requests one *interval* (`window /
//! requests`) apart and tolerates a burst of `requests` at once. Its one
//! piece of state per key is the theoretical arrival time (TAT): when the
//! key's requests would have been spent had they come one interval apart.
//! Here the state is handed in as the *debt*, how far the TAT lies ahead of
//! now, so the same function serves the local state (absolute TATs) and the
//! Lua script in [`super::shared`], which mirrors it.
//!
//! Unlike a fixed window, the allowance refills continuously: `requests`
//! requests at the end of one window leave nothing for the start of the
//! next, so no two back-to-back bursts double the rate.

use std::time::Duration;

/// One limit's constants, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// The spacing of requests at the sustained rate: `window / requests`,
    /// rounded up (never faster than configured).
    interval: u64,
    /// How far ahead of now the TAT may be for a request to pass:
    /// `(requests - 1) * interval`, so exactly `requests` pass at once.
    tolerance: u64,
}

/// What one request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// How many more requests would pass right now.
    pub remaining: u64,
    /// Nanoseconds until the next request passes; zero while `remaining`
    /// is not.
    pub wait: u64,
}

impl Gcra {
    /// `requests` (at least 1) per `window` (at least 1 s, so the interval
    /// is at least 1 ns).
    pub fn new(requests: u64, window: Duration) -> Gcra {
        let requests = requests.max(1);
        let window = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        let interval = window.div_ceil(requests).max(1);
        Gcra {
            interval,
            tolerance: interval.saturating_mul(requests - 1),
        }
    }

    pub fn interval(&self) -> u64 {
        self.interval
    }

    pub fn tolerance(&self) -> u64 {
        self.tolerance
    }

    /// The decision for a request arriving with `debt` (TAT minus now,
    /// zero when the TAT has passed), and the debt after it: `None` when
    /// refused, which leaves the state as it was (a refused request costs
    /// nothing, so retrying does not push the next allowance away).
    pub fn decide(&self, debt: u64) -> (Decision, Option<u64>) {
        if debt > self.tolerance {
            let refused = Decision {
                allowed: false,
                remaining: 0,
                wait: debt - self.tolerance,
            };
            return (refused, None);
        }
        let debt = debt + self.interval;
        let (remaining, wait) = match self.tolerance.checked_sub(debt) {
            Some(room) => (room / self.interval + 1, 0),
            None => (0, debt - self.tolerance),
        };
        let allowed = Decision {
            allowed: true,
            remaining,
            wait,
        };
        (allowed, Some(debt))
    }

    /// The debt after a request some other state (the shared one) allowed:
    /// one interval more, capped where it would refuse everything for
    /// longer than a full burst takes to drain.
    pub fn charge(&self, debt: u64) -> u64 {
        debt.saturating_add(self.interval)
            .min(self.tolerance + self.interval)
    }
}

/// Whole seconds in `nanos`, rounded up.
pub fn ceil_secs(nanos: u64) -> u64 {
    nanos.div_ceil(1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn decision(allowed: bool, remaining: u64, wait: u64) -> Decision {
        Decision {
            allowed,
            remaining,
            wait,
        }
    }

    #[test]
    fn new_spaces_requests_over_the_window_and_tolerates_one_burst() {
        let cases = [
            // (requests, window_s, interval, tolerance)
            (3, 3, S, 2 * S),
            (1, 60, 60 * S, 0),
            (100, 60, 600_000_000, 99 * 600_000_000),
            // 7 does not divide 60 s: the interval rounds up.
            (7, 60, 8_571_428_572, 6 * 8_571_428_572),
            (1_000_000_000, 1, 1, 999_999_999),
            (1_000_000_000, 86_400, 86_400, 999_999_999 * 86_400),
        ];
        for (requests, window_s, interval, tolerance) in cases {
            let g = Gcra::new(requests, Duration::from_secs(window_s));
            assert_eq!(
                (g.interval(), g.tolerance()),
                (interval, tolerance),
                "{requests}/{window_s}s"
            );
        }
    }

    /// 3 per 3 s: interval 1 s, tolerance 2 s.
    #[test]
    fn decide_table() {
        let g = Gcra::new(3, Duration::from_secs(3));
        let cases = [
            // (debt before, decision, debt after)
            (0, decision(true, 2, 0), Some(S)),
            (S, decision(true, 1, 0), Some(2 * S)),
            (S / 2, decision(true, 1, 0), Some(3 * S / 2)),
            (3 * S / 2, decision(true, 0, S / 2), Some(5 * S / 2)),
            (2 * S, decision(true, 0, S), Some(3 * S)),
            (2 * S + 1, decision(false, 0, 1), None),
            (5 * S / 2, decision(false, 0, S / 2), None),
            (3 * S, decision(false, 0, S), None),
        ];
        for (debt, want, after) in cases {
            assert_eq!(g.decide(debt), (want, after), "debt {debt}");
        }
    }

    #[test]
    fn charge_adds_one_interval_up_to_a_cap() {
        let g = Gcra::new(3, Duration::from_secs(3));
        assert_eq!(g.charge(0), S);
        assert_eq!(g.charge(S), 2 * S);
        assert_eq!(g.charge(2 * S), 3 * S);
        assert_eq!(g.charge(3 * S), 3 * S);
        assert_eq!(g.charge(u64::MAX), 3 * S);
    }

    #[test]
    fn ceil_secs_rounds_up() {
        for (nanos, secs) in [(0, 0), (1, 1), (S, 1), (S + 1, 2), (59 * S + 7, 60)] {
            assert_eq!(ceil_secs(nanos), secs, "{nanos}");
        }
    }
}
