//! Worker threads: with `server.worker_threads` above one, the binary runs
//! one current-thread tokio runtime per worker instead of tokio's
//! work-stealing scheduler, nginx's model. Each worker accepts on its own
//! listening socket bound to `server.listen` with `SO_REUSEPORT` (the
//! kernel spreads new connections over them by their addresses), so a
//! client connection, its requests and the upstream connections they open
//! all stay on one thread: no task moves between threads and no wake-up
//! crosses them on the request path. State kept per worker (the idle
//! upstream connections of `proxy::pool`) is indexed by [`index`].
//!
//! The first worker is the thread that called [`Workers::start`]; it also
//! runs the admin listener, the reload triggers and the background work
//! (key-set refreshes, span export). A leaf module.
//!
//! Measured on one core (`benches/peers/run.sh`, two workers against one,
//! proxy CPU per request): see `docs/benchmarks/results.md`.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use tokio::runtime::Handle;
use tokio::sync::watch;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// How many workers the process runs; 1 until [`set_count`].
static COUNT: AtomicUsize = AtomicUsize::new(1);

/// This thread's worker: 0 for the first worker and for any thread that is
/// not a worker.
pub fn index() -> usize {
    INDEX.with(Cell::get)
}

/// How many workers the process runs (1 unless the binary started more).
pub fn count() -> usize {
    COUNT.load(Ordering::Relaxed)
}

/// Records the number of workers, before the runtime snapshot (whose
/// upstream pools keep one idle list per worker) is built.
pub fn set_count(n: usize) {
    COUNT.store(n.max(1), Ordering::Relaxed);
}

/// `server.worker_threads` resolved: unset (0) is one per CPU core.
pub fn resolve(configured: Option<usize>) -> usize {
    configured
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Runs `f` as worker `index` on this thread, then restores the previous
/// index (for tests of per-worker state).
pub fn as_worker<T>(index: usize, f: impl FnOnce() -> T) -> T {
    let before = INDEX.with(|i| i.replace(index));
    let out = f();
    INDEX.with(|i| i.set(before));
    out
}

/// The workers after the first: each a thread running a current-thread
/// runtime until [`Workers::stop`].
pub struct Workers {
    threads: Vec<(Handle, JoinHandle<()>)>,
    stop: watch::Sender<bool>,
}

impl Workers {
    /// Starts workers `1..n` (the caller's thread is worker 0); returns
    /// once each thread runs, with its name and index set.
    pub fn start(n: usize) -> io::Result<Workers> {
        let (stop, stopped) = watch::channel(false);
        let (running_tx, running) = std::sync::mpsc::channel();
        let mut threads = Vec::with_capacity(n.saturating_sub(1));
        for index in 1..n {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = runtime.handle().clone();
            let mut stopped = stopped.clone();
            let running_tx = running_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("tokengate-w{index}"))
                .spawn(move || {
                    INDEX.with(|i| i.set(index));
                    let _ = running_tx.send(());
                    runtime.block_on(async move {
                        let _ = stopped.wait_for(|stop| *stop).await;
                    });
                })?;
            threads.push((handle, thread));
        }
        for _ in &threads {
            running
                .recv()
                .map_err(|_| io::Error::other("a worker thread ended at start"))?;
        }
        Ok(Workers { threads, stop })
    }

    /// The runtimes of workers `1..n`, in order.
    pub fn handles(&self) -> impl Iterator<Item = &Handle> {
        self.threads.iter().map(|(handle, _)| handle)
    }

    /// Ends every worker's runtime (dropping what is left on it) and waits
    /// for its thread. Call after the server has drained.
    pub fn stop(self) {
        let _ = self.stop.send(true);
        for (_, thread) in self.threads {
            let _ = thread.join();
        }
    }
}

/// Binds `n` listening sockets to `addr` with `SO_REUSEPORT`, the first to
/// `addr` itself (port 0 picks one) and the others to the first's address.
/// Call inside a tokio runtime; hand a listener to another runtime with
/// `into_std`.
///
/// The address is first bound once without `SO_REUSEPORT` and released:
/// a port another process listens on (a second gateway started by
/// mistake, even one with `SO_REUSEPORT`) is refused as "address in use",
/// as with one worker, instead of being shared with it.
pub fn bind_reuseport(addr: SocketAddr, n: usize) -> io::Result<Vec<tokio::net::TcpListener>> {
    let bound = bind_one(addr, false)?.local_addr()?;
    (0..n.max(1)).map(|_| bind_one(bound, true)).collect()
}

fn bind_one(addr: SocketAddr, reuseport: bool) -> io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // As `TcpListener::bind` does: a restarted gateway rebinds at once.
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(reuseport)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_table() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(resolve(None), cores);
        assert_eq!(resolve(Some(0)), cores);
        assert_eq!(resolve(Some(1)), 1);
        assert_eq!(resolve(Some(6)), 6);
    }

    #[test]
    fn as_worker_sets_and_restores_the_index() {
        assert_eq!(index(), 0);
        assert_eq!(as_worker(3, index), 3);
        assert_eq!(as_worker(2, || as_worker(5, index) + index()), 7);
        assert_eq!(index(), 0);
    }

    #[test]
    fn each_worker_thread_knows_its_index_and_stops() {
        let workers = Workers::start(3).expect("workers");
        let indexes: Vec<usize> = workers
            .handles()
            .map(|h| {
                let (tx, rx) = std::sync::mpsc::channel();
                h.spawn(async move { tx.send(index()).unwrap() });
                rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap()
            })
            .collect();
        assert_eq!(indexes, [1, 2]);
        workers.stop();
    }

    #[tokio::test]
    async fn reuseport_listeners_share_one_address() {
        let listeners = bind_reuseport("127.0.0.1:0".parse().unwrap(), 3).expect("bind");
        let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        assert_ne!(addrs[0].port(), 0);
        assert!(addrs.iter().all(|a| *a == addrs[0]), "{addrs:?}");
        // A socket bound without SO_REUSEPORT cannot join them, and
        // neither can a second gateway's workers.
        let plain = tokio::net::TcpListener::bind(addrs[0]).await;
        assert!(plain.is_err(), "a plain bind took the workers' port");
        let second = bind_reuseport(addrs[0], 2);
        assert!(second.is_err(), "a second set of workers shares the port");
        // Once they are closed, the port is free again.
        drop(listeners);
        assert!(bind_reuseport(addrs[0], 2).is_ok());
    }

    #[tokio::test]
    async fn reuseport_refuses_a_port_in_plain_use() {
        let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let taken = bind_reuseport(plain.local_addr().unwrap(), 2);
        assert_eq!(
            taken.err().map(|e| e.kind()),
            Some(io::ErrorKind::AddrInUse)
        );
    }
}
