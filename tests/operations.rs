//! Operations (behavior.md section 7) through real sockets: hot reload under
//! continuous load, refused reloads, issuer state carried over a reload, a
//! replaced TLS certificate, `watch_config`, the `/metrics` page and
//! `/readyz`.
//!
//! The metrics recorder is one per test binary, so metric assertions are
//! deltas between two scrapes, and every test uses its own route paths,
//! upstream and issuer names. Only the metrics test sends requests that
//! match no route (route label `-`); keep it that way.

mod common;

use common::client::send_on;
use common::idp::{eventually, readyz, wait_ready, Failure, TestIdp};
use common::mint::{claims, now, with, Key, AUD};
use common::ops::{FileGateway, Scrape, TestCa};
use common::{
    closed_port, empty, request, within, Body, Client, Gateway, RawConn, Reply, Upstream,
};
use http::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokengate::telemetry::OUTCOMES;
use tokio::net::TcpStream;

/// `GET path` carrying `Authorization: Bearer token`.
fn bearer(method: &str, path: &str, token: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(empty())
        .expect("request")
}

/// The request target the echo upstream saw, from its JSON answer.
fn echoed_target(reply: &Reply) -> String {
    reply.json()["target"]
        .as_str()
        .expect("echo body names the target")
        .to_string()
}

fn reloads(scrape: &Scrape, result: &str) -> f64 {
    scrape.value("tokengate_config_reloads_total", &[("result", result)])
}

// ---------------------------------------------------------------------------
// Reload under load

/// Rule set A sends `/v/ID` to upstream A as `/set-a/v/ID`; rule set B sends
/// it to upstream B as `/set-b/ID` (prefix stripped). Any mix of the two
/// (B's route with A's upstream, or the reverse) produces a target that is
/// neither, or reaches the other server.
fn flip_config(set_b: bool, a: &Upstream, b: &Upstream) -> String {
    let (name, url, strip) = if set_b {
        (
            "load_b",
            format!("{}/set-b", b.url()),
            "strip_prefix = \"/v\"",
        )
    } else {
        ("load_a", format!("{}/set-a", a.url()), "")
    };
    format!(
        r#"
[upstreams.{name}]
url = "{url}"

[[routes]]
path = "/v/**"
upstream = "{name}"
auth = "none"
{strip}
"#
    )
}

/// How one load task talks to the gateway.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// A new HTTP/1.1 connection per request.
    FreshH1,
    /// A new h2c connection per request.
    FreshH2,
    /// One kept-alive HTTP/1.1 connection for every request.
    KeepAliveH1,
    /// One h2c connection, every request a new stream.
    KeepAliveH2,
}

enum Conn {
    Fresh(Client),
    H1(hyper::client::conn::http1::SendRequest<Body>),
    H2(hyper::client::conn::http2::SendRequest<Body>),
}

