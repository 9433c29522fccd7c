//! Redis unavailable (extensions section 11), with two `tokengate`
//! processes: while Redis is paused (`SIGSTOP`: every operation times out)
//! or killed (connections refused), requests keep being served, the
//! revoked token stays refused from the last synchronised list, `/readyz`
//! stays 200 with `"redis": "unavailable"`, `tokengate_redis_errors_total`
//! rises, and a revocation POSTed meanwhile is applied locally (201,
//! `"propagated": false`) and reaches the other replica once Redis is
//! back, without restarting anything.

use serde_json::json;
use std::time::{Duration, Instant};

use crate::common::assert::text;
use crate::common::redis_server::{redis_present, RedisServer};
use crate::common::Upstream;
use crate::replica::Replica;
use crate::support::{
    assert_revoked, call, converge, ms, start_fleet, status, Keys, CHANNEL, PROPAGATION_LIMIT,
};

/// How soon both replicas must notice Redis going or coming back: they
/// ping it every second, each ping bounded by `timeout_ms`.
const NOTICE_LIMIT: Duration = Duration::from_secs(3);
/// How soon after Redis is back a revocation made while it was away must
/// reach the other replica: noticing it (one ping, 1 s) plus one push (1 s).
const RECOVERY_LIMIT: Duration = Duration::from_secs(3);
/// Requests sent while Redis is away; they must all be answered from
/// local state, faster than one Redis timeout each.
const LOCAL_REQUESTS: usize = 20;

/// What both outage tests share up to the outage: two replicas, one token
/// revoked everywhere, and the error counters before it.
struct Before {
    a: Replica,
    b: Replica,
    revoked: String,
    fresh: String,
    errors: [f64; 2],
}

async fn before_outage(redis: &RedisServer, keys: &Keys, upstream: &Upstream) -> Before {
    let mut replicas = start_fleet(2, redis, keys, upstream).await.into_iter();
    let (a, b) = (replicas.next().expect("a"), replicas.next().expect("b"));
    let revoked = keys.token(json!({"jti": "jti-outage-1"}));
    let fresh = keys.token(json!({"jti": "jti-outage-fresh"}));
    let entry = a.admin.revoke(json!({"jti": "jti-outage-1"})).await;
    assert_eq!(entry["propagated"], true);
    converge(
        "before the outage",
        &[b.addr],
        &revoked,
        401,
        Instant::now(),
        PROPAGATION_LIMIT,
    )
    .await;
    let errors = [
        a.admin.redis_errors(None).await,
        b.admin.redis_errors(None).await,
    ];
    Before {
        a,
        b,
        revoked,
        fresh,
        errors,
    }
}

