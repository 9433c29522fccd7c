//! The gateway's listener: the accept loop with its connection limit and
//! accept backoff, then one task per connection (`connection`) until the
//! [`Shutdown`] drains them.
//!
//! | module | owns |
//! |---|---|
//! | `connection` | one connection: TLS handshake with a timeout, the protocol (h2 through hyper-util's `auto` builder; HTTP/1.1 through hyper's connection parts, parked when quiet), WebSocket hand-over, header-read and idle timeouts, graceful drain |
//! | `prioritized` | polling a connection's timers only when they fired |
//! | `release` | giving the memory parked connections freed back to the system |

mod connection;
mod prioritized;
mod release;

pub use connection::PARK_AFTER;
pub use release::on_parked;

use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::runtime::SharedRuntime;
use crate::shutdown::{Phase, Shutdown, Watcher};

/// A listener on the gateway's address that another worker's runtime
/// accepts on (see [`crate::worker`]).
pub struct WorkerListener {
    pub runtime: tokio::runtime::Handle,
    pub listener: std::net::TcpListener,
}

/// Serves `listener` (and each of `workers` on its own runtime) until
/// `stop` resolves, then drains: in-flight requests finish within
/// `server.shutdown_grace_ms`, and every [`Watcher`] of `shutdown`
/// (connections here, and whatever else the caller handed one) is waited
/// for. `server.max_connections` counts the connections of every worker.
pub async fn serve(
    shared: SharedRuntime,
    listener: TcpListener,
    workers: Vec<WorkerListener>,
    shutdown: Shutdown,
    stop: impl std::future::Future<Output = ()> + Send,
) {
    let limit = Arc::new(Semaphore::new(shared.load().config.server.max_connections));
    for worker in workers {
        let accepting = serve_worker(
            worker.listener,
            shared.clone(),
            limit.clone(),
            shutdown.watcher(),
        );
        worker.runtime.spawn(accepting);
    }
    tokio::select! {
        _ = accept_loop(&listener, &shared, &limit, shutdown.watcher()) => {}
        _ = stop => {}
    }
    drop(listener);
    let grace = shared.load().config.server.shutdown_grace;
    shutdown.drain(grace).await;
}

/// One more worker's accept loop, on that worker's runtime, until the
/// gateway drains: its connections are served on the same runtime.
async fn serve_worker(
    listener: std::net::TcpListener,
    shared: SharedRuntime,
    limit: Arc<Semaphore>,
    watcher: Watcher,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, "a worker cannot accept on its listener");
            return;
        }
    };
    let mut draining = watcher.clone();
    tokio::select! {
        _ = accept_loop(&listener, &shared, &limit, watcher) => {}
        _ = draining.until(Phase::Draining) => {}
    }
}

/// Accepts until the listener fails for good; each connection holds a
/// clone of `watcher` while it runs.
async fn accept_loop(
    listener: &TcpListener,
    shared: &SharedRuntime,
    limit: &Arc<Semaphore>,
    watcher: Watcher,
) {
    let mut backoff = AcceptBackoff::default();
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) if is_connection_error(&e) => {
                // One connection's trouble, not the listener's.
                tracing::debug!(error = %e, "connection failed before accept");
                continue;
            }
            Err(e) => {
                // Typically EMFILE or ENFILE: nothing will change until
                // connections close, so back off instead of spinning.
                let (pause, log) = backoff.failed();
                if log {
                    tracing::error!(
                        error = %e,
                        failures = backoff.failures,
                        pause_ms = pause.as_millis() as u64,
                        "accept failed; backing off"
                    );
                }
                drop(permit);
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        let failures = backoff.succeeded();
        if failures > 0 {
            tracing::info!(failures, "accepting again");
        }
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let watcher = watcher.clone();
        tokio::spawn(async move {
            let open = crate::telemetry::open_connections();
            open.increment(1.0);
            connection::serve(shared, stream, peer, watcher).await;
            open.decrement(1.0);
            drop(permit);
        });
    }
}

/// Accept errors of one connection (it was reset or aborted while queued),
/// which say nothing about the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// The pause after each failed accept in a run of failures: exponential
/// from [`AcceptBackoff::FIRST`] up to [`AcceptBackoff::MAX`], so a process
/// out of file descriptors neither spins nor stops accepting for long once
/// descriptors are free again. Only the 1st, 2nd, 4th, 8th... failure of a
/// run, and then one in 64, is logged.
#[derive(Debug, Default)]
struct AcceptBackoff {
    failures: u32,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    /// Records a failure: how long to pause, and whether to log it.
    fn failed(&mut self) -> (Duration, bool) {
        self.failures = self.failures.saturating_add(1);
        let doublings = (self.failures - 1).min(16);
        let pause = Self::FIRST.saturating_mul(1 << doublings).min(Self::MAX);
        let log = self.failures.is_power_of_two() || self.failures.is_multiple_of(64);
        (pause, log)
    }

    /// Records a success; returns how many failures it ended.
    fn succeeded(&mut self) -> u32 {
        std::mem::take(&mut self.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_grows_caps_logs_sparsely_and_resets() {
        let mut backoff = AcceptBackoff::default();
        let runs: Vec<(Duration, bool)> = (0..200).map(|_| backoff.failed()).collect();
        let ms = |i: usize| runs[i].0.as_millis();
        assert_eq!(
            (0..10).map(ms).collect::<Vec<_>>(),
            [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]
        );
        assert!(runs.iter().all(|(pause, _)| *pause <= AcceptBackoff::MAX));
        let logged: Vec<usize> = (0..200).filter(|&i| runs[i].1).map(|i| i + 1).collect();
        assert_eq!(logged, [1, 2, 4, 8, 16, 32, 64, 128, 192]);
        assert_eq!(backoff.succeeded(), 200);
        assert_eq!(backoff.failed(), (Duration::from_millis(5), true));
    }

    #[test]
    fn accept_backoff_survives_a_very_long_run() {
        let mut backoff = AcceptBackoff {
            failures: u32::MAX - 1,
        };
        assert_eq!(backoff.failed().0, AcceptBackoff::MAX);
        assert_eq!(backoff.failed().0, AcceptBackoff::MAX);
    }

    #[test]
    fn is_connection_error_table() {
        let cases = [
            (io::ErrorKind::ConnectionAborted, true),
            (io::ErrorKind::ConnectionReset, true),
            (io::ErrorKind::ConnectionRefused, true),
            // EMFILE and ENFILE surface as `Other` (or `Uncategorized`).
            (io::ErrorKind::Other, false),
            (io::ErrorKind::OutOfMemory, false),
            (io::ErrorKind::PermissionDenied, false),
        ];
        for (kind, want) in cases {
            assert_eq!(
                is_connection_error(&io::Error::from(kind)),
                want,
                "{kind:?}"
            );
        }
        let emfile = io::Error::from_raw_os_error(24);
        assert!(!is_connection_error(&emfile));
    }
}
