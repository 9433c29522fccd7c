//! Upstream connection reuse, the connection cap and retries (behavior.md
//! section 6) against a raw-TCP upstream that numbers its connections and
//! puts the number in every answer: which connection served a request is
//! visible to the test. The upstream also counts open connections, notes
//! when the gateway closes one, and holds `/hold` requests until released.

#[path = "../common/mod.rs"]
mod common;
mod limits;
mod reuse;

use common::{Client, Gateway, GatewayConfig, Route, Upstream};
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};

/// Size of the `/big` answer: far more than socket buffers hold.
const BIG: usize = 8 << 20;

/// What the upstream does after each answer.
#[derive(Clone, Copy, PartialEq)]
enum AfterAnswer {
    KeepOpen,
    /// Closes the connection without having announced it.
    Close,
    /// Closes the connection, without a word, once it has been idle for
    /// `idle` (a keep-alive timeout). The close takes `in_flight` to reach
    /// the gateway, as over a network: a request the gateway sends in that
    /// window goes to a connection the upstream has already given up, and
    /// is never read.
    CloseIdle {
        idle: Duration,
        in_flight: Duration,
    },
}

/// What the upstream has seen; every change wakes [`CountingUpstream::wait_for`].
struct Counters {
    accepted: AtomicUsize,
    open: AtomicUsize,
    max_open: AtomicUsize,
    /// `/hold` requests that arrived.
    held: AtomicUsize,
    /// When the gateway closed an idle connection (end of stream).
    closed_by_gateway: Mutex<Vec<Instant>>,
    changed: Notify,
    /// One permit lets one `/hold` request answer.
    release: Semaphore,
}

impl Counters {
    fn new() -> Counters {
        Counters {
            accepted: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            max_open: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
            closed_by_gateway: Mutex::new(Vec::new()),
            changed: Notify::new(),
            release: Semaphore::new(0),
        }
    }

    fn changed(&self) {
        self.changed.notify_waiters();
    }
}

struct CountingUpstream {
    addr: std::net::SocketAddr,
    counters: Arc<Counters>,
}

impl CountingUpstream {
    async fn start(after: AfterAnswer) -> CountingUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let counters = Arc::new(Counters::new());
        let c = counters.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let id = c.accepted.fetch_add(1, Ordering::SeqCst) + 1;
                let open = c.open.fetch_add(1, Ordering::SeqCst) + 1;
                c.max_open.fetch_max(open, Ordering::SeqCst);
                c.changed();
                let c = c.clone();
                tokio::spawn(async move {
                    serve(stream, id, after, &c).await;
                    c.open.fetch_sub(1, Ordering::SeqCst);
                    c.changed();
                });
            }
        });
        CountingUpstream { addr, counters }
    }

    fn connections(&self) -> usize {
        self.counters.accepted.load(Ordering::SeqCst)
    }

    /// The most connections that were open at once.
    fn max_open(&self) -> usize {
        self.counters.max_open.load(Ordering::SeqCst)
    }

    fn held(&self) -> usize {
        self.counters.held.load(Ordering::SeqCst)
    }

    fn closed_by_gateway(&self) -> Vec<Instant> {
        self.counters
            .closed_by_gateway
            .lock()
            .expect("lock")
            .clone()
    }

    /// Lets `n` held `/hold` requests answer.
    fn release(&self, n: usize) {
        self.counters.release.add_permits(n);
    }

    /// Waits, at most `limit`, until `cond` holds.
    async fn wait_for(&self, what: &str, limit: Duration, cond: impl Fn(&Self) -> bool) {
        let wait = async {
            loop {
                let changed = self.counters.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if cond(self) {
                    return;
                }
                changed.await;
            }
        };
        if tokio::time::timeout(limit, wait).await.is_err() {
            panic!("{what}: not within {limit:?}");
        }
    }

    fn gateway_config(&self, upstream_extra: &str) -> String {
        GatewayConfig::new()
            .upstream_with("raw", &format!("http://{}", self.addr), upstream_extra)
            .route(Route::open("/**", "raw"))
            .render()
    }
}

/// Reads up to the end of a request head; `None` at the end of the stream.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    buf.drain(..head_end);
    Some(head)
}

/// Answers every request head on the connection: `/big` with [`BIG`]
/// bytes, `/hold` once released, anything else with `conn=<id>`.
async fn serve(mut stream: TcpStream, id: usize, after: AfterAnswer, c: &Counters) {
    let mut buf = Vec::new();
    loop {
        let head = match after {
            AfterAnswer::CloseIdle { idle, in_flight } => {
                match tokio::time::timeout(idle, read_head(&mut stream, &mut buf)).await {
                    Ok(head) => head,
                    Err(_) => {
                        tokio::time::sleep(in_flight).await;
                        return;
                    }
                }
            }
            AfterAnswer::KeepOpen | AfterAnswer::Close => read_head(&mut stream, &mut buf).await,
        };
        let Some(head) = head else {
            c.closed_by_gateway
                .lock()
                .expect("lock")
                .push(Instant::now());
            c.changed();
            return;
        };
        if head.starts_with("GET /hold ") {
            c.held.fetch_add(1, Ordering::SeqCst);
            c.changed();
            match c.release.acquire().await {
                Ok(permit) => permit.forget(),
                Err(_) => return,
            }
        }
        let body = if head.starts_with("GET /big ") {
            vec![b'x'; BIG]
        } else {
            format!("conn={id}").into_bytes()
        };
        let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
        if stream.write_all(answer.as_bytes()).await.is_err()
            || stream.write_all(&body).await.is_err()
        {
            return;
        }
        if after == AfterAnswer::Close {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

fn body_text(reply: &common::Reply) -> String {
    String::from_utf8_lossy(&reply.body).to_string()
}
