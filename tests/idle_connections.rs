//! Idle HTTP/1.1 keep-alive connections are parked: once quiet for
//! `tokengate::server::PARK_AFTER`, a connection gives hyper's buffers and
//! the request's state back and holds only its task, timers and socket,
//! then serves its next request as if nothing happened.
//!
//! The heap is measured with a counting allocator (this test binary's
//! global allocator), so the figure is what each connection keeps alive,
//! not what an allocator happens to keep resident. The clients are
//! blocking `std` sockets, which allocate nothing.

mod common;

use common::{Gateway, GatewayConfig};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Connections held by the memory test.
const CONNECTIONS: usize = 200;

/// The most heap a parked connection may keep alive: the 4 KiB target in
/// an optimized build; an unoptimized build's futures are larger (about
/// 3.6-4.4 KiB there). Before parking existed, about 30 KiB.
const PARKED_BYTES_MAX: isize = if cfg!(debug_assertions) {
    6 * 1024
} else {
    4 * 1024
};

/// The tests of this file run one at a time: the allocator's count is the
/// whole process's, and another test's allocations would land in it.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long to wait for connections to park.
fn park_wait() -> Duration {
    tokengate::server::PARK_AFTER + Duration::from_millis(1500)
}

/// An upstream that answers every request with `200 ok` and keeps
/// nothing per request (the common echo upstream records each request,
/// which would count here), only the number of requests.
struct Upstream {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Upstream {
    async fn start() -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(answer_all(conn, counted.clone()));
            }
        });
        Upstream { addr, hits }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }
}

/// Answers each bodiless request head on `conn`.
async fn answer_all(mut conn: tokio::net::TcpStream, hits: Arc<AtomicUsize>) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut len = 0;
    loop {
        while let Some(end) = buf[..len].windows(4).position(|w| w == b"\r\n\r\n") {
            hits.fetch_add(1, Ordering::Relaxed);
            buf.copy_within(end + 4..len, 0);
            len -= end + 4;
            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
            if conn.write_all(ok).await.is_err() {
                return;
            }
        }
        match conn.read(&mut buf[len..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => len += n,
        }
    }
}

async fn gateway() -> (Upstream, Gateway) {
    gateway_with("").await
}

/// The gateway with `server` lines in its `[server]` table.
async fn gateway_with(server: &str) -> (Upstream, Gateway) {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::open_api(&upstream.url())
        .server(server)
        .start()
        .await;
    (upstream, gw)
}

fn assert_all_ok(statuses: &[String]) {
    for s in statuses {
        assert!(s.starts_with("HTTP/1.1 200"), "{statuses:?}");
    }
}

/// One keep-alive GET on `conn`; the status line of the answer.
fn get(conn: &mut TcpStream, addr: SocketAddr, path: &str) -> String {
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .expect("write");
    read_response(conn)
}

/// Reads one response with a `content-length` body; its status line.
fn read_response(conn: &mut TcpStream) -> String {
    let mut got = [0u8; 8192];
    let mut len = 0;
    loop {
        let n = conn.read(&mut got[len..]).expect("read");
        assert!(
            n > 0,
            "closed after {:?}",
            String::from_utf8_lossy(&got[..len])
        );
        len += n;
        let text = std::str::from_utf8(&got[..len]).expect("ascii");
        if let Some(head_end) = text.find("\r\n\r\n") {
            let body_len: usize = text[..head_end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("content-length");
            if len >= head_end + 4 + body_len {
                return text.lines().next().unwrap_or("").to_string();
            }
        }
    }
}

/// Runs a blocking client on a thread of its own.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("client thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_connection_gives_back_its_buffers_and_serves_its_next_request() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (upstream, gw) = gateway().await;
    let addr = gw.addr();
    // Warm-up: the upstream pool, timers and caches exist before counting.
    let warm = blocking(move || {
        let mut c = TcpStream::connect(addr).expect("connect");
        get(&mut c, addr, "/api/warm")
    })
    .await;
    assert!(warm.starts_with("HTTP/1.1 200"), "{warm}");
    tokio::time::sleep(park_wait()).await;

    let before = LIVE.load(Ordering::Relaxed);
    let conns = blocking(move || {
        (0..CONNECTIONS)
            .map(|i| {
                let mut c = TcpStream::connect(addr).expect("connect");
                let status = get(&mut c, addr, &format!("/api/first/{i}"));
                assert!(status.starts_with("HTTP/1.1 200"), "{status}");
                c
            })
            .collect::<Vec<_>>()
    })
    .await;
    let busy = (LIVE.load(Ordering::Relaxed) - before) / CONNECTIONS as isize;
    tokio::time::sleep(park_wait()).await;
    let parked = (LIVE.load(Ordering::Relaxed) - before) / CONNECTIONS as isize;
    eprintln!("heap per connection: {busy} bytes after its request, {parked} bytes parked");
    assert!(
        parked <= PARKED_BYTES_MAX,
        "a parked connection keeps {parked} bytes (before parking: {busy})"
    );
    assert!(
        busy > 2 * parked,
        "nothing was given back: {busy} -> {parked}"
    );

    // Every parked connection serves its next request.
    let conns = blocking(move || {
        conns
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                let status = get(&mut c, addr, &format!("/api/second/{i}"));
                assert!(status.starts_with("HTTP/1.1 200"), "{status}");
                c
            })
            .collect::<Vec<_>>()
    })
    .await;
    assert_eq!(upstream.hits(), 1 + 2 * CONNECTIONS);
    drop(conns);
}

