//! End to end against a real OAuth 2.0 authorization server that we did not
//! write: `oidc-provider` (npm, pinned by `tests/e2e/package-lock.json`),
//! started as `node tests/e2e/provider.mjs` on 127.0.0.1:0 for each test,
//! with tokengate in-process in front of a recording echo upstream.
//!
//! | test | flow |
//! |---|---|
//! | `client_credentials_jwt_is_enforced` | RFC 6749 4.4 + RFC 8707 resource → RFC 9068 JWT; scopes, no token, tampering |
//! | `opaque_token_introspected_with_client_secret_basic_is_refused_after_revocation` | RFC 7662 + RFC 7009, `cache_ttl_s` bound |
//! | `opaque_token_introspected_with_client_secret_post_is_cached` | the other client authentication method; cache; refused gateway credentials |
//! | `authorization_code_with_pkce_yields_an_accepted_token` | RFC 6749 4.1 + RFC 7636 through the provider's devInteractions |
//! | `refresh_token_rotation` | RFC 6749 6 with rotation: new token works, old refresh token refused |
//! | `provider_key_rotation_costs_exactly_one_key_set_fetch` | unknown kid → one refetch |
//!
//! Setup, once per test binary: `node` must be on PATH (else the tests
//! print a skip line and pass, unless `REQUIRE_OIDC_E2E=1`, which
//! makes that a failure); when `tests/e2e/node_modules` lacks
//! oidc-provider, `npm ci` installs it from the lockfile. Every wait is
//! bounded; the provider is killed through its `Child` handle when the
//! test ends (and exits by itself when its stdin closes, so a test process
//! that dies cannot leave it behind).

mod common;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::idp::wait_ready;
use common::{empty, full, Client, Gateway, Reply, Upstream};
use http::Request;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The JWT resource (RFC 8707 indicator and `aud`) configured in provider.mjs.
const API: &str = "https://api.test";
/// The resource whose access tokens are opaque.
const OPAQUE: &str = "https://opaque.test";
/// Client credentials, as registered in provider.mjs.
const SVC: (&str, &str) = ("svc", "svc-secret");
const GATEWAY_BASIC: (&str, &str) = ("tokengate", "gateway-secret");
const GATEWAY_POST: (&str, &str) = ("tokengate-post", "gateway-post-secret");
const SPA: &str = "spa";

/// `npm ci` on a cold cache.
const NPM_CI_LIMIT: Duration = Duration::from_secs(300);
/// node starting, oidc-provider loading, the ready line.
const PROVIDER_READY_LIMIT: Duration = Duration::from_secs(20);
/// `node --version`, `npm --version`, the authorize.mjs user agent.
const HELPER_LIMIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Node, npm and the provider process

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("e2e")
}

fn e2e_required() -> bool {
    std::env::var("REQUIRE_OIDC_E2E").is_ok_and(|v| v == "1")
}

/// Why the end-to-end environment cannot be had.
#[derive(Debug)]
enum Unavailable {
    /// `node` or `npm` is not on PATH: a skip, unless REQUIRE_OIDC_E2E=1.
    MissingTool(String),
    /// Present but broken (npm ci failed, ...): always a failure.
    Broken(String),
}

