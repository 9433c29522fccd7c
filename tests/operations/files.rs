//! Files the gateway reads again: a replaced TLS certificate served to new
//! connections only, and `watch_config` reloading a rewritten file.

use super::*;

#[tokio::test]
async fn reload_serves_a_replaced_certificate_to_new_connections_only() {
    let ca = TestCa::new();
    let first = ca.leaf("tokengate-first", 1001);
    let second = ca.leaf("tokengate-second", 1002);
    assert_ne!(first.der, second.der);
    let dir = tempfile::tempdir().expect("tempdir");
    first.install(dir.path());
    let upstream = Upstream::echo().await;
    let toml = GatewayConfig::new()
        .server("tls_cert = \"server.pem\"\ntls_key = \"server.key\"")
        .upstream("tls_echo", &upstream.url())
        .route(Route::open("/tls-reload/**", "tls_echo"))
        .render();
    let gw = FileGateway::start_in(dir, &toml).await;
    let authority = format!("localhost:{}", gw.addr().port());
    let get = |path: &str| get_with(path, &[("host", &authority)]);

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
