//! A Redis Cluster through `cluster_urls` (extensions section 11): three
//! primaries without replicas, two `tokengate` processes. Revocation
//! propagates through the cluster; with the primary that holds the
//! deny-list killed, the fleet keeps serving and refusing the revoked token
//! from local state; with that primary restarted, a revocation made during
//! the outage reaches the other replica (best effort: this leans on the
//! periodic resync, set to a short interval here).

use serde_json::json;
use std::time::{Duration, Instant};

use crate::common::assert::text;
use crate::common::redis_server::{redis_present, RedisCluster};
use crate::common::Upstream;
use crate::replica::Replica;
use crate::support::{
    assert_revoked, call, cluster_table, converge, ms, report, status, Keys, CHANNEL,
    CONNECT_LIMIT, PROPAGATION_LIMIT,
};

/// The resync interval of this test, and the limit of the recovery.
const SYNC_INTERVAL_S: u64 = 2;
const RECOVERY_LIMIT: Duration = Duration::from_secs(SYNC_INTERVAL_S + 3);
/// Rounds of requests while the primary is down.
const ROUNDS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_shares_revocations_and_without_a_primary_the_fleet_refuses_locally() {
    if !redis_present() {
        return;
    }
    let mut cluster = RedisCluster::start();
    let keys = Keys::new();
    let upstream = Upstream::echo().await;
    let tables = cluster_table(
        &cluster.urls(),
        &format!("\n[revocation]\nsync_interval_s = {SYNC_INTERVAL_S}"),
    );
    let config = keys.config(&upstream, &tables);
    let (a, b) = (Replica::start(&config), Replica::start(&config));
    for r in [&a, &b] {
        r.admin.wait_redis("ok", CONNECT_LIMIT).await;
    }
    // The subscriber uses the first seed; messages reach every node.
    cluster.nodes[0].wait_subscribers(CHANNEL, 2);

    let revoked = keys.token(json!({"jti": "jti-cluster-1"}));
    let fresh = keys.token(json!({"jti": "jti-cluster-fresh"}));
    for r in [&a, &b] {
        assert_eq!(status(r.addr, &revoked).await, 200, "before");
    }
    let entry = a.admin.revoke(json!({"jti": "jti-cluster-1"})).await;
    let posted = Instant::now();
    assert_eq!(entry["propagated"], true, "{entry}");
    let took = converge(
        "POST on a cluster",
        &[b.addr],
        &revoked,
        401,
        posted,
        PROPAGATION_LIMIT,
    )
    .await;
    report("cluster POST → other replica refuses", &took);
    let owner = cluster.owner_of(CHANNEL);
    let node = &cluster.nodes[owner];
    assert!(
        node.cli(&["HVALS", CHANNEL]).contains("jti-cluster-1"),
        "the deny-list hash lives on node {owner}"
    );

    // Kill the primary holding the deny-list.
    println!(
        "cluster: killing node {owner} (port {}, pid {})",
        node.port(),
        node.pid()
    );
    cluster.nodes[owner].kill();
    let down = Instant::now();
    let pending = keys.token(json!({"jti": "jti-cluster-2"}));
    let reply = a.admin.post(r#"{"jti":"jti-cluster-2"}"#).await;
    assert_eq!(reply.status, 201, "{}", text(&reply));
    assert_eq!(reply.json()["propagated"], false, "its node is down");
    for round in 0..ROUNDS {
        for r in [&a, &b] {
            assert_eq!(status(r.addr, &fresh).await, 200, "round {round}: served");
            assert_revoked(&call(r.addr, &revoked).await, "refused from local state");
            let ready = r.admin.readyz().await;
            assert_eq!(ready.status, 200, "{}", text(&ready));
        }
        assert_revoked(&call(a.addr, &pending).await, "applied locally");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "cluster: {} rounds served with node {owner} down over {}",
        ROUNDS,
        ms(&down.elapsed())
    );

    // Best effort: the node comes back (same port and node file, empty).
    cluster.nodes[owner].restart();
    cluster.wait_ok();
    let back = Instant::now();
    let took = converge(
        "the revocation made while the primary was down",
        &[b.addr],
        &pending,
        401,
        back,
        RECOVERY_LIMIT,
    )
    .await;
    println!("cluster: the pending revocation reached the other replica {} after the cluster was ok again", ms(&took[0]));
    for r in [&a, &b] {
        r.admin.wait_redis("ok", CONNECT_LIMIT).await;
        assert_eq!(status(r.addr, &fresh).await, 200);
        let st = status(r.addr, &revoked).await;
        println!("cluster: after the restart of the emptied primary, replica {} answers {st} to the token revoked before", r.addr);
    }
}