/// What a bounded child process printed.
struct Finished {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Reads a child's pipe to the end on its own thread.
fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs `cmd` to completion within `limit`; kills it (by its own handle)
/// when the limit passes. `Err` when it cannot be started or timed out.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<Finished, std::io::Error> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("{cmd:?} did not finish within {limit:?}"),
            ));
        }
        thread::sleep(Duration::from_millis(20));
    };
    Ok(Finished {
        success: status.success(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// `TOOL --version`, telling "not installed" apart from "broken".
fn tool_version(tool: &str) -> Result<String, Unavailable> {
    match run_bounded(Command::new(tool).arg("--version"), HELPER_LIMIT) {
        Ok(out) if out.success => Ok(out.stdout.trim().to_string()),
        Ok(out) => Err(Unavailable::Broken(format!(
            "`{tool} --version` failed: {}",
            out.stderr.trim()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Unavailable::MissingTool(format!("`{tool}` is not on PATH")))
        }
        Err(e) => Err(Unavailable::Broken(format!("`{tool} --version`: {e}"))),
    }
}

/// Checks for node and installs the npm packages when they are missing.
fn prepare() -> Result<(), Unavailable> {
    let node = tool_version("node")?;
    let dir = e2e_dir();
    if dir
        .join("node_modules")
        .join("oidc-provider")
        .join("package.json")
        .is_file()
    {
        return Ok(());
    }
    let npm = tool_version("npm")?;
    let _ = writeln!(
        std::io::stderr(),
        "oidc_e2e: installing tests/e2e packages with npm ci (node {node}, npm {npm})"
    );
    let out = run_bounded(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir),
        NPM_CI_LIMIT,
    )
    .map_err(|e| Unavailable::Broken(format!("npm ci in {}: {e}", dir.display())))?;
    if !out.success {
        return Err(Unavailable::Broken(format!(
            "npm ci in {} failed:\n{}\n{}",
            dir.display(),
            out.stdout,
            out.stderr
        )));
    }
    Ok(())
}

/// One `prepare` per test binary; parallel tests wait for the first.
static PREPARED: OnceLock<Result<(), Unavailable>> = OnceLock::new();

/// `true` when the tests can run; `false` (after a skip line) when node
/// or npm is missing and the environment does not require the tests.
fn e2e_available(test: &str) -> bool {
    match PREPARED.get_or_init(prepare) {
        Ok(()) => true,
        Err(Unavailable::MissingTool(why)) if !e2e_required() => {
            // Straight to stderr: libtest captures only the print macros,
            // and a skip must be visible in a passing run.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED oidc_e2e::{test}: {why}; install Node.js >= 20.19 with npm to run it \
                 (REQUIRE_OIDC_E2E=1 turns this skip into a failure)"
            );
            false
        }
        Err(Unavailable::MissingTool(why)) => {
            panic!("REQUIRE_OIDC_E2E=1 but {why}")
        }
        Err(Unavailable::Broken(why)) => panic!("{why}"),
    }
}

/// provider.mjs's ready line: `(issuer, port, redirect_uri)`.
fn parse_ready_line(line: &str) -> Result<(String, u16, String), String> {
    let info: Value =
        serde_json::from_str(line).map_err(|e| format!("ready line is not JSON ({e}): {line}"))?;
    let field = |name: &str| {
        info[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("ready line without {name}: {line}"))
    };
    let port = info["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| format!("ready line without a port: {line}"))?;
    let issuer = field("issuer")?;
    // No trailing slash: tokengate compares `iss` exactly.
    if issuer != format!("http://127.0.0.1:{port}") {
        return Err(format!("unexpected issuer {issuer} for port {port}"));
    }
    Ok((issuer, port, field("redirect_uri")?))
}

/// A running `node tests/e2e/provider.mjs`.
struct Provider {
    child: Child,
    /// Held open: provider.mjs exits when its stdin closes.
    _stdin: ChildStdin,
    stderr: Arc<Mutex<String>>,
    issuer: String,
    addr: SocketAddr,
    redirect_uri: String,
}

impl Provider {
    /// Starts the provider, or `None` when the test is skipped.
    fn start(test: &str) -> Option<Provider> {
        if !e2e_available(test) {
            return None;
        }
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(e2e_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting node provider.mjs: {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");

        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                let mut text = sink.lock().expect("stderr buffer");
                text.push_str(&line);
                text.push('\n');
            }
        });
        let (ready_tx, ready_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = ready_tx.send(first);
            }
            // Keep draining so the provider never blocks on a full pipe.
            for _ in lines {}
        });

        let ready = ready_rx
            .recv_timeout(PROVIDER_READY_LIMIT)
            .map_err(|e| match e {
                mpsc::RecvTimeoutError::Timeout => {
                    format!("no ready line within {PROVIDER_READY_LIMIT:?}")
                }
                mpsc::RecvTimeoutError::Disconnected => "exited before its ready line".into(),
            })
            .and_then(|line| parse_ready_line(&line));
        match ready {
            Ok((issuer, port, redirect_uri)) => Some(Provider {
                child,
                _stdin: stdin,
                stderr,
                issuer,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                redirect_uri,
            }),
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "provider.mjs: {why}; stderr:\n{}",
                    stderr.lock().expect("stderr buffer")
                );
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    async fn get(&self, path: &str) -> Reply {
        Client::h1()
            .fetch(self.addr, common::request("GET", path))
            .await
    }

    async fn post(&self, path: &str) -> Reply {
        Client::h1()
            .fetch(self.addr, common::request("POST", path))
            .await
    }

    /// POSTs an `application/x-www-form-urlencoded` body, authenticating
    /// with HTTP Basic when `basic` is given (RFC 6749 2.3.1).
    async fn post_form(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json");
        if let Some((id, secret)) = basic {
            let credentials = STANDARD.encode(format!("{}:{}", pct(id), pct(secret)));
            req = req.header("authorization", format!("Basic {credentials}"));
        }
        let req = req.body(full(form_encode(form))).expect("form request");
        Client::h1().fetch(self.addr, req).await
    }

    /// A client-credentials grant for `resource` (RFC 8707) and `scope`;
    /// panics unless the provider issues a token.
    async fn client_credentials(&self, resource: &str, scope: &str) -> String {
        let reply = self
            .post_form(
                "/token",
                Some(SVC),
                &[
                    ("grant_type", "client_credentials"),
                    ("resource", resource),
                    ("scope", scope),
                ],
            )
            .await;
        let body = ok_json(&reply, "client_credentials grant");
        assert_eq!(body["token_type"], "Bearer", "{body}");
        assert_eq!(body["scope"], scope, "{body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// RFC 7009 revocation by the client the token was issued to.
    async fn revoke(&self, token: &str) {
        let reply = self
            .post_form(
                "/token/revocation",
                Some(SVC),
                &[("token", token), ("token_type_hint", "access_token")],
            )
            .await;
        assert_eq!(reply.status, 200, "revocation: {}", text(&reply));
    }

    /// The provider's own view of `token` (RFC 7662), asked as the gateway.
    async fn introspect(&self, token: &str) -> Value {
        let reply = self
            .post_form(
                "/token/introspection",
                Some(GATEWAY_BASIC),
                &[("token", token)],
            )
            .await;
        ok_json(&reply, "introspection")
    }

    /// Requests received by one endpoint (`jwks`, `introspection`, `token`, `revocation`).
    async fn hits(&self, endpoint: &str) -> u64 {
        let stats = ok_json(&self.get("/test/stats").await, "control: stats");
        stats["hits"][endpoint]
            .as_u64()
            .unwrap_or_else(|| panic!("no {endpoint} counter: {stats}"))
    }

    /// Rotates the provider's signing key; returns the new kid.
    async fn rotate(&self) -> String {
        let body = ok_json(&self.post("/test/rotate").await, "control: rotate");
        body["kid"].as_str().expect("kid").to_string()
    }

    /// Asserts the provider is still running (it did not crash during the
    /// test), then stops it.
    fn stop(mut self) {
        match self.child.try_wait() {
            Ok(None) => {}
            other => panic!(
                "provider.mjs ended during the test ({other:?}); stderr:\n{}",
                self.stderr.lock().expect("stderr buffer")
            ),
        }
        // Drop kills and reaps it.
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "--- provider.mjs stderr ---\n{}",
                self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
            );
        }
    }
}

/// Runs a test body on a fresh multi-threaded runtime (the provider is
/// started before it, with blocking process I/O).
fn run(body: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(body);
}

// ---------------------------------------------------------------------------
// Encoding helpers

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn pct(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// One query parameter of an absolute URL, percent-decoded.
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1.split('#').next()?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A JWT's header (0) or claims (1) as JSON.
fn jwt_part(token: &str, index: usize) -> Value {
    let segment = token.split('.').nth(index).expect("JWT segment");
    let bytes = URL_SAFE_NO_PAD.decode(segment).expect("base64url segment");
    serde_json::from_slice(&bytes).expect("JSON segment")
}

fn text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

/// The JSON body of a 200 answer.
fn ok_json(reply: &Reply, what: &str) -> Value {
    assert_eq!(reply.status, 200, "{what}: {}", text(reply));
    reply.json()
}

/// An OAuth error answer (RFC 6749 5.2): the status and the `error` code.
fn assert_oauth_error(reply: &Reply, status: u16, error: &str, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", text(reply));
    assert_eq!(reply.json()["error"], error, "{what}: {}", text(reply));
}

// ---------------------------------------------------------------------------
// The gateway side

/// The upstream route table every test uses: reading orders needs
/// `orders:read`, writing them `orders:write`.
fn routes(upstream: &Upstream) -> String {
    format!(
        r#"
[upstreams.echo]
url = "{}"

[forward]
claims = {{ sub = "x-auth-subject", client_id = "x-auth-client-id", scope = "x-auth-scope" }}

[[routes]]
path = "/orders/**"
methods = ["GET"]
upstream = "echo"
scopes = ["orders:read"]

[[routes]]
path = "/orders/**"
methods = ["POST"]
upstream = "echo"
scopes = ["orders:write"]
"#,
        upstream.url()
    )
}

/// A gateway trusting the provider's JWTs for `https://api.test`, with
/// `key_source` (and any other issuer keys) given by the test.
async fn jwt_gateway(op: &Provider, upstream: &Upstream, key_source: &str) -> Gateway {
    let toml = format!(
        r#"
[admin]
listen = "127.0.0.1:0"

[issuers.op]
issuer = "{issuer}"
{key_source}
audiences = ["{API}"]
algorithms = ["RS256"]
profile = "rfc9068"
{routes}"#,
        issuer = op.issuer,
        routes = routes(upstream),
    );
    let gw = Gateway::start(&toml).await;
    wait_ready(&gw).await;
    gw
}

/// A gateway introspecting the provider's opaque tokens for
/// `https://opaque.test` (no key source: opaque tokens only).
async fn opaque_gateway(
    op: &Provider,
    upstream: &Upstream,
    (client_id, client_secret): (&str, &str),
    auth_method: &str,
    cache_ttl_s: u64,
) -> Gateway {
    let toml = format!(
        r#"
[admin]
listen = "127.0.0.1:0"

[issuers.op]
issuer = "{issuer}"
audiences = ["{OPAQUE}"]

[issuers.op.introspection]
endpoint = "{endpoint}"
client_id = "{client_id}"
client_secret = "{client_secret}"
auth_method = "{auth_method}"
cache_ttl_s = {cache_ttl_s}
negative_cache_ttl_s = 1
timeout_ms = 2000
{routes}"#,
        issuer = op.issuer,
        endpoint = op.url("/token/introspection"),
        routes = routes(upstream),
    );
    let gw = Gateway::start(&toml).await;
    wait_ready(&gw).await;
    gw
}

async fn call(gw: &Gateway, method: &str, path: &str, token: Option<&str>) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    gw.send(&Client::h1(), req.body(empty()).expect("request"))
        .await
}

/// 200 from the upstream.
fn assert_forwarded(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 200, "{what}: {}", text(reply));
    assert_eq!(
        reply.header("x-upstream"),
        Some("echo"),
        "{what}: the upstream answered"
    );
}

