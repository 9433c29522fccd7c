//! Rate limits through real sockets (extensions section 12, behavior.md
//! section 14): exactly `requests` pass, then 429 with `Retry-After` and
//! the draft's `RateLimit-Policy`/`RateLimit` headers, which allowed
//! answers carry too; each key has its own allowance; only requests that
//! passed authentication and scopes count; an anonymous request falls back
//! to its address. With a real `redis-server`: two gateways share one
//! limit, and a gateway whose Redis dies keeps serving and limiting.
//! Every refusal is checked at the upstream too.

mod common;

use common::assert::{assert_forwarded, assert_insufficient_scope, assert_status, text};
use common::idp::{issuer_table, readyz, wait_ready, TestIdp};
use common::mint::{claims, now, with, Key, AUD};
use common::ops::scrape;
use common::redis_server::RedisServer;
use common::{
    authorized, get_with, test_clock, Client, Gateway, GatewayConfig, Reply, Route, Upstream,
};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use tokengate::clock::Clock;
use tokengate::config::Config;

/// `[rate_limits.NAME]`.
fn limit(name: &str, key: &str, requests: u64, window_s: u64) -> String {
    format!(
        "[rate_limits.\"{name}\"]\nkey = \"{key}\"\nrequests = {requests}\nwindow_s = {window_s}\n"
    )
}

/// A route to the echo upstream under the limit `name`.
fn limited(path: &str, name: &str) -> Route {
    Route::new(path, "echo").with(&format!("rate_limit = \"{name}\""))
}

struct Setup {
    idp: TestIdp,
    key: Key,
    upstream: Upstream,
    gw: Gateway,
    clock: Clock,
}

impl Setup {
    /// The gateway on a manual clock, behind a trusted proxy at 127.0.0.1
    /// (so `X-Forwarded-For` names the client), with every kind of key:
    /// `/sub/**` 3 per minute by `sub`, `/token/**` 2 by token,
    /// `/client/**` 2 by `client_id`, `/ip/**` 2 by address, `/scoped/**`
    /// 2 by `sub` and needing scope `admin`, `/optional/**` 2 by `sub` on
    /// an `optional` route. Minutes are long enough that nothing refills
    /// unless the test steps the clock.
    async fn start() -> Setup {
        let key = Key::es256("rl-1");
        let idp = TestIdp::with_keys(&[&key]).await;
        let upstream = Upstream::echo().await;
        let clock = test_clock();
        let gw = GatewayConfig::new()
            .server("trusted_proxies = [\"127.0.0.1/32\"]")
            .admin()
            .issuer(issuer_table("corp", &idp, ""))
            .upstream("echo", &upstream.url())
            .route(limited("/sub/**", "by_sub").with("methods = [\"GET\"]"))
            .route(limited("/token/**", "by_token"))
            .route(limited("/client/**", "by_client"))
            .route(limited("/ip/**", "by_ip"))
            .route(limited("/scoped/**", "scoped").scopes(&["admin"]))
            .route(limited("/optional/**", "optional").auth("optional"))
            .raw(&limit("by_sub", "sub", 3, 60))
            .raw(&limit("by_token", "token", 2, 60))
            .raw(&limit("by_client", "client_id", 2, 60))
            .raw(&limit("by_ip", "ip", 2, 60))
            .raw(&limit("scoped", "sub", 2, 60))
            .raw(&limit("optional", "sub", 2, 60))
            .start_on(&clock)
            .await;
        wait_ready(&gw).await;
        Setup {
            idp,
            key,
            upstream,
            gw,
            clock,
        }
    }

    /// A token of issuer `corp` with `changes` to the usual claims (`sub`
    /// alice, `client_id` app-1, scopes read and write).
    fn token(&self, changes: Value) -> String {
        self.key
            .token(&with(&claims(&self.idp.issuer(), AUD), changes))
    }

    async fn call(&self, path: &str, token: &str) -> Reply {
        self.gw.call(path, token).await
    }

