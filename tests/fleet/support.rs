//! What every fleet test shares: the signing keys and their key files
//! ([`Keys`]), the gateway configuration ([`Keys::config`]), the admin
//! API client ([`Admin`]), a fleet of replicas on one Redis
//! ([`start_fleet`]), calls through the gateway, the refusal of a revoked
//! token ([`assert_revoked`]) and the propagation stopwatch ([`converge`],
//! [`report`]).

use http::Request;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::assert::{assert_refused, text, DEFAULT_REALM};
use crate::common::mint::{claims, with, Key, AUD};
use crate::common::ops::scrape;
use crate::common::redis_server::RedisServer;
use crate::common::{bearer, full, Client, GatewayConfig, Issuer, Reply, Route, Upstream};
use crate::replica::Replica;

/// The admin API token of every test configuration.
pub const API_TOKEN: &str = "fleet-admin-token-0123456789abcdef";
/// `iss` of the issuer named `corp`.
pub const CORP: &str = "https://corp.idp.test/";
/// `iss` of the issuer named `partner`.
pub const PARTNER: &str = "https://partner.idp.test/";
/// The key prefix of every `[redis]` table.
pub const PREFIX: &str = "fleet-test:";
/// The Redis hash and pub/sub channel of the deny-list.
pub const CHANNEL: &str = "fleet-test:revocations";
/// The description of a revoked token's refusal (extensions section 11).
pub const REVOKED: &str = "the token has been revoked";
/// The path every test calls; the route requires a token.
pub const PATH: &str = "/api/fleet";
/// How soon every instance must refuse a revoked token (section 11).
pub const PROPAGATION_LIMIT: Duration = Duration::from_secs(1);
/// How long a fresh replica may take to connect to Redis.
pub const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// Two issuers' signing keys, published as `jwks_file`s.
pub struct Keys {
    pub corp: Key,
    pub partner: Key,
    dir: tempfile::TempDir,
}

impl Keys {
    pub fn new() -> Keys {
        let keys = Keys {
            corp: Key::es256("corp-1"),
            partner: Key::es256("partner-1"),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        for (file, key) in [("corp.json", &keys.corp), ("partner.json", &keys.partner)] {
            let set = json!({ "keys": [key.jwk()] }).to_string();
            std::fs::write(keys.dir.path().join(file), set).expect("write key set");
        }
        keys
    }

    /// A corp token: the usual claims (a fresh `jti`, `iat` now) with
    /// `changes` applied.
    pub fn token(&self, changes: Value) -> String {
        self.corp.token(&with(&claims(CORP, AUD), changes))
    }

    /// The same from the partner issuer.
    pub fn partner_token(&self, changes: Value) -> String {
        self.partner.token(&with(&claims(PARTNER, AUD), changes))
    }

    /// Issuers `corp` and `partner` (key files), the admin listener with
    /// [`API_TOKEN`], one upstream and the token-protected `/api/**`
    /// route; the main listener on `127.0.0.1:0` with one worker thread;
    /// `tables` (`[redis]`, `[revocation]`) appended.
    pub fn config(&self, upstream: &Upstream, tables: &str) -> GatewayConfig {
        self.config_without_api_token(upstream, tables)
            .admin_with(&format!("api_token = \"{API_TOKEN}\""))
    }

    /// [`Keys::config`] with `[admin]` but no `api_token`.
    pub fn config_without_api_token(&self, upstream: &Upstream, tables: &str) -> GatewayConfig {
        let file = |name: &str| self.dir.path().join(name).display().to_string();
        GatewayConfig::new()
            .server("listen = \"127.0.0.1:0\"\nworker_threads = 1")
            .admin()
            .issuer(
                Issuer::new("corp", CORP)
                    .jwks_file(&file("corp.json"))
                    .render(),
            )
            .issuer(
                Issuer::new("partner", PARTNER)
                    .jwks_file(&file("partner.json"))
                    .render(),
            )
            .upstream("echo", &upstream.url())
            .route(Route::new("/api/**", "echo"))
            .raw(tables)
    }
}

/// `[redis]` on one server, with the test key prefix.
pub fn redis_table(url: &str) -> String {
    format!("[redis]\nurl = \"{url}/0\"\nkey_prefix = \"{PREFIX}\"\n")
}

/// `[redis]` on a cluster, with the test key prefix.
pub fn cluster_table(urls: &[String], extra: &str) -> String {
    let list: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "[redis]\ncluster_urls = [{}]\nkey_prefix = \"{PREFIX}\"\n{extra}\n",
        list.join(", ")
    )
}

/// Starts `n` replicas on `redis` and waits until each reports Redis ok
/// and subscribes to the deny-list channel.
pub async fn start_fleet(
    n: usize,
    redis: &RedisServer,
    keys: &Keys,
    upstream: &Upstream,
) -> Vec<Replica> {
    let config = keys.config(upstream, &redis_table(&redis.url()));
    let replicas: Vec<Replica> = (0..n).map(|_| Replica::start(&config)).collect();
    for r in &replicas {
        r.admin.wait_redis("ok", CONNECT_LIMIT).await;
    }
    redis.wait_subscribers(CHANNEL, n);
    replicas
}

