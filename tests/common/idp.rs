//! A test identity provider: a real HTTP/1.1 server on 127.0.0.1:0 serving
//!
//! | path | answer |
//! |---|---|
//! | `/.well-known/openid-configuration`, also under any path prefix (`/realms/r/.well-known/openid-configuration`, for issuers with a path) | `{"issuer": ..., "jwks_uri": ".../jwks"}` |
//! | `/jwks` | the current key set (switchable at run time), or the injected failure |
//! | `/jwks-moved` | the current key set: the target of the redirect failure |
//! | `/introspect` | RFC 7662 introspection from a programmable table, or the injected failure |
//! | `/token` | the gateway's own token requests: answers as programmed ([`TokenAnswer`]), recorded, holdable |
//! | `/token-error/CODE` | a token endpoint that always refuses: 400 (401 for `invalid_client`) `{"error": CODE}` |
//! | anything else | 404 |
//!
//! with a hit counter per endpoint, an optional `Cache-Control: max-age` on
//! `/jwks`, and failure injection switchable at run time ([`Failure`]). A
//! second `TestIdp` doubles as the attacker's server in `jku`/`x5u` tests:
//! [`TestIdp::total_hits`] proves nobody asked it anything.
//!
//! `/introspect` answers `POST`s by the form-decoded `token` parameter from
//! a table ([`TestIdp::set_introspection`]; unknown tokens get
//! `{"active": false}`), records every request whole ([`IntrospectCall`]:
//! method, URI, headers, raw body), counts calls and the most that were ever
//! in flight at once, can delay every answer or hold them until released
//! (to make concurrent calls overlap), and fails on demand
//! ([`IntrospectFailure`]) independently of `/jwks`.
//!
//! Also the waiting helpers of the JWT tests: [`eventually`] polls a
//! condition with short pauses under a deadline, [`wait_ready`] polls the
//! gateway's admin `/readyz`.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod server;
use server::accept_loop;
mod token;
mod wait;

pub use token::TokenAnswer;

pub use wait::{eventually, issuer_table, readyz, wait_not_ready, wait_ready, EVENTUALLY};

use super::mint::Key;
use super::{request, Client, Gateway, Reply};

/// How long a hung `/jwks` answer takes: longer than any test `jwks_timeout_ms`.
pub const HANG: Duration = Duration::from_secs(30);

/// The size of the oversized key set: just over the gateway's 1 MiB limit.
pub const OVERSIZED_BYTES: usize = (1 << 20) + 1024;

/// What `/jwks` does instead of answering with the key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Answers normally.
    None,
    /// 500 with a JSON error body.
    Status500,
    /// Waits [`HANG`] before answering.
    Hang,
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with a JSON object that has no `keys` array.
    NotAKeySet,
    /// 200 with a valid key set padded past 1 MiB.
    Oversized,
    /// 302 to `/jwks-moved`, which would serve a valid key set.
    Redirect,
    /// Every connection and request is dropped without an answer (the whole
    /// server, discovery included).
    Down,
}

/// What `/introspect` does instead of answering from its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntrospectFailure {
    /// Answers from the table.
    None,
    /// Waits [`HANG`] before answering: longer than any test `timeout_ms`.
    Hang,
    /// 500 with a JSON error body.
    Status500,
    /// 200 with an HTML page.
    Html,
    /// 401: the gateway's client credentials are refused.
    Unauthorized,
    /// 403: the gateway's client is not allowed to introspect.
    Forbidden,
    /// 200 with JSON that is not an object (an array holding an active answer).
    NotAnObject,
}

/// One `/introspect` request as received.
#[derive(Debug, Clone)]
pub struct IntrospectCall {
    pub method: Method,
    /// The request target as received (origin-form path and query).
    pub uri: Uri,
    pub headers: HeaderMap,
    /// The raw body, as sent.
    pub body: Bytes,
}

