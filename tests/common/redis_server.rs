//! A real `redis-server` for fleet tests: started by the test on a free
//! loopback port without persistence, killed by its pid when the test is
//! done (or panics). Where no `redis-server` is on `PATH` the tests that
//! need one print a skip line, unless `REQUIRE_REDIS` is set, which turns
//! the absence into a failure (for CI).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One `redis-server` process of this test.
pub struct RedisServer {
    child: Option<Child>,
    addr: SocketAddr,
}

/// `redis-server` on `PATH`.
fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}

impl RedisServer {
    /// Starts `redis-server` and waits until it answers `PING`; `None`
    /// (after a skip line naming `test`) when there is none to start.
    pub async fn start(test: &str) -> Option<RedisServer> {
        let Some(binary) = binary() else {
            assert!(
                std::env::var_os("REQUIRE_REDIS").is_none(),
                "{test}: REQUIRE_REDIS is set but no redis-server is on PATH"
            );
            eprintln!(
                "skipping {test}: no redis-server on PATH (set REQUIRE_REDIS to fail instead)"
            );
            return None;
        };
        let port = super::closed_port().await;
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let server = RedisServer {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        server.wait_for_pong().await;
        Some(server)
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    /// Kills the process (by its pid) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A plain connection for assertions on what the gateway stored.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test redis-server")
    }

    async fn wait_for_pong(&self) {
        let deadline = Instant::now() + super::STEP_LIMIT;
        loop {
            if self.pong().await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on {} did not answer PING",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn pong(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(self.addr).await else {
            return false;
        };
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").await.is_ok()
            && stream.read_exact(&mut reply).await.is_ok()
            && &reply == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