    /// `GET path` with the token, as the client at `ip` behind the proxy.
    async fn call_from(&self, path: &str, token: Option<&str>, ip: &str) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("x-forwarded-for", ip)];
        if let Some(auth) = &auth {
            headers.push(("authorization", auth));
        }
        self.gw.send(&Client::h1(), get_with(path, &headers)).await
    }
}

/// A forwarded answer with both headers: `RateLimit-Policy` exactly
/// `policy`, `RateLimit` exactly `"<name>";r=<remaining>;t=<t>`.
fn assert_allowed(reply: &Reply, policy: &str, state: &str, what: &str) {
    assert_forwarded(reply, what);
    assert_eq!(reply.header_all("ratelimit-policy"), [policy], "{what}");
    assert_eq!(reply.header_all("ratelimit"), [state], "{what}");
}

/// 429 `rate_limited` in the shape of every gateway error, no challenge,
/// `Retry-After` of `retry_after` seconds and both headers.
fn assert_limited(reply: &Reply, policy: &str, state: &str, retry_after: &str, what: &str) {
    let body = reply.gateway_error(429);
    assert_eq!(body["error"], "rate_limited", "{what}: {body}");
    assert!(reply.header("www-authenticate").is_none(), "{what}");
    assert_eq!(reply.header("retry-after"), Some(retry_after), "{what}");
    assert_eq!(reply.header_all("ratelimit-policy"), [policy], "{what}");
    assert_eq!(reply.header_all("ratelimit"), [state], "{what}");
}

const SUB_POLICY: &str = "\"by_sub\";q=3;w=60";

#[tokio::test]
async fn exactly_the_limit_passes_then_429_until_the_allowance_refills() {
    let s = Setup::start().await;
    let token = s.token(json!({}));
    // 3 per 60 s: one request every 20 s, a burst of 3.
    for (i, state) in ["r=2;t=0", "r=1;t=0", "r=0;t=20"].iter().enumerate() {
        let reply = s.call("/sub/a", &token).await;
        let state = format!("\"by_sub\";{state}");
        assert_allowed(&reply, SUB_POLICY, &state, &format!("request {i}"));
    }
    for i in 0..3 {
        let reply = s.call("/sub/a", &token).await;
        assert_limited(
            &reply,
            SUB_POLICY,
            "\"by_sub\";r=0;t=20",
            "20",
            &format!("over {i}"),
        );
    }
    assert_eq!(s.upstream.hits(), 3, "the upstream never saw a 429");
    // A refused request costs nothing; the allowance refills one request
    // per 20 s, not all at once.
    s.clock.advance(Duration::from_millis(19_500));
    let reply = s.call("/sub/a", &token).await;
    assert_limited(&reply, SUB_POLICY, "\"by_sub\";r=0;t=1", "1", "0.5 s early");
    s.clock.advance(Duration::from_millis(500));
    let reply = s.call("/sub/a", &token).await;
    assert_allowed(&reply, SUB_POLICY, "\"by_sub\";r=0;t=20", "refilled");
    assert_eq!(s.call("/sub/a", &token).await.status, 429);
    s.clock.advance(Duration::from_secs(60));
    for i in 0..3 {
        assert_forwarded(&s.call("/sub/a", &token).await, &format!("window {i}"));
    }
    assert_eq!(s.call("/sub/a", &token).await.status, 429);
    assert_eq!(s.upstream.hits(), 7);
}