/// 401 `invalid_token` with its challenge (RFC 6750 3.1).
fn assert_invalid_token(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {}", text(reply));
    assert_eq!(reply.gateway_error(401)["error"], "invalid_token", "{what}");
    let challenge = reply.header("www-authenticate").expect("challenge");
    assert!(
        challenge.starts_with("Bearer realm=\"tokengate\"")
            && challenge.contains("error=\"invalid_token\""),
        "{what}: {challenge}"
    );
}

/// The identity headers the upstream received for the last request.
fn assert_upstream_identity(
    upstream: &Upstream,
    subject: Option<&str>,
    client_id: &str,
    scope: &str,
) {
    let seen = upstream.last();
    assert_eq!(seen.header("x-auth-subject"), subject, "x-auth-subject");
    assert_eq!(seen.header("x-auth-client-id"), Some(client_id));
    assert_eq!(seen.header("x-auth-scope"), Some(scope));
}

// ---------------------------------------------------------------------------
// Authorization code + PKCE, with authorize.mjs as the browser

/// Runs `node authorize.mjs URL REDIRECT_URI` (login and consent through
/// devInteractions) and returns the Location it was redirected to.
async fn user_agent(op: &Provider, authorization_url: String) -> String {
    let redirect_uri = op.redirect_uri.clone();
    let out = tokio::task::spawn_blocking(move || {
        run_bounded(
            Command::new("node")
                .arg("authorize.mjs")
                .arg(&authorization_url)
                .arg(&redirect_uri)
                .arg("alice")
                .current_dir(e2e_dir()),
            HELPER_LIMIT,
        )
    })
    .await
    .expect("authorize.mjs thread")
    .unwrap_or_else(|e| panic!("authorize.mjs: {e}"));
    assert!(out.success, "authorize.mjs failed:\n{}", out.stderr);
    let printed: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("authorize.mjs output ({e}): {}", out.stdout));
    let location = printed["location"].as_str().expect("location").to_string();
    assert!(location.starts_with(&op.redirect_uri), "{location}");
    location
}

