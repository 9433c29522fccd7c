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
//! port, and the recording upstream.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::idp::TestIdp;
use common::mint::{claims, now, with, Key, AUD};
use common::{closed_port, empty, Body, Client, Pki, Upstream};
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

/// One request of the scenario and what its access-log event must say.
struct Case {
    what: &'static str,
    request: Request<Body>,
    status: u16,
    outcome: &'static str,
    route: &'static str,
    subject: &'static str,
}

fn get(path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut req = Request::get(path);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(empty()).expect("request")
}

/// Everything the scenario sends, plus every string that must never be
/// logged. Tokens are minted per call, so each protocol gets its own.
struct Scenario {
    cases: Vec<Case>,
    secrets: Vec<(String, String)>,
}

fn scenario(key: &Key, idp: &TestIdp, tag: &str) -> Scenario {
    let iss = "https://logs-idp.test/";
    let mut secrets: Vec<(String, String)> = Vec::new();
    let mut secret = |what: &str, value: String| -> String {
        secrets.push((what.to_string(), value.clone()));
        value
    };
    let jwt = |sub: &str| key.token(&with(&claims(iss, AUD), json!({ "sub": sub })));
    let good = secret("valid JWT", jwt("logs-alice"));
    let good2 = secret("valid JWT (proxy case)", jwt("logs-alice"));
    let good3 = secret("valid JWT (query case)", jwt("logs-alice"));
    let good4 = secret("valid JWT (open route)", jwt("logs-alice"));
    let good5 = secret("valid JWT (scope refused)", jwt("logs-dave"));
    let forged = secret(
        "forged JWT",
        key.jwt(&claims(iss, AUD))
            .signed_by(&Key::es256(key.kid().unwrap_or("k")))
            .encode(),
    );
    let expired = secret(
        "expired JWT",
        key.token(&with(
            &claims(iss, AUD),
            json!({"iat": now() - 7200, "exp": now() - 3600}),
        )),
    );
    let header = good.split('.').next().unwrap_or_default().to_string();
    secrets.push(("JWT header segment (any token prefix)".to_string(), header));
    for (what, token) in [
        ("valid JWT", &good),
        ("forged JWT", &forged),
        ("expired JWT", &expired),
    ] {
        let signature = token.rsplit('.').next().unwrap_or_default().to_string();
        secrets.push((format!("{what} signature"), signature));
    }
    let mut secret = |what: &str, value: String| -> String {
        secrets.push((what.to_string(), value.clone()));
        value
    };
    let opaque_active = secret("active opaque token", format!("op-active-{tag}-Tq4"));
    let opaque_inactive = secret("inactive opaque token", format!("op-inactive-{tag}-Lm2"));
    let opaque_post = secret("opaque token (POST client)", format!("op-post-{tag}-Hc7"));
    let opaque_down = secret("opaque token (down issuer)", format!("op-down-{tag}-Rr3"));
    let query_token = secret("query token", format!("query-token-{tag}-Yu6"));
    idp.set_introspection(
        &opaque_active,
        json!({"active": true, "sub": "logs-bob", "scope": "read", "exp": now() + 300}),
    );
    idp.set_introspection(
        &opaque_post,
        json!({"active": true, "client_id": "logs-carol", "scope": "read", "exp": now() + 300}),
    );
    let user_basic = secret(
        "user Basic credentials",
        STANDARD.encode(format!("logs-user:{USER_PASSWORD}")),
    );
    let proxy_basic = secret(
        "Proxy-Authorization credentials",
        STANDARD.encode(format!("proxy-user:{PROXY_PASSWORD}")),
    );
    let malformed = secret("malformed bearer", format!("malformed-{tag}-Jk8"));
    let bearer = |t: &str| format!("Bearer {t}");
    let proxy = format!("Basic {proxy_basic}");

    let cases = vec![
        Case {
            what: "valid JWT",
            request: get("/api/a", &[("authorization", &bearer(&good))]),
            status: 200,
            outcome: "forwarded",
            route: "/api/**",
            subject: "logs-alice",
        },
        Case {
            what: "forged JWT",
            request: get("/api/b", &[("authorization", &bearer(&forged))]),
            status: 401,
            outcome: "invalid_token",
            route: "/api/**",
            subject: "-",
        },
        Case {
            what: "expired JWT",
            request: get("/api/c", &[("authorization", &bearer(&expired))]),
            status: 401,
            outcome: "invalid_token",
            route: "/api/**",
            subject: "-",
        },
        Case {
            what: "active opaque token (Basic client auth)",
            request: get("/api/d", &[("authorization", &bearer(&opaque_active))]),
            status: 200,
            outcome: "forwarded",
            route: "/api/**",
            subject: "logs-bob",
        },
        Case {
            what: "inactive opaque token",
            request: get("/api/e", &[("authorization", &bearer(&opaque_inactive))]),
            status: 401,
            outcome: "invalid_token",
            route: "/api/**",
            subject: "-",
        },
        Case {
            what: "active opaque token (POST client auth)",
            request: get("/post/f", &[("authorization", &bearer(&opaque_post))]),
            status: 200,
            outcome: "forwarded",
            route: "/post/**",
            subject: "logs-carol",
        },
        Case {
            what: "opaque token, introspection endpoint down",
            request: get("/down/g", &[("authorization", &bearer(&opaque_down))]),
            status: 503,
            outcome: "unavailable",
            route: "/down/**",
            subject: "-",
        },
        Case {
            what: "token only in ?access_token=",
            request: get(&format!("/api/h?access_token={query_token}&x=1"), &[]),
            status: 401,
            outcome: "missing_token",
            route: "/api/**",
            subject: "-",
        },
        Case {
            what: "token in the query and the header",
            request: get(
                &format!("/api/i?access_token={query_token}"),
                &[("authorization", &bearer(&good3))],
            ),
            status: 400,
            outcome: "invalid_request",
            route: "/api/**",
            subject: "-",
        },
        Case {
            what: "Basic credentials",
            request: get(
                "/api/j",
                &[("authorization", &format!("Basic {user_basic}"))],
            ),
            status: 401,
            outcome: "missing_token",
            route: "/api/**",
            subject: "-",
        },
        Case {
            what: "malformed bearer credential",
            request: get(
                "/api/k",
                &[("authorization", &format!("Bearer {malformed} trailing"))],
            ),
            status: 400,
            outcome: "invalid_request",
            route: "/api/**",
            subject: "-",
        },
        Case {
            what: "valid JWT with Proxy-Authorization",
            request: get(
                "/api/l",
                &[
                    ("authorization", &bearer(&good2)),
                    ("proxy-authorization", &proxy),
                ],
            ),
            status: 200,
            outcome: "forwarded",
            route: "/api/**",
            subject: "logs-alice",
        },
        Case {
            what: "valid JWT lacking the route's scope",
            request: get("/scoped/n", &[("authorization", &bearer(&good5))]),
            status: 403,
            outcome: "insufficient_scope",
            route: "/scoped/**",
            subject: "logs-dave",
        },
        Case {
            what: "Proxy-Authorization and a bearer token on an open route",
            request: get(
                "/open/m",
                &[
                    ("authorization", &bearer(&good4)),
                    ("proxy-authorization", &proxy),
                ],
            ),
            status: 200,
            outcome: "forwarded",
            route: "/open/**",
            subject: "-",
        },
    ];
    secrets.extend([
        ("Basic client secret".to_string(), BASIC_SECRET.to_string()),
        ("POST client secret".to_string(), POST_SECRET.to_string()),
        ("down client secret".to_string(), DOWN_SECRET.to_string()),
        (
            "gateway's Basic credentials".to_string(),
            STANDARD.encode(format!("{BASIC_CLIENT}:{BASIC_SECRET}")),
        ),
        ("user password".to_string(), USER_PASSWORD.to_string()),
        ("proxy password".to_string(), PROXY_PASSWORD.to_string()),
    ]);
    Scenario { cases, secrets }
}