#[tokio::test]
async fn each_key_is_counted_apart() {
    let s = Setup::start().await;
    let alice = s.token(json!({}));
    let alice_again = s.token(json!({}));
    let bob = s.token(json!({"sub": "bob"}));
    let bob_other_app = s.token(json!({"sub": "bob", "client_id": "app-2"}));

    // sub: alice's two tokens share one allowance, bob has his own.
    for _ in 0..3 {
        assert_forwarded(&s.call("/sub/x", &alice).await, "alice");
    }
    assert_eq!(s.call("/sub/x", &alice_again).await.status, 429);
    assert_forwarded(&s.call("/sub/x", &bob).await, "bob");

    // token: each token alone.
    for _ in 0..2 {
        assert_forwarded(&s.call("/token/x", &alice).await, "token 1");
    }
    assert_eq!(s.call("/token/x", &alice).await.status, 429);
    assert_forwarded(&s.call("/token/x", &alice_again).await, "token 2");

    // client_id: alice and bob use app-1 together; app-2 is apart.
    assert_forwarded(&s.call("/client/x", &alice).await, "app-1 alice");
    assert_forwarded(&s.call("/client/x", &bob).await, "app-1 bob");
    assert_eq!(s.call("/client/x", &alice_again).await.status, 429);
    assert_forwarded(&s.call("/client/x", &bob_other_app).await, "app-2");

    // ip: the client address after the trusted proxy, whoever the token is.
    let from = |ip| s.call_from("/ip/x", Some(&alice), ip);
    assert_forwarded(&from("192.0.2.1").await, "192.0.2.1");
    let reply = s.call_from("/ip/x", Some(&bob), "192.0.2.1").await;
    assert_forwarded(&reply, "192.0.2.1 as bob");
    assert_eq!(from("192.0.2.1").await.status, 429);
    assert_forwarded(&from("192.0.2.2").await, "192.0.2.2");
    // The address a trusted proxy appends after the client's own claim.
    let spoofed = s
        .call_from("/ip/x", Some(&alice), "192.0.2.2, 192.0.2.1")
        .await;
    assert_eq!(
        spoofed.status,
        429,
        "counted as 192.0.2.1: {}",
        text(&spoofed)
    );

    // A token without the claim a limit is keyed by counts by address.
    let no_sub = s.token(json!({"sub": null}));
    let reply = s.call_from("/sub/y", Some(&no_sub), "192.0.2.7").await;
    assert_allowed(&reply, SUB_POLICY, "\"by_sub\";r=2;t=0", "no sub");
    let anonymous_twin = s.token(json!({"sub": null, "client_id": "app-9"}));
    let reply = s
        .call_from("/sub/y", Some(&anonymous_twin), "192.0.2.7")
        .await;
    assert_allowed(&reply, SUB_POLICY, "\"by_sub\";r=1;t=0", "same address");
    assert_eq!(s.upstream.hits(), 15);
}

#[tokio::test]
async fn refused_requests_neither_count_nor_get_429() {
    let s = Setup::start().await;
    let good = s.token(json!({"scope": "admin"}));
    let weak = s.token(json!({}));
    let expired = s.token(json!({"exp": now() - 3600}));
    for round in 0..4 {
        let what = |w: &str| format!("{w} in round {round}");
        let missing = s.gw.get("/scoped/x").await;
        assert_status(&missing, 401, &what("no token"));
        let invalid = s.call("/scoped/x", &expired).await;
        assert_status(&invalid, 401, &what("expired token"));
        let scope = s.call("/scoped/x", &weak).await;
        assert_insufficient_scope(&scope, "admin");
        let method =
            s.gw.send(&Client::h1(), authorized("POST", "/sub/x", &good))
                .await;
        assert_status(&method, 405, &what("method"));
        for refused in [&missing, &invalid, &scope, &method] {
            assert!(refused.header("ratelimit").is_none(), "{}", what("headers"));
            assert!(refused.header("ratelimit-policy").is_none());
        }
    }
    let policy = "\"scoped\";q=2;w=60";
    let first = s.call("/scoped/x", &good).await;
    assert_allowed(&first, policy, "\"scoped\";r=1;t=0", "first");
    let second = s.call("/scoped/x", &good).await;
    assert_allowed(&second, policy, "\"scoped\";r=0;t=30", "second");
    let third = s.call("/scoped/x", &good).await;
    assert_limited(&third, policy, "\"scoped\";r=0;t=30", "30", "third");
    // The weak token of the same subject is still refused for its scope,
    // never with 429.
    assert_insufficient_scope(&s.call("/scoped/x", &weak).await, "admin");
    assert_eq!(s.gw.get("/scoped/x").await.status, 401);
    // Nothing refused on /sub/** (405) or routed nowhere (404) counted
    // either.
    let unrouted = s.call("/nowhere", &good).await;
    assert_status(&unrouted, 404, "no route");
    assert!(unrouted.header("ratelimit").is_none());
    let reply = s.call("/sub/x", &good).await;
    assert_allowed(&reply, SUB_POLICY, "\"by_sub\";r=2;t=0", "after the 405s");
    assert_eq!(s.upstream.hits(), 3);
}