impl IntrospectCall {
    /// Reads `req` whole (an unreadable body counts as empty).
    async fn read(req: Request<Incoming>) -> IntrospectCall {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        IntrospectCall {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    /// The body as form parameters, decoded; panics when it is not
    /// `application/x-www-form-urlencoded` text.
    pub fn form(&self) -> Vec<(String, String)> {
        let text = std::str::from_utf8(&self.body).expect("UTF-8 body");
        form_decode(text).unwrap_or_else(|| panic!("body is not form-encoded: {text:?}"))
    }

    /// The only value of form parameter `name`; panics when it is repeated.
    pub fn param(&self, name: &str) -> Option<String> {
        let values: Vec<String> = self
            .form()
            .into_iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v)
            .collect();
        assert!(values.len() <= 1, "{name} appears {} times", values.len());
        values.into_iter().next()
    }
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space,
/// `%XX` a byte); `None` for a bad escape or non-UTF-8 bytes.
pub fn form_decode(text: &str) -> Option<Vec<(String, String)>> {
    fn unescape(s: &str) -> Option<String> {
        let mut out = Vec::with_capacity(s.len());
        let mut bytes = s.bytes();
        while let Some(b) = bytes.next() {
            match b {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = [bytes.next()?, bytes.next()?];
                    let hex = std::str::from_utf8(&hex).ok()?;
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                }
                b => out.push(b),
            }
        }
        String::from_utf8(out).ok()
    }
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((unescape(name)?, unescape(value)?))
        })
        .collect()
}

