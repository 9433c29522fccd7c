//! Three `tokengate` processes sharing one `redis-server` act as one
//! gateway (extensions section 11): a revocation POSTed to any replica is
//! refused by every replica within 1 s of the 201, a DELETE is lifted as
//! fast, and the entry (its `created_at` included) is the same everywhere.
//! The measured times are printed (`--nocapture` shows them).

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Instant;

use crate::common::assert::text;
use crate::common::redis_server::{redis_present, RedisServer};
use crate::common::Upstream;
use crate::support::{
    assert_revoked, call, converge, report, start_fleet, status, Keys, CHANNEL, PROPAGATION_LIMIT,
};

/// Rounds of POST then DELETE measured.
const ROUNDS: usize = 5;

/// The entry as Redis holds it, by id.
fn stored(redis: &RedisServer, id: &str) -> Option<Value> {
    let json = redis.cli(&["HGET", CHANNEL, id]);
    (!json.is_empty()).then(|| serde_json::from_str(&json).expect("entry JSON in Redis"))
}

/// `entry` without the members named.
fn without(entry: &Value, names: &[&str]) -> Value {
    let mut e = entry.clone();
    for name in names {
        e.as_object_mut().expect("object").remove(*name);
    }
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_refuse_within_1s_of_a_post_and_accept_within_1s_of_a_delete() {
    if !redis_present() {
        return;
    }
    let redis = RedisServer::start();
    let keys = Keys::new();
    let upstream = Upstream::echo().await;
    let fleet = start_fleet(3, &redis, &keys, &upstream).await;
    let addrs: Vec<SocketAddr> = fleet.iter().map(|r| r.addr).collect();

    let mut refused = Vec::new();
    let mut lifted = Vec::new();
    for round in 0..ROUNDS {
        let jti = format!("jti-prop-{round}");
        let token = keys.token(json!({ "jti": jti }));
        for addr in &addrs {
            assert_eq!(status(*addr, &token).await, 200, "round {round}: before");
        }
        // POST to one replica (a different one each round).
        let (poster, others) = split(&addrs, round % 3);
        let admin = fleet[round % 3].admin;
        let reply = admin.post(&json!({ "jti": jti }).to_string()).await;
        let posted = Instant::now();
        assert_eq!(reply.status, 201, "{}", text(&reply));
        let entry = reply.json();
        assert_eq!(entry["propagated"], true, "{entry}");
        assert_revoked(
            &call(poster, &token).await,
            "the replica that took the POST",
        );
        let took = converge("POST", &others, &token, 401, posted, PROPAGATION_LIMIT).await;
        for addr in &others {
            assert_revoked(&call(*addr, &token).await, "another replica");
        }
        refused.extend(took);

        let id = entry["id"].as_str().expect("id");
        assert_eq!(
            stored(&redis, id),
            Some(without(&entry, &["propagated", "ttl_s"])),
            "in Redis"
        );
        for r in &fleet {
            assert_eq!(
                r.admin.list().await,
                vec![without(&entry, &["propagated"])],
                "GET everywhere"
            );
        }

        // DELETE on the next replica.
        let deleter = (round + 1) % 3;
        let (_, others) = split(&addrs, deleter);
        let reply = fleet[deleter].admin.delete(id).await;
        let deleted = Instant::now();
        assert_eq!(reply.status, 204, "{}", text(&reply));
        assert_eq!(
            status(addrs[deleter], &token).await,
            200,
            "the deleting replica"
        );
        lifted.extend(converge("DELETE", &others, &token, 200, deleted, PROPAGATION_LIMIT).await);
        assert_eq!(stored(&redis, id), None, "gone from Redis");
        for r in &fleet {
            assert_eq!(r.admin.list().await, Vec::<Value>::new(), "GET everywhere");
        }
    }
    report("POST → other replicas refuse", &refused);
    report("DELETE → other replicas accept", &lifted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_entry_made_on_one_replica_keeps_its_moment_of_revocation_on_the_others() {
    if !redis_present() {
        return;
    }
    let redis = RedisServer::start();
    let keys = Keys::new();
    let upstream = Upstream::echo().await;
    let fleet = start_fleet(3, &redis, &keys, &upstream).await;
    let addrs: Vec<SocketAddr> = fleet.iter().map(|r| r.addr).collect();
    let now = crate::common::mint::now();
    let old = keys.token(json!({"sub": "sub-fleet", "iat": now - 10}));
    let old_client = keys.token(json!({"client_id": "client-fleet", "iat": now - 10}));
    for addr in &addrs {
        assert_eq!(status(*addr, &old).await, 200, "before");
        assert_eq!(status(*addr, &old_client).await, 200, "before");
    }

    let entry = fleet[2].admin.revoke(json!({"sub": "sub-fleet"})).await;
    let posted = Instant::now();
    let took = converge(
        "POST sub",
        &addrs[..2],
        &old,
        401,
        posted,
        PROPAGATION_LIMIT,
    )
    .await;
    report("POST sub → other replicas refuse", &took);
    let entry2 = fleet[0]
        .admin
        .revoke(json!({"client_id": "client-fleet"}))
        .await;
    let posted = Instant::now();
    let took = converge(
        "POST client_id",
        &addrs[1..],
        &old_client,
        401,
        posted,
        PROPAGATION_LIMIT,
    )
    .await;
    report("POST client_id → other replicas refuse", &took);

    let after = |e: &Value| e["created_at"].as_f64().expect("created_at").floor() as i64 + 1;
    let fresh = keys.token(json!({"sub": "sub-fleet", "iat": after(&entry)}));
    let fresh_client = keys.token(json!({"client_id": "client-fleet", "iat": after(&entry2)}));
    for addr in &addrs {
        assert_revoked(&call(*addr, &old).await, "sub: issued before");
        assert_revoked(&call(*addr, &old_client).await, "client_id: issued before");
        assert_eq!(
            status(*addr, &fresh).await,
            200,
            "sub: issued after, on {addr}"
        );
        assert_eq!(
            status(*addr, &fresh_client).await,
            200,
            "client_id: issued after, on {addr}"
        );
    }
}

/// The replica at `i` and the others.
fn split(addrs: &[SocketAddr], i: usize) -> (SocketAddr, Vec<SocketAddr>) {
    let others = addrs
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, a)| *a)
        .collect();
    (addrs[i], others)
}

/// A long list reaches a new replica although one `HGETALL` of it would
/// take longer than `redis.timeout_ms`: the resync reads it in pages, each
/// a small operation. 100,000 entries (as the benchmark runs with) with a
/// 50 ms timeout; the one matching a token refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_of_100000_entries_loads_with_a_short_operation_timeout() {
    if !redis_present() {
        return;
    }
    const ENTRIES: usize = 100_000;
    let redis = RedisServer::start();
    let mut conn = redis.connection().await;
    let now = crate::common::mint::now();
    // In pipelines of 5,000, each well within the client's own timeout.
    for chunk in (0..ENTRIES).collect::<Vec<_>>().chunks(5_000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            let entry = json!({
                "id": format!("rv{i:06}"), "jti": format!("jti-long-{i}"),
                "created_at": now, "expires_at": now + 3600,
            });
            pipe.hset(CHANNEL, format!("rv{i:06}"), entry.to_string())
                .ignore();
        }
        let () = pipe.query_async(&mut conn).await.expect("seed the list");
    }

    let keys = Keys::new();
    let upstream = Upstream::echo().await;
    let tables = format!(
        "{}timeout_ms = 50\n",
        crate::support::redis_table(&redis.url())
    );
    let replica = crate::replica::Replica::start(&keys.config(&upstream, &tables));
    replica
        .admin
        .wait_redis("ok", crate::support::CONNECT_LIMIT)
        .await;
    let started = Instant::now();
    let last = keys.token(json!({ "jti": format!("jti-long-{}", ENTRIES - 1) }));
    converge(
        "load",
        &[replica.addr],
        &last,
        401,
        started,
        std::time::Duration::from_secs(20),
    )
    .await;
    assert_revoked(
        &call(replica.addr, &last).await,
        "the last entry of the list",
    );
    assert_eq!(replica.admin.list().await.len(), ENTRIES);
    let other = keys.token(json!({ "jti": "jti-not-listed" }));
    assert_eq!(status(replica.addr, &other).await, 200);
    println!("{ENTRIES} entries loaded in {:?}", started.elapsed());
}
