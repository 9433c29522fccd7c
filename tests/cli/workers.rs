//! `server.worker_threads` above one: one runtime per worker thread, each
//! accepting on its own `SO_REUSEPORT` listener on `server.listen`. Every
//! worker serves its share of the connections, a stop drains the requests
//! in flight on all of them, and the port is still refused to a second
//! gateway.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::run::{signal, start_serving, start_with_env, wait_exit, write_config};
use crate::common::{request, Client, Pki};

/// A started gateway, killed if a test fails before stopping it.
struct Running(std::process::Child);

impl std::ops::Deref for Running {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// An HTTP/1.1 upstream on threads: answers every request with `200 ok`
/// after `delay`; counts the connections it accepted.
fn upstream(delay: Duration) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            counter.fetch_add(1, Ordering::Relaxed);
            std::thread::spawn(move || answer_each_request(stream, delay));
        }
    });
    (addr, accepted)
}

fn answer_each_request(stream: TcpStream, delay: Duration) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        // Bodiless requests: the head ends at the first empty line.
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {}
            }
        }
        std::thread::sleep(delay);
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        if writer.write_all(answer).is_err() {
            return;
        }
    }
}

fn config(workers: usize, listen: &str, upstream: SocketAddr) -> String {
    format!(
        "[server]\nlisten = \"{listen}\"\nworker_threads = {workers}\n\
         [upstreams.app]\nurl = \"http://{upstream}\"\n\
         [[routes]]\npath = \"/**\"\nupstream = \"app\"\nauth = \"none\"\n"
    )
}

