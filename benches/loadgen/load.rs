//! The load loops: the plan of a run (warm-up, window, open-loop pacing),
//! what the workers share, one worker per connection, and its tally.

use hdrhistogram::Histogram;
use http::StatusCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{connect, Sender, Target};
use crate::BoxError;

/// When the phases begin and end, and the pacing of an open loop.
#[derive(Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) start: Instant,
    /// Measurement starts here (requests due or sent before are warm-up).
    pub(crate) measure: Instant,
    pub(crate) end: Instant,
    /// Open loop: requests per second (request `i` is due at `i / rate`).
    pub(crate) rate: Option<f64>,
}

impl Plan {
    pub(crate) fn due(&self, i: u64) -> Option<Instant> {
        let rate = self.rate?;
        Some(self.start + Duration::from_secs_f64(i as f64 / rate))
    }
}

/// What the workers share: the target, the plan, and two counters.
pub(crate) struct Shared {
    pub(crate) target: Arc<Target>,
    pub(crate) plan: Plan,
    pub(crate) handshakes: bool,
    pub(crate) expect: StatusCode,
    /// Open loop: the next request number (its due time follows from it).
    pub(crate) ticket: AtomicU64,
    /// The next token to use.
    pub(crate) token: AtomicUsize,
}

/// One worker's measurements, merged at the end.
pub(crate) struct Tally {
    pub(crate) latency: Histogram<u64>,
    /// Answers with another status than expected.
    pub(crate) status_errors: u64,
    /// Failed connects, and requests that got no whole answer.
    pub(crate) io_errors: u64,
    /// Open loop: requests that had to wait for a free connection.
    pub(crate) queued: u64,
    pub(crate) first_error: Option<String>,
}

impl Tally {
    pub(crate) fn new() -> Result<Tally, BoxError> {
        Ok(Tally {
            // 1 ns to 100 s at three significant digits.
            latency: Histogram::new_with_bounds(1, 100_000_000_000, 3)?,
            status_errors: 0,
            io_errors: 0,
            queued: 0,
            first_error: None,
        })
    }

    pub(crate) fn error(&mut self, what: String) {
        self.io_errors += 1;
        self.first_error.get_or_insert(what);
    }

    pub(crate) fn merge(&mut self, other: Tally) -> Result<(), BoxError> {
        self.latency.add(&other.latency)?;
        self.status_errors += other.status_errors;
        self.io_errors += other.io_errors;
        self.queued += other.queued;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        Ok(())
    }
}

/// One connection's loop: take the next request (closed loop: at once;
/// open loop: the next due time), send it, record it if it belongs to the
/// measured window.
pub(crate) async fn worker(
    shared: Arc<Shared>,
    mut conn: Option<Sender>,
) -> Result<Tally, BoxError> {
    let mut tally = Tally::new()?;
    let plan = shared.plan;
    loop {
        let now = Instant::now();
        // `from`: where this request's latency is counted from.
        let (from, measured) = match plan.rate {
            None => {
                if now >= plan.end {
                    break;
                }
                (now, now >= plan.measure)
            }
            Some(_) => {
                let i = shared.ticket.fetch_add(1, Ordering::Relaxed);
                let Some(due) = plan.due(i) else { break };
                if due >= plan.end {
                    break;
                }
                if now >= due {
                    // Every connection was busy at the due time: the wait
                    // is the server's doing, so it counts.
                    if due >= plan.measure {
                        tally.queued += 1;
                    }
                    (due, due >= plan.measure)
                } else {
                    // Idle until due. tokio's timer wakes up to a
                    // millisecond late; that lateness is the generator's,
                    // so the clock starts at the actual send.
                    tokio::time::sleep_until(due.into()).await;
                    (Instant::now(), due >= plan.measure)
                }
            }
        };
        let sender = match conn.as_mut() {
            Some(sender) => sender,
            None => match connect(&shared.target).await {
                Ok(sender) => conn.insert(sender),
                Err(e) => {
                    if measured {
                        tally.error(format!("connect: {e}"));
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            },
        };
        let n = shared.token.fetch_add(1, Ordering::Relaxed);
        let req = shared.target.request(n, shared.handshakes);
        let result = sender.round_trip(req).await;
        let done = Instant::now();
        match result {
            Ok(status) if status == shared.expect => {
                if measured {
                    let ns = (done - from).as_nanos().max(1) as u64;
                    tally.latency.saturating_record(ns);
                }
            }
            Ok(status) => {
                if measured {
                    tally.status_errors += 1;
                    tally
                        .first_error
                        .get_or_insert_with(|| format!("status {status}"));
                }
            }
            Err(e) => {
                if measured {
                    tally.error(format!("request: {e}"));
                }
                conn = None;
            }
        }
        if shared.handshakes {
            conn = None;
        }
    }
    Ok(tally)
}
