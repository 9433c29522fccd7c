//! Many calls at once: the gateway multiplexes them onto few upstream
//! connections, and an upstream that goes away gracefully (GOAWAY) while
//! calls keep coming fails none of them: those in flight finish on the old
//! connection, the rest go to a new one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::task::JoinSet;
use tonic::Status;

use crate::common::idp::eventually;
use crate::common::within;
use crate::echo::{EchoClient, EchoRequest};
use crate::fixture::with_token;
use crate::Grpc;

/// Concurrent calls of the multiplexing test.
const CALLS: usize = 200;
/// Client connections they are spread over.
const CLIENT_CONNECTIONS: usize = 4;
/// How long each call holds its stream open at the upstream.
const HOLD_MS: u64 = 300;

fn slow(message: &str, delay_ms: u64) -> EchoRequest {
    EchoRequest {
        delay_ms,
        ..EchoRequest::text(message)
    }
}

#[tokio::test]
async fn concurrent_calls_share_few_upstream_connections() {
    let g = Grpc::start().await;
    let token = g.token();
    let mut clients = Vec::new();
    for _ in 0..CLIENT_CONNECTIONS {
        clients.push(g.client().await);
    }
    let mut calls = JoinSet::new();
    for i in 0..CALLS {
        let mut client = clients[i % CLIENT_CONNECTIONS].clone();
        let request = with_token(slow(&format!("c{i}"), HOLD_MS), &token);
        calls.spawn(async move { client.slow(request).await });
    }
    let results = within("concurrent calls", calls.join_all()).await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} calls failed: {failed:?}",
        failed.len()
    );

    let connections = g.echo.connections();
    let in_flight = g.echo.max_in_flight();
    eprintln!(
        "{CALLS} concurrent calls over {CLIENT_CONNECTIONS} client connections: \
         {connections} upstream connection(s), at most {in_flight} calls in flight upstream"
    );
    assert_eq!(g.echo.hits(), CALLS);
    assert!(
        connections <= 2,
        "{CALLS} calls opened {connections} upstream connections"
    );
    assert!(
        in_flight >= CALLS / 2,
        "the calls overlapped at the upstream (at most {in_flight} at once)"
    );
}

/// Workers keep calls in flight (each held 20 ms at the upstream) while
/// the upstream's server shuts down gracefully and a new one takes its
/// port: no call fails, and both servers took calls.
#[tokio::test]
async fn goaway_during_load_fails_no_call() {
    const WORKERS: usize = 16;
    const PER_PHASE: usize = 100;
    let g = Grpc::start().await;
    let client = g.client().await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = JoinSet::new();
    for w in 0..WORKERS {
        workers.spawn(keep_calling(client.clone(), g.token(), w, stop.clone()));
    }

    eventually("calls served by the first server", || {
        g.echo.served_by(1) >= PER_PHASE
    })
    .await;
    let old = g.echo.restart();
    let at_goaway = g.echo.in_flight();
    eventually("calls served by the second server", || {
        g.echo.served_by(2) >= PER_PHASE
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let outcomes = within("workers", workers.join_all()).await;
    within("the first server drained", old)
        .await
        .expect("server task")
        .expect("first server");

    let (ok, failed): (usize, Vec<Status>) =
        outcomes
            .into_iter()
            .fold((0, Vec::new()), |(ok, mut failed), (n, mut errors)| {
                failed.append(&mut errors);
                (ok + n, failed)
            });
    eprintln!(
        "GOAWAY under load: {ok} calls answered, {} failed; {at_goaway} in flight at the \
         GOAWAY; first server {}, second {}, {} upstream connections",
        failed.len(),
        g.echo.served_by(1),
        g.echo.served_by(2),
        g.echo.connections()
    );
    assert!(
        failed.is_empty(),
        "{} calls failed: {failed:?}",
        failed.len()
    );
    assert!(ok >= 2 * PER_PHASE);
    assert!(
        at_goaway > 0,
        "no call was in flight when the upstream went away"
    );
}

/// Calls until `stop`, one at a time; returns how many were answered and
/// the statuses of those that failed.
async fn keep_calling(
    mut client: EchoClient,
    token: String,
    worker: usize,
    stop: Arc<AtomicBool>,
) -> (usize, Vec<Status>) {
    let mut ok = 0;
    let mut failed = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let request = with_token(slow(&format!("w{worker}"), 20), &token);
        match within("one call", client.slow(request)).await {
            Ok(_) => ok += 1,
            Err(status) => failed.push(status),
        }
    }
    (ok, failed)
}
