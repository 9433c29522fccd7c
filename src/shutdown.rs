//! The phases of a graceful shutdown, shared by every listener: running,
//! draining (finish in-flight requests, accept nothing new), closed (the
//! grace period is over). A leaf module: the server and the admin listener
//! both watch it, and neither knows the other.

use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Where the gateway is in its life; connections watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// Finish in-flight requests, accept no new ones.
    Draining,
    /// The grace period is over: drop whatever is left.
    Closed,
}

/// The sending side: moves the phases forward and waits for every
/// [`Watcher`] to be gone.
pub struct Shutdown {
    phase: watch::Sender<Phase>,
    done_tx: mpsc::Sender<()>,
    done_rx: mpsc::Receiver<()>,
}

/// What a task or connection holds while it runs: the phase to watch, and a
/// token whose drop tells [`Shutdown::drain`] it has finished.
#[derive(Clone)]
pub struct Watcher {
    phase: watch::Receiver<Phase>,
    _done: mpsc::Sender<()>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        let (phase, _) = watch::channel(Phase::Running);
        let (done_tx, done_rx) = mpsc::channel(1);
        Shutdown {
            phase,
            done_tx,
            done_rx,
        }
    }

    pub fn watcher(&self) -> Watcher {
        Watcher {
            phase: self.phase.subscribe(),
            _done: self.done_tx.clone(),
        }
    }

    /// Enters [`Phase::Draining`] and waits up to `grace` for every watcher
    /// to be dropped; then enters [`Phase::Closed`] and gives the stragglers
    /// one more second to drop their connections.
    pub async fn drain(self, grace: Duration) {
        let Shutdown {
            phase,
            done_tx,
            mut done_rx,
        } = self;
        tracing::info!(
            grace_ms = grace.as_millis() as u64,
            "shutting down: draining connections"
        );
        let _ = phase.send(Phase::Draining);
        drop(done_tx);
        if tokio::time::timeout(grace, done_rx.recv()).await.is_err() {
            tracing::warn!("shutdown grace period over; closing remaining connections");
            let _ = phase.send(Phase::Closed);
            let _ = tokio::time::timeout(Duration::from_secs(1), done_rx.recv()).await;
        }
    }
}

impl Watcher {
    /// Resolves once the gateway has reached `phase` (or the sender is gone).
    pub async fn until(&mut self, phase: Phase) {
        let reached = |p: &Phase| match phase {
            Phase::Running => true,
            Phase::Draining => *p != Phase::Running,
            Phase::Closed => *p == Phase::Closed,
        };
        let _ = self.phase.wait_for(reached).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_watchers_then_closes_after_grace() {
        let shutdown = Shutdown::new();
        let mut quick = shutdown.watcher();
        let mut slow = shutdown.watcher();
        let quick_task = tokio::spawn(async move { quick.until(Phase::Draining).await });
        let slow_task = tokio::spawn(async move {
            slow.until(Phase::Closed).await;
            tokio::time::Instant::now()
        });
        let start = tokio::time::Instant::now();
        shutdown.drain(Duration::from_secs(5)).await;
        quick_task.await.expect("quick watcher");
        let closed_at = slow_task.await.expect("slow watcher");
        assert_eq!(closed_at - start, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn drain_returns_as_soon_as_every_watcher_is_gone() {
        let shutdown = Shutdown::new();
        let mut w = shutdown.watcher();
        tokio::spawn(async move { w.until(Phase::Draining).await });
        let start = tokio::time::Instant::now();
        shutdown.drain(Duration::from_secs(30)).await;
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