/// Sends `GET /n` on `conn` and reads one `200 ok` answer.
fn exchange(conn: &mut TcpStream, n: usize) -> Result<(), String> {
    write!(conn, "GET /{n} HTTP/1.1\r\nHost: x\r\n\r\n").map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\nok") {
        match conn.read(&mut byte) {
            Ok(1) => answer.push(byte[0]),
            Ok(_) => return Err(format!("closed after {:?}", text(&answer))),
            Err(e) => return Err(format!("{e} after {:?}", text(&answer))),
        }
    }
    match answer.starts_with(b"HTTP/1.1 200 ") {
        true => Ok(()),
        false => Err(text(&answer)),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn connect(addr: &str) -> TcpStream {
    let conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn
}

/// The names of the process's threads that are extra workers.
fn worker_threads(pid: u32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .filter(|name| name.starts_with("tokengate-w"))
        .collect()
}

/// 48 connections held open together: with 3 workers the kernel spreads
/// them over 3 listeners, so a worker that did not serve its own would
/// leave about a third of them unanswered (all 48 missing one worker:
/// odds (2/3)^48).
#[test]
fn every_worker_serves_the_connections_its_listener_gets() {
    let dir = tempfile::tempdir().unwrap();
    let (up, _) = upstream(Duration::ZERO);
    let path = write_config(dir.path(), &config(3, "127.0.0.1:0", up));
    let (child, serving) = start_serving(&path, &[]);
    let mut child = Running(child);
    let addr = serving["listen"].as_str().unwrap().to_string();
    assert_eq!(serving["workers"], 3, "{serving}");
    assert_eq!(worker_threads(child.id()).len(), 2, "workers 1 and 2");

    let mut conns: Vec<TcpStream> = (0..48).map(|_| connect(&addr)).collect();
    for round in 0..3 {
        for (i, conn) in conns.iter_mut().enumerate() {
            if let Err(e) = exchange(conn, round * 100 + i) {
                panic!("connection {i}, request {round}: {e}");
            }
        }
    }
    drop(conns);
    signal(&child, "-TERM");
    assert_eq!(wait_exit(&mut child), Some(0));
}

/// A stop drains every worker: requests in flight on connections that
/// other workers serve are answered before the process exits 0.
#[test]
fn a_stop_drains_the_requests_in_flight_on_every_worker() {
    let dir = tempfile::tempdir().unwrap();
    let (up, _) = upstream(Duration::from_millis(600));
    let path = write_config(dir.path(), &config(3, "127.0.0.1:0", up));
    let (child, addr) = start_with_env(&path, &[]);
    let mut child = Running(child);

    let mut conns: Vec<TcpStream> = (0..24).map(|_| connect(&addr)).collect();
    for (i, conn) in conns.iter_mut().enumerate() {
        write!(conn, "GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    }
    // Every request reaches the upstream, which holds it 600 ms.
    std::thread::sleep(Duration::from_millis(200));
    signal(&child, "-TERM");
    for (i, conn) in conns.iter_mut().enumerate() {
        let mut answer = Vec::new();
        let _ = conn.read_to_end(&mut answer);
        assert!(
            answer.starts_with(b"HTTP/1.1 200 ") && answer.ends_with(b"ok"),
            "connection {i}: {:?}",
            text(&answer)
        );
    }
    assert_eq!(wait_exit(&mut child), Some(0));
}

/// `SO_REUSEPORT` does not let a second gateway share the port: it exits 1
/// naming `server.listen`, as it would with one worker.
#[test]
fn a_second_gateway_on_the_same_port_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (up, _) = upstream(Duration::ZERO);
    let path = write_config(dir.path(), &config(2, "127.0.0.1:0", up));
    let (child, addr) = start_with_env(&path, &[]);
    let mut child = Running(child);

    let second_dir = tempfile::tempdir().unwrap();
    let second = write_config(second_dir.path(), &config(2, &addr, up));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .args(["run", "--config", second.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr} (server.listen)")),
        "{stderr}"
    );
    // The first one still serves.
    let mut conn = connect(&addr);
    exchange(&mut conn, 1).unwrap();
    signal(&child, "-TERM");
    assert_eq!(wait_exit(&mut child), Some(0));
}

/// TLS on every worker, over HTTP/1.1 and h2 (ALPN): 24 connections of
/// each are handshaken and answered, whichever worker the kernel gives
/// them to.
#[test]
fn every_worker_serves_tls_over_http1_and_h2() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate();
    let (up, _) = upstream(Duration::ZERO);
    let tls = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        pki.dir().join("server.pem").display(),
        pki.dir().join("server.key").display()
    );
    let text = config(3, "127.0.0.1:0", up).replacen(
        "worker_threads = 3\n",
        &format!("worker_threads = 3\n{tls}"),
        1,
    );
    let path = write_config(dir.path(), &text);
    let (child, addr) = start_with_env(&path, &[]);
    let mut child = Running(child);
    let addr: SocketAddr = addr.parse().unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let statuses: Vec<(bool, u16)> = runtime.block_on(async {
        let mut statuses = Vec::new();
        for h2 in [false, true] {
            let client = match h2 {
                false => Client::h1(),
                true => Client::h2(),
            }
            .tls(&pki);
            // Connections opened together, so the kernel spreads them.
            let calls = (0..24).map(|i| client.fetch(addr, request("GET", &format!("/tls/{i}"))));
            for reply in futures_util::future::join_all(calls).await {
                statuses.push((h2, reply.status.as_u16()));
            }
        }
        statuses
    });
    signal(&child, "-TERM");
    assert_eq!(wait_exit(&mut child), Some(0));
    assert_eq!(statuses.len(), 48);
    assert!(statuses.iter().all(|(_, s)| *s == 200), "{statuses:?}");
}

/// `worker_threads = 0` is one worker per CPU the process may use, which
/// the start line reports.
#[test]
fn zero_workers_is_one_per_usable_core() {
    let dir = tempfile::tempdir().unwrap();
    let (up, _) = upstream(Duration::ZERO);
    let path = write_config(dir.path(), &config(0, "127.0.0.1:0", up));
    let (child, serving) = start_serving(&path, &[]);
    let mut child = Running(child);
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(serving["workers"], cores, "{serving}");
    assert_eq!(worker_threads(child.id()).len(), cores - 1);
    signal(&child, "-TERM");
    assert_eq!(wait_exit(&mut child), Some(0));
}