fn config(idp: &TestIdp, upstream: &Upstream, closed: u16, tls: Option<&Pki>) -> String {
    let tls = tls.map_or_else(String::new, |pki| {
        format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            pki.dir().join("server.pem").display(),
            pki.dir().join("server.key").display()
        )
    });
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
{tls}
[issuers.corp]
issuer = "https://logs-idp.test/"
jwks_file = "jwks.json"
audiences = ["{AUD}"]

[issuers.opaque]
issuer = "https://logs-opaque.test/"
audiences = ["{AUD}"]
[issuers.opaque.introspection]
endpoint = "{introspect}"
client_id = "{BASIC_CLIENT}"
client_secret = "{BASIC_SECRET}"

[issuers.post]
issuer = "https://logs-post.test/"
audiences = ["{AUD}"]
[issuers.post.introspection]
endpoint = "{introspect}"
client_id = "{POST_CLIENT}"
client_secret = "{POST_SECRET}"
auth_method = "client_secret_post"

[issuers.down]
issuer = "https://logs-down.test/"
audiences = ["{AUD}"]
[issuers.down.introspection]
endpoint = "http://127.0.0.1:{closed}/introspect"
client_id = "{BASIC_CLIENT}"
client_secret = "{DOWN_SECRET}"
timeout_ms = 2000

[upstreams.echo]
url = "{up}"

[[routes]]
path = "/api/**"
upstream = "echo"
issuers = ["corp", "opaque"]