impl Conn {
    async fn open(mode: Mode, addr: SocketAddr) -> Conn {
        match mode {
            Mode::FreshH1 => Conn::Fresh(Client::h1()),
            Mode::FreshH2 => Conn::Fresh(Client::h2()),
            Mode::KeepAliveH1 => {
                let tcp = TcpStream::connect(addr).await.expect("connect");
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                    .await
                    .expect("h1 handshake");
                tokio::spawn(conn);
                Conn::H1(sender)
            }
            Mode::KeepAliveH2 => {
                let tcp = TcpStream::connect(addr).await.expect("connect");
                let (sender, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                        .await
                        .expect("h2 handshake");
                tokio::spawn(conn);
                Conn::H2(sender)
            }
        }
    }

    /// `GET path`; `Err` describes a transport failure.
    async fn get(&mut self, addr: SocketAddr, path: &str) -> Result<Reply, String> {
        self.get_as(addr, path, None).await
    }

    /// `GET path` with `Authorization: Bearer token` when there is one.
    async fn get_as(
        &mut self,
        addr: SocketAddr,
        path: &str,
        token: Option<&str>,
    ) -> Result<Reply, String> {
        let with_token = |mut req: Request<Body>| {
            if let Some(token) = token {
                let value = format!("Bearer {token}").parse().expect("header value");
                req.headers_mut().insert("authorization", value);
            }
            req
        };
        let resp = match self {
            Conn::Fresh(client) => {
                client
                    .try_send(addr, with_token(request("GET", path)))
                    .await
            }
            Conn::H1(sender) => {
                let req = Request::get(path)
                    .header("host", addr.to_string())
                    .body(empty())
                    .expect("request");
                let req = with_token(req);
                sender.ready().await.map_err(|e| e.to_string())?;
                sender.send_request(req).await
            }
            Conn::H2(sender) => {
                let req = Request::get(format!("http://{addr}{path}"))
                    .body(empty())
                    .expect("request");
                let req = with_token(req);
                sender.ready().await.map_err(|e| e.to_string())?;
                sender.send_request(req).await
            }
        };
        Ok(Reply::read(resp.map_err(|e| e.to_string())?).await)
    }
}

/// What one load task saw.
#[derive(Default, Debug)]
struct Tally {
    set_a: usize,
    set_b: usize,
    bad: Vec<String>,
}

async fn load_task(
    mode: Mode,
    task: usize,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
) -> Tally {
    const MAX_REQUESTS: usize = 5_000;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut conn = Conn::open(mode, addr).await;
    let mut tally = Tally::default();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) && n < MAX_REQUESTS && Instant::now() < deadline {
        let id = format!("t{task}-{n}");
        n += 1;
        match conn.get(addr, &format!("/v/{id}")).await {
            Err(e) => tally
                .bad
                .push(format!("{mode:?} {id}: transport error {e}")),
            Ok(reply) if reply.status != 200 => tally.bad.push(format!(
                "{mode:?} {id}: status {} {:?}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            )),
            Ok(reply) => {
                let target = echoed_target(&reply);
                if target == format!("/set-a/v/{id}") {
                    tally.set_a += 1;
                } else if target == format!("/set-b/{id}") {
                    tally.set_b += 1;
                } else {
                    tally
                        .bad
                        .push(format!("{mode:?} {id}: mixed rules, target {target}"));
                }
            }
        }
        done.fetch_add(1, Ordering::SeqCst);
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_under_load_flips_20_times_and_every_answer_follows_one_whole_rule_set() {
    let a = Upstream::echo().await;
    let b = Upstream::echo().await;
    let gw = FileGateway::start(&flip_config(false, &a, &b)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let modes = [
        Mode::FreshH1,
        Mode::FreshH2,
        Mode::KeepAliveH1,
        Mode::KeepAliveH2,
    ];
    let tasks: Vec<_> = modes
        .iter()
        .enumerate()
        .map(|(i, &mode)| tokio::spawn(load_task(mode, i, gw.addr(), stop.clone(), done.clone())))
        .collect();

    // Each flip waits until a few more answers arrived, so traffic is in
    // flight across every swap.
    let progress = |from: usize| {
        let done = done.clone();
        async move {
            eventually("load progress", || done.load(Ordering::SeqCst) >= from + 4).await;
        }
    };
    progress(0).await;
    for flip in 0..20 {
        let set_b = flip % 2 == 0;
        gw.write_and_reload(&flip_config(set_b, &a, &b))
            .await
            .unwrap_or_else(|e| panic!("flip {flip}: {e}"));
        progress(done.load(Ordering::SeqCst)).await;
    }
    stop.store(true, Ordering::SeqCst);

    let mut total = Tally::default();
    for task in tasks {
        let tally = within("load task", task).await.expect("load task panicked");
        total.set_a += tally.set_a;
        total.set_b += tally.set_b;
        total.bad.extend(tally.bad);
    }
    assert!(
        total.bad.is_empty(),
        "{} bad answers, first: {:?}",
        total.bad.len(),
        &total.bad[..total.bad.len().min(5)]
    );
    assert!(
        total.set_a > 0 && total.set_b > 0,
        "both rule sets served: {total:?}"
    );
    assert_eq!(
        a.hits(),
        total.set_a,
        "upstream A saw exactly set A's answers"
    );
    assert_eq!(
        b.hits(),
        total.set_b,
        "upstream B saw exactly set B's answers"
    );
    for seen in a.requests() {
        assert!(seen.target().starts_with("/set-a/v/"), "{}", seen.target());
    }
    for seen in b.requests() {
        let target = seen.target();
        assert!(
            target.starts_with("/set-b/") && !target.starts_with("/set-b/v/"),
            "{target}"
        );
    }
}

#[tokio::test]
async fn reload_lets_an_in_flight_request_finish_on_the_old_snapshot() {
    let a = Upstream::echo().await;
    let b = Upstream::echo().await;
    let config = |up: &Upstream, name: &str| {
        format!(
            "[upstreams.{name}]\nurl = \"{}\"\n\n[[routes]]\npath = \"/inflight/**\"\n\
             upstream = \"{name}\"\nauth = \"none\"\n",
            up.url()
        )
    };
    let gw = FileGateway::start(&config(&a, "inflight_a")).await;
    let addr = gw.addr();
    let held = tokio::spawn(async move {
        Client::h1()
            .fetch(addr, request("GET", "/inflight/hold"))
            .await
    });
    a.arrived().await;

    gw.write_and_reload(&config(&b, "inflight_b"))
        .await
        .expect("reload while a request is in flight");
    assert_eq!(gw.get("/inflight/after").await.status, 200);
    assert_eq!(b.hits(), 1, "new requests take the new snapshot");

    a.release();
    let reply = within("the held request", held)
        .await
        .expect("held request task");
    assert_eq!(reply.status, 200, "finished on the old snapshot");
    assert_eq!(echoed_target(&reply), "/inflight/hold");
    assert_eq!(a.hits(), 1);
}

// ---------------------------------------------------------------------------
// Refused reloads

fn inv_config(upstream_url: &str, route_upstream: &str, extra: &str) -> String {
    format!(
        r#"{extra}
[upstreams.inv_echo]
url = "{upstream_url}"

[[routes]]
path = "/inv/**"
upstream = "{route_upstream}"
auth = "none"
"#
    )
}

#[tokio::test]
async fn invalid_reload_keeps_serving_the_old_config_and_names_the_key() {
    let old = Upstream::echo().await;
    let new = Upstream::echo().await;
    let good = inv_config(
        &old.url(),
        "inv_echo",
        "[admin]\nlisten = \"127.0.0.1:0\"\n",
    );
    let gw = FileGateway::start(&good).await;
    std::fs::write(gw.dir().join("garbage.pem"), "not a certificate").expect("write");
    assert_eq!(gw.get("/inv/x").await.status, 200);
    let before = gw.scrape().await;

    // (what, file text, key the error must name, words of the reason)
    let bad: [(&str, String, &str, &str); 4] = [
        ("bad TOML", "this is [not toml".to_string(), "config", ""),
        (
            "unknown key",
            good.replace("[admin]", "[server]\nlisen = \"127.0.0.1:1\"\n[admin]"),
            "server.lisen",
            "unknown key",
        ),
        (
            "undefined upstream",
            inv_config(&old.url(), "nope", ""),
            "routes[0].upstream",
            "not defined",
        ),
        (
            "certificate that is not PEM (fails when the runtime is built)",
            good.replace(
                "[admin]",
                "[server]\ntls_cert = \"garbage.pem\"\ntls_key = \"garbage.pem\"\n[admin]",
            ),
            "server.tls_cert",
            "certificate",
        ),
    ];
    for (what, text, key, reason) in &bad {
        let errors = gw
            .write_and_reload(text)
            .await
            .expect_err(&format!("{what}: reload must fail"));
        assert!(
            errors
                .0
                .iter()
                .any(|e| e.key == *key && e.reason.contains(reason) && !e.reason.is_empty()),
            "{what}: expected {key}: ...{reason}..., got:\n{errors}"
        );
        let reply = gw.get("/inv/x").await;
        assert_eq!(reply.status, 200, "{what}: the old config keeps serving");
        assert_eq!(
            reply.version,
            http::Version::HTTP_11,
            "{what}: still plain HTTP"
        );
    }
    assert_eq!(old.hits(), 1 + bad.len());
    let mid = gw.scrape().await;
    assert_eq!(
        reloads(&mid, "error") - reloads(&before, "error"),
        bad.len() as f64,
        "one error count per refused reload"
    );

    gw.write_and_reload(&inv_config(
        &new.url(),
        "inv_echo",
        "[admin]\nlisten = \"127.0.0.1:0\"\n",
    ))
    .await
    .expect("a good reload");
    assert_eq!(gw.get("/inv/y").await.status, 200);
    assert_eq!(new.hits(), 1, "the new config serves");
    assert_eq!(old.hits(), 1 + bad.len());
    let after = gw.scrape().await;
    assert!(
        reloads(&after, "ok") - reloads(&mid, "ok") >= 1.0,
        "a good reload counts as ok"
    );
    assert_eq!(reloads(&after, "error"), reloads(&mid, "error"));
}

// ---------------------------------------------------------------------------
// Issuer state across reloads

/// Issuer `carry` reading `jwks_uri` (`extra` lines appended), an echo
/// upstream, the protected route `/carry/**` and, when `more`, a second
/// one `/carry-more/**`.
fn carry_config(
    idp: &TestIdp,
    jwks_uri: &str,
    upstream: &Upstream,
    extra: &str,
    more: bool,
) -> String {
    let more_route = if more {
        "[[routes]]\npath = \"/carry-more/**\"\nupstream = \"carry_echo\"\n"
    } else {
        ""
    };
    format!(
        r#"
[admin]
listen = "127.0.0.1:0"

[issuers.carry]
issuer = "{}"
jwks_uri = "{jwks_uri}"
audiences = ["{AUD}"]
{extra}

[upstreams.carry_echo]
url = "{}"

[[routes]]
path = "/carry/**"
upstream = "carry_echo"
{more_route}
"#,
        idp.issuer(),
        upstream.url()
    )
}

#[tokio::test]
async fn reload_carries_the_key_set_while_its_source_is_unchanged_and_applies_new_settings() {
    let key = Key::es256("carry-1");
    let idp = TestIdp::with_keys(&[&key]).await;
    let mirror = TestIdp::with_keys(&[&key]).await;
    let upstream = Upstream::echo().await;
    let config =
        |uri: &str, extra: &str, more: bool| carry_config(&idp, uri, &upstream, extra, more);
    let gw = FileGateway::start(&config(&idp.jwks_uri(), "", false)).await;
    eventually("issuer ready", || gw.not_ready().is_empty()).await;
    let call = |token: String, path: &'static str| {
        let gw = &gw;
        async move {
            gw.send(&Client::h1(), bearer("GET", path, &token))
                .await
                .status
        }
    };
    let token = key.token(&claims(&idp.issuer(), AUD));
    assert_eq!(call(token.clone(), "/carry/x").await, 200);
    assert_eq!(idp.jwks_hits(), 1);
    let first = gw.shared().load().auth.keys[0].clone().expect("a key set");
    let shares_first = || {
        gw.shared().load().auth.keys[0]
            .as_ref()
            .is_some_and(|k| k.shares_key_set(&first))
    };

    // Only the routes change: the key set is carried over.
    gw.write_and_reload(&config(&idp.jwks_uri(), "", true))
        .await
        .expect("route-only reload");
    assert!(gw.not_ready().is_empty(), "{:?}", gw.not_ready());
    assert!(shares_first());
    assert_eq!(
        call(token.clone(), "/carry-more/x").await,
        200,
        "new route, same keys"
    );

    // The issuer's settings change, its key source does not: still the same
    // key set, usable at once, and the new settings apply. A token that
    // expired 30 s ago passes with leeway_s = 60 (the default) and fails
    // with leeway_s = 10.
    let late = key.token(&with(
        &claims(&idp.issuer(), AUD),
        json!({"iat": now() - 100, "exp": now() - 30}),
    ));
    assert_eq!(
        call(late.clone(), "/carry/x").await,
        200,
        "within the default leeway"
    );
    gw.write_and_reload(&config(
        &idp.jwks_uri(),
        "leeway_s = 10\njwks_refresh_s = 60\njwks_timeout_ms = 1000\nrequired_claims = [\"sub\"]",
        true,
    ))
    .await
    .expect("settings-only reload");
    assert!(gw.not_ready().is_empty(), "{:?}", gw.not_ready());
    assert!(shares_first(), "the key set survives a settings change");
    assert_eq!(call(token.clone(), "/carry/x").await, 200);
    assert_eq!(call(late, "/carry/x").await, 401, "the new leeway applies");
    assert_eq!(
        idp.jwks_hits(),
        1,
        "no refetch while the source is unchanged"
    );

    // The key source changes: the new set is fetched before the swap, so
    // the issuer is ready the moment the reload returns.
    gw.write_and_reload(&config(&mirror.jwks_uri(), "", true))
        .await
        .expect("source reload");
    assert_eq!(mirror.jwks_hits(), 1, "fetched once, before the swap");
    assert!(gw.not_ready().is_empty(), "{:?}", gw.not_ready());
    assert!(!shares_first());
    assert_eq!(call(token, "/carry/x").await, 200);
    assert_eq!(idp.jwks_hits(), 1);
    assert_eq!(mirror.jwks_hits(), 1);
    assert_eq!(upstream.hits(), 5);
}

#[tokio::test]
async fn reload_to_a_key_source_that_fails_swaps_anyway_and_readiness_says_so() {
    let key = Key::es256("carry-2");
    let idp = TestIdp::with_keys(&[&key]).await;
    let down = TestIdp::with_keys(&[&key]).await;
    down.set_failure(Failure::Down);
    let upstream = Upstream::echo().await;
    let gw = FileGateway::start(&carry_config(&idp, &idp.jwks_uri(), &upstream, "", false)).await;
    eventually("issuer ready", || gw.not_ready().is_empty()).await;

    let started = Instant::now();
    gw.write_and_reload(&carry_config(
        &idp,
        &down.jwks_uri(),
        &upstream,
        "jwks_timeout_ms = 300",
        true,
    ))
    .await
    .expect("a reload whose key set cannot be fetched still applies");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the pre-swap fetch is bounded: {:?}",
        started.elapsed()
    );
    let reply = Client::h1()
        .fetch(gw.admin_addr(), request("GET", "/readyz"))
        .await;
    assert_eq!(reply.status, 503);
    assert!(
        reply.json()["issuers"]["carry"].is_string(),
        "{:?}",
        reply.json()
    );
    let token = key.token(&claims(&idp.issuer(), AUD));
    let reply = gw
        .send(&Client::h1(), bearer("GET", "/carry-more/x", &token))
        .await;
    assert_eq!(
        reply.status, 503,
        "the new rules serve, with no key set yet"
    );

    down.set_failure(Failure::None);
    eventually("issuer ready once the source answers", || {
        gw.not_ready().is_empty()
    })
    .await;
    let reply = gw
        .send(&Client::h1(), bearer("GET", "/carry-more/x", &token))
        .await;
    assert_eq!(reply.status, 200);
}

/// A load task for [`reload_changing_an_issuer_under_load_never_answers_other_than_200`]:
/// `GET /carry/ID` with `token` until `stop`, at most 3,000 requests or 15 s.
async fn token_load(
    mode: Mode,
    task: usize,
    addr: SocketAddr,
    token: Arc<String>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
) -> (usize, Vec<String>) {
    const MAX_REQUESTS: usize = 3_000;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut conn = Conn::open(mode, addr).await;
    let (mut ok, mut bad) = (0, Vec::new());
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) && n < MAX_REQUESTS && Instant::now() < deadline {
        let id = format!("t{task}-{n}");
        n += 1;
        match conn
            .get_as(addr, &format!("/carry/{id}"), Some(&token))
            .await
        {
            Ok(reply) if reply.status == 200 => ok += 1,
            Ok(reply) => bad.push(format!(
                "{mode:?} {id}: status {} {:?}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            )),
            Err(e) => bad.push(format!("{mode:?} {id}: transport error {e}")),
        }
        done.fetch_add(1, Ordering::SeqCst);
    }
    (ok, bad)
}

/// Clients loop on a protected route while the configuration flips, ten
/// times, only `leeway_s` (the key set is carried over), then, ten times,
/// the `jwks_uri` between two identity providers publishing the same key
/// (the new set is fetched before the swap). Each key-set answer takes
/// 150 ms, so any window without keys would show as 503s. The identity
/// cache is off: every request is verified against the current key set.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_changing_an_issuer_under_load_never_answers_other_than_200() {
    let key = Key::es256("flip-1");
    let a = TestIdp::with_keys(&[&key]).await;
    let b = TestIdp::with_keys(&[&key]).await;
    for idp in [&a, &b] {
        idp.set_jwks_delay(Duration::from_millis(150));
    }
    let upstream = Upstream::echo().await;
    let config = |uri: &str, leeway: u64| {
        format!(
            "[server]\nidentity_cache_size = 0\n{}",
            carry_config(&a, uri, &upstream, &format!("leeway_s = {leeway}"), false)
        )
    };
    let gw = FileGateway::start(&config(&a.jwks_uri(), 60)).await;
    eventually("issuer ready", || gw.not_ready().is_empty()).await;
    let token = Arc::new(key.token(&claims(&a.issuer(), AUD)));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let modes = [
        Mode::FreshH1,
        Mode::FreshH2,
        Mode::KeepAliveH1,
        Mode::KeepAliveH2,
    ];
    let tasks: Vec<_> = modes
        .iter()
        .enumerate()
        .map(|(i, &mode)| {
            tokio::spawn(token_load(
                mode,
                i,
                gw.addr(),
                token.clone(),
                stop.clone(),
                done.clone(),
            ))
        })
        .collect();
    let progress = |from: usize| {
        let done = done.clone();
        async move {
            eventually("load progress", || done.load(Ordering::SeqCst) >= from + 8).await;
        }
    };

    progress(0).await;
    for flip in 0..10 {
        let leeway = if flip % 2 == 0 { 30 } else { 60 };
        gw.write_and_reload(&config(&a.jwks_uri(), leeway))
            .await
            .unwrap_or_else(|e| panic!("leeway flip {flip}: {e}"));
        progress(done.load(Ordering::SeqCst)).await;
    }
    assert_eq!(a.jwks_hits(), 1, "a leeway change fetches nothing");
    for flip in 0..10 {
        let uri = if flip % 2 == 0 {
            b.jwks_uri()
        } else {
            a.jwks_uri()
        };
        gw.write_and_reload(&config(&uri, 60))
            .await
            .unwrap_or_else(|e| panic!("jwks_uri flip {flip}: {e}"));
        progress(done.load(Ordering::SeqCst)).await;
    }
    stop.store(true, Ordering::SeqCst);

    let (mut ok, mut bad) = (0, Vec::new());
    for task in tasks {
        let (n, b) = within("load task", task).await.expect("load task panicked");
        ok += n;
        bad.extend(b);
    }
    assert!(
        bad.is_empty(),
        "{} non-200 answers of {}, first: {:?}",
        bad.len(),
        ok + bad.len(),
        &bad[..bad.len().min(5)]
    );
    assert_eq!(upstream.hits(), ok);
    assert_eq!(a.jwks_hits(), 1 + 5, "one fetch per switch to A");
    assert_eq!(b.jwks_hits(), 5, "one fetch per switch to B");
}

// ---------------------------------------------------------------------------
// TLS certificate replacement

#[tokio::test]
async fn reload_serves_a_replaced_certificate_to_new_connections_only() {
    let ca = TestCa::new();
    let first = ca.leaf("tokengate-first", 1001);
    let second = ca.leaf("tokengate-second", 1002);
    assert_ne!(first.der, second.der);
    let dir = tempfile::tempdir().expect("tempdir");
    first.install(dir.path());
    let upstream = Upstream::echo().await;
    let toml = format!(
        r#"
[server]
tls_cert = "server.pem"
tls_key = "server.key"

[upstreams.tls_echo]
url = "{}"

[[routes]]
path = "/tls-reload/**"
upstream = "tls_echo"
auth = "none"
"#,
        upstream.url()
    );
    let gw = FileGateway::start_in(dir, &toml).await;
    let authority = format!("localhost:{}", gw.addr().port());
    let get = |path: &str| {
        Request::get(path)
            .header("host", &authority)
            .body(empty())
            .expect("request")
    };

    let (tls, leaf) = ca.connect(gw.addr(), &[b"http/1.1"]).await;
    assert_eq!(leaf, first.der, "the first certificate before reload");
    let (mut old, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    let reply = Reply::read(
        within("old conn", old.send_request(get("/tls-reload/a")))
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(reply.status, 200);

    second.install(gw.dir());
    gw.reload().await.expect("reload with the new certificate");

    for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
        let (tls, leaf) = ca.connect(gw.addr(), &[alpn]).await;
        assert_eq!(
            leaf, second.der,
            "a new connection ({alpn:?}) gets the new certificate"
        );
        let h2 = alpn == b"h2";
        let resp = send_on(tls, h2, "https", &authority, get("/tls-reload/b"))
            .await
            .expect("request on a new connection");
        assert_eq!(Reply::read(resp).await.status, 200);
    }

    // The connection made before the reload keeps working.
    within("old conn ready", old.ready())
        .await
        .expect("old connection still open");
    let reply = Reply::read(
        within("old conn", old.send_request(get("/tls-reload/c")))
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.hits(), 4);
}

// ---------------------------------------------------------------------------
// watch_config

fn watch_config(url: &str, padding: usize) -> String {
    format!(
        "[server]\nwatch_config = true\n\n[upstreams.watch_up]\nurl = \"{url}\"\n\n\
         [[routes]]\npath = \"/watch/**\"\nupstream = \"watch_up\"\nauth = \"none\"\n\
         # {}\n",
        "-".repeat(padding)
    )
}

/// Sends requests (all must succeed) until `to` has answered one; fails
/// after `limit`.
async fn until_served_by(gw: &FileGateway, to: &Upstream, limit: Duration) {
    let started = Instant::now();
    while to.hits() == 0 {
        assert!(
            started.elapsed() < limit,
            "the rewritten file was not loaded within {limit:?}"
        );
        assert_eq!(gw.get("/watch/x").await.status, 200, "serving throughout");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gw.get("/watch/y").await.status, 200);
    assert_eq!(to.last().target(), "/watch/y", "the new upstream serves");
}

#[tokio::test]
async fn watch_config_reloads_a_rewritten_file_within_seconds() {
    let a = Upstream::echo().await;
    let b = Upstream::echo().await;
    let gw = FileGateway::start(&watch_config(&a.url(), 1)).await;
    assert_eq!(gw.get("/watch/x").await.status, 200);
    assert_eq!(a.hits(), 1);
    // A different size: see the next test for a rewrite of the same size.
    gw.write(&watch_config(&b.url(), 2));
    until_served_by(&gw, &b, Duration::from_secs(5)).await;
}

/// The watcher compares (mtime, size) only. File timestamps come from a
/// coarse clock (a few milliseconds here), so a same-size rewrite within
/// one tick, or by a tool that preserves mtimes, keeps the stamp, and the
/// change is never loaded. The mtime is pinned here to make that tick
/// collision deterministic.
#[tokio::test]
async fn watch_config_reloads_a_same_size_rewrite_with_an_equal_mtime() {
    let a = Upstream::echo().await;
    let b = Upstream::echo().await;
    let (first, second) = (watch_config(&a.url(), 8), watch_config(&b.url(), 8));
    let pad = first.len().abs_diff(second.len());
    let (first, second) = if first.len() < second.len() {
        (watch_config(&a.url(), 8 + pad), second)
    } else {
        (first, watch_config(&b.url(), 8 + pad))
    };
    assert_eq!(first.len(), second.len());
    let gw = FileGateway::start(&first).await;
    assert_eq!(gw.get("/watch/x").await.status, 200);
    let mtime = std::fs::metadata(gw.path())
        .and_then(|m| m.modified())
        .expect("mtime");
    gw.write(&second);
    std::fs::File::options()
        .write(true)
        .open(gw.path())
        .and_then(|f| f.set_modified(mtime))
        .expect("pin mtime");
    until_served_by(&gw, &b, Duration::from_secs(4)).await;
}

// ---------------------------------------------------------------------------
// /metrics

const M_ROUTES: [&str; 6] = [
    "/m/ok/**",
    "/m/admin/**",
    "/m/down/**",
    "/m/get-only",
    "/m/broken/**",
    "-",
];

fn requests_total(s: &Scrape, route: &str, outcome: &str) -> f64 {
    s.value(
        "tokengate_requests_total",
        &[("route", route), ("outcome", outcome)],
    )
}

#[tokio::test]
async fn metrics_page_has_every_series_and_counts_each_outcome_exactly() {
    let key = Key::es256("metrics-1");
    let stranger = Key::es256("metrics-1");
    let idp = TestIdp::with_keys(&[&key]).await;
    let upstream = Upstream::echo().await;
    let closed = closed_port().await;
    let toml = format!(
        r#"
[admin]
listen = "127.0.0.1:0"

[issuers.metrics_jwt]
issuer = "{iss}"
jwks_uri = "{jwks}"
audiences = ["{AUD}"]

[issuers.metrics_opaque]
issuer = "https://metrics-opaque.test/"
audiences = ["{AUD}"]
[issuers.metrics_opaque.introspection]
endpoint = "{introspect}"
client_id = "gateway"
client_secret = "metrics-secret"

[issuers.metrics_down]
issuer = "https://metrics-down.test/"
audiences = ["{AUD}"]
[issuers.metrics_down.introspection]
endpoint = "http://127.0.0.1:{closed}/introspect"
client_id = "gateway"
client_secret = "metrics-secret"
timeout_ms = 2000

[upstreams.metrics_echo]
url = "{up}"

[upstreams.metrics_broken]
url = "http://127.0.0.1:{closed}"
connect_timeout_ms = 2000

[[routes]]
path = "/m/ok/**"
upstream = "metrics_echo"
scopes = ["read"]
issuers = ["metrics_jwt", "metrics_opaque"]

[[routes]]
path = "/m/admin/**"
upstream = "metrics_echo"
scopes = ["admin"]
issuers = ["metrics_jwt"]

[[routes]]
path = "/m/down/**"
upstream = "metrics_echo"
issuers = ["metrics_down"]

[[routes]]
path = "/m/get-only"
methods = ["GET"]
upstream = "metrics_echo"
auth = "none"

[[routes]]
path = "/m/broken/**"
upstream = "metrics_broken"
auth = "none"
"#,
        iss = idp.issuer(),
        jwks = idp.jwks_uri(),
        introspect = idp.introspection_endpoint(),
        up = upstream.url(),
    );
    let gw = FileGateway::start(&toml).await;
    eventually("issuers ready", || gw.not_ready().is_empty()).await;

    let jwt = key.token(&claims(&idp.issuer(), AUD));
    let forged = key
        .jwt(&claims(&idp.issuer(), AUD))
        .signed_by(&stranger)
        .encode();
    let active = "metrics-opaque-active";
    idp.set_introspection(
        active,
        json!({"active": true, "sub": "op-user", "scope": "read", "exp": now() + 300}),
    );

    let before = gw.scrape().await;
    // (route label, outcome, status, request, h2)
    let calls: Vec<(&str, &str, u16, Request<Body>, bool)> = vec![
        (
            "/m/ok/**",
            "forwarded",
            200,
            bearer("GET", "/m/ok/a", &jwt),
            false,
        ),
        (
            "/m/ok/**",
            "forwarded",
            200,
            bearer("GET", "/m/ok/b", &jwt),
            true,
        ),
        (
            "/m/ok/**",
            "forwarded",
            200,
            bearer("GET", "/m/ok/c", active),
            false,
        ),
        (
            "/m/ok/**",
            "forwarded",
            200,
            bearer("GET", "/m/ok/d", active),
            true,
        ),
        (
            "/m/ok/**",
            "missing_token",
            401,
            request("GET", "/m/ok/e"),
            false,
        ),
        (
            "/m/ok/**",
            "invalid_request",
            400,
            bearer("GET", "/m/ok/f", "a b"),
            false,
        ),
        (
            "/m/ok/**",
            "invalid_token",
            401,
            bearer("GET", "/m/ok/g", &forged),
            false,
        ),
        (
            "/m/ok/**",
            "invalid_token",
            401,
            bearer("GET", "/m/ok/h", "metrics-opaque-inactive"),
            false,
        ),
        (
            "/m/admin/**",
            "insufficient_scope",
            403,
            bearer("GET", "/m/admin/x", &jwt),
            false,
        ),
        (
            "/m/down/**",
            "unavailable",
            503,
            bearer("GET", "/m/down/x", "metrics-opaque-down"),
            false,
        ),
        ("-", "not_found", 404, request("GET", "/m-nowhere"), false),
        (
            "-",
            "method_not_allowed",
            405,
            request("POST", "/m/get-only"),
            true,
        ),
        (
            "/m/get-only",
            "forwarded",
            200,
            request("GET", "/m/get-only"),
            false,
        ),
        (
            "/m/broken/**",
            "upstream_error",
            502,
            request("GET", "/m/broken/x"),
            false,
        ),
    ];
    let mut expected: HashMap<(&str, &str), f64> = HashMap::new();
    let mut per_route: HashMap<&str, f64> = HashMap::new();
    for (route, outcome, status, req, h2) in calls {
        let what = format!("{} {}", req.method(), req.uri());
        let client = if h2 { Client::h2() } else { Client::h1() };
        let reply = gw.send(&client, req).await;
        assert_eq!(
            reply.status.as_u16(),
            status,
            "{what}: {:?}",
            String::from_utf8_lossy(&reply.body)
        );
        *expected.entry((route, outcome)).or_default() += 1.0;
        *per_route.entry(route).or_default() += 1.0;
    }
    // A connection held open while scraping.
    let mut held = RawConn::connect(gw.addr()).await;
    held.write(b"GET /m/get-only HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(held.response().await.status, 200);
    *expected.entry(("/m/get-only", "forwarded")).or_default() += 1.0;
    *per_route.entry("/m/get-only").or_default() += 1.0;
    // Makes the reload counter exist in this process.
    gw.reload().await.expect("reload of an unchanged file");

    let after = gw.scrape().await;
    for route in M_ROUTES {
        for outcome in OUTCOMES {
            let want = expected.get(&(route, outcome)).copied().unwrap_or(0.0);
            let got =
                requests_total(&after, route, outcome) - requests_total(&before, route, outcome);
            assert_eq!(
                got, want,
                "tokengate_requests_total{{route={route:?},outcome={outcome:?}}}"
            );
        }
    }
    for outcome in OUTCOMES {
        assert!(
            after.has(
                "tokengate_requests_total",
                &[("route", "/m/ok/**"), ("outcome", outcome)]
            ),
            "series for outcome {outcome}"
        );
    }
    assert_eq!(after.kind("tokengate_requests_total"), Some("counter"));

    // Histograms: buckets, sum and count, one observation per request.
    for (family, label, value, want) in [
        (
            "tokengate_request_duration_seconds",
            "route",
            "/m/ok/**",
            per_route["/m/ok/**"],
        ),
        (
            "tokengate_request_duration_seconds",
            "route",
            "-",
            per_route["-"],
        ),
        (
            "tokengate_upstream_duration_seconds",
            "upstream",
            "metrics_echo",
            expected[&("/m/ok/**", "forwarded")] + expected[&("/m/get-only", "forwarded")],
        ),
        (
            "tokengate_upstream_duration_seconds",
            "upstream",
            "metrics_broken",
            1.0,
        ),
    ] {
        assert_eq!(after.kind(family), Some("histogram"), "{family}");
        let labels = [(label, value)];
        let count = format!("{family}_count");
        let got = after.value(&count, &labels) - before.value(&count, &labels);
        assert_eq!(got, want, "{count}{{{label}={value:?}}}");
        let inf = [(label, value), ("le", "+Inf")];
        let bucket = format!("{family}_bucket");
        assert_eq!(
            after.value(&bucket, &inf),
            after.value(&count, &labels),
            "{bucket} le=+Inf equals the count"
        );
        assert!(
            after.find(&bucket, &labels).len() > 2,
            "{bucket}: several buckets"
        );
        assert!(after.has(&format!("{family}_sum"), &labels), "{family}_sum");
    }

    // Key sets.
    assert_eq!(
        after.value(
            "tokengate_jwks_fetches_total",
            &[("issuer", "metrics_jwt"), ("result", "ok")]
        ),
        idp.jwks_hits() as f64
    );
    let age = after.find("tokengate_jwks_age_seconds", &[("issuer", "metrics_jwt")]);
    assert_eq!(age.len(), 1, "one age gauge for the issuer");
    assert!((0.0..60.0).contains(&age[0].value), "age {}", age[0].value);
    assert_eq!(after.kind("tokengate_jwks_age_seconds"), Some("gauge"));

    // Introspection: one call per cache miss, by result.
    let intro = |s: &Scrape, issuer: &str, result: &str| {
        s.value(
            "tokengate_introspection_requests_total",
            &[("issuer", issuer), ("result", result)],
        )
    };
    assert_eq!(intro(&after, "metrics_opaque", "active"), 1.0);
    assert_eq!(intro(&after, "metrics_opaque", "inactive"), 1.0);
    assert_eq!(intro(&after, "metrics_down", "connect_error"), 1.0);
    assert_eq!(
        after.value(
            "tokengate_introspection_requests_total",
            &[("issuer", "metrics_down")]
        ),
        1.0
    );

    // Caches.
    let cache = |s: &Scrape, name: &str, cache: &str| s.value(name, &[("cache", cache)]);
    for (name, kind, at_least) in [
        ("tokengate_cache_hits_total", "identity", 2.0),
        ("tokengate_cache_misses_total", "identity", 2.0),
    ] {
        let got = cache(&after, name, kind) - cache(&before, name, kind);
        assert!(got >= at_least, "{name}{{cache={kind:?}}} moved by {got}");
    }
    // No other test of this binary introspects: these are exact.
    let hits = "tokengate_cache_hits_total";
    let misses = "tokengate_cache_misses_total";
    assert_eq!(
        cache(&after, hits, "introspection") - cache(&before, hits, "introspection"),
        1.0
    );
    assert_eq!(
        cache(&after, misses, "introspection") - cache(&before, misses, "introspection"),
        3.0
    );

    // Connections and reloads.
    let open = after.find("tokengate_open_connections", &[]);
    assert_eq!(open.len(), 1);
    assert!(
        open[0].value >= 1.0,
        "the held connection is open: {}",
        open[0].value
    );
    assert_eq!(after.kind("tokengate_open_connections"), Some("gauge"));
    assert!(reloads(&after, "ok") - reloads(&before, "ok") >= 1.0);
    assert!(after.has("tokengate_config_reloads_total", &[("result", "ok")]));
    drop(held);
}

// ---------------------------------------------------------------------------
// /readyz and /healthz

#[tokio::test]
async fn readyz_names_the_issuer_that_is_not_ready_while_healthz_is_200() {
    let key = Key::es256("ready-1");
    let idp = TestIdp::with_keys(&[&key]).await;
    idp.set_failure(Failure::Down);
    let dir = tempfile::tempdir().expect("tempdir");
    let file_key = Key::es256("ready-file");
    std::fs::write(
        dir.path().join("jwks.json"),
        json!({ "keys": [file_key.jwk()] }).to_string(),
    )
    .expect("write key set");
    let upstream = Upstream::echo().await;
    let toml = format!(
        r#"
[admin]
listen = "127.0.0.1:0"

[issuers.ready_remote]
issuer = "{}"
jwks_uri = "{}"
audiences = ["{AUD}"]
jwks_refresh_s = 1
jwks_timeout_ms = 500

[issuers.ready_file]
issuer = "https://ready-file.test/"
jwks_file = "jwks.json"
audiences = ["{AUD}"]

[upstreams.ready_echo]
url = "{}"

[[routes]]
path = "/ready/**"
upstream = "ready_echo"
"#,
        idp.issuer(),
        idp.jwks_uri(),
        upstream.url()
    );
    let gw = Gateway::start_in(&toml, dir.path()).await;
    eventually("a first key-set fetch attempt", || idp.total_hits() >= 1).await;

    let health = |path: &'static str| {
        let addr = gw.admin_addr();
        async move { Client::h1().fetch(addr, request("GET", path)).await }
    };
    let reply = readyz(&gw).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["status"], "not_ready", "{body}");
    let issuers = body["issuers"].as_object().expect("issuers object");
    assert_eq!(
        issuers.keys().collect::<Vec<_>>(),
        ["ready_remote"],
        "only the issuer without keys: {body}"
    );
    let reason = issuers["ready_remote"].as_str().expect("reason text");
    assert!(reason.contains("key set"), "a reason: {reason}");
    let healthz = health("/healthz").await;
    assert_eq!(healthz.status, 200, "alive while not ready");
    assert_eq!(healthz.json()["status"], "ok");

    idp.set_failure(Failure::None);
    wait_ready(&gw).await;
    let reply = readyz(&gw).await;
    assert_eq!(reply.json(), json!({"status": "ready"}));
    assert_eq!(health("/healthz").await.status, 200);
}
