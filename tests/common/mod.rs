//! Black-box fixtures: the real gateway on 127.0.0.1:0 ([`Gateway`]), a
//! recording upstream ([`Upstream`]), HTTP/1.1 and h2 clients with or
//! without TLS ([`Client`]), a raw-TCP client for byte-exact requests
//! ([`raw`]), a generated test PKI ([`Pki`]), the configuration builder
//! ([`config`]), the shared assertions ([`assert`]), and the sender's side
//! of bound tokens: DPoP proofs ([`dpop`]) and client certificates
//! ([`mtls`]); a real `redis-server` for fleet tests ([`redis_server`]).
//!
//! Every network wait is bounded by [`within`]; nothing sleeps to
//! synchronise.

// Each test binary uses a different part of these fixtures.
#![allow(dead_code, unused_imports)]

pub mod assert;
pub mod client;
pub mod config;
pub mod dpop;
pub mod header_names;
pub mod idp;
pub mod mint;
pub mod mtls;
pub mod pki;
pub mod raw;
pub mod redis_server;
pub mod upstream;

pub use client::{empty, full, generated, Body, Client, Reply};
pub use config::{GatewayConfig, Issuer, Route};
pub use pki::Pki;
pub use raw::{raw, raw_get, RawConn, RawReply};
pub use upstream::{Seen, Upstream};

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use tokengate::clock::Clock;
use tokengate::config::Config;
use tokengate::gateway::{self, Listeners};
use tokengate::runtime::{self, Runtime};

/// The longest any single step of a test may take before it fails.
pub const STEP_LIMIT: Duration = Duration::from_secs(20);

/// Awaits `fut`, failing the test if it takes longer than [`STEP_LIMIT`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(STEP_LIMIT, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: no result within {STEP_LIMIT:?}"),
    }
}

/// A manual clock standing at the next whole second: tokens minted now
/// (whole-second `iat` and `exp`) are neither from its future nor expired.
pub fn test_clock() -> Clock {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    Clock::manual(now.as_secs_f64().ceil())
}

/// A port nothing listens on: bound, read, then released.
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    drop(listener);
    port
}

/// The real gateway, serving a TOML configuration on 127.0.0.1:0.
///
/// The `listen` keys of the configuration are ignored: the fixture binds
/// the gateway (and, when the TOML has `[admin]`, the admin listener) on
/// ephemeral loopback ports and hands them to [`gateway::serve`].
pub struct Gateway {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    tls: bool,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Gateway {
    /// Starts the gateway; relative paths in `toml` resolve against the
    /// working directory.
    pub async fn start(toml: &str) -> Gateway {
        Gateway::start_in(toml, Path::new(".")).await
    }

    /// Starts the gateway; relative paths in `toml` resolve against `dir`.
    pub async fn start_in(toml: &str, dir: &Path) -> Gateway {
        Gateway::start_on(toml, dir, Clock::system()).await
    }

    /// Starts the gateway on `clock`: a test steps a [`test_clock`]
    /// instead of sleeping until a token or a cache entry expires.
    pub async fn start_on(toml: &str, dir: &Path, clock: Clock) -> Gateway {
        tokengate::tls::install_default_provider();
        let config = Config::from_toml(toml, dir, Vec::new())
            .unwrap_or_else(|e| panic!("invalid test config:\n{e}\n---\n{toml}"));
        let tls = config.server.tls.is_some();
        let (listeners, addr, admin_addr) = bind_listeners(&config).await;
        let rt =
            Runtime::build_with_clock(config, clock).unwrap_or_else(|e| panic!("runtime: {e}"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway::serve(runtime::shared(rt), listeners, async move {
            let _ = stopped.await;
        }));
        Gateway {
            addr,
            admin_addr,
            tls,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's address; panics when the TOML had no `[admin]`.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
            .expect("the test config has no [admin] table")
    }

    /// `http(s)://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// `GET path` over HTTP/1.1.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(&Client::h1(), request("GET", path)).await
    }

    /// `GET path` over HTTP/1.1 with `Authorization: Bearer token`.
    pub async fn call(&self, path: &str, token: &str) -> Reply {
        self.send(&Client::h1(), bearer(path, token)).await
    }

    /// Sends `req` (origin-form URI) with `client` and reads the whole answer.
    pub async fn send(&self, client: &Client, req: http::Request<Body>) -> Reply {
        client.fetch(self.addr, req).await
    }

    /// Fires the shutdown future without waiting for the drain.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Fires the shutdown future and waits until `serve` has returned.
    pub async fn shutdown(mut self) {
        self.begin_shutdown();
        if let Some(task) = self.task.take() {
            within("gateway shutdown", task)
                .await
                .expect("server task panicked");
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // The drain finishes in the background; the test runtime ends it.
        self.begin_shutdown();
    }
}

/// What the token tests start: an identity provider, the echo upstream,
/// the gateway in front of it, and `K`: the test's signing keys, or `()`.
/// Each test file adds its own `start` for its configuration.
pub struct Setup<K = ()> {
    pub idp: idp::TestIdp,
    pub upstream: Upstream,
    pub gw: Gateway,
    pub k: K,
}

/// The gateway's listener and, when `config` has `[admin]`, the admin
/// listener, both on ephemeral loopback ports, with their addresses.
pub async fn bind_listeners(config: &Config) -> (Listeners, SocketAddr, Option<SocketAddr>) {
    let admin = match config.admin {
        Some(_) => Some(TcpListener::bind("127.0.0.1:0").await.expect("bind admin")),
        None => None,
    };
    let gateway = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind gateway");
    let addr = gateway.local_addr().expect("gateway addr");
    let admin_addr = admin.as_ref().map(|l| l.local_addr().expect("admin addr"));
    (
        Listeners {
            gateway,
            admin,
            workers: Vec::new(),
        },
        addr,
        admin_addr,
    )
}

/// A request with an empty body: `request("GET", "/api/x")`.
pub fn request(method: &str, uri: &str) -> http::Request<Body> {
    http::Request::builder()
        .method(method)
        .uri(uri)
        .body(empty())
        .expect("valid test request")
}

/// `GET path` with these headers (in order; a name may repeat).
pub fn get_with(path: &str, headers: &[(&str, &str)]) -> http::Request<Body> {
    let mut req = http::Request::get(path);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(empty()).expect("valid test request")
}

/// `GET path` with `Authorization: Bearer token`.
pub fn bearer(path: &str, token: &str) -> http::Request<Body> {
    authorized("GET", path, token)
}

/// `method path` with `Authorization: Bearer token`.
pub fn authorized(method: &str, path: &str, token: &str) -> http::Request<Body> {
    http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(empty())
        .expect("valid test request")
}

/// The usual minimal configuration: one upstream `echo`, one catch-all
/// `/api/**` route without auth; `extra` is appended verbatim.
pub fn api_config(upstream_url: &str, extra: &str) -> String {
    GatewayConfig::open_api(upstream_url).raw(extra).render()
}

pub mod ops;