/// The authorization request (RFC 6749 4.1.1, RFC 7636 4.3, RFC 8707 2.1).
fn authorization_url(op: &Provider, state: &str, code_challenge: Option<&str>) -> String {
    let mut params = vec![
        ("client_id", SPA),
        ("response_type", "code"),
        ("redirect_uri", op.redirect_uri.as_str()),
        ("scope", "openid offline_access orders:read"),
        ("resource", API),
        ("state", state),
        // offline_access (a refresh token) needs an explicit consent prompt.
        ("prompt", "consent"),
    ];
    if let Some(challenge) = code_challenge {
        params.push(("code_challenge", challenge));
        params.push(("code_challenge_method", "S256"));
    }
    op.url(&format!("/auth?{}", form_encode(&params)))
}

fn random_b64url() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The whole authorization-code flow with PKCE; returns the token response
/// (an access token for `https://api.test` and a refresh token).
async fn authorization_code_flow(op: &Provider) -> Value {
    let verifier = random_b64url();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state = random_b64url();

    let location = user_agent(op, authorization_url(op, &state, Some(&challenge))).await;
    assert_eq!(query_param(&location, "error"), None, "{location}");
    assert_eq!(
        query_param(&location, "state").as_deref(),
        Some(state.as_str())
    );
    // RFC 9207: the authorization response names its issuer.
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(op.issuer.as_str())
    );
    let code = query_param(&location, "code").expect("code in the redirect");

    let exchange = |code_verifier: String| {
        let code = code.clone();
        async move {
            op.post_form(
                "/token",
                None,
                &[
                    ("grant_type", "authorization_code"),
                    ("client_id", SPA),
                    ("code", &code),
                    ("redirect_uri", &op.redirect_uri),
                    ("code_verifier", &code_verifier),
                    ("resource", API),
                ],
            )
            .await
        }
    };
    // A wrong verifier is refused before the code is consumed.
    assert_oauth_error(
        &exchange(random_b64url()).await,
        400,
        "invalid_grant",
        "code exchange with the wrong code_verifier",
    );
    ok_json(&exchange(verifier).await, "code exchange")
}