/// The `/introspect` endpoint's programmable state.
struct Introspection {
    /// Token → answer; tokens not listed are inactive.
    answers: Mutex<HashMap<String, Value>>,
    failure: Mutex<IntrospectFailure>,
    /// Added before every answer.
    delay: Mutex<Duration>,
    /// `false` holds every answer until it turns `true`.
    gate: watch::Sender<bool>,
    calls: Mutex<Vec<IntrospectCall>>,
    hits: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// Counts one call in flight until dropped (also when the gateway hangs up).
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(state: &'a Introspection) -> InFlight<'a> {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(&state.in_flight)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct State {
    /// `http://127.0.0.1:PORT`.
    base: String,
    keys: Mutex<Vec<Value>>,
    issuer: Mutex<String>,
    failure: Mutex<Failure>,
    max_age: Mutex<Option<u64>>,
    /// Added before every `/jwks` answer.
    jwks_delay: Mutex<Duration>,
    jwks_hits: AtomicUsize,
    discovery_hits: AtomicUsize,
    moved_hits: AtomicUsize,
    /// Every request and every connection dropped while down.
    total_hits: AtomicUsize,
    introspection: Introspection,
    token: token::TokenEndpoint,
}

pub struct TestIdp {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl TestIdp {
    /// An identity provider with an empty key set whose issuer is its own
    /// base URL with a trailing slash.
    pub async fn start() -> TestIdp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind idp");
        let addr = listener.local_addr().expect("idp addr");
        let state = Arc::new(State {
            base: format!("http://{addr}"),
            keys: Mutex::new(Vec::new()),
            issuer: Mutex::new(format!("http://{addr}/")),
            failure: Mutex::new(Failure::None),
            max_age: Mutex::new(None),
            jwks_delay: Mutex::new(Duration::ZERO),
            jwks_hits: AtomicUsize::new(0),
            discovery_hits: AtomicUsize::new(0),
            moved_hits: AtomicUsize::new(0),
            total_hits: AtomicUsize::new(0),
            introspection: Introspection {
                answers: Mutex::new(HashMap::new()),
                failure: Mutex::new(IntrospectFailure::None),
                delay: Mutex::new(Duration::ZERO),
                gate: watch::Sender::new(true),
                calls: Mutex::new(Vec::new()),
                hits: AtomicUsize::new(0),
                in_flight: AtomicUsize::new(0),
                max_in_flight: AtomicUsize::new(0),
            },
            token: token::TokenEndpoint::new(),
        });
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        TestIdp { addr, state, task }
    }

    /// An identity provider publishing `keys`.
    pub async fn with_keys(keys: &[&Key]) -> TestIdp {
        let idp = TestIdp::start().await;
        idp.set_keys(keys);
        idp
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The issuer the discovery document names (by default the base URL with `/`).
    pub fn issuer(&self) -> String {
        self.state.issuer.lock().expect("lock").clone()
    }

    /// Changes the issuer the discovery document names.
    pub fn set_issuer(&self, issuer: &str) {
        *self.state.issuer.lock().expect("lock") = issuer.to_string();
    }

    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.base_url())
    }

    /// Publishes exactly `keys`.
    pub fn set_keys(&self, keys: &[&Key]) {
        self.set_jwks(keys.iter().map(|k| k.jwk()).collect());
    }

    /// Publishes exactly these JWKs, as given.
    pub fn set_jwks(&self, jwks: Vec<Value>) {
        *self.state.keys.lock().expect("lock") = jwks;
    }

    /// Adds `key` to the published set.
    pub fn add_key(&self, key: &Key) {
        self.state.keys.lock().expect("lock").push(key.jwk());
    }

    /// Removes every published key with this kid.
    pub fn remove_kid(&self, kid: &str) {
        self.state
            .keys
            .lock()
            .expect("lock")
            .retain(|k| k.get("kid").and_then(Value::as_str) != Some(kid));
    }

    pub fn set_failure(&self, failure: Failure) {
        *self.state.failure.lock().expect("lock") = failure;
    }

    /// `Cache-Control: max-age=N` on `/jwks` answers, or none.
    pub fn set_max_age(&self, max_age: Option<u64>) {
        *self.state.max_age.lock().expect("lock") = max_age;
    }

    /// Delays every `/jwks` answer by `delay` (a slow identity provider).
    pub fn set_jwks_delay(&self, delay: Duration) {
        *self.state.jwks_delay.lock().expect("lock") = delay;
    }

    /// Requests for `/jwks`, counted on arrival (also when failing).
    pub fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    pub fn discovery_hits(&self) -> usize {
        self.state.discovery_hits.load(Ordering::SeqCst)
    }

    /// Requests for the redirect target `/jwks-moved`.
    pub fn moved_hits(&self) -> usize {
        self.state.moved_hits.load(Ordering::SeqCst)
    }

    /// Every request on any path, plus every connection dropped while down.
    pub fn total_hits(&self) -> usize {
        self.state.total_hits.load(Ordering::SeqCst)
    }

    /// Waits until `/jwks` has been asked at least `n` times.
    pub async fn wait_jwks_hits(&self, n: usize) {
        eventually(
            &format!("{n} key-set fetches (saw {})", self.jwks_hits()),
            || self.jwks_hits() >= n,
        )
        .await;
    }

    /// Waits until the discovery document has been asked at least `n` times.
    pub async fn wait_discovery_hits(&self, n: usize) {
        eventually(&format!("{n} discovery fetches"), || {
            self.discovery_hits() >= n
        })
        .await;
    }

    /// `http://127.0.0.1:PORT/introspect`.
    pub fn introspection_endpoint(&self) -> String {
        format!("{}/introspect", self.base_url())
    }

    /// `/introspect` answers `answer` (with status 200) for `token`.
    pub fn set_introspection(&self, token: &str, answer: Value) {
        self.state
            .introspection
            .answers
            .lock()
            .expect("lock")
            .insert(token.to_string(), answer);
    }

    pub fn set_introspect_failure(&self, failure: IntrospectFailure) {
        *self.state.introspection.failure.lock().expect("lock") = failure;
    }

    /// Every `/introspect` answer waits `delay` first.
    pub fn set_introspect_delay(&self, delay: Duration) {
        *self.state.introspection.delay.lock().expect("lock") = delay;
    }

    /// Holds every `/introspect` answer (already arrived or not) until
    /// [`TestIdp::release_introspection`].
    pub fn hold_introspection(&self) {
        self.state.introspection.gate.send_replace(false);
    }

    /// Lets every held `/introspect` answer go, and answers freely again.
    pub fn release_introspection(&self) {
        self.state.introspection.gate.send_replace(true);
    }

    /// Requests for `/introspect`, counted once their body was read.
    pub fn introspect_hits(&self) -> usize {
        self.state.introspection.hits.load(Ordering::SeqCst)
    }

    /// `/introspect` requests received and not yet answered.
    pub fn introspect_in_flight(&self) -> usize {
        self.state.introspection.in_flight.load(Ordering::SeqCst)
    }

    /// The most `/introspect` requests that were ever in flight at once.
    pub fn introspect_max_in_flight(&self) -> usize {
        self.state
            .introspection
            .max_in_flight
            .load(Ordering::SeqCst)
    }

    /// Every `/introspect` request received so far, in arrival order.
    pub fn introspect_calls(&self) -> Vec<IntrospectCall> {
        self.state.introspection.calls.lock().expect("lock").clone()
    }

    /// The most recent `/introspect` request; panics when there was none.
    pub fn last_introspect_call(&self) -> IntrospectCall {
        self.introspect_calls()
            .pop()
            .expect("/introspect received no request")
    }

    /// Waits until `/introspect` has been asked at least `n` times.
    pub async fn wait_introspect_hits(&self, n: usize) {
        eventually(
            &format!("{n} introspection calls (saw {})", self.introspect_hits()),
            || self.introspect_hits() >= n,
        )
        .await;
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}
