//! `Type=notify` under systemd: the binary sends `READY=1` to the datagram
//! socket named by `NOTIFY_SOCKET` only once it serves and every issuer has
//! a usable key set (what `/readyz` reports), `RELOADING=1` and `READY=1`
//! around a SIGHUP reload, and `STOPPING=1` on SIGTERM.
//! Here the test plays both systemd (the socket) and the identity provider
//! (a key-set endpoint that answers when the test says so).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::mint::Key;
use crate::common::{GatewayConfig, Issuer, Route};
use crate::run::{free_port, get_status, signal, start_with_env, wait_exit, write_config};

/// The service manager's end: a datagram socket in a temporary directory.
struct Manager {
    socket: UnixDatagram,
}

impl Manager {
    fn bind(path: &Path) -> Manager {
        let socket = UnixDatagram::bind(path).unwrap();
        Manager { socket }
    }

    /// Every notification received so far, without waiting.
    fn received(&self) -> Vec<String> {
        self.socket.set_nonblocking(true).unwrap();
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.socket.recv(&mut buf) {
            all.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        self.socket.set_nonblocking(false).unwrap();
        all
    }

    /// Waits (up to 20 s) for a notification carrying `line` (such as
    /// `READY=1`), skipping others (status lines); returns it whole.
    fn wait_for(&self, line: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {line} from the gateway");
            self.socket.set_read_timeout(Some(left)).unwrap();
            let n = self.socket.recv(&mut buf).expect("a notification");
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            if message.lines().any(|l| l == line) {
                return message;
            }
        }
    }
}

/// Accepts the gateway's key-set request (up to 20 s) and reads its head,
/// leaving the answer to the caller.
fn accept_key_set_request(idp: &TcpListener) -> TcpStream {
    idp.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut conn = loop {
        match idp.accept() {
            Ok((conn, _)) => break conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no key-set request");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(conn.read(&mut byte).unwrap(), 1, "request head cut short");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"GET /jwks "), "{head:?}");
    conn
}

fn answer_key_set(mut conn: TcpStream, key: &Key) {
    let body = serde_json::json!({ "keys": [key.jwk()] }).to_string();
    write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
}

#[test]
fn notify_ready_once_issuers_are_ready_reloading_on_sighup_stopping_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let manager_path = dir.path().join("notify.sock");
    let manager = Manager::bind(&manager_path);
    let idp = TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = format!("127.0.0.1:{}", free_port());
    let jwks_uri = format!("http://{}/jwks", idp.local_addr().unwrap());
    let config = GatewayConfig::new()
        .server("listen = \"127.0.0.1:0\"")
        .issuer(
            Issuer::new("corp", "https://idp.test/")
                .jwks_uri(&jwks_uri)
                .render(),
        )
        .upstream("app", "http://127.0.0.1:9")
        .route(Route::new("/orders/**", "app"))
        .raw(&format!("[admin]\nlisten = \"{admin}\""))
        .render();
    let path = write_config(dir.path(), &config);
    let (mut child, listen) =
        start_with_env(&path, &[("NOTIFY_SOCKET", manager_path.to_str().unwrap())]);

    // Bound and serving, but the issuer's key set is still on its way.
    let pending = accept_key_set_request(&idp);
    assert_eq!(get_status(&admin, "/readyz"), 503);
    let early = manager.received();
    assert!(
        early.iter().all(|m| !m.lines().any(|l| l == "READY=1")),
        "READY=1 before the issuer was ready: {early:?}"
    );

    answer_key_set(pending, &Key::es256("k1"));
    let ready = manager.wait_for("READY=1");
    assert!(ready.contains("STATUS=serving"), "{ready:?}");
    assert_eq!(get_status(&admin, "/readyz"), 200, "ready as /readyz says");
    assert_eq!(
        get_status(&listen, "/nothing-here"),
        404,
        "the gateway answers"
    );

    // `systemctl reload`: RELOADING=1 (with the monotonic time that
    // systemd 253 and newer require), then READY=1 once it is done.
    signal(&child, "-HUP");
    let reloading = manager.wait_for("RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading:?}");
    manager.wait_for("READY=1");

    signal(&child, "-TERM");
    let stopping = manager.wait_for("STOPPING=1");
    assert!(!stopping.contains("READY=1"), "{stopping:?}");
    assert_eq!(wait_exit(&mut child), Some(0));
}