[[routes]]
path = "/post/**"
upstream = "echo"
issuers = ["post"]

[[routes]]
path = "/down/**"
upstream = "echo"
issuers = ["down"]

[[routes]]
path = "/open/**"
upstream = "echo"
auth = "none"

[[routes]]
path = "/scoped/**"
upstream = "echo"
issuers = ["corp"]
scopes = ["logs:admin"]
"#,
        introspect = idp.introspection_endpoint(),
        up = upstream.url(),
    )
}

/// Runs the binary in `format`, sends every case over HTTP/1.1 and h2
/// (TLS when `tls`), stops it, and checks the output.
async fn no_secret_in_logs(format: Format, tls: bool) {
    let key = Key::es256("logs-key");
    let idp = TestIdp::start().await;
    let upstream = Upstream::echo().await;
    let closed = closed_port().await;
    let pki = tls.then(Pki::generate);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("jwks.json"),
        json!({ "keys": [key.jwk()] }).to_string(),
    )
    .expect("write key set");
    let path = dir.path().join("tokengate.toml");
    std::fs::write(&path, config(&idp, &upstream, closed, pki.as_ref())).expect("write config");

    let (mut process, addr) = Process::start(&path, format);
    let mut sent: Vec<(String, String, Case)> = Vec::new();
    let mut all_secrets = Vec::new();
    for h2 in [false, true] {
        let proto = if h2 { "h2" } else { "h1" };
        let mut client = if h2 { Client::h2() } else { Client::h1() };
        if let Some(pki) = &pki {
            client = client.tls(pki);
        }
        let Scenario { cases, secrets } =
            scenario(&key, &idp, &format!("{}-{proto}", format.arg()));
        all_secrets.extend(secrets);
        for (n, mut case) in cases.into_iter().enumerate() {
            let id = format!("logs-{}-{proto}-{n}", format.arg());
            case.request
                .headers_mut()
                .insert("x-request-id", id.parse().expect("request id"));
            let request = std::mem::replace(&mut case.request, empty_request());
            let reply = client.fetch(addr, request).await;
            assert_eq!(
                reply.status.as_u16(),
                case.status,
                "{proto} {}: {:?}",
                case.what,
                String::from_utf8_lossy(&reply.body)
            );
            sent.push((id, proto.to_string(), case));
        }
    }
    let lines = process.stop();
    let forwarded = sent
        .iter()
        .filter(|(_, _, c)| c.outcome == "forwarded")
        .count();
    assert_eq!(upstream.hits(), forwarded);
    assert!(
        idp.introspect_hits() >= 4,
        "the introspection client ran: {}",
        idp.introspect_hits()
    );
    assert!(
        lines.len() > 100,
        "trace-level output expected, got {} lines",
        lines.len()
    );

    // 1. No secret anywhere, at any level, from any crate.
    let mut leaks = Vec::new();
    for (what, secret) in &all_secrets {
        assert!(secret.len() >= 8, "{what}: a recognisable secret");
        for line in &lines {
            if line.contains(secret.as_str()) {
                leaks.push(format!("{what} in: {line}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} leaks ({format:?}, tls={tls}); first ones:\n{}",
        leaks.len(),
        leaks[..leaks.len().min(5)].join("\n")
    );

    // 2. Exactly one access-log event per request, with every field.
    let events = access_events(&lines, format);
    assert_eq!(
        events.len(),
        sent.len(),
        "one access-log event per request ({format:?})"
    );
    for (id, proto, case) in &sent {
        let mine: Vec<_> = events
            .iter()
            .filter(|e| e.get("request_id") == Some(id))
            .collect();
        assert_eq!(mine.len(), 1, "{proto} {}: events for {id}", case.what);
        let event = mine[0];
        for field in [
            "route",
            "status",
            "outcome",
            "latency_us",
            "request_id",
            "subject",
        ] {
            assert!(
                event.contains_key(field),
                "{proto} {}: no {field} in {event:?}",
                case.what
            );
        }
        let context = format!("{proto} {} ({format:?}): {event:?}", case.what);
        assert_eq!(event["status"], case.status.to_string(), "{context}");
        assert_eq!(event["outcome"], case.outcome, "{context}");
        assert_eq!(event["route"], case.route, "{context}");
        assert_eq!(event["subject"], case.subject, "{context}");
        assert!(
            event["latency_us"].parse::<u64>().is_ok(),
            "{context}: latency_us is a number"
        );
    }
}

fn empty_request() -> Request<Body> {
    Request::new(empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_json_logs_hold_no_secret_and_one_access_event_per_request() {
    no_secret_in_logs(Format::Json, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_text_logs_over_tls_hold_no_secret_and_one_access_event_per_request() {
    no_secret_in_logs(Format::Text, true).await;
}