/// The refresh-token grant (RFC 6749 6) for the public client.
async fn refresh_grant(op: &Provider, refresh_token: &str) -> Reply {
    op.post_form(
        "/token",
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", SPA),
            ("refresh_token", refresh_token),
            ("resource", API),
        ],
    )
    .await
}

// ---------------------------------------------------------------------------
// The flows

#[test]
fn client_credentials_jwt_is_enforced() {
    let Some(op) = Provider::start("client_credentials_jwt_is_enforced") else {
        return;
    };
    run(async {
        let upstream = Upstream::echo().await;
        // Discovery against the provider, whose issuer has no trailing slash.
        let gw = jwt_gateway(&op, &upstream, "discovery = true").await;

        let read = op.client_credentials(API, "orders:read").await;
        let header = jwt_part(&read, 0);
        assert_eq!(header["typ"], "at+jwt", "{header}");
        assert_eq!(header["alg"], "RS256", "{header}");
        let claims = jwt_part(&read, 1);
        assert_eq!(claims["iss"], op.issuer.as_str(), "{claims}");
        assert_eq!(claims["aud"], API, "{claims}");

        let reply = call(&gw, "GET", "/orders/42?expand=1", Some(&read)).await;
        assert_forwarded(&reply, "valid token");
        assert_eq!(upstream.hits(), 1);
        assert_eq!(upstream.last().target(), "/orders/42?expand=1");
        // A client-credentials token's subject is the client (RFC 9068 2.2).
        assert_upstream_identity(&upstream, Some("svc"), "svc", "orders:read");

        // orders:write only, on a route that needs orders:read.
        let write = op.client_credentials(API, "orders:write").await;
        let reply = call(&gw, "GET", "/orders/42", Some(&write)).await;
        assert_eq!(reply.gateway_error(403)["error"], "insufficient_scope");
        let challenge = reply.header("www-authenticate").expect("challenge");
        assert!(
            challenge.contains("error=\"insufficient_scope\"")
                && challenge.contains("scope=\"orders:read\""),
            "{challenge}"
        );
        assert_eq!(
            upstream.hits(),
            1,
            "a refused request never reaches the upstream"
        );
        // ... and it does what it was issued for.
        let reply = call(&gw, "POST", "/orders/42", Some(&write)).await;
        assert_forwarded(&reply, "valid token");
        assert_upstream_identity(&upstream, Some("svc"), "svc", "orders:write");

        // No token: a bare challenge, no error code (RFC 6750 3.1).
        let reply = call(&gw, "GET", "/orders/42", None).await;
        let body = reply.gateway_error(401);
        assert!(body.get("error").is_none(), "{body}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Bearer realm=\"tokengate\"")
        );

        // Tampered: claims widened under the original signature ...
        let mut widened = jwt_part(&read, 1);
        widened["scope"] = "orders:read orders:write".into();
        let segments: Vec<&str> = read.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            segments[0],
            URL_SAFE_NO_PAD.encode(widened.to_string()),
            segments[2]
        );
        assert_invalid_token(
            &call(&gw, "POST", "/orders/42", Some(&forged)).await,
            "claims changed after signing",
        );
        // ... and one signature bit flipped.
        let mut signature = URL_SAFE_NO_PAD.decode(segments[2]).expect("signature");
        signature[0] ^= 0x01;
        let flipped = format!(
            "{}.{}.{}",
            segments[0],
            segments[1],
            URL_SAFE_NO_PAD.encode(signature)
        );
        assert_invalid_token(
            &call(&gw, "GET", "/orders/42", Some(&flipped)).await,
            "signature changed",
        );
        assert_eq!(
            upstream.hits(),
            2,
            "only the two valid requests were forwarded"
        );
    });
    op.stop();
}