#[tokio::test]
async fn a_request_head_split_across_a_park_is_served_whole() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (upstream, gw) = gateway().await;
    let addr = gw.addr();
    let statuses = blocking(move || {
        let mut c = TcpStream::connect(addr).expect("connect");
        // One request, and the first half of the next in the same segment.
        c.write_all(
            format!("GET /api/one HTTP/1.1\r\nHost: {addr}\r\n\r\nGET /api/two HTTP/1.1\r\nHo")
                .as_bytes(),
        )
        .expect("write");
        let first = read_response(&mut c);
        // Long enough for the connection to be asked to park.
        std::thread::sleep(park_wait());
        c.write_all(format!("st: {addr}\r\n\r\n").as_bytes())
            .expect("write");
        let second = read_response(&mut c);
        // And an ordinary request after that.
        let third = get(&mut c, addr, "/api/three");
        [first, second, third]
    })
    .await;
    assert_all_ok(&statuses);
    assert_eq!(upstream.hits(), 3);
}

#[tokio::test]
async fn a_slow_request_head_is_not_parked_away_from_its_timeout() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // A head that stops half-way must still meet the header-read timeout:
    // parking would restart hyper's timer with every new session.
    let (upstream, gw) = gateway_with("header_read_timeout_ms = 2500").await;
    let addr = gw.addr();
    let outcome = blocking(move || {
        let mut c = TcpStream::connect(addr).expect("connect");
        let first = get(&mut c, addr, "/api/one");
        std::thread::sleep(park_wait());
        // Parked now. A partial head, then one byte every PARK_AFTER and a half.
        c.write_all(b"GET /api/two HTTP/1.1\r\nX-Slow: ")
            .expect("write");
        c.set_read_timeout(Some(Duration::from_millis(1500)))
            .expect("timeout");
        let started = std::time::Instant::now();
        let mut buf = [0u8; 512];
        loop {
            match c.read(&mut buf) {
                // An answer or the close: either ends the slow head.
                Ok(_) => return (first, Some(started.elapsed())),
                Err(_) if started.elapsed() > Duration::from_secs(12) => return (first, None),
                Err(_) => {
                    if c.write_all(b"x").is_err() {
                        return (first, Some(started.elapsed()));
                    }
                }
            }
        }
    })
    .await;
    assert!(outcome.0.starts_with("HTTP/1.1 200"), "{outcome:?}");
    let cut = outcome.1.expect("the slow head was served for 12 s");
    assert!(cut < Duration::from_secs(8), "cut after {cut:?}");
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn a_quiet_keep_alive_connection_outlives_the_header_read_timeout() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // The header-read timeout bounds a request head, not the wait for the
    // next one: that is the idle timeout's job.
    let (upstream, gw) =
        gateway_with("header_read_timeout_ms = 1000\nidle_timeout_ms = 60000").await;
    let addr = gw.addr();
    let statuses = blocking(move || {
        let mut c = TcpStream::connect(addr).expect("connect");
        let first = get(&mut c, addr, "/api/one");
        std::thread::sleep(Duration::from_millis(2500));
        let second = get(&mut c, addr, "/api/two");
        [first, second]
    })
    .await;
    assert_all_ok(&statuses);
    assert_eq!(upstream.hits(), 2);
}