/// While Redis is away: both replicas report it unavailable (200), serve
/// from local state, count errors; a POST is applied locally only.
async fn during_outage(s: &Before, keys: &Keys, upstream: &Upstream) -> String {
    for r in [&s.a, &s.b] {
        let took = r.admin.wait_redis("unavailable", NOTICE_LIMIT).await;
        println!(
            "outage: replica {} reported redis unavailable after {}",
            r.addr,
            ms(&took)
        );
        let ready = r.admin.readyz().await;
        assert_eq!(ready.status, 200, "{}", text(&ready));
        assert_eq!(
            ready.json(),
            json!({"status": "ready", "redis": "unavailable"})
        );
    }
    let hits = upstream.hits();
    let start = Instant::now();
    for i in 0..LOCAL_REQUESTS {
        let addr = if i % 2 == 0 { s.a.addr } else { s.b.addr };
        assert_eq!(
            status(addr, &s.fresh).await,
            200,
            "served while Redis is away"
        );
        assert_revoked(&call(addr, &s.revoked).await, "the last synchronised list");
    }
    let elapsed = start.elapsed();
    println!(
        "outage: {} requests answered from local state in {}",
        2 * LOCAL_REQUESTS,
        ms(&elapsed)
    );
    assert!(
        elapsed < Duration::from_millis(100) * LOCAL_REQUESTS as u32,
        "requests wait for Redis: {elapsed:?} for {} requests",
        2 * LOCAL_REQUESTS
    );
    assert_eq!(upstream.hits(), hits + LOCAL_REQUESTS);

    for (r, before) in [(&s.a, s.errors[0]), (&s.b, s.errors[1])] {
        let now = r.admin.redis_errors(None).await;
        assert!(
            now > before,
            "tokengate_redis_errors_total did not rise on {}: {before} -> {now}",
            r.addr
        );
        assert!(
            r.admin.redis_errors(Some("ping")).await >= 1.0,
            "op=\"ping\" counted"
        );
    }

    let pending = keys.token(json!({"jti": "jti-outage-2"}));
    let writes = s.a.admin.redis_errors(Some("revocation_write")).await;
    let reply = s.a.admin.post(r#"{"jti":"jti-outage-2"}"#).await;
    assert_eq!(reply.status, 201, "{}", text(&reply));
    let entry = reply.json();
    assert_eq!(entry["propagated"], false, "{entry}");
    assert_eq!(entry["jti"], "jti-outage-2");
    assert_eq!(
        s.a.admin.redis_errors(Some("revocation_write")).await,
        writes + 1.0,
        "the failed write is counted under op=\"revocation_write\""
    );
    assert_revoked(&call(s.a.addr, &pending).await, "applied locally at once");
    assert_eq!(s.a.admin.list().await.len(), 2, "listed locally");
    assert_eq!(
        status(s.b.addr, &pending).await,
        200,
        "the other replica cannot know yet"
    );
    pending
}

/// Once Redis is back: both replicas say so, the pending revocation
/// reaches the other replica, and everything else still holds.
async fn after_outage(s: &Before, pending: &str, back: Instant, redis: &RedisServer) {
    for r in [&s.a, &s.b] {
        r.admin.wait_redis("ok", NOTICE_LIMIT).await;
        let ready = r.admin.readyz().await;
        assert_eq!(ready.json(), json!({"status": "ready", "redis": "ok"}));
    }
    let took = converge(
        "the revocation made while Redis was away",
        &[s.b.addr],
        pending,
        401,
        back,
        RECOVERY_LIMIT,
    )
    .await;
    println!(
        "outage: the pending revocation reached the other replica {} after Redis came back",
        ms(&took[0])
    );
    assert_revoked(&call(s.b.addr, pending).await, "the pending revocation");
    assert!(
        redis.cli(&["HVALS", CHANNEL]).contains("jti-outage-2"),
        "written to Redis"
    );
    for addr in [s.a.addr, s.b.addr] {
        assert_eq!(status(addr, &s.fresh).await, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_redis_fleet_serves_locally_and_a_post_made_meanwhile_propagates_on_resume() {
    if !redis_present() {
        return;
    }
    let redis = RedisServer::start();
    let keys = Keys::new();
    let upstream = Upstream::echo().await;
    let s = before_outage(&redis, &keys, &upstream).await;

    redis.pause();
    let pending = during_outage(&s, &keys, &upstream).await;
    redis.resume();
    let back = Instant::now();
    after_outage(&s, &pending, back, &redis).await;
    for addr in [s.a.addr, s.b.addr] {
        assert_revoked(&call(addr, &s.revoked).await, "Redis kept the first entry");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_redis_fleet_serves_locally_and_a_post_made_meanwhile_propagates_after_restart() {
    if !redis_present() {
        return;
    }
    let mut redis = RedisServer::start();
    let keys = Keys::new();
    let upstream = Upstream::echo().await;
    let s = before_outage(&redis, &keys, &upstream).await;

    redis.kill();
    let pending = during_outage(&s, &keys, &upstream).await;
    redis.restart();
    let back = Instant::now();
    after_outage(&s, &pending, back, &redis).await;
    // The restarted server is empty (no persistence): the replicas notice
    // the lost list and write their entries back, so the entry made before
    // the outage still refuses its token everywhere.
    for addr in [s.a.addr, s.b.addr] {
        assert_revoked(&call(addr, &s.revoked).await, "survives an emptied Redis");
    }
}