#[tokio::test]
async fn anonymous_requests_on_an_optional_route_count_by_address() {
    let s = Setup::start().await;
    let policy = "\"optional\";q=2;w=60";
    let a = |token| s.call_from("/optional/x", token, "198.51.100.1");
    let first = a(None).await;
    assert_allowed(&first, policy, "\"optional\";r=1;t=0", "anonymous 1");
    assert_forwarded(&a(None).await, "anonymous 2");
    let third = a(None).await;
    assert_limited(&third, policy, "\"optional\";r=0;t=30", "30", "anonymous 3");
    // Another address has its own allowance; a token from the exhausted
    // address is counted by its subject.
    let other = s.call_from("/optional/x", None, "198.51.100.2").await;
    assert_forwarded(&other, "other address");
    let alice = s.token(json!({}));
    let reply = a(Some(&alice)).await;
    assert_allowed(&reply, policy, "\"optional\";r=1;t=0", "alice");
    assert_eq!(s.upstream.hits(), 4);
}

/// Also the one test of the `/peer/**` route's metrics (the recorder is
/// shared by every test of this binary).
#[tokio::test]
async fn without_a_trusted_proxy_the_peer_is_the_address() {
    let upstream = Upstream::echo().await;
    let key = Key::es256("rl-2");
    let idp = TestIdp::with_keys(&[&key]).await;
    let gw = GatewayConfig::new()
        .admin()
        .issuer(issuer_table("corp", &idp, ""))
        .upstream("echo", &upstream.url())
        .route(limited("/peer/**", "by_ip"))
        .raw(&limit("by_ip", "ip", 2, 3600))
        .start()
        .await;
    wait_ready(&gw).await;
    let token = key.token(&claims(&idp.issuer(), AUD));
    let mut statuses = Vec::new();
    for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        let auth = format!("Bearer {token}");
        let req = get_with(
            "/peer/x",
            &[("x-forwarded-for", ip), ("authorization", &auth)],
        );
        statuses.push(gw.send(&Client::h1(), req).await.status.as_u16());
    }
    assert_eq!(
        statuses,
        [200, 200, 429],
        "a client cannot name its own address"
    );
    assert_eq!(upstream.hits(), 2);
    let metrics = scrape(gw.admin_addr()).await;
    let count = |outcome| {
        metrics.value(
            "tokengate_requests_total",
            &[("route", "/peer/**"), ("outcome", outcome)],
        )
    };
    assert_eq!((count("forwarded"), count("rate_limited")), (2.0, 1.0));
}

#[test]
fn configuration_refusals_name_the_key() {
    let base = "[upstreams.echo]\nurl = \"http://127.0.0.1:9\"\n\
                [issuers.corp]\nissuer = \"https://idp.test/\"\n\
                jwks_uri = \"https://idp.test/jwks\"\naudiences = [\"api\"]\n";
    let route =
        |extra: &str| format!("[[routes]]\npath = \"/a/**\"\nupstream = \"echo\"\n{extra}\n");
    let cases = [
        (route("rate_limit = \"nope\""), "routes[0].rate_limit"),
        (
            route("auth = \"none\"\nrate_limit = \"ok\"") + &limit("ok", "sub", 1, 1),
            "routes[0].rate_limit",
        ),
        (limit("ok", "email", 1, 1), "rate_limits.ok.key"),
        (limit("ok", "sub", 0, 1), "rate_limits.ok.requests"),
        (limit("ok", "sub", 1, 0), "rate_limits.ok.window_s"),
        (limit("ok", "sub", 1, 86_401), "rate_limits.ok.window_s"),
        (limit("two words", "sub", 1, 1), "rate_limits.two words"),
        (limit("caf\u{e9}", "sub", 1, 1), "rate_limits.caf\u{e9}"),
    ];
    for (extra, key) in cases {
        let text = format!("{base}{extra}");
        let errors = match Config::from_toml(&text, Path::new("."), Vec::new()) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.0,
        };
        assert!(
            errors.iter().any(|e| e.key == key),
            "{key} not among {errors:?}"
        );
    }
    let fine = format!(
        "{base}{}{}",
        route("rate_limit = \"a.b-c_1\""),
        limit("a.b-c_1", "token", 1_000_000_000, 86_400)
    );
    assert!(Config::from_toml(&fine, Path::new("."), Vec::new()).is_ok());
}

