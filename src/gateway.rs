//! The library's entry point: [`run`] and [`serve`] take already-bound
//! listeners, a validated configuration (or a shared runtime) and a
//! shutdown future, so the binary, tests and benchmarks all run the real
//! gateway. Starts the admin listener, the reload triggers and the server
//! against one [`Shutdown`], so a stop drains them together.

use std::future::Future;
use tokio::net::TcpListener;

use crate::config::{Config, ConfigErrors};
use crate::runtime::{self, Runtime, SharedRuntime};
use crate::server::WorkerListener;
use crate::shutdown::{Phase, Shutdown};

/// The sockets the gateway serves on, bound by the caller.
pub struct Listeners {
    pub gateway: TcpListener,
    pub admin: Option<TcpListener>,
    /// More listeners on the gateway's address, each accepted on by another
    /// worker's runtime ([`crate::worker`]); empty: the caller's runtime
    /// serves every connection.
    pub workers: Vec<WorkerListener>,
}

/// Builds the runtime from `config` and serves until `shutdown` resolves.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ConfigErrors> {
    let shared = runtime::shared(Runtime::build(config)?);
    serve(shared, listeners, shutdown).await;
    Ok(())
}

/// Serves with an existing shared runtime (which a caller may swap to
/// reload) until `shutdown` resolves, then drains.
pub async fn serve(
    shared: SharedRuntime,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send,
) {
    start(shared, listeners, shutdown).await
}

/// [`serve`] in two steps: starts the snapshot's background work, the admin
/// listener and the reload triggers (with the `SIGHUP` handler installed)
/// now, and returns the server's future. Call it inside the tokio runtime.
pub fn start(
    shared: SharedRuntime,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send,
) -> impl Future<Output = ()> + Send {
    shared.load().start();
    let phases = Shutdown::new();
    if let Some(admin) = listeners.admin {
        tokio::spawn(crate::admin::serve(admin, shared.clone(), phases.watcher()));
    }
    let mut reload_stop = phases.watcher();
    tokio::spawn(crate::reload::triggers(shared.clone(), async move {
        reload_stop.until(Phase::Draining).await
    }));
    let served = crate::server::serve(
        shared.clone(),
        listeners.gateway,
        listeners.workers,
        phases,
        shutdown,
    );
    async move {
        served.await;
        // The spans of the last requests, within a bounded wait.
        let tracing = shared.load().tracing.clone();
        tracing.shutdown(SPAN_FLUSH_WAIT).await;
    }
}

/// How long a stop waits for queued spans to reach the collector.
const SPAN_FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
