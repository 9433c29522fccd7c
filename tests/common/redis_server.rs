//! Real Redis for the tests of fleet state: one `redis-server` on a free
//! loopback port ([`RedisServer`]) or a three-primary Redis Cluster
//! ([`RedisCluster`]). No persistence: a restarted server starts empty.
//! Every process is killed by its pid when its guard drops, also when a
//! test panics; a stopped (`SIGSTOP`) server is killed all the same.
//!
//! Without `redis-server` and `redis-cli` on PATH the tests that need them
//! skip with a message, unless `REQUIRE_REDIS` is set (CI sets it). Besides
//! starting and killing: pausing, restarting on the same port, a cluster,
//! and `redis-cli` for looking inside.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer `PING`, and a cluster to agree.
const START_LIMIT: Duration = Duration::from_secs(10);

/// Whether `redis-server` and `redis-cli` can be run; `false` (after
/// saying so) when they cannot, a panic when `REQUIRE_REDIS` is set.
pub fn redis_present() -> bool {
    let runs = |bin: &str| {
        Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if runs("redis-server") && runs("redis-cli") {
        return true;
    }
    assert!(
        std::env::var_os("REQUIRE_REDIS").is_none(),
        "REQUIRE_REDIS is set but redis-server or redis-cli is not on PATH"
    );
    eprintln!(
        "SKIPPED: redis-server or redis-cli is not on PATH (set REQUIRE_REDIS to fail instead)"
    );
    false
}

/// A free loopback port: bound, read, released.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr").port()
}

/// `redis-cli -p port args...`: its stdout, trimmed. Never call it on a
/// stopped server: it would wait for the answer.
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Polls `cond` every 20 ms until it holds; panics after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` (`-STOP`, `-CONT`) to `pid`.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid}");
}

/// One `redis-server` process on 127.0.0.1.
pub struct RedisServer {
    port: u16,
    /// Its working directory (a cluster node's file lives there).
    dir: tempfile::TempDir,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// A standalone server on a free port, answering `PING`.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// A server with these extra arguments (on top of the port, the
    /// loopback bind and no persistence), answering `PING`. A port someone
    /// else took meanwhile is retried with another.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let mut server = RedisServer {
            port: 0,
            dir: tempfile::tempdir().expect("tempdir"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on any of five ports");
    }

    /// Starts the process on `self.port`; `false` when it exited (the port
    /// was taken), a panic when it neither exits nor answers.
    fn spawn(&mut self) -> bool {
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if cli(self.port, &["PING"]) == "PONG" {
                self.child = Some(child);
                return true;
            }
            if child.try_wait().expect("redis-server status").is_some() {
                return false;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-server on port {} did not answer PING", self.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("redis-server runs").id()
    }

    /// `redis-cli` against this server.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }

    /// Freezes the process (`SIGSTOP`): connections stay open, nothing is
    /// answered, every operation times out.
    pub fn pause(&self) {
        signal(self.pid(), "-STOP");
    }

    /// Lets a paused process go on (`SIGCONT`).
    pub fn resume(&self) {
        signal(self.pid(), "-CONT");
    }

    /// Kills the process (`SIGKILL`, by pid) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same port and directory, empty
    /// (a cluster node keeps its node file, so its identity and slots).
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "redis-server could not restart on {}",
            self.port
        );
    }

    /// Waits until `n` clients subscribe to `channel` on this server.
    pub fn wait_subscribers(&self, channel: &str, n: usize) {
        wait_for(
            &format!("{n} subscribers of {channel} on port {}", self.port),
            START_LIMIT,
            || self.subscribers(channel) == n,
        );
    }

    /// Clients subscribed to `channel` on this server.
    pub fn subscribers(&self, channel: &str) -> usize {
        let out = self.cli(&["PUBSUB", "NUMSUB", channel]);
        out.lines()
            .nth(1)
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three primaries, no replicas, joined by `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Three cluster-enabled servers holding all 16384 slots, once every
    /// node reports `cluster_state:ok`.
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_ok();
        cluster
    }

    /// `redis://127.0.0.1:PORT` of every node: the seed list.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Waits until every node running reports `cluster_state:ok`.
    pub fn wait_ok(&self) {
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            wait_for(
                &format!("cluster_state:ok on port {}", node.port()),
                START_LIMIT,
                || node.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"),
            );
        }
    }

    /// The index of the node that holds `key`'s slot (the others answer
    /// `MOVED slot host:port`).
    pub fn owner_of(&self, key: &str) -> usize {
        let answer = self.nodes[0].cli(&["TYPE", key]);
        let Some(moved) = answer.strip_prefix("MOVED ") else {
            return 0;
        };
        let port = moved
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("unexpected answer: {answer}"));
        self.nodes
            .iter()
            .position(|n| n.port() == port)
            .unwrap_or_else(|| panic!("{answer} names no node of the cluster"))
    }
}

impl RedisServer {
    /// A started server, or `None` (after a skip line naming `test`) where
    /// Redis cannot be run and `REQUIRE_REDIS` is not set.
    pub async fn start_for(test: &str) -> Option<RedisServer> {
        if !redis_present() {
            eprintln!("skipping {test}");
            return None;
        }
        Some(RedisServer::start())
    }

    /// A plain connection for assertions on what the gateway stored.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test redis-server")
    }
}