/// Two gateways on one Redis, both connected, each with the `/sub/**`
/// route under `by_sub` (`requests` per hour by `sub`).
async fn fleet(redis: &RedisServer, prefix: &str, requests: u64) -> (Setup, Gateway) {
    let (s, mut others) = fleet_of(redis, prefix, requests, 2).await;
    (s, others.remove(0))
}

/// `n` such gateways: the first in the [`Setup`], the others beside it.
async fn fleet_of(
    redis: &RedisServer,
    prefix: &str,
    requests: u64,
    n: usize,
) -> (Setup, Vec<Gateway>) {
    let key = Key::es256("rl-fleet");
    let idp = TestIdp::with_keys(&[&key]).await;
    let upstream = Upstream::echo().await;
    let config = GatewayConfig::new()
        .admin()
        .issuer(issuer_table("corp", &idp, ""))
        .upstream("echo", &upstream.url())
        .route(limited("/sub/**", "by_sub"))
        .raw(&limit("by_sub", "sub", requests, 3600))
        .raw(&format!(
            "[redis]\nurl = \"{}\"\nkey_prefix = \"{prefix}\"\ntimeout_ms = 500\n",
            redis.url()
        ));
    let mut gateways = Vec::new();
    for _ in 0..n {
        let gw = config.start().await;
        wait_ready(&gw).await;
        wait_redis(&gw, "ok").await;
        gateways.push(gw);
    }
    let s = Setup {
        idp,
        key,
        upstream,
        gw: gateways.remove(0),
        clock: Clock::system(),
    };
    (s, gateways)
}