/// `GET /api/fleet` with the token.
pub async fn call(addr: SocketAddr, token: &str) -> Reply {
    Client::h1().fetch(addr, bearer(PATH, token)).await
}

/// The status of [`call`].
pub async fn status(addr: SocketAddr, token: &str) -> u16 {
    call(addr, token).await.status.as_u16()
}

/// 401 `invalid_token`, "the token has been revoked", in the body and in
/// the challenge.
pub fn assert_revoked(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {}", text(reply));
    let description = assert_refused(reply, DEFAULT_REALM, 401, Some("invalid_token"), None);
    assert_eq!(description, REVOKED, "{what}");
}

/// Polls each of `replicas` with `token` every 20 ms until it answers
/// `want`; the time from `since` until each did. Fails when one has not
/// after `limit`.
pub async fn converge(
    what: &str,
    replicas: &[SocketAddr],
    token: &str,
    want: u16,
    since: Instant,
    limit: Duration,
) -> Vec<Duration> {
    let mut took: Vec<Option<Duration>> = vec![None; replicas.len()];
    loop {
        for (addr, done) in replicas.iter().zip(took.iter_mut()) {
            if done.is_none() && status(*addr, token).await == want {
                *done = Some(since.elapsed());
            }
        }
        if took.iter().all(Option::is_some) {
            return took.into_iter().flatten().collect();
        }
        let late: Vec<SocketAddr> = replicas
            .iter()
            .zip(&took)
            .filter(|(_, t)| t.is_none())
            .map(|(a, _)| *a)
            .collect();
        assert!(
            since.elapsed() < limit,
            "{what}: {late:?} did not answer {want} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Prints min, median and max of the measured times.
pub fn report(what: &str, times: &[Duration]) {
    let mut sorted = times.to_vec();
    sorted.sort();
    let (Some(min), Some(max)) = (sorted.first(), sorted.last()) else {
        return;
    };
    let median = sorted[sorted.len() / 2];
    println!(
        "propagation {what}: n={} min {} median {} max {} (limit {:?}, polled every 20 ms)",
        sorted.len(),
        ms(min),
        ms(&median),
        ms(max),
        PROPAGATION_LIMIT
    );
}

/// Milliseconds, for the propagation report.
pub fn ms(d: &Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The admin listener of one gateway.
#[derive(Debug, Clone, Copy)]
pub struct Admin(pub SocketAddr);

impl Admin {
    /// `method path` with `Authorization: <authorization>` when given and
    /// `body`.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: &str,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(value) = authorization {
            req = req.header("authorization", value);
        }
        if !body.is_empty() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(full(body.to_string())).expect("valid request");
        Client::h1().fetch(self.0, req).await
    }

    /// `method path` with the right admin token.
    pub async fn authorized(&self, method: &str, path: &str, body: &str) -> Reply {
        let auth = format!("Bearer {API_TOKEN}");
        self.send(method, path, Some(&auth), body).await
    }

    /// `POST /revocations` with `body`.
    pub async fn post(&self, body: &str) -> Reply {
        self.authorized("POST", "/revocations", body).await
    }

    /// `POST /revocations`, asserting 201; the entry answered.
    pub async fn revoke(&self, body: Value) -> Value {
        let reply = self.post(&body.to_string()).await;
        assert_eq!(reply.status, 201, "POST {body}: {}", text(&reply));
        reply.json()
    }

    /// `GET /revocations`, asserting 200; the entries.
    pub async fn list(&self) -> Vec<Value> {
        let reply = self.authorized("GET", "/revocations", "").await;
        assert_eq!(reply.status, 200, "GET /revocations: {}", text(&reply));
        let doc = reply.json();
        doc["revocations"]
            .as_array()
            .unwrap_or_else(|| panic!("no revocations array: {doc}"))
            .clone()
    }

    /// `DELETE /revocations/{id}`.
    pub async fn delete(&self, id: &str) -> Reply {
        self.authorized("DELETE", &format!("/revocations/{id}"), "")
            .await
    }

    /// `GET /readyz`.
    pub async fn readyz(&self) -> Reply {
        self.send("GET", "/readyz", None, "").await
    }

    /// Polls `/readyz` until it answers 200 with `"redis": want`; fails
    /// when it answers anything but 200 or after `limit`.
    pub async fn wait_redis(&self, want: &str, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let reply = self.readyz().await;
            assert_eq!(reply.status, 200, "/readyz: {}", text(&reply));
            if reply.json()["redis"] == want {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "/readyz never said redis {want} within {limit:?}: {}",
                text(&reply)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `tokengate_redis_errors_total` for `op`, or summed over every `op`.
    pub async fn redis_errors(&self, op: Option<&str>) -> f64 {
        let page = scrape(self.0).await;
        match op {
            Some(op) => page.value("tokengate_redis_errors_total", &[("op", op)]),
            None => page.value("tokengate_redis_errors_total", &[]),
        }
    }
}
