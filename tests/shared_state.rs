//! What instances sharing a real `redis-server` have in common besides the
//! revocation list (extensions section 11): introspection answers (three
//! instances receiving one new opaque token concurrently make one call) and
//! DPoP replays (a proof accepted by one instance is a replay at another),
//! and how each degrades to the instance's own state when Redis is away.

mod common;

use common::dpop::{cnf_jkt, DpopKey};
use common::idp::{eventually, issuer_table, readyz, wait_ready, TestIdp};
use common::mint::{claims, now, with, Key, AUD};
use common::redis_server::RedisServer;
use common::{get_with, Client, Gateway, GatewayConfig, Route, Upstream};
use serde_json::json;
use std::time::Duration;

const CLIENT_ID: &str = "gateway";
const CLIENT_SECRET: &str = "secret";

struct Fleet {
    idp: TestIdp,
    key: Key,
    upstream: Upstream,
    gateways: Vec<Gateway>,
    redis: RedisServer,
}

impl Fleet {
    /// `n` gateways on one Redis, trusting one issuer that signs JWTs and
    /// introspects opaque tokens, with `[dpop]` on.
    async fn start(test: &str, n: usize) -> Option<Fleet> {
        let redis = RedisServer::start_for(test).await?;
        let key = Key::es256("k1");
        let idp = TestIdp::with_keys(&[&key]).await;
        let upstream = Upstream::echo().await;
        let issuer = format!(
            "{}[issuers.corp.introspection]\nendpoint = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n",
            issuer_table("corp", &idp, ""),
            idp.introspection_endpoint()
        );
        let mut gateways = Vec::new();
        for _ in 0..n {
            let gw = GatewayConfig::new()
                .admin()
                .issuer(issuer.clone())
                .upstream("echo", &upstream.url())
                .raw(&format!(
                    "[redis]\nurl = \"{}\"\ntimeout_ms = 200\n[dpop]\n",
                    redis.url()
                ))
                .route(Route::new("/**", "echo"))
                .start()
                .await;
            wait_ready(&gw).await;
            gateways.push(gw);
        }
        // Each instance connects in the background; wait until every one
        // reports Redis as reachable.
        for gw in &gateways {
            wait_redis(gw, "ok").await;
        }
        Some(Fleet {
            idp,
            key,
            upstream,
            gateways,
            redis,
        })
    }
}

/// Polls `/readyz` until its `redis` member is `want`.
async fn wait_redis(gw: &Gateway, want: &str) {
    for _ in 0..250 {
        let reply = readyz(gw).await;
        let doc: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        if doc["redis"] == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("/readyz never reported redis {want:?}");
}

#[tokio::test]
async fn three_instances_make_one_introspection_call_for_one_new_token() {
    let Some(f) = Fleet::start("shared introspection", 3).await else {
        return;
    };
    let token = "opaque-shared-1";
    f.idp.set_introspection(
        token,
        json!({"active": true, "sub": "bob", "iss": f.idp.issuer(), "aud": AUD, "exp": now() + 300}),
    );
    // Hold the endpoint's answer so that all three ask while the first
    // call is in flight.
    f.idp.hold_introspection();
    let auth = format!("Bearer {token}");
    let sends = f.gateways.iter().map(|gw| {
        let auth = auth.clone();
        async move {
            gw.send(&Client::h1(), get_with("/x", &[("authorization", &auth)]))
                .await
        }
    });
    let release = async {
        eventually("a call in flight", || f.idp.introspect_in_flight() == 1).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        f.idp.release_introspection();
    };
    let (replies, ()) = tokio::join!(futures_util::future::join_all(sends), release);
    for r in &replies {
        assert_eq!(
            r.status.as_u16(),
            200,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }
    assert_eq!(f.idp.introspect_hits(), 1, "one call for three instances");
    assert_eq!(f.upstream.hits(), 3);
}

/// A DPoP request to `gw` with `Host: host` (so that a proof made for one
/// gateway's URL fits a request sent to another).
async fn dpop_call(gw: &Gateway, token: &str, proof: &str, host: &str) -> common::Reply {
    let auth = format!("DPoP {token}");
    let req = get_with(
        "/x",
        &[("authorization", &auth), ("dpop", proof), ("host", host)],
    );
    gw.send(&Client::h1(), req).await
}

#[tokio::test]
async fn a_dpop_proof_accepted_by_one_instance_is_a_replay_at_another() {
    let Some(f) = Fleet::start("shared dpop replay", 2).await else {
        return;
    };
    let dpop_key = DpopKey::es256();
    let token = f.key.token(&with(
        &claims(&f.idp.issuer(), AUD),
        json!({"cnf": cnf_jkt(&dpop_key)}),
    ));
    let url = |gw: &Gateway| format!("http://{}/x", gw.addr());
    let (a, b) = (&f.gateways[0], &f.gateways[1]);
    // htu names the host each gateway sees; both listen on 127.0.0.1, so a
    // proof made for one gateway's URL is sent to the other with the same
    // Host header.
    let host = a.addr().to_string();
    let proof = dpop_key.proof("GET", &url(a), &token).encode();
    assert_eq!(
        dpop_call(a, &token, &proof, &host).await.status.as_u16(),
        200
    );
    let replay = dpop_call(b, &token, &proof, &host).await;
    assert_eq!(replay.status.as_u16(), 401);
    let challenge = replay
        .header("www-authenticate")
        .unwrap_or_default()
        .to_string();
    assert!(
        challenge.contains("error=\"invalid_dpop_proof\""),
        "{challenge}"
    );

    // Redis away: each instance's own replay cache decides alone, so a
    // fresh proof accepted by A is accepted once more by B.
    let mut f = f;
    f.redis.kill();
    wait_redis(&f.gateways[1], "unavailable").await;
    let fresh = dpop_key.proof("GET", &url(&f.gateways[0]), &token).encode();
    let (a, b) = (&f.gateways[0], &f.gateways[1]);
    assert_eq!(
        dpop_call(a, &token, &fresh, &host).await.status.as_u16(),
        200
    );
    let at_b = dpop_call(b, &token, &fresh, &host).await;
    assert_eq!(at_b.status.as_u16(), 200, "served from local state");
    let again = dpop_call(a, &token, &fresh, &host).await;
    assert_eq!(again.status.as_u16(), 401, "still a replay at A");
}

#[tokio::test]
async fn without_redis_each_instance_introspects_for_itself() {
    let Some(mut f) = Fleet::start("introspection fallback", 2).await else {
        return;
    };
    f.redis.kill();
    for gw in &f.gateways {
        wait_redis(gw, "unavailable").await;
    }
    let token = "opaque-fallback-1";
    f.idp.set_introspection(
        token,
        json!({"active": true, "sub": "bob", "iss": f.idp.issuer(), "aud": AUD, "exp": now() + 300}),
    );
    for gw in &f.gateways {
        let r = gw
            .send(
                &Client::h1(),
                get_with("/x", &[("authorization", &format!("Bearer {token}"))]),
            )
            .await;
        assert_eq!(r.status.as_u16(), 200, "served while Redis is away");
    }
    assert_eq!(f.idp.introspect_hits(), 2);
}