/// Three gateways on one Redis, 90 requests of one subject at once, 30
/// through each: exactly the limit of 30 is forwarded, the other 60 get
/// 429, whichever gateway they reached (the decision is one atomic script
/// in Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_hold_one_limit_under_concurrent_load() {
    let Some(redis) =
        RedisServer::start_for("three_gateways_hold_one_limit_under_concurrent_load").await
    else {
        return;
    };
    let (s, others) = fleet_of(&redis, "rl-three:", 30, 3).await;
    let token = s.token(json!({}));
    let addrs = [s.gw.addr(), others[0].addr(), others[1].addr()];
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..90 {
        let (addr, token) = (addrs[i % 3], token.clone());
        calls.spawn(async move {
            Client::h1()
                .fetch(addr, common::bearer("/sub/x", &token))
                .await
                .status
                .as_u16()
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = calls.join_next().await {
        statuses.push(status.expect("task"));
    }
    let passed = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    println!("three gateways, limit 30: {passed} forwarded, {limited} refused with 429");
    assert_eq!((passed, limited), (30, 60), "{statuses:?}");
    assert_eq!(s.upstream.hits(), 30);
}

/// Polls `/readyz` until its `redis` member is `status`.
async fn wait_redis(gw: &Gateway, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready = readyz(gw).await;
        if ready.json()["redis"] == status {
            assert_eq!(ready.status, 200, "/readyz stays 200: {}", text(&ready));
            return;
        }
        assert!(
            Instant::now() < deadline,
            "redis not {status}: {}",
            text(&ready)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn two_gateways_on_one_redis_share_the_limit() {
    let Some(redis) = RedisServer::start_for("two_gateways_on_one_redis_share_the_limit").await
    else {
        return;
    };
    let (s, other) = fleet(&redis, "rl-shared:", 4).await;
    let token = s.token(json!({}));
    let policy = "\"by_sub\";q=4;w=3600";
    let gateways = [&s.gw, &other, &s.gw, &other];
    for (i, (gw, remaining)) in gateways.iter().zip([3, 2, 1, 0]).enumerate() {
        let reply = gw.call("/sub/x", &token).await;
        assert_forwarded(&reply, &format!("request {i}"));
        assert_eq!(reply.header("ratelimit-policy"), Some(policy));
        let state = reply.header("ratelimit").expect("RateLimit");
        assert!(
            state.starts_with(&format!("\"by_sub\";r={remaining};t=")),
            "request {i}: {state}"
        );
    }
    for gw in [&s.gw, &other] {
        let reply = gw.call("/sub/x", &token).await;
        let body = reply.gateway_error(429);
        assert_eq!(body["error"], "rate_limited");
        let retry: u64 = reply
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!(
            (899..=900).contains(&retry),
            "an interval of 900 s: {retry}"
        );
    }
    assert_eq!(s.upstream.hits(), 4, "the fleet forwarded 4, not 4 each");
    // Another subject is counted apart, on either gateway.
    let bob = s.token(json!({"sub": "bob"}));
    assert_forwarded(&other.call("/sub/x", &bob).await, "bob");

    // The state is one key per subject, under the prefix, in one hash
    // slot, naming neither the subject nor the token, expiring by itself.
    let mut conn = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    let mut limit_keys: Vec<&String> = keys.iter().filter(|k| k.contains("rl:")).collect();
    limit_keys.sort();
    assert_eq!(limit_keys.len(), 2, "{keys:?}");
    for k in limit_keys {
        let digest = k
            .strip_prefix("rl-shared:rl:{by_sub:")
            .and_then(|rest| rest.strip_suffix('}'))
            .unwrap_or_else(|| panic!("key shape: {k}"));
        assert!(
            digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
            "{k}"
        );
        assert!(!k.contains("alice") && !k.contains("bob") && !k.contains(&token));
        let ttl: i64 = redis::cmd("PTTL")
            .arg(k)
            .query_async(&mut conn)
            .await
            .expect("PTTL");
        assert!(ttl > 0 && ttl <= 3_600_000, "{k}: {ttl} ms");
    }
}

#[tokio::test]
async fn a_gateway_whose_redis_dies_keeps_serving_and_limiting() {
    let Some(mut redis) =
        RedisServer::start_for("a_gateway_whose_redis_dies_keeps_serving_and_limiting").await
    else {
        return;
    };
    let (s, other) = fleet(&redis, "rl-fallback:", 4).await;
    let token = s.token(json!({}));
    // All 4 through Redis, 2 on each gateway: the last one sees the
    // fleet's count.
    for gw in [&s.gw, &other, &s.gw] {
        assert_forwarded(&gw.call("/sub/x", &token).await, "through redis");
    }
    let last = other.call("/sub/x", &token).await;
    assert_allowed(
        &last,
        "\"by_sub\";q=4;w=3600",
        "\"by_sub\";r=0;t=900",
        "shared",
    );
    redis.kill();
    // Each instance goes on alone, from its own share of what Redis
    // counted: 2 of 4 each.
    for gw in [&s.gw, &other] {
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(gw.call("/sub/x", &token).await.status.as_u16());
        }
        assert_eq!(statuses, [200, 200, 429], "Redis gone");
    }
    let refused = s.gw.call("/sub/x", &token).await;
    assert_eq!(refused.gateway_error(429)["error"], "rate_limited");
    assert!(refused.header("ratelimit").is_some());
    wait_redis(&s.gw, "unavailable").await;
    assert_eq!(s.upstream.hits(), 4 + 2 + 2);
    let metrics = scrape(s.gw.admin_addr()).await;
    assert!(metrics.value("tokengate_redis_errors_total", &[]) >= 1.0);
}
