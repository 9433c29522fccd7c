//! Logs as an operator gets them from the `tokengate` binary (behavior.md
//! section 7, STYLE.md habit 3): with `RUST_LOG=trace`, in JSON and in text,
//! over HTTP/1.1 and h2 (plain and TLS), no token, client secret, Basic
//! credential or `Authorization` value appears anywhere in the output, at
//! any level, from tokengate or its dependencies (hyper, h2, rustls); and
//! every request produces exactly one access-log event (target
//! `tokengate::access`) carrying route, status, outcome, latency, request id
//! and subject.
//!
//! The binary runs as a child process against a `jwks_file` issuer, two
//! introspection issuers served by the in-test identity provider (client
//! secret sent by Basic and by POST), one introspection issuer on a closed
//! port, the recording upstream, and three upstreams with their own
//! `[upstreams.NAME.oauth]` token: one served by the identity provider, one
//! whose token endpoint refuses (logged at error with the upstream and the
//! code), one whose token endpoint is down.

#[path = "../common/mod.rs"]
mod common;
mod scenario;
use scenario::*;
mod secrets;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::idp::{TestIdp, TokenAnswer};
use common::mint::{claims, now, with, Key, AUD};
use common::{
    closed_port, empty, get_with, Body, Client, GatewayConfig, Issuer, Pki, Route, Upstream,
};
use http::Request;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tokengate");

const BASIC_CLIENT: &str = "logs-gateway";
const BASIC_SECRET: &str = "logs-basic-client-secret-Zq81";
const POST_CLIENT: &str = "logs-gateway-post";
const POST_SECRET: &str = "logs-post-client-secret-Xw27";
const DOWN_SECRET: &str = "logs-down-client-secret-Kp55";
const UPSTREAM_CLIENT: &str = "logs-upstream-client";
const UPSTREAM_SECRET: &str = "logs-upstream-client-secret-Wd43";
const UPSTREAM_POST_SECRET: &str = "logs-upstream-post-secret-Nf18";
const USER_PASSWORD: &str = "hunter2-logs-user-pw";
const PROXY_PASSWORD: &str = "proxy-pw-logs-Vb90";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Format {
    Json,
    Text,
}

impl Format {
    fn arg(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Text => "text",
        }
    }
}

/// The running binary with everything it wrote, line by line.
struct Process {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

/// Copies `stream` line by line into `lines`; sends the first "serving"
/// line to `serving`.
fn collect(
    stream: impl Read + Send + 'static,
    lines: Arc<Mutex<Vec<String>>>,
    serving: mpsc::Sender<String>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                    if line.contains("tokengate serving") {
                        let _ = serving.send(line.clone());
                    }
                    lines.lock().expect("lock").push(line);
                }
            }
        }
    })
}

impl Process {
    /// Starts `tokengate run` at trace level and waits for its "serving"
    /// line; returns the process and the address it listens on.
    fn start(config: &Path, format: Format) -> (Process, SocketAddr) {
        let mut child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .args(["--log-format", format.arg()])
            .env("RUST_LOG", "trace")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tokengate");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let readers = vec![
            collect(
                child.stdout.take().expect("stdout"),
                lines.clone(),
                tx.clone(),
            ),
            collect(child.stderr.take().expect("stderr"), lines.clone(), tx),
        ];
        let mut process = Process {
            child,
            lines,
            readers,
        };
        let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) else {
            let output = process.stop().join("\n");
            panic!("tokengate did not start:\n{output}");
        };
        let addr = match format {
            Format::Json => {
                let v: Value = serde_json::from_str(&line).expect("JSON serving line");
                v["listen"].as_str().expect("listen field").to_string()
            }
            Format::Text => text_fields(&line)
                .and_then(|f| f.get("listen").cloned())
                .unwrap_or_else(|| panic!("no listen= in {line:?}")),
        };
        (process, addr.parse().expect("listen address"))
    }

    /// SIGTERM, waits (bounded) for the exit, and returns every line written.
    fn stop(&mut self) -> Vec<String> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut exited = false;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        assert!(exited, "tokengate did not exit on SIGTERM");
        self.lines.lock().expect("lock").clone()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Removes ANSI escape sequences (in case colours are on).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The `key=value` fields of a text-format line after the target's `: `,
/// with quoted values unescaped.
fn text_fields(line: &str) -> Option<HashMap<String, String>> {
    let line = strip_ansi(line);
    let (_, rest) = line.split_once(": ")?;
    let mut fields = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if key.is_empty() {
            return Some(fields);
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        // Words of a message without `=` end up in keys; keep the last word.
        let key = key.rsplit(' ').next().unwrap_or("").to_string();
        fields.insert(key, value);
    }
}

/// The access-log events among `lines`, as field maps.
fn access_events(lines: &[String], format: Format) -> Vec<HashMap<String, String>> {
    lines
        .iter()
        .filter_map(|line| match format {
            Format::Json => {
                let v: Value = serde_json::from_str(line).ok()?;
                if v["target"] != "tokengate::access" {
                    return None;
                }
                let fields = v.as_object()?.iter().map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                });
                Some(fields.collect())
            }
            Format::Text => {
                let plain = strip_ansi(line);
                if !plain.contains(" tokengate::access: ") {
                    return None;
                }
                text_fields(&plain)
            }
        })
        .collect()
}
