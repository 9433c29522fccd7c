//! Fleet state (extensions section 11) against real `redis-server`
//! processes: the revocation API and its refusals, the kinds of entries,
//! three `tokengate` processes sharing one Redis (propagation measured),
//! Redis stopped and back, and a three-node Redis Cluster losing a primary.
//!
//! | module | covers |
//! |---|---|
//! | [`api`] | the admin endpoints on one in-process gateway without `[redis]` |
//! | [`targets`] | `jti`, `sub`, `client_id` entries and the `issuer` filter |
//! | [`propagation`] | three replicas on one Redis: POST and DELETE reach all within 1 s |
//! | [`outage`] | Redis paused or killed, then back: local state, `/readyz`, metrics, pending writes |
//! | [`cluster`] | `cluster_urls` with three primaries, one killed and restarted |
//!
//! Every process (Redis, gateway replicas) is killed by its pid when its
//! guard drops, also on panic. Without `redis-server` the tests that need
//! it skip with a message, unless `REQUIRE_REDIS` is set.

#[path = "../common/mod.rs"]
mod common;

mod replica;
mod support;

mod api;
mod cluster;
mod outage;
mod propagation;
mod targets;
