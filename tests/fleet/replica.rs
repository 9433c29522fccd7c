//! A gateway replica as operators run it: the `tokengate` binary with
//! `run --config FILE`, started when it logs "tokengate serving", killed
//! by its pid when the guard drops (also when a test panics). Its log is
//! kept, and its end printed when a test fails.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::redis_server::free_port;
use crate::common::GatewayConfig;
use crate::support::Admin;

const BIN: &str = env!("CARGO_BIN_EXE_tokengate");

/// How long the binary may take to log that it serves.
const START_LIMIT: Duration = Duration::from_secs(20);

/// Log lines printed when a test fails.
const LOG_TAIL: usize = 30;

/// The admin table the configuration builder renders, whose port the
/// replica replaces with a fixed free one (the binary logs only the main
/// listener's address).
const ADMIN_TABLE: &str = "[admin]\nlisten = \"127.0.0.1:0\"\n";

pub struct Replica {
    child: Child,
    pub addr: SocketAddr,
    pub admin: Admin,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Replica {
    /// Runs the binary on `config` (whose `[server] listen` must be
    /// `127.0.0.1:0`), with the admin listener on a free port; a port
    /// someone else took meanwhile is retried with another.
    pub fn start(config: &GatewayConfig) -> Replica {
        let toml = config.render();
        assert!(toml.contains(ADMIN_TABLE), "the config has no [admin]");
        let mut last = String::new();
        for _ in 0..3 {
            match Replica::try_start(&toml, free_port()) {
                Ok(replica) => return replica,
                Err(log) if log.contains("admin.listen") => last = log,
                Err(log) => panic!("tokengate did not serve:\n{log}"),
            }
        }
        panic!("tokengate found no free admin port:\n{last}");
    }

    /// One attempt; the log when the process exits or stays silent.
    fn try_start(toml: &str, admin_port: u16) -> Result<Replica, String> {
        let toml = toml.replacen(
            ADMIN_TABLE,
            &format!("[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n"),
            1,
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokengate.toml");
        std::fs::write(&path, toml).expect("write config");
        let mut child = Command::new(BIN)
            .arg("run")
            .arg("--config")
            .arg(&path)
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tokengate");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("tokengate serving") {
                    let _ = tx.send(line.clone());
                }
                kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let started = Instant::now();
        let Ok(line) = rx.recv_timeout(START_LIMIT) else {
            let _ = child.kill();
            let _ = child.wait();
            let log = log.lock().unwrap_or_else(|e| e.into_inner()).join("\n");
            return Err(log);
        };
        let addr = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v["listen"].as_str().and_then(|a| a.parse().ok()));
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no listen address in {line}");
        };
        eprintln!(
            "replica pid {} serving on {addr} (admin 127.0.0.1:{admin_port}) after {:?}",
            child.id(),
            started.elapsed()
        );
        Ok(Replica {
            child,
            addr,
            admin: Admin(SocketAddr::from(([127, 0, 0, 1], admin_port))),
            log,
            _dir: dir,
        })
    }
}

impl Drop for Replica {
    /// Kills the process; when a test failed, prints its last log lines.
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            let tail = log.len().saturating_sub(LOG_TAIL);
            eprintln!("--- replica {} log (last {LOG_TAIL} lines) ---", self.addr);
            for line in &log[tail..] {
                eprintln!("{line}");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