#[test]
fn opaque_token_introspected_with_client_secret_basic_is_refused_after_revocation() {
    let Some(op) = Provider::start(
        "opaque_token_introspected_with_client_secret_basic_is_refused_after_revocation",
    ) else {
        return;
    };
    const CACHE_TTL: Duration = Duration::from_secs(1);
    run(async {
        let upstream = Upstream::echo().await;
        let gw = opaque_gateway(
            &op,
            &upstream,
            GATEWAY_BASIC,
            "client_secret_basic",
            CACHE_TTL.as_secs(),
        )
        .await;

        let token = op.client_credentials(OPAQUE, "orders:read").await;
        assert!(!token.contains('.'), "an opaque token, not a JWT: {token}");
        let reply = call(&gw, "GET", "/orders/7", Some(&token)).await;
        assert_forwarded(&reply, "valid token");
        assert_eq!(
            op.hits("introspection").await,
            1,
            "the gateway asked the provider"
        );
        // Introspection of a client-credentials token has no `sub`: no header.
        assert_upstream_identity(&upstream, None, "svc", "orders:read");

        // Scopes apply to introspected identities too.
        let write = op.client_credentials(OPAQUE, "orders:write").await;
        let reply = call(&gw, "GET", "/orders/7", Some(&write)).await;
        assert_eq!(reply.gateway_error(403)["error"], "insufficient_scope");
        // A token the provider never issued: active=false.
        let unknown = random_b64url();
        assert_invalid_token(
            &call(&gw, "GET", "/orders/7", Some(&unknown)).await,
            "unknown opaque token",
        );
        assert_eq!(upstream.hits(), 1);

        // RFC 7009 revocation at the provider.
        op.revoke(&token).await;
        let revoked_at = Instant::now();
        assert_eq!(op.introspect(&token).await["active"], false);
        // Right after revocation the gateway may still answer from its
        // cache: a revoked token lives on at the gateway for at most
        // cache_ttl_s. After that it must be refused; poll, bounded (the
        // slack covers scheduling on a loaded machine).
        let bound = CACHE_TTL + Duration::from_millis(1500);
        let mut forwarded = 1;
        loop {
            let reply = call(&gw, "GET", "/orders/7", Some(&token)).await;
            if reply.status == 401 {
                assert_invalid_token(&reply, "revoked token");
                break;
            }
            assert_forwarded(&reply, "revoked token, still cached");
            forwarded += 1;
            assert!(
                revoked_at.elapsed() < bound,
                "a revoked token was still accepted {:?} after revocation (cache_ttl_s = {CACHE_TTL:?})",
                revoked_at.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!(
            "revoked token: {} request(s) still served from the cache, refused {:?} after revocation",
            forwarded - 1,
            revoked_at.elapsed()
        );
        assert_invalid_token(
            &call(&gw, "GET", "/orders/7", Some(&token)).await,
            "revoked token stays refused",
        );
        assert_eq!(
            upstream.hits(),
            forwarded,
            "refusals never reach the upstream"
        );
    });
    op.stop();
}

#[test]
fn opaque_token_introspected_with_client_secret_post_is_cached() {
    let Some(op) = Provider::start("opaque_token_introspected_with_client_secret_post_is_cached")
    else {
        return;
    };
    run(async {
        let upstream = Upstream::echo().await;
        let gw = opaque_gateway(&op, &upstream, GATEWAY_POST, "client_secret_post", 60).await;

        let token = op
            .client_credentials(OPAQUE, "orders:read orders:write")
            .await;
        for _ in 0..3 {
            let reply = call(&gw, "GET", "/orders/9", Some(&token)).await;
            assert_forwarded(&reply, "valid token");
        }
        assert_eq!(
            op.hits("introspection").await,
            1,
            "one call, then the cache"
        );
        assert_upstream_identity(&upstream, None, "svc", "orders:read orders:write");
        let reply = call(&gw, "POST", "/orders/9", Some(&token)).await;
        assert_forwarded(&reply, "valid token");
        assert_eq!(
            op.hits("introspection").await,
            1,
            "scopes are checked on the cached identity"
        );

        // Revoked at the provider but cached at the gateway: accepted until
        // cache_ttl_s (60 s here) runs out. That is the documented bound.
        op.revoke(&token).await;
        assert_eq!(op.introspect(&token).await["active"], false);
        let asked = op.hits("introspection").await;
        let reply = call(&gw, "GET", "/orders/9", Some(&token)).await;
        assert_forwarded(&reply, "revoked token within cache_ttl_s");
        assert_eq!(
            op.hits("introspection").await,
            asked,
            "answered from the cache"
        );
        assert_eq!(upstream.hits(), 5);

        // The provider refuses the gateway's own credentials: 503, never forwarded.
        let refused = opaque_gateway(
            &op,
            &upstream,
            (GATEWAY_POST.0, "wrong-secret"),
            "client_secret_post",
            60,
        )
        .await;
        let fresh = op.client_credentials(OPAQUE, "orders:read").await;
        let reply = call(&refused, "GET", "/orders/9", Some(&fresh)).await;
        assert_eq!(reply.gateway_error(503)["error"], "temporarily_unavailable");
        assert!(reply.header("www-authenticate").is_none());
        assert!(reply.header("retry-after").is_some());
        assert_eq!(upstream.hits(), 5);
    });
    op.stop();
}

#[test]
fn authorization_code_with_pkce_yields_an_accepted_token() {
    let Some(op) = Provider::start("authorization_code_with_pkce_yields_an_accepted_token") else {
        return;
    };
    run(async {
        let upstream = Upstream::echo().await;
        let gw = jwt_gateway(
            &op,
            &upstream,
            &format!("jwks_uri = \"{}\"", op.url("/jwks")),
        )
        .await;

        // The public client must use PKCE: without a challenge the provider
        // answers at the redirect URI with an error and no code.
        let location = user_agent(&op, authorization_url(&op, "no-pkce", None)).await;
        assert_eq!(
            query_param(&location, "error").as_deref(),
            Some("invalid_request"),
            "{location}"
        );
        assert_eq!(query_param(&location, "code"), None);

        let tokens = authorization_code_flow(&op).await;
        assert_eq!(tokens["token_type"], "Bearer", "{tokens}");
        assert_eq!(tokens["scope"], "orders:read", "{tokens}");
        let access = tokens["access_token"].as_str().expect("access_token");
        let claims = jwt_part(access, 1);
        assert_eq!(claims["aud"], API, "{claims}");
        assert_eq!(claims["sub"], "alice", "{claims}");

        let reply = call(&gw, "GET", "/orders/1", Some(access)).await;
        assert_forwarded(&reply, "valid token");
        assert_upstream_identity(&upstream, Some("alice"), SPA, "orders:read");
        let reply = call(&gw, "POST", "/orders/1", Some(access)).await;
        assert_eq!(reply.gateway_error(403)["error"], "insufficient_scope");
        assert_eq!(upstream.hits(), 1);
    });
    op.stop();
}

#[test]
fn refresh_token_rotation() {
    let Some(op) = Provider::start("refresh_token_rotation") else {
        return;
    };
    run(async {
        let upstream = Upstream::echo().await;
        let gw = jwt_gateway(
            &op,
            &upstream,
            &format!("jwks_uri = \"{}\"", op.url("/jwks")),
        )
        .await;

        let tokens = authorization_code_flow(&op).await;
        let first_access = tokens["access_token"].as_str().expect("access_token");
        let first_refresh = tokens["refresh_token"]
            .as_str()
            .expect("refresh_token (offline_access)");

        let renewed = ok_json(&refresh_grant(&op, first_refresh).await, "refresh grant");
        let access = renewed["access_token"].as_str().expect("access_token");
        let rotated = renewed["refresh_token"]
            .as_str()
            .expect("rotated refresh_token");
        assert_ne!(access, first_access);
        assert_ne!(
            rotated, first_refresh,
            "rotateRefreshToken: a new refresh token"
        );
        assert_eq!(jwt_part(access, 1)["aud"], API);

        let reply = call(&gw, "GET", "/orders/2", Some(access)).await;
        assert_forwarded(&reply, "valid token");
        assert_upstream_identity(&upstream, Some("alice"), SPA, "orders:read");

        // The rotated-out refresh token is refused by the provider.
        assert_oauth_error(
            &refresh_grant(&op, first_refresh).await,
            400,
            "invalid_grant",
            "reused refresh token",
        );
    });
    op.stop();
}

#[test]
fn provider_key_rotation_costs_exactly_one_key_set_fetch() {
    let Some(op) = Provider::start("provider_key_rotation_costs_exactly_one_key_set_fetch") else {
        return;
    };
    run(async {
        let upstream = Upstream::echo().await;
        // A long refresh period: the only refetch is the unknown-kid one.
        let key_source = format!(
            "jwks_uri = \"{}\"\njwks_refresh_s = 3600\njwks_miss_cooldown_s = 30",
            op.url("/jwks")
        );
        let gw = jwt_gateway(&op, &upstream, &key_source).await;
        assert_eq!(op.hits("jwks").await, 1, "one key-set fetch at start");

        let old = op.client_credentials(API, "orders:read").await;
        let old_kid = jwt_part(&old, 0)["kid"].as_str().expect("kid").to_string();
        assert_forwarded(&call(&gw, "GET", "/orders/3", Some(&old)).await, "old kid");
        assert_eq!(op.hits("jwks").await, 1);

        let new_kid = op.rotate().await;
        assert_ne!(new_kid, old_kid);
        let new = op.client_credentials(API, "orders:read").await;
        assert_eq!(
            jwt_part(&new, 0)["kid"],
            new_kid.as_str(),
            "signed with the new key"
        );

        let reply = call(&gw, "GET", "/orders/3", Some(&new)).await;
        assert_forwarded(&reply, "valid token");
        assert_eq!(
            op.hits("jwks").await,
            2,
            "exactly one refetch for the new kid"
        );
        for _ in 0..3 {
            assert_forwarded(&call(&gw, "GET", "/orders/3", Some(&new)).await, "new kid");
        }
        // The old key is still published second: its tokens still verify.
        assert_forwarded(&call(&gw, "GET", "/orders/3", Some(&old)).await, "old kid");
        assert_eq!(op.hits("jwks").await, 2, "no further fetches");
        assert_eq!(upstream.hits(), 6);
        assert_upstream_identity(&upstream, Some("svc"), "svc", "orders:read");
    });
    op.stop();
}
